/**
 * Live configuration changes of a serving model (POST /v2/models/{m}/batching): the dynamic
 * batching settings, which apply to the running versions at once, and the instance count,
 * which needs new sessions and is applied by a hot swap of the same files.
 *
 * A live change is kept as an overlay on the model's configuration, so the versions loaded
 * later (a new version, a repaired file) start with it too. It lasts until the model's
 * configuration itself changes (config file edited, or an explicit load with a config): the
 * file is then the newer statement of what the operator wants, and the overlay is dropped.
 */
import { TensorwireError } from '../errors';
import { previewValue, truncateForMessage } from '../util/message-text';
import { checkNesting } from '../repository/field-reader';
import { validateConfig, type DynamicBatchingConfig, type EffectiveConfig, type ModelConfig, type QueuePolicyConfig } from '../repository';
import type { BatcherConfigPatch } from '../scheduler/batcher-config';
import type { BatchingChange, BatchingSettings } from './types';

export type { BatchingChange, BatchingSettings } from './types';

/** The overlay: accumulated live changes. */
export interface LiveConfig {
  dynamic_batching?: DynamicBatchingConfig;
  instance_count?: number;
}

const BATCHING_FIELDS = ['max_queue_delay_microseconds', 'preferred_batch_size', 'default_queue_policy', 'priority_levels', 'default_priority_level', 'priority_queue_policy'] as const;
const FIELDS: readonly string[] = [...BATCHING_FIELDS, 'instance_count'];

/**
 * Checks the shape and types of a change (unknown fields, wrong types, out-of-range values)
 * and returns it normalised. Whether it fits the model (a preferred size above
 * max_batch_size...) is checked against each version later.
 */
export function validateChange(change: unknown, model: string): BatchingChange {
  const where = `batching change of model "${truncateForMessage(model)}"`;
  if (typeof change !== 'object' || change === null || Array.isArray(change)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: expected a JSON object with any of ${FIELDS.join(', ')}, got ${previewValue(change)}`);
  }
  const o = change as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!FIELDS.includes(key)) throw new TensorwireError('INVALID_INPUT', `${where}: unknown field "${truncateForMessage(key)}" (allowed: ${FIELDS.join(', ')})`);
  }
  if (Object.keys(o).length === 0) throw new TensorwireError('INVALID_INPUT', `${where}: nothing to change; give any of ${FIELDS.join(', ')}`);
  // Before anything serialises it (withLive round-trips the merged config through JSON).
  checkNesting(o, where);
  // The config validator names the field at fault (dynamic_batching.max_queue_delay_microseconds,
  // instance_group[0].count...). The priority fields are checked once merged with the model's own
  // settings (withLive), because a change may set only one of them.
  const plain: Record<string, unknown> = {};
  for (const key of ['max_queue_delay_microseconds', 'preferred_batch_size', 'default_queue_policy'] as const) if (o[key] !== undefined) plain[key] = o[key];
  const raw: Record<string, unknown> = {};
  if (Object.keys(plain).length > 0) raw.dynamic_batching = plain;
  if (o.instance_count !== undefined) raw.instance_group = [{ count: o.instance_count }];
  const checked = validateConfig(raw, where);
  const out: BatchingChange = { ...checked.dynamic_batching };
  for (const key of ['priority_levels', 'default_priority_level', 'priority_queue_policy'] as const) {
    if (o[key] !== undefined) (out as Record<string, unknown>)[key] = o[key];
  }
  if (checked.instance_group?.[0]?.count !== undefined) out.instance_count = checked.instance_group[0].count;
  return out;
}

/** `live` with `change` added on top (queue policy fields merge one by one). */
export function mergeLive(live: LiveConfig | undefined, change: BatchingChange): LiveConfig {
  const { instance_count, ...batching } = change;
  const next: LiveConfig = { ...live };
  if (Object.keys(batching).length > 0) {
    const before = live?.dynamic_batching ?? {};
    const merged: DynamicBatchingConfig = { ...before, ...batching };
    if (batching.default_queue_policy) merged.default_queue_policy = { ...before.default_queue_policy, ...batching.default_queue_policy };
    next.dynamic_batching = merged;
  }
  if (instance_count !== undefined) next.instance_count = instance_count;
  return next;
}

/**
 * The model configuration with the live overlay applied, validated as a whole (so priority
 * settings are checked together). Throws INVALID_INPUT naming the field.
 */
export function withLive(base: ModelConfig | undefined, live: LiveConfig | undefined, where: string): ModelConfig | undefined {
  if (!live || (live.dynamic_batching === undefined && live.instance_count === undefined)) return base;
  const c: ModelConfig = { ...base };
  if (live.dynamic_batching) {
    const before = base?.dynamic_batching ?? {};
    const db: DynamicBatchingConfig = { ...before, ...live.dynamic_batching };
    if (live.dynamic_batching.default_queue_policy) db.default_queue_policy = { ...before.default_queue_policy, ...live.dynamic_batching.default_queue_policy };
    // Turning priorities off drops the default level (and the per-level policies) with them.
    if (db.priority_levels === 0) {
      delete db.default_priority_level;
      delete db.priority_queue_policy;
    }
    c.dynamic_batching = db;
  }
  if (live.instance_count !== undefined) c.instance_group = [{ ...base?.instance_group?.[0], count: live.instance_count }];
  // Round-trips through the validator for its cross-field checks and messages.
  return validateConfig(JSON.parse(JSON.stringify(c)), where);
}

/** The batcher settings of `effective` as a patch that sets every field (so a runner ends up exactly there). */
export function fullBatcherPatch(effective: EffectiveConfig): BatcherConfigPatch {
  const b = effective.batcher;
  return {
    preferredBatchSizes: b.preferredBatchSizes,
    maxQueueDelayUs: b.maxQueueDelayUs,
    priorityLevels: b.priorityLevels,
    defaultPriorityLevel: b.defaultPriorityLevel,
    defaultQueuePolicy: b.defaultQueuePolicy,
    // {} clears per-level policies the new settings no longer have.
    priorityQueuePolicy: b.priorityQueuePolicy ?? {},
  };
}

/** The settings of a serving version, as GET /v2/models/{m}/batching shows them. */
export function batchingSettings(name: string, versions: number[], effective: EffectiveConfig, instanceCount: number, live: boolean): BatchingSettings {
  const b = effective.batcher;
  const queue = (q: typeof b.defaultQueuePolicy): Required<QueuePolicyConfig> => ({
    max_queue_size: q.maxQueueSize,
    default_timeout_microseconds: q.defaultTimeoutUs,
    allow_timeout_override: q.allowTimeoutOverride,
    timeout_action: q.timeoutAction,
  });
  const settings: BatchingSettings = {
    name,
    versions: versions.map(String),
    max_batch_size: effective.maxBatchSize,
    max_queue_delay_microseconds: b.maxQueueDelayUs,
    preferred_batch_size: [...b.preferredBatchSizes],
    default_queue_policy: queue(b.defaultQueuePolicy),
    priority_levels: b.priorityLevels,
    default_priority_level: b.defaultPriorityLevel,
    instance_count: instanceCount,
    live,
  };
  if (b.priorityQueuePolicy) settings.priority_queue_policy = Object.fromEntries(Object.entries(b.priorityQueuePolicy).map(([k, q]) => [k, queue(q)]));
  return settings;
}
