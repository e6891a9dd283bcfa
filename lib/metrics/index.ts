/** tensorwire's Prometheus metrics (see docs/metrics.md). */
export {
  createMetrics,
  TensorwireMetrics,
  ModelMetrics,
  STAGES,
  MODEL_STATES,
  DURATION_BUCKETS_S,
  BATCH_SIZE_BUCKETS,
  type Outcome,
  type Stage,
  type MetricsOptions,
  type QueueDepthSample,
  type QueueDepthProvider,
  type GpuSample,
  type GpuProvider,
  type PinnedMemorySample,
  type PinnedMemoryProvider,
} from './registry';
