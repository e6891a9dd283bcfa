// One batch submitted to an instance: built on the JS thread, executed on the instance's
// executor thread, completed back on the JS thread.
#pragma once
#include <napi.h>
#include <onnxruntime_cxx_api.h>

#include <atomic>
#include <string>
#include <vector>

namespace tw {

struct RunJob {
  RunJob(Napi::Env env, int instance_index, int slot_index)
      : deferred(Napi::Promise::Deferred::New(env)), instance(instance_index), slot(slot_index) {}

  Napi::Promise::Deferred deferred;  // JS thread only
  int instance;
  int slot;
  std::vector<std::vector<int64_t>> shapes;  // one full shape per input, batch first
  Ort::RunOptions run_options;               // SetTerminate() from the JS thread cancels a running batch
  std::atomic<bool> cancelled{false};

  // Filled by the executor.
  bool ok = false;
  std::string error_code;
  std::string error_message;
  std::vector<std::vector<int64_t>> output_shapes;
  std::vector<size_t> output_bytes;
  double input_us = 0, infer_us = 0, output_us = 0;
};

}  // namespace tw
