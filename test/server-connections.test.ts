/**
 * The connection cap (ServerOptions.maxConnections, `--max-connections`): connections past
 * it are refused at once, the server serves again once others closed, and at the
 * descriptor limit it neither stops for good nor spins a core. The server runs in a child
 * process so that the test's own sockets do not count against its descriptors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { POLL_MS } from '../lib/server/connection-limit';

const ROOT = join(__dirname, '..');
let child: ChildProcess | undefined;
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  child?.kill('SIGKILL');
  child = undefined;
});

/** Starts test/helpers/limit-server.ts under `ulimit -n fdLimit`; resolves with its port and cap. */
async function startChild(fdLimit: number, maxConnections?: number): Promise<{ port: number; maxConnections: number; pid: number }> {
  const script = `ulimit -n ${fdLimit} && exec "${process.execPath}" -r "${join(ROOT, 'test/helpers/ts-require.cjs')}" "${join(ROOT, 'test/helpers/limit-server.ts')}" ${maxConnections ?? ''}`;
  const proc = spawn('sh', ['-c', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });

  child = proc;
  let output = '';
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const nl = output.indexOf('\n');
      if (nl >= 0) resolve(output.slice(0, nl));
    });
    proc.on('exit', (code) => reject(new Error(`the server exited (${code}): ${output}`)));
  });
  return { ...(JSON.parse(line) as { port: number; maxConnections: number }), pid: proc.pid! };
}

/** Connects; resolves 'open' once connected or the error code (ECONNREFUSED) within `ms`. */
function connect(port: number, ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined); // a reset of a backlogged connection comes later
    sockets.push(socket);
    const timer = setTimeout(() => resolve('timeout'), ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve('open');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? 'error');
    });
  });
}

/** A GET over a fresh connection: the status, or the error code. */
async function probe(port: number): Promise<number | string> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/v2/health/live`, { signal: AbortSignal.timeout(2000) })).status;
  } catch (e) {
    return ((e as { cause?: NodeJS.ErrnoException }).cause?.code ?? (e as Error).name) as string;
  }
}

/** Probes until the server answers 200 (it listens again a sampling interval or two after connections closed). */
async function servesAgain(port: number, ms = 3000): Promise<number | string> {
  const deadline = Date.now() + ms;
  let last = await probe(port);
  while (last !== 200 && Date.now() < deadline) {
    await sleep(POLL_MS);
    last = await probe(port);
  }
  return last;
}

/** CPU seconds (user + system) the process used so far, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('connection cap', () => {
  it('refuses connection 21 of a cap of 20 at once, and serves again after others closed', async () => {
    const server = await startChild(4096, 20);
    expect(server.maxConnections).toBe(20);
    for (let i = 0; i < 20; i++) expect(await connect(server.port)).toBe('open');
    await sleep(3 * POLL_MS);
    const started = Date.now();
    expect(await connect(server.port)).toBe('ECONNREFUSED');
    expect(Date.now() - started).toBeLessThan(100);
    // The 20 held connections are still served.
    const held = sockets[0]!;
    const answer = new Promise<string>((resolve) => held.once('data', (d) => resolve(d.toString('latin1'))));
    held.write('GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n');
    expect(await answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    for (const s of sockets.splice(0, 5)) s.destroy();
    expect(await servesAgain(server.port)).toBe(200);
  });

  it('clamps the cap below the descriptor limit and does not spin a core there', async () => {
    const server = await startChild(128);
    expect(server.maxConnections).toBeGreaterThan(0);
    expect(server.maxConnections).toBeLessThan(128 - 32);
    // Far more connections than descriptors: the extra ones are refused, or reset when they
    // were still in the listen backlog as listening paused; none stays open past the cap.
    const results: string[] = [];
    for (let i = 0; i < 160; i++) {
      results.push(await connect(server.port, 300));
      await sleep(2);
    }
    expect(results.filter((r) => r === 'ECONNREFUSED').length).toBeGreaterThan(0);
    await sleep(3 * POLL_MS);
    const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    // The cap plus what arrived within one sampling interval, below the descriptor limit.
    expect(stillOpen).toBeGreaterThanOrEqual(server.maxConnections);
    expect(stillOpen).toBeLessThan(128 - 10);
    await sleep(3 * POLL_MS);
    const before = cpuSeconds(server.pid);
    await sleep(1500);
    const used = cpuSeconds(server.pid) - before;
    expect(used, `CPU seconds used in 1.5 s while at the cap`).toBeLessThan(0.3);
    for (const s of sockets.splice(0)) s.destroy();
    expect(await servesAgain(server.port)).toBe(200);
  });
});
