/**
 * The server core (InferenceService): model repository + per-model hot swap + schedulers +
 * engine, independent of HTTP. Front ends (lib/server) call only this.
 *
 * Model control (Triton's --model-control-mode):
 * - none: load what the repository holds at start; later changes are ignored.
 * - poll: as none, then watch the repository and hot-swap on every settled change.
 * - explicit: load only `loadModels` at start; the repository API loads and unloads.
 */
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { TensorwireError, toTensorwireError } from '../errors';
import { truncateForMessage } from '../util/message-text';
import { engineInfo, gpuStats } from '../engine';
import { createMetrics, type TensorwireMetrics } from '../metrics/registry';
import type { InferRequest, InferResponse, InferOutputTensor } from '../protocol/types';
import { CONFIG_DEFAULTS, RepositoryWatcher, type RoutingPolicy, scanModel, scanRepository, singleFileRepository, validateConfig, type CompleteOptions, type RepositoryDiff, type RepositoryScan } from '../repository';
import type { BatchingChange, BatchingSettings } from './live-config';
import type { ModelVersion } from './model-version';
import type { ServableFactory } from './servable';
import { ServedModel } from './served-model';
import { withEnsembles } from './ensemble-servable';
import { loadOnnxServable } from './onnx-servable';
import { loadFailedMessage, unknownModelMessage } from './triton-messages';
import type { InferenceService, ModelMetadataResponse, ModelStatistics, Readiness, RepositoryIndexEntry } from './types';
import { checkClassificationRequest, classifyOutput } from '../protocol/classification';

export type ModelControl = 'none' | 'poll' | 'explicit';

/** Model names the repository serves (as the scanner's rule): URL-safe, and never a path. */
const MODEL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Options of createInferenceService. */
export interface CreateServiceOptions {
  /** A repository directory (`<name>/<version>/model.onnx`) or a single `.onnx` file. */
  repository: string;
  modelControl?: ModelControl;
  /** Models to load at start in explicit mode. */
  loadModels?: string[];
  /** Repository poll interval in poll mode (ms). Default 1000. */
  pollMs?: number;
  /** How long a retired version may drain before its leftovers are rejected (ms). Default 30000. */
  drainMs?: number;
  /** Prometheus registry to record into; a new one by default. */
  registry?: Registry;
  /** Log lines (state changes); default console.log. */
  log?: (line: string) => void;
  /** Builds what serves each version; default: an ONNX model behind the dynamic batcher. */
  servables?: ServableFactory;
  /** Server-wide defaults for what a model's config leaves out (provider, instances, max batch size). */
  modelDefaults?: Pick<CompleteOptions, 'defaultProvider' | 'defaultInstances' | 'defaultMaxBatchSize' | 'defaultMaxOutputBytes'>;
  /**
   * Directory TensorRT engine caches go to: a config's `engine_cache_path` is resolved inside
   * it and may not leave it. Default `<repository>/.tensorwire-trt-cache` (hidden, so the
   * scanner skips it).
   */
  trtCacheDir?: string;
}

/** The service plus what the CLI and tests need beyond the front-end interface. */
export interface TensorwireService extends InferenceService {
  readonly metrics: TensorwireMetrics;
  readonly registry: Registry;
  /** Resolves when the models loaded at start have loaded (or failed). */
  readonly initialLoad: Promise<void>;
  /**
   * Live change of a serving model's batching (applies at once to every serving version) and
   * instance count (reloads the same files beside the serving ones: a hot swap). Resolves with
   * the settings in force.
   */
  updateBatching(name: string, change: BatchingChange): Promise<BatchingSettings>;
  /** The batching settings and instance count in force. */
  batchingSettings(name: string): BatchingSettings;
  /** The traffic policy of `name`'s config in force (undefined: none, or no such model). */
  configuredRouting(name: string): RoutingPolicy | undefined;
  /** Keeps `versions` of `name` loaded (a live traffic policy names them); resolves once each serves or failed. */
  keepVersions(name: string, versions: number[]): Promise<void>;
  /** Version numbers of `name` taking traffic, ascending (none for an unknown model). */
  servingVersions(name: string): number[];
  /** Readiness false, new requests 503, queued and running ones finish, models freed. */
  shutdown(): Promise<void>;
  /**
   * The version that would handle a request (see InferenceService.admit), for callers that
   * need more of it than the front ends do.
   */
  admit(name: string, version?: string): ModelVersion;
}

class Service implements TensorwireService {
  readonly registry: Registry;
  readonly metrics: TensorwireMetrics;
  initialLoad: Promise<void> = Promise.resolve();
  private readonly models = new Map<string, ServedModel>();
  private readonly expected = new Set<string>();
  private watcher: RepositoryWatcher | undefined;
  private shuttingDown = false;
  private readonly drainMs: number;
  private readonly log: (line: string) => void;
  private singleFile = false;

  constructor(private readonly options: CreateServiceOptions) {
    this.registry = options.registry ?? new Registry();
    // GPU gauges exist only where NVML reports a GPU.
    const gpus = gpuStats();
    this.metrics = createMetrics(this.registry, {
      ...(gpus.length > 0 ? { gpuProvider: () => gpuStats().map((g) => ({ gpu: String(g.index), utilization: g.utilization, memoryUsedBytes: g.memoryUsed, memoryTotalBytes: g.memoryTotal })) } : {}),
      pinnedMemoryProvider: () => {
        const info = engineInfo();
        return { usedBytes: info.pinnedBytes, totalBytes: info.pinnedBytes };
      },
    });
    this.metrics.registerQueueDepthProvider(() => this.queueDepths());
    this.drainMs = options.drainMs ?? 30_000;
    this.log = options.log ?? ((line) => console.log(line));
  }

  private *queueDepths() {
    for (const m of this.models.values()) for (const v of m.versions()) yield { model: m.name, version: String(v.version), depth: v.queueDepth() };
  }

  private served(name: string): ServedModel {
    let m = this.models.get(name);
    if (!m) {
      m = new ServedModel(
        name,
        {
          metrics: this.metrics,
          // Ensembles run their steps through this service's own infer (each step's batcher).
          servables: withEnsembles(this.options.servables ?? loadOnnxServable, (model, version, request, signal) => this.infer(model, version, request, signal), this.registry),
          complete: { ...this.options.modelDefaults, trtCacheDir: this.trtCacheDir() },
          onState: (v) => this.log(`model ${v.name} version ${v.version}: ${v.state}${v.state === 'failed' ? ` (${v.reason})` : ''}`),
        },
        { drainMs: this.drainMs, log: this.log },
      );
      this.models.set(name, m);
    }
    return m;
  }

  private trtCacheDir(): string {
    if (this.options.trtCacheDir !== undefined) return this.options.trtCacheDir;
    const repo = this.options.repository;
    return path.join(this.singleFile ? path.dirname(repo) : repo, CONFIG_DEFAULTS.trtCacheDirName);
  }

  async start(): Promise<void> {
    const repo = this.options.repository;
    const info = await stat(repo).catch(() => undefined);
    if (!info) throw new TensorwireError('NOT_FOUND', `model repository ${repo} does not exist`);
    this.singleFile = info.isFile();
    const scan = this.singleFile ? await singleFileRepository(repo) : await scanRepository(repo);
    const control = this.options.modelControl ?? 'poll';
    const names = control === 'explicit' ? (this.options.loadModels ?? []) : [...scan.models.keys()];
    for (const name of names) {
      if (!scan.models.has(name)) throw new TensorwireError('NOT_FOUND', `--load-model ${name}: no model directory ${path.join(repo, name)}`);
    }
    for (const name of names) this.expected.add(name);
    this.initialLoad = Promise.all(names.map((n) => this.served(n).apply(scan.models.get(n)!))).then(() => undefined);
    if (control === 'poll') {
      this.watcher = new RepositoryWatcher(repo, {
        intervalMs: this.options.pollMs ?? 1000,
        scan: this.singleFile ? () => singleFileRepository(repo) : undefined,
        onChange: (diff) => this.applyDiff(diff),
        onError: (e) => this.log(`repository: ${e.message}`),
      });
      void this.initialLoad.then(() => this.watcher?.start(scan));
    }
  }

  private async applyDiff(diff: RepositoryDiff): Promise<void> {
    if (this.shuttingDown) return;
    await Promise.all(
      diff.changes.map(async (change) => {
        if (change.kind === 'removed') {
          this.expected.delete(change.name);
          this.log(`model ${change.name}: removed from the repository, unloading`);
          await this.models.get(change.name)?.unloadAll();
          return;
        }
        this.expected.add(change.name);
        await this.served(change.name).apply(change.model!);
      }),
    );
  }

  isLive(): boolean {
    return true;
  }

  isReady(): boolean {
    if (this.shuttingDown) return false;
    for (const name of this.expected) if (!this.models.get(name)?.isReady()) return false;
    return true;
  }

  private known(name: string): ServedModel {
    const m = this.models.get(name);
    if (!m) throw new TensorwireError('NOT_FOUND', unknownModelMessage(name));
    return m;
  }

  modelReadiness(name: string, version?: string): Readiness {
    if (this.shuttingDown) return { ready: false, reason: 'server is shutting down' };
    return this.known(name).readiness(version);
  }

  modelMetadata(name: string, version?: string): ModelMetadataResponse {
    const m = this.known(name);
    const v = m.resolve(version);
    const e = v.effective!;
    return { name, versions: m.servingVersions().map(String), platform: e.config.platform ?? 'onnxruntime_onnx', inputs: e.inputs, outputs: e.outputs };
  }

  servingMetadata(name: string, version?: string) {
    const v = this.known(name).resolve(version);
    return { version: String(v.version), metadata: v.servable!.metadata, maxBatchSize: v.effective!.maxBatchSize };
  }

  admit(name: string, version?: string): ModelVersion {
    if (this.shuttingDown) throw new TensorwireError('UNAVAILABLE', 'server is shutting down', { retryAfterSeconds: 1 });
    return this.known(name).resolve(version);
  }

  modelConfig(name: string, version?: string): Record<string, unknown> {
    return this.known(name).resolve(version).effective!.tritonConfig;
  }

  /**
   * Counts a request for `name` that failed before reaching it (the transport could not decode
   * it) as a failure of the version that would have served it, with `reason` (an error code).
   * False when no such version serves: nothing is counted for unknown names.
   */
  recordRefused(name: string, version: string | undefined, reason: string): boolean {
    const model = this.models.get(name);
    if (model === undefined) return false;
    let v: ModelVersion;
    try {
      v = model.resolve(version);
    } catch {
      return false;
    }
    v.stats.recordFailure(reason, 0);
    return true;
  }

  async infer(name: string, version: string | undefined, request: InferRequest, signal?: AbortSignal): Promise<InferResponse> {
    const v = this.admit(name, version);
    const start = performance.now();
    this.metrics.requestStarted();
    try {
      const batched = v.effective!.maxBatchSize > 0;
      checkClassificationRequest(request, v.effective!.outputs, batched);
      const result = await v.infer(request, signal);
      const totalUs = (performance.now() - start) * 1000;
      const batchSize = v.effective!.maxBatchSize > 0 ? request.inputs[0].shape[0] : 1;
      v.stats.recordSuccess(batchSize, result.timings, totalUs);
      const outputs: InferOutputTensor[] = new Array(result.outputs.length);
      for (let i = 0; i < outputs.length; i++) {
        const o = result.outputs[i];
        const binary = request.outputs ? request.outputs[i].binary : request.binaryDataOutput;
        const k = request.outputs?.[i].classification;
        const c = k === undefined ? o : classifyOutput(o, k, batched, v.outputLabels.get(o.name));
        outputs[i] = { name: c.name, datatype: c.datatype, shape: c.shape, data: c.data, binary };
      }
      const response: InferResponse = { modelName: name, modelVersion: String(v.version), outputs, timings: result.timings };
      if (request.id !== undefined) response.id = request.id;
      return response;
    } catch (e) {
      const err = toTensorwireError(e);
      v.stats.recordFailure(err.code, (performance.now() - start) * 1000);
      throw err;
    } finally {
      this.metrics.requestFinished();
    }
  }

  /**
   * Statistics of the versions that serve (or drain). A named model with none, or a named
   * version that does not serve, is Triton's 400 with Triton's words (its statistics call
   * answers so, not with the lookup's 404).
   */
  statistics(name?: string, version?: string): ModelStatistics[] {
    const models = name ? [this.models.get(name)] : [...this.models.values()];
    const out: ModelStatistics[] = [];
    for (const m of models) {
      const available = m?.versions().filter((v) => v.state === 'ready' || v.state === 'draining') ?? [];
      if (name && available.length === 0) throw new TensorwireError('INVALID_INPUT', `requested model '${truncateForMessage(name)}' is not available`);
      // A number can stand for two objects (serving files and the files they replaced, draining): the serving one comes first.
      const versions = version ? available.filter((v) => String(v.version) === version).slice(0, 1) : available;
      if (name && versions.length === 0) throw new TensorwireError('INVALID_INPUT', `requested model version is not available for model '${truncateForMessage(name)}'`);
      for (const v of versions) out.push(v.stats.toJSON());
    }
    return out;
  }

  async scanRepositoryIndex(readyOnly = false): Promise<RepositoryIndexEntry[]> {
    const rows = this.repositoryIndex(readyOnly);
    if (readyOnly || this.singleFile) return rows;
    const scan = await scanRepository(this.options.repository).catch(() => undefined);
    for (const name of scan?.models.keys() ?? []) {
      if (!rows.some((r) => r.name === name)) rows.push({ name, version: '', state: 'unavailable', reason: 'not loaded' });
    }
    return rows.sort((a, b) => (a.name === b.name ? Number(a.version) - Number(b.version) : a.name < b.name ? -1 : 1));
  }

  repositoryIndex(readyOnly = false): RepositoryIndexEntry[] {
    const rows = [...this.models.values()].flatMap((m) => m.index());
    return readyOnly ? rows.filter((r) => r.state === 'ready') : rows;
  }

  async loadModel(name: string, config?: Record<string, unknown>, options: { directory?: string } = {}): Promise<void> {
    if ((this.options.modelControl ?? 'poll') !== 'explicit') {
      throw new TensorwireError('INVALID_INPUT', 'explicit model load / unload is not allowed unless the server runs with --model-control explicit');
    }
    if (this.singleFile) throw new TensorwireError('INVALID_INPUT', 'a single-file server has no repository to load from');
    // The name comes from a URL: only names the scanner would serve (no "..", no "/").
    if (!MODEL_NAME.test(name)) throw new TensorwireError('NOT_FOUND', loadFailedMessage(name, 'model names are letters, digits, _ . - (not starting with .)'));
    const override = config === undefined ? undefined : validateConfig(config, `load request for "${name}"`);
    // An uploaded model's files are in a directory the server made for them (lib/server/model-uploads.ts).
    const dir = options.directory ?? path.join(this.options.repository, name);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw new TensorwireError('NOT_FOUND', loadFailedMessage(name, 'no such model directory in the repository'));
    // The override's default_model_filename picks the file in each version directory (validated as a plain file name).
    const scanned = await scanModel(dir, name, override?.default_model_filename);
    if (scanned.versions.length === 0 && !scanned.error) throw new TensorwireError('NOT_FOUND', loadFailedMessage(name, 'no version directory with a model file'));
    const m = this.served(name);
    const result = await m.apply(scanned, override, { retryFailed: true });
    // Server readiness waits for the models that serve (a first load that failed does not make the server unready).
    if (m.isReady()) this.expected.add(name);
    const problems = [...(result.error ? [result.error] : []), ...result.failed.map((f) => `version ${f.version}: ${f.reason}`)];
    if (problems.length > 0 || !m.isReady()) {
      const serving = m.servingVersions();
      const still = serving.length > 0 ? `; version ${serving.join(', ')} keeps serving` : '';
      throw new TensorwireError('MODEL_LOAD_FAILED', loadFailedMessage(name, `${problems.join('; ') || m.readiness(undefined).reason || 'unknown reason'}${still}`));
    }
  }

  async unloadModel(name: string): Promise<void> {
    if ((this.options.modelControl ?? 'poll') !== 'explicit') {
      throw new TensorwireError('INVALID_INPUT', 'explicit model load / unload is not allowed unless the server runs with --model-control explicit');
    }
    const m = this.known(name);
    this.expected.delete(name);
    await m.unloadAll();
  }

  updateBatching(name: string, change: BatchingChange): Promise<BatchingSettings> {
    if (this.shuttingDown) return Promise.reject(new TensorwireError('UNAVAILABLE', 'server is shutting down', { retryAfterSeconds: 1 }));
    return this.known(name).configure(change);
  }

  batchingSettings(name: string): BatchingSettings {
    return this.known(name).settings();
  }

  configuredRouting(name: string): RoutingPolicy | undefined {
    return this.models.get(name)?.configuredRouting();
  }

  async keepVersions(name: string, versions: number[]): Promise<void> {
    if (this.shuttingDown) throw new TensorwireError('UNAVAILABLE', 'server is shutting down', { retryAfterSeconds: 1 });
    await this.known(name).keepVersions(versions);
  }

  servingVersions(name: string): number[] {
    return this.models.get(name)?.servingVersions() ?? [];
  }

  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await this.watcher?.stop();
    await Promise.all([...this.models.values()].map((m) => m.unloadAll()));
  }
}

/** Builds the service and starts loading the repository (await `initialLoad` for the loads). */
export async function createInferenceService(options: CreateServiceOptions): Promise<TensorwireService> {
  const service = new Service(options);
  await service.start();
  return service;
}

export type { RepositoryScan };
