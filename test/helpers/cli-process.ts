/** `tensorwire serve` as a child process running the TypeScript sources, for end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from './engine-run';
import { publishVersion, slowVersionedModel, waitFor, writeConfig } from './hotswap';

const ROOT = join(__dirname, '..', '..');
const children: ChildProcess[] = [];
const cleanups: (() => void)[] = [];

/** Kills every CLI spawned here that is still running and removes the repositories made here (call from afterEach). */
export function cleanUpClis(): void {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  while (cleanups.length > 0) cleanups.pop()!();
}

/**
 * A repository with one slow model 'm' (y = x + version, one request a batch, tens of ms a
 * run at the default size), so requests stay in flight and queue up behind each other.
 */
export async function slowRepository(version: number, size: { layers: number; width: number }): Promise<string> {
  const { dir, cleanup } = tempDir('tw-cli-');
  cleanups.push(cleanup);
  writeConfig(dir, 'm', { max_batch_size: 1 });
  await publishVersion(dir, 'm', version, (d) => slowVersionedModel(d, version, size));
  return dir;
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
  const child = spawn(process.execPath, ['-r', join(ROOT, 'test/helpers/ts-require.cjs'), join(ROOT, 'lib/cli.ts'), 'serve', '--repo', repo, '--port', '0', '--model-control', 'poll', '--repository-poll-ms', '100', '--drain-timeout-ms', '20000', '--grpc-port', '0', ...extra], {
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

