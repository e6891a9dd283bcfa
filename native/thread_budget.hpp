// Checks, before any session exists, that the process can still create the threads a load
// needs. ONNX Runtime creates its intra-op workers inside session creation, and under a
// process limit (RLIMIT_NPROC, a cgroup's pids.max) some of its thread creations fail in
// places that cannot report an error: std::terminate kills the server. Creating the threads
// first, ourselves, turns that limit into a load error.
#pragma once
#include <cstddef>
#include <string>

#include "model_options.hpp"

namespace tw {

/** Threads a load creates: per instance, its executor plus ORT's intra-op (and inter-op) workers. */
size_t ThreadsNeeded(const ModelOptions& options);

/**
 * Creates `count` parked threads (small stacks), then joins them all. Throws EngineError
 * MODEL_LOAD_FAILED naming how many could be created when the process runs out; every thread
 * created is joined before it returns or throws.
 */
void CheckThreadBudget(size_t count, const std::string& model_name);

}  // namespace tw
