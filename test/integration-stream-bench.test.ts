/**
 * `tensorwire bench --protocol ws --pipeline N` (the generator's raw WebSocket lanes,
 * lib/bench/ws-connection.ts) against the real server: many requests in flight per socket,
 * every answer matched to its lane, the counts equal to what the server answered.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBenchMain } from './helpers/bench-main';
import { versionedModel } from './fixtures/models';
import { call, startHarness, type Harness } from './helpers/server-harness';

let h: Harness;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-stream-bench-'));
  h = await startHarness({ models: [{ name: 'versioned', versions: { 3: (d) => versionedModel(d, 3) } }] });
}, 60_000);
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

const bench = (args: string[]) => runBenchMain(dir, args);

async function served(): Promise<number> {
  return (await call(h.base, '/v2/models/versioned/stats')).json.model_stats[0].inference_stats.success.count;
}

describe('tensorwire bench over the stream', () => {
  it('--pipeline 8: 16 requests in flight on 2 sockets, counts equal to the server\'s', async () => {
    const before = await served();
    const r = await bench(['--url', h.base, '--model', 'versioned', '--protocol', 'ws', '--pipeline', '8', '--concurrency', '16', '--duration', '700ms', '--warmup', '0', '--workers', '0', '--no-server-metrics']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('ws (pipeline 8)');
    const level = r.report!.levels[0]!;
    expect(r.report!.pipeline).toBe(8);
    expect(level.errors).toBe(0);
    expect(level.requests).toBeGreaterThan(100);
    expect(level.totals.sent).toBe(level.totals.ok);
    expect(level.totals.abandoned).toBe(0);
    // Every answer the server gave was counted once (plus the preflight request).
    expect((await served()) - before).toBe(level.totals.ok + r.report!.preflightRequests);
  });

  it('--pipeline 1 (a socket per request in flight) and a worker thread count the same way', async () => {
    const before = await served();
    const r = await bench(['--url', h.base, '--model', 'versioned', '--protocol', 'ws', '--concurrency', '4', '--duration', '500ms', '--warmup', '0', '--workers', '1', '--no-server-metrics']);
    expect(r.code).toBe(0);
    const level = r.report!.levels[0]!;
    expect(level.errors).toBe(0);
    expect((await served()) - before).toBe(level.totals.ok + r.report!.preflightRequests);
  });

  it('refuses --pipeline with an HTTP protocol', async () => {
    const r = await bench(['--url', h.base, '--model', 'versioned', '--protocol', 'http-binary', '--pipeline', '4']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--pipeline applies to --protocol ws, grpc and grpc-stream only');
  });
});
