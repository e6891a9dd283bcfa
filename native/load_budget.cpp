#include "load_budget.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "errors.hpp"

namespace tw {

size_t EstimateLoadHostBytes(const ModelOptions& options) {
  struct stat st;
  if (stat(options.path.c_str(), &st) != 0) return 0;
  const size_t file = static_cast<size_t>(st.st_size);
  // CPU, several instances: one shared copy, one pre-packed copy, one while parsing.
  const size_t copies = options.on_gpu() ? 1 : options.instances > 1 ? 3 : 2;
  return file * copies;
}

namespace {

/** A cgroup v2 memory file's value in bytes; 0 when absent or "max". */
size_t CgroupValue(const char* path) {
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return 0;
  char text[64] = {0};
  const bool read = std::fgets(text, sizeof text, f) != nullptr;
  std::fclose(f);
  return read && text[0] >= '0' && text[0] <= '9' ? std::strtoull(text, nullptr, 10) : 0;
}

}  // namespace

size_t AvailableHostBytes() {
  // In a container, the cgroup's limit binds before the machine's memory does.
  const size_t limit = CgroupValue("/sys/fs/cgroup/memory.max");
  const size_t used = CgroupValue("/sys/fs/cgroup/memory.current");
  const size_t cgroup_free = limit > used ? limit - used : 0;
  const size_t machine_free = MachineAvailableBytes();
  if (limit == 0) return machine_free;
  return machine_free == 0 || cgroup_free < machine_free ? cgroup_free : machine_free;
}

size_t MachineAvailableBytes() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "MemAvailable:", 13) == 0) {
      kib = std::strtoull(line + 13, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

void CheckMemoryBudget(const ModelOptions& options) {
  const size_t need = EstimateLoadHostBytes(options);
  const size_t available = AvailableHostBytes();
  if (need == 0 || available == 0 || need <= available) return;
  auto mib = [](size_t b) { return std::to_string(b / (1024 * 1024)) + " MiB"; };
  throw EngineError("MODEL_LOAD_FAILED", "cannot load model " + options.display_name + ": it needs about " + mib(need) + " of host memory (" +
                                             std::to_string(options.instances) + " instance(s) sharing the weights, plus copies while loading) and " +
                                             mib(available) + " is available; lower instance_count");
}

}  // namespace tw
