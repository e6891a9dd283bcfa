// Plain copies of a load's options, read from JS on the JS thread (sharp's rule: no JS object
// is touched off the JS thread).
#pragma once
#include <napi.h>
#include <onnxruntime_cxx_api.h>

#include "limits.hpp"

#include <string>
#include <utility>
#include <vector>

namespace tw {

enum class Provider { kCpu, kCuda, kTensorRt };

struct ModelOptions {
  std::string path;
  /** How messages name the model (relative path or base name, never absolute: messages reach clients). */
  std::string display_name;
  Provider provider = Provider::kCpu;
  int device_id = 0;
  /** ORT provider option keys and values (cuda: gpu_mem_limit...; tensorrt: trt_fp16_enable...). */
  std::vector<std::pair<std::string, std::string>> provider_options;
  int instances = 1;
  int slots_per_instance = 2;
  int intra_op_threads = 1;
  int inter_op_threads = 1;
  /** Rows a slot holds when the model is batchable; ignored otherwise. */
  int max_batch_size = 64;
  /** Bound on one run's output bytes, checked from the output shapes before any copy (OUTPUT_TOO_LARGE). */
  size_t max_output_bytes = static_cast<size_t>(Limits::kDefaultMaxOutputBytes);
  GraphOptimizationLevel optimization = ORT_ENABLE_ALL;

  bool on_gpu() const { return provider != Provider::kCpu; }
};

/** Reads and checks the options object passed to loadModel; throws Napi::Error with code INVALID_INPUT. */
ModelOptions ParseModelOptions(Napi::Env env, const std::string& path, Napi::Object js);

}  // namespace tw
