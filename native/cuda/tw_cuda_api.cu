// libtensorwire_cuda.so: thin C wrappers over the CUDA runtime, compiled by nvcc. Loaded with
// dlopen by the addon (cuda_runtime.cpp) only when a model asks for a GPU provider.
#include <cuda_runtime.h>
#include "tw_cuda_api.h"

namespace {

int GetDeviceCount(int* count) { return cudaGetDeviceCount(count); }
int SetDevice(int device) { return cudaSetDevice(device); }
int HostAlloc(void** ptr, size_t bytes) { return cudaHostAlloc(ptr, bytes, cudaHostAllocPortable); }
int HostFree(void* ptr) { return cudaFreeHost(ptr); }
int DeviceAlloc(void** ptr, size_t bytes) { return cudaMalloc(ptr, bytes); }
int DeviceFree(void* ptr) { return cudaFree(ptr); }
int StreamCreate(void** stream) {
  // Non-blocking: our streams must not serialize against the legacy default stream ORT may use.
  return cudaStreamCreateWithFlags(reinterpret_cast<cudaStream_t*>(stream), cudaStreamNonBlocking);
}
int StreamDestroy(void* stream) { return cudaStreamDestroy(static_cast<cudaStream_t>(stream)); }
int StreamSynchronize(void* stream) { return cudaStreamSynchronize(static_cast<cudaStream_t>(stream)); }
int CopyH2DAsync(void* dst, const void* src, size_t bytes, void* stream) {
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream));
}
int CopyD2HAsync(void* dst, const void* src, size_t bytes, void* stream) {
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream));
}
int EventCreate(void** event) {
  return cudaEventCreateWithFlags(reinterpret_cast<cudaEvent_t*>(event), cudaEventDisableTiming);
}
int EventDestroy(void* event) { return cudaEventDestroy(static_cast<cudaEvent_t>(event)); }
int EventRecord(void* event, void* stream) {
  return cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream));
}
int StreamWaitEvent(void* stream, void* event) {
  return cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0);
}
int MemGetInfo(size_t* free_bytes, size_t* total_bytes) { return cudaMemGetInfo(free_bytes, total_bytes); }
const char* ErrorString(int error) { return cudaGetErrorString(static_cast<cudaError_t>(error)); }

const TwCudaApi kApi = {
    TW_CUDA_ABI_VERSION, GetDeviceCount, SetDevice,   HostAlloc,    HostFree,       DeviceAlloc,
    DeviceFree,          StreamCreate,   StreamDestroy, StreamSynchronize, CopyH2DAsync, CopyD2HAsync,
    EventCreate,         EventDestroy,   EventRecord,  StreamWaitEvent, MemGetInfo,   ErrorString,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const TwCudaApi* tw_cuda_api(void) { return &kApi; }
