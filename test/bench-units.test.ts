/**
 * The load generator's parts on their own: latency histogram, HTTP response parser,
 * command line, stability rule, /metrics parsing, CSV and SVG output.
 */
import { describe, expect, test } from 'vitest';
import { parseArgs, parseDuration } from '../lib/bench/args';
import { LatencyHistogram } from '../lib/bench/histogram';
import { HttpResponseParser } from '../lib/bench/http-parser';
import { niceStep, renderPlot } from '../lib/bench/plot';
import { toCsv } from '../lib/bench/report';
import { isStable, type BenchReport, type LevelResult } from '../lib/bench/run';
import { breakdown, parseServerMetrics } from '../lib/bench/server-metrics';

describe('LatencyHistogram', () => {
  test('quantiles are within 1.6% of the exact ones over a wide range', () => {
    const h = new LatencyHistogram();
    const values: number[] = [];
    for (let i = 1; i <= 100_000; i++) values.push(10 * 1.0001 ** i); // 10 µs .. ~220 ms
    for (const v of values) h.record(v);
    values.sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.95, 0.99, 0.999]) {
      const exact = values[Math.ceil(q * values.length) - 1]!;
      expect(Math.abs(h.quantile(q) - exact) / exact).toBeLessThan(0.016);
    }
    expect(h.quantile(1)).toBe(values.at(-1));
    expect(h.count).toBe(100_000);
    expect(h.min).toBe(values[0]);
  });

  test('merging two halves gives the histogram of the whole', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    const whole = new LatencyHistogram();
    for (let i = 0; i < 1000; i++) {
      const v = 50 + ((i * 7919) % 5000);
      (i % 2 ? a : b).record(v);
      whole.record(v);
    }
    const merged = LatencyHistogram.fromData(a.toData()).merge(b.toData());
    expect(merged.count).toBe(1000);
    expect(merged.sum).toBe(whole.sum);
    for (const q of [0.1, 0.5, 0.99]) expect(merged.quantile(q)).toBe(whole.quantile(q));
    expect([merged.min, merged.max]).toEqual([whole.min, whole.max]);
  });

  test('values beyond the range land in the last bucket, sub-microsecond ones in the first', () => {
    const h = new LatencyHistogram();
    h.record(0.2);
    h.record(1e12);
    h.record(2e12);
    expect(h.quantile(0.3)).toBeCloseTo(0.5, 5); // middle of [0, 1)
    expect(h.quantile(0.6)).toBe(2e12); // overflow bucket: the exact max
    expect(h.quantile(1)).toBe(2e12);
    expect(new LatencyHistogram().quantile(0.99)).toBe(0);
  });
});

describe('HttpResponseParser', () => {
  function collect(chunks: string[], keepFirst = false): { status: number; keepAlive: boolean; body?: string }[] {
    const out: { status: number; keepAlive: boolean; body?: string }[] = [];
    const p = new HttpResponseParser((status, keepAlive, body) => out.push(body === undefined ? { status, keepAlive } : { status, keepAlive, body: body.toString() }));
    p.keepNextBody = keepFirst;
    for (const c of chunks) p.feed(Buffer.from(c, 'latin1'));
    return out;
  }

  test('content-length responses split anywhere, back to back', () => {
    const one = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello';
    const two = 'HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}';
    const all = one + two;
    for (let cut = 1; cut < all.length; cut++) {
      const got = collect([all.slice(0, cut), all.slice(cut)], true);
      expect(got).toEqual([
        { status: 200, keepAlive: true, body: 'hello' },
        { status: 500, keepAlive: true },
      ]);
    }
  });

  test('chunked bodies, 100 Continue, connection close and 204', () => {
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n';
    const bytes = [...chunked];
    expect(collect(bytes, true)).toEqual([{ status: 200, keepAlive: true, body: 'hello world' }]);
    expect(collect(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'])).toEqual([{ status: 204, keepAlive: false }]);
  });

  test('a body delimited by the close completes on end()', () => {
    const out: number[] = [];
    const p = new HttpResponseParser((status) => out.push(status));
    p.feed(Buffer.from('HTTP/1.0 200 OK\r\n\r\npartial'));
    expect(out).toEqual([]);
    expect(p.end()).toBe(true);
    expect(out).toEqual([200]);
  });

  test('garbage is refused', () => {
    const p = new HttpResponseParser(() => {});
    expect(() => p.feed(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toThrow(/not an HTTP\/1.x response/);
  });
});

describe('command line', () => {
  test('defaults and every flag', () => {
    const o = parseArgs(['--model', 'resnet']);
    expect(o).toMatchObject({ url: 'http://127.0.0.1:8000', model: 'resnet', mode: 'concurrency', levels: [1], protocol: 'http-binary', durationMs: 5000, batch: 1, metricsUrl: 'http://127.0.0.1:8000/metrics' });
    const r = parseArgs(['--url=http://h:9/', '--model', 'm', '--version', '2', '--rate', '100,250.5', '--distribution', 'poisson', '--protocol', 'ws', '--duration', '750ms', '--warmup', '0', '--stabilize', '--max-windows', '4', '--batch', '8', '--shape', 'x:8x3', '--shape', 'y:1', '--json', 'o.json', '--workers', '0', '--no-server-metrics']);
    expect(r).toMatchObject({ url: 'http://h:9', version: '2', mode: 'rate', levels: [100, 250.5], distribution: 'poisson', protocol: 'ws', durationMs: 750, warmupMs: 0, stabilize: true, maxWindows: 4, batch: 8, shapes: { x: [8, 3], y: [1] }, jsonOut: 'o.json', workers: 0, metricsUrl: null });
    expect(parseArgs(['--help'])).toBe('help');
    expect(parseDuration('--duration', '2m')).toBe(120_000);
    expect(parseDuration('--duration', '1.5')).toBe(1500);
  });

  test('mistakes name the flag and what was expected', () => {
    expect(() => parseArgs([])).toThrow('--model is required');
    expect(() => parseArgs(['--model', 'm', '--concurrency', '1,x'])).toThrow("--concurrency: expected positive integers, got 'x'");
    expect(() => parseArgs(['--model', 'm', '--rate', '5', '--concurrency', '2'])).toThrow(/exclusive/);
    expect(() => parseArgs(['--model', 'm', '--protocol', 'udp'])).toThrow("--protocol: expected http-binary, http-json, ws, grpc or grpc-stream, got 'udp'");
    expect(() => parseArgs(['--model', 'm', '--duration', 'soon'])).toThrow("--duration: expected a duration like 500ms, 5s or 1m, got 'soon'");
    expect(() => parseArgs(['--model', 'm', '--frobnicate'])).toThrow('unknown flag --frobnicate');
    expect(() => parseArgs(['--model', 'm', '--shape', 'x'])).toThrow(/--shape: expected name:dims/);
    expect(() => parseArgs(['--model', 'm', '--url', 'https://x'])).toThrow(/only http:\/\//);
  });
});

describe('stability rule', () => {
  test('needs three windows within the tolerance on both throughput and p99', () => {
    expect(isStable([{ throughput: 100, p99: 5 }, { throughput: 100, p99: 5 }], 10)).toBe(false);
    expect(isStable([{ throughput: 50, p99: 9 }, { throughput: 100, p99: 5 }, { throughput: 104, p99: 5.2 }, { throughput: 98, p99: 4.9 }], 10)).toBe(true);
    expect(isStable([{ throughput: 100, p99: 5 }, { throughput: 104, p99: 8 }, { throughput: 98, p99: 4.9 }], 10)).toBe(false);
  });
});

describe('server metrics', () => {
  const text = (q: number, n: number) => `# HELP x\ntensorwire_request_duration_seconds_sum{model="m",version="1",stage="queue"} ${q}
tensorwire_request_duration_seconds_count{model="m",version="1",stage="queue"} ${n}
tensorwire_request_duration_seconds_sum{model="m",version="1",stage="total"} ${q * 2}
tensorwire_request_duration_seconds_count{model="m",version="1",stage="total"} ${n}
tensorwire_request_duration_seconds_count{model="other",version="1",stage="total"} 999
tensorwire_inference_count_total{model="m",version="1"} ${n * 4}
tensorwire_inference_exec_count_total{model="m",version="1"} ${n}
`;
  test('the breakdown is the delta of sums over the delta of counts', () => {
    const b = breakdown(parseServerMetrics(text(1, 100), 'm'), parseServerMetrics(text(3, 300), 'm'))!;
    expect(b.requests).toBe(200);
    expect(b.stagesMs.queue).toBeCloseTo(10, 9); // 2 s over 200 requests
    expect(b.stagesMs.total).toBeCloseTo(20, 9);
    expect(b.avgBatch).toBe(4);
    expect(parseServerMetrics(text(1, 1), 'm', '2')).toBeUndefined();
    expect(parseServerMetrics('up 1\n', 'm')).toBeUndefined();
  });
});

describe('outputs', () => {
  const level = (n: number, rps: number, p50: number, p99: number): LevelResult => ({
    mode: 'concurrency', level: n, windows: 1, durationS: 1, requests: rps, errors: 0, errorKinds: {}, throughput: rps, inferPerSec: rps, sendRate: rps,
    latencyMs: { min: p50 / 2, mean: p50, p50, p90: p99, p95: p99, p99, max: p99 * 2 }, maxBacklog: 0, totals: { sent: rps, ok: rps, failed: 0, abandoned: 0, connectErrors: 0 },
  });
  const report: BenchReport = {
    url: 'http://x', model: 'm<&>', protocol: 'http-binary', mode: 'concurrency', samplesPerRequest: 1, inputs: [], workers: 1,
    startedAt: '', preflightRequests: 1, warnings: [], levels: [level(1, 1000, 1, 2), level(8, 5000, 1.5, 4)],
  };

  test('CSV has a header and one row per level', () => {
    const rows = toCsv(report).trim().split('\n').map((r) => r.split(','));
    expect(rows).toHaveLength(3);
    const col = (name: string) => rows[0]!.indexOf(name);
    expect(rows[2]![col('level')]).toBe('8');
    expect(rows[2]![col('throughput_rps')]).toBe('5000');
    expect(rows[1]![col('latency_p99_ms')]).toBe('2');
  });

  test('the SVG plots one point per level and series, with escaped text', () => {
    const svg = renderPlot(report);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain('class="series-p50"');
    expect(svg).toContain('class="series-p99"');
    expect(svg).toContain('m&lt;&amp;&gt;');
    expect(niceStep(5000)).toBe(1000);
    expect(niceStep(5250)).toBe(2000);
    expect(niceStep(0.9)).toBe(0.2);
  });
});
