// GPU utilization and memory through NVML, loaded with dlopen at first use: absent (an empty
// list) on machines without an NVIDIA driver, never a link-time dependency.
#pragma once
#include <cstdint>
#include <vector>

namespace tw {

struct GpuStats {
  unsigned index;
  unsigned utilization_percent;
  uint64_t memory_used;
  uint64_t memory_total;
};

/** One entry per visible GPU; empty when NVML is not available. */
std::vector<GpuStats> ReadGpuStats();

}  // namespace tw
