#include "load_budget.hpp"

#include <sys/stat.h>

#include <cstdio>
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

size_t AvailableHostBytes() {
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
