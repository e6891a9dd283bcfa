/**
 * Every model's traffic policy in force: the config's (config.json `routing`, config.pbtxt
 * `parameters.routing`), or a live one from POST /v2/models/{m}/routing, which stays in force
 * until the model's configured policy changes (like live batching changes). The request-time
 * stage asks `lookup` on every call; a model without a policy costs two Map lookups.
 *
 * A live policy is accepted only once every version it names serves: the core is asked to
 * keep them loaded (whatever the version policy says) and the answer waits for that load.
 */
import type { Registry } from 'prom-client';
import { TensorwireError, toTensorwireError } from '../errors';
import { routingVersions, validateRoutingPolicy, type RoutingPolicy } from '../repository/config-routing';
import type { Readiness } from '../core/types';
import { truncateForMessage } from '../util/message-text';
import { ModelRouting, type RoutingEvent, type RoutingView } from './model-routing';
import { routingMetrics, type RoutingMetrics } from './routing-metrics';
import { MAX_FEEDBACK_ID_CHARS, MAX_REMEMBERED, REMEMBER_MS } from './bandit';
import { MAX_SHADOWS_IN_FLIGHT, SHADOW_MAX_LOOP_UTILIZATION, type ShadowLaneOptions } from './shadow-lane';

/** What the table needs of the server core (TensorwireService has it). */
export interface RoutingCore {
  /** The policy of the model's config in force; the same object while the config is unchanged. */
  configuredRouting(name: string): RoutingPolicy | undefined;
  /** Keeps `versions` loaded; resolves once each serves or failed. */
  keepVersions(name: string, versions: number[]): Promise<void>;
  /** NOT_FOUND for an unknown model or version. */
  modelReadiness(name: string, version?: string): Readiness;
  /** The version that would serve a request (throws when none): the shadow lane reads its queue depth. */
  admit?(name: string, version?: string): { queueDepth(): number };
  readonly registry?: Registry;
}

/** True when `service` can back a routing table. */
export function isRoutingCore(service: object): service is RoutingCore {
  const s = service as Partial<RoutingCore>;
  return typeof s.configuredRouting === 'function' && typeof s.keepVersions === 'function' && typeof s.modelReadiness === 'function';
}

interface Entry {
  configRef: RoutingPolicy | undefined;
  configJson: string;
  live: RoutingPolicy | undefined;
  current: ModelRouting | undefined;
  events: RoutingEvent[];
}

/** Options of a routing table. */
export interface RoutingTableOptions {
  log?: (line: string) => void;
  /** Clock of the guard's windows, ms (default performance.now). */
  now?: () => number;
  /** Event-loop utilization (0..1) above which shadow copies are shed; default SHADOW_MAX_LOOP_UTILIZATION (0.8); 1: never. */
  shadowMaxLoopUtilization?: number;
  /** Shadow copies one model may have in flight; default MAX_SHADOWS_IN_FLIGHT (4). */
  shadowMaxInFlight?: number;
}

export class RoutingTable {
  private readonly entries = new Map<string, Entry>();
  /** POSTs of one model run one after the other (each pins its versions, then checks them). */
  private readonly updating = new Map<string, Promise<unknown>>();
  private families: RoutingMetrics | undefined;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private readonly shadowMaxLoopUtilization: number;
  private readonly shadowMaxInFlight: number;

  constructor(
    private readonly core: RoutingCore,
    options: RoutingTableOptions = {},
  ) {
    this.log = options.log ?? ((line) => console.log(line));
    this.now = options.now ?? (() => performance.now());
    this.shadowMaxLoopUtilization = options.shadowMaxLoopUtilization ?? SHADOW_MAX_LOOP_UTILIZATION;
    this.shadowMaxInFlight = options.shadowMaxInFlight ?? MAX_SHADOWS_IN_FLIGHT;
  }

  /** The routing families, registered when the first policy is built (a server without policies exposes none). */
  get metrics(): RoutingMetrics | undefined {
    if (this.families === undefined && this.core.registry !== undefined) this.families = routingMetrics(this.core.registry);
    return this.families;
  }

  /** The routing state of `model` now, or undefined when it has no policy (the hot path). */
  lookup(model: string): ModelRouting | undefined {
    const config = this.core.configuredRouting(model);
    let e = this.entries.get(model);
    if (e === undefined) {
      if (config === undefined) return undefined;
      e = { configRef: undefined, configJson: 'null', live: undefined, current: undefined, events: [] };
      this.entries.set(model, e);
    }
    if (e.configRef !== config) this.configChanged(model, e, config);
    return e.current;
  }

  /** The configured policy object changed: a new policy (when its content differs) drops the live one. */
  private configChanged(model: string, e: Entry, config: RoutingPolicy | undefined): void {
    e.configRef = config;
    const json = JSON.stringify(config ?? null);
    if (json === e.configJson && e.current !== undefined) return; // same policy, new scan (a version joined)
    e.configJson = json;
    if (e.live !== undefined) {
      e.live = undefined;
      this.log(`model ${model}: its configured traffic policy changed; the live policy is dropped in favour of it`);
      void this.core.keepVersions(model, []).catch(() => undefined);
    }
    e.current = config === undefined ? undefined : this.build(model, e, config, 'configured policy in force');
  }

  private build(model: string, e: Entry, policy: RoutingPolicy, why: string): ModelRouting {
    const core = this.core;
    const shadow: ShadowLaneOptions = {
      maxInFlight: this.shadowMaxInFlight,
      maxLoopUtilization: this.shadowMaxLoopUtilization,
      queueDepth: (version) => {
        try {
          return core.admit?.(model, version).queueDepth() ?? 0;
        } catch {
          return 0; // the version stopped serving: nothing of it waits
        }
      },
    };
    const routing = new ModelRouting(model, policy, e.events, this.metrics, this.log, this.now, shadow);
    routing.addEvent({ time: new Date().toISOString(), kind: 'policy', reason: why });
    return routing;
  }

  /** GET /v2/models/{m}/routing. NOT_FOUND for an unknown model. */
  read(model: string): RoutingView {
    this.core.modelReadiness(model);
    const routing = this.lookup(model);
    if (routing !== undefined) return routing.view();
    return { policy: null, live: { split: {}, state: 'active', events: [...(this.entries.get(model)?.events ?? [])] } };
  }

  /**
   * POST /v2/models/{m}/routing: validates `body`, keeps the versions it names loaded, and
   * puts it in force once each of them serves (INVALID_INPUT naming a version that does not
   * exist or failed; the policy in force then stays).
   */
  update(model: string, body: unknown): Promise<RoutingView> {
    const run = (this.updating.get(model) ?? Promise.resolve()).then(() => this.replace(model, body));
    const settled = run.catch(() => undefined);
    this.updating.set(model, settled);
    void settled.then(() => {
      if (this.updating.get(model) === settled) this.updating.delete(model);
    });
    return run;
  }

  private async replace(model: string, body: unknown): Promise<RoutingView> {
    const policy = validateRoutingPolicy(body, `routing policy of model '${truncateForMessage(model)}'`);
    this.core.modelReadiness(model); // NOT_FOUND for an unknown model, before anything loads
    this.lookup(model);
    const e = this.entries.get(model) ?? { configRef: this.core.configuredRouting(model), configJson: JSON.stringify(this.core.configuredRouting(model) ?? null), live: undefined, current: undefined, events: [] };
    this.entries.set(model, e);
    const versions = routingVersions(policy);
    await this.core.keepVersions(model, versions);
    for (const v of versions) {
      let readiness: Readiness;
      try {
        readiness = this.core.modelReadiness(model, String(v));
      } catch (err) {
        this.restorePins(model, e);
        const te = toTensorwireError(err);
        if (te.code === 'NOT_FOUND') throw new TensorwireError('INVALID_INPUT', `routing policy of model '${truncateForMessage(model)}': version ${v} does not exist`);
        throw te;
      }
      if (!readiness.ready) {
        this.restorePins(model, e);
        throw new TensorwireError('INVALID_INPUT', `routing policy of model '${truncateForMessage(model)}': version ${v} does not serve (${readiness.reason ?? 'not ready'})`);
      }
    }
    e.live = policy;
    e.current = this.build(model, e, policy, 'live policy posted');
    this.log(`model ${model}: live traffic policy in force: ${JSON.stringify(policy)}`);
    return e.current.view();
  }

  /** A refused POST: the versions pinned are those of the live policy still in force (if any). */
  private restorePins(model: string, e: Entry): void {
    void this.core.keepVersions(model, routingVersions(e.live)).catch(() => undefined);
  }

  /**
   * POST /v2/models/{m}/feedback: `{"id": "<request id>", "reward": 0..1}` credits the reward to
   * the version the bandit sent that request to. NOT_FOUND for an unknown model or an id not
   * remembered (unknown, already rewarded, or expired); INVALID_INPUT for a bad body or a
   * model whose policy has no bandit.
   */
  feedback(model: string, body: unknown): { id: string; version: string; reward: number } {
    this.core.modelReadiness(model);
    const where = `feedback for model '${truncateForMessage(model)}'`;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TensorwireError('INVALID_INPUT', `${where}: expected a JSON object {"id": "<request id>", "reward": <0..1>}`);
    const fields = body as Record<string, unknown>;
    for (const k of Object.keys(fields)) if (k !== 'id' && k !== 'reward') throw new TensorwireError('INVALID_INPUT', `${where}: unknown field "${truncateForMessage(k)}" (expected id and reward)`);
    const { id, reward } = fields;
    if (typeof id !== 'string' || id === '' || id.length > MAX_FEEDBACK_ID_CHARS) throw new TensorwireError('INVALID_INPUT', `${where}: id must be the request's id, a string of 1 to ${MAX_FEEDBACK_ID_CHARS} characters`);
    if (typeof reward !== 'number' || !Number.isFinite(reward) || reward < 0 || reward > 1) throw new TensorwireError('INVALID_INPUT', `${where}: reward must be a number from 0 to 1, got ${truncateForMessage(JSON.stringify(reward) ?? String(reward))}`);
    const bandit = this.lookup(model)?.bandit;
    if (bandit === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: the model's traffic policy has no bandit`);
    const version = bandit.reward(id, reward);
    if (version === undefined) throw new TensorwireError('NOT_FOUND', `${where}: no recent request with id "${truncateForMessage(id)}" (the last ${MAX_REMEMBERED} ids are remembered for ${REMEMBER_MS / 60_000} minutes, and each takes one reward)`);
    return { id, version, reward };
  }

  /**
   * The version a label names under the policy in force (for `/v2/models/{m}/labels/{label}/infer`):
   * NOT_FOUND when the model has no such label.
   */
  resolveLabel(model: string, label: string): string {
    const version = this.lookup(model)?.policy.labels?.[label];
    if (version === undefined) throw new TensorwireError('NOT_FOUND', `model "${truncateForMessage(model)}" has no version label "${truncateForMessage(label)}"`);
    return version;
  }
}
