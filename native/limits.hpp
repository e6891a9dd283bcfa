// The addon's hard bounds on load options: one table, read by ParseModelOptions and exported to
// JS through limits() so lib/engine and the config layer can check against the same numbers.
#pragma once
#include <cstddef>

namespace tw {

struct Limits {
  static constexpr int kMaxInstances = 64;
  static constexpr int kMinSlotsPerInstance = 2;
  static constexpr int kMaxSlotsPerInstance = 16;
  static constexpr int kMaxIntraOpThreads = 256;
  static constexpr int kMaxInterOpThreads = 256;
  static constexpr int kMaxBatchSize = 1 << 20;
  static constexpr int kMaxDeviceId = 63;  // device ordinals 0..63
  /** Default bound on one run's output bytes (all outputs of a batch together). */
  static constexpr double kDefaultMaxOutputBytes = 64.0 * 1024 * 1024;
  /** Largest maxOutputBytes a load may set (16 GiB). */
  static constexpr double kMaxOutputBytesCeiling = 16.0 * 1024 * 1024 * 1024;
  /** Threads a load must leave free for Node, libuv and later loads (thread budget check). */
  static constexpr size_t kThreadHeadroom = 16;
};

}  // namespace tw
