/**
 * Translates typed provider options into the keys ONNX Runtime's CUDA and TensorRT providers
 * read. This is the one place that knows ORT's option names.
 */
import type { ProviderOptions } from './types';

/** ORT provider option keys and string values for `options`. */
export function ortProviderOptions(options: ProviderOptions): Record<string, string> {
  const out: Record<string, string> = {};
  if (options.kind === 'cuda') {
    if (options.memoryLimitBytes !== undefined) out.gpu_mem_limit = String(options.memoryLimitBytes);
    if (options.arenaExtendStrategy !== undefined) out.arena_extend_strategy = options.arenaExtendStrategy;
    if (options.cudnnConvAlgoSearch !== undefined) out.cudnn_conv_algo_search = options.cudnnConvAlgoSearch;
  } else if (options.kind === 'tensorrt') {
    if (options.fp16 !== undefined) out.trt_fp16_enable = options.fp16 ? '1' : '0';
    if (options.engineCacheEnable !== undefined) out.trt_engine_cache_enable = options.engineCacheEnable ? '1' : '0';
    if (options.engineCachePath !== undefined) out.trt_engine_cache_path = options.engineCachePath;
    if (options.maxWorkspaceSizeBytes !== undefined) out.trt_max_workspace_size = String(options.maxWorkspaceSizeBytes);
    if (options.profileMinShapes !== undefined) out.trt_profile_min_shapes = options.profileMinShapes;
    if (options.profileOptShapes !== undefined) out.trt_profile_opt_shapes = options.profileOptShapes;
    if (options.profileMaxShapes !== undefined) out.trt_profile_max_shapes = options.profileMaxShapes;
  }
  return out;
}
