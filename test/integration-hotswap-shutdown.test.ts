/**
 * Graceful shutdown of the real CLI (`tensorwire serve`, spawned as a child process running
 * the TypeScript sources): on SIGTERM or SIGINT readiness turns false first, new requests get
 * 503, every request already in flight is answered, and the process exits 0.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUpClis, slowRepository, spawnCli } from './helpers/cli-process';
import { waitFor } from './helpers/hotswap';

afterEach(cleanUpClis);

function inferBody(x: number): string {
  return JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 512], data: new Array(512).fill(x) }] });
}

/** The server's tensorwire_inflight_requests gauge. */
async function inflightRequests(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^tensorwire_inflight_requests (\d+)/m.exec(text)?.[1] ?? 0);
}

/** POST infer with x filled with `x`; resolves to the status and y[0] (or the error). */
async function infer(base: string, x: number): Promise<{ status: number; y?: number; error?: string }> {
  const res = await fetch(`${base}/v2/models/m/infer`, { method: 'POST', body: inferBody(x), headers: { 'content-type': 'application/json' } });
  const body = (await res.json()) as { outputs?: { data: number[] }[]; error?: string };
  return res.status === 200 ? { status: 200, y: body.outputs![0].data[0] } : { status: res.status, error: body.error! };
}

describe.each(['SIGTERM', 'SIGINT'] as const)('tensorwire serve on %s', (signal) => {
  it('stops being ready, refuses new requests, answers every request in flight, then exits 0', async () => {
    const cli = await spawnCli(await slowRepository(3, { layers: 3000, width: 512 }));
    expect((await infer(cli.base, 1)).y).toBe(4);
    const inflight = Array.from({ length: 8 }, (_, i) => infer(cli.base, 10 * i));
    // All eight reached the server's core (the first one runs, the rest queue) before the signal.
    await waitFor(async () => (await inflightRequests(cli.base)) >= 8, 5000, 'eight requests in flight');
    cli.child.kill(signal);
    await waitFor(() => cli.output.some((l) => l.startsWith(`${signal}: draining`)), 5000, 'the CLI to start draining');
    // While the in-flight requests finish: not ready, and new work is refused with 503.
    const ready = await fetch(`${cli.base}/v2/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBe('1');
    const late = await infer(cli.base, 999);
    expect(late).toEqual({ status: 503, error: 'the server is shutting down' });
    expect(await Promise.all(inflight)).toEqual(Array.from({ length: 8 }, (_, i) => ({ status: 200, y: 10 * i + 3 })));
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    // The CLI saw most of them still in flight when the signal came (the first may have finished).
    const draining = cli.output.find((l) => l.startsWith(`${signal}: draining`))!;
    expect(Number(/draining (\d+) in-flight/.exec(draining)![1]), draining).toBeGreaterThanOrEqual(6);
    expect(cli.output.indexOf(draining)).toBeLessThan(cli.output.indexOf('model m version 3: draining'));
    expect(cli.output.some((l) => l.startsWith('drain timeout'))).toBe(false);
    expect(cli.output).toContain('model m version 3: unavailable');
  });
});
