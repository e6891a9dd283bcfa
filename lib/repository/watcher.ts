/**
 * Watches a model repository by polling (no fs.watch: it misses events on network and overlay
 * file systems and differs across platforms) and reports settled changes.
 *
 * Debouncing: a model's change is reported only once two consecutive scans agree on it and it
 * has not changed for `settleMs`, so a version that is still being copied (its files growing),
 * or a config being rewritten, is not reported half-written. A writer that stalls for longer
 * than the settle time can still be caught mid-copy; copying into a temporary directory and
 * renaming it into place avoids that (and the loader's failure on a truncated file keeps such
 * a version from taking traffic anyway).
 *
 * Settling is per model: a change to one model never waits for another; the versions and
 * config of one model are reported together once the whole model directory is stable.
 */
import { type TensorwireError, toTensorwireError } from '../errors';
import { type RepositoryScan, type ScannedModel, scanRepository } from './scanner';

/** What happened to one model between two settled states. */
export interface ModelChange {
  name: string;
  kind: 'added' | 'removed' | 'changed';
  /** The settled state now (undefined when removed). */
  model?: ScannedModel;
  /** The settled state before (undefined when added). */
  previous?: ScannedModel;
  /** The config file appeared, disappeared, changed, or became valid/invalid. False for added/removed models. */
  configChanged: boolean;
  addedVersions: number[];
  /** Versions whose directory's files changed (new contents under the same version number). */
  changedVersions: number[];
  removedVersions: number[];
}

/** One report: the settled changes and the settled repository state after them. */
export interface RepositoryDiff {
  changes: ModelChange[];
  scan: RepositoryScan;
}

/** Options of RepositoryWatcher. */
export interface WatcherOptions {
  /** Called with each non-empty diff; the next poll waits for a returned promise (so swaps never overlap). */
  onChange: (diff: RepositoryDiff) => void | Promise<void>;
  /** Scan failures (repository gone) and errors thrown by onChange. Default: console.warn. */
  onError?: (error: TensorwireError) => void;
  /** Poll interval in ms. Default 2000. */
  intervalMs?: number;
  /** How long a change must stay unchanged before it is reported. Default: intervalMs. */
  settleMs?: number;
  /** How to scan; default scanRepository(root). singleFileRepository works too. */
  scan?: () => Promise<RepositoryScan>;
  /** Clock in ms (tests). Default Date.now. */
  now?: () => number;
}

const ABSENT = '(absent)';

interface Pending {
  fingerprint: string;
  since: number;
  scans: number;
}

/** Compares two states of one model. */
export function diffModel(name: string, before: ScannedModel | undefined, after: ScannedModel | undefined): ModelChange {
  const v = (m: ScannedModel | undefined) => new Map((m?.versions ?? []).map((x) => [x.version, x.fingerprint]));
  const a = v(before);
  const b = v(after);
  const change: ModelChange = {
    name,
    kind: !before ? 'added' : !after ? 'removed' : 'changed',
    configChanged: !!before && !!after && (before.configFingerprint !== after.configFingerprint || before.error?.message !== after.error?.message),
    addedVersions: [...b.keys()].filter((k) => !a.has(k)),
    changedVersions: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)),
    removedVersions: [...a.keys()].filter((k) => !b.has(k)),
  };
  if (after) change.model = after;
  if (before) change.previous = before;
  return change;
}

/** Polls a repository and reports settled changes through `onChange`. */
export class RepositoryWatcher {
  private readonly scan: () => Promise<RepositoryScan>;
  private readonly intervalMs: number;
  private readonly settleMs: number;
  private readonly now: () => number;
  private current: RepositoryScan | undefined;
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Serialises polls (timer and manual) so two never overlap. */
  private chain: Promise<unknown> = Promise.resolve();

  /** @param root the repository directory (ignored when options.scan is given). */
  constructor(root: string, private readonly options: WatcherOptions) {
    this.scan = options.scan ?? (() => scanRepository(root));
    this.intervalMs = options.intervalMs ?? 2000;
    this.settleMs = options.settleMs ?? this.intervalMs;
    this.now = options.now ?? Date.now;
  }

  /** The last settled state (what has been reported), or undefined before start. */
  get settled(): RepositoryScan | undefined {
    return this.current;
  }

  /**
   * Starts polling. `baseline` is the state the caller has acted on (typically the scan it
   * loaded models from at startup); without one, a scan is taken now. Changes are reported
   * relative to it. Returns the baseline.
   */
  async start(baseline?: RepositoryScan): Promise<RepositoryScan> {
    this.current = baseline ?? (await this.scan());
    this.running = true;
    this.schedule();
    return this.current;
  }

  /** Stops polling; resolves once a poll in progress (and its onChange) has finished. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain.catch(() => undefined);
  }

  /**
   * Scans once now and reports what has settled (also through onChange). Useful in tests and
   * for an explicit "look now" request. Resolves to the diff, or undefined when nothing settled.
   */
  poll(): Promise<RepositoryDiff | undefined> {
    const run = this.chain.then(() => this.pollOnce());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll()
        .catch(() => undefined)
        .finally(() => this.schedule());
    }, this.intervalMs);
    // Polling must never keep the process alive on its own.
    this.timer.unref();
  }

  private report(e: unknown): void {
    const err = toTensorwireError(e);
    if (this.options.onError) this.options.onError(err);
    else console.warn(`tensorwire: repository watcher: ${err.message}`);
  }

  private async pollOnce(): Promise<RepositoryDiff | undefined> {
    if (!this.current) this.current = await this.scan();
    let raw: RepositoryScan;
    try {
      raw = await this.scan();
    } catch (e) {
      this.report(e);
      return undefined;
    }
    const now = this.now();
    const settled = this.current;
    const names = new Set([...settled.models.keys(), ...raw.models.keys(), ...this.pending.keys()]);
    const accepted = new Map<string, ScannedModel | undefined>();
    for (const name of names) {
      const fp = raw.models.get(name)?.fingerprint ?? ABSENT;
      if (fp === (settled.models.get(name)?.fingerprint ?? ABSENT)) {
        this.pending.delete(name);
        continue;
      }
      const p = this.pending.get(name);
      if (!p || p.fingerprint !== fp) {
        this.pending.set(name, { fingerprint: fp, since: now, scans: 1 });
        continue;
      }
      p.scans++;
      if (p.scans >= 2 && now - p.since >= this.settleMs) {
        accepted.set(name, raw.models.get(name));
        this.pending.delete(name);
      }
    }
    if (accepted.size === 0) return undefined;

    const changes = [...accepted].map(([name, model]) => diffModel(name, settled.models.get(name), model));
    const models = new Map(settled.models);
    for (const [name, model] of accepted) {
      if (model) models.set(name, model);
      else models.delete(name);
    }
    const next: RepositoryScan = { root: raw.root, models: new Map([...models].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), ignored: raw.ignored };
    this.current = next;
    const diff: RepositoryDiff = { changes: changes.sort((a, b) => (a.name < b.name ? -1 : 1)), scan: next };
    try {
      await this.options.onChange(diff);
    } catch (e) {
      this.report(e);
    }
    return diff;
  }
}
