/**
 * Continuous load for the hot-swap integration tests: several clients (HTTP binary, HTTP
 * JSON, WebSocket binary and text frames), each sending its next request as soon as the
 * previous one is answered, and checking every answer of a versioned model (y = x + version):
 *
 * - the values are right for the version the response names (no wrong answers);
 * - no client gets an answer from an older version after it has seen a newer one (each
 *   request must come from a version >= the newest the client had seen when it sent it);
 * - nothing fails (any error is recorded with its message).
 */
import { HttpClient } from '../../lib/client/http-client';
import { StreamClient } from '../../lib/client/stream-client';
import type { InferResult } from '../../lib/client/http-client';

/** How a client talks to the server. */
export type ClientKind = 'http-binary' | 'http-json' | 'ws-binary' | 'ws-text';

/** What one client saw. */
export interface ClientRecord {
  kind: ClientKind;
  requests: number;
  /** Every distinct version it was answered by, in the order first seen. */
  versions: number[];
  /** Newest version seen so far. */
  newest: number;
  failures: string[];
  wrong: string[];
  /** Answers from a version older than one the client had already seen. */
  regressions: string[];
  /** When (performance.now()) the last answer of each version arrived. */
  lastAnswerAt: Map<number, number>;
}

/** A running load. */
export interface Load {
  clients: ClientRecord[];
  /** True once every client has been answered by `version` (or a newer one). */
  allSeen(version: number): boolean;
  /** Stops sending, waits for the requests in flight, closes the connections. */
  stop(): Promise<void>;
}

/** Starts one client of each kind in `kinds` against model `model` (input x FP32 [-1, width]). */
export async function startLoad(base: string, model: string, kinds: ClientKind[], width = 4): Promise<Load> {
  let stopped = false;
  const clients: ClientRecord[] = kinds.map((kind) => ({ kind, requests: 0, versions: [], newest: 0, failures: [], wrong: [], regressions: [], lastAnswerAt: new Map() }));
  const loops = await Promise.all(
    clients.map(async (record, index) => {
      const binary = record.kind.endsWith('binary');
      let send: (x: Float32Array, rows: number) => Promise<InferResult>;
      let close: () => Promise<void> | void;
      if (record.kind.startsWith('http')) {
        const c = new HttpClient({ url: base, maxSockets: 1 });
        send = (x, rows) => c.infer(model, { x: { shape: [rows, width], data: x } }, { binary });
        close = () => c.close();
      } else {
        const c = await StreamClient.connect({ url: base, binary });
        send = (x, rows) => c.infer(model, { x: { shape: [rows, width], data: x } }, { binary });
        close = () => c.close();
      }
      return { record, index, send, close };
    }),
  );
  const running = loops.map(async ({ record, index, send, close }) => {
    let i = 0;
    while (!stopped) {
      i++;
      const rows = 1 + ((i + index) % 3);
      const x = new Float32Array(rows * width);
      // Exact in FP32 after adding a small version number: halves between -1000 and 1000.
      for (let k = 0; k < x.length; k++) x[k] = (((i * 31 + k * 7 + index * 101) % 4000) - 2000) / 2;
      const newestBefore = record.newest;
      try {
        const r = await send(x, rows);
        record.requests++;
        const version = Number(r.modelVersion);
        const y = r.outputs.y?.data as Float32Array | undefined;
        if (!y || y.length !== x.length || x.some((v, k) => y[k] !== v + version)) {
          record.wrong.push(`request ${i}: version ${r.modelVersion}, x[0] ${x[0]}, y[0] ${y?.[0]} (${y?.length} values for ${x.length})`);
        }
        if (version < newestBefore) record.regressions.push(`request ${i}: answered by version ${version} after version ${newestBefore}`);
        if (!record.versions.includes(version)) record.versions.push(version);
        record.lastAnswerAt.set(version, performance.now());
        record.newest = Math.max(record.newest, version);
      } catch (e) {
        record.failures.push(`request ${i}: ${(e as Error).message}`);
        if (record.failures.length > 50) break;
      }
    }
    await close();
  });
  return {
    clients,
    allSeen: (version) => clients.every((c) => c.newest >= version),
    async stop() {
      stopped = true;
      await Promise.all(running);
    },
  };
}

/**
 * The versions v whose predecessor still answered some client after v had started serving
 * (`readyAt(v)`): requests queued or running on the old version at the switch that finished
 * there, rather than failing.
 */
export function drainedAcrossSwitch(load: Load, readyAt: (version: number) => number | undefined): number[] {
  const out: number[] = [];
  const versions = new Set(load.clients.flatMap((c) => c.versions));
  for (const v of [...versions].sort((a, b) => a - b)) {
    const at = readyAt(v);
    if (at === undefined) continue;
    if (load.clients.some((c) => (c.lastAnswerAt.get(v - 1) ?? 0) > at)) out.push(v);
  }
  return out;
}

/** One line per client, for assertion messages. */
export function describeLoad(load: Load): string {
  return load.clients
    .map((c) => `${c.kind}: ${c.requests} ok, versions ${c.versions.join(',')}, failures ${c.failures.length} ${c.failures.slice(0, 3).join(' | ')}, wrong ${c.wrong.length} ${c.wrong.slice(0, 2).join(' | ')}, regressions ${c.regressions.length}`)
    .join('\n');
}
