// Access to libtensorwire_cuda.so, loaded on first use. Nothing here runs unless a model asks
// for a GPU provider, so the addon works on machines without CUDA.
#pragma once
#include <cstddef>
#include <string>
#include "cuda/tw_cuda_api.h"

namespace tw {

/** The CUDA function table, or throws EngineError(PROVIDER_UNAVAILABLE) naming what is missing. */
const TwCudaApi& Cuda();

/** The CUDA table if it was loaded already (never loads it). */
const TwCudaApi* CudaIfLoaded();

/** Throws EngineError(code) with the CUDA error string when `err` is not success. */
void CheckCuda(int err, const char* what, const char* code = "ENGINE_FAILURE");

/** Directory holding the addon (.node) file; the CUDA helper and ORT libraries live there. */
std::string AddonDirectory();

}  // namespace tw
