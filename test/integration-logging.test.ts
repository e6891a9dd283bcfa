/**
 * Triton's logging extension against a real server: the settings round trip in Triton's
 * shape, bad values are 400s naming the setting, log_file cannot be set over the network, and
 * the settings change what the server logs (INFO lines off and on, verbose level 1 logs each
 * management action, ISO8601 puts the time first).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel } from './fixtures/models';
import { call, postJson, startHarness, type Harness } from './helpers/server-harness';

const model = { name: 'mlp', versions: { 1: (d: string) => mlpModel(d, { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' }) } };

describe('logging extension', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models: [model], modelControl: 'explicit', loadModels: ['mlp'], security: {} });
  }, 60_000);
  afterAll(() => h?.close());

  /** Unload and load again: state changes the core logs (a load of an unchanged model changes nothing). */
  const reload = async (): Promise<void> => {
    expect((await postJson(h.base, '/v2/repository/models/mlp/unload', {})).status).toBe(200);
    expect((await postJson(h.base, '/v2/repository/models/mlp/load', {})).status).toBe(200);
  };

  it('round-trips the settings in Triton\'s shape', async () => {
    const r = await call(h.base, '/v2/logging');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ log_file: '', log_info: true, log_warnings: true, log_errors: true, log_verbose_level: 0, log_format: 'default' });
    const set = await postJson(h.base, '/v2/logging', { log_warnings: false, log_verbose_level: 2 });
    expect(set.status).toBe(200);
    expect(set.json).toEqual({ log_file: '', log_info: true, log_warnings: false, log_errors: true, log_verbose_level: 2, log_format: 'default' });
    expect((await call(h.base, '/v2/logging')).json).toEqual(set.json);
    expect((await postJson(h.base, '/v2/logging', { log_warnings: true, log_verbose_level: 0 })).status).toBe(200);
  });

  it('refuses log_file, unbounded levels and unknown settings, changing nothing', async () => {
    for (const [body, what] of [
      [{ log_file: '/tmp/tw.log' }, /log_file cannot be set over the network/],
      [{ log_verbose_level: 1_000_000 }, /log_verbose_level must be an integer from 0 to 255/],
      [{ log_verbose_level: -1 }, /log_verbose_level must be an integer/],
      [{ log_info: 'yes' }, /log_info must be true or false/],
      [{ log_format: 'json' }, /log_format must be "default" or "ISO8601"/],
      [{ log_level: 1 }, /unknown setting 'log_level'/],
      [{ log_info: false, log_format: 'json' }, /log_format/],
    ] as const) {
      const r = await postJson(h.base, '/v2/logging', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error).toMatch(what);
    }
    expect((await call(h.base, '/v2/logging')).json.log_info).toBe(true);
    const form = await call(h.base, '/v2/logging', { method: 'POST', body: '{"log_info":false}', headers: { 'content-type': 'text/plain' } });
    expect(form.status).toBe(400);
    expect((await call(h.base, '/v2/logging')).json.log_info).toBe(true);
  });

  it('log_info turns the core\'s lines off and on', async () => {
    const n = h.log.length;
    await reload();
    expect(h.log.length).toBeGreaterThan(n);
    expect((await postJson(h.base, '/v2/logging', { log_info: false })).status).toBe(200);
    const off = h.log.length;
    await reload();
    expect(h.log.length).toBe(off);
    expect((await postJson(h.base, '/v2/logging', { log_info: true })).status).toBe(200);
    await reload();
    expect(h.log.length).toBeGreaterThan(off);
  });

  it('verbose level 1 logs each management action; ISO8601 puts the time first', async () => {
    await postJson(h.base, '/v2/logging', { log_verbose_level: 1, log_format: 'ISO8601' });
    const n = h.log.length;
    await reload();
    const lines = h.log.slice(n);
    expect(lines.some((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z V control repository\.load mlp by loopback: ok$/.test(l)), lines.join('\n')).toBe(true);
    expect(lines.some((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z I model mlp version 1: ready$/.test(l)), lines.join('\n')).toBe(true);
    expect((await postJson(h.base, '/v2/repository/models/ghost/load', {})).status).toBe(404);
    expect(h.log.at(-1)).toMatch(/V control repository\.load ghost by loopback: NOT_FOUND$/);
    await postJson(h.base, '/v2/logging', { log_verbose_level: 0, log_format: 'default' });
    const quiet = h.log.length;
    await reload();
    expect(h.log.slice(quiet).some((l) => l.includes('control '))).toBe(false);
  });
});
