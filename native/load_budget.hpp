// Refuses a load whose host memory would not fit, before any session exists: without the
// check, a large model times many instances makes the machine swap (or the OOM killer end the
// server) halfway through the load.
#pragma once
#include <cstddef>

#include "model_options.hpp"

namespace tw {

/**
 * Host bytes a load is expected to take, from the file's size (about the weights' size): on the
 * CPU the instances share one copy of the weights plus one pre-packed copy (see
 * session_factory.hpp), and ORT holds one more while it parses the file; on a GPU the weights
 * move to the device and only the parse copy counts. 0 when the file cannot be read (the load
 * reports that itself).
 */
size_t EstimateLoadHostBytes(const ModelOptions& options);

/** MemAvailable from /proc/meminfo in bytes; 0 when unknown. */
size_t MachineAvailableBytes();

/** Host bytes a load may still take: MemAvailable, or less under a cgroup v2 memory limit; 0 when unknown (no check). */
size_t AvailableHostBytes();

/** Throws EngineError MODEL_LOAD_FAILED naming the estimate when it exceeds the memory available. */
void CheckMemoryBudget(const ModelOptions& options);

}  // namespace tw
