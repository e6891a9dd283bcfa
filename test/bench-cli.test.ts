/**
 * `tensorwire bench` end to end against a real (trivial) uWS KServe server: the counts it
 * reports match what the server saw, percentiles are ordered, 500s are counted as errors,
 * rate mode keeps its rate, the server-side breakdown comes from /metrics, and the
 * JSON/CSV/SVG files are written.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runBenchMain } from './helpers/bench-main';
import type { LevelResult } from '../lib/bench/run';
import { STAGE_US, startTrivialServer, type TrivialServer } from './bench-trivial-server';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-bench-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bench = (args: string[]) => runBenchMain(dir, args);

function expectOrdered(l: LevelResult): void {
  const { min, p50, p90, p95, p99, max } = l.latencyMs;
  expect(min).toBeGreaterThan(0);
  expect(min).toBeLessThanOrEqual(p50);
  expect(p50).toBeLessThanOrEqual(p90);
  expect(p90).toBeLessThanOrEqual(p95);
  expect(p95).toBeLessThanOrEqual(p99);
  expect(p99).toBeLessThanOrEqual(max);
}

describe('tensorwire bench against a trivial uWS server', () => {
  let server: TrivialServer;
  beforeAll(async () => {
    server = await startTrivialServer({ metrics: true });
  });
  afterAll(() => server.close());

  test('concurrency levels in a worker thread: counts match the server, files written, server breakdown read', async () => {
    const before = server.inferSeen();
    const csv = join(dir, 'out.csv');
    const svg = join(dir, 'out.svg');
    const r = await bench(['--url', server.url, '--model', 'm', '--concurrency', '1,4', '--duration', '700ms', '--warmup', '0', '--workers', '1', '--csv', csv, '--plot', svg]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const report = r.report!;
    expect(report.levels.map((l) => l.level)).toEqual([1, 4]);
    const sent = report.levels.reduce((a, l) => a + l.totals.sent, 0);
    // Everything the generator sent (plus the one preflight request) reached the server.
    expect(server.inferSeen() - before).toBe(sent + report.preflightRequests);
    for (const l of report.levels) {
      expect(l.errors).toBe(0);
      expect(l.totals.failed).toBe(0);
      expect(l.totals.ok).toBe(l.totals.sent);
      expect(l.requests).toBeGreaterThan(50);
      expect(l.requests).toBeLessThanOrEqual(l.totals.ok);
      expect(l.throughput).toBeCloseTo(l.requests / l.durationS, 6);
      expect(l.durationS).toBeGreaterThan(0.6);
      expectOrdered(l);
      // The server records fixed stage timings: the breakdown must read them back.
      expect(l.server!.stagesMs.queue).toBeCloseTo(STAGE_US.queueUs / 1000, 6);
      expect(l.server!.stagesMs.compute_infer).toBeCloseTo(STAGE_US.computeInferUs / 1000, 6);
      expect(l.server!.avgBatch).toBe(1);
      expect(l.server!.requests).toBeGreaterThan(0);
    }
    expect(r.out).toMatch(/Concurrency\s+Req\/s\s+Infer\/s\s+p50 ms\s+p90 ms\s+p95 ms\s+p99 ms\s+Max ms\s+Errors/);
    expect(r.out).toContain('Server-side (tensorwire /metrics');
    const rows = readFileSync(csv, 'utf8').trim().split('\n');
    expect(rows).toHaveLength(3);
    expect(rows[2]!.split(',')[1]).toBe('4');
    const plot = readFileSync(svg, 'utf8');
    expect(plot).toMatch(/^<svg /);
    expect(plot.match(/<circle /g)).toHaveLength(4);
  });

  test('JSON protocol, in-process driver, batch 3: infer/s is three times req/s', async () => {
    const r = await bench(['--url', server.url, '--model', 'm', '--protocol', 'http-json', '--batch', '3', '--concurrency', '2', '--duration', '500ms', '--warmup', '0', '--workers', '0', '--no-server-metrics']);
    expect(r.code).toBe(0);
    const l = r.report!.levels[0]!;
    expect(r.report!.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [3, 4] }]);
    expect(l.inferPerSec).toBeCloseTo(3 * l.throughput, 6);
    expect(l.server).toBeUndefined();
    expectOrdered(l);
  });

  test('WebSocket stream at a constant rate keeps the rate', async () => {
    const before = server.inferSeen();
    const r = await bench(['--url', server.url, '--model', 'm', '--protocol', 'ws', '--rate', '200', '--duration', '1s', '--warmup', '200ms', '--workers', '1']);
    expect(r.code).toBe(0);
    const l = r.report!.levels[0]!;
    expect(l.sendRate).toBeGreaterThan(170);
    expect(l.sendRate).toBeLessThan(230);
    expect(l.errors).toBe(0);
    expect(server.inferSeen() - before).toBe(l.totals.sent + 1);
    expectOrdered(l);
  });

  test('--input-file: the tensors of the request file are sent (binary extension), its batch counts as samples', async () => {
    const file = join(dir, 'request.json');
    writeFileSync(file, JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 4], data: [[1, 2, 3, 4], [5, 6, 7, 8]] }] }));
    const r = await bench(['--url', server.url, '--model', 'm', '--input-file', file, '--concurrency', '1', '--duration', '300ms', '--warmup', '0', '--workers', '0']);
    expect(r.code).toBe(0);
    expect(r.report!.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [2, 4] }]);
    expect(r.report!.samplesPerRequest).toBe(2);
    const l = r.report!.levels[0]!;
    expect(l.errors).toBe(0); // the server decoded every request and computed y = 2x
    expect(l.inferPerSec).toBeCloseTo(2 * l.throughput, 6);
    expect(l.server!.avgBatch).toBe(2);
  });

  test('--stabilize measures at least three windows and at most --max-windows, with a progress line', async () => {
    const r = await bench(['--url', server.url, '--model', 'm', '--concurrency', '2', '--duration', '300ms', '--warmup', '0', '--stabilize', '--max-windows', '4', '--workers', '0', '--progress']);
    expect(r.err).toMatch(/\rconcurrency 2 {2}window \d {2}[\d.]+s {2}\d+ ok {2}\d+ req\/s {2}p99 [\d.]+ ms {2}errors 0/);
    expect(r.code).toBe(0);
    const l = r.report!.levels[0]!;
    expect(l.windows).toBeGreaterThanOrEqual(3);
    expect(l.windows).toBeLessThanOrEqual(4);
    expect(typeof l.stable).toBe('boolean');
    expect(l.durationS).toBeGreaterThan(0.85); // the last three windows of 300 ms
    expect(l.durationS).toBeLessThan(1.3);
  });
});

describe('other servers', () => {
  test('a node:http server answering chunked bodies and closing every connection: every response counted', async () => {
    let seen = 0;
    const srv = createServer((req, res) => {
      if (req.method === 'GET') {
        res.end(JSON.stringify({ name: 'm', inputs: [{ name: 'x', datatype: 'INT64', shape: [2] }], outputs: [] }));
        return;
      }
      req.resume();
      req.on('end', () => {
        seen++;
        res.setHeader('Connection', 'close');
        res.write('{"outputs":['); // no Content-Length: node sends it chunked
        setImmediate(() => res.end(']}'));
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    try {
      const r = await bench(['--url', `http://127.0.0.1:${port}`, '--model', 'm', '--protocol', 'http-json', '--concurrency', '2', '--duration', '400ms', '--warmup', '0', '--workers', '0']);
      expect(r.code).toBe(0);
      const l = r.report!.levels[0]!;
      expect(r.report!.inputs).toEqual([{ name: 'x', datatype: 'INT64', shape: [2] }]);
      expect(l.errors).toBe(0);
      expect(l.requests).toBeGreaterThan(10);
      expect(l.totals.ok).toBe(l.totals.sent);
      expect(seen).toBe(l.totals.sent + 1);
      expect(l.server).toBeUndefined(); // no tensorwire /metrics there
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });
});

describe('errors', () => {
  test('500s are counted as errors, exactly as many as the server failed', async () => {
    const server = await startTrivialServer({ failEvery: 4 });
    try {
      const r = await bench(['--url', server.url, '--model', 'm', '--concurrency', '3', '--duration', '500ms', '--warmup', '0', '--workers', '1']);
      expect(r.code).toBe(0);
      const l = r.report!.levels[0]!;
      expect(l.totals.failed).toBe(server.failed());
      expect(l.totals.ok + l.totals.failed).toBe(l.totals.sent);
      expect(server.inferSeen()).toBe(l.totals.sent + 1);
      expect(l.errors).toBeGreaterThan(0);
      expect(l.errorKinds).toEqual({ 'HTTP 500': l.errors });
      // Every 4th request fails: a quarter of the window's requests, give or take the edges.
      expect(l.errors / (l.errors + l.requests)).toBeCloseTo(0.25, 1);
      expect(r.out).toMatch(/errors at 3: HTTP 500 x\d+/);
    } finally {
      server.close();
    }
  });

  test('an unknown model, a refused request and a bad flag give exit codes 1, 1 and 2 with the reason', async () => {
    const server = await startTrivialServer();
    try {
      const unknown = await bench(['--url', server.url, '--model', 'nope', '--duration', '100ms', '--warmup', '0']);
      expect(unknown.code).toBe(1);
      expect(unknown.err).toMatch(/answered 404.*\[NOT_FOUND\]/);
      // The trivial model takes x as FP32: a shape that does not fit its metadata is refused before any load.
      const refused = await bench(['--url', server.url, '--model', 'm', '--shape', 'x:2x5x1', '--duration', '100ms', '--warmup', '0']);
      expect(refused.code).toBe(1);
      expect(refused.err).toContain("--shape x:2x5x1 does not fit the model's shape [-1,4]");
      expect(server.inferSeen()).toBe(0);
      const usage = await bench(['--model', 'm', '--concurrency', '0']);
      expect(usage.code).toBe(2);
      expect(usage.err).toContain("--concurrency: expected positive integers, got '0'");
      expect(usage.err).toContain('Usage: tensorwire bench');
    } finally {
      server.close();
    }
  });

  test('a server that is not there: exit 1 naming the URL', async () => {
    const r = await bench(['--url', 'http://127.0.0.1:9', '--model', 'm', '--duration', '100ms', '--warmup', '0']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9\/v2\/models\/m.*\[UNAVAILABLE\]/);
  });
});
