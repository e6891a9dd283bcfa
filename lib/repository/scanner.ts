/**
 * Scans a model repository laid out as Triton's: `<root>/<model>/<version>/model.onnx`, with an
 * optional `<root>/<model>/config.json` or `config.pbtxt`. Only async fs calls: a scan never
 * blocks the event loop, however large the repository.
 *
 * A problem with one model (invalid config, unreadable directory) is recorded on that model and
 * does not stop the others. Fingerprints let the watcher tell what changed without reading
 * model files: a version's fingerprint is made of the names, sizes and modification times of
 * the files in its directory (hashing gigabytes of weights on every poll would cost far more
 * than it buys); the config's is a hash of its contents (small, and exact).
 */
import { createHash } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { TensorwireError, toTensorwireError } from '../errors';
import { checkConfigName, DEFAULT_MODEL_FILENAME } from './complete-config';
import { type ModelConfig, parseConfigJson } from './config';
import { CONFIG_LIMITS } from './config-limits';
import { parseConfigPbtxt } from './pbtxt';

/** One servable version directory. */
export interface ScannedVersion {
  version: number;
  dir: string;
  /** The model file (config `default_model_filename`, default model.onnx). */
  modelPath: string;
  /** Size of the model file in bytes. */
  size: number;
  mtimeMs: number;
  /** Changes when any file in the version directory is added, removed, resized or touched. */
  fingerprint: string;
}

/** A directory entry that is not part of the repository, and why. */
export interface IgnoredEntry {
  path: string;
  reason: string;
}

/** One model directory. */
export interface ScannedModel {
  name: string;
  dir: string;
  /** The config file, if the model has one. */
  configSource?: { format: 'json' | 'pbtxt'; path: string };
  /** The validated config; undefined when there is no config file or when `error` is set. */
  config?: ModelConfig;
  /** Why this model cannot be served as it is (invalid config, both config files present, unreadable). */
  error?: TensorwireError;
  /** Hash of the config file's contents and of the `warmup/` directory listing; '' when neither exists. */
  configFingerprint: string;
  /** Servable versions, ascending. */
  versions: ScannedVersion[];
  ignored: IgnoredEntry[];
  /** Changes whenever the config or any version changes. */
  fingerprint: string;
}

/** The state of a repository at one moment. */
export interface RepositoryScan {
  root: string;
  /** By model name, in name order. */
  models: Map<string, ScannedModel>;
  /** Top-level entries that are not models. */
  ignored: IgnoredEntry[];
}

/** Model names tensorwire serves: safe in a URL path segment without escaping. */
const MODEL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
/** Triton ignores version directories that are not numbers or that start with 0. */
const VERSION_DIR = /^[1-9][0-9]{0,14}$/;

function hash(parts: string[]): string {
  return createHash('sha1').update(parts.join('\n')).digest('hex');
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** `stat` that answers undefined for a missing entry (it may vanish between readdir and stat). */
async function statOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await stat(p);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** Names, sizes and mtimes of a directory's entries (one level), as fingerprint lines. */
async function listingLines(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return [];
    throw e;
  }
  const lines = await Promise.all(
    entries.map(async (e) => {
      const s = await statOrUndefined(path.join(dir, e.name));
      return s ? `${e.name}:${s.isDirectory() ? 'd' : s.size}:${s.mtimeMs}` : '';
    }),
  );
  return lines.filter(Boolean).sort();
}

/** Reads the model's config file, if any. Both config.json and config.pbtxt present is an error (which one would win is not obvious). */
async function readConfig(model: ScannedModel, names: Set<string>): Promise<void> {
  const json = names.has('config.json');
  const pbtxt = names.has('config.pbtxt');
  if (json && pbtxt) {
    model.configSource = { format: 'json', path: path.join(model.dir, 'config.json') };
    model.error = new TensorwireError('INVALID_INPUT', `${model.name}: has both config.json and config.pbtxt; keep one`);
    model.configFingerprint = hash(['both']);
    return;
  }
  if (!json && !pbtxt) return;
  const format = json ? 'json' : 'pbtxt';
  const fileName = json ? 'config.json' : 'config.pbtxt';
  const file = path.join(model.dir, fileName);
  // Messages name the file relative to the repository: they reach clients (index, load errors).
  const where = `${model.name}/${fileName}`;
  model.configSource = { format, path: file };
  let text: string;
  try {
    // Sized before it is read: a config is small, and a huge file must not be read into memory.
    const size = (await stat(file)).size;
    if (size > CONFIG_LIMITS.configBytes) {
      model.error = new TensorwireError('INVALID_INPUT', `${where}: ${size} bytes, larger than a config may be (${CONFIG_LIMITS.configBytes})`);
      model.configFingerprint = hash([format, 'too large', String(size)]);
      return;
    }
    text = await readFile(file, 'utf8');
  } catch (e) {
    model.error = new TensorwireError('INVALID_INPUT', `${where}: cannot be read (${errnoCode(e) ?? 'error'})`, { cause: e });
    model.configFingerprint = hash([format, 'unreadable', errnoCode(e) ?? '']);
    return;
  }
  model.configFingerprint = hash([format, text]);
  try {
    const config = format === 'json' ? parseConfigJson(text, where) : parseConfigPbtxt(text, where);
    checkConfigName(config, model.name, where);
    model.config = config;
  } catch (e) {
    model.error = toTensorwireError(e);
  }
}

/** A version directory, or the reason it is not one. */
async function scanVersion(model: ScannedModel, entry: string, modelFilename: string): Promise<ScannedVersion | IgnoredEntry> {
  const dir = path.join(model.dir, entry);
  const modelPath = path.join(dir, modelFilename);
  const s = await statOrUndefined(modelPath);
  if (!s && (model.config?.platform === 'ensemble' || model.config?.platform === 'tensorwire_cascade')) {
    // An ensemble's (or cascade's) version directory is empty (Triton's layout): its steps name the models.
    return { version: Number(entry), dir, modelPath: dir, size: 0, mtimeMs: 0, fingerprint: hash(await listingLines(dir)) };
  }
  if (!s) return { path: dir, reason: `no ${modelFilename} in it` };
  if (!s.isFile()) return { path: dir, reason: `${modelFilename} is not a file` };
  const lines = await listingLines(dir);
  return { version: Number(entry), dir, modelPath, size: s.size, mtimeMs: s.mtimeMs, fingerprint: hash(lines) };
}

/**
 * Scans one model directory; never throws (problems land in `error`). `modelFilename` replaces
 * the config's default_model_filename (a load request's config override names it).
 */
export async function scanModel(dir: string, name: string, modelFilename?: string): Promise<ScannedModel> {
  const model: ScannedModel = { name, dir, configFingerprint: '', versions: [], ignored: [], fingerprint: '' };
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    const names = new Set(entries.filter((e) => e.isFile() || e.isSymbolicLink()).map((e) => e.name));
    await readConfig(model, names);
    const warmup = entries.some((e) => e.name === 'warmup') ? await listingLines(path.join(dir, 'warmup')) : [];
    if (warmup.length > 0) model.configFingerprint = hash([model.configFingerprint, ...warmup]);
    const filename = modelFilename ?? model.config?.default_model_filename ?? DEFAULT_MODEL_FILENAME;
    const candidates: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name === 'warmup') continue;
      const isDir = e.isDirectory() || (e.isSymbolicLink() && (await statOrUndefined(path.join(dir, e.name)))?.isDirectory());
      if (!isDir) continue;
      if (VERSION_DIR.test(e.name)) candidates.push(e.name);
      else model.ignored.push({ path: path.join(dir, e.name), reason: 'not a version directory (versions are positive numbers without leading zeros)' });
    }
    const results = await Promise.all(candidates.map((c) => scanVersion(model, c, filename)));
    for (const r of results) {
      if ('version' in r) model.versions.push(r);
      else model.ignored.push(r);
    }
    model.versions.sort((a, b) => a.version - b.version);
  } catch (e) {
    model.error = new TensorwireError('INVALID_INPUT', `${name}: cannot read the model directory (${errnoCode(e) ?? 'error'})`, { cause: e });
  }
  model.fingerprint = hash([model.configFingerprint, model.error?.message ?? '', ...model.versions.map((v) => `${v.version}:${v.fingerprint}`)]);
  return model;
}

/**
 * Scans `root`: every `<root>/<model>/` directory whose name is URL-safe (letters, digits,
 * `_ . -`, not starting with `.`) is a model. Throws TensorwireError INVALID_INPUT when `root`
 * itself is missing or not a directory.
 */
export async function scanRepository(root: string): Promise<RepositoryScan> {
  let entries: Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (e) {
    const why = errnoCode(e) === 'ENOENT' ? 'does not exist' : errnoCode(e) === 'ENOTDIR' ? 'is not a directory' : `cannot be read (${errnoCode(e) ?? (e as Error).message})`;
    throw new TensorwireError('INVALID_INPUT', `model repository ${root} ${why}`, { cause: e });
  }
  const ignored: IgnoredEntry[] = [];
  const names: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const isDir = e.isDirectory() || (e.isSymbolicLink() && (await statOrUndefined(path.join(root, e.name)))?.isDirectory());
    if (!isDir) continue;
    if (MODEL_NAME.test(e.name)) names.push(e.name);
    else ignored.push({ path: path.join(root, e.name), reason: 'not a valid model name (letters, digits, _ . - only)' });
  }
  names.sort();
  const models = await Promise.all(names.map((n) => scanModel(path.join(root, n), n)));
  return { root, models: new Map(models.map((m) => [m.name, m])), ignored };
}

/**
 * A one-model repository for `tensorwire serve file.onnx`: the model is named after the file
 * (extension dropped; characters not allowed in model names become `_`), version 1.
 */
export async function singleFileRepository(file: string): Promise<RepositoryScan> {
  const s = await statOrUndefined(file);
  if (!s) throw new TensorwireError('INVALID_INPUT', `model file ${file} does not exist`);
  if (!s.isFile()) throw new TensorwireError('INVALID_INPUT', `model file ${file} is not a file`);
  const dir = path.dirname(file);
  let name = path.basename(file, path.extname(file)).replace(/[^A-Za-z0-9_.-]/g, '_');
  if (!MODEL_NAME.test(name)) name = `_${name}`;
  const fingerprint = hash([`${path.basename(file)}:${s.size}:${s.mtimeMs}`]);
  const version: ScannedVersion = { version: 1, dir, modelPath: file, size: s.size, mtimeMs: s.mtimeMs, fingerprint };
  const model: ScannedModel = { name, dir, configFingerprint: '', versions: [version], ignored: [], fingerprint: hash(['', '', `1:${fingerprint}`]) };
  return { root: dir, models: new Map([[name, model]]), ignored: [] };
}
