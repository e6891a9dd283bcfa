// Engine errors with the stable codes of lib/errors.ts. Native code throws EngineError
// off the JS thread; the JS side turns it into an Error with `.code` (see ToJsError).
#pragma once
#include <napi.h>
#include <stdexcept>
#include <string>

namespace tw {

class EngineError : public std::runtime_error {
 public:
  EngineError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

/** `text` with every absolute path cut to its last component (messages must not reveal directories). */
std::string WithoutAbsolutePaths(const std::string& text);

/** A JS Error carrying `code` and name TensorwireError, so lib/errors.ts maps it to one HTTP status.
 *  The message loses absolute paths (WithoutAbsolutePaths): every native error leaves through here. */
Napi::Error ToJsError(Napi::Env env, const std::string& code, const std::string& message);

}  // namespace tw
