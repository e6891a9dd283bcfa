#include "model_options.hpp"

#include "errors.hpp"
#include "limits.hpp"

namespace tw {
namespace {

int IntOption(Napi::Env env, Napi::Object js, const char* key, int fallback, int min, int max) {
  Napi::Value v = js.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsNumber()) throw ToJsError(env, "INVALID_INPUT", std::string("load option ") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<int>(d) || d < min || d > max)
    throw ToJsError(env, "INVALID_INPUT",
                    std::string("load option ") + key + " must be an integer in [" + std::to_string(min) + ", " +
                        std::to_string(max) + "], got " + std::to_string(d));
  return static_cast<int>(d);
}

/** The name messages use for the model: the caller's displayName, else the file's base name (never an absolute path). */
std::string DisplayName(const std::string& path, Napi::Object js) {
  Napi::Value v = js.Get("displayName");
  if (v.IsString()) return v.As<Napi::String>().Utf8Value().substr(0, 256);
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

ModelOptions ParseModelOptions(Napi::Env env, const std::string& path, Napi::Object js) {
  ModelOptions o;
  o.path = path;
  o.display_name = DisplayName(path, js);
  o.instances = IntOption(env, js, "instances", 1, 1, Limits::kMaxInstances);
  o.slots_per_instance = IntOption(env, js, "slotsPerInstance", 2, Limits::kMinSlotsPerInstance, Limits::kMaxSlotsPerInstance);
  o.intra_op_threads = IntOption(env, js, "intraOpThreads", 1, 0, Limits::kMaxIntraOpThreads);
  o.inter_op_threads = IntOption(env, js, "interOpThreads", 1, 0, Limits::kMaxInterOpThreads);
  o.max_batch_size = IntOption(env, js, "maxBatchSize", 64, 0, Limits::kMaxBatchSize);
  o.device_id = IntOption(env, js, "deviceId", 0, 0, Limits::kMaxDeviceId);
  Napi::Value max_output = js.Get("maxOutputBytes");
  if (!max_output.IsUndefined() && !max_output.IsNull()) {
    double d = max_output.IsNumber() ? max_output.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1 && d <= Limits::kMaxOutputBytesCeiling) || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw ToJsError(env, "INVALID_INPUT", "load option maxOutputBytes must be an integer in [1, " +
                                                std::to_string(static_cast<uint64_t>(Limits::kMaxOutputBytesCeiling)) + "]");
    o.max_output_bytes = static_cast<size_t>(d);
  }

  Napi::Value level = js.Get("graphOptimizationLevel");
  if (level.IsString()) {
    std::string s = level.As<Napi::String>();
    if (s == "disabled") o.optimization = ORT_DISABLE_ALL;
    else if (s == "basic") o.optimization = ORT_ENABLE_BASIC;
    else if (s == "extended") o.optimization = ORT_ENABLE_EXTENDED;
    else if (s == "all") o.optimization = ORT_ENABLE_ALL;
    else throw ToJsError(env, "INVALID_INPUT", "graphOptimizationLevel must be disabled|basic|extended|all, got " + s);
  }

  Napi::Value provider = js.Get("provider");
  if (provider.IsString()) {
    std::string p = provider.As<Napi::String>();
    if (p == "cpu") o.provider = Provider::kCpu;
    else if (p == "cuda") o.provider = Provider::kCuda;
    else if (p == "tensorrt") o.provider = Provider::kTensorRt;
    else throw ToJsError(env, "INVALID_INPUT", "provider must be cpu|cuda|tensorrt, got " + p);
  }
  // Provider options arrive already translated to ORT's keys by lib/engine (one place knows the names).
  Napi::Value popts = js.Get("providerOptions");
  if (popts.IsObject()) {
    Napi::Object obj = popts.As<Napi::Object>();
    Napi::Array keys = obj.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      std::string k = keys.Get(i).As<Napi::String>();
      o.provider_options.emplace_back(k, obj.Get(k).ToString().Utf8Value());
    }
  }
  return o;
}

}  // namespace tw
