// A staging slot: the host buffers (and, on CUDA, device mirrors) one batch of one instance
// is assembled in. JS writes request bytes straight into the host input buffers (exposed as
// external ArrayBuffers) and reads results out of the host output buffers. Each instance owns
// at least two, so one batch can be filled and uploaded while another runs.
//
// Ownership: between run() and its completion the executor thread owns the slot; otherwise the
// JS thread does. Buffers are only reallocated by their current owner. A buffer the executor
// replaces is parked in `retired` and freed on the JS thread after its ArrayBuffer is detached.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "host_buffer.hpp"

namespace tw {

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t capacity = 0;
};

struct StagingSlot {
  std::vector<HostBuffer> inputs;
  std::vector<HostBuffer> outputs;
  std::vector<DeviceBuffer> device_inputs;
  std::vector<DeviceBuffer> device_outputs;
  /** Recorded on the copy stream after the inputs' upload; the compute stream waits on it. */
  void* upload_event = nullptr;
  /** Output buffers replaced during a run; freed on the JS thread once detached. */
  std::vector<HostBuffer> retired;
  /** Which outputs got a new host buffer in the last run (JS must re-create their ArrayBuffers). */
  std::vector<uint8_t> output_replaced;
  /** True from run() until its completion reached JS. */
  std::atomic<bool> busy{false};
};

}  // namespace tw
