/** `tensorwire serve` as a child process running the TypeScript sources, for end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from './hotswap';

const ROOT = join(__dirname, '..', '..');
const children: ChildProcess[] = [];

/** Kills every CLI spawned here that is still running (call from afterEach). */
export function killClis(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export interface Cli {
  child: ChildProcess;
  base: string;
  /** stdout and stderr, a line each. */
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `tensorwire serve` on a free port and waits until it is ready. */
export async function spawnCli(repo: string, extra: string[] = []): Promise<Cli> {
  const child = spawn(process.execPath, ['-r', join(ROOT, 'test/helpers/ts-require.cjs'), join(ROOT, 'lib/cli.ts'), 'serve', '--repo', repo, '--port', '0', '--model-control', 'poll', '--repository-poll-ms', '100', '--drain-timeout-ms', '20000', ...extra], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const output: string[] = [];
  const collect = (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n').filter((l) => l.trim() !== ''));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let base = '';
  await waitFor(
    () => {
      const line = output.find((l) => l.startsWith('tensorwire serving on '));
      if (line) base = /^tensorwire serving on (http:\/\/[^ ]+)/.exec(line)![1];
      if (child.exitCode !== null) throw new Error(`the CLI exited early (${child.exitCode}):\n${output.join('\n')}`);
      return base !== '';
    },
    30_000,
    'the CLI to listen',
  );
  await waitFor(async () => (await fetch(`${base}/v2/health/ready`)).status === 200, 30_000, 'the CLI to be ready');
  return { child, base, output, exited };
}

