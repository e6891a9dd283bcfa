// NativeModel: the JS object of a loaded model version (lib/engine/ wraps it with types).
// It owns the instances, exposes the slots' host buffers as external ArrayBuffers, submits
// batches and turns completions into promise settlements on the JS thread.
#pragma once
#include <napi.h>

#include <memory>
#include <set>
#include <vector>

#include "instance.hpp"

namespace tw {

/** State shared with executor threads: how completions reach the JS thread. */
struct ModelShared {
  Napi::ThreadSafeFunction tsfn;
  class NativeModel* model = nullptr;  // set and read on the JS thread only
};

/** What the loader thread hands back to the JS thread. */
struct LoadResult {
  ModelOptions options;
  std::shared_ptr<ModelShared> shared;
  std::vector<std::unique_ptr<Instance>> instances;
  size_t gpu_bytes = 0;
  /** Bytes of initializers the instances share (0 when each session loaded its own). */
  size_t shared_weight_bytes = 0;
  std::string error_code;
  std::string error_message;
};

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static void Init(Napi::Env env);
  /** JS thread: wraps a successful load. */
  static Napi::Object Create(Napi::Env env, LoadResult* result);
  /** The live models of `env` (this environment's only: the main thread's or one Worker's). */
  static std::shared_ptr<std::set<NativeModel*>> LiveModels(Napi::Env env);
  /** Env teardown: joins the executors of that environment's models so none outlives it. */
  static void ShutdownAll(const std::shared_ptr<std::set<NativeModel*>>& live);

  explicit NativeModel(const Napi::CallbackInfo& info);
  ~NativeModel() override;

  /** JS thread: settles a finished batch's promise (called through the model's thread-safe function). */
  void FinishRun(Napi::Env env, RunJob* job);

 private:
  Napi::Value Metadata(const Napi::CallbackInfo& info);
  Napi::Value InputBuffer(const Napi::CallbackInfo& info);
  Napi::Value OutputBuffer(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Unload(const Napi::CallbackInfo& info);
  Napi::Value Memory(const Napi::CallbackInfo& info);
  Napi::Value TrimSlot(const Napi::CallbackInfo& info);

  Instance& CheckedInstance(Napi::Env env, const Napi::Value& v);
  StagingSlot& CheckedSlot(Napi::Env env, Instance& instance, const Napi::Value& v);
  Napi::ArrayBuffer BufferFor(Napi::Env env, size_t key, HostBuffer& buffer);
  void DetachBuffer(size_t key);
  size_t BufferKey(int instance, int slot, size_t io) const;
  void Retain(Napi::Env env);
  void Release(Napi::Env env);

  ModelOptions options_;
  ModelSignature signature_;
  std::shared_ptr<ModelShared> shared_;
  std::shared_ptr<std::set<NativeModel*>> live_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> buffers_;
  size_t gpu_bytes_ = 0;
  int inflight_ = 0;
  bool unloading_ = false;
};

}  // namespace tw
