/**
 * Is `tensorwire bench` a fast enough load generator? Runs it, `wrk`, and a plain
 * node:http + keep-alive Agent generator against the same trivial uWebSockets.js endpoint
 * (POST /v2/models/m/infer answered with a fixed reply, no inference) and prints their
 * request rates side by side. Each generator and the server run in their own process.
 *
 *   npm run build:ts && node dist/bench/generator-vs-wrk.js [--duration 5] [--connections 64] [--workers 1]
 *
 * wrk comes from the system (`apt-get install -y wrk`); without it that row is skipped.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatColumns } from '../lib/bench/report';

interface Row {
  generator: string;
  rps: number;
  p50?: number;
  p99?: number;
  note?: string;
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const DURATION_S = flag('duration', 5);
const CONNECTIONS = flag('connections', 64);
const WORKERS = flag('workers', 1);

/** The trivial server, as a script for its own process. Prints its port. */
const SERVER = `
const uWS = require(${JSON.stringify(require.resolve('uWebSockets.js'))});
const meta = JSON.stringify({ name: 'm', versions: ['1'], platform: 'onnxruntime_onnx',
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }] });
const reply = '{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1,4],"data":[0,0,0,0]}]}';
uWS.App()
  .get('/v2/models/m', (res) => res.end(meta))
  .post('/v2/models/m/infer', (res) => {
    res.onAborted(() => {});
    res.onData((_chunk, last) => { if (last) res.cork(() => res.writeHeader('Content-Type', 'application/json').end(reply)); });
  })
  .listen('127.0.0.1', 0, (s) => { process.stdout.write(uWS.us_socket_local_port(s) + '\\n'); });
`;

/** The node:http generator: CONNECTIONS closed loops over a keep-alive Agent, for DURATION_S seconds. */
const NODE_HTTP = `
const http = require('node:http');
const [url, body, conns, seconds] = [process.argv[1], Buffer.from(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
const u = new URL(url);
let done = 0, running = true;
function one() {
  if (!running) return;
  const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
    headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
    res.on('data', () => {});
    res.on('end', () => { done++; one(); });
  });
  req.end(body);
}
for (let i = 0; i < conns; i++) one();
const start = performance.now();
setTimeout(() => { running = false; console.log(JSON.stringify({ rps: done / ((performance.now() - start) / 1000) })); agent.destroy(); process.exit(0); }, seconds * 1000);
`;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`))));
  });
}

async function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  return { child, port };
}

/** wrk's "Latency ... 1.23ms" etc. in milliseconds. */
function wrkMs(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function main(): Promise<void> {
  const { child, port } = await startServer();
  const url = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'tw-vs-wrk-'));
  const rows: Row[] = [];
  // The JSON body tensorwire bench sends for this model with --protocol http-json.
  const body = '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[0.5,0.25,0.125,0.0625]}]}';
  try {
    try {
      execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    } catch (e) {
      // wrk --version exits 1 but prints; only a missing binary throws ENOENT.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') rows.push({ generator: 'wrk', rps: NaN, note: 'not installed (apt-get install -y wrk): skipped' });
    }
    if (rows.length === 0) {
      const lua = join(dir, 'post.lua');
      writeFileSync(lua, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
      const out = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${DURATION_S}s`, '--latency', '-s', lua, `${url}/v2/models/m/infer`]);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      rows.push({ generator: 'wrk -t1', rps, p50: wrkMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''), p99: wrkMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '') });
    }

    const json = join(dir, 'tw.json');
    const cli = require.resolve('../lib/bench/cli');
    const script = `require(${JSON.stringify(cli)}).main(process.argv.slice(1)).then((c) => process.exit(c))`;
    await run(process.execPath, ['-e', script, '--', '--url', url, '--model', 'm', '--protocol', 'http-json', '--concurrency', String(CONNECTIONS), '--duration', `${DURATION_S}s`, '--warmup', '1s', '--workers', String(WORKERS), '--no-server-metrics', '--no-progress', '--json', json]);
    const level = (JSON.parse(readFileSync(json, 'utf8')) as { levels: { throughput: number; latencyMs: { p50: number; p99: number } }[] }).levels[0]!;
    rows.push({ generator: `tensorwire bench (raw sockets, ${WORKERS} worker${WORKERS === 1 ? '' : 's'})`, rps: level.throughput, p50: level.latencyMs.p50, p99: level.latencyMs.p99 });

    const nodeHttp = JSON.parse(await run(process.execPath, ['-e', NODE_HTTP, `${url}/v2/models/m/infer`, body, String(CONNECTIONS), String(DURATION_S)])) as { rps: number };
    rows.push({ generator: 'node:http + keep-alive Agent', rps: nodeHttp.rps });
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }

  const wrk = rows.find((r) => r.generator.startsWith('wrk') && Number.isFinite(r.rps));
  console.log(`POST /v2/models/m/infer on a trivial uWS server, ${CONNECTIONS} connections, ${DURATION_S} s each\n`);
  console.log(
    formatColumns(
      ['Generator', 'Req/s', 'p50 ms', 'p99 ms', 'vs wrk'],
      rows.map((r) => [r.generator, Number.isFinite(r.rps) ? r.rps.toFixed(0) : '-', r.p50 === undefined ? '-' : r.p50.toFixed(3), r.p99 === undefined ? '-' : r.p99.toFixed(3), wrk && Number.isFinite(r.rps) ? (r.rps / wrk.rps).toFixed(2) : '-']),
    ),
  );
  for (const r of rows) if (r.note) console.log(`${r.generator}: ${r.note}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
