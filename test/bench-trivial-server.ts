/**
 * A small KServe v2 server on uWebSockets.js for the client and bench tests: model `m`
 * (input x FP32 [-1,4], output y = 2x), answered with lib/protocol's real codecs over HTTP
 * (JSON and binary extension) and the /v2/stream WebSocket, errors in tensorwire's wire format
 * (`{"error", "code"}`). It counts what it sees, can fail every Nth inference with a 500
 * (ENGINE_FAILURE), and serves tensorwire /metrics with fixed stage
 * timings so the bench's server-side breakdown can be checked.
 */
import uWS from 'uWebSockets.js';
import { Registry } from 'prom-client';
import { TensorwireError, toTensorwireError } from '../lib/errors';
import { decodeInferRequest, encodeResponse } from '../lib/protocol/binary-codec';
import { decodeStreamFrame, encodeStreamError, encodeStreamResponse } from '../lib/protocol/stream-frame';
import type { InferRequest, InferResponse } from '../lib/protocol/types';
import { createMetrics } from '../lib/metrics/registry';
import { errorBody, statusLine } from '../lib/server/http-response';

export interface TrivialServerOptions {
  /** Every Nth inference request answers 500 (0 = never). */
  failEvery?: number;
  /** Answer inferences after this many ms (0 = at once), or after (request number % 7) ms with 'shuffle' (answers come out of order). */
  delayMs?: number | 'shuffle';
  /** Serve /metrics. */
  metrics?: boolean;
}

/** Fixed server-side timings every successful inference records (µs). */
export const STAGE_US = { queueUs: 300, computeInputUs: 20, computeInferUs: 1_500, computeOutputUs: 30 };

export interface TrivialServer {
  url: string;
  port: number;
  /** Inference requests received (HTTP and stream), successful or not. */
  inferSeen(): number;
  /** Inferences answered with 500. */
  failed(): number;
  /** Bodies of the repository load/unload calls, as `load m {...}`. */
  repositoryCalls: string[];
  close(): void;
}

const METADATA = JSON.stringify({
  name: 'm',
  versions: ['1'],
  platform: 'onnxruntime_onnx',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }],
});

/** y = 2x for FP32 input x; any other request is refused the way a server would. */
function run(req: InferRequest): InferResponse {
  const x = req.inputs.find((i) => i.name === 'x');
  if (!x || x.datatype !== 'FP32') throw new TensorwireError('INVALID_INPUT', `input 'x': expected FP32, got ${x ? x.datatype : 'nothing'}`);
  const copy = new Uint8Array(x.data); // a real copy (Buffer#slice would be a view)
  const xs = new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  for (let i = 0; i < xs.length; i++) xs[i] = xs[i]! * 2;
  const binary = req.outputs?.find((o) => o.name === 'y')?.binary ?? req.binaryDataOutput;
  const resp: InferResponse = { modelName: 'm', modelVersion: '1', outputs: [{ name: 'y', datatype: 'FP32', shape: x.shape, data: copy, binary }] };
  if (req.id !== undefined) resp.id = req.id;
  return resp;
}

/** Starts the server on a free port of 127.0.0.1. */
export async function startTrivialServer(options: TrivialServerOptions = {}): Promise<TrivialServer> {
  let seen = 0;
  let failed = 0;
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const repositoryCalls: string[] = [];
  const later = (fn: () => void) => {
    const d = options.delayMs === 'shuffle' ? seen % 7 : options.delayMs ?? 0;
    if (d > 0) setTimeout(fn, d);
    else fn();
  };
  const shouldFail = () => options.failEvery !== undefined && options.failEvery > 0 && seen % options.failEvery === 0;
  const app = uWS.App();

  app.get('/v2/models/m', (res) => {
    res.cork(() => res.writeHeader('Content-Type', 'application/json').end(METADATA));
  });
  app.get('/v2/health/ready', (res) => {
    res.cork(() => res.end(''));
  });
  app.get('/v2/health/live', (res) => {
    res.cork(() => res.end(''));
  });
  app.post('/v2/repository/index', (res) => {
    res.onAborted(() => {});
    res.onData((_c, last) => {
      if (last) res.cork(() => res.writeHeader('Content-Type', 'application/json').end('[{"name":"m","version":"1","state":"READY","reason":""}]'));
    });
  });
  app.post('/v2/repository/models/:model/:op', (res, req) => {
    const call = `${req.getParameter(1)} ${req.getParameter(0)}`;
    res.onAborted(() => {});
    const parts: Buffer[] = [];
    res.onData((c, last) => {
      parts.push(Buffer.from(c.slice(0)));
      if (!last) return;
      repositoryCalls.push(`${call} ${Buffer.concat(parts).toString()}`);
      if (call.endsWith(' missing')) res.cork(() => res.writeStatus('404 Not Found').end('{"error":"unknown model \'missing\'"}'));
      else res.cork(() => res.end(''));
    });
  });
  app.get('/metrics', (res) => {
    let aborted = false;
    res.onAborted(() => (aborted = true));
    if (!options.metrics) {
      res.cork(() => res.writeStatus('404 Not Found').end('{"error":"no metrics"}'));
      return;
    }
    void metrics.exposition().then(({ body }) => {
      if (!aborted) res.cork(() => res.end(body));
    });
  });
  app.post('/v2/models/m/infer', (res, req) => {
    const headerLength = req.getHeader('inference-header-content-length');
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const parts: Buffer[] = [];
    res.onData((chunk, isLast) => {
      parts.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      seen++;
      const answer = () => {
        if (aborted) return;
        if (shouldFail()) {
          failed++;
          metrics.recordRequest('m', '1', 'failure', 'ENGINE_FAILURE');
          res.cork(() => res.writeStatus('500 Internal Server Error').writeHeader('Content-Type', 'application/json').end(errorBody(new TensorwireError('ENGINE_FAILURE', 'engine failed on purpose'))));
          return;
        }
        try {
          const resp = run(decodeInferRequest(Buffer.concat(parts), headerLength === '' ? undefined : headerLength));
          const enc = encodeResponse(resp);
          metrics.recordRequest('m', '1', 'success', '', STAGE_US, resp.outputs[0]!.shape[0] ?? 1);
          metrics.recordBatch('m', '1', resp.outputs[0]!.shape[0] ?? 1);
          res.cork(() => {
            res.writeHeader('Content-Type', enc.contentType);
            if (enc.headerLength !== undefined) res.writeHeader('Inference-Header-Content-Length', String(enc.headerLength));
            res.end(enc.body);
          });
        } catch (e) {
          const err = toTensorwireError(e);
          res.cork(() => res.writeStatus(statusLine(err.status)).writeHeader('Content-Type', 'application/json').end(errorBody(err)));
        }
      };
      later(answer);
    });
  });
  app.ws('/v2/stream', {
    maxPayloadLength: 64 * 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    message: (ws, message, isBinary) => {
      seen++;
      const frame = decodeStreamFrame(new Uint8Array(message.slice(0)), isBinary);
      const reply = () => {
        if (!frame.ok) {
          ws.send(encodeStreamError(frame.id, frame.error), false);
          return;
        }
        if (frame.kind === 'control') {
          ws.send(encodeStreamError(frame.id, new TensorwireError('NOT_FOUND', 'the trivial server has no prediction feed')), false);
          return;
        }
        if (shouldFail()) {
          failed++;
          ws.send(encodeStreamError(frame.id, new TensorwireError('ENGINE_FAILURE', 'engine failed on purpose')), false);
          return;
        }
        if (frame.modelName !== 'm') {
          ws.send(encodeStreamError(frame.id, new TensorwireError('NOT_FOUND', `unknown model '${frame.modelName}'`)), false);
          return;
        }
        try {
          const out = encodeStreamResponse(run(frame.request), frame.binary, frame.id);
          ws.send(out, typeof out !== 'string');
        } catch (e) {
          ws.send(encodeStreamError(frame.id, toTensorwireError(e)), false);
        }
      };
      // A delayed reply may find the socket closed (uWS throws on a closed WebSocket).
      later(() => {
        try {
          reply();
        } catch {
          /* client gone */
        }
      });
    },
  });
  app.any('/*', (res) => {
    res.cork(() => res.writeStatus('404 Not Found').end('{"error":"not found"}'));
  });

  const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed'))));
  });
  const port = uWS.us_socket_local_port(listen);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    inferSeen: () => seen,
    failed: () => failed,
    repositoryCalls,
    close: () => uWS.us_listen_socket_close(listen),
  };
}
