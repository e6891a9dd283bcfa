/**
 * Argument parsing of `tensorwire serve` (the service factory itself is the core's).
 */
import { describe, expect, it } from 'vitest';
import { parseServeArgs } from '../lib/cli';

describe('tensorwire serve arguments', () => {
  it('applies the defaults', () => {
    expect(parseServeArgs(['--repo', 'models'])).toEqual({
      repository: 'models',
      host: '127.0.0.1',
      port: 8000,
      modelControl: 'poll',
      loadModels: [],
      maxBodyBytes: 64 * 1024 * 1024,
      repositoryPollMs: 1000,
      drainTimeoutMs: 30000,
      streamMaxInflight: 256,
      streamFeed: false,
      maxConnections: 10_000,
      grpcPort: 8001,
    });
  });

  it('reads every option, repeated --load-model and a model file', () => {
    const options = parseServeArgs(['model.onnx', '--host', '0.0.0.0', '--port', '0', '--model-control', 'explicit', '--load-model', 'a', '--load-model', 'b', '--max-body-bytes', '1024', '--repository-poll-ms', '250', '--drain-timeout-ms', '0', '--metrics-port', '9100', '--stream-max-inflight', '32', '--stream-feed', 'on', '--max-connections', '50', '--grpc-port', 'off']);
    expect(options).toEqual({ repository: 'model.onnx', host: '0.0.0.0', port: 0, modelControl: 'explicit', loadModels: ['a', 'b'], maxBodyBytes: 1024, repositoryPollMs: 250, drainTimeoutMs: 0, metricsPort: 9100, streamMaxInflight: 32, streamFeed: true, maxConnections: 50, grpcPort: 'off' });
    expect(() => parseServeArgs(['--repo', 'r', '--max-connections', '0'])).toThrow('--max-connections');

  });

  it('refuses bad values naming the option', () => {
    expect(() => parseServeArgs([])).toThrow('serve needs --repo DIR or a model file (FILE.onnx)');
    expect(() => parseServeArgs(['--repo', 'r', '--port', '70000'])).toThrow("--port must be an integer from 0 to 65535, got '70000'");
    expect(() => parseServeArgs(['--repo', 'r', '--model-control', 'auto'])).toThrow("--model-control must be none, poll or explicit, got 'auto'");
    expect(() => parseServeArgs(['--repo', 'r', 'x.onnx'])).toThrow(/either --repo DIR or a model file/);
    expect(() => parseServeArgs(['--repo', 'r', '--bogus'])).toThrow(/bogus/);
    expect(() => parseServeArgs(['--repo', 'r', '--metrics-port', 'x'])).toThrow("--metrics-port must be an integer from 0 to 65535, got 'x'");
    expect(() => parseServeArgs(['--repo', 'r', '--stream-max-inflight', '0'])).toThrow("--stream-max-inflight must be an integer from 1 to 1000000, got '0'");
    expect(() => parseServeArgs(['--repo', 'r', '--stream-feed', 'yes'])).toThrow("--stream-feed must be on or off, got 'yes'");
  });
});

describe('graceful shutdown', () => {
  it('drains in-flight requests, shuts the core down, then closes', async () => {
    const { gracefulShutdown } = await import('../lib/cli');
    const { startServer } = await import('../lib/server/server');
    const { FakeService, until } = await import('./server-fixture');
    const service = new FakeService();
    const server = await startServer(service, { port: 0 });
    const url = `http://127.0.0.1:${server.port}`;
    const pending = fetch(`${url}/v2/models/gate/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [21] }] }) });
    await until(() => service.waiting().includes(21), 2000, 'the gate request');
    const lines: string[] = [];
    const stopped = gracefulShutdown(service, server, 5000, (l) => lines.push(l));
    await new Promise((r) => setTimeout(r, 20));
    expect(service.shutdownCalls).toBe(0); // the core hears of it only after the drain
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(503);
    service.release(21);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual([42]);
    expect(await stopped).toBe(true);
    expect(service.shutdownCalls).toBe(1);
    expect(lines).toEqual([]);
    await expect(fetch(`${url}/v2/health/live`)).rejects.toThrow();
  });
});
