// ONNX `string` tensors <-> KServe BYTES in their serialized form (lib/protocol/bytes-tensor.ts):
// each element a 4-byte little-endian length, then that many bytes, row-major. Strings have no
// fixed size, so they never live in a staging slot as ORT memory: inputs are rebuilt as ORT
// string tensors from the slot's serialized bytes, outputs are serialized into the slot after
// the run, once their size is known and checked.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tw {

/** Bytes of one element's length prefix. */
constexpr size_t kStringPrefixBytes = 4;

/**
 * An ORT string tensor of `shape` from the serialized elements at `data`, which holds at most
 * `capacity` bytes. Throws EngineError INVALID_INPUT naming `name` when a prefix runs past it.
 */
Ort::Value StringTensorFromSerialized(const std::string& name, const uint8_t* data, size_t capacity, const std::vector<int64_t>& shape);

/** Bytes the serialized form of a string tensor takes (prefixes included). */
size_t SerializedStringBytes(const Ort::Value& value);

/** Writes the serialized form of `value` to `out`, which holds SerializedStringBytes(value). */
void SerializeStringTensor(const Ort::Value& value, uint8_t* out);

}  // namespace tw
