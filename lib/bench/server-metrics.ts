/**
 * Server-side breakdown of a measurement window from tensorwire's /metrics: the mean time
 * per stage is the delta of `tensorwire_request_duration_seconds_sum` over the delta of its
 * `_count` between a scrape before and after the window; the mean batch size is the delta
 * of inferences over the delta of executions. Servers without these metrics are skipped.
 */

/** Stages tensorwire reports. */
export const SERVER_STAGES = ['queue', 'compute_input', 'compute_infer', 'compute_output', 'total'] as const;
export type ServerStage = (typeof SERVER_STAGES)[number];

/** Cumulative values of one scrape (summed over the matching model versions). */
export interface ServerSnapshot {
  sum: Record<ServerStage, number>;
  count: Record<ServerStage, number>;
  inferences: number;
  executions: number;
}

/** What the server says about a window. */
export interface ServerBreakdown {
  /** Successful requests the server finished in the window. */
  requests: number;
  /** Mean milliseconds per request and stage. */
  stagesMs: Record<ServerStage, number>;
  /** Mean samples per executed batch, when the server counted executions. */
  avgBatch?: number;
}

const LINE = /^(tensorwire_request_duration_seconds_sum|tensorwire_request_duration_seconds_count|tensorwire_inference_count_total|tensorwire_inference_exec_count_total)\{([^}]*)\}\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** Reads the figures of `model` (and `version`, when given) from Prometheus text; undefined when none are there. */
export function parseServerMetrics(text: string, model: string, version?: string): ServerSnapshot | undefined {
  const zero = () => ({ queue: 0, compute_input: 0, compute_infer: 0, compute_output: 0, total: 0 });
  const snap: ServerSnapshot = { sum: zero(), count: zero(), inferences: 0, executions: 0 };
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith('tensorwire_')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of m[2]!.matchAll(LABEL)) labels[l[1]!] = l[2]!;
    if (labels.model !== model || (version !== undefined && labels.version !== version)) continue;
    const value = Number(m[3]);
    found = true;
    switch (m[1]) {
      case 'tensorwire_inference_count_total':
        snap.inferences += value;
        break;
      case 'tensorwire_inference_exec_count_total':
        snap.executions += value;
        break;
      default: {
        const stage = labels.stage as ServerStage;
        if (!(SERVER_STAGES as readonly string[]).includes(stage)) break;
        if (m[1]!.endsWith('_sum')) snap.sum[stage] += value;
        else snap.count[stage] += value;
      }
    }
  }
  return found ? snap : undefined;
}

/** Scrapes `metricsUrl`; undefined when it is unreachable, not Prometheus text, or has no tensorwire figures for the model. */
export async function scrapeServer(metricsUrl: string, model: string, version?: string): Promise<ServerSnapshot | undefined> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    if (res.status !== 200) return undefined;
    return parseServerMetrics(await res.text(), model, version);
  } catch {
    return undefined;
  }
}

/** The breakdown of the window between two scrapes; undefined when the server finished no request in it. */
export function breakdown(before: ServerSnapshot | undefined, after: ServerSnapshot | undefined): ServerBreakdown | undefined {
  if (!before || !after) return undefined;
  const requests = after.count.total - before.count.total;
  if (!(requests > 0)) return undefined;
  const stagesMs = {} as Record<ServerStage, number>;
  for (const s of SERVER_STAGES) {
    const n = after.count[s] - before.count[s];
    stagesMs[s] = n > 0 ? ((after.sum[s] - before.sum[s]) / n) * 1000 : 0;
  }
  const result: ServerBreakdown = { requests, stagesMs };
  const execs = after.executions - before.executions;
  if (execs > 0) result.avgBatch = (after.inferences - before.inferences) / execs;
  return result;
}
