// Refuses a load whose host memory would not fit, before any session exists: without the
// check, a large model times many instances makes the machine swap (or the OOM killer end the
// server) halfway through the load.
#pragma once
#include <cstddef>

#include "model_options.hpp"

namespace tw {

/**
 * Host bytes a load is expected to take: on the CPU each instance's session holds its own copy
 * of the weights (about the file's size; pre-packed copies are shared, see session_factory.hpp)
 * plus one more copy while ORT parses the file; on a GPU the weights move to the device and
 * only the parse copy counts. 0 when the file cannot be read (the load reports that itself).
 */
size_t EstimateLoadHostBytes(const ModelOptions& options);

/** MemAvailable from /proc/meminfo in bytes; 0 when unknown (the check is then skipped). */
size_t AvailableHostBytes();

/** Throws EngineError MODEL_LOAD_FAILED naming the estimate when it exceeds the memory available. */
void CheckMemoryBudget(const ModelOptions& options);

}  // namespace tw
