/**
 * The benchmark peer: what a TypeScript team writes today without tensorwire. A plain
 * node:http server with one onnxruntime-node session (one intra-op thread, like tensorwire's
 * default instance), one `session.run` per request, KServe v2 JSON in and out, no batching.
 * It speaks just enough of the protocol for `tensorwire bench` (model metadata and infer),
 * so both servers are loaded by the same generator with the same bytes.
 *
 *   node dist/bench/peers/ort-node-http.js --model mlp.onnx --name mlp [--host 127.0.0.1] [--port 0]
 *
 * Prints `listening <port>` on stdout once it accepts connections.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    name: { type: 'string', default: 'mlp' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
  },
});
if (!values.model) {
  console.error('usage: ort-node-http --model FILE.onnx [--name mlp] [--host 127.0.0.1] [--port 0]');
  process.exit(2);
}

/** KServe datatype names of the ORT tensor types this peer handles. */
const KSERVE: Record<string, string> = { float32: 'FP32', float64: 'FP64', int32: 'INT32', int64: 'INT64', bool: 'BOOL' };
const ORT_TYPE: Record<string, ort.Tensor.Type> = { FP32: 'float32', FP64: 'float64', INT32: 'int32', INT64: 'int64', BOOL: 'bool' };

interface JsonTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function toTensor(t: JsonTensor): ort.Tensor {
  const type = ORT_TYPE[t.datatype];
  if (type === undefined) throw new Error(`input '${t.name}': datatype ${t.datatype} is not supported by this peer`);
  const flat = (t.data as unknown[]).flat(Infinity);
  if (type === 'int64') return new ort.Tensor(type, BigInt64Array.from(flat as number[], (v) => BigInt(v)), t.shape);
  if (type === 'bool') return new ort.Tensor(type, Uint8Array.from(flat as number[], (v) => (v ? 1 : 0)), t.shape);
  if (type === 'float64') return new ort.Tensor(type, Float64Array.from(flat as number[]), t.shape);
  if (type === 'int32') return new ort.Tensor(type, Int32Array.from(flat as number[]), t.shape);
  return new ort.Tensor(type, Float32Array.from(flat as number[]), t.shape);
}

function fromTensor(name: string, t: ort.Tensor): JsonTensor {
  const data = t.type === 'int64' ? Array.from(t.data as BigInt64Array, Number) : Array.from(t.data as ArrayLike<number>);
  return { name, datatype: KSERVE[t.type] ?? t.type, shape: [...t.dims], data };
}

async function main(): Promise<void> {
  const session = await ort.InferenceSession.create(values.model!, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const name = values.name!;
  // Metadata from the session: dynamic dimensions are -1, as KServe writes them.
  const meta = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
    list.map((m) => (m.isTensor ? { name: m.name, datatype: KSERVE[m.type] ?? m.type, shape: m.shape.map((d) => (typeof d === 'number' ? d : -1)) } : { name: m.name, datatype: 'BYTES', shape: [] }));
  const metadata = { name, versions: ['1'], platform: 'onnxruntime_onnx', inputs: meta(session.inputMetadata), outputs: meta(session.outputMetadata) };

  const server = createServer(async (req, res) => {
    try {
      const url = req.url ?? '';
      if (req.method === 'GET' && (url === `/v2/models/${name}` || url === `/v2/models/${name}/versions/1`)) return send(res, 200, metadata);
      if (req.method === 'GET' && url === '/v2/health/ready') return send(res, 200, {});
      if (req.method !== 'POST' || !url.startsWith(`/v2/models/${name}`) || !url.endsWith('/infer')) return send(res, 404, { error: `unknown endpoint ${req.method} ${url}` });
      const request = JSON.parse(await readBody(req)) as { id?: string; inputs: JsonTensor[] };
      const feeds: Record<string, ort.Tensor> = {};
      for (const input of request.inputs) feeds[input.name] = toTensor(input);
      const results = await session.run(feeds);
      const outputs = Object.entries(results).map(([n, t]) => fromTensor(n, t));
      send(res, 200, { ...(request.id !== undefined ? { id: request.id } : {}), model_name: name, model_version: '1', outputs });
    } catch (e) {
      send(res, 400, { error: (e as Error).message });
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(values.port), values.host, () => {
    console.log(`listening ${(server.address() as AddressInfo).port}`);
  });
  const stop = (): void => {
    server.close();
    void session.release().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
