#include "nvml.hpp"

#include <dlfcn.h>

#include <mutex>

namespace tw {
namespace {

// The few NVML declarations we need (nvml.h is not on every build machine).
using NvmlDevice = void*;
struct NvmlUtilization {
  unsigned gpu;
  unsigned memory;
};
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct Nvml {
  int (*init)() = nullptr;
  int (*count)(unsigned*) = nullptr;
  int (*handle)(unsigned, NvmlDevice*) = nullptr;
  int (*utilization)(NvmlDevice, NvmlUtilization*) = nullptr;
  int (*memory)(NvmlDevice, NvmlMemory*) = nullptr;
  bool ok = false;
};

const Nvml& Load() {
  static Nvml nvml;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return;
    nvml.init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    nvml.count = reinterpret_cast<int (*)(unsigned*)>(dlsym(lib, "nvmlDeviceGetCount_v2"));
    nvml.handle = reinterpret_cast<int (*)(unsigned, NvmlDevice*)>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
    nvml.utilization = reinterpret_cast<int (*)(NvmlDevice, NvmlUtilization*)>(dlsym(lib, "nvmlDeviceGetUtilizationRates"));
    nvml.memory = reinterpret_cast<int (*)(NvmlDevice, NvmlMemory*)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
    nvml.ok = nvml.init && nvml.count && nvml.handle && nvml.utilization && nvml.memory && nvml.init() == 0;
  });
  return nvml;
}

}  // namespace

std::vector<GpuStats> ReadGpuStats() {
  std::vector<GpuStats> out;
  const Nvml& nvml = Load();
  if (!nvml.ok) return out;
  unsigned count = 0;
  if (nvml.count(&count) != 0) return out;
  for (unsigned i = 0; i < count; i++) {
    NvmlDevice device = nullptr;
    NvmlUtilization util{0, 0};
    NvmlMemory mem{0, 0, 0};
    if (nvml.handle(i, &device) != 0) continue;
    nvml.utilization(device, &util);
    nvml.memory(device, &mem);
    out.push_back({i, util.gpu, mem.used, mem.total});
  }
  return out;
}

}  // namespace tw
