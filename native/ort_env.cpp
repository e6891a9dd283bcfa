#include "ort_env.hpp"

#include <dlfcn.h>

#include <mutex>

namespace tw {

Ort::Env& OrtEnvironment() {
  static Ort::Env* env = [] {
    auto* e = new Ort::Env(ORT_LOGGING_LEVEL_ERROR, "tensorwire");
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
