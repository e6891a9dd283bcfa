// The weights of one model version, read once from the .onnx file and shared by every
// instance's session through SessionOptions::AddInitializer (ONNX Runtime then uses this memory
// instead of its own per-session copy). With N instances a version holds its weights once,
// not N times. Pre-packed copies (MatMul/Gemm/Conv layouts) are shared through the version's
// PrepackedWeightsContainer (see session_factory.hpp).
#pragma once
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <string>
#include <vector>

namespace tw {

class SharedInitializers {
 public:
  /**
   * Reads the top-level initializers of at least `min_bytes` stored inline (raw_data) in the
   * model file. Returns nullptr when there are none or the file is not a model this reader
   * understands: the sessions then load their weights themselves, as without sharing.
   */
  static std::shared_ptr<SharedInitializers> Read(const std::string& path, size_t min_bytes);

  /** Makes `so` use the shared tensors. They must outlive every session created with it. */
  void AddTo(Ort::SessionOptions& so) const;

  size_t bytes() const { return bytes_; }
  size_t count() const { return names_.size(); }

 private:
  std::vector<std::string> names_;
  struct FreeAligned {
    void operator()(void* p) const;
  };
  std::vector<std::unique_ptr<void, FreeAligned>> buffers_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<Ort::Value> values_;
  size_t bytes_ = 0;
};

}  // namespace tw
