/**
 * `tensorwire bench --protocol grpc | grpc-stream` against a real tensorwire server (core,
 * engine, gRPC front end): the requests it counts are the requests the server ran, none
 * failed, and its flags are checked. Plus the pieces the client relies on: the id appended to
 * an encoded request, and an answer's id read without decoding the tensors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs } from '../lib/bench/args';
import type { Completion, Connection } from '../lib/bench/connections';
import { encodeGrpcRequest, GRPC_INFER_PATH, grpcHost, grpcPort, preflightGrpc, streamAnswerInfo, withGrpcId } from '../lib/bench/grpc-connection';
import { RawGrpcMux } from '../lib/bench/grpc-raw';
import { loadProtos } from '../lib/grpc/proto';
import { datatypeModel } from './fixtures/datatypes';
import { runBenchMain } from './helpers/bench-main';
import { startGrpcHarness, unary, type GrpcHarness } from './helpers/grpc-harness';

let h: GrpcHarness;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-bench-grpc-'));
  h = await startGrpcHarness({ models: [{ name: 'double', versions: { 1: (d) => datatypeModel(d, 'FP32', { file: 'model.onnx' }) } }] });
}, 60_000);
afterAll(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function served(): Promise<number> {
  return Number((await unary(h.client, 'ModelStatistics', { name: 'double' })).model_stats[0].inference_count);
}

describe('bench over gRPC', () => {
  for (const protocol of ['grpc', 'grpc-stream']) {
    it(`--protocol ${protocol}: every request answered and counted by the server`, async () => {
      const before = await served();
      const r = await runBenchMain(dir, ['--url', h.tw.url, '--grpc-url', h.address, '--protocol', protocol, '--pipeline', '4', '--model', 'double', '--concurrency', '8', '--duration', '600ms', '--warmup', '0', '--workers', '0', '--no-server-metrics']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const level = r.report!.levels[0]!;
      expect(level.requests).toBeGreaterThan(0);
      expect(level.errors).toBe(0);
      expect(level.totals.failed).toBe(0);
      // What the bench saw succeed (preflight included) is what the server ran: one row each.
      expect((await served()) - before).toBe(level.totals.ok + r.report!.preflightRequests);
      expect(r.report!.protocol).toBe(protocol);
    }, 60_000);
  }

  it('unary calls as raw HTTP/2 frames: answers counted ok, a refused call counted as an error, hundreds of calls on one connection', async () => {
    const run = async (request: Buffer, calls: number): Promise<Completion[]> => {
      const results: Completion[] = [];
      let mux: RawGrpcMux;
      await new Promise<void>((done, fail) => {
        let sent = 0;
        const next = (c: Connection): void => {
          if (sent >= calls || c.busy) return;
          sent++;
          c.send(performance.now());
        };
        const events = {
          onReady: next,
          onComplete: (c: Connection, result: Completion) => {
            results.push(result);
            if (results.length === calls) done();
            else next(c);
          },
          onConnectError: (_c: Connection, message: string) => fail(new Error(message)),
        };
        mux = new RawGrpcMux(grpcHost(h.address), grpcPort(h.address), GRPC_INFER_PATH, request, 4, false, events);
        for (let i = 0; i < 4; i++) mux.addLane().connect();
      });
      mux!.close();
      return results;
    };
    const good = encodeGrpcRequest('double', undefined, [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(16) }]);
    const before = await served();
    const ok = await run(good, 400);
    expect(ok.filter((r) => r.ok)).toHaveLength(400);
    expect((await served()) - before).toBe(400);
    const bad = encodeGrpcRequest('nope', undefined, [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(16) }]);
    expect(await run(bad, 3)).toEqual([0, 1, 2].map(() => ({ ok: false, kind: 'gRPC error status' })));
  }, 60_000);

  it('the preflight stops on a request the server refuses, with its message, and says when nothing listens', async () => {
    const bad = encodeGrpcRequest('double', undefined, [{ name: 'x', datatype: 'FP32', shape: [1, 5], data: new Uint8Array(20) }]);
    await expect(preflightGrpc(h.address, bad)).rejects.toThrow("the first request was refused with INVALID_ARGUMENT: input 'x': expected shape [-1,4], got [1,5]");
    const good = encodeGrpcRequest('double', undefined, [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(16) }]);
    expect(await preflightGrpc(h.address, good)).toBeUndefined();
    await expect(preflightGrpc('127.0.0.1:1', good)).rejects.toThrow('cannot reach the gRPC server at 127.0.0.1:1');
  });

  it('flags: --grpc-url defaults to port 8001 of --url, applies to gRPC only; --pipeline applies to gRPC', () => {
    expect(parseArgs(['--model', 'm', '--protocol', 'grpc', '--url', 'http://10.0.0.2:8000'])).toMatchObject({ protocol: 'grpc', grpcAddress: '10.0.0.2:8001' });
    expect(parseArgs(['--model', 'm', '--protocol', 'grpc-stream', '--pipeline', '32'])).toMatchObject({ protocol: 'grpc-stream', pipeline: 32 });
    expect(() => parseArgs(['--model', 'm', '--grpc-url', 'h:1'])).toThrow('--grpc-url applies to --protocol grpc and grpc-stream only');
    expect(() => parseArgs(['--model', 'm', '--protocol', 'grpc', '--grpc-url', 'nope'])).toThrow("--grpc-url: expected HOST:PORT such as 127.0.0.1:8001, got 'nope'");
    expect(() => parseArgs(['--model', 'm', '--protocol', 'http-json', '--pipeline', '2'])).toThrow('--pipeline applies to --protocol ws, grpc and grpc-stream only');
  });

  it('an id appended to an encoded request is the request\'s id; an answer\'s id is read without decoding it', () => {
    const method = loadProtos().inference.ModelStreamInfer!;
    const encoded = withGrpcId(encodeGrpcRequest('m', undefined, [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(16) }]), '17.3');
    expect(method.requestDeserialize(encoded)).toMatchObject({ model_name: 'm', id: '17.3', raw_input_contents: [Buffer.alloc(16)] });
    const answer = (error: string) => method.responseSerialize({ error_message: error, infer_response: { model_name: 'm', id: 'a-1', outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 4] }], raw_output_contents: [Buffer.alloc(16, 7)] } });
    expect(streamAnswerInfo(answer(''))).toEqual({ id: 'a-1', failed: false });
    expect(streamAnswerInfo(answer('bad'))).toEqual({ id: 'a-1', failed: true });
  });
});
