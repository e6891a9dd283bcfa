#include "ort_env.hpp"

#include <dlfcn.h>

#include <mutex>

namespace tw {

namespace {

// ORT's default logger writes every failed Run and load to stderr: a client that sends bad
// inputs could flood the server's log. Every failure already comes back to JS as an error
// carrying ORT's message, so the addon's own log sink drops them.
void DropOrtLog(void*, OrtLoggingLevel, const char*, const char*, const char*, const char*) {}

}  // namespace

Ort::Env& OrtEnvironment() {
  static Ort::Env* env = [] {
    auto* e = new Ort::Env(ORT_LOGGING_LEVEL_ERROR, "tensorwire", DropOrtLog, nullptr);
    e->DisableTelemetryEvents();
    return e;
  }();
  return *env;
}

std::string OrtLibraryDirectory() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&OrtGetApiBase), &info) == 0 || info.dli_fname == nullptr) return ".";
  std::string file = info.dli_fname;
  auto slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash);
}

}  // namespace tw
