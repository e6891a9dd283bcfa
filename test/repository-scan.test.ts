import { appendFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TensorwireError } from '../lib/errors';
import { scanRepository, singleFileRepository } from '../lib/repository/scanner';
import { type RepositoryDiff, RepositoryWatcher } from '../lib/repository/watcher';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tw-repo-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

/** Writes `bytes` bytes of model file (the scanner never parses it). */
async function put(rel: string, content: string | number): Promise<string> {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof content === 'number' ? Buffer.alloc(content, 7) : content);
  return file;
}

describe('scanRepository', () => {
  it('finds models and versions, ignores junk, and records config problems per model', async () => {
    await put('iris/config.json', JSON.stringify({ max_batch_size: 8, version_policy: { all: {} } }));
    await put('iris/1/model.onnx', 100);
    await put('iris/2/model.onnx', 200);
    await put('iris/10/model.onnx', 300);
    await put('iris/03/model.onnx', 1); // leading zero: not a version (as in Triton)
    await put('iris/latest/model.onnx', 1);
    await mkdir(path.join(root, 'iris/4')); // no model.onnx yet
    await put('iris/5/model.onnx/oops', 1); // model.onnx is a directory
    await put('iris/labels.txt', 'setosa');
    await put('iris/warmup/x.bin', 16);
    await put('plain/1/model.onnx', 10);
    await put('pb/config.pbtxt', 'platform: "onnxruntime_onnx"\nmax_batch_size: 4\n');
    await put('pb/1/model.onnx', 10);
    await put('bad/config.json', '{"dynamic_batching":{"max_queue_delay_microseconds":"fast"}}');
    await put('bad/1/model.onnx', 10);
    await put('both/config.json', '{}');
    await put('both/config.pbtxt', '');
    await put('both/1/model.onnx', 10);
    await put('misnamed/config.json', '{"name":"other"}');
    await put('custom/config.json', '{"default_model_filename":"net.onnx"}');
    await put('custom/1/net.onnx', 10);
    await put('custom/2/model.onnx', 10); // not the configured file name
    await put('empty/README', 'nothing here');
    await put('README.md', 'a repository');
    await put('.git/1/model.onnx', 1);
    await put('bad name!/1/model.onnx', 1);

    const scan = await scanRepository(root);
    expect([...scan.models.keys()]).toEqual(['bad', 'both', 'custom', 'empty', 'iris', 'misnamed', 'pb', 'plain']);
    expect(scan.ignored).toEqual([{ path: path.join(root, 'bad name!'), reason: 'not a valid model name (letters, digits, _ . - only)' }]);

    const iris = scan.models.get('iris')!;
    expect(iris.error).toBeUndefined();
    expect(iris.configSource).toEqual({ format: 'json', path: path.join(root, 'iris/config.json') });
    expect(iris.config).toEqual({ max_batch_size: 8, version_policy: { all: {} } });
    expect(iris.versions.map((v) => [v.version, v.size, v.modelPath])).toEqual([
      [1, 100, path.join(root, 'iris/1/model.onnx')],
      [2, 200, path.join(root, 'iris/2/model.onnx')],
      [10, 300, path.join(root, 'iris/10/model.onnx')],
    ]);
    expect(iris.versions[0].mtimeMs).toBeGreaterThan(0);
    expect(iris.ignored.map((i) => [path.basename(i.path), i.reason]).sort()).toEqual([
      ['03', 'not a version directory (versions are positive numbers without leading zeros)'],
      ['4', 'no model.onnx in it'],
      ['5', 'model.onnx is not a file'],
      ['latest', 'not a version directory (versions are positive numbers without leading zeros)'],
    ]);

    expect(scan.models.get('plain')!.configSource).toBeUndefined();
    expect(scan.models.get('plain')!.config).toBeUndefined();
    expect(scan.models.get('plain')!.versions.map((v) => v.version)).toEqual([1]);
    expect(scan.models.get('pb')!.config).toEqual({ platform: 'onnxruntime_onnx', max_batch_size: 4 });
    expect(scan.models.get('empty')!.versions).toEqual([]);

    // An invalid config fails only its model, with a message naming the file and field.
    const bad = scan.models.get('bad')!;
    expect(bad.error?.code).toBe('INVALID_INPUT');
    expect(bad.error?.message).toBe('bad/config.json: dynamic_batching.max_queue_delay_microseconds must be an integer from 0 to 60000000, got "fast"');
    expect(bad.versions.map((v) => v.version)).toEqual([1]);
    expect(scan.models.get('both')!.error?.message).toBe('both: has both config.json and config.pbtxt; keep one');
    expect(scan.models.get('misnamed')!.error?.message).toMatch(/name is "other" but the model directory is "misnamed"/);

    const custom = scan.models.get('custom')!;
    expect(custom.versions.map((v) => [v.version, path.basename(v.modelPath)])).toEqual([[1, 'net.onnx']]);
    expect(custom.ignored.map((i) => i.reason)).toEqual(['no net.onnx in it']);
  });

  it('follows symlinked models and versions', async () => {
    await put('store/v7.onnx', 42);
    await mkdir(path.join(root, 'repo/linked'), { recursive: true });
    await mkdir(path.join(root, 'real/1'), { recursive: true });
    await symlink(path.join(root, 'store/v7.onnx'), path.join(root, 'real/1/model.onnx'));
    await symlink(path.join(root, 'real'), path.join(root, 'repo/aliased'));
    await symlink(path.join(root, 'real/1'), path.join(root, 'repo/linked/3'));
    const scan = await scanRepository(path.join(root, 'repo'));
    expect(scan.models.get('aliased')!.versions.map((v) => [v.version, v.size])).toEqual([[1, 42]]);
    expect(scan.models.get('linked')!.versions.map((v) => [v.version, v.size])).toEqual([[3, 42]]);
  });

  it('fingerprints change with the model files and the config, and only then', async () => {
    await put('m/config.json', '{"max_batch_size": 8}');
    await put('m/1/model.onnx', 100);
    const a = (await scanRepository(root)).models.get('m')!;
    const b = (await scanRepository(root)).models.get('m')!;
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(b.versions[0].fingerprint).toBe(a.versions[0].fingerprint);

    await appendFile(path.join(root, 'm/1/model.onnx'), 'x');
    const c = (await scanRepository(root)).models.get('m')!;
    expect(c.versions[0].size).toBe(101);
    expect(c.versions[0].fingerprint).not.toBe(a.versions[0].fingerprint);
    expect(c.configFingerprint).toBe(a.configFingerprint);
    expect(c.fingerprint).not.toBe(a.fingerprint);

    await put('m/1/model.onnx.data', 5); // external weights next to the model count too
    const d = (await scanRepository(root)).models.get('m')!;
    expect(d.versions[0].fingerprint).not.toBe(c.versions[0].fingerprint);

    await put('m/config.json', '{"max_batch_size": 4}');
    const e = (await scanRepository(root)).models.get('m')!;
    expect(e.configFingerprint).not.toBe(d.configFingerprint);
    expect(e.versions[0].fingerprint).toBe(d.versions[0].fingerprint);
  });

  it('fails clearly when the repository does not exist', async () => {
    await expect(scanRepository(path.join(root, 'nope'))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: `model repository ${path.join(root, 'nope')} does not exist`,
    });
    const file = await put('file.txt', 'x');
    await expect(scanRepository(file)).rejects.toThrow(/is not a directory$/);
  });
});

describe('singleFileRepository', () => {
  it('serves one file as version 1 of a model named after it', async () => {
    const file = await put('exports/my model.v2.onnx', 64);
    const scan = await singleFileRepository(file);
    expect([...scan.models.keys()]).toEqual(['my_model.v2']);
    const m = scan.models.get('my_model.v2')!;
    expect(m.configSource).toBeUndefined();
    expect(m.versions).toHaveLength(1);
    expect(m.versions[0]).toMatchObject({ version: 1, modelPath: file, size: 64 });
    await expect(singleFileRepository(path.join(root, 'missing.onnx'))).rejects.toThrow(/model file .*missing\.onnx does not exist/);
  });
});

describe('RepositoryWatcher', () => {
  /** A watcher driven by explicit poll() calls (its timer interval is far away). */
  async function manual(settleMs = 0, now?: () => number) {
    const diffs: RepositoryDiff[] = [];
    const errors: TensorwireError[] = [];
    const watcher = new RepositoryWatcher(root, { intervalMs: 3_600_000, settleMs, now, onChange: (d) => void diffs.push(d), onError: (e) => void errors.push(e) });
    await watcher.start();
    return { watcher, diffs, errors };
  }

  it('reports a new version only once its file has stopped growing', async () => {
    await put('m/1/model.onnx', 100);
    const { watcher, diffs } = await manual();
    expect(await watcher.poll()).toBeUndefined(); // nothing changed

    await mkdir(path.join(root, 'm/2'));
    expect(await watcher.poll()).toBeUndefined(); // empty version dir: not a version yet
    await put('m/2/model.onnx', 50); // half written
    expect(await watcher.poll()).toBeUndefined(); // first sight
    await appendFile(path.join(root, 'm/2/model.onnx'), Buffer.alloc(50));
    expect(await watcher.poll()).toBeUndefined(); // still growing: not reported
    await appendFile(path.join(root, 'm/2/model.onnx'), Buffer.alloc(50));
    expect(await watcher.poll()).toBeUndefined();

    const diff = await watcher.poll(); // two scans agree: settled
    expect(diff?.changes).toHaveLength(1);
    expect(diff?.changes[0]).toMatchObject({ name: 'm', kind: 'changed', configChanged: false, addedVersions: [2], changedVersions: [], removedVersions: [] });
    expect(diff?.scan.models.get('m')!.versions.map((v) => [v.version, v.size])).toEqual([
      [1, 100],
      [2, 150],
    ]);
    expect(diffs).toEqual([diff]);
    expect(watcher.settled).toBe(diff?.scan);
    expect(await watcher.poll()).toBeUndefined(); // reported once
    await watcher.stop();
  });

  it('reports config changes, changed and removed versions, new and removed models', async () => {
    await put('a/config.json', '{"max_batch_size": 8}');
    await put('a/1/model.onnx', 10);
    await put('a/2/model.onnx', 10);
    await put('b/1/model.onnx', 10);
    const { watcher, diffs } = await manual();

    await put('a/config.json', '{"max_batch_size": 4}');
    await put('a/1/model.onnx', 11);
    await rm(path.join(root, 'a/2'), { recursive: true });
    await put('c/1/model.onnx', 10);
    await rm(path.join(root, 'b'), { recursive: true });
    expect(await watcher.poll()).toBeUndefined();
    const diff = (await watcher.poll())!;
    expect(diff.changes.map((c) => [c.name, c.kind, c.configChanged, c.addedVersions, c.changedVersions, c.removedVersions])).toEqual([
      ['a', 'changed', true, [], [1], [2]],
      ['b', 'removed', false, [], [], [1]],
      ['c', 'added', false, [1], [], []],
    ]);
    expect(diff.changes[0].model!.config).toEqual({ max_batch_size: 4 });
    expect(diff.changes[0].previous!.config).toEqual({ max_batch_size: 8 });
    expect([...diff.scan.models.keys()]).toEqual(['a', 'c']);

    // A config that becomes invalid is a config change too; the model carries the error.
    await put('a/config.json', '{"max_batch_size": "many"}');
    await watcher.poll();
    const broken = (await watcher.poll())!;
    expect(broken.changes[0]).toMatchObject({ name: 'a', configChanged: true });
    expect(broken.changes[0].model!.error?.message).toMatch(/a\/config\.json: max_batch_size must be an integer from 0 to 4096, got "many"$/);
    expect(diffs).toHaveLength(2);
    await watcher.stop();
  });

  it('does not report a config caught mid-rewrite, only the final one', async () => {
    await put('m/config.json', '{"max_batch_size": 8}');
    await put('m/1/model.onnx', 10);
    const { watcher } = await manual();
    await put('m/config.json', '{"max_batch_si'); // partial write
    expect(await watcher.poll()).toBeUndefined();
    await put('m/config.json', '{"max_batch_size": 16}');
    expect(await watcher.poll()).toBeUndefined();
    const diff = (await watcher.poll())!;
    expect(diff.changes[0].configChanged).toBe(true);
    expect(diff.changes[0].model!.error).toBeUndefined();
    expect(diff.changes[0].model!.config).toEqual({ max_batch_size: 16 });
    await watcher.stop();
  });

  it('waits out the settle time even when scans agree', async () => {
    let t = 1000;
    await put('m/1/model.onnx', 10);
    const { watcher } = await manual(500, () => t);
    await put('m/2/model.onnx', 10);
    expect(await watcher.poll()).toBeUndefined(); // seen at t=1000
    t = 1200;
    expect(await watcher.poll()).toBeUndefined(); // agrees, but only 200 ms
    t = 1500;
    expect((await watcher.poll())?.changes[0].addedVersions).toEqual([2]);
    await watcher.stop();
  });

  it('starts from a given baseline and reports what differs from it', async () => {
    await put('m/1/model.onnx', 10);
    const baseline = await scanRepository(root);
    await put('m/2/model.onnx', 10);
    const watcher = new RepositoryWatcher(root, { intervalMs: 3_600_000, settleMs: 0, onChange: () => undefined });
    expect(await watcher.start(baseline)).toBe(baseline);
    await watcher.poll();
    expect((await watcher.poll())?.changes[0].addedVersions).toEqual([2]);
    await watcher.stop();
  });

  it('survives a vanished repository and a throwing onChange', async () => {
    await put('m/1/model.onnx', 10);
    const errors: TensorwireError[] = [];
    const watcher = new RepositoryWatcher(root, {
      intervalMs: 3_600_000,
      settleMs: 0,
      onChange: () => {
        throw new Error('swap failed');
      },
      onError: (e) => void errors.push(e),
    });
    await watcher.start();
    await put('m/2/model.onnx', 10);
    await watcher.poll();
    expect((await watcher.poll())?.changes[0].addedVersions).toEqual([2]);
    expect(errors.map((e) => [e.code, e.message])).toEqual([['INTERNAL', 'swap failed']]);

    const moved = `${root}-moved`;
    await rename(root, moved);
    try {
      expect(await watcher.poll()).toBeUndefined();
      expect(errors[1].message).toBe(`model repository ${root} does not exist`);
      expect(watcher.settled?.models.get('m')?.versions).toHaveLength(2); // state kept
    } finally {
      await rename(moved, root);
    }
    await watcher.stop();
  });

  it('polls on its own timer and reports a copied-in version once', async () => {
    await put('m/1/model.onnx', 10);
    const seen: RepositoryDiff[] = [];
    let resolve!: () => void;
    const reported = new Promise<void>((r) => (resolve = r));
    const watcher = new RepositoryWatcher(root, {
      intervalMs: 20,
      settleMs: 40,
      onChange: (d) => {
        seen.push(d);
        resolve();
      },
    });
    await watcher.start();
    // Copy into a temporary directory, then rename into place (the safe way to publish).
    await put('m/.tmp-2/model.onnx', 10);
    await rename(path.join(root, 'm/.tmp-2'), path.join(root, 'm/2'));
    await reported;
    await new Promise((r) => setTimeout(r, 100)); // more polls: nothing new
    await watcher.stop();
    expect(seen).toHaveLength(1);
    expect(seen[0].changes[0].addedVersions).toEqual([2]);
  });
});
