#include "native_model.hpp"

#include <set>

#include "cuda_runtime.hpp"
#include "dtype.hpp"
#include "errors.hpp"
#include "loader.hpp"

namespace tw {
namespace {

/**
 * What one Node environment (the main thread, or one worker_threads Worker) holds of the addon:
 * its NativeModel class and its live models. Kept as napi instance data, not process globals,
 * so a Worker that exits takes down only its own models (the Ort::Env and the loader thread
 * are process-wide and outlive every environment).
 */
struct EnvModels {
  Napi::FunctionReference constructor;
  /** Live models of this environment; shared with each model so its destructor can leave it. */
  std::shared_ptr<std::set<NativeModel*>> live = std::make_shared<std::set<NativeModel*>>();
};

Napi::Array ShapeArray(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (size_t d = 0; d < shape.size(); d++) a.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(shape[d])));
  return a;
}

Napi::Array TensorList(Napi::Env env, const std::vector<TensorInfo>& list) {
  Napi::Array a = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", list[i].name);
    t.Set("datatype", KserveName(list[i].type));
    t.Set("shape", ShapeArray(env, list[i].shape));
    a.Set(static_cast<uint32_t>(i), t);
  }
  return a;
}

}  // namespace

void NativeModel::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeModel",
                                    {InstanceMethod("metadata", &NativeModel::Metadata), InstanceMethod("inputBuffer", &NativeModel::InputBuffer),
                                     InstanceMethod("outputBuffer", &NativeModel::OutputBuffer), InstanceMethod("run", &NativeModel::Run),
                                     InstanceMethod("cancel", &NativeModel::Cancel), InstanceMethod("unload", &NativeModel::Unload),
                                     InstanceMethod("memory", &NativeModel::Memory), InstanceMethod("trimSlot", &NativeModel::TrimSlot)});
  auto* models = new EnvModels();
  models->constructor = Napi::Persistent(ctor);
  env.SetInstanceData<EnvModels>(models);  // deleted by Node when this environment ends
}

Napi::Object NativeModel::Create(Napi::Env env, LoadResult* result) {
  return env.GetInstanceData<EnvModels>()->constructor.New({Napi::External<LoadResult>::New(env, result)});
}

std::shared_ptr<std::set<NativeModel*>> NativeModel::LiveModels(Napi::Env env) { return env.GetInstanceData<EnvModels>()->live; }

void NativeModel::ShutdownAll(const std::shared_ptr<std::set<NativeModel*>>& live) {
  for (NativeModel* m : *live) m->instances_.clear();
}

NativeModel::NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) throw ToJsError(env, "INTERNAL", "NativeModel is created by loadModel()");
  LoadResult* r = info[0].As<Napi::External<LoadResult>>().Data();
  options_ = r->options;
  shared_ = r->shared;
  instances_ = std::move(r->instances);
  gpu_bytes_ = r->gpu_bytes;
  signature_ = instances_.front()->signature();
  buffers_.resize(instances_.size() * options_.slots_per_instance * (signature_.inputs.size() + signature_.outputs.size()));
  shared_->model = this;
  // Completions come back through this function; it only keeps the loop alive while batches run.
  shared_->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "tensorwire-run", 0, 1);
  shared_->tsfn.Unref(env);
  Ref();  // a loaded model lives until unload(), whatever JS holds
  live_ = LiveModels(env);
  live_->insert(this);
  info.This().As<Napi::Object>().Set("instanceCount", Napi::Number::New(env, static_cast<double>(instances_.size())));
  info.This().As<Napi::Object>().Set("slotsPerInstance", Napi::Number::New(env, options_.slots_per_instance));
  info.This().As<Napi::Object>().Set("sharedWeightBytes", Napi::Number::New(env, static_cast<double>(r->shared_weight_bytes)));
}

NativeModel::~NativeModel() { live_->erase(this); }

size_t NativeModel::BufferKey(int instance, int slot, size_t io) const {
  return (static_cast<size_t>(instance) * options_.slots_per_instance + slot) * (signature_.inputs.size() + signature_.outputs.size()) + io;
}

Napi::ArrayBuffer NativeModel::BufferFor(Napi::Env env, size_t key, HostBuffer& buffer) {
  Napi::Reference<Napi::ArrayBuffer>& ref = buffers_[key];
  if (!ref.IsEmpty()) {
    Napi::ArrayBuffer existing = ref.Value();
    if (!existing.IsEmpty() && existing.Data() == buffer.data() && existing.ByteLength() == buffer.capacity()) return existing;
    if (!existing.IsEmpty() && existing.Data() != nullptr) existing.Detach();
  }
  // External: JS writes request bytes straight into the slot, no copy. The slot owns the memory;
  // we detach the ArrayBuffer before that memory is ever freed or replaced.
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, buffer.data(), buffer.capacity());
  ref = Napi::Weak(ab);
  return ab;
}

void NativeModel::DetachBuffer(size_t key) {
  Napi::Reference<Napi::ArrayBuffer>& ref = buffers_[key];
  if (ref.IsEmpty()) return;
  Napi::ArrayBuffer ab = ref.Value();
  if (!ab.IsEmpty() && ab.Data() != nullptr) ab.Detach();
  ref.Reset();
}

Instance& NativeModel::CheckedInstance(Napi::Env env, const Napi::Value& v) {
  if (unloading_) throw ToJsError(env, "UNAVAILABLE", "model " + options_.display_name + " is unloading");
  if (!v.IsNumber()) throw ToJsError(env, "INTERNAL", "instance index must be a number");
  int i = v.As<Napi::Number>().Int32Value();
  if (i < 0 || i >= static_cast<int>(instances_.size())) throw ToJsError(env, "INTERNAL", "no instance " + std::to_string(i));
  return *instances_[i];
}

StagingSlot& NativeModel::CheckedSlot(Napi::Env env, Instance& instance, const Napi::Value& v) {
  if (!v.IsNumber()) throw ToJsError(env, "INTERNAL", "slot index must be a number");
  int s = v.As<Napi::Number>().Int32Value();
  if (s < 0 || s >= instance.slot_count()) throw ToJsError(env, "INTERNAL", "no slot " + std::to_string(s));
  return instance.slot(s);
}

Napi::Value NativeModel::Metadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object m = Napi::Object::New(env);
  m.Set("inputs", TensorList(env, signature_.inputs));
  m.Set("outputs", TensorList(env, signature_.outputs));
  m.Set("batchable", signature_.batchable);
  return m;
}

// inputBuffer(instance, slot, input, minBytes): the slot's host buffer for that input, grown to
// hold minBytes. Growing detaches the previous ArrayBuffer. Only while the slot is not running.
Napi::Value NativeModel::InputBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& instance = CheckedInstance(env, info[0]);
  StagingSlot& slot = CheckedSlot(env, instance, info[1]);
  size_t i = info[2].As<Napi::Number>().Uint32Value();
  if (i >= slot.inputs.size()) throw ToJsError(env, "INTERNAL", "no input " + std::to_string(i));
  size_t min_bytes = static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue());
  size_t key = BufferKey(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), i);
  if (min_bytes > slot.inputs[i].capacity()) {
    if (slot.busy) throw ToJsError(env, "INTERNAL", "cannot grow the input buffer of a running slot");
    DetachBuffer(key);
    size_t grown = slot.inputs[i].capacity() + slot.inputs[i].capacity() / 2;
    try {
      slot.inputs[i].Allocate(min_bytes > grown ? min_bytes : grown, options_.on_gpu());
    } catch (const EngineError& e) {
      throw ToJsError(env, e.code(), e.what());
    }
  }
  return BufferFor(env, key, slot.inputs[i]);
}

Napi::Value NativeModel::OutputBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& instance = CheckedInstance(env, info[0]);
  StagingSlot& slot = CheckedSlot(env, instance, info[1]);
  size_t o = info[2].As<Napi::Number>().Uint32Value();
  if (o >= slot.outputs.size()) throw ToJsError(env, "INTERNAL", "no output " + std::to_string(o));
  size_t key = BufferKey(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(), signature_.inputs.size() + o);
  return BufferFor(env, key, slot.outputs[o]);
}

void NativeModel::Retain(Napi::Env env) {
  if (inflight_++ == 0) shared_->tsfn.Ref(env);
}

void NativeModel::Release(Napi::Env env) {
  if (--inflight_ == 0) shared_->tsfn.Unref(env);
}

// run(instance, slot, shapes): runs the batch whose inputs were written into the slot.
// Resolves with {shapes, bytes, timing: [inputUs, inferUs, outputUs]}; outputs are read
// with outputBuffer() until the slot is used again.
Napi::Value NativeModel::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Instance& instance = CheckedInstance(env, info[0]);
  StagingSlot& slot = CheckedSlot(env, instance, info[1]);
  if (slot.busy) throw ToJsError(env, "INTERNAL", "slot is already running a batch");
  if (!info[2].IsArray()) throw ToJsError(env, "INTERNAL", "shapes must be an array");
  Napi::Array shapes = info[2].As<Napi::Array>();
  if (shapes.Length() != signature_.inputs.size())
    throw ToJsError(env, "INVALID_INPUT", "expected " + std::to_string(signature_.inputs.size()) + " input shapes, got " + std::to_string(shapes.Length()));
  auto* job = new RunJob(env, info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
  job->shapes.resize(shapes.Length());
  for (uint32_t i = 0; i < shapes.Length(); i++) {
    Napi::Array s = shapes.Get(i).As<Napi::Array>();
    const TensorInfo& t = signature_.inputs[i];
    size_t elements = 1;
    for (uint32_t d = 0; d < s.Length(); d++) {
      int64_t v = static_cast<int64_t>(s.Get(d).As<Napi::Number>().DoubleValue());
      job->shapes[i].push_back(v);
      elements *= v < 0 ? 0 : static_cast<size_t>(v);
    }
    if (job->shapes[i].size() != t.shape.size() || elements * t.element_size > slot.inputs[i].capacity()) {
      delete job;
      throw ToJsError(env, "INVALID_INPUT", "input '" + t.name + "': shape does not match the model's rank or the staged bytes");
    }
  }
  if (options_.on_gpu()) job->run_options.AddConfigEntry("disable_synchronize_execution_providers", "1");
  Napi::Promise promise = job->deferred.Promise();
  slot.busy = true;
  Retain(env);
  try {
    instance.Submit(job);
  } catch (const EngineError& e) {
    slot.busy = false;
    Release(env);
    job->deferred.Reject(ToJsError(env, e.code(), e.what()).Value());
    delete job;
  }
  return promise;
}

// trimSlot(instance, slot): called by JS when a slot is released; frees oversized buffers.
Napi::Value NativeModel::TrimSlot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (unloading_) return env.Undefined();
  Instance& instance = CheckedInstance(env, info[0]);
  StagingSlot& slot = CheckedSlot(env, instance, info[1]);
  if (slot.busy) return env.Undefined();
  const int i = info[0].As<Napi::Number>().Int32Value(), s = info[1].As<Napi::Number>().Int32Value();
  // The old memory is freed inside TrimSlot and its ArrayBuffer detached right after: no JS runs
  // in between (both on this thread), so no view ever reads freed memory.
  try {
    for (size_t io : instance.TrimSlot(s)) DetachBuffer(BufferKey(i, s, io));
  } catch (const EngineError& e) {
    throw ToJsError(env, e.code(), e.what());
  }
  return env.Undefined();
}

Napi::Value NativeModel::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (unloading_) return Napi::Boolean::New(env, false);
  Instance& instance = CheckedInstance(env, info[0]);
  return Napi::Boolean::New(env, instance.Cancel(info[1].As<Napi::Number>().Int32Value()));
}

void NativeModel::FinishRun(Napi::Env env, RunJob* job) {
  Napi::HandleScope scope(env);
  Release(env);
  if (unloading_) {
    // Buffers are detached and instances may be gone: report the outcome without touching slots.
    if (job->ok) job->deferred.Reject(ToJsError(env, "CANCELLED", "model " + options_.display_name + " was unloaded").Value());
    else job->deferred.Reject(ToJsError(env, job->error_code, job->error_message).Value());
    delete job;
    return;
  }
  StagingSlot& slot = instances_[job->instance]->slot(job->slot);
  for (size_t o = 0; o < slot.output_replaced.size(); o++)
    if (slot.output_replaced[o]) DetachBuffer(BufferKey(job->instance, job->slot, signature_.inputs.size() + o));
  slot.retired.clear();
  slot.busy = false;
  if (!job->ok) {
    job->deferred.Reject(ToJsError(env, job->error_code, job->error_message).Value());
    delete job;
    return;
  }
  Napi::Object result = Napi::Object::New(env);
  Napi::Array shapes = Napi::Array::New(env, job->output_shapes.size());
  Napi::Array bytes = Napi::Array::New(env, job->output_bytes.size());
  for (size_t o = 0; o < job->output_shapes.size(); o++) {
    shapes.Set(static_cast<uint32_t>(o), ShapeArray(env, job->output_shapes[o]));
    bytes.Set(static_cast<uint32_t>(o), Napi::Number::New(env, static_cast<double>(job->output_bytes[o])));
  }
  Napi::Array timing = Napi::Array::New(env, 3);
  timing.Set(0u, job->input_us);
  timing.Set(1u, job->infer_us);
  timing.Set(2u, job->output_us);
  result.Set("shapes", shapes);
  result.Set("bytes", bytes);
  result.Set("timing", timing);
  job->deferred.Resolve(result);
  delete job;
}

Napi::Value NativeModel::Unload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  if (unloading_) {
    deferred.Reject(ToJsError(env, "UNAVAILABLE", "model " + options_.display_name + " is already unloading").Value());
    return deferred.Promise();
  }
  unloading_ = true;
  for (size_t k = 0; k < buffers_.size(); k++) DetachBuffer(k);
  Retain(env);
  auto* instances = new std::vector<std::unique_ptr<Instance>>(std::move(instances_));
  instances_.clear();
  std::shared_ptr<ModelShared> shared = shared_;
  auto* pending = new Napi::Promise::Deferred(deferred);
  PostToLoader([instances, shared, pending] {
    delete instances;  // stops executors (queued batches fail as cancelled), frees sessions and buffers
    shared->tsfn.BlockingCall(pending, [](Napi::Env env, Napi::Function, Napi::Promise::Deferred* d) {
      d->Resolve(env.Undefined());
      delete d;
    });
    shared->tsfn.BlockingCall(static_cast<Napi::Promise::Deferred*>(nullptr), [shared](Napi::Env env, Napi::Function, Napi::Promise::Deferred*) {
      NativeModel* self = shared->model;
      if (self == nullptr) return;
      self->Release(env);
      shared->model = nullptr;
      shared->tsfn.Release();
      self->Unref();  // JS may now collect the wrapper
    });
  });
  return deferred.Promise();
}

Napi::Value NativeModel::Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t host = 0, device = 0;
  for (const auto& instance : instances_) {
    host += instance->host_bytes();
    device += instance->device_bytes();
  }
  Napi::Object m = Napi::Object::New(env);
  m.Set("host", Napi::Number::New(env, static_cast<double>(host)));
  m.Set("gpu", Napi::Number::New(env, static_cast<double>(unloading_ ? 0 : device + gpu_bytes_)));
  return m;
}

}  // namespace tw
