/**
 * All versions of one model and the hot swap between them (double buffering).
 *
 * `apply(scan)` reconciles what serves with what the repository (and version policy) wants:
 * every wanted version whose files or config are new is loaded and warmed *beside* whatever
 * serves now; only when it is ready does it replace the old one in `serving`, in one
 * synchronous step, so each new request sees either the old or the new set, never a mix.
 * Requests already queued on or running on a replaced version finish there (it drains), then
 * it is freed. A version that fails to load or warm up never serves; the old one keeps
 * serving and the failure stays visible (index, readiness, log) until the files change again,
 * which is when the version is tried again (if the policy still wants it), or the version's
 * directory goes away.
 *
 * Routing: a per-model VersionRouter picks the serving version of each request; it is told
 * the serving set in the same synchronous step that switches it.
 *
 * One swap at a time: applies and reloads are chained, so a swap completes (the new version
 * serves or failed) before the next begins; draining runs in the background.
 *
 * Several objects can carry one version number at once (version 3 serving while changed
 * files of version 3 load beside it, or drain after it). For the index, readiness and the
 * per-version metrics, a number is represented by one of them: the serving one, else the one
 * loading, else the failed one, else the one draining.
 */
import { TensorwireError } from '../errors';
import { routingVersions, selectVersions, type ModelConfig, type RoutingPolicy, type ScannedModel } from '../repository';
import { batchingSettings, mergeLive, validateChange, type BatchingSettings, type LiveConfig } from './live-config';
import { ModelVersion, type VersionContext } from './model-version';
import type { Readiness, RepositoryIndexEntry, VersionState } from './types';
import { noAvailableVersionMessage, unknownVersionMessage, versionNotReadyMessage } from './triton-messages';
import { LatestVersionRouter, type VersionRouter } from './version-router';

/** What one apply (or reload) did. */
export interface ApplyResult {
  /** Versions that were loaded and now serve. */
  loaded: number[];
  /** Versions that failed to load or warm up, and why; what served before keeps serving. */
  failed: { version: number; reason: string }[];
  /** Why the model as a whole cannot be (re)loaded (an invalid config), when so. */
  error?: string;
}

/** Options of a ServedModel beyond the versions' context. */
export interface ServedModelOptions {
  /** How long a retired version may drain before its leftovers are rejected (ms). */
  drainMs: number;
  /** Model-level events (live changes dropped...). */
  log?: (line: string) => void;
}

const NO_RESULT: ApplyResult = { loaded: [], failed: [] };

/** One model's versions and their hot swap; see the file comment. */
export class ServedModel {
  /** Versions taking traffic, by version number (all `ready`); the router routes among them. */
  private readonly serving = new Map<number, ModelVersion>();
  private readonly router: VersionRouter<ModelVersion> = new LatestVersionRouter();
  /** Versions loading or warming, by version number. */
  private readonly pending = new Map<number, ModelVersion>();
  /** Versions whose last attempt failed, by version number (they never served). */
  private readonly failed = new Map<number, ModelVersion>();
  /** Versions draining or unloading. */
  private readonly retiring = new Set<ModelVersion>();
  /** Numbers of versions that served and were unloaded since (reported as unavailable). */
  private readonly unloaded = new Set<number>();
  /** Why the model as a whole cannot serve (invalid config), when so. */
  private modelError: string | undefined;
  /** Serializes applies and reloads: a swap completes before the next starts. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Version numbers the policy selects from the last scan. */
  private wanted: number[] = [];
  /** Versions a live traffic policy names: kept loaded whatever the version policy says. */
  private pinned: number[] = [];
  /** What the last apply worked from: a reload (new instance count) starts from it again. */
  private last: { scanned: ScannedModel; override: ModelConfig | undefined } | undefined;
  /** Live changes (POST .../batching) in force, and the config they were made on. */
  private live: LiveConfig | undefined;
  private liveBase = '';
  private readonly context: VersionContext;
  private readonly drainMs: number;
  private readonly log: (line: string) => void;

  constructor(
    readonly name: string,
    context: VersionContext,
    options: ServedModelOptions,
  ) {
    this.drainMs = options.drainMs;
    this.log = options.log ?? (() => undefined);
    this.context = {
      ...context,
      onState: (v) => {
        // A version reports 'loading' from its constructor, before it is tracked here.
        if (this.tracks(v)) this.publish(v.version);
        context.onState?.(v);
      },
    };
  }

  /**
   * Reconciles with a scan of this model (`configOverride`: the config of an explicit load,
   * used instead of the config file). Resolves when the new versions serve or failed.
   */
  apply(scanned: ScannedModel, configOverride?: ModelConfig, options: { retryFailed?: boolean } = {}): Promise<ApplyResult> {
    return this.enqueue(() => this.reconcile(scanned, configOverride, options.retryFailed ?? false));
  }

  private enqueue(step: () => Promise<ApplyResult>): Promise<ApplyResult> {
    const run = this.chain.then(step);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private configPrint(scanned: ScannedModel, override: ModelConfig | undefined): string {
    return override ? `override:${JSON.stringify(override)}` : scanned.configFingerprint;
  }

  /** `retryFailed`: try again versions that failed with the same files (an explicit load asks for that). */
  private async reconcile(scanned: ScannedModel, override: ModelConfig | undefined, retryFailed = false): Promise<ApplyResult> {
    this.last = { scanned, override };
    if (scanned.error && !override) {
      // Invalid config: keep serving what serves (if anything); report why nothing new loads,
      // in the log (once per distinct error) and in the index.
      if (this.modelError !== scanned.error.message) {
        const serving = this.servingVersions();
        this.log(`model ${this.name}: invalid configuration, nothing new loads${serving.length > 0 ? ` (version ${serving.join(', ')} keeps serving the previous files)` : ''}: ${scanned.error.message}`);
      }
      this.modelError = scanned.error.message;
      return { ...NO_RESULT, error: this.modelError };
    }
    this.modelError = undefined;
    const config = override ?? scanned.config;
    const configPrint = this.configPrint(scanned, override);
    if (this.live && this.liveBase !== configPrint) {
      this.live = undefined;
      this.log(`model ${this.name}: its configuration changed; live batching changes are dropped in favour of it`);
    }
    const available = new Map(scanned.versions.map((v) => [v.version, v.fingerprint]));
    // Versions a traffic policy names (config or live) serve beside what the version policy selects.
    const routed = [...routingVersions(config?.routing), ...this.pinned].filter((n) => available.has(n));
    this.wanted = [...new Set([...selectVersions(config?.version_policy, [...available.keys()]), ...routed])].sort((a, b) => a - b);
    if (this.wanted.length === 0) {
      this.modelError = available.size === 0 ? `no version directory with a model file in ${this.name}/` : 'the version policy selects no available version';
    }

    const starting: ModelVersion[] = [];
    for (const number of this.wanted) {
      const source = scanned.versions.find((v) => v.version === number)!;
      // The instance count is part of what a version is built from; live batching is not (it applies without a reload).
      const fingerprint = `${source.fingerprint}|${configPrint}|instances=${this.live?.instance_count ?? ''}`;
      if (this.serving.get(number)?.fingerprint === fingerprint) continue;
      if (!retryFailed && this.failed.get(number)?.fingerprint === fingerprint) continue; // same broken files: wait for a repair
      const candidate = new ModelVersion(this.name, number, source, config, this.live, fingerprint, this.context);
      this.pending.set(number, candidate);
      this.publish(number);
      starting.push(candidate);
    }
    await Promise.all(starting.map((v) => v.start()));

    // The switch: synchronous, so a request sees the old set or the new one.
    const result: ApplyResult = { loaded: [], failed: [] };
    const replaced: ModelVersion[] = [];
    for (const candidate of starting) {
      this.pending.delete(candidate.version);
      if (candidate.state === 'ready') {
        this.catchUpLive(candidate);
        this.failed.delete(candidate.version);
        this.unloaded.delete(candidate.version);
        const old = this.serving.get(candidate.version);
        if (old) replaced.push(old);
        this.serving.set(candidate.version, candidate);
        result.loaded.push(candidate.version);
      } else {
        this.failed.set(candidate.version, candidate);
        result.failed.push({ version: candidate.version, reason: candidate.reason });
      }
    }
    // Versions the policy no longer wants retire once something wanted serves (a failed swap
    // never leaves the model with nothing to serve).
    if (this.wanted.some((n) => this.serving.has(n))) {
      for (const [number, v] of this.serving) {
        if (!this.wanted.includes(number)) {
          this.serving.delete(number);
          replaced.push(v);
        }
      }
    }
    // A failed version the policy no longer wants stays listed (with its reason) while the
    // files it failed on are still there: the operator may still need to know why.
    for (const [number, v] of [...this.failed]) {
      if (this.wanted.includes(number) || available.get(number) === v.source.fingerprint) continue;
      this.failed.delete(number);
      this.publish(number);
    }
    this.router.update(this.serving.values());
    for (const old of replaced) this.retire(old);
    for (const v of starting) this.publish(v.version);
    return result;
  }

  /** A version that loaded while a live batching change was made gets it before it serves. */
  private catchUpLive(v: ModelVersion): void {
    if (v.liveConfig?.dynamic_batching === this.live?.dynamic_batching) return;
    try {
      v.applyLive(this.live);
    } catch (e) {
      this.log(`model ${this.name} version ${v.version}: the live batching change does not fit it (${(e as Error).message}); it serves with its configured batching`);
    }
  }

  private retire(v: ModelVersion): void {
    this.retiring.add(v);
    this.publish(v.version);
    void v.retire(this.drainMs).finally(() => {
      this.retiring.delete(v);
      if (!this.serving.has(v.version) && !this.pending.has(v.version)) this.unloaded.add(v.version);
      this.publish(v.version);
    });
  }

  /** Stops serving every version (explicit unload, model removed, shutdown). Resolves once freed. */
  unloadAll(): Promise<void> {
    return this.enqueue(async () => {
      const all = [...this.serving.values()];
      this.serving.clear();
      this.router.update([]);
      const failed = [...this.failed.keys()];
      this.failed.clear();
      this.wanted = [];
      this.pinned = [];
      this.live = undefined;
      for (const n of failed) this.publish(n);
      for (const v of all) this.retire(v);
      // Versions still draining from an earlier swap are freed before this resolves too.
      await Promise.all([...this.retiring].map((v) => v.retire(this.drainMs)));
      return NO_RESULT;
    }).then(() => undefined);
  }

  /** Resolves when pending applies are done and every retiring version has been freed. */
  async settled(): Promise<void> {
    await this.chain;
    await Promise.all([...this.retiring].map((v) => v.retire(this.drainMs)));
  }

  // ---- traffic policy ----------------------------------------------------------------------

  /** The traffic policy of the config in force (undefined: none); lib/routing layers live changes over it. */
  configuredRouting(): RoutingPolicy | undefined {
    return this.last ? (this.last.override ?? this.last.scanned.config)?.routing : undefined;
  }

  /**
   * Keeps `versions` loaded (a live traffic policy names them) and resolves once a reconcile
   * with them is done: each then serves, or failed (see readiness).
   */
  keepVersions(versions: number[]): Promise<ApplyResult> {
    this.pinned = [...versions];
    const last = this.last;
    if (last === undefined) return Promise.resolve(NO_RESULT);
    return this.enqueue(() => this.reconcile(last.scanned, last.override, true));
  }

  // ---- live configuration ------------------------------------------------------------------

  /**
   * Applies a live change (see live-config.ts): batching fields at once to every serving
   * version; a new instance count by reloading the same files with it beside the serving
   * versions (a hot swap). Resolves with the settings in force once done. INVALID_INPUT when the
   * change does not fit (nothing changes then); MODEL_LOAD_FAILED when the reload failed (the
   * previous instances keep serving and the old count is restored).
   */
  async configure(change: unknown): Promise<BatchingSettings> {
    const checked = validateChange(change, this.name);
    const serving = [...this.serving.values()];
    if (serving.length === 0) throw new TensorwireError('UNAVAILABLE', `model "${this.name}" has no ready version to change: ${this.notReadyReason()}`, { retryAfterSeconds: 1 });
    const previous = this.live;
    const next = mergeLive(previous, checked);
    for (const v of serving) v.checkLive(next); // all or nothing: throws before anything changes
    this.live = next;
    this.liveBase = this.last ? this.configPrint(this.last.scanned, this.last.override) : '';
    for (const v of serving) v.applyLive(next);
    const count = checked.instance_count;
    if (count !== undefined && serving.some((v) => v.instanceCount !== count) && this.last) {
      const last = this.last;
      this.log(`model ${this.name}: reloading with ${count} instance(s) per version`);
      const result = await this.enqueue(() => this.reconcile(last.scanned, last.override));
      if (result.failed.length > 0 || result.error !== undefined) {
        if (this.live) {
          // A new object: versions keep the overlay they were built with.
          const { instance_count: _dropped, ...rest } = this.live;
          this.live = previous?.instance_count === undefined ? rest : { ...rest, instance_count: previous.instance_count };
        }
        // The serving versions are what they were: forget the attempt rather than report it forever.
        for (const f of result.failed) {
          if (this.serving.has(f.version)) this.failed.delete(f.version);
          this.publish(f.version);
        }
        const why = [...(result.error ? [result.error] : []), ...result.failed.map((f) => `version ${f.version}: ${f.reason}`)].join('; ');
        throw new TensorwireError('MODEL_LOAD_FAILED', `model "${this.name}": reload with instance_count ${count} failed (${why}); the previous instances keep serving`);
      }
    }
    return this.settings();
  }

  /** The batching settings and instance count of the version serving unversioned requests. */
  settings(): BatchingSettings {
    const v = this.resolve(undefined);
    return batchingSettings(this.name, this.servingVersions(), v.effective!, v.instanceCount, this.live !== undefined);
  }

  // ---- routing and readiness ---------------------------------------------------------------

  /**
   * The version that serves a request, as the router picks it (today: the named one, or the
   * highest ready version).
   * NOT_FOUND for a version the model does not have; UNAVAILABLE (503) when it exists but
   * does not serve now.
   */
  resolve(version: string | undefined): ModelVersion {
    if (version === undefined || version === '') {
      const latest = this.router.route(undefined);
      if (latest) return latest;
      throw new TensorwireError('UNAVAILABLE', noAvailableVersionMessage(this.name, this.notReadyReason()), { retryAfterSeconds: 1 });
    }
    const number = versionNumber(version);
    const v = number === undefined ? undefined : this.router.route(number);
    if (v) return v;
    if (number === undefined || !this.knows(number)) throw new TensorwireError('NOT_FOUND', unknownVersionMessage(this.name, version));
    throw new TensorwireError('UNAVAILABLE', versionNotReadyMessage(this.name, version, this.versionReason(number)), { retryAfterSeconds: 1 });
  }

  /** Version numbers taking traffic, ascending. */
  servingVersions(): number[] {
    return [...this.serving.keys()].sort((a, b) => a - b);
  }

  /** Every version object this model serves or tried to: for metrics, stats and queue depths. */
  versions(): ModelVersion[] {
    return [...this.serving.values(), ...this.pending.values(), ...this.failed.values(), ...this.retiring];
  }

  /** True when at least one version serves. */
  isReady(): boolean {
    return this.serving.size > 0;
  }

  /** Readiness of the model (any version serves) or of one version, with the reason when not. */
  readiness(version: string | undefined): Readiness {
    if (version === undefined || version === '') return this.isReady() ? { ready: true } : { ready: false, reason: this.notReadyReason() };
    const number = versionNumber(version);
    if (number !== undefined && this.serving.has(number)) return { ready: true };
    if (number === undefined || !this.knows(number)) throw new TensorwireError('NOT_FOUND', unknownVersionMessage(this.name, version));
    return { ready: false, reason: this.versionReason(number) };
  }

  private knows(number: number): boolean {
    return this.serving.has(number) || this.pending.has(number) || this.failed.has(number) || this.unloaded.has(number) || [...this.retiring].some((r) => r.version === number);
  }

  private tracks(v: ModelVersion): boolean {
    const n = v.version;
    return this.serving.get(n) === v || this.pending.get(n) === v || this.failed.get(n) === v || this.retiring.has(v);
  }

  /** The object standing for a version number (see the file comment), if any. */
  private representative(number: number): ModelVersion | undefined {
    const retiring = [...this.retiring].filter((r) => r.version === number);
    return this.serving.get(number) ?? this.pending.get(number) ?? this.failed.get(number) ?? retiring[retiring.length - 1];
  }

  private versionReason(number: number): string {
    const v = this.representative(number);
    if (!v) return this.unloaded.has(number) ? 'unloaded' : 'not loaded';
    return v.state === 'failed' ? `failed: ${v.reason}` : v.reason;
  }

  private notReadyReason(): string {
    if (this.modelError) return this.modelError;
    const pending = [...this.pending.values()];
    if (pending.length > 0) return pending.map((v) => `version ${v.version} ${v.reason}`).join('; ');
    const failed = [...this.failed.values()];
    if (failed.length > 0) return failed.map((v) => `version ${v.version} failed: ${v.reason}`).join('; ');
    const retiring = [...this.retiring];
    if (retiring.length > 0) return retiring.map((v) => `version ${v.version} ${v.reason}`).join('; ');
    return this.unloaded.size > 0 ? 'unloaded' : 'not loaded';
  }

  /** Rows of the repository index: one per version number, plus the model-level error. */
  index(): RepositoryIndexEntry[] {
    const numbers = new Set<number>([...this.serving.keys(), ...this.pending.keys(), ...this.failed.keys(), ...[...this.retiring].map((v) => v.version), ...this.unloaded]);
    const rows: RepositoryIndexEntry[] = [];
    for (const number of [...numbers].sort((a, b) => a - b)) {
      const v = this.representative(number);
      let state: VersionState = v?.state ?? 'unavailable';
      let reason = v ? v.reason : 'unloaded';
      if (state === 'ready') {
        // Serving, possibly with a reload of changed files under way or failed beside it.
        const reload = this.pending.get(number);
        const failure = this.failed.get(number);
        reason = reload
          ? `serving; new files ${reload.reason}`
          : failure
            ? `serving the previous files; the new ones failed: ${failure.reason}`
            : this.modelError
              ? `serving the previous files; the new ones were refused: ${this.modelError}`
              : '';
      }
      if (v?.state === 'failed') state = 'failed';
      rows.push({ name: this.name, version: String(number), state, reason });
    }
    if (this.modelError && rows.every((r) => r.state !== 'ready')) rows.push({ name: this.name, version: '', state: 'failed', reason: this.modelError });
    return rows;
  }

  /** Sets the per-version state gauge (and memory) from the representative of `number`. */
  private publish(number: number): void {
    const metrics = this.context.metrics;
    if (!metrics) return;
    const v = this.representative(number);
    const label = String(number);
    if (!v || v.state === 'unavailable') {
      metrics.removeModel(this.name, label);
      return;
    }
    metrics.setModelState(this.name, label, v.state);
    if (v.state === 'ready' && v.servable) metrics.setModelMemory(this.name, label, v.servable.memory());
  }
}

/** A version path segment as a number, or undefined when it is not a positive integer. */
function versionNumber(version: string): number | undefined {
  return /^[1-9][0-9]{0,14}$/.test(version) ? Number(version) : undefined;
}
