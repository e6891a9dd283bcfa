/**
 * The abuse catalogue: one entry per class of hostile or careless input found against
 * tensorwire (issue 13), each aimed at a real endpoint of a running server. The suite in
 * test/integration-abuse.test.ts throws all of them at a `tensorwire serve` child process
 * (npm test: one round; `npm run test:abuse`: many rounds, in parallel) and checks that the
 * process lives, that every request gets exactly one well-formed answer, that RSS stays
 * bounded and that a health check keeps answering quickly throughout.
 */
import { connect } from 'node:net';
import WebSocket from 'ws';

/** What one case got back. */
export interface AbuseAnswer {
  /** HTTP status (or the stream error frame's status; 200 for a stream success). */
  status: number;
  /** The answer's body (an HTTP body, or a stream frame as text). */
  body: string;
}

/** One abusive request. */
export interface AbuseCase {
  name: string;
  /** Statuses this case may be answered with. */
  expect: readonly number[];
  send(base: string): Promise<AbuseAnswer>;
}

const MiB = 1024 * 1024;
/** A case not answered within this is a failure (a frozen server, or an answer never sent). */
export const CASE_TIMEOUT_MS = 20_000;

/** `depth` nested JSON arrays: `[[[...]]]`. */
export function deepJson(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

async function post(base: string, path: string, body: string | Uint8Array, contentType = 'application/json', headers: Record<string, string> = {}): Promise<AbuseAnswer> {
  const res = await fetch(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': contentType, ...headers }, signal: AbortSignal.timeout(CASE_TIMEOUT_MS) });
  // A body over the limit is answered while the client still sends: read what came.
  return { status: res.status, body: await res.text() };
}

/**
 * Sends `raw` bytes on a fresh TCP connection and resolves with the first response's status
 * and everything read until the server closes the connection or `ms` passes (0 when no
 * status line arrived).
 */
export function rawHttp(base: string, raw: string | Buffer, ms = 5_000): Promise<AbuseAnswer & { closed: boolean }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, body: text, closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.write(raw);
  });
}

/** Opens a stream, sends `frames`, and resolves with the first answer frame. */
export function streamOnce(base: string, frames: (string | Buffer)[], ms = 5_000): Promise<AbuseAnswer> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/v2/stream`);
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ status: 0, body: 'no answer frame' });
    }, ms);
    ws.on('open', () => {
      for (const f of frames) ws.send(f);
    });
    ws.on('message', (data, isBinary) => {
      clearTimeout(timer);
      const text = isBinary ? `<binary ${(data as Buffer).length} bytes>` : (data as Buffer).toString('utf8');
      let status = 200;
      if (!isBinary) {
        try {
          const frame = JSON.parse(text) as { error?: unknown; status?: unknown };
          if (frame.error !== undefined) status = typeof frame.status === 'number' ? frame.status : 400;
        } catch {
          status = 0;
        }
      }
      ws.close();
      resolve({ status, body: text });
    });
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      // A connection closed for a protocol violation (1009 too big, 1002 protocol) is an answer too.
      resolve({ status: code === 1009 ? 413 : code === 1002 || code === 1007 ? 400 : 0, body: `closed ${code} ${reason.toString()}` });
    });
    ws.on('error', () => {
      clearTimeout(timer);
      resolve({ status: 0, body: 'socket error' });
    });
  });
}

const inferJson = (data: string) => `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,8],"data":${data}}]}`;

/** The catalogue. `mlp` is an [N,8]→[N,2] MLP; `expand` has an INT64 [2] input `shape` and output `y` = Expand(1x1, shape). */
export const ABUSE_CASES: readonly AbuseCase[] = [
  // ---- inference over HTTP
  { name: 'JSON nested 100,000 levels in an infer body', expect: [400], send: (b) => post(b, '/v2/models/mlp/infer', deepJson(100_000)) },
  { name: 'JSON nested 100,000 levels inside a data array', expect: [400], send: (b) => post(b, '/v2/models/mlp/infer', inferJson(deepJson(100_000))) },
  { name: 'a shape of [1e9, 1e9]', expect: [400], send: (b) => post(b, '/v2/models/mlp/infer', '{"inputs":[{"name":"input","datatype":"FP32","shape":[1000000000,1000000000],"data":[1]}]}') },
  { name: 'binary_data_size past the body', expect: [400], send: (b) => post(b, '/v2/models/mlp/infer', Buffer.from('{"inputs":[{"name":"input","datatype":"FP32","shape":[1,8],"parameters":{"binary_data_size":4000000000}}]}'), 'application/octet-stream', { 'inference-header-content-length': '104' }) },
  { name: 'an 8000x8000 output from a 150-byte request (binary answer)', expect: [413], send: (b) => post(b, '/v2/models/expand/infer', '{"inputs":[{"name":"shape","datatype":"INT64","shape":[2],"data":[8000,8000]}],"parameters":{"binary_data_output":true}}') },
  { name: 'an 8000x8000 output from a 150-byte request (JSON answer)', expect: [413], send: (b) => post(b, '/v2/models/expand/infer', '{"inputs":[{"name":"shape","datatype":"INT64","shape":[2],"data":[8000,8000]}]}') },
  { name: 'a 5M-element output asked for as JSON', expect: [413], send: (b) => post(b, '/v2/models/expand/infer', '{"inputs":[{"name":"shape","datatype":"INT64","shape":[2],"data":[2500,2000]}]}') },
  { name: 'a 30 MB JSON infer body', expect: [200, 400, 413], send: (b) => post(b, '/v2/models/mlp/infer', inferJson(`[${'1.5,'.repeat(Math.floor((30 * MiB) / 4))}1]`)) },
  { name: 'a body over the server limit', expect: [413], send: (b) => post(b, '/v2/models/mlp/infer', Buffer.alloc(70 * MiB, 0x20)) },
  { name: 'a 1 MB request id', expect: [200, 400], send: (b) => post(b, '/v2/models/mlp/infer', `{"id":"${'x'.repeat(MiB)}","inputs":[{"name":"input","datatype":"FP32","shape":[1,8],"data":[1,2,3,4,5,6,7,8]}]}`) },
  // ---- control routes
  { name: 'priority_levels 100,000,000 on live batching', expect: [400], send: (b) => post(b, '/v2/models/mlp/batching', '{"priority_levels":100000000,"default_priority_level":1}') },
  { name: 'a 20 MB unknown key on live batching', expect: [400], send: (b) => post(b, '/v2/models/mlp/batching', `{"${'k'.repeat(20 * MiB)}":1}`) },
  { name: 'JSON nested 100,000 levels on live batching', expect: [400], send: (b) => post(b, '/v2/models/mlp/batching', deepJson(100_000)) },
  { name: 'a load override with 100,000 instances', expect: [400], send: (b) => post(b, '/v2/repository/models/mlp/load', JSON.stringify({ parameters: { config: JSON.stringify({ instance_group: [{ count: 100_000 }] }) } })) },
  { name: 'a load override with 64 instances x 1000 intra-op threads', expect: [400], send: (b) => post(b, '/v2/repository/models/mlp/load', JSON.stringify({ parameters: { config: JSON.stringify({ instance_group: [{ count: 64 }], parameters: { intra_op_thread_count: { string_value: '1000' } } }) } })) },
  { name: 'a load override with priority_levels 100,000,000', expect: [400], send: (b) => post(b, '/v2/repository/models/mlp/load', JSON.stringify({ parameters: { config: JSON.stringify({ dynamic_batching: { priority_levels: 100_000_000, default_priority_level: 1 } }) } })) },
  { name: 'a load override nested 100,000 levels', expect: [400], send: (b) => post(b, '/v2/repository/models/mlp/load', JSON.stringify({ parameters: { config: deepJson(100_000) } })) },
  { name: 'a load override whose model file name escapes the version directory', expect: [400], send: (b) => post(b, '/v2/repository/models/mlp/load', JSON.stringify({ parameters: { config: JSON.stringify({ default_model_filename: '../../../../etc/passwd' }) } })) },
  { name: 'a repository index body nested 100,000 levels', expect: [200, 400], send: (b) => post(b, '/v2/repository/index', deepJson(100_000)) },
  // ---- the HTTP parser
  { name: 'two different Content-Length headers', expect: [400], send: (b) => rawHttp(b, 'POST /v2/models/mlp/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 300\r\n\r\n{"a":1}') },
  // ---- the stream
  { name: 'a stream frame nested 100,000 levels', expect: [400], send: (b) => streamOnce(b, [deepJson(100_000)]) },
  { name: 'a stream request with a shape of [1e9, 1e9]', expect: [400], send: (b) => streamOnce(b, ['{"id":"a","model_name":"mlp","inputs":[{"name":"input","datatype":"FP32","shape":[1000000000,1000000000],"data":[1]}]}']) },
  { name: 'a feed subscription at 1e9 frames per second', expect: [400, 403], send: (b) => streamOnce(b, ['{"id":"s","subscribe":"mlp","max_per_second":1000000000}']) },
  { name: 'a stream request for an 8000x8000 output', expect: [413], send: (b) => streamOnce(b, ['{"id":"e","model_name":"expand","inputs":[{"name":"shape","datatype":"INT64","shape":[2],"data":[8000,8000]}]}']) },
];
