// A contiguous host buffer of a staging slot: 64-byte aligned memory on CPU, pinned memory
// (cudaHostAlloc) when the instance runs on CUDA, so host<->device copies run at full speed
// and asynchronously.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tw {

class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(size_t bytes, bool pinned) { Allocate(bytes, pinned); }
  ~HostBuffer() { Free(); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  HostBuffer(HostBuffer&& other) noexcept { *this = static_cast<HostBuffer&&>(other); }
  HostBuffer& operator=(HostBuffer&& other) noexcept;

  /** Frees the old memory and allocates `bytes` (at least 64) of the same kind. Contents are lost. */
  void Allocate(size_t bytes, bool pinned);
  void Free();

  uint8_t* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  bool pinned() const { return pinned_; }

 private:
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
  bool pinned_ = false;
};

/** Process-wide byte counts of host staging memory (for the pinned-memory metric). */
struct HostMemoryCounters {
  static size_t pinned_bytes();
  static size_t aligned_bytes();
};

}  // namespace tw
