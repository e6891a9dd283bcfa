/**
 * The bounds of every number a config or a control route can set (lib/repository/config-limits.ts),
 * enforced the same way by config.json, config.pbtxt, a load request's override and the live
 * batching route; and the costs of hostile configs kept bounded (nesting, long keys, echoes).
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { validateChange } from '../lib/core/live-config';
import { parseConfigJson, validateConfig } from '../lib/repository/config';
import { CONFIG_DEFAULTS, CONFIG_LIMITS, maxTotalThreads } from '../lib/repository/config-limits';
import { engineLimits } from '../lib/engine';
import { parseConfigPbtxt } from '../lib/repository/pbtxt';
import { completeConfig, DEFAULT_MAX_BATCH_SIZE } from '../lib/repository/complete-config';
import { DEFAULT_BATCHER_CONFIG, mergeBatcherConfig } from '../lib/scheduler/batcher-config';
import { parseServeArgs } from '../lib/cli';
import { loadConfig } from '../lib/server/routes-repository';
import { previewValue, relativeToDirectory, truncateForMessage } from '../lib/util/message-text';
import { invalidInputMessage as errorOf } from './helpers/expect-error';

const W = 'c.json';

/** Each bounded field: a config setting it just over its bound, and the field path the message names. */
const OVER: [string, Record<string, unknown>, string, number][] = [
  ['max_batch_size', { max_batch_size: CONFIG_LIMITS.maxBatchSize + 1 }, 'max_batch_size', CONFIG_LIMITS.maxBatchSize],
  ['preferred_batch_size', { dynamic_batching: { preferred_batch_size: [CONFIG_LIMITS.maxBatchSize + 1] } }, 'dynamic_batching.preferred_batch_size[0]', CONFIG_LIMITS.maxBatchSize],
  ['max_queue_delay_microseconds', { dynamic_batching: { max_queue_delay_microseconds: CONFIG_LIMITS.maxQueueDelayUs + 1 } }, 'dynamic_batching.max_queue_delay_microseconds', CONFIG_LIMITS.maxQueueDelayUs],
  ['priority_levels', { dynamic_batching: { priority_levels: 100_000_000, default_priority_level: 1 } }, 'dynamic_batching.priority_levels', 100],
  ['max_queue_size', { dynamic_batching: { default_queue_policy: { max_queue_size: CONFIG_LIMITS.maxQueueSize + 1 } } }, 'dynamic_batching.default_queue_policy.max_queue_size', CONFIG_LIMITS.maxQueueSize],
  ['default_timeout_microseconds', { dynamic_batching: { default_queue_policy: { default_timeout_microseconds: CONFIG_LIMITS.timeoutUs + 1 } } }, 'dynamic_batching.default_queue_policy.default_timeout_microseconds', CONFIG_LIMITS.timeoutUs],
  ['priority_queue_policy key', { dynamic_batching: { priority_levels: 2, default_priority_level: 1, priority_queue_policy: { '1000000000': {} } } }, 'dynamic_batching.priority_queue_policy key', CONFIG_LIMITS.priorityLevels],
  ['instance_group.count', { instance_group: [{ count: 65 }] }, 'instance_group[0].count', 64],
  ['intra_op_thread_count', { parameters: { intra_op_thread_count: CONFIG_LIMITS.threadCount + 1 } }, 'parameters.intra_op_thread_count', CONFIG_LIMITS.threadCount],
  ['inter_op_thread_count', { parameters: { inter_op_thread_count: CONFIG_LIMITS.threadCount + 1 } }, 'parameters.inter_op_thread_count', CONFIG_LIMITS.threadCount],
  ['slots_per_instance', { parameters: { slots_per_instance: CONFIG_LIMITS.slotsPerInstance + 1 } }, 'parameters.slots_per_instance', CONFIG_LIMITS.slotsPerInstance],
  ['warm-up count', { model_warmup: [{ name: 'w', count: CONFIG_LIMITS.warmupCount + 1, inputs: { x: { zero_data: true } } }] }, 'model_warmup[0].count', CONFIG_LIMITS.warmupCount],
  ['warm-up batch_size', { model_warmup: [{ name: 'w', batch_size: CONFIG_LIMITS.maxBatchSize + 1, inputs: { x: {} } }] }, 'model_warmup[0].batch_size', CONFIG_LIMITS.maxBatchSize],
  ['num_versions', { version_policy: { latest: { num_versions: CONFIG_LIMITS.versions + 1 } } }, 'version_policy.latest.num_versions', CONFIG_LIMITS.versions],
  ['dims', { input: [{ name: 'x', dims: [2 ** 31] }] }, 'input[0].dims[0]', CONFIG_LIMITS.dimension],
  ['gpus', { instance_group: [{ gpus: [CONFIG_LIMITS.deviceId + 1] }] }, 'instance_group[0].gpus[0]', CONFIG_LIMITS.deviceId],
  ['memory_limit_bytes', { optimization: { provider: { kind: 'cuda', memory_limit_bytes: CONFIG_LIMITS.memoryBytes + 1 } } }, 'optimization.provider.memory_limit_bytes', CONFIG_LIMITS.memoryBytes],
];

describe('every number a config can set has a bound', () => {
  it.each(OVER)('%s: over the bound is refused, naming the field and the bound', (_label, config, field, bound) => {
    const message = errorOf(() => validateConfig(config, W));
    expect(message).toContain(`${W}: ${field}`);
    expect(message).toContain(String(bound));
  });

  it('priority_levels 100000000 is refused in config.json and config.pbtxt alike (it ran the heap out of memory)', () => {
    const json = errorOf(() => parseConfigJson('{"dynamic_batching":{"priority_levels":100000000,"default_priority_level":1}}', W));
    expect(json).toBe(`${W}: dynamic_batching.priority_levels must be an integer from 0 to 100, got 100000000`);
    const pbtxt = errorOf(() => parseConfigPbtxt('dynamic_batching { priority_levels: 100000000 default_priority_level: 1 }', 'c.pbtxt'));
    expect(pbtxt).toBe('c.pbtxt: dynamic_batching.priority_levels must be an integer from 0 to 100, got 100000000');
    // The bound itself is accepted.
    expect(validateConfig({ dynamic_batching: { priority_levels: 100, default_priority_level: 100 } }).dynamic_batching?.priority_levels).toBe(100);
  });

  it('the live batching route and the batcher hold the same bounds', () => {
    expect(errorOf(() => mergeBatcherConfig(DEFAULT_BATCHER_CONFIG, { priorityLevels: 100_000_000, defaultPriorityLevel: 1 }))).toBe(
      'dynamic_batching.priority_levels: expected an integer from 0 to 100, got 100000000',
    );
    expect(errorOf(() => validateChange({ instance_count: 65 }, 'm'))).toContain('instance_group[0].count must be an integer from 1 to 64');
    expect(errorOf(() => validateChange({ max_queue_delay_microseconds: CONFIG_LIMITS.maxQueueDelayUs + 1 }, 'm'))).toContain(String(CONFIG_LIMITS.maxQueueDelayUs));
  });

  it('instances × intra_op_thread_count is bounded by the machine, naming both fields', () => {
    const max = maxTotalThreads();
    expect(max).toBe(CONFIG_LIMITS.threadsPerCore * availableParallelism());
    const threads = Math.min(CONFIG_LIMITS.threadCount, max);
    const instances = Math.floor(max / threads) + 1;
    const message = errorOf(() => validateConfig({ instance_group: [{ count: instances }], parameters: { intra_op_thread_count: threads } }, W));
    expect(message).toContain(`instance_group[0].count (${instances}) × parameters.intra_op_thread_count (${threads})`);
    expect(message).toContain(`at most ${max}`);
    expect(validateConfig({ instance_group: [{ count: Math.floor(max / threads) }], parameters: { intra_op_thread_count: threads } })).toBeDefined();
  });

  it('agrees with the addon and has one default batch size', () => {
    // The addon's own table (native/limits.hpp), read from the loaded addon.
    const addon = engineLimits();
    expect(CONFIG_LIMITS.instanceCount).toBe(addon.maxInstances);
    expect(CONFIG_LIMITS.slotsPerInstance).toBe(addon.maxSlotsPerInstance);
    expect(CONFIG_LIMITS.threadCount).toBe(addon.maxIntraOpThreads);
    expect(CONFIG_LIMITS.threadCount).toBe(addon.maxInterOpThreads);
    expect(CONFIG_LIMITS.maxBatchSize).toBeLessThanOrEqual(addon.maxBatchSize);
    expect(CONFIG_LIMITS.maxOutputBytes).toBe(addon.maxOutputBytesCeiling);
    expect(CONFIG_LIMITS.deviceId).toBe(addon.maxDeviceId);
    expect(DEFAULT_MAX_BATCH_SIZE).toBe(CONFIG_DEFAULTS.maxBatchSize);
    expect(DEFAULT_BATCHER_CONFIG.maxBatchSize).toBe(CONFIG_DEFAULTS.maxBatchSize);
  });

  it('a warm-up input allocating more than the bound is refused before it is allocated', () => {
    const message = errorOf(() => validateConfig({ model_warmup: [{ name: 'w', batch_size: 64, inputs: { x: { dims: [4096, 4096] } } }] }, W));
    expect(message).toContain('model_warmup[0].inputs.x.dims');
    expect(message).toContain(String(CONFIG_LIMITS.warmupElements));
  });

  it('lists are bounded: a million preferred sizes is refused by count', () => {
    const message = errorOf(() => validateConfig({ dynamic_batching: { preferred_batch_size: new Array(1_000_000).fill(1) } }, W));
    expect(message).toBe(`${W}: dynamic_batching.preferred_batch_size: at most ${CONFIG_LIMITS.preferredBatchSizes} entries, got 1000000`);
  });
});

describe('nesting and size', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

  it('pbtxt nested 100,000 levels is a config error naming the limit, not a stack overflow', () => {
    const text = 'p{'.repeat(100_000) + '}'.repeat(100_000);
    const start = performance.now();
    const message = errorOf(() => parseConfigPbtxt(text, 'c.pbtxt'));
    expect(message).toMatch(/^c\.pbtxt:1:\d+: messages nested deeper than 64 levels/);
    // Refused while tokenizing, at the 65th level, not after tokenizing the whole file (0.5 s here).
    expect(performance.now() - start).toBeLessThan(100);
  });

  it('pbtxt nested within the limit still parses (and is then validated)', () => {
    const text = 'optimization { '.repeat(60) + '}'.repeat(60);
    expect(errorOf(() => parseConfigPbtxt(text, 'c.pbtxt'))).not.toMatch(/nested/);
  });

  it('JSON nested 100,000 levels is refused by config.json and a load override', () => {
    const json = `{"dynamic_batching": ${deep(100_000)}}`;
    expect(errorOf(() => parseConfigJson(json, W))).toBe(`${W}: nested deeper than 64 levels (the nesting limit of a config)`);
    expect(errorOf(() => loadConfig('m', { parameters: { config: `{"a": ${deep(100_000)}}` } }))).toBe(
      "load request for model 'm': parameters.config: nested deeper than 64 levels (the nesting limit of a config)",
    );
  });

  it('a live batching change nested 100,000 levels is refused before it is serialised', () => {
    let deep: unknown = {};
    for (let i = 0; i < 100_000; i++) deep = { '1': deep };
    expect(errorOf(() => validateChange({ priority_queue_policy: deep }, 'm'))).toBe('batching change of model "m": nested deeper than 64 levels (the nesting limit of a config)');
  });

  it('a config larger than the limit is refused before it is parsed', () => {
    const big = JSON.stringify({ name: 'x'.repeat(CONFIG_LIMITS.configBytes) });
    expect(errorOf(() => parseConfigJson(big, W))).toMatch(/larger than a config may be/);
    expect(errorOf(() => loadConfig('m', { parameters: { config: big } }))).toMatch(/parameters\.config: \d+ characters, larger than a config may be/);
  });

  it('many octal escapes in a pbtxt string parse in linear time', () => {
    const text = `name: "${'\\101'.repeat(200_000)}"`;
    const start = performance.now();
    expect(errorOf(() => parseConfigPbtxt(text, 'c.pbtxt'))).toMatch(/name must be a string of at most 4096 characters/);
    expect(performance.now() - start).toBeLessThan(1000);
  });

  it('a field repeated 140,000 times is shaped in linear time', () => {
    const text = `input { name: "x" ${'dims:1 '.repeat(140_000)} }`;
    const start = performance.now();
    expect(errorOf(() => parseConfigPbtxt(text, 'c.pbtxt'))).toMatch(/input\[0\]\.dims: at most 16 entries, got 140000/);
    // n² copies (what it cost before) would take minutes; a loaded 2-core machine takes a few seconds.
    expect(performance.now() - start).toBeLessThan(10_000);
  }, 30_000);
});

describe('hostile keys and echoed text', () => {
  it('an unknown 8 MB key gets no edit-distance hint, fast, and is echoed truncated', () => {
    const key = 'k'.repeat(8 * 1024 * 1024);
    const change = { [key]: 1 };
    const config = { dynamic_batching: { [key]: 1 } };
    for (const attempt of [() => validateChange(change, 'm'), () => validateConfig(config, W)]) {
      const start = performance.now();
      const message = errorOf(attempt);
      // The edit distance over it took seconds (13 s for 60 MB).
      expect(performance.now() - start).toBeLessThan(1000);
      expect(message.length).toBeLessThan(600);
      expect(message).toContain(`(${key.length} characters)`);
    }
  });

  it('short typos still get a hint', () => {
    expect(errorOf(() => validateConfig({ max_batch_sizes: 4 }, W))).toContain('did you mean max_batch_size?');
  });

  it('a huge value is previewed without serialising it', () => {
    const value = new Array(2_000_000).fill('abc');
    const start = performance.now();
    const message = errorOf(() => validateConfig({ max_batch_size: value }, W));
    expect(performance.now() - start).toBeLessThan(1000);
    expect(message).toMatch(/^c\.json: max_batch_size must be an integer from 0 to 4096, got \["abc","abc",.*\.\.\.$/);
    expect(message.length).toBeLessThan(200);
  });

  it('relativeToDirectory drops the repository from a lower layer\'s message', () => {
    expect(relativeToDirectory('cannot load model /srv/models/iris/1/model.onnx: bad', '/srv/models')).toBe('cannot load model iris/1/model.onnx: bad');
    expect(relativeToDirectory('x /srv/models/a', '/srv/models/')).toBe('x a');
    expect(relativeToDirectory('/a/b', '/')).toBe('/a/b');
  });

  it('truncateForMessage and previewValue', () => {
    expect(truncateForMessage('short')).toBe('short');
    expect(truncateForMessage('x'.repeat(100), 10)).toBe('xxxxxxx... (100 characters)');
    expect(previewValue({ a: [1, 'b', null] })).toBe('{"a":[1,"b",null]}');
    expect(previewValue(undefined)).toBe('nothing');
    expect(previewValue('y'.repeat(1000), 20)).toHaveLength(20);
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(previewValue(deep, 10)).toBe('[[[[[[[...');
  });
});

describe('TensorRT engine cache path', () => {
  const trt = (engine_cache_path: string) => ({ optimization: { provider: { kind: 'tensorrt', engine_cache_path } } });

  it('absolute paths and .. are refused by validation (config.json, a load override, Triton accelerator parameters)', () => {
    for (const p of ['/etc/evil', '../outside', 'a/../../b', 'C:\\x']) {
      expect(errorOf(() => validateConfig(trt(p), W))).toContain(`${W}: optimization.provider.engine_cache_path must be a path relative to the server's TensorRT cache directory`);
    }
    const accelerator = { optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt', parameters: { trt_engine_cache_path: '/tmp/x' } }] } } };
    expect(errorOf(() => validateConfig(accelerator, W))).toContain('trt_engine_cache_path must be a path relative');
  });

  it('a relative path is resolved inside the cache directory; without one configured it is refused', () => {
    const metadata = { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1, 2] }], batchable: true };
    const config = validateConfig(trt('iris/v1'));
    const done = completeConfig(config, metadata as never, 'iris', { trtCacheDir: '/var/cache/tw' });
    expect(done.load.provider).toMatchObject({ kind: 'tensorrt', engineCachePath: '/var/cache/tw/iris/v1' });
    expect(errorOf(() => completeConfig(config, metadata as never, 'iris'))).toContain('no TensorRT cache directory');
    // The check holds even for a config that skipped validation.
    expect(errorOf(() => completeConfig({ optimization: { provider: { kind: 'tensorrt', engine_cache_path: '../../etc' } } }, metadata as never, 'iris', { trtCacheDir: '/var/cache/tw' }))).toContain(
      'must stay inside the server\'s TensorRT cache directory',
    );
  });

  it('tensorwire serve --trt-cache-dir sets the directory', () => {
    expect(parseServeArgs(['--repo', 'models', '--trt-cache-dir', '/var/cache/trt']).trtCacheDir).toBe('/var/cache/trt');
    expect(parseServeArgs(['--repo', 'models'])).not.toHaveProperty('trtCacheDir');
  });
});
