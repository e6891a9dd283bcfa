// Creates ORT sessions for model instances (on the loader thread) and reads model metadata.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <string>
#include <vector>

#include "model_options.hpp"
#include "shared_initializers.hpp"

namespace tw {

/** One model input or output as the model declares it; -1 for dynamic dims. */
struct TensorInfo {
  std::string name;
  ONNXTensorElementDataType type;
  std::vector<int64_t> shape;
  size_t element_size;
};

struct ModelSignature {
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  /** Every input and output has a dynamic first dimension. */
  bool batchable;
};

/**
 * Builds a session for one instance. `compute_stream` is the instance's CUDA stream (nullptr on
 * CPU), handed to the provider as user_compute_stream so our copies and ORT's kernels share one
 * ordered stream. Throws EngineError: MODEL_LOAD_FAILED (names the file and ORT's reason) or
 * PROVIDER_UNAVAILABLE (names the missing library and the fix).
 */
/**
 * What the sessions of one model version share so N instances hold their weights once: the
 * initializers (read once from the file, see shared_initializers.hpp; null when not shared) and
 * the pre-packed copies kernels make of them (MatMul/Gemm/Conv layouts). Outlives the sessions.
 */
struct SharedWeights {
  Ort::PrepackedWeightsContainer prepacked;
  std::shared_ptr<SharedInitializers> initializers;
};

/** Shared weights for a version: initializers are shared on the CPU when it has several instances. */
std::shared_ptr<SharedWeights> PrepareSharedWeights(const ModelOptions& options);

std::unique_ptr<Ort::Session> CreateSession(const ModelOptions& options, void* compute_stream, SharedWeights* shared_weights = nullptr);

/** Reads inputs/outputs; throws MODEL_LOAD_FAILED for tensors tensorwire cannot carry. */
ModelSignature ReadSignature(const Ort::Session& session, const std::string& path);

/** Throws PROVIDER_UNAVAILABLE unless the provider's ORT library (and its own dependencies) can load. */
void CheckProviderAvailable(Provider provider);

}  // namespace tw
