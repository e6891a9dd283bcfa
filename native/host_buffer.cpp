#include "host_buffer.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

#include "cuda_runtime.hpp"
#include "errors.hpp"

namespace tw {
namespace {
std::atomic<size_t> g_pinned{0};
std::atomic<size_t> g_aligned{0};
}  // namespace

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = other.data_;
    capacity_ = other.capacity_;
    pinned_ = other.pinned_;
    other.data_ = nullptr;
    other.capacity_ = 0;
  }
  return *this;
}

void HostBuffer::Allocate(size_t bytes, bool pinned) {
  Free();
  if (bytes < 64) bytes = 64;
  bytes = (bytes + 63) & ~size_t(63);
  void* p = nullptr;
  if (pinned) {
    CheckCuda(Cuda().host_alloc(&p, bytes), "cudaHostAlloc of a staging slot");
    g_pinned += bytes;
  } else {
    p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw EngineError("ENGINE_FAILURE", "out of host memory allocating a staging slot");
    g_aligned += bytes;
  }
  data_ = static_cast<uint8_t*>(p);
  capacity_ = bytes;
  pinned_ = pinned;
}

void HostBuffer::Free() {
  if (data_ == nullptr) return;
  if (pinned_) {
    if (const TwCudaApi* cuda = CudaIfLoaded()) cuda->host_free(data_);
    g_pinned -= capacity_;
  } else {
    std::free(data_);
    g_aligned -= capacity_;
  }
  data_ = nullptr;
  capacity_ = 0;
}

size_t HostMemoryCounters::pinned_bytes() { return g_pinned.load(); }
size_t HostMemoryCounters::aligned_bytes() { return g_aligned.load(); }

}  // namespace tw
