#include "shared_initializers.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "dtype.hpp"

namespace tw {
namespace {

// A minimal protobuf wire-format reader: enough of onnx.proto to find ModelProto.graph (7),
// GraphProto.initializer (5) and a TensorProto's dims (1), data_type (2), name (8),
// raw_data (9), segment (3) and data_location (14). Anything unexpected ends the read.
struct Reader {
  const uint8_t* p;
  const uint8_t* end;

  bool Varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
      uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  /** Reads a field key; for LEN fields sets `body` to the payload. Skips other payloads. */
  bool Next(uint32_t& field, uint32_t& wire, Reader& body) {
    uint64_t key;
    if (!Varint(key)) return false;
    field = static_cast<uint32_t>(key >> 3);
    wire = static_cast<uint32_t>(key & 7);
    uint64_t n;
    switch (wire) {
      case 0:
        if (!Varint(n)) return false;
        last_varint = n;
        return true;
      case 1: if (end - p < 8) return false; p += 8; return true;
      case 5: if (end - p < 4) return false; p += 4; return true;
      case 2:
        if (!Varint(n) || n > static_cast<uint64_t>(end - p)) return false;
        body = Reader{p, p + n};
        p += n;
        return true;
      default: return false;
    }
  }
  uint64_t last_varint = 0;
};

struct Found {
  std::string name;
  std::vector<int64_t> dims;
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  const uint8_t* raw = nullptr;
  size_t raw_bytes = 0;
  bool usable = true;
};

bool ReadTensor(Reader r, Found& t) {
  uint32_t field, wire;
  Reader body{nullptr, nullptr};
  while (r.p < r.end) {
    if (!r.Next(field, wire, body)) return false;
    if (field == 1 && wire == 0) {
      t.dims.push_back(static_cast<int64_t>(r.last_varint));
    } else if (field == 1 && wire == 2) {  // packed dims
      uint64_t d;
      while (body.p < body.end)
        if (body.Varint(d)) t.dims.push_back(static_cast<int64_t>(d));
        else return false;
    } else if (field == 2 && wire == 0) {
      t.type = static_cast<ONNXTensorElementDataType>(r.last_varint);
    } else if (field == 8 && wire == 2) {
      t.name.assign(reinterpret_cast<const char*>(body.p), body.end - body.p);
    } else if (field == 9 && wire == 2) {
      t.raw = body.p;
      t.raw_bytes = body.end - body.p;
    } else if (field == 3 || (field == 14 && wire == 0 && r.last_varint != 0) || field == 13) {
      t.usable = false;  // segmented or external data: leave it to ONNX Runtime
    }
  }
  return true;
}

}  // namespace

void SharedInitializers::FreeAligned::operator()(void* p) const { std::free(p); }

std::shared_ptr<SharedInitializers> SharedInitializers::Read(const std::string& path, size_t min_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return nullptr;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  // Mapped, not read: the file's pages are only borrowed while the tensors are copied out.
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return nullptr;
  auto shared = std::make_shared<SharedInitializers>();
  std::vector<Found> found;
  bool ok = true;
  {
    Reader model{static_cast<const uint8_t*>(map), static_cast<const uint8_t*>(map) + size};
    uint32_t field, wire;
    Reader graph{nullptr, nullptr};
    while (ok && model.p < model.end) {
      if (!model.Next(field, wire, graph)) ok = false;
      else if (field == 7 && wire == 2) {
        Reader g = graph, item{nullptr, nullptr};
        while (ok && g.p < g.end) {
          if (!g.Next(field, wire, item)) ok = false;
          else if (field == 5 && wire == 2) {
            Found t;
            if (!ReadTensor(item, t)) ok = false;
            else found.push_back(std::move(t));
          }
        }
      }
    }
  }
  if (ok) {
    for (auto& t : found) {
      const size_t element = ElementSize(t.type);
      if (!t.usable || t.raw == nullptr || element == 0 || t.name.empty() || t.raw_bytes < min_bytes) continue;
      size_t elements = 1;
      for (int64_t d : t.dims) elements *= d < 0 ? 0 : static_cast<size_t>(d);
      if (elements * element != t.raw_bytes) continue;
      void* data = std::aligned_alloc(64, (t.raw_bytes + 63) & ~size_t(63));
      if (data == nullptr) break;
      std::memcpy(data, t.raw, t.raw_bytes);
      shared->buffers_.emplace_back(data);
      shared->shapes_.push_back(t.dims);
      shared->names_.push_back(t.name);
      shared->bytes_ += t.raw_bytes;
      Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
      shared->values_.push_back(Ort::Value::CreateTensor(cpu, data, t.raw_bytes, shared->shapes_.back().data(), shared->shapes_.back().size(), t.type));
    }
  }
  munmap(map, size);
  if (!ok || shared->names_.empty()) return nullptr;
  return shared;
}

void SharedInitializers::AddTo(Ort::SessionOptions& so) const {
  for (size_t i = 0; i < names_.size(); i++) so.AddInitializer(names_[i].c_str(), values_[i]);
}

}  // namespace tw
