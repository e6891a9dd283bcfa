/**
 * A real HAProxy (Debian's `haproxy` package) in front of tensorwire replicas, for the rollout
 * benchmark: a frontend on a free 127.0.0.1 port, a backend of server slots health-checked on
 * the readiness path, and the runtime API on a unix socket, through which the benchmark adds
 * a replica to the load balancer and takes one out, as Kubernetes' endpoints controller does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The haproxy binary on PATH, or a message saying how to install it. */
export function haproxyBinary(): { path?: string; missing?: string } {
  const found = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim() !== '') return { path: found.stdout.trim() };
  return { missing: 'haproxy is not installed: apt-get install -y haproxy (Debian/Ubuntu)' };
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned: a small race, fine here). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Haproxy {
  /** http://127.0.0.1:<frontend port> */
  url: string;
  /** Sends one runtime API command; resolves with its answer. */
  command(cmd: string): Promise<string>;
  /** The slot's operational state as `show stat` reports it: UP, DOWN, MAINT, ... */
  serverStatus(slot: string): Promise<string>;
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  /** Server slots: name -> port, or undefined for a slot that starts in maintenance. */
  slots: Record<string, number | undefined>;
  /** Health check path (the readiness probe's). */
  checkPath: string;
  /** Health check interval in ms. */
  checkIntervalMs: number;
}

/** Starts haproxy in the foreground (-db) with a config written for `o`. */
export async function startHaproxy(o: HaproxyOptions): Promise<Haproxy> {
  const bin = haproxyBinary();
  if (!bin.path) throw new Error(bin.missing);
  const dir = mkdtempSync(join(tmpdir(), 'tw-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const port = await freePort();
  const servers = Object.entries(o.slots).map(([name, p]) => `  server ${name} 127.0.0.1:${p ?? 1} check${p === undefined ? ' disabled' : ''}`);
  // No retries and no retry-on: a request sent to a replica that cannot answer it counts as a
  // failure, as it would behind kube-proxy, so "zero failed" is tensorwire's doing, not HAProxy's.
  const config = [
    'global',
    `  stats socket ${socket} mode 600 level admin`,
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  retries 0',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    '  default_backend tensorwire',
    'backend tensorwire',
    '  balance roundrobin',
    // HTTP/1.1 with a Host header, as the kubelet probes: uWebSockets.js does not answer
    // HAProxy's default check (HTTP/1.0, no Host).
    '  option httpchk',
    `  http-check send meth GET uri ${o.checkPath} ver HTTP/1.1 hdr Host localhost`,
    '  http-check expect status 200',
    `  default-server inter ${o.checkIntervalMs}ms fall 1 rise 1`,
    ...servers,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'haproxy.cfg'), config);
  const child: ChildProcess = spawn(bin.path, ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));

  const command = (cmd: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const c = createConnection(socket);
      let answer = '';
      c.on('data', (d) => (answer += d.toString()));
      c.on('end', () => resolve(answer));
      c.on('error', reject);
      c.write(`${cmd}\n`);
    });
  const serverStatus = async (slot: string): Promise<string> => {
    const csv = await command('show stat');
    const header = csv.split('\n')[0]!.replace(/^# /, '').split(',');
    const row = csv.split('\n').map((l) => l.split(',')).find((r) => r[0] === 'tensorwire' && r[1] === slot);
    return row ? row[header.indexOf('status')]! : 'absent';
  };
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        rmSync(dir, { recursive: true, force: true });
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once('exit', done);
      child.kill('SIGTERM');
    });

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${out}`);
    const ok = await command('show info').then((a) => a.includes('Name: HAProxy'), () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`haproxy did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `http://127.0.0.1:${port}`, command, serverStatus, stop };
}
