/**
 * `tensorwire serve` (a child process) with its gRPC front end: the address it prints takes
 * calls, and SIGTERM with gRPC calls in flight answers every one before the process exits 0.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadProtos } from '../lib/grpc/proto';
import { cleanUpClis, slowRepository, spawnCli } from './helpers/cli-process';
import { floatsOf, rawFp32Request, startUnary, unary } from './helpers/grpc-harness';

afterEach(cleanUpClis);

describe('tensorwire serve --grpc-port', () => {
  it('serves gRPC on the printed address and drains it on SIGTERM', async () => {
    const cli = await spawnCli(await slowRepository(2, { layers: 3000, width: 256 }), ['--grpc-port', '0']);
    const line = cli.output.find((l) => l.startsWith('gRPC '))!;
    const address = /on (\S+)$/.exec(line)![1]!;
    const client = new (loadProtos().clients.Inference)(address, grpc.credentials.createInsecure());
    try {
      expect(await unary(client, 'ServerReady', {})).toEqual({ ready: true });
      const x = new Float32Array(256).fill(1.5);
      // One request a batch, tens of ms each: once the first is answered the others are queued on the server.
      const calls = Array.from({ length: 8 }, (_, i) => startUnary(client, 'ModelInfer', rawFp32Request('m', 'x', [1, 256], x, { id: `c${i}` })));
      await calls[0]!.done;
      cli.child.kill('SIGTERM');
      const answers = (await Promise.all(calls.map((c) => c.done))) as { id: string; raw_output_contents: Buffer[] }[];
      answers.forEach((a, i) => {
        expect(a.id).toBe(`c${i}`);
        expect(Array.from(floatsOf(a.raw_output_contents[0]!))).toEqual(new Array(256).fill(3.5)); // y = x + version 2
      });
      expect(await cli.exited).toEqual({ code: 0, signal: null });
      // The signal found gRPC calls in flight (counted with HTTP's).
      expect(cli.output.find((l) => l.startsWith('SIGTERM'))).toMatch(/^SIGTERM: draining [1-9]\d* in-flight request/);
    } finally {
      client.close();
    }
  }, 90_000);
});
