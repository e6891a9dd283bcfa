/**
 * The package as users get it: `require('tensorwire')` and `import('tensorwire')` from a fresh
 * node process in the repository root (Node resolves a package's own name through its
 * "exports"), the ESM entry exporting exactly what the CommonJS one does, and the API example
 * in README.md and docs/api.md run as written against examples/models.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ensureBuilt } from './helpers/built-package';

const run = promisify(execFile);

/** Runs `code` in a fresh node process in the repository root; resolves with its stdout. */
async function node(code: string, esm = false): Promise<string> {
  const { stdout } = await run(process.execPath, [...(esm ? ['--input-type=module'] : []), '-e', code], { cwd: ROOT, timeout: 60_000 });
  return stdout;
}

/** The code block after the `<!-- api-example` marker of a markdown file. */
function apiExample(file: string): string {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const m = /<!-- api-example[^\n]*-->\n```js\n([\s\S]*?)```/.exec(text);
  if (!m) throw new Error(`${file} has no api-example code block`);
  return m[1]!;
}

beforeAll(() => ensureBuilt(), 180_000);

describe('the tensorwire package', () => {
  it("require('tensorwire') gives createTensorwire, the clients, the error class and the engine", async () => {
    const out = await node(`
      const tw = require('tensorwire');
      const e = new tw.TensorwireError('NOT_FOUND', 'x');
      console.log(JSON.stringify({ keys: Object.keys(tw).sort(), types: Object.fromEntries(Object.entries(tw).map(([k, v]) => [k, typeof v])), status: e.status, viaMain: require.resolve('tensorwire') }));
    `);
    const r = JSON.parse(out) as { keys: string[]; types: Record<string, string>; status: number; viaMain: string };
    expect(r.keys).toEqual(['DEFAULT_GRPC_PORT', 'ERROR_CATALOGUE', 'HttpClient', 'LoadedModel', 'OPTION_BOUNDS', 'StreamClient', 'TensorwireError', 'bytesTensorElements', 'bytesTensorStrings', 'createTensorwire', 'datatypeOf', 'engineInfo', 'isTensorwireError', 'loadModel', 'startGrpcServer', 'streamUrl', 'toFloat32']);
    expect(r.types).toMatchObject({ createTensorwire: 'function', HttpClient: 'function', StreamClient: 'function', startGrpcServer: 'function', TensorwireError: 'function', loadModel: 'function', ERROR_CATALOGUE: 'object' });
    expect(r.status).toBe(404);
    expect(r.viaMain).toBe(join(ROOT, 'dist', 'lib', 'index.js'));
  });

  it("import('tensorwire') gives the same names and the same objects as require", async () => {
    const out = await node(`
      import { createRequire } from 'node:module';
      const esm = await import('tensorwire');
      const cjs = createRequire(process.cwd() + '/')('tensorwire');
      const named = Object.keys(esm).filter((k) => k !== 'default').sort();
      console.log(JSON.stringify({ named, cjs: Object.keys(cjs).sort(), same: named.every((k) => esm[k] === cjs[k]), defaultIsCjs: esm.default === cjs }));
    `, true);
    const r = JSON.parse(out) as { named: string[]; cjs: string[]; same: boolean; defaultIsCjs: boolean };
    expect(r.named).toEqual(r.cjs);
    expect(r.same).toBe(true);
    expect(r.defaultIsCjs).toBe(true);
  });

  it('deep imports are closed: only the package root is public', async () => {
    await expect(node(`require('tensorwire/dist/lib/cli')`)).rejects.toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it("README's API example is docs/api.md's, and it runs: serves examples/models, answers setosa, closes and exits", async () => {
    const example = apiExample('README.md');
    expect(apiExample('docs/api.md')).toBe(example);
    const started = Date.now();
    const out = await node(example, true);
    expect(out.trim().split('\n')).toEqual(['label 0']);
    // The process exits on its own once close() resolves: nothing left holding the event loop.
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 90_000);
});
