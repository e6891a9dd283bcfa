#include "cuda_runtime.hpp"

#include <dlfcn.h>

#include <mutex>

#include "errors.hpp"

namespace tw {
namespace {

std::once_flag g_once;
const TwCudaApi* g_api = nullptr;
std::string g_error;

void LoadCuda() {
  const std::string path = AddonDirectory() + "/libtensorwire_cuda.so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    g_error = "cannot load " + path + ": " + (why ? why : "unknown error") +
              ". Either tensorwire was built without nvcc (rebuild with the CUDA toolkit on PATH: npm rebuild)"
              " or the CUDA 13 runtime (libcudart.so.13) is not on the library path (add /usr/local/cuda/lib64 to"
              " LD_LIBRARY_PATH).";
    return;
  }
  auto getter = reinterpret_cast<TwCudaApiGetter>(dlsym(handle, "tw_cuda_api"));
  if (getter == nullptr || getter()->abi_version != TW_CUDA_ABI_VERSION) {
    g_error = path + " does not match this addon (rebuild with npm rebuild)";
    return;
  }
  int count = 0;
  int err = getter()->get_device_count(&count);
  if (err != 0 || count == 0) {
    g_error = std::string("no CUDA device is visible: ") +
              (err != 0 ? getter()->error_string(err) : "cudaGetDeviceCount returned 0");
    return;
  }
  g_api = getter();
}

}  // namespace

std::string AddonDirectory() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&AddonDirectory), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string file = info.dli_fname;
  auto slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash);
}

const TwCudaApi& Cuda() {
  std::call_once(g_once, LoadCuda);
  if (g_api == nullptr) throw EngineError("PROVIDER_UNAVAILABLE", g_error);
  return *g_api;
}

const TwCudaApi* CudaIfLoaded() { return g_api; }

void CheckCuda(int err, const char* what, const char* code) {
  if (err == 0) return;
  const char* text = g_api != nullptr ? g_api->error_string(err) : "CUDA error";
  throw EngineError(code, std::string(what) + " failed: " + text);
}

}  // namespace tw
