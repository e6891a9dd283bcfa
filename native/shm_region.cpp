// See shm_region.hpp. shm_open, fstat and mmap of a tmpfs object are metadata syscalls
// (microseconds, no disk I/O), so they run on the JS thread; no byte of the object is read here.
#include "shm_region.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "errors.hpp"

namespace tw {
namespace {

struct Mapping {
  void* base;         // what mmap returned (page aligned, before the window's offset)
  size_t length;      // bytes mapped from base
  size_t byte_size;   // the window's bytes
  bool shared;        // still backed by the shared object (false once released)
  std::string key;    // for ShmCheck: the object is found again by name...
  dev_t dev;          // ...and recognised by device and inode
  ino_t ino;
  uint64_t end;       // offset + byte_size: the object must stay at least this long
};

// Keyed by the window's first byte, the pointer the ArrayBuffer holds. Finalizers may run on
// any environment's thread, hence the lock (held for map updates only, never across a syscall
// that can block).
std::mutex g_mutex;
std::unordered_map<void*, Mapping> g_mappings;

void FinalizeMapping(Napi::Env, void* data) {
  Mapping m{};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_mappings.find(data);
    if (it == g_mappings.end()) return;
    m = it->second;
    g_mappings.erase(it);
  }
  munmap(m.base, m.length);
}

uint64_t ReadSize(const Napi::Env& env, const Napi::Value& value, const char* field) {
  if (!value.IsNumber()) throw ToJsError(env, "INVALID_INPUT", std::string(field) + " must be a number");
  const double d = value.As<Napi::Number>().DoubleValue();
  // 2^53: every integer below it is exact in a double, the same bound JS applies.
  if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > 9007199254740991.0) {
    throw ToJsError(env, "INVALID_INPUT", std::string(field) + " must be a non-negative integer");
  }
  return static_cast<uint64_t>(d);
}

std::string OpenProblem(int err, const std::string& key) {
  switch (err) {
    case ENOENT:
      return "shared memory key '" + key + "' does not exist (create it with shm_open before registering)";
    case EACCES:
    case EPERM:
      return "the server may not open shared memory key '" + key + "' for reading and writing";
    default:
      return "cannot open shared memory key '" + key + "': " + std::strerror(err);
  }
}

}  // namespace

std::string ShmKeyProblem(const std::string& key) {
  if (key.size() < 2 || key[0] != '/') return "must be a POSIX shared memory name: '/' followed by a name";
  if (key.size() > ShmLimits::kMaxKeyChars) return "is longer than " + std::to_string(ShmLimits::kMaxKeyChars) + " characters";
  if (key.find('/', 1) != std::string::npos) return "must not contain '/' after the first character (it names an object in shared memory, not a path)";
  if (key.find('\0') != std::string::npos) return "must not contain NUL";
  if (key == "/." || key == "/..") return "must name an object, not '.' or '..'";
  return "";
}

Napi::Value ShmMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString()) throw ToJsError(env, "INVALID_INPUT", "shmMap(key, offset, byteSize): key must be a string");
  const std::string key = info[0].As<Napi::String>();
  const std::string problem = ShmKeyProblem(key);
  if (!problem.empty()) throw ToJsError(env, "INVALID_INPUT", "key " + problem);
  const uint64_t offset = ReadSize(env, info[1], "offset");
  const uint64_t byte_size = ReadSize(env, info[2], "byte_size");
  if (byte_size == 0) throw ToJsError(env, "INVALID_INPUT", "byte_size must be at least 1");

  // O_NOFOLLOW as glibc's shm_open already adds: a symlink planted in /dev/shm is refused.
  const int fd = shm_open(key.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) throw ToJsError(env, "INVALID_INPUT", OpenProblem(errno, key));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) {
    close(fd);
    throw ToJsError(env, "INVALID_INPUT", "shared memory key '" + key + "' is not a shared memory object");
  }
  const uint64_t object_size = static_cast<uint64_t>(st.st_size);
  if (offset >= object_size) {
    close(fd);
    throw ToJsError(env, "INVALID_INPUT", "offset " + std::to_string(offset) + " is past the end of shared memory key '" + key + "' (" + std::to_string(object_size) + " bytes)");
  }
  if (byte_size > object_size - offset) {
    close(fd);
    throw ToJsError(env, "INVALID_INPUT", "byte_size " + std::to_string(byte_size) + " from offset " + std::to_string(offset) + " runs past the end of shared memory key '" + key + "' (" + std::to_string(object_size) + " bytes)");
  }
  // mmap wants a page-aligned file offset; Triton's clients may pass any offset.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t aligned = offset - offset % page;
  const size_t delta = static_cast<size_t>(offset - aligned);
  const size_t length = static_cast<size_t>(byte_size) + delta;
  void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(aligned));
  const int map_errno = errno;
  close(fd);  // the mapping keeps the object alive; the descriptor is not needed
  if (base == MAP_FAILED) throw ToJsError(env, "INVALID_INPUT", "cannot map shared memory key '" + key + "': " + std::strerror(map_errno));

  void* data = static_cast<char*>(base) + delta;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_mappings[data] = Mapping{base, length, static_cast<size_t>(byte_size), true, key, st.st_dev, st.st_ino, offset + byte_size};
  }
  return Napi::ArrayBuffer::New(env, data, static_cast<size_t>(byte_size), FinalizeMapping);
}

Napi::Value ShmRelease(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw ToJsError(env, "INVALID_INPUT", "shmRelease(buffer): buffer must be an ArrayBuffer");
  void* data = info[0].As<Napi::ArrayBuffer>().Data();
  Mapping m{};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_mappings.find(data);
    if (it == g_mappings.end() || !it->second.shared) return Napi::Boolean::New(env, false);
    it->second.shared = false;
    m = it->second;
  }
  // MAP_FIXED swaps the pages atomically: the range is never unmapped, so no view can fault.
  void* again = mmap(m.base, m.length, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (again == MAP_FAILED) throw ToJsError(env, "INTERNAL", std::string("cannot release a shared memory mapping: ") + std::strerror(errno));
  return Napi::Boolean::New(env, true);
}

Napi::Value ShmCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw ToJsError(env, "INVALID_INPUT", "shmCheck(buffer): buffer must be an ArrayBuffer");
  void* data = info[0].As<Napi::ArrayBuffer>().Data();
  std::string key;
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t end = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_mappings.find(data);
    if (it == g_mappings.end() || !it->second.shared) return env.Undefined();
    key = it->second.key;
    dev = it->second.dev;
    ino = it->second.ino;
    end = it->second.end;
  }
  const int fd = shm_open(key.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
  // Unlinked (or replaced by another object of that name): the mapping keeps the old object,
  // which nobody can find by name to shrink.
  if (fd < 0) return env.Undefined();
  struct stat st {};
  const bool same = fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
  close(fd);
  if (same && static_cast<uint64_t>(st.st_size < 0 ? 0 : st.st_size) < end) return Napi::Number::New(env, static_cast<double>(st.st_size));
  return env.Undefined();
}

Napi::Value ShmStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double mapped = 0, mapped_bytes = 0, reserved = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [data, m] : g_mappings) {
      reserved++;
      if (m.shared) {
        mapped++;
        mapped_bytes += static_cast<double>(m.byte_size);
      }
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("mapped", mapped);
  o.Set("mappedBytes", mapped_bytes);
  o.Set("reserved", reserved);
  o.Set("maxKeyChars", static_cast<double>(ShmLimits::kMaxKeyChars));
  return o;
}

}  // namespace tw
