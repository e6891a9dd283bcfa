/**
 * Starts a worker thread on one of tensorwire's own modules, whether the package runs
 * compiled (the `.js` beside this file's) or from its TypeScript sources (tests, `vitest`):
 * with no .js file to start, the worker installs a require hook that transpiles .ts with the
 * project's `typescript` package, then requires the entry.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { TensorwireError } from '../errors';

/** Code a worker evaluates when only TypeScript sources exist. */
const TS_BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const ts = require(workerData.typescript);
require.extensions['.ts'] = (module, filename) => {
  const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, sourceMap: false },
  });
  module._compile(out.outputText, filename);
};
require(workerData.entry);
`;

/**
 * A Worker running module `name` (no extension) of directory `dir`; `what` names it in errors,
 * with `hint` saying what to do when TypeScript is needed but missing.
 */
export function spawnScriptWorker(dir: string, name: string, what: string, hint: string): Worker {
  const compiled = join(dir, `${name}.js`);
  if (existsSync(compiled)) return new Worker(compiled);
  const source = join(dir, `${name}.ts`);
  if (!existsSync(source)) throw new TensorwireError('INTERNAL', `${what} not found: neither ${name}.js nor ${name}.ts exists`);
  let typescript: string;
  try {
    typescript = require.resolve('typescript');
  } catch {
    throw new TensorwireError('INTERNAL', `running from TypeScript sources needs the 'typescript' package to start ${what}; ${hint}`);
  }
  return new Worker(TS_BOOTSTRAP, { eval: true, workerData: { typescript, entry: source } });
}
