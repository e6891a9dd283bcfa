/**
 * The model repository: layout scan, configuration (config.json / Triton config.pbtxt),
 * completion from model metadata, version policies, warm-up samples and change detection.
 * The hot-swap orchestration builds on these.
 */
export * from './config';
export * from './config-limits';
export { parseConfigPbtxt, pbtxtToObject } from './pbtxt';
export * from './complete-config';
export { toTritonJson } from './triton-json';
export * from './version-policy';
export * from './warmup';
export * from './scanner';
export * from './watcher';
export { readRouting, routingVersions, validateRoutingPolicy, GUARD_DEFAULTS, type RoutingGuard, type RoutingPolicy } from './config-routing';
