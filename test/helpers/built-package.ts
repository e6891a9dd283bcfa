/**
 * The compiled package (dist/) that `require('tensorwire')` resolves to, rebuilt when any
 * source under lib/ is newer than its output, so the package tests never pass on a stale build.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

/** lib/ sources whose dist/lib/*.js is missing or older than them. */
function staleSources(dir = join(ROOT, 'lib')): string[] {
  const stale: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = join(dir, entry.name);
    if (entry.isDirectory()) stale.push(...staleSources(file));
    else if (entry.name.endsWith('.ts')) {
      const out = join(ROOT, 'dist', relative(ROOT, file).replace(/\.ts$/, '.js'));
      if (!existsSync(out) || statSync(out).mtimeMs < statSync(file).mtimeMs) stale.push(relative(ROOT, file));
    }
  }
  return stale;
}

/** Runs `tsc -p tsconfig.json` (what `npm ci` does through `prepare`) when dist/ is stale. */
export function ensureBuilt(): void {
  if (staleSources().length === 0) return;
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe' });
}
