// Module entry: loadModel() and engine-wide queries. Loads run on the loader thread; the JS
// thread only parses options and, on completion, wraps the result.
#include <napi.h>
#include <sys/stat.h>

#include "cuda_runtime.hpp"
#include "errors.hpp"
#include "limits.hpp"
#include "load_budget.hpp"
#include "host_buffer.hpp"
#include "loader.hpp"
#include "native_model.hpp"
#include "nvml.hpp"
#include "ort_env.hpp"
#include "shm_region.hpp"
#include "thread_budget.hpp"

namespace tw {
namespace {

size_t GpuFreeBytes(const ModelOptions& options) {
  if (!options.on_gpu()) return 0;
  size_t free_bytes = 0, total = 0;
  const TwCudaApi& cuda = Cuda();
  cuda.set_device(options.device_id);
  if (cuda.mem_get_info(&free_bytes, &total) != 0) return 0;
  return free_bytes;
}

void LoadOnLoaderThread(LoadResult* result) {
  try {
    CheckProviderAvailable(result->options.provider);
    CheckMemoryBudget(result->options);
    CheckThreadBudget(ThreadsNeeded(result->options) + Limits::kThreadHeadroom, result->options.display_name);
    // One per model version: its instances share their weights (see session_factory.hpp).
    std::shared_ptr<SharedWeights> shared_weights = PrepareSharedWeights(result->options);
    if (shared_weights->initializers) result->shared_weight_bytes = shared_weights->initializers->bytes();
    const size_t free_before = GpuFreeBytes(result->options);
    std::shared_ptr<ModelShared> shared = result->shared;
    Instance::Completion complete = [shared](RunJob* job) {
      shared->tsfn.NonBlockingCall(job, [shared](Napi::Env env, Napi::Function, RunJob* j) {
        if (shared->model != nullptr) {
          shared->model->FinishRun(env, j);
        } else {
          j->deferred.Reject(ToJsError(env, "CANCELLED", "model was unloaded").Value());
          delete j;
        }
      });
    };
    for (int k = 0; k < result->options.instances; k++) {
      const ModelSignature* first = k == 0 ? nullptr : &result->instances.front()->signature();
      result->instances.push_back(std::make_unique<Instance>(result->options, first, complete, shared_weights));
    }
    const size_t free_after = GpuFreeBytes(result->options);
    result->gpu_bytes = free_before > free_after ? free_before - free_after : 0;
  } catch (const EngineError& e) {
    result->instances.clear();
    result->error_code = e.code();
    result->error_message = e.what();
  } catch (const Ort::Exception& e) {
    result->instances.clear();
    result->error_code = "MODEL_LOAD_FAILED";
    result->error_message = "cannot load model " + result->options.display_name + ": " + e.what();
  } catch (const std::exception& e) {  // std::system_error when a thread cannot be created, std::bad_alloc
    result->instances.clear();
    result->error_code = "MODEL_LOAD_FAILED";
    result->error_message = "cannot load model " + result->options.display_name + ": " + e.what();
  }
}

// loadModel(path, options): Promise<NativeModel>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw ToJsError(env, "INVALID_INPUT", "loadModel(path, options): path must be a string");
  std::string path = info[0].As<Napi::String>();
  Napi::Object js = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  auto* result = new LoadResult();
  try {
    result->options = ParseModelOptions(env, path, js);
  } catch (...) {
    delete result;
    throw;
  }
  result->shared = std::make_shared<ModelShared>();
  auto deferred = Napi::Promise::Deferred::New(env);
  auto* pending = new Napi::Promise::Deferred(deferred);
  auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "tensorwire-load", 0, 1);
  auto load = [result, pending, tsfn]() mutable {
    LoadOnLoaderThread(result);
    tsfn.BlockingCall(result, [pending](Napi::Env env, Napi::Function, LoadResult* r) {
      Napi::HandleScope scope(env);
      if (!r->error_code.empty()) {
        pending->Reject(ToJsError(env, r->error_code, r->error_message).Value());
      } else {
        try {
          pending->Resolve(NativeModel::Create(env, r));
        } catch (const Napi::Error& e) {
          pending->Reject(e.Value());
        }
      }
      delete pending;
      delete r;
    });
    tsfn.Release();
  };
  try {
    PostToLoader(std::move(load));
  } catch (const std::exception& e) {  // the loader thread could not be started (thread limit)
    tsfn.Release();
    delete pending;
    delete result;
    deferred.Reject(ToJsError(env, "MODEL_LOAD_FAILED", std::string("cannot start the model loader thread: ") + e.what()).Value());
  }
  return deferred.Promise();
}

// limits(): the bounds ParseModelOptions enforces, for lib/engine and the config layer to share.
Napi::Value LimitsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxInstances", Limits::kMaxInstances);
  o.Set("minSlotsPerInstance", Limits::kMinSlotsPerInstance);
  o.Set("maxSlotsPerInstance", Limits::kMaxSlotsPerInstance);
  o.Set("maxIntraOpThreads", Limits::kMaxIntraOpThreads);
  o.Set("maxInterOpThreads", Limits::kMaxInterOpThreads);
  o.Set("maxBatchSize", Limits::kMaxBatchSize);
  o.Set("maxDeviceId", Limits::kMaxDeviceId);
  o.Set("defaultMaxOutputBytes", Limits::kDefaultMaxOutputBytes);
  o.Set("maxOutputBytesCeiling", Limits::kMaxOutputBytesCeiling);
  o.Set("threadHeadroom", static_cast<double>(Limits::kThreadHeadroom));
  return o;
}

Napi::Value EngineInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("ortVersion", Ort::GetVersionString());
  o.Set("ortLibraryDirectory", OrtLibraryDirectory());
  struct stat st;
  o.Set("cudaBuilt", stat((AddonDirectory() + "/libtensorwire_cuda.so").c_str(), &st) == 0);
  Napi::Array providers = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& p : Ort::GetAvailableProviders()) providers.Set(i++, p);
  o.Set("availableProviders", providers);
  o.Set("pinnedBytes", Napi::Number::New(env, static_cast<double>(HostMemoryCounters::pinned_bytes())));
  o.Set("alignedBytes", Napi::Number::New(env, static_cast<double>(HostMemoryCounters::aligned_bytes())));
  return o;
}

// cudaMemoryInfo(deviceId): {free, total} of the device, or throws PROVIDER_UNAVAILABLE.
Napi::Value CudaMemoryInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  try {
    const TwCudaApi& cuda = Cuda();
    CheckCuda(cuda.set_device(device), "cudaSetDevice", "PROVIDER_UNAVAILABLE");
    size_t free_bytes = 0, total = 0;
    CheckCuda(cuda.mem_get_info(&free_bytes, &total), "cudaMemGetInfo");
    Napi::Object o = Napi::Object::New(env);
    o.Set("free", Napi::Number::New(env, static_cast<double>(free_bytes)));
    o.Set("total", Napi::Number::New(env, static_cast<double>(total)));
    return o;
  } catch (const EngineError& e) {
    throw ToJsError(env, e.code(), e.what());
  }
}

// gpuStats(): [{index, utilization (0..1), memoryUsed, memoryTotal}], empty without NVML.
Napi::Value GpuStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto stats = ReadGpuStats();
  Napi::Array out = Napi::Array::New(env, stats.size());
  for (size_t i = 0; i < stats.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", stats[i].index);
    o.Set("utilization", stats[i].utilization_percent / 100.0);
    o.Set("memoryUsed", Napi::Number::New(env, static_cast<double>(stats[i].memory_used)));
    o.Set("memoryTotal", Napi::Number::New(env, static_cast<double>(stats[i].memory_total)));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  OrtEnvironment();
  NativeModel::Init(env);
  // Only this environment's models: a Worker that exits must leave the main thread's serving.
  env.AddCleanupHook([live = NativeModel::LiveModels(env)] { NativeModel::ShutdownAll(live); });
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
  exports.Set("limits", Napi::Function::New(env, LimitsJs));
  exports.Set("engineInfo", Napi::Function::New(env, EngineInfo));
  exports.Set("cudaMemoryInfo", Napi::Function::New(env, CudaMemoryInfo));
  exports.Set("gpuStats", Napi::Function::New(env, GpuStatsJs));
  exports.Set("shmMap", Napi::Function::New(env, ShmMap));
  exports.Set("shmRelease", Napi::Function::New(env, ShmRelease));
  exports.Set("shmCheck", Napi::Function::New(env, ShmCheck));
  exports.Set("shmStats", Napi::Function::New(env, ShmStats));
  return exports;
}

}  // namespace tw

static Napi::Object InitTensorwire(Napi::Env env, Napi::Object exports) { return tw::Init(env, exports); }

NODE_API_MODULE(tensorwire, InitTensorwire)
