// The one process-wide Ort::Env and where ONNX Runtime's libraries live.
#pragma once
#include <onnxruntime_cxx_api.h>
#include <string>

namespace tw {

/** Process-wide ORT environment (created on first use, never destroyed: sessions may outlive statics). */
Ort::Env& OrtEnvironment();

/** Directory of the libonnxruntime.so this process loaded (provider libraries must sit beside it). */
std::string OrtLibraryDirectory();

}  // namespace tw
