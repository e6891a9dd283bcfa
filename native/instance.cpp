#include "instance.hpp"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "cuda_runtime.hpp"
#include "dtype.hpp"
#include "errors.hpp"
#include "string_tensor.hpp"

namespace {
/** Runs whose inputs or outputs exceed this leave ORT's CPU arena shrunk (see RunCpu). */
constexpr size_t kArenaShrinkBytes = 8u << 20;
}  // namespace

namespace tw {
namespace {

using Clock = std::chrono::steady_clock;

/** How long the executor polls for the next job before it sleeps (SpinForWork). */
constexpr int kSpinMicros = 100;

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

size_t Elements(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

/** Serialized bytes a slot reserves per string element up front: the prefix and a short string. */
constexpr size_t kStringInitialBytes = kStringPrefixBytes + 12;

/** Bytes a slot reserves up front for a tensor: max_batch rows when batchable, unknown dims count 1. */
size_t InitialBytes(const TensorInfo& t, bool batchable, int max_batch) {
  size_t n = 1;
  for (size_t d = 0; d < t.shape.size(); d++) {
    int64_t v = t.shape[d];
    if (d == 0 && batchable) v = max_batch > 0 ? max_batch : 1;
    if (v < 0) v = 1;
    n *= static_cast<size_t>(v);
  }
  return n * (IsString(t.type) ? kStringInitialBytes : t.element_size);
}

/**
 * The output's shape for this batch when the model fixes it (dynamic batch dim = batch), else
 * false. Always false for strings: their bytes are known only after the run.
 */
bool KnownOutputShape(const TensorInfo& t, bool batchable, int64_t batch, std::vector<int64_t>& shape) {
  shape = t.shape;
  if (IsString(t.type)) return false;
  if (batchable && !shape.empty()) shape[0] = batch;
  for (int64_t d : shape)
    if (d < 0) return false;
  return true;
}

void EnsureDevice(DeviceBuffer& buffer, size_t bytes) {
  if (buffer.capacity >= bytes) return;
  const TwCudaApi& cuda = Cuda();
  if (buffer.ptr != nullptr) cuda.device_free(buffer.ptr);
  buffer.ptr = nullptr;
  buffer.capacity = 0;
  size_t want = bytes < 256 ? 256 : bytes;
  CheckCuda(cuda.device_alloc(&buffer.ptr, want), "cudaMalloc of a staging slot's device buffer");
  buffer.capacity = want;
}

}  // namespace

Instance::Instance(const ModelOptions& options, const ModelSignature* signature, Completion complete,
                   std::shared_ptr<SharedWeights> shared_weights)
    : options_(options), complete_(std::move(complete)), shared_weights_(std::move(shared_weights)), cpu_info_(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault)) {
  if (options_.on_gpu()) {
    const TwCudaApi& cuda = Cuda();
    CheckCuda(cuda.set_device(options_.device_id), "cudaSetDevice", "PROVIDER_UNAVAILABLE");
    CheckCuda(cuda.stream_create(&compute_stream_), "cudaStreamCreate");
    CheckCuda(cuda.stream_create(&copy_stream_), "cudaStreamCreate");
  }
  session_ = CreateSession(options_, compute_stream_, shared_weights_.get());
  signature_ = signature != nullptr ? *signature : ReadSignature(*session_, options_.display_name);
  for (const auto& t : signature_.inputs) input_names_.push_back(t.name.c_str());
  for (const auto& t : signature_.outputs) output_names_.push_back(t.name.c_str());
  AllocateSlots();
  executor_ = std::thread([this] { Loop(); });
}

Instance::~Instance() {
  Stop();
  session_.reset();
  const TwCudaApi* cuda = CudaIfLoaded();
  for (auto& slot : slots_) {
    if (cuda == nullptr) break;
    for (auto* list : {&slot->device_inputs, &slot->device_outputs})
      for (auto& b : *list)
        if (b.ptr != nullptr) cuda->device_free(b.ptr);
    if (slot->upload_event != nullptr) cuda->event_destroy(slot->upload_event);
  }
  slots_.clear();  // host buffers free themselves (pinned ones through cudaFreeHost)
  if (cuda != nullptr) {
    if (compute_stream_ != nullptr) cuda->stream_destroy(compute_stream_);
    if (copy_stream_ != nullptr) cuda->stream_destroy(copy_stream_);
  }
}

void Instance::AllocateSlots() {
  const bool pinned = options_.on_gpu();
  for (int s = 0; s < options_.slots_per_instance; s++) {
    auto slot = std::make_unique<StagingSlot>();
    for (const auto& t : signature_.inputs) slot->inputs.emplace_back(InitialBytes(t, signature_.batchable, options_.max_batch_size), pinned);
    for (const auto& t : signature_.outputs) slot->outputs.emplace_back(InitialBytes(t, signature_.batchable, options_.max_batch_size), pinned);
    slot->output_replaced.assign(signature_.outputs.size(), 0);
    if (pinned) {
      const TwCudaApi& cuda = Cuda();
      slot->device_inputs.resize(signature_.inputs.size());
      slot->device_outputs.resize(signature_.outputs.size());
      for (size_t i = 0; i < slot->inputs.size(); i++) EnsureDevice(slot->device_inputs[i], slot->inputs[i].capacity());
      for (size_t o = 0; o < slot->outputs.size(); o++) EnsureDevice(slot->device_outputs[o], slot->outputs[o].capacity());
      CheckCuda(cuda.event_create(&slot->upload_event), "cudaEventCreate");
    }
    slots_.push_back(std::move(slot));
  }
}

void Instance::Submit(RunJob* job) {
  UploadInputs(*job);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(job);
    queued_.store(queue_.size(), std::memory_order_release);
  }
  wake_.notify_one();
}

// On CUDA the upload is queued here, on the JS thread, on the copy stream: it is asynchronous
// (pinned memory), so it overlaps the batch the executor is running on the compute stream.
void Instance::UploadInputs(RunJob& job) {
  if (!options_.on_gpu()) return;
  const TwCudaApi& cuda = Cuda();
  StagingSlot& slot = *slots_[job.slot];
  CheckCuda(cuda.set_device(options_.device_id), "cudaSetDevice");
  for (size_t i = 0; i < signature_.inputs.size(); i++) {
    if (IsString(signature_.inputs[i].type)) continue;  // string tensors stay on the host (RunGpu)
    size_t bytes = Elements(job.shapes[i]) * signature_.inputs[i].element_size;
    EnsureDevice(slot.device_inputs[i], bytes);
    CheckCuda(cuda.copy_h2d_async(slot.device_inputs[i].ptr, slot.inputs[i].data(), bytes, copy_stream_), "cudaMemcpyAsync H2D");
  }
  CheckCuda(cuda.event_record(slot.upload_event, copy_stream_), "cudaEventRecord");
}

bool Instance::Cancel(int slot) {
  RunJob* withdrawn = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if ((*it)->slot == slot) {
        withdrawn = *it;
        queue_.erase(it);
        break;
      }
    }
    if (withdrawn == nullptr && running_ != nullptr && running_->slot == slot) {
      running_->cancelled = true;
      running_->run_options.SetTerminate();
      return true;
    }
  }
  if (withdrawn == nullptr) return false;
  withdrawn->error_code = "CANCELLED";
  withdrawn->error_message = "batch was cancelled before it ran";
  complete_(withdrawn);
  return true;
}

void Instance::Stop() {
  std::deque<RunJob*> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !executor_.joinable()) return;
    stopping_ = true;
    dropped.swap(queue_);
  }
  wake_.notify_all();
  for (RunJob* job : dropped) {
    job->error_code = "CANCELLED";
    job->error_message = "model was unloaded before the batch ran";
    complete_(job);
  }
  if (executor_.joinable()) executor_.join();
}

void Instance::Loop() {
  pthread_setname_np(pthread_self(), "tw-executor");
  if (options_.on_gpu()) Cuda().set_device(options_.device_id);
  for (;;) {
    RunJob* job = nullptr;
    SpinForWork();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = queue_.front();
      queue_.pop_front();
      queued_.store(queue_.size(), std::memory_order_relaxed);
      running_ = job;
    }
    Execute(*job);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      running_ = nullptr;
    }
    complete_(job);
  }
}

// A caller that waits on each batch (one slot in flight) submits its next one a few tens of
// µs after a completion: the time for the completion to reach JS and JS to stage the next.
// Sleeping on the condition variable in between would add a thread wake-up (futex, tens of µs
// on a VM) to every batch, which onnxruntime-node, running on the caller's thread, never pays.
// So after a batch the executor polls for the next one for up to kSpinMicros before it sleeps
// (bench/engine: the per-batch cost outside Run fell from 35-40 to 17-30 µs at batch 1). Under
// load the next batch is usually queued already and this returns at once; an idle model
// costs one such spin per batch, not a spinning core.
void Instance::SpinForWork() {
  if (queued_.load(std::memory_order_acquire) > 0) return;
  const auto until = Clock::now() + std::chrono::microseconds(kSpinMicros);
  while (queued_.load(std::memory_order_acquire) == 0 && Clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

void Instance::Execute(RunJob& job) {
  StagingSlot& slot = *slots_[job.slot];
  job.output_shapes.assign(signature_.outputs.size(), {});
  job.output_bytes.assign(signature_.outputs.size(), 0);
  std::fill(slot.output_replaced.begin(), slot.output_replaced.end(), 0);
  try {
    if (options_.on_gpu()) RunGpu(job, slot);
    else RunCpu(job, slot);
    job.ok = true;
  } catch (const Ort::Exception& e) {
    if (job.cancelled) {
      job.error_code = "CANCELLED";
      job.error_message = "batch was cancelled while running";
    } else {
      job.error_code = "ENGINE_FAILURE";
      job.error_message = std::string("ONNX Runtime failed to run ") + options_.display_name + ": " + e.what();
    }
  } catch (const EngineError& e) {
    job.error_code = e.code();
    job.error_message = e.what();
  } catch (const std::exception& e) {
    job.error_code = "ENGINE_FAILURE";
    job.error_message = e.what();
  }
}

void Instance::RunCpu(RunJob& job, StagingSlot& slot) {
  auto t0 = Clock::now();
  const size_t n_in = signature_.inputs.size(), n_out = signature_.outputs.size();
  std::vector<Ort::Value> inputs;
  inputs.reserve(n_in);
  for (size_t i = 0; i < n_in; i++) {
    const auto& shape = job.shapes[i];
    if (IsString(signature_.inputs[i].type)) {
      inputs.push_back(StringTensorFromSerialized(signature_.inputs[i].name, slot.inputs[i].data(), slot.inputs[i].capacity(), shape));
      continue;
    }
    size_t bytes = Elements(shape) * signature_.inputs[i].element_size;
    if (bytes > slot.inputs[i].capacity())
      throw EngineError("INVALID_INPUT", "input '" + signature_.inputs[i].name + "' needs " + std::to_string(bytes) +
                                             " bytes but its staging buffer holds " + std::to_string(slot.inputs[i].capacity()));
    inputs.push_back(Ort::Value::CreateTensor(cpu_info_, slot.inputs[i].data(), bytes, shape.data(), shape.size(), signature_.inputs[i].type));
  }
  const int64_t batch = signature_.batchable ? job.shapes[0][0] : 1;
  std::vector<Ort::Value> outputs;
  outputs.reserve(n_out);
  std::vector<uint8_t> preallocated(n_out, 0);
  for (size_t o = 0; o < n_out; o++) {
    std::vector<int64_t> shape;
    const auto& t = signature_.outputs[o];
    if (KnownOutputShape(t, signature_.batchable, batch, shape) && Elements(shape) * t.element_size <= slot.outputs[o].capacity()) {
      // ORT writes straight into the slot: no copy after the run.
      size_t bytes = Elements(shape) * t.element_size;
      outputs.push_back(Ort::Value::CreateTensor(cpu_info_, slot.outputs[o].data(), bytes, shape.data(), shape.size(), t.type));
      job.output_shapes[o] = shape;
      job.output_bytes[o] = bytes;
      preallocated[o] = 1;
    } else {
      outputs.emplace_back(nullptr);
    }
  }
  // The arena is kept (a malloc per intermediate tensor costs small batches ~25% of their CPU)
  // but never left at the peak of a large run: shrink on this run when its inputs are large,
  // or on the next when the last one's outputs were.
  size_t input_bytes = 0;
  for (size_t i = 0; i < n_in; i++) input_bytes += Elements(job.shapes[i]) * signature_.inputs[i].element_size;
  if (shrink_arena_next_ || input_bytes > kArenaShrinkBytes) {
    job.run_options.AddConfigEntry("memory.enable_memory_arena_shrinkage", "cpu:0");
    shrink_arena_next_ = false;
  }
  auto t1 = Clock::now();
  session_->Run(job.run_options, input_names_.data(), inputs.data(), n_in, output_names_.data(), outputs.data(), n_out);
  auto t2 = Clock::now();
  size_t output_bytes = 0;
  for (size_t o = 0; o < n_out; o++) {
    if (!preallocated[o]) {
      job.output_shapes[o] = outputs[o].GetTensorTypeAndShapeInfo().GetShape();
      job.output_bytes[o] = OrtOutputBytes(o, outputs[o]);
    }
    output_bytes += job.output_bytes[o];
  }
  if (output_bytes > kArenaShrinkBytes) shrink_arena_next_ = true;
  CheckOutputSize(job);
  for (size_t o = 0; o < n_out; o++)
    if (!preallocated[o]) CopyOrtOutput(job, slot, o, outputs[o]);
  auto t3 = Clock::now();
  job.input_us = Micros(t0, t1);
  job.infer_us = Micros(t1, t2);
  job.output_us = Micros(t2, t3);
}

void Instance::RunGpu(RunJob& job, StagingSlot& slot) {
  const TwCudaApi& cuda = Cuda();
  auto t0 = Clock::now();
  const size_t n_in = signature_.inputs.size(), n_out = signature_.outputs.size();
  CheckCuda(cuda.stream_wait_event(compute_stream_, slot.upload_event), "cudaStreamWaitEvent");
  Ort::MemoryInfo device_info("Cuda", OrtDeviceAllocator, options_.device_id, OrtMemTypeDefault);
  Ort::IoBinding binding(*session_);
  std::vector<Ort::Value> bound;
  bound.reserve(n_in + n_out);
  for (size_t i = 0; i < n_in; i++) {
    const auto& shape = job.shapes[i];
    if (IsString(signature_.inputs[i].type)) {
      // No provider keeps strings on the device: ORT runs string nodes on the CPU from a host tensor.
      bound.push_back(StringTensorFromSerialized(signature_.inputs[i].name, slot.inputs[i].data(), slot.inputs[i].capacity(), shape));
      binding.BindInput(input_names_[i], bound.back());
      continue;
    }
    size_t bytes = Elements(shape) * signature_.inputs[i].element_size;
    bound.push_back(Ort::Value::CreateTensor(device_info, slot.device_inputs[i].ptr, bytes, shape.data(), shape.size(), signature_.inputs[i].type));
    binding.BindInput(input_names_[i], bound.back());
  }
  const int64_t batch = signature_.batchable ? job.shapes[0][0] : 1;
  std::vector<uint8_t> on_device(n_out, 0);
  for (size_t o = 0; o < n_out; o++) {
    std::vector<int64_t> shape;
    const auto& t = signature_.outputs[o];
    if (KnownOutputShape(t, signature_.batchable, batch, shape)) {
      size_t bytes = Elements(shape) * t.element_size;
      if (bytes > options_.max_output_bytes) {
        job.output_shapes[o] = shape;
        job.output_bytes[o] = bytes;
        CheckOutputSize(job);
      }
      EnsureDevice(slot.device_outputs[o], bytes);
      if (bytes > slot.outputs[o].capacity()) {
        slot.retired.push_back(std::move(slot.outputs[o]));
        slot.outputs[o] = HostBuffer(bytes + bytes / 2, true);
        slot.output_replaced[o] = 1;
      }
      bound.push_back(Ort::Value::CreateTensor(device_info, slot.device_outputs[o].ptr, bytes, shape.data(), shape.size(), t.type));
      binding.BindOutput(output_names_[o], bound.back());
      job.output_shapes[o] = shape;
      job.output_bytes[o] = bytes;
      on_device[o] = 1;
    } else {
      binding.BindOutput(output_names_[o], cpu_info_);  // shape known only after the run: ORT allocates on the host
    }
  }
  auto t1 = Clock::now();
  session_->Run(job.run_options, binding);
  auto t2 = Clock::now();
  std::vector<Ort::Value> values;
  if (std::find(on_device.begin(), on_device.end(), 0) != on_device.end()) {
    values = binding.GetOutputValues();
    for (size_t o = 0; o < n_out; o++)
      if (!on_device[o]) {
        job.output_shapes[o] = values[o].GetTensorTypeAndShapeInfo().GetShape();
        job.output_bytes[o] = OrtOutputBytes(o, values[o]);
      }
  }
  CheckOutputSize(job);
  for (size_t o = 0; o < n_out; o++)
    if (on_device[o])
      CheckCuda(cuda.copy_d2h_async(slot.outputs[o].data(), slot.device_outputs[o].ptr, job.output_bytes[o], compute_stream_), "cudaMemcpyAsync D2H");
  CheckCuda(cuda.stream_synchronize(compute_stream_), "cudaStreamSynchronize");
  for (size_t o = 0; o < n_out; o++)
    if (!on_device[o]) CopyOrtOutput(job, slot, o, values[o]);
  auto t3 = Clock::now();
  job.input_us = Micros(t0, t1);
  job.infer_us = Micros(t1, t2);
  job.output_us = Micros(t2, t3);
}

size_t Instance::OrtOutputBytes(size_t o, const Ort::Value& value) const {
  if (IsString(signature_.outputs[o].type)) return SerializedStringBytes(value);
  return value.GetTensorTypeAndShapeInfo().GetElementCount() * signature_.outputs[o].element_size;
}

// Runs after CheckOutputSize: the buffer grown here is bounded by max_output_bytes.
void Instance::CopyOrtOutput(RunJob& job, StagingSlot& slot, size_t o, const Ort::Value& value) {
  auto info = value.GetTensorTypeAndShapeInfo();
  std::vector<int64_t> shape = info.GetShape();
  const bool is_string = IsString(signature_.outputs[o].type);
  size_t bytes = OrtOutputBytes(o, value);
  if (bytes > slot.outputs[o].capacity()) {
    slot.retired.push_back(std::move(slot.outputs[o]));
    slot.outputs[o] = HostBuffer(bytes + bytes / 2, options_.on_gpu());
    slot.output_replaced[o] = 1;
  }
  if (is_string) SerializeStringTensor(value, slot.outputs[o].data());
  else if (bytes > 0) std::memcpy(slot.outputs[o].data(), value.GetTensorRawData(), bytes);
  job.output_shapes[o] = std::move(shape);
  job.output_bytes[o] = bytes;
}

void Instance::CheckOutputSize(const RunJob& job) const {
  size_t total = 0;
  for (size_t o = 0; o < job.output_bytes.size() && o < signature_.outputs.size(); o++) {
    size_t bytes = job.output_bytes[o];
    total += bytes;
    if (total > options_.max_output_bytes) {
      std::string shape;
      for (int64_t d : job.output_shapes[o]) shape += (shape.empty() ? "" : "x") + std::to_string(d);
      throw EngineError("OUTPUT_TOO_LARGE", "output '" + signature_.outputs[o].name + "' of " + options_.display_name + " has shape [" + shape +
                                                "] (" + std::to_string(bytes) + " bytes); the outputs of one batch may hold at most " +
                                                std::to_string(options_.max_output_bytes) + " bytes (maxOutputBytes)");
    }
  }
}

std::vector<size_t> Instance::TrimSlot(int s) {
  StagingSlot& slot = *slots_[s];
  std::vector<size_t> replaced;
  const bool pinned = options_.on_gpu();
  // A buffer is "oversized" past twice its load-time size: growth by one normal batch stays.
  auto trim = [&](HostBuffer& buffer, const TensorInfo& t, size_t index) {
    const size_t normal = InitialBytes(t, signature_.batchable, options_.max_batch_size);
    if (buffer.capacity() <= 2 * normal + 64) return;
    buffer.Allocate(normal, pinned);
    replaced.push_back(index);
  };
  for (size_t i = 0; i < slot.inputs.size(); i++) trim(slot.inputs[i], signature_.inputs[i], i);
  for (size_t o = 0; o < slot.outputs.size(); o++) trim(slot.outputs[o], signature_.outputs[o], slot.inputs.size() + o);
  if (const TwCudaApi* cuda = pinned ? CudaIfLoaded() : nullptr) {
    auto trim_device = [&](DeviceBuffer& buffer, const TensorInfo& t) {
      const size_t normal = InitialBytes(t, signature_.batchable, options_.max_batch_size);
      if (buffer.capacity <= 2 * normal + 256) return;
      cuda->device_free(buffer.ptr);
      buffer.ptr = nullptr;
      buffer.capacity = 0;
      EnsureDevice(buffer, normal);
    };
    for (size_t i = 0; i < slot.device_inputs.size(); i++) trim_device(slot.device_inputs[i], signature_.inputs[i]);
    for (size_t o = 0; o < slot.device_outputs.size(); o++) trim_device(slot.device_outputs[o], signature_.outputs[o]);
  }
  return replaced;
}

size_t Instance::host_bytes() const {
  size_t n = 0;
  for (const auto& slot : slots_) {
    for (const auto& b : slot->inputs) n += b.capacity();
    for (const auto& b : slot->outputs) n += b.capacity();
  }
  return n;
}

size_t Instance::device_bytes() const {
  size_t n = 0;
  for (const auto& slot : slots_) {
    for (const auto& b : slot->device_inputs) n += b.capacity;
    for (const auto& b : slot->device_outputs) n += b.capacity;
  }
  return n;
}

}  // namespace tw
