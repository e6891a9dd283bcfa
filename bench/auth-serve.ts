/**
 * What access control costs on the hot path: requests/s of batch-1 KServe JSON inference on
 * the 256 -> 1024 -> 16 MLP, over keep-alive connections, against one server process per
 * security mode (bench/auth-serve-server.ts), measured alternately in the same run:
 *
 *   none     no security option (nothing checked)
 *   default  `tensorwire serve` without flags (loopback principal, Host allow-list)
 *   keys     --auth with API keys, every request sending `Authorization: Bearer <key>`
 *   tls      default mode over HTTPS (TLS 1.3, P-256 certificate made with /usr/bin/openssl)
 *
 *   npx tsc -p tsconfig.json && node dist/bench/auth-serve.js [--seconds 3] [--rounds 2] [--connections 32]
 *
 * The load generator is this process: raw sockets (net / tls), one request in flight per
 * connection, responses framed by Content-Length. Each mode keeps its best round (noise on a
 * shared machine only makes a server slower); compare ratios, not absolute numbers.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { parseArgs } from 'node:util';
import { addKey } from '../lib/auth/api-key';
import { mlpModel } from '../test/fixtures/models';
import { formatTable } from './table';
import { cpuSeconds } from './serve-process';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '2' }, connections: { type: 'string', default: '32' } } });
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = Number(values.connections);
const MODES = ['none', 'default', 'keys', 'tls'] as const;
type Mode = (typeof MODES)[number];

interface Server {
  port: number;
  child: ChildProcess;
}

function startServer(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, [resolve(__dirname, 'auth-serve-server.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((done, fail) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) done({ port: Number(m[1]), child });
    });
    child.once('exit', (code) => fail(new Error(`server exited with ${code}: ${out}`)));
  });
}

/** What one measured window gave: answers/s, and server CPU µs per answer (steadier on a shared machine). */
interface Measured {
  rps: number;
  cpuUs: number;
}

/** Runs `connections` request loops for `seconds` against the server `pid`; non-200 answers abort the run. */
function load(port: number, pid: number | undefined, tls: boolean, request: Buffer, seconds: number): Promise<Measured> {
  return new Promise((done, fail) => {
    let answered = 0;
    let counting = false;
    let stopped = false;
    const sockets: Socket[] = [];
    const open = (): void => {
      const socket: Socket = tls ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : netConnect({ port, host: '127.0.0.1' });
      socket.setNoDelay(true);
      sockets.push(socket);
      let pending: Buffer = Buffer.alloc(0);
      const send = (): void => void socket.write(request);
      socket.once(tls ? 'secureConnect' : 'connect', send);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = pending.toString('latin1', 0, end);
          const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (pending.length < end + 4 + length) return;
          if (!head.startsWith('HTTP/1.1 200')) {
            stopped = true;
            fail(new Error(`non-200 answer: ${head.split('\r\n')[0]} ${pending.toString('utf8', end + 4, end + 4 + Math.min(length, 200))}`));
            return;
          }
          pending = pending.subarray(end + 4 + length);
          if (counting) answered++;
          if (!stopped) send();
        }
      });
      socket.on('error', (e) => {
        if (!stopped) fail(e);
      });
    };
    for (let i = 0; i < CONNECTIONS; i++) open();
    // One second of warm-up, then the measured window.
    setTimeout(() => {
      counting = true;
      const start = performance.now();
      const cpuStart = cpuSeconds(pid) ?? 0;
      setTimeout(() => {
        stopped = true;
        const rps = answered / ((performance.now() - start) / 1000);
        const cpuUs = (((cpuSeconds(pid) ?? 0) - cpuStart) / Math.max(1, answered)) * 1e6;
        for (const s of sockets) s.destroy();
        done({ rps, cpuUs });
      }, seconds * 1000);
    }, 1000);
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tw-auth-bench-'));
  const servers: Partial<Record<Mode, Server>> = {};
  try {
    mkdirSync(join(dir, 'repo', 'mlp', '1'), { recursive: true });
    await mlpModel(join(dir, 'repo', 'mlp', '1'), { file: 'model.onnx' });
    const authFile = join(dir, 'auth.json');
    const key = addKey(authFile, 'bench', ['infer']);
    execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=localhost', '-days', '2'], { cwd: dir, stdio: 'pipe' });
    const repo = join(dir, 'repo');
    for (const mode of MODES) {
      servers[mode] = await startServer(['--repo', repo, '--mode', mode, '--auth', authFile, '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')]);
    }
    const input = Array.from({ length: 256 }, (_, i) => (i % 17) / 17);
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 256], datatype: 'FP32', data: input }] });
    const requestFor = (mode: Mode, port: number): Buffer =>
      Buffer.from(`POST /v2/models/mlp/infer HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n${mode === 'keys' ? `Authorization: Bearer ${key}\r\n` : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const best: Record<Mode, Measured> = { none: { rps: 0, cpuUs: 0 }, default: { rps: 0, cpuUs: 0 }, keys: { rps: 0, cpuUs: 0 }, tls: { rps: 0, cpuUs: 0 } };
    const rounds: Record<Mode, Measured>[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const measured = { ...best };
      // Modes in a different order each round, so none is always measured first or last.
      for (const mode of MODES.map((_, i) => MODES[(i + round - 1) % MODES.length]!)) {
        const server = servers[mode]!;
        process.stderr.write(`round ${round}/${ROUNDS}: ${mode}...\n`);
        const m = await load(server.port, server.child.pid, mode === 'tls', requestFor(mode, server.port), SECONDS);
        measured[mode] = m;
        if (m.rps > best[mode].rps) best[mode] = m;
      }
      rounds.push(measured);
    }
    const pct = (a: number, b: number): string => `${((a / b - 1) * 100).toFixed(1)}%`;
    const rows = MODES.map((mode) => [mode, best[mode].rps, pct(best[mode].rps, best.none.rps), best[mode].cpuUs, pct(best[mode].cpuUs, best.none.cpuUs)]);
    console.log(`MLP 256-1024-16, HTTP JSON batch 1, ${CONNECTIONS} connections, ${SECONDS} s x ${ROUNDS} rounds (best round by req/s)`);
    console.log(formatTable(['mode', 'req/s', 'vs none', 'server CPU µs/req', 'vs none'], rows));
    console.log(`API keys vs the default mode: req/s ${pct(best.keys.rps, best.default.rps)}, server CPU/req ${pct(best.keys.cpuUs, best.default.cpuUs)}; TLS vs plain (default mode): req/s ${pct(best.tls.rps, best.default.rps)}, server CPU/req ${pct(best.tls.cpuUs, best.default.cpuUs)}`);
    // On a shared machine the best rounds of two modes may come from different moments; the
    // ratio within each round (modes measured back to back) is steadier: its median.
    const medianRatio = (a: Mode, b: Mode, field: keyof Measured): string => {
      const ratios = rounds.map((r) => r[a][field] / r[b][field]).sort((x, y) => x - y);
      const mid = ratios.length >> 1;
      const median = ratios.length % 2 === 1 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
      return `${((median - 1) * 100).toFixed(1)}%`;
    };
    console.log(`median of per-round ratios: keys vs default req/s ${medianRatio('keys', 'default', 'rps')}, CPU/req ${medianRatio('keys', 'default', 'cpuUs')}; keys vs none req/s ${medianRatio('keys', 'none', 'rps')}, CPU/req ${medianRatio('keys', 'none', 'cpuUs')}; tls vs default req/s ${medianRatio('tls', 'default', 'rps')}, CPU/req ${medianRatio('tls', 'default', 'cpuUs')}`);
    console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} (${cpus().length} CPUs)`);
  } finally {
    // Servers exit before their auth file is removed (else their watcher logs it missing).
    const exited = (s: Server): Promise<unknown> =>
      s.child.exitCode !== null
        ? Promise.resolve()
        : new Promise((r) => {
            s.child.once('exit', r);
            s.child.kill('SIGTERM');
          });
    await Promise.all(Object.values(servers).flatMap((s) => (s ? [exited(s)] : [])));
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
