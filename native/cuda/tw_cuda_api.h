// The C ABI between the addon and libtensorwire_cuda.so. The addon never links CUDA: it
// dlopens the library (built by nvcc next to the addon) only when a model asks for the
// cuda or tensorrt provider, so it still loads on machines without a CUDA runtime.
// Every function returns a cudaError_t value (0 = success).
#pragma once
#include <stddef.h>

#define TW_CUDA_ABI_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TwCudaApi {
  int abi_version;
  int (*get_device_count)(int* count);
  int (*set_device)(int device);
  int (*host_alloc)(void** ptr, size_t bytes);  // pinned (page-locked) host memory
  int (*host_free)(void* ptr);
  int (*device_alloc)(void** ptr, size_t bytes);
  int (*device_free)(void* ptr);
  int (*stream_create)(void** stream);
  int (*stream_destroy)(void* stream);
  int (*stream_synchronize)(void* stream);
  int (*copy_h2d_async)(void* dst, const void* src, size_t bytes, void* stream);
  int (*copy_d2h_async)(void* dst, const void* src, size_t bytes, void* stream);
  int (*event_create)(void** event);
  int (*event_destroy)(void* event);
  int (*event_record)(void* event, void* stream);
  int (*stream_wait_event)(void* stream, void* event);
  int (*mem_get_info)(size_t* free_bytes, size_t* total_bytes);
  const char* (*error_string)(int error);
} TwCudaApi;

typedef const TwCudaApi* (*TwCudaApiGetter)(void);

/** Exported by libtensorwire_cuda.so. */
const TwCudaApi* tw_cuda_api(void);

#ifdef __cplusplus
}
#endif
