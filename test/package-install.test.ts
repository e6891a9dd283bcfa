/**
 * The package as a dependency: `npm pack` the repository, install the tarball into an empty
 * project with a PATH that has node, npm and a shell but no cmake, no C/C++ compiler and no
 * nvcc, then serve a model with `npx tensorwire serve model.onnx` and infer, and load the typed
 * API with require and import. Proves the prebuilt addon (scripts/prebuild.js) is in the
 * tarball and is what the install script picks, that nothing needs compiling, that the build
 * tools and the 400 MB ONNX Runtime package stay out of a consumer's node_modules, and that
 * the tarball holds no tests, benchmarks or fixtures.
 *
 * Slow (packs and installs for real: about a minute), so it runs as `npm run test:package`
 * (.ci/run calls it) and is skipped by a plain `vitest run`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel, mlpReference, mlpWeights } from './fixtures/models';
import { ROOT } from './helpers/built-package';
import { tempDir } from './helpers/engine-run';
import { waitFor } from './helpers/hotswap';

const run = promisify(execFile);
const enabled = process.env.TW_PACKAGE_TEST === '1';
const MLP = { inputDim: 4, hidden: 8, outputDim: 3, seed: 7 };

function bytesUnder(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((n, e) => {
    const p = join(dir, e.name);
    return n + (e.isDirectory() ? bytesUnder(p) : e.isFile() ? statSync(p).size : 0);
  }, 0);
}

/** A directory of symlinks to node, npm, npx and a shell: all a consumer's install may use. */
async function bareBin(dir: string): Promise<string> {
  mkdirSync(dir);
  for (const tool of ['node', 'npm', 'npx', 'sh', 'env']) {
    const { stdout } = await run('sh', ['-c', `command -v ${tool}`]);
    symlinkSync(stdout.trim(), join(dir, tool));
  }
  return dir;
}

describe.skipIf(!enabled)('npm install ./tensorwire-<version>.tgz', () => {
  const { dir: work, cleanup } = tempDir('tw-package-');
  const app = join(work, 'app');
  let env: NodeJS.ProcessEnv;
  let tarball = '';
  let tarFiles: string[] = [];
  let installLog = '';
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    // prepack builds the prebuilt (scripts/prebuild.js), prepare compiles dist/.
    const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, maxBuffer: 64 << 20, timeout: 300_000 });
    const info = JSON.parse(packed.stdout.slice(packed.stdout.lastIndexOf('[\n  {'))) as { filename: string; size: number; files: { path: string }[] }[];
    tarball = join(work, info[0]!.filename);
    tarFiles = info[0]!.files.map((f) => f.path);
    const bin = await bareBin(join(work, 'bin'));
    env = { PATH: bin, HOME: process.env.HOME, npm_config_cache: process.env.npm_config_cache, npm_config_update_notifier: 'false' };
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], { cwd: app, env, timeout: 300_000, maxBuffer: 64 << 20 });
    installLog = installed.stdout + installed.stderr;
    await mlpModel(app, { ...MLP, file: 'model.onnx' });
  }, 600_000);

  afterAll(() => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    cleanup();
  });

  it('the PATH of the install has no cmake, compiler or nvcc', async () => {
    for (const tool of ['cmake', 'c++', 'g++', 'gcc', 'cc', 'clang++', 'nvcc']) {
      await expect(run('sh', ['-c', `command -v ${tool}`], { env })).rejects.toThrow();
    }
  });

  it('the tarball holds the library, the prebuilt addon with its ONNX Runtime and the sources to rebuild, nothing else', () => {
    expect(tarFiles).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli.js', 'esm/index.mjs', 'prebuilds/linux-x64/tensorwire.node', 'prebuilds/linux-x64/libonnxruntime.so.1', 'prebuilds/linux-x64/prebuild.json', 'scripts/install-native.js', 'native/addon.cpp', 'CMakeLists.txt', 'proto/grpc_service.proto', 'proto/health.proto']));
    const outside = tarFiles.filter((f) => !/^(package\.json|README\.md|LICENSE|CMakeLists\.txt|dist\/lib\/|esm\/|prebuilds\/linux-x64\/|native\/|proto\/|scripts\/)/.test(f));
    expect(outside).toEqual([]);
    expect(tarFiles.filter((f) => /(^|\/)(test|bench|fixtures|examples)\//.test(f) && !f.startsWith('dist/lib/bench/'))).toEqual([]);
    expect(tarFiles.filter((f) => /\.test\.|libonnxruntime_providers_(cuda|tensorrt)/.test(f))).toEqual([]);
  });

  it('installs without compiling: the install script takes the prebuilt addon', () => {
    expect(installLog).toContain('tensorwire: using the prebuilt addon in prebuilds/linux-x64/');
    const pkg = join(app, 'node_modules', 'tensorwire');
    expect(existsSync(join(pkg, 'build'))).toBe(false);
    expect(readdirSync(join(pkg, 'prebuilds', 'linux-x64')).sort()).toEqual(expect.arrayContaining(['libonnxruntime.so.1', 'tensorwire.node']));
  });

  it('keeps the build tools and the all-platform ONNX Runtime package out of node_modules', () => {
    const top = readdirSync(join(app, 'node_modules'));
    for (const pkg of ['com.github.asus4.onnxruntime', 'cmake-js', 'node-addon-api', 'typescript', 'vitest']) expect(top).not.toContain(pkg);
    const mb = bytesUnder(join(app, 'node_modules')) / 1e6;
    console.log(`tarball ${(statSync(tarball).size / 1e6).toFixed(1)} MB, ${tarFiles.length} files; installed node_modules ${mb.toFixed(0)} MB`);
    expect(mb).toBeLessThan(250);
  });

  it('`npx tensorwire serve model.onnx --port 0` serves the model and answers an inference', async () => {
    server = spawn('npx', ['tensorwire', 'serve', 'model.onnx', '--port', '0', '--grpc-port', '0'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    server.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    server.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    let base = '';
    await waitFor(
      () => {
        if (server!.exitCode !== null) throw new Error(`tensorwire exited (${server!.exitCode}):\n${out}`);
        base = /serving on (http:\/\/[^ ]+)/.exec(out)?.[1] ?? '';
        return base !== '';
      },
      60_000,
      'npx tensorwire serve to listen',
    );
    await waitFor(async () => (await fetch(`${base}/v2/health/ready`)).status === 200, 60_000, 'the model to load');
    const name = /model (\S+) version \d+: ready/.exec(out)?.[1] ?? 'model';
    const input = [0.5, -1, 2, 0.25, 1, 1, -0.5, 3];
    const res = await fetch(`${base}/v2/models/${name}/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: input }] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: { name: string; shape: number[]; data: number[] }[] };
    expect(body.outputs[0]!.shape).toEqual([2, 3]);
    const expected = mlpReference(mlpWeights(MLP), input);
    body.outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
    server.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
  }, 150_000);

  it("require('tensorwire') and import give the typed API backed by the prebuilt addon", async () => {
    const cjs = await run('node', ['-e', "const tw = require('tensorwire'); console.log(JSON.stringify({ create: typeof tw.createTensorwire, client: typeof tw.HttpClient, ort: tw.engineInfo().ortVersion, main: require.resolve('tensorwire') }))"], { cwd: app, env });
    const r = JSON.parse(cjs.stdout) as { create: string; client: string; ort: string; main: string };
    expect(r).toMatchObject({ create: 'function', client: 'function', ort: '1.29.0' });
    expect(r.main).toBe(join(app, 'node_modules', 'tensorwire', 'dist', 'lib', 'index.js'));
    const esm = await run('node', ['--input-type=module', '-e', "import { createTensorwire, TensorwireError } from 'tensorwire'; console.log(typeof createTensorwire, new TensorwireError('NOT_FOUND', 'x').status)"], { cwd: app, env });
    expect(esm.stdout.trim()).toBe('function 404');
    expect(existsSync(join(app, 'node_modules', 'tensorwire', 'dist', 'lib', 'index.d.ts'))).toBe(true);
  });

  it('--build-from-source without the build tools fails the install and says what is missing and what to run', async () => {
    const failed = await run('npm', ['rebuild', 'tensorwire', '--foreground-scripts'], { cwd: app, env: { ...env, TW_BUILD_FROM_SOURCE: '1' }, timeout: 120_000 }).then(
      () => '',
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    );
    expect(failed).toContain('could not install the native addon for linux-x64');
    expect(failed).toContain('cmake (not on PATH)');
    expect(failed).toContain('a C++17 compiler');
    expect(failed).toContain('npm install --save-dev cmake-js@8.0.0 node-addon-api@8.9.2 com.github.asus4.onnxruntime@0.4.9');
    expect(failed).toContain('npm rebuild tensorwire --build-from-source');
    // The prebuilt is still there and still loads: a failed rebuild leaves the install usable.
    const ok = await run('node', ['-e', "console.log(require('tensorwire').engineInfo().ortVersion)"], { cwd: app, env });
    expect(ok.stdout.trim()).toBe('1.29.0');
  }, 150_000);

  it('a prebuilt that does not load: the runtime error and the install both say what is wrong and what to run', async () => {
    const pkg = join(app, 'node_modules', 'tensorwire');
    writeFileSync(join(pkg, 'prebuilds', 'linux-x64', 'tensorwire.node'), 'not an ELF file');
    const loaded = await run('node', ['-e', "require('tensorwire').engineInfo()"], { cwd: app, env }).then(
      () => '',
      (e: { stderr: string }) => e.stderr,
    );
    expect(loaded).toContain('cannot load the tensorwire addon for linux-x64');
    expect(loaded).toContain('prebuilds/linux-x64/tensorwire.node');
    expect(loaded).toContain('npm rebuild tensorwire');
    const rebuilt = await run('npm', ['rebuild', 'tensorwire', '--foreground-scripts'], { cwd: app, env, timeout: 120_000 }).then(
      () => '',
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    );
    expect(rebuilt).toMatch(/the prebuilt addon prebuilds\/linux-x64\/tensorwire.node does not load: .*(invalid ELF header|file too short)/);
    expect(rebuilt).toContain('building from source needs cmake (not on PATH)');
  }, 150_000);

  it('with the build packages and tools installed, --build-from-source compiles the addon and that build is what loads', async () => {
    const full = { ...env, PATH: process.env.PATH };
    const dev = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies;
    const specs = ['cmake-js', 'node-addon-api', 'com.github.asus4.onnxruntime'].map((p) => `${p}@${dev[p]}`);
    await run('npm', ['install', '--save-dev', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], { cwd: app, env: full, timeout: 300_000, maxBuffer: 64 << 20 });
    const built = await run('npm', ['rebuild', 'tensorwire', '--foreground-scripts'], { cwd: app, env: { ...full, TW_BUILD_FROM_SOURCE: '1' }, timeout: 600_000, maxBuffer: 64 << 20 });
    expect(built.stdout).toContain('tensorwire: built build/Release/tensorwire.node');
    expect(existsSync(join(app, 'node_modules', 'tensorwire', 'build', 'Release', 'tensorwire.node'))).toBe(true);
    // The prebuilt is still the broken file of the test above: only the source build can load.
    const ok = await run('node', ['-e', "console.log(require('tensorwire').engineInfo().ortVersion)"], { cwd: app, env });
    expect(ok.stdout.trim()).toBe('1.29.0');
  }, 900_000);
});

