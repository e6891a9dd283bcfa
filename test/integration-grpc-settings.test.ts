/**
 * TraceSetting and LogSettings over gRPC against a real server: the same TraceControl and
 * ServerLog as GET/POST /v2/trace/setting and /v2/logging (a change over one transport is
 * read over the other), Triton's message shapes, the same validation messages, and a traced
 * gRPC inference written to the trace file with its GRPC_SEND_END stamp.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel } from './fixtures/models';
import { tempDir } from './helpers/engine-run';
import { failure, rawFp32Request, startGrpcHarness, unary, type GrpcHarness } from './helpers/grpc-harness';

const MLP = { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' };
let h: GrpcHarness;
const traceDir = tempDir('tw-grpc-trace-');

beforeAll(async () => {
  h = await startGrpcHarness({ models: [{ name: 'mlp', versions: { 1: (d: string) => mlpModel(d, MLP) } }], loadModels: ['mlp'], traceDir: traceDir.dir });
}, 120_000);
afterAll(async () => {
  await h?.close();
  traceDir.cleanup();
});

async function httpGet(path: string): Promise<unknown> {
  return (await fetch(`${h.tw.url}${path}`)).json();
}

/** Trace settings as the JSON body of HTTP's GET, from a TraceSettingResponse. */
function asJson(settings: Record<string, { value: string[] }>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(settings).map(([k, { value }]) => [k, k === 'trace_level' ? value : value[0] ?? '']));
}

async function linesOf(file: string, n: number): Promise<string[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
    if (lines.length >= n || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('TraceSetting', () => {
  it('reads the global settings in Triton\'s shape, the same HTTP answers', async () => {
    const r = await unary(h.client, 'TraceSetting', { settings: {} });
    expect(r.settings).toEqual({
      trace_level: { value: ['OFF'] },
      trace_rate: { value: ['1000'] },
      trace_count: { value: ['-1'] },
      log_frequency: { value: ['0'] },
      trace_file: { value: [''] },
      trace_mode: { value: ['triton'] },
    });
    expect(asJson(r.settings)).toEqual(await httpGet('/v2/trace/setting'));
  });

  it('turns tracing on; a gRPC inference is traced with GRPC_SEND_END; a model override and its clearing', async () => {
    const on = await unary(h.client, 'TraceSetting', { settings: { trace_level: { value: ['TIMESTAMPS'] }, trace_rate: { value: ['1'] }, trace_file: { value: ['grpc.jsonl'] } } });
    expect(on.settings.trace_level).toEqual({ value: ['TIMESTAMPS'] });
    expect(on.settings.trace_rate).toEqual({ value: ['1'] });
    expect(await httpGet('/v2/trace/setting')).toMatchObject({ trace_level: ['TIMESTAMPS'], trace_rate: '1', trace_file: 'grpc.jsonl' });

    await unary(h.client, 'ModelInfer', rawFp32Request('mlp', 'input', [1, 4], Float32Array.of(0.1, 0.2, 0.3, 0.4), { id: 'traced-1' }));
    const [line] = await linesOf(join(traceDir.dir, 'grpc.jsonl'), 1);
    expect(line).toContain('"request_id":"traced-1"');
    expect(line).toContain('"name":"GRPC_SEND_END"');

    const model = await unary(h.client, 'TraceSetting', { model_name: 'mlp', settings: { trace_rate: { value: ['7'] } } });
    expect(model.settings.trace_rate).toEqual({ value: ['7'] });
    expect(await httpGet('/v2/models/mlp/trace/setting')).toMatchObject({ trace_rate: '7' });
    expect((await unary(h.client, 'TraceSetting', { model_name: 'mlp', settings: {} })).settings.trace_rate).toEqual({ value: ['7'] });
    // An empty value list clears the model's override (JSON null over HTTP).
    const cleared = await unary(h.client, 'TraceSetting', { model_name: 'mlp', settings: { trace_rate: { value: [] } } });
    expect(cleared.settings.trace_rate).toEqual({ value: ['1'] });

    const off = await unary(h.client, 'TraceSetting', { settings: { trace_level: { value: ['OFF'] } } });
    expect(off.settings.trace_level).toEqual({ value: ['OFF'] });
  });

  it('refuses what HTTP refuses, with the same messages: bad file, unknown setting, bad rate, unknown model', async () => {
    const file = await failure(h.client, 'TraceSetting', { settings: { trace_file: { value: ['../escape.jsonl'] } } });
    expect(file.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(file.details).toMatch(/trace_file .* must be a plain file name inside --trace-dir/);
    const unknown = await failure(h.client, 'TraceSetting', { settings: { trace_colour: { value: ['red'] } } });
    expect(unknown.details).toContain("unknown trace setting 'trace_colour'");
    const rate = await failure(h.client, 'TraceSetting', { settings: { trace_rate: { value: ['0'] } } });
    expect(rate.details).toContain('trace_rate must be an integer from 1 to');
    const many = await failure(h.client, 'TraceSetting', { settings: { trace_rate: { value: ['1', '2'] } } });
    expect(many.code).toBe(grpc.status.INVALID_ARGUMENT);
    const global = await failure(h.client, 'TraceSetting', { settings: { trace_rate: { value: [] } } });
    expect(global.details).toContain('the global trace_rate needs a value');
    const model = await failure(h.client, 'TraceSetting', { model_name: 'nope', settings: {} });
    expect(model.code).toBe(grpc.status.NOT_FOUND);
    expect(await httpGet('/v2/trace/setting')).toMatchObject({ trace_level: ['OFF'], trace_rate: '1' });
  });
});

describe('LogSettings', () => {
  it('reads every setting, changes some (bool, uint32, string), HTTP sees the change', async () => {
    const r = await unary(h.client, 'LogSettings', { settings: {} });
    expect(r.settings).toEqual({
      log_file: { string_param: '', parameter_choice: 'string_param' },
      log_info: { bool_param: true, parameter_choice: 'bool_param' },
      log_warnings: { bool_param: true, parameter_choice: 'bool_param' },
      log_errors: { bool_param: true, parameter_choice: 'bool_param' },
      log_verbose_level: { uint32_param: 0, parameter_choice: 'uint32_param' },
      log_format: { string_param: 'default', parameter_choice: 'string_param' },
    });
    const changed = await unary(h.client, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 1 }, log_info: { bool_param: false }, log_format: { string_param: 'ISO8601' } } });
    expect(changed.settings.log_verbose_level.uint32_param).toBe(1);
    expect(changed.settings.log_info.bool_param).toBe(false);
    expect(await httpGet('/v2/logging')).toEqual({ log_file: '', log_info: false, log_warnings: true, log_errors: true, log_verbose_level: 1, log_format: 'ISO8601' });
    await unary(h.client, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 0 }, log_info: { bool_param: true }, log_format: { string_param: 'default' } } });
  });

  it('refuses bad values naming the setting, and changes nothing', async () => {
    const level = await failure(h.client, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 1000 } } });
    expect(level.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(level.details).toContain('log_verbose_level must be an integer from 0 to 255');
    expect((await failure(h.client, 'LogSettings', { settings: { log_file: { string_param: '/tmp/x.log' } } })).details).toContain('log_file cannot be set over the network');
    expect((await failure(h.client, 'LogSettings', { settings: { log_info: { uint32_param: 1 } } })).details).toContain('log_info must be true or false');
    expect((await failure(h.client, 'LogSettings', { settings: { log_colour: { bool_param: true } } })).details).toContain("unknown setting 'log_colour'");
    expect((await failure(h.client, 'LogSettings', { settings: { log_info: {} } })).details).toContain('log_info has no value');
    expect((await failure(h.client, 'LogSettings', { settings: { log_errors: { bool_param: false }, log_format: { string_param: 'xml' } } })).details).toContain('log_format must be "default" or "ISO8601"');
    expect(await httpGet('/v2/logging')).toMatchObject({ log_errors: true, log_verbose_level: 0, log_format: 'default' });
  });
});
