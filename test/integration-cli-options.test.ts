/**
 * Options of the real CLI (`tensorwire serve`, a child process) that only show end to end:
 * `--metrics-port` moves /metrics to its own port, `--stream-max-inflight` sets the per-socket
 * limit of the WebSocket stream.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StreamClient } from '../lib/client';
import { isTensorwireError } from '../lib/errors';
import { cleanUpClis, slowRepository, spawnCli } from './helpers/cli-process';

afterEach(cleanUpClis);

describe('tensorwire serve options', () => {
  it('--metrics-port serves /metrics there and only there', async () => {
    const cli = await spawnCli(await slowRepository(2, { layers: 600, width: 256 }), ['--metrics-port', '0']);
    const line = cli.output.find((l) => l.startsWith('tensorwire serving on '))!;
    const metricsUrl = /metrics at (http:\/\/\S+)\)/.exec(line)![1];
    expect(new URL(metricsUrl).port).not.toBe(new URL(cli.base).port);

    const scrape = await fetch(metricsUrl);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toContain('text/plain');
    expect(await scrape.text()).toMatch(/^tensorwire_model_state\{model="m",version="2",state="ready"\} 1$/m);

    // Not on the main port, and nothing but /metrics on the metrics port.
    const main = await fetch(`${cli.base}/metrics`);
    expect(main.status).toBe(404);
    expect(((await main.json()) as { error: string }).error).toBe(`/metrics is served on port ${new URL(metricsUrl).port} (--metrics-port), not on this one`);
    expect((await fetch(metricsUrl.replace('/metrics', '/v2/health/ready'))).status).toBe(404);
    expect((await fetch(`${cli.base}/v2/health/ready`)).status).toBe(200);
  }, 60_000);

  it('--stream-max-inflight bounds each socket: requests past it get 429 frames, the rest are answered', async () => {
    const cli = await spawnCli(await slowRepository(2, { layers: 600, width: 256 }), ['--stream-max-inflight', '2']);
    // maxInflight 0: the client sends everything at once instead of holding requests back.
    const stream = await StreamClient.connect({ url: cli.base, maxInflight: 0 });
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          stream.infer('m', { x: { shape: [1, 256], data: new Float32Array(256).fill(i) } }).then(
            (r) => ({ ok: true as const, y: (r.outputs.y!.data as Float32Array)[0] }),
            (e: unknown) => ({ ok: false as const, error: e }),
          ),
        ),
      );
      const answered = outcomes.filter((o) => o.ok);
      const refused = outcomes.filter((o) => !o.ok);
      expect(answered.length).toBeGreaterThanOrEqual(2);
      expect(refused.length).toBeGreaterThan(0);
      expect(answered.length + refused.length).toBe(12);
      for (const [i, o] of outcomes.entries()) if (o.ok) expect(o.y).toBe(i + 2); // y = x + version
      for (const o of refused) {
        expect(isTensorwireError(o.error)).toBe(true);
        expect((o.error as { code: string }).code).toBe('TOO_MANY_REQUESTS');
        expect((o.error as Error).message).toContain('2 requests are already in flight on this connection');
      }
    } finally {
      await stream.close();
    }
  }, 60_000);
});
