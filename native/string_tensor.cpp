#include "string_tensor.hpp"

#include <cstdint>
#include <cstring>

#include "errors.hpp"

namespace tw {

Ort::Value StringTensorFromSerialized(const std::string& name, const uint8_t* data, size_t capacity, const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d < 0 ? 0 : d);
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value value = Ort::Value::CreateTensor(allocator, shape.data(), shape.size(), ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING);
  size_t at = 0;
  for (size_t i = 0; i < count; i++) {
    // JS checked these bytes already; this re-check is what keeps a bad batch from reading past the slot.
    if (capacity - at < kStringPrefixBytes)
      throw EngineError("INVALID_INPUT", "input '" + name + "': BYTES element " + std::to_string(i) + " has no length prefix in the staged bytes");
    uint32_t length;
    std::memcpy(&length, data + at, sizeof length);
    at += kStringPrefixBytes;
    if (length > capacity - at)
      throw EngineError("INVALID_INPUT", "input '" + name + "': BYTES element " + std::to_string(i) + " runs past the staged bytes");
    // The element buffer API copies exactly `length` bytes: embedded NULs survive (FillStringTensor would stop at them).
    char* out = value.GetResizedStringTensorElementBuffer(i, length);
    if (length > 0) std::memcpy(out, data + at, length);
    at += length;
  }
  return value;
}

size_t SerializedStringBytes(const Ort::Value& value) {
  const size_t count = value.GetTensorTypeAndShapeInfo().GetElementCount();
  return count * kStringPrefixBytes + value.GetStringTensorDataLength();
}

void SerializeStringTensor(const Ort::Value& value, uint8_t* out) {
  const size_t count = value.GetTensorTypeAndShapeInfo().GetElementCount();
  size_t at = 0;
  for (size_t i = 0; i < count; i++) {
    const size_t length = value.GetStringTensorElementLength(i);
    if (length > UINT32_MAX) throw EngineError("OUTPUT_TOO_LARGE", "a BYTES output element holds " + std::to_string(length) + " bytes; the limit is 4 GiB - 1");
    const uint32_t prefix = static_cast<uint32_t>(length);
    std::memcpy(out + at, &prefix, sizeof prefix);
    at += kStringPrefixBytes;
    if (length > 0) value.GetStringTensorElement(length, i, out + at);
    at += length;
  }
}

}  // namespace tw
