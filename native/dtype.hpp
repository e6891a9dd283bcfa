// ONNX element types <-> KServe v2 datatype names, and element sizes.
#pragma once
#include <onnxruntime_cxx_api.h>
#include <cstddef>
#include <string>

namespace tw {

/** KServe name of an ONNX element type ("BYTES" for strings), or "" when tensorwire cannot carry it (complex...). */
const char* KserveName(ONNXTensorElementDataType type);

/** Bytes per element; 0 for strings (no fixed size, see string_tensor.hpp) and unsupported types. */
size_t ElementSize(ONNXTensorElementDataType type);

/** True for ONNX `string` tensors, carried as KServe BYTES. */
inline bool IsString(ONNXTensorElementDataType type) { return type == ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING; }

}  // namespace tw
