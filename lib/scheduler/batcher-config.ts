/**
 * Configuration of the dynamic batcher, with Triton's names and semantics
 * (`dynamic_batching { ... }` in a Triton model config), its defaults, and the validating
 * merge used both at load time and for live changes.
 */
import { TensorwireError } from '../errors';
// A leaf module of plain numbers: the one table of config bounds and defaults, shared with the
// config validators so a live change and a config file are held to the same limits.
import { CONFIG_DEFAULTS, CONFIG_LIMITS } from '../repository/config-limits';
import { previewValue, truncateForMessage } from '../util/message-text';

/** What happens to a request whose timeout passes while it is still queued. */
export type TimeoutAction = 'REJECT' | 'DELAY';

/** Triton's `ModelQueuePolicy`: limits of one priority level's queue. */
export interface QueuePolicy {
  /** Most requests the level holds; 0 = unbounded. A full level rejects at once with QUEUE_FULL. */
  maxQueueSize: number;
  /** Timeout of a queued request in microseconds; 0 = none. */
  defaultTimeoutUs: number;
  /** Whether a request's own `timeoutUs` replaces `defaultTimeoutUs`. */
  allowTimeoutOverride: boolean;
  /** REJECT: answer DEADLINE_EXCEEDED; DELAY: keep it, behind every request that has not timed out. */
  timeoutAction: TimeoutAction;
}

/** Triton's `ModelDynamicBatching`, plus `maxBatchSize` from the model config. */
export interface BatcherConfig {
  /** Largest batch (sum of the requests' batch dimensions); 0 = model does not batch (one request per run). */
  maxBatchSize: number;
  /** Batch sizes worth dispatching at once, without waiting for the delay to run out. */
  preferredBatchSizes: number[];
  /** Longest time the oldest request waits for a batch to fill while another batch runs. */
  maxQueueDelayUs: number;
  /** Number of priority levels; 1 is the highest. 0 = no priorities. */
  priorityLevels: number;
  /** Level of requests that name none; 0 when `priorityLevels` is 0, else 1..priorityLevels. */
  defaultPriorityLevel: number;
  /** Queue policy of every level not listed in `priorityQueuePolicy`. */
  defaultQueuePolicy: QueuePolicy;
  /** Per-level queue policies, keyed by level. */
  priorityQueuePolicy?: Record<number, QueuePolicy>;
}

/** A partial config: what a config file or a live change sets. Missing fields keep their current value. */
export interface BatcherConfigPatch {
  maxBatchSize?: number;
  preferredBatchSizes?: number[];
  maxQueueDelayUs?: number;
  priorityLevels?: number;
  defaultPriorityLevel?: number;
  defaultQueuePolicy?: Partial<QueuePolicy>;
  /** Replaces the current per-level policies as a whole; fields a level leaves out come from the (merged) default queue policy. */
  priorityQueuePolicy?: Record<number, Partial<QueuePolicy>>;
}

/** Triton's defaults: no preferred sizes, no delay, no priorities, unbounded queue, no timeouts. */
export const DEFAULT_QUEUE_POLICY: Readonly<QueuePolicy> = Object.freeze({
  maxQueueSize: 0,
  defaultTimeoutUs: 0,
  allowTimeoutOverride: false,
  timeoutAction: 'REJECT',
});

/** Default batcher config; `maxBatchSize` is normally replaced by the model's own. */
export const DEFAULT_BATCHER_CONFIG: Readonly<BatcherConfig> = Object.freeze({
  maxBatchSize: CONFIG_DEFAULTS.maxBatchSize,
  preferredBatchSizes: [],
  maxQueueDelayUs: 0,
  priorityLevels: 0,
  defaultPriorityLevel: 0,
  defaultQueuePolicy: DEFAULT_QUEUE_POLICY,
});

const FIELD = 'dynamic_batching';

function invalid(message: string): TensorwireError {
  return new TensorwireError('INVALID_INPUT', message);
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(`${field}: expected an integer from ${min} to ${max}, got ${previewValue(value)}`);
  }
  return value;
}

function checkBoolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(`${field}: expected true or false, got ${previewValue(value)}`);
  return value;
}

function mergePolicy(field: string, base: QueuePolicy, patch: Partial<QueuePolicy> | undefined): QueuePolicy {
  if (patch === undefined) return base;
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    throw invalid(`${field}: expected an object, got ${previewValue(patch)}`);
  }
  const merged: QueuePolicy = {
    maxQueueSize: checkInteger(`${field}.max_queue_size`, patch.maxQueueSize ?? base.maxQueueSize, 0, CONFIG_LIMITS.maxQueueSize),
    defaultTimeoutUs: checkInteger(`${field}.default_timeout_microseconds`, patch.defaultTimeoutUs ?? base.defaultTimeoutUs, 0, CONFIG_LIMITS.timeoutUs),
    allowTimeoutOverride: checkBoolean(`${field}.allow_timeout_override`, patch.allowTimeoutOverride ?? base.allowTimeoutOverride),
    timeoutAction: patch.timeoutAction ?? base.timeoutAction,
  };
  if (merged.timeoutAction !== 'REJECT' && merged.timeoutAction !== 'DELAY') {
    throw invalid(`${field}.timeout_action: expected "REJECT" or "DELAY", got ${previewValue(merged.timeoutAction)}`);
  }
  return merged;
}

/**
 * Returns `base` with `patch` applied, validated as a whole. Throws TensorwireError
 * INVALID_INPUT naming the offending field (Triton's names, e.g.
 * `dynamic_batching.preferred_batch_size: 128 exceeds max_batch_size 64`). Never mutates
 * its arguments; the result shares nothing mutable with them.
 */
export function mergeBatcherConfig(base: BatcherConfig, patch: BatcherConfigPatch = {}): BatcherConfig {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    throw invalid(`${FIELD}: expected an object, got ${previewValue(patch)}`);
  }
  const maxBatchSize = checkInteger('max_batch_size', patch.maxBatchSize ?? base.maxBatchSize, 0, CONFIG_LIMITS.maxBatchSize);

  const preferredRaw = patch.preferredBatchSizes ?? base.preferredBatchSizes;
  if (!Array.isArray(preferredRaw)) {
    throw invalid(`${FIELD}.preferred_batch_size: expected a list of integers, got ${previewValue(preferredRaw)}`);
  }
  if (preferredRaw.length > CONFIG_LIMITS.preferredBatchSizes) {
    throw invalid(`${FIELD}.preferred_batch_size: at most ${CONFIG_LIMITS.preferredBatchSizes} sizes, got ${preferredRaw.length}`);
  }
  const preferred = new Set<number>();
  for (const size of preferredRaw) {
    checkInteger(`${FIELD}.preferred_batch_size`, size, 1, CONFIG_LIMITS.maxBatchSize);
    if (size > Math.max(maxBatchSize, 1)) {
      throw invalid(`${FIELD}.preferred_batch_size: ${size} exceeds max_batch_size ${maxBatchSize}`);
    }
    preferred.add(size);
  }
  const preferredBatchSizes = [...preferred].sort((a, b) => a - b);

  const maxQueueDelayUs = checkInteger(`${FIELD}.max_queue_delay_microseconds`, patch.maxQueueDelayUs ?? base.maxQueueDelayUs, 0, CONFIG_LIMITS.maxQueueDelayUs);
  const priorityLevels = checkInteger(`${FIELD}.priority_levels`, patch.priorityLevels ?? base.priorityLevels, 0, CONFIG_LIMITS.priorityLevels);
  const defaultPriorityLevel = checkInteger(`${FIELD}.default_priority_level`, patch.defaultPriorityLevel ?? base.defaultPriorityLevel, 0, CONFIG_LIMITS.priorityLevels);
  if (priorityLevels === 0 && defaultPriorityLevel !== 0) {
    throw invalid(`${FIELD}.default_priority_level: must be 0 when priority_levels is 0, got ${defaultPriorityLevel}`);
  }
  if (priorityLevels > 0 && (defaultPriorityLevel < 1 || defaultPriorityLevel > priorityLevels)) {
    throw invalid(`${FIELD}.default_priority_level: expected 1..${priorityLevels} (priority_levels), got ${defaultPriorityLevel}`);
  }

  const defaultQueuePolicy = mergePolicy(`${FIELD}.default_queue_policy`, base.defaultQueuePolicy, patch.defaultQueuePolicy);

  // A patch's priority_queue_policy replaces the current one as a whole (so a change can drop a
  // level's policy); fields a level leaves out come from the default queue policy.
  let priorityQueuePolicy: Record<number, QueuePolicy> | undefined;
  const source = patch.priorityQueuePolicy ?? base.priorityQueuePolicy;
  if (source !== undefined) {
    if (typeof source !== 'object' || source === null || Array.isArray(source)) {
      throw invalid(`${FIELD}.priority_queue_policy: expected an object keyed by level, got ${previewValue(source)}`);
    }
    const keys = Object.keys(source);
    if (keys.length > Math.max(priorityLevels, 1)) {
      throw invalid(`${FIELD}.priority_queue_policy: ${keys.length} entries, but there are ${priorityLevels} priority levels`);
    }
    for (const key of keys) {
      const level = Number(key);
      const field = `${FIELD}.priority_queue_policy[${truncateForMessage(key, 16)}]`;
      if (!Number.isSafeInteger(level) || level < 1 || level > priorityLevels) {
        throw invalid(`${field}: level must be 1..${priorityLevels} (priority_levels), got ${truncateForMessage(key)}`);
      }
      priorityQueuePolicy ??= {};
      priorityQueuePolicy[level] = mergePolicy(field, defaultQueuePolicy, source[level]);
    }
  }

  const merged: BatcherConfig = {
    maxBatchSize,
    preferredBatchSizes,
    maxQueueDelayUs,
    priorityLevels,
    defaultPriorityLevel,
    defaultQueuePolicy: { ...defaultQueuePolicy },
  };
  if (priorityQueuePolicy !== undefined) merged.priorityQueuePolicy = priorityQueuePolicy;
  return merged;
}

/** The queue policy that applies to `level` (1-based; 0 stands for the only level when there are no priorities). */
export function queuePolicyOf(config: BatcherConfig, level: number): QueuePolicy {
  return config.priorityQueuePolicy?.[level] ?? config.defaultQueuePolicy;
}
