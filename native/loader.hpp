// The process-wide loader thread: model loads and unloads (session creation, slot allocation,
// joins and frees) run here, never on the JS thread nor on libuv's small thread pool.
#pragma once
#include <functional>

namespace tw {

/** Queues `task` on the loader thread (tasks run one at a time, in order). */
void PostToLoader(std::function<void()> task);

}  // namespace tw
