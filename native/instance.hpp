// A model instance: one ORT session, its staging slots and its executor thread (and, on CUDA,
// a compute stream plus a copy stream for uploads). Batches run in submission order.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "model_options.hpp"
#include "run_job.hpp"
#include "session_factory.hpp"
#include "staging_slot.hpp"

namespace tw {

class Instance {
 public:
  using Completion = std::function<void(RunJob*)>;

  /** Built on the loader thread: creates streams, the session and the slots, then starts the executor. */
  Instance(const ModelOptions& options, const ModelSignature* signature, Completion complete,
           std::shared_ptr<SharedWeights> shared_weights);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  const ModelSignature& signature() const { return signature_; }
  StagingSlot& slot(int i) { return *slots_[i]; }
  int slot_count() const { return static_cast<int>(slots_.size()); }

  /** JS thread: queues the uploads (CUDA) and the batch. */
  void Submit(RunJob* job);
  /** JS thread: withdraws the slot's queued batch or terminates its running one. */
  bool Cancel(int slot);
  /** Any thread but JS: fails queued batches as cancelled, waits for the running one, joins. */
  void Stop();

  /**
   * JS thread, slot not busy: frees buffers a large batch grew past their load-time size and
   * puts back load-time ones, so one big request does not hold memory until unload. Returns the
   * host buffers replaced, as input indices then output indices (offset by the input count).
   */
  std::vector<size_t> TrimSlot(int slot);

  size_t host_bytes() const;
  size_t device_bytes() const;

 private:
  void AllocateSlots();
  void UploadInputs(RunJob& job);
  void Loop();
  /** Polls briefly for the next job before the executor sleeps (see instance.cpp). */
  void SpinForWork();
  void Execute(RunJob& job);
  void RunCpu(RunJob& job, StagingSlot& slot);
  void RunGpu(RunJob& job, StagingSlot& slot);
  void CopyOrtOutput(RunJob& job, StagingSlot& slot, size_t o, const Ort::Value& value);
  /** Bytes output `o` takes in the slot: its raw data, or the serialized form of a string tensor. */
  size_t OrtOutputBytes(size_t o, const Ort::Value& value) const;
  /**
   * Throws OUTPUT_TOO_LARGE when job.output_bytes (filled for every output so far) add up to
   * more than max_output_bytes. Runs before any output is copied or a buffer grown for it.
   */
  void CheckOutputSize(const RunJob& job) const;

  ModelOptions options_;
  ModelSignature signature_;
  Completion complete_;
  void* compute_stream_ = nullptr;
  void* copy_stream_ = nullptr;
  /** Shared by every instance of the model version; declared before session_ so it outlives it. */
  std::shared_ptr<SharedWeights> shared_weights_;
  std::unique_ptr<Ort::Session> session_;
  std::vector<std::unique_ptr<StagingSlot>> slots_;
  std::vector<const char*> input_names_;
  std::vector<const char*> output_names_;
  Ort::MemoryInfo cpu_info_;
  /**
   * Executor thread only. ORT's CPU arena keeps its peak after a run; a run that grew it (large
   * inputs or outputs) asks ORT to shrink it back, on that run or, for outputs only known
   * afterwards, on the next.
   */
  bool shrink_arena_next_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<RunJob*> queue_;
  /** queue_.size(), readable without the mutex: the executor's brief spin watches it. */
  std::atomic<size_t> queued_{0};
  RunJob* running_ = nullptr;
  bool stopping_ = false;
  std::thread executor_;
};

}  // namespace tw
