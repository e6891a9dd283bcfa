#include "errors.hpp"

#include <cstring>

namespace tw {

// ONNX Runtime's messages carry its build tree (/onnxruntime_src/...), and dlerror() or a file
// check names the install directory; messages reach clients, so each absolute path keeps only
// its last component (the file a user can still recognise).
std::string WithoutAbsolutePaths(const std::string& text) {
  static const char* kBefore = " \t\n'\"(=:[,{<";
  static const char* kEnd = " \t\n'\")];,}>";
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const bool starts_path = text[i] == '/' && (i == 0 || std::strchr(kBefore, text[i - 1]) != nullptr);
    if (!starts_path) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = i;
    while (end < text.size() && std::strchr(kEnd, text[end]) == nullptr) end++;
    const size_t last_slash = text.rfind('/', end - 1);
    if (last_slash == i) {  // "/x" or a lone "/": not a path with directories
      out.push_back(text[i++]);
      continue;
    }
    out.append(text, last_slash + 1, end - last_slash - 1);
    i = end;
  }
  return out;
}

Napi::Error ToJsError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, WithoutAbsolutePaths(message));
  err.Set("code", Napi::String::New(env, code));
  err.Set("name", Napi::String::New(env, "TensorwireError"));
  return err;
}

}  // namespace tw
