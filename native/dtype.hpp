// ONNX element types <-> KServe v2 datatype names, and element sizes.
#pragma once
#include <onnxruntime_cxx_api.h>
#include <cstddef>
#include <string>

namespace tw {

/** KServe name of an ONNX element type, or "" when tensorwire cannot carry it (strings, complex...). */
const char* KserveName(ONNXTensorElementDataType type);

/** Bytes per element; 0 for unsupported types. */
size_t ElementSize(ONNXTensorElementDataType type);

}  // namespace tw
