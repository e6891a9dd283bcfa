/**
 * Errors keep their code on every wire (issue 14). For every code of the catalogue
 * (lib/errors.ts), a real server on 127.0.0.1 whose service throws that error answers:
 *
 * - over HTTP: the catalogue's status with a proper reason phrase on the status line (read
 *   from a raw socket: "403 Forbidden", never a bare "403"), the body `{"error", "code"}`,
 *   and Retry-After on 503 and 429;
 * - over the stream: an error frame `{"id", "error", "code", "status"}`.
 *
 * Every code the addon can raise (native/*.cpp, *.hpp) is one of the catalogue's, or it would
 * reach clients as INTERNAL. And a request refused while it is decoded, for a model the
 * server knows, counts as a failure of that model in /metrics and in its /stats.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, TensorwireError, type ErrorCode } from '../lib/errors';
import { startServer, type RunningServer } from '../lib/server/server';
import { versionedModel } from './fixtures/models';
import { RawStream } from './helpers/raw-stream';
import { call, metricValue, postJson, scrape, startHarness, waitFor, type Harness } from './helpers/server-harness';
import { FakeService } from './server-fixture';

const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

const ADD_INPUTS = [
  { name: 'INPUT0', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
  { name: 'INPUT1', datatype: 'FP32', shape: [1, 4], data: [10, 20, 30, 40] },
];

/** The reason phrases of RFC 9110 (and nginx's 499), which every catalogue status must go out with. */
const REASON: Record<number, string> = {
  401: 'Unauthorized',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  499: 'Client Closed Request',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

interface RawResponse {
  statusLine: string;
  headers: Map<string, string>;
  body: string;
}

/** POSTs `body` on a fresh socket and reads one response by its Content-Length (the status line as sent). */
function rawPost(port: number, path: string, body: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response to POST ${path} within 5 s; got ${JSON.stringify(data.toString('latin1'))}`));
    }, 5_000);
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = data.toString('latin1', 0, end).split('\r\n');
      const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers.get('content-length'));
      if (!(data.length >= end + 4 + length)) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ statusLine: statusLine!, headers, body: data.toString('utf8', end + 4, end + 4 + length) });
    });
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
}

describe('every catalogue code on every wire', () => {
  const service = new FakeService();
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(service, { host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('every catalogue status has a reason phrase to send', () => {
    expect(CODES.filter((code) => REASON[ERROR_CATALOGUE[code].status] === undefined)).toEqual([]);
  });

  it.each(CODES)('HTTP: %s goes out with its status line, {error, code} and, on 503/429, Retry-After', async (code) => {
    const { status } = ERROR_CATALOGUE[code];
    service.failWith = new TensorwireError(code, `x (${code})`);
    try {
      const r = await rawPost(server.port, '/v2/models/add/infer', JSON.stringify({ inputs: ADD_INPUTS }));
      expect(r.statusLine).toBe(`HTTP/1.1 ${status} ${REASON[status]}`);
      expect(r.headers.get('content-type')).toBe('application/json');
      expect(JSON.parse(r.body)).toEqual({ error: `x (${code})`, code });
      if (status === 503 || status === 429) expect(r.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
      else expect(r.headers.has('retry-after')).toBe(false);
    } finally {
      service.failWith = undefined;
    }
  });

  it('HTTP: Retry-After carries the error\'s own hint when it has one', async () => {
    service.failWith = new TensorwireError('QUEUE_FULL', 'x', { retryAfterSeconds: 7 });
    try {
      const r = await rawPost(server.port, '/v2/models/add/infer', JSON.stringify({ inputs: ADD_INPUTS }));
      expect(r.headers.get('retry-after')).toBe('7');
    } finally {
      service.failWith = undefined;
    }
  });

  it('stream: every code comes back as an error frame {id, error, code, status}', async () => {
    const client = await RawStream.open(`http://127.0.0.1:${server.port}`);
    try {
      for (const [i, code] of CODES.entries()) {
        service.failWith = new TensorwireError(code, `x (${code})`);
        client.sendText({ id: code, model_name: 'add', inputs: ADD_INPUTS });
        // One at a time: failWith is read when the request reaches the service.
        await client.count(i + 1);
      }
    } finally {
      service.failWith = undefined;
    }
    const frames = client.frames.map((f) => {
      expect(f.binary).toBe(false);
      return JSON.parse(f.data.toString('utf8'));
    });
    expect(frames).toEqual(CODES.map((code) => ({ id: code, error: `x (${code})`, code, status: ERROR_CATALOGUE[code].status })));
    expect(client.isOpen).toBe(true);
    client.close();
  });
});

describe('the addon raises catalogue codes only', () => {
  /** Every .cpp/.hpp/.h/.cu file under native/. */
  function nativeSources(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return nativeSources(path);
      return /\.(cpp|hpp|h|cu)$/.test(name) ? [path] : [];
    });
  }
  const sources = nativeSources(join(__dirname, '..', 'native')).map((path) => ({ path, text: readFileSync(path, 'utf8') }));

  it('every code literal the native sources throw or report is in ERROR_CATALOGUE', () => {
    // The ways native code names a code (native/errors.hpp): EngineError("CODE", ...),
    // ToJsError(env, "CODE", ...), a job's or load result's error_code = "CODE", and
    // CheckCuda(err, what, "CODE") with its default `code = "CODE"`.
    const patterns = [/\bEngineError\(\s*"([^"]*)"/g, /\bToJsError\(\s*\w+\s*,\s*"([^"]*)"/g, /\b\w*code\s*=\s*"([^"]*)"/g, /\bCheckCuda\([^;]*?,\s*"[^"]*"\s*,\s*"([^"]*)"\s*\)/g];
    const found = new Map<string, string>();
    for (const { path, text } of sources) {
      for (const pattern of patterns) for (const m of text.matchAll(pattern)) found.set(m[1]!, path);
    }
    // The grep works: it sees codes from several call styles.
    expect([...found.keys()]).toEqual(expect.arrayContaining(['INVALID_INPUT', 'MODEL_LOAD_FAILED', 'ENGINE_FAILURE', 'CANCELLED', 'PROVIDER_UNAVAILABLE']));
    const unknown = [...found].filter(([code]) => !(code in ERROR_CATALOGUE)).map(([code, path]) => `${code} (${path})`);
    expect(unknown).toEqual([]);
  });

  it('codes that are not literals only pass on a code that came from one', () => {
    // Anything else (a code built from text, a variable set elsewhere) would escape the check above.
    const FORWARDED = new Set(['code', 'e.code()', 'job->error_code', 'r->error_code', 'result->error_code', 'std::string code']);
    const other: string[] = [];
    for (const { path, text } of sources) {
      for (const m of text.matchAll(/\bEngineError\(\s*([^\s",)][^,)]*?)\s*,/g)) if (!FORWARDED.has(m[1]!)) other.push(`${path}: EngineError(${m[1]}`);
      for (const m of text.matchAll(/\bToJsError\(\s*\w+\s*,\s*([^\s",)][^,]*?)\s*,/g)) if (!FORWARDED.has(m[1]!) && !m[1]!.startsWith('const std::string&')) other.push(`${path}: ToJsError(env, ${m[1]}`);
      for (const m of text.matchAll(/\berror_code\s*=\s*([^\s";][^;]*);/g)) if (!FORWARDED.has(m[1]!.trim())) other.push(`${path}: error_code = ${m[1]}`);
    }
    expect(other).toEqual([]);
  });
});

describe('a request refused while decoding counts against its model', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ models: [{ name: 'versioned', versions: { 1: (d) => versionedModel(d, 1) } }] });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  const labels = { model: 'versioned', version: '1', outcome: 'failure', reason: 'INVALID_INPUT' };
  async function failures(): Promise<{ metric: number; stats: number }> {
    const stats = await call(h.base, '/v2/models/versioned/stats');
    expect(stats.status).toBe(200);
    return { metric: metricValue(await scrape(h.base), 'tensorwire_inference_requests_total', labels), stats: stats.json.model_stats[0].inference_stats.fail.count };
  }

  it('HTTP: a value count not matching the shape, and a body without inputs', async () => {
    const before = await failures();
    const count = await postJson(h.base, '/v2/models/versioned/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3] }] });
    expect(count.status).toBe(400);
    expect(count.json).toMatchObject({ code: 'INVALID_INPUT', error: expect.stringContaining("'x'") });
    const missing = await postJson(h.base, '/v2/models/versioned/infer', { id: 'no-inputs' });
    expect(missing.status).toBe(400);
    expect(missing.json).toMatchObject({ code: 'INVALID_INPUT', error: expect.stringContaining('inputs') });
    const after = await failures();
    expect(after.metric - before.metric).toBe(2);
    expect(after.stats - before.stats).toBe(2);
  });

  it('stream: a malformed frame naming the model', async () => {
    const before = await failures();
    const s = await RawStream.open(h.base);
    try {
      s.sendText({ id: 'short', model_name: 'versioned', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2] }] });
      s.sendText({ id: 'no-inputs', model_name: 'versioned' });
      await s.count(2);
      const answers = s.byId();
      expect(answers.get('short')!.json).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
      expect(answers.get('no-inputs')!.json).toMatchObject({ code: 'INVALID_INPUT', status: 400 });
    } finally {
      s.close();
    }
    // Counted when the error frame is sent; the scrape may come a moment later.
    await waitFor(async () => (await failures()).metric - before.metric >= 2, 'two refusals counted');
    const after = await failures();
    expect(after.metric - before.metric).toBe(2);
    expect(after.stats - before.stats).toBe(2);
  });

  it('an unknown model is counted nowhere (it would create a series per name a client makes up)', async () => {
    const unknown = await postJson(h.base, '/v2/models/made_up/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ code: 'NOT_FOUND' });
    const malformed = await postJson(h.base, '/v2/models/made_up/infer', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3] }] });
    expect([400, 404]).toContain(malformed.status);
    const s = await RawStream.open(h.base);
    try {
      s.sendText({ id: 'm', model_name: 'made_up', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2] }] });
      await s.count(1);
    } finally {
      s.close();
    }
    expect(await scrape(h.base)).not.toContain('made_up');
  });
});
