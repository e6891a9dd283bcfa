/**
 * Runs a script against the engine in a child `node` (TypeScript sources through
 * ts-require.cjs), optionally as an unprivileged user under a thread limit: the way to prove a
 * failure kills the child's load, not the child.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

export interface ChildOutcome {
  /** Exit status (null when killed by a signal, e.g. SIGABRT from std::terminate). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** True when a child can be run under a thread limit: root with setpriv, to drop to `nobody` (RLIMIT_NPROC does not bind root). */
export function canLimitThreads(): boolean {
  return process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');
}

/**
 * Runs `script` (CommonJS, may `require('./lib/engine')` relative to the repository root) in a
 * child node. `maxThreads` runs it as `nobody` with `ulimit -u maxThreads`. Files it reads must
 * be world-readable then.
 */
export function runEngineChild(script: string, opts: { maxThreads?: number; timeoutMs?: number } = {}): Promise<ChildOutcome> {
  const node = [process.execPath, '-r', './test/helpers/ts-require.cjs', '-e', script];
  const quoted = node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const [cmd, args] =
    opts.maxThreads === undefined
      ? [node[0], node.slice(1)]
      : ['/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/bin/bash', '-c', `ulimit -u ${opts.maxThreads} && exec ${quoted}`]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: '/tmp' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The last JSON line a child printed on stdout. */
export function lastJsonLine<T>(outcome: ChildOutcome): T {
  const lines = outcome.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`child printed no JSON (exit ${outcome.code}, signal ${outcome.signal}): ${outcome.stderr.slice(0, 2000)}`);
  return JSON.parse(lines[lines.length - 1]) as T;
}
