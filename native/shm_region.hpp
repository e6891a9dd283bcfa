// System shared memory regions (Triton's system_shared_memory extension): a client creates a
// POSIX shared memory object, registers (key, offset, byte_size), and the server maps that
// window so tensors are read from and written to it instead of travelling over a socket.
//
// Ownership: each mapping is owned by the external ArrayBuffer that exposes it; V8's
// finalizer unmaps it. Release (unregister, shutdown) cannot wait for the GC, and must never
// leave JS a view into unmapped memory, so it *replaces* the window with private anonymous
// memory at the same address: the shared object is let go at once (a lingering view reads
// zeros instead of faulting) and the address range itself goes back when the GC collects the
// buffer. Only the JS thread calls these functions.
#pragma once
#include <napi.h>

#include <cstddef>
#include <string>

namespace tw {

/** Bounds the native side re-checks (lib/shm/limits.ts holds the same numbers; a test compares). */
struct ShmLimits {
  /** Longest key, '/' included (NAME_MAX of the tmpfs behind shm_open is 255). */
  static constexpr size_t kMaxKeyChars = 255;
};

/** Why `key` is not a POSIX shared memory name ("/name", no other '/', not "." or ".."), or "" when it is. */
std::string ShmKeyProblem(const std::string& key);

/** shmMap(key, offset, byteSize): ArrayBuffer over the window [offset, offset + byteSize) of the object. */
Napi::Value ShmMap(const Napi::CallbackInfo& info);

/** shmRelease(buffer): lets go of the shared object behind a buffer shmMap returned; false when it was not one or already released. */
Napi::Value ShmRelease(const Napi::CallbackInfo& info);

/** shmCheck(buffer): the object's size when it shrank below the window since it was mapped (touching the window
 *  would fault), else undefined. A shrink between this check and the access still faults: see docs/protocol.md. */
Napi::Value ShmCheck(const Napi::CallbackInfo& info);

/** shmStats(): {mapped, mappedBytes, reserved}: windows still backed by a shared object, their bytes, and address ranges not yet collected. */
Napi::Value ShmStats(const Napi::CallbackInfo& info);

}  // namespace tw
