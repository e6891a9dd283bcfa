#include "model_options.hpp"

#include "errors.hpp"

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

}  // namespace

ModelOptions ParseModelOptions(Napi::Env env, const std::string& path, Napi::Object js) {
  ModelOptions o;
  o.path = path;
  o.instances = IntOption(env, js, "instances", 1, 1, 64);
  o.slots_per_instance = IntOption(env, js, "slotsPerInstance", 2, 2, 16);
  o.intra_op_threads = IntOption(env, js, "intraOpThreads", 1, 0, 256);
  o.inter_op_threads = IntOption(env, js, "interOpThreads", 1, 0, 256);
  o.max_batch_size = IntOption(env, js, "maxBatchSize", 64, 0, 1 << 20);
  o.device_id = IntOption(env, js, "deviceId", 0, 0, 64);

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
