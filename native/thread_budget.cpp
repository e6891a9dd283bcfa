#include "thread_budget.hpp"

#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "errors.hpp"
#include "limits.hpp"

namespace tw {
namespace {

struct Latch {
  std::mutex mutex;
  std::condition_variable open;
  bool released = false;
};

void* WaitForRelease(void* arg) {
  auto* latch = static_cast<Latch*>(arg);
  std::unique_lock<std::mutex> lock(latch->mutex);
  latch->open.wait(lock, [latch] { return latch->released; });
  return nullptr;
}

}  // namespace

size_t ThreadsNeeded(const ModelOptions& options) {
  const size_t cores = std::thread::hardware_concurrency() > 0 ? std::thread::hardware_concurrency() : 1;
  // 0 means "one per core" to ORT. The run's calling thread is one of the intra-op threads.
  const size_t intra = options.intra_op_threads > 0 ? static_cast<size_t>(options.intra_op_threads) : cores;
  const size_t inter = options.inter_op_threads > 0 ? static_cast<size_t>(options.inter_op_threads) : cores;
  return static_cast<size_t>(options.instances) * (1 + intra + inter);
}

void CheckThreadBudget(size_t count, const std::string& model_name) {
  Latch latch;
  std::vector<pthread_t> created;
  created.reserve(count);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);  // parked threads: the probe is about count, not memory
  int failure = 0;
  for (size_t i = 0; i < count; i++) {
    pthread_t t;
    failure = pthread_create(&t, &attr, WaitForRelease, &latch);
    if (failure != 0) break;
    created.push_back(t);
  }
  pthread_attr_destroy(&attr);
  {
    std::lock_guard<std::mutex> lock(latch.mutex);
    latch.released = true;
  }
  latch.open.notify_all();
  for (pthread_t t : created) pthread_join(t, nullptr);
  if (failure != 0)
    throw EngineError("MODEL_LOAD_FAILED", "cannot load model " + model_name + ": it needs about " + std::to_string(count - Limits::kThreadHeadroom) +
                                               " threads (instances x (1 + intra_op + inter_op threads)) plus " +
                                               std::to_string(Limits::kThreadHeadroom) + " spare, and the process could create only " +
                                               std::to_string(created.size()) + " more (process or container thread limit); lower instance_count or intra_op_thread_count");
}

}  // namespace tw
