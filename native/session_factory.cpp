#include "session_factory.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include "dtype.hpp"
#include "errors.hpp"
#include "ort_env.hpp"

namespace tw {
namespace {

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

const char* kGpuFix =
    "Install the GPU providers with `npm run install:gpu` (package com.github.asus4.onnxruntime.linux-x64-gpu) "
    "or set ORT_HOME to an ONNX Runtime GPU release and rebuild.";

/** device_id plus the option pairs lib/engine translated, as the C arrays ORT's Update*ProviderOptions take. */
struct ProviderKeyValues {
  explicit ProviderKeyValues(const ModelOptions& options) : device(std::to_string(options.device_id)) {
    keys.push_back("device_id");
    values.push_back(device.c_str());
    for (const auto& kv : options.provider_options) {
      keys.push_back(kv.first.c_str());
      values.push_back(kv.second.c_str());
    }
  }
  std::string device;
  std::vector<const char*> keys;
  std::vector<const char*> values;
};

void AppendCuda(Ort::SessionOptions& so, const ModelOptions& options, void* stream) {
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* cuda = nullptr;
  Ort::ThrowOnError(api.CreateCUDAProviderOptions(&cuda));
  std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)> guard(cuda, api.ReleaseCUDAProviderOptions);
  ProviderKeyValues kv(options);
  Ort::ThrowOnError(api.UpdateCUDAProviderOptions(cuda, kv.keys.data(), kv.values.data(), kv.keys.size()));
  if (stream != nullptr) Ort::ThrowOnError(api.UpdateCUDAProviderOptionsWithValue(cuda, "user_compute_stream", stream));
  so.AppendExecutionProvider_CUDA_V2(*cuda);
}

void AppendTensorRt(Ort::SessionOptions& so, const ModelOptions& options, void* stream) {
  const OrtApi& api = Ort::GetApi();
  OrtTensorRTProviderOptionsV2* trt = nullptr;
  Ort::ThrowOnError(api.CreateTensorRTProviderOptions(&trt));
  std::unique_ptr<OrtTensorRTProviderOptionsV2, decltype(api.ReleaseTensorRTProviderOptions)> guard(trt, api.ReleaseTensorRTProviderOptions);
  ProviderKeyValues kv(options);
  Ort::ThrowOnError(api.UpdateTensorRTProviderOptions(trt, kv.keys.data(), kv.values.data(), kv.keys.size()));
  if (stream != nullptr) Ort::ThrowOnError(api.UpdateTensorRTProviderOptionsWithValue(trt, "user_compute_stream", stream));
  so.AppendExecutionProvider_TensorRT_V2(*trt);
  // Nodes TensorRT cannot take run on CUDA, on the same stream.
  AppendCuda(so, options, stream);
}

}  // namespace

void CheckProviderAvailable(Provider provider) {
  if (provider == Provider::kCpu) return;
  const std::string dir = OrtLibraryDirectory();
  const std::string cuda_lib = dir + "/libonnxruntime_providers_cuda.so";
  if (!FileExists(cuda_lib))
    throw EngineError("PROVIDER_UNAVAILABLE", "CUDA execution provider is not installed: " + cuda_lib + " is missing. " + kGpuFix);
  if (provider == Provider::kTensorRt) {
    const std::string trt_lib = dir + "/libonnxruntime_providers_tensorrt.so";
    if (!FileExists(trt_lib))
      throw EngineError("PROVIDER_UNAVAILABLE", "TensorRT execution provider is not installed: " + trt_lib + " is missing. " + kGpuFix);
    // ORT's TensorRT provider needs TensorRT 10 itself; say so by name rather than with a loader trace.
    void* nvinfer = dlopen("libnvinfer.so.10", RTLD_LAZY | RTLD_LOCAL);
    if (nvinfer == nullptr) {
      const char* why = dlerror();
      throw EngineError("PROVIDER_UNAVAILABLE",
                        std::string("TensorRT execution provider needs libnvinfer.so.10 (TensorRT 10), which cannot be loaded: ") +
                            (why ? why : "not found") + ". Install TensorRT 10 and add its lib directory to LD_LIBRARY_PATH.");
    }
    dlclose(nvinfer);
  }
}

std::shared_ptr<SharedWeights> PrepareSharedWeights(const ModelOptions& options) {
  auto shared = std::make_shared<SharedWeights>();
  // On a GPU each session copies its weights to the device anyway; on the CPU sharing saves
  // (instances - 1) copies. Small tensors are left to ORT (constant folding may want them).
  if (!options.on_gpu() && options.instances > 1) shared->initializers = SharedInitializers::Read(options.path, 4096);
  return shared;
}

std::unique_ptr<Ort::Session> CreateSession(const ModelOptions& options, void* compute_stream, SharedWeights* shared_weights) {
  Ort::SessionOptions so;
  so.SetIntraOpNumThreads(options.intra_op_threads);
  so.SetInterOpNumThreads(options.inter_op_threads);
  so.SetExecutionMode(ORT_SEQUENTIAL);
  so.SetGraphOptimizationLevel(options.optimization);
  // Spinning ORT workers would steal the core the event loop needs on small machines.
  so.AddConfigEntry("session.intra_op.allow_spinning", "0");
  so.AddConfigEntry("session.inter_op.allow_spinning", "0");
  // ORT's CPU arena stays on (without it every intermediate tensor is a malloc: ~25% more CPU
  // per request on small batches); Instance::RunCpu shrinks it after runs that grew it.
  try {
    if (options.provider == Provider::kCuda) AppendCuda(so, options, compute_stream);
    if (options.provider == Provider::kTensorRt) AppendTensorRt(so, options, compute_stream);
  } catch (const Ort::Exception& e) {
    throw EngineError("PROVIDER_UNAVAILABLE", std::string("cannot enable the execution provider: ") + e.what() + " " + kGpuFix);
  }
  try {
    if (shared_weights != nullptr && shared_weights->initializers) shared_weights->initializers->AddTo(so);
    if (shared_weights != nullptr) return std::make_unique<Ort::Session>(OrtEnvironment(), options.path.c_str(), so, shared_weights->prepacked);
    return std::make_unique<Ort::Session>(OrtEnvironment(), options.path.c_str(), so);
  } catch (const Ort::Exception& e) {
    std::string what = e.what();
    if (options.on_gpu() && (what.find("Failed to load library") != std::string::npos || what.find(".so") != std::string::npos))
      throw EngineError("PROVIDER_UNAVAILABLE", "cannot start the execution provider for " + options.display_name + ": " + what + " " + kGpuFix);
    throw EngineError("MODEL_LOAD_FAILED", "cannot load model " + options.display_name + ": " + what);
  }
}

ModelSignature ReadSignature(const Ort::Session& session, const std::string& path) {
  ModelSignature sig;
  Ort::AllocatorWithDefaultOptions allocator;
  auto read = [&](bool is_input, size_t count, std::vector<TensorInfo>& out) {
    for (size_t i = 0; i < count; i++) {
      auto name = is_input ? session.GetInputNameAllocated(i, allocator) : session.GetOutputNameAllocated(i, allocator);
      Ort::TypeInfo type = is_input ? session.GetInputTypeInfo(i) : session.GetOutputTypeInfo(i);
      if (type.GetONNXType() != ONNX_TYPE_TENSOR)
        throw EngineError("MODEL_LOAD_FAILED", std::string("cannot serve ") + path + ": " + (is_input ? "input '" : "output '") +
                                                   name.get() + "' is not a tensor (sequences and maps are not supported)");
      auto tensor = type.GetTensorTypeAndShapeInfo();
      TensorInfo info{name.get(), tensor.GetElementType(), tensor.GetShape(), ElementSize(tensor.GetElementType())};
      if (info.element_size == 0 && !IsString(info.type))
        throw EngineError("MODEL_LOAD_FAILED", std::string("cannot serve ") + path + ": " + (is_input ? "input '" : "output '") +
                                                   info.name + "' has an element type tensorwire does not support (ONNX type " +
                                                   std::to_string(static_cast<int>(info.type)) + ")");
      for (auto& d : info.shape)
        if (d < 0) d = -1;
      out.push_back(std::move(info));
    }
  };
  read(true, session.GetInputCount(), sig.inputs);
  read(false, session.GetOutputCount(), sig.outputs);
  sig.batchable = !sig.inputs.empty() && !sig.outputs.empty();
  for (const auto* list : {&sig.inputs, &sig.outputs})
    for (const auto& t : *list)
      if (t.shape.empty() || t.shape[0] != -1) sig.batchable = false;
  return sig;
}

}  // namespace tw
