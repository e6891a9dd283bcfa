#include "loader.hpp"

#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace tw {
namespace {

struct LoaderQueue {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> tasks;
};

LoaderQueue& Queue() {
  // Leaked on purpose, and its thread detached: it lives as long as the process.
  static LoaderQueue* queue = [] {
    auto* q = new LoaderQueue();
    std::thread([q] {
      // Loads are throughput work: a lower priority keeps them from taking the core the event
      // loop and the executors need while a model loads beside serving ones.
      pthread_setname_np(pthread_self(), "tw-loader");
      setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 5);
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(q->mutex);
          q->wake.wait(lock, [q] { return !q->tasks.empty(); });
          task = std::move(q->tasks.front());
          q->tasks.pop_front();
        }
        task();
        // An unload frees large blocks (weights, slots); give the pages back to the OS.
        malloc_trim(0);
      }
    }).detach();
    return q;
  }();
  return *queue;
}

}  // namespace

void PostToLoader(std::function<void()> task) {
  LoaderQueue& q = Queue();
  {
    std::lock_guard<std::mutex> lock(q.mutex);
    q.tasks.push_back(std::move(task));
  }
  q.wake.notify_one();
}

}  // namespace tw
