/**
 * All versions of one model and the hot swap between them (double buffering).
 *
 * `apply(scan)` reconciles what serves with what the repository (and version policy) wants:
 * every wanted version whose files or config are new is loaded and warmed *beside* whatever
 * serves now; only when it is ready does it replace the old one in `serving`, in one
 * synchronous step, so each new request sees either the old or the new set, never a mix.
 * The replaced and no-longer-wanted versions then drain (their queued and running requests
 * finish on them) and are freed. A version that fails to load or warm up never serves; the
 * old one keeps serving and the failure stays visible until a later change of the files.
 */
import { TensorwireError } from '../errors';
import { selectVersions, type ModelConfig, type ScannedModel } from '../repository';
import { ModelVersion, type VersionContext } from './model-version';
import type { Readiness, RepositoryIndexEntry } from './types';

export class ServedModel {
  /** Versions taking traffic, by version number (all `ready`). */
  private readonly serving = new Map<number, ModelVersion>();
  /** Versions loading or warming, by version number. */
  private readonly pending = new Map<number, ModelVersion>();
  /** Versions whose last attempt failed, by version number (they never served). */
  private readonly failed = new Map<number, ModelVersion>();
  /** Versions draining or unloading. */
  private readonly retiring = new Set<ModelVersion>();
  /** Why the model as a whole cannot serve (invalid config), when so. */
  private modelError: string | undefined;
  /** Serializes applies: a swap completes before the next starts. */
  private chain: Promise<void> = Promise.resolve();
  /** Highest version number that ever served, for the "never go back" rule. */
  private wanted: number[] = [];

  constructor(
    readonly name: string,
    private readonly context: VersionContext,
    private readonly drainMs: number,
  ) {}

  /** Reconciles with a scan of this model (config override for explicit loads). Resolves when settled. */
  apply(scanned: ScannedModel, configOverride?: ModelConfig): Promise<void> {
    this.chain = this.chain.then(() => this.reconcile(scanned, configOverride));
    return this.chain;
  }

  private async reconcile(scanned: ScannedModel, configOverride: ModelConfig | undefined): Promise<void> {
    if (scanned.error && !configOverride) {
      // Invalid config: keep serving what serves (if anything); report why nothing new loads.
      this.modelError = scanned.error.message;
      return;
    }
    this.modelError = undefined;
    const config = configOverride ?? scanned.config;
    const configPrint = configOverride ? JSON.stringify(configOverride) : scanned.configFingerprint;
    const available = scanned.versions.map((v) => v.version);
    this.wanted = selectVersions(config?.version_policy, available);
    if (this.wanted.length === 0) {
      this.modelError = available.length === 0 ? `no version directory with a model file in ${scanned.dir}` : 'the version policy selects no available version';
    }

    const starting: ModelVersion[] = [];
    for (const number of this.wanted) {
      const source = scanned.versions.find((v) => v.version === number)!;
      const fingerprint = `${source.fingerprint}|${configPrint}`;
      const current = this.serving.get(number);
      const lastFailure = this.failed.get(number);
      if (current?.fingerprint === fingerprint) continue;
      if (lastFailure?.fingerprint === fingerprint) continue; // same broken files: wait for a repair
      const candidate = new ModelVersion(this.name, number, source, config, fingerprint, this.context);
      this.pending.set(number, candidate);
      starting.push(candidate);
    }
    await Promise.all(starting.map((v) => v.start()));

    // The switch: synchronous, so a request sees the old set or the new one.
    const replaced: ModelVersion[] = [];
    for (const candidate of starting) {
      this.pending.delete(candidate.version);
      if (candidate.state === 'ready') {
        this.failed.delete(candidate.version);
        const old = this.serving.get(candidate.version);
        if (old) replaced.push(old);
        this.serving.set(candidate.version, candidate);
      } else {
        this.failed.set(candidate.version, candidate);
      }
    }
    // Versions the policy no longer wants retire once something wanted serves (never leave the model empty on a failed swap).
    const anyWantedServing = this.wanted.some((n) => this.serving.has(n));
    if (anyWantedServing) {
      for (const [number, v] of this.serving) {
        if (!this.wanted.includes(number)) {
          this.serving.delete(number);
          replaced.push(v);
        }
      }
      for (const number of [...this.failed.keys()]) if (!this.wanted.includes(number)) this.failed.delete(number);
    }
    for (const old of replaced) this.retire(old);
  }

  private retire(v: ModelVersion): void {
    this.retiring.add(v);
    void v.retire(this.drainMs).finally(() => this.retiring.delete(v));
  }

  /** Stops serving every version (explicit unload, model removed, shutdown). Resolves once freed. */
  unloadAll(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const all = [...this.serving.values()];
      this.serving.clear();
      this.failed.clear();
      this.wanted = [];
      for (const v of all) this.retire(v);
      await Promise.all(all.map((v) => v.retire(this.drainMs)));
    });
    return this.chain;
  }

  /** Resolves when every retiring version has been freed. */
  async settled(): Promise<void> {
    await this.chain;
    await Promise.all([...this.retiring].map((v) => v.retire(this.drainMs)));
  }

  /**
   * The version that serves a request: the named one, or the highest ready version.
   * NOT_FOUND for a version the model does not have; UNAVAILABLE (503) when it exists but
   * does not serve now.
   */
  resolve(version: string | undefined): ModelVersion {
    if (version === undefined || version === '') {
      let best: ModelVersion | undefined;
      for (const v of this.serving.values()) if (!best || v.version > best.version) best = v;
      if (best) return best;
      throw new TensorwireError('UNAVAILABLE', `model "${this.name}" is not ready: ${this.notReadyReason()}`, { retryAfterSeconds: 1 });
    }
    const number = Number(version);
    const v = Number.isInteger(number) ? this.serving.get(number) : undefined;
    if (v) return v;
    const known = Number.isInteger(number) && (this.pending.has(number) || this.failed.has(number) || [...this.retiring].some((r) => r.version === number));
    if (!known) throw new TensorwireError('NOT_FOUND', `model "${this.name}" has no version "${version}"; serving: ${this.servingVersions().join(', ') || 'none'}`);
    throw new TensorwireError('UNAVAILABLE', `model "${this.name}" version ${version} is not ready: ${this.versionReason(number)}`, { retryAfterSeconds: 1 });
  }

  /** Version numbers taking traffic, ascending. */
  servingVersions(): number[] {
    return [...this.serving.keys()].sort((a, b) => a - b);
  }

  /** Every version this model serves or tried to: for metrics, stats and the index. */
  versions(): ModelVersion[] {
    return [...this.serving.values(), ...this.pending.values(), ...this.failed.values(), ...this.retiring];
  }

  /** True when at least one wanted version serves. */
  isReady(): boolean {
    return this.serving.size > 0;
  }

  readiness(version: string | undefined): Readiness {
    if (version === undefined || version === '') return this.isReady() ? { ready: true } : { ready: false, reason: this.notReadyReason() };
    const number = Number(version);
    if (Number.isInteger(number) && this.serving.has(number)) return { ready: true };
    const known = Number.isInteger(number) && (this.pending.has(number) || this.failed.has(number) || [...this.retiring].some((r) => r.version === number));
    if (!known) throw new TensorwireError('NOT_FOUND', `model "${this.name}" has no version "${version}"`);
    return { ready: false, reason: this.versionReason(number) };
  }

  private versionReason(number: number): string {
    const v = this.pending.get(number) ?? this.failed.get(number) ?? [...this.retiring].find((r) => r.version === number);
    if (!v) return 'not loaded';
    return v.state === 'failed' ? `failed: ${v.reason}` : v.reason;
  }

  private notReadyReason(): string {
    if (this.modelError) return this.modelError;
    const pending = [...this.pending.values()];
    if (pending.length > 0) return pending.map((v) => `version ${v.version} ${v.reason}`).join('; ');
    const failed = [...this.failed.values()];
    if (failed.length > 0) return failed.map((v) => `version ${v.version} failed: ${v.reason}`).join('; ');
    return 'not loaded';
  }

  /** Rows of the repository index: one per version known, plus the model-level error. */
  index(): RepositoryIndexEntry[] {
    const rows: RepositoryIndexEntry[] = [];
    const seen = new Set<ModelVersion>();
    for (const v of this.versions()) {
      if (seen.has(v)) continue;
      seen.add(v);
      rows.push({ name: this.name, version: String(v.version), state: v.state, reason: v.state === 'failed' ? v.reason : v.state === 'ready' ? '' : v.reason });
    }
    if (this.modelError && rows.every((r) => r.state !== 'ready')) rows.push({ name: this.name, version: '', state: 'failed', reason: this.modelError });
    return rows.sort((a, b) => Number(a.version) - Number(b.version));
  }
}
