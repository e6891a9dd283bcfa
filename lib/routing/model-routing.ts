/**
 * The live traffic state of one model under one policy: the weights in force (the policy's,
 * until the guard rolls a version back), the split they make (or the bandit that chooses
 * instead), the guard's windows, the shadow lane, and the metric cells. A new policy (config change or POST) makes a new ModelRouting; events
 * outlive it (they belong to the model, see RoutingTable).
 */
import type { RoutingPolicy } from '../repository/config-routing';
import type { CounterCell } from '../metrics/families';
import { judge, VersionWindow, type WindowSummary } from './guard-window';
import type { RoutingMetrics } from './routing-metrics';
import { ShadowLane, type ShadowLaneOptions } from './shadow-lane';
import { EpsilonGreedy, type BanditView } from './bandit';
import { WeightedSplit } from './split';

/** Something that happened to a model's routing (GET .../routing lists the last ones). */
export interface RoutingEvent {
  /** ISO 8601 time. */
  time: string;
  kind: 'policy' | 'rolled_back';
  version?: string;
  reason: string;
}

/** Longest event list kept per model. */
export const MAX_ROUTING_EVENTS = 32;


/** What GET /v2/models/{m}/routing answers. */
export interface RoutingView {
  /** null: the model has no traffic policy. */
  policy: RoutingPolicy | null;
  live: {
    /** Weights in force (after a rollback, the guarded version's is 0). */
    split: Record<string, number>;
    state: 'active' | 'rolled_back';
    events: RoutingEvent[];
    /** The guard's window per watched version, when there is a guard. */
    window?: Record<string, { requests: number; errors: number; p99_ms: number }>;
    /** The bandit's counts and mean rewards, when the policy has one. */
    bandit?: BanditView;
  };
}

/** How a request's version was chosen (the `via` label). */
export type RouteVia = 'split' | 'explicit' | 'fallback';

export class ModelRouting {
  private weights: Record<string, number>;
  private split: WeightedSplit | undefined;
  state: 'active' | 'rolled_back' = 'active';
  private readonly windows = new Map<string, VersionWindow>();
  /** Split counter cells by version, then by `via` (no key strings built per request). */
  private readonly routedCells = new Map<string, Partial<Record<RouteVia, CounterCell>>>();
  /** The shadow's lane, when the policy has a shadow. */
  readonly shadow: ShadowLane | undefined;
  /** The epsilon-greedy bandit, when the policy has one (it then chooses instead of a split). */
  readonly bandit: EpsilonGreedy | undefined;

  constructor(
    readonly model: string,
    readonly policy: RoutingPolicy,
    private readonly events: RoutingEvent[],
    readonly metrics: RoutingMetrics | undefined,
    private readonly log: (line: string) => void,
    private readonly now: () => number,
    shadowOptions: ShadowLaneOptions,
  ) {
    this.bandit = policy.bandit === undefined ? undefined : new EpsilonGreedy(policy.bandit.versions, policy.bandit.epsilon, now);
    this.shadow = policy.shadow === undefined ? undefined : new ShadowLane(model, policy.shadow.version, policy.shadow.percent, metrics, shadowOptions);
    this.weights = { ...(policy.weights ?? {}) };
    this.split = policy.weights === undefined ? undefined : new WeightedSplit(this.weights);
    const guard = policy.guard;
    if (guard !== undefined) for (const v of Object.keys(this.weights)) this.windows.set(v, new VersionWindow(guard.window_s));
  }

  /** The version for an unversioned request (by `key` when given), or undefined: no split, the core's default. */
  choose(key: string | undefined): string | undefined {
    return this.bandit?.choose() ?? this.split?.pick(key);
  }

  /** Counts an answer in the split metric. */
  count(version: string, via: RouteVia): void {
    const metrics = this.metrics;
    if (metrics === undefined) return;
    let byVia = this.routedCells.get(version);
    if (byVia === undefined) this.routedCells.set(version, (byVia = {}));
    (byVia[via] ??= metrics.routed.child(this.model, version, via)).inc();
  }

  /** Records one answer of `version` for the guard (a no-op without a guard), and judges. */
  record(version: string, ok: boolean, latencyMs: number): void {
    const window = this.windows.get(version);
    if (window === undefined) return;
    const now = this.now();
    window.record(now, ok, latencyMs);
    const guard = this.policy.guard!;
    // Judging merges ten sub-windows' histograms (about a thousand additions): cheap enough per canary answer.
    if (version !== guard.version || this.state === 'rolled_back') return;
    const stable = this.stableVersion();
    if (stable === undefined) return;
    const why = judge(window.summary(now), this.windows.get(stable)!.summary(now), guard);
    if (why !== undefined) this.rollback(guard.version, `version ${guard.version} rolled back against version ${stable}: ${why}`);
  }

  /** The other version of the split with the largest weight in force (ties: the lower number). */
  private stableVersion(): string | undefined {
    let best: string | undefined;
    for (const [v, w] of Object.entries(this.weights)) {
      if (v === this.policy.guard?.version || w <= 0) continue;
      if (best === undefined || w > this.weights[best]!) best = v;
    }
    return best;
  }

  private rollback(version: string, reason: string): void {
    this.weights = { ...this.weights, [version]: 0 };
    this.split = new WeightedSplit(this.weights);
    this.state = 'rolled_back';
    this.addEvent({ time: new Date().toISOString(), kind: 'rolled_back', version, reason });
    this.metrics?.rollbacks.child(this.model, version).inc();
    this.log(`model ${this.model}: ${reason}`);
  }

  /** Appends to the model's events, keeping the last MAX_ROUTING_EVENTS. */
  addEvent(e: RoutingEvent): void {
    this.events.push(e);
    if (this.events.length > MAX_ROUTING_EVENTS) this.events.splice(0, this.events.length - MAX_ROUTING_EVENTS);
  }

  view(): RoutingView {
    const live: RoutingView['live'] = { split: { ...this.weights }, state: this.state, events: [...this.events] };
    if (this.windows.size > 0) {
      const now = this.now();
      live.window = {};
      for (const [v, w] of this.windows) {
        const s: WindowSummary = w.summary(now);
        live.window[v] = { requests: s.requests, errors: s.errors, p99_ms: Number(s.p99Ms.toFixed(3)) };
      }
    }
    if (this.bandit !== undefined) live.bandit = this.bandit.view();
    return { policy: this.policy, live };
  }
}
