/**
 * Drives one share of the load (one worker thread's connections) and measures it.
 *
 * - Concurrency mode (closed loop): `connections` connections, each sends its next request
 *   as soon as the previous one is answered; latency counts from the send.
 * - Rate mode (open loop): requests are due at a constant or Poisson schedule; each goes out
 *   on an idle connection (opening more, up to `connections`), or waits in a backlog.
 *   Latency counts from when the request was *due*, so a server (or generator) that falls
 *   behind shows it in the latency rather than hiding it (no coordinated omission).
 *
 * Windows: `resetWindow()` starts a measurement window, `snapshot()` ends it and returns
 * its counts and latency histogram; totals since start() are kept separately so the caller
 * can reconcile with what the server saw.
 */
import { performance } from 'node:perf_hooks';
import { HttpConnection, type Completion, type Connection, type ConnectionEvents } from './connections';
import { WsMux } from './ws-connection';
import { GRPC_INFER_PATH, GRPC_STREAM_PATH, GrpcMux, grpcHost, grpcPort } from './grpc-connection';
import { RAW_MAX_MESSAGE, RawGrpcMux } from './grpc-raw';
import { LatencyHistogram, type HistogramData } from './histogram';

/** What one runner is asked to do. Plain data: it crosses to a worker thread. */
export interface LoadPlan {
  protocol: 'http' | 'ws' | 'grpc' | 'grpc-stream';
  /** grpc, grpc-stream: host:port of the gRPC server. */
  grpcAddress?: string;
  host: string;
  port: number;
  /** WebSocket URL (ws protocol). */
  wsUrl: string;
  /** ws protocol: requests in flight per WebSocket connection (the connections share sockets in groups of this many). Default 1. */
  pipeline?: number;
  /** HTTP: the whole request (head and body); ws: the binary frame payload; gRPC: the encoded ModelInferRequest. */
  request: Uint8Array;
  mode: 'concurrency' | 'rate';
  /** Concurrency mode: connections kept busy. Rate mode: the most connections opened. */
  connections: number;
  /** Rate mode: requests per second for this runner. */
  rate: number;
  distribution: 'constant' | 'poisson';
  /** A request not answered after this long is abandoned and counted as 'timeout'. */
  timeoutMs: number;
}

/** Counts of one measurement window. */
export interface WindowStats {
  /** Length of the window as this runner measured it. */
  elapsedMs: number;
  /** Requests sent in the window. */
  sent: number;
  /** Successful responses in the window (2xx / binary stream frame). */
  ok: number;
  /** Failed requests in the window, by kind ("HTTP 500", "timeout", "connection closed", ...). */
  errors: Record<string, number>;
  /** Latency of the successful requests, microseconds. */
  latency: HistogramData;
  /** Rate mode: most requests waiting for a free connection at once. */
  maxBacklog: number;
}

/** Counts since start(), warm-up and drain included. */
export interface RunTotals {
  sent: number;
  ok: number;
  failed: number;
  /** Requests still unanswered when the drain gave up. */
  abandoned: number;
  connectErrors: number;
  lastConnectError?: string;
}

/** Runs the load of one plan on the current thread. */
export class LoadRunner implements ConnectionEvents {
  private readonly conns: Connection[] = [];
  private readonly idle: Connection[] = [];
  private readonly latency = new LatencyHistogram();
  private windowStart = 0;
  private wSent = 0;
  private wOk = 0;
  private wErrors: Record<string, number> = {};
  private wMaxBacklog = 0;
  private readonly totals: RunTotals = { sent: 0, ok: 0, failed: 0, abandoned: 0, connectErrors: 0 };
  private running = false;
  private backlog: number[] = [];
  private backlogHead = 0;
  private nextDue = 0;
  private scheduleStarted = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private drained: (() => void) | undefined;
  private readonly readBuffer = Buffer.allocUnsafe(256 * 1024);
  /** The WebSocket that takes the next ws lane (a new one once it carries `plan.pipeline`). */
  private mux: WsMux | undefined;
  private grpcMux: GrpcMux | RawGrpcMux | undefined;

  constructor(private readonly plan: LoadPlan) {}

  /** Opens the connections and starts sending. */
  start(): void {
    const p = this.plan;
    this.running = true;
    this.windowStart = performance.now();
    const initial = p.mode === 'concurrency' ? p.connections : Math.min(p.connections, Math.max(1, Math.ceil(p.rate / 1000)));
    for (let i = 0; i < initial; i++) this.openConnection();
    // Rate mode: the schedule starts when the first connection is open (onReady), so the
    // connection handshake does not count as a backlog of late requests.
    this.watchdog = setInterval(() => this.checkTimeouts(), Math.min(100, Math.max(10, p.timeoutMs / 4)));
  }

  /** Starts a new measurement window. */
  resetWindow(): void {
    this.windowStart = performance.now();
    this.wSent = 0;
    this.wOk = 0;
    this.wErrors = {};
    this.wMaxBacklog = this.backlog.length - this.backlogHead;
    this.latency.clear();
  }

  /** Ends the current window, returns its stats, and starts the next one. */
  snapshot(): WindowStats {
    const stats: WindowStats = {
      elapsedMs: performance.now() - this.windowStart,
      sent: this.wSent,
      ok: this.wOk,
      errors: this.wErrors,
      latency: this.latency.toData(),
      maxBacklog: this.wMaxBacklog,
    };
    this.resetWindow();
    return stats;
  }

  /** Cheap progress figures of the current window. */
  progress(): { ok: number; errors: number; elapsedMs: number; p99Us: number } {
    let errors = 0;
    for (const k in this.wErrors) errors += this.wErrors[k]!;
    return { ok: this.wOk, errors, elapsedMs: performance.now() - this.windowStart, p99Us: this.latency.quantile(0.99) };
  }

  /** Stops sending, waits up to `drainMs` for the requests in flight, closes everything. */
  async stop(drainMs: number): Promise<RunTotals> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.backlog = [];
    this.backlogHead = 0;
    if (this.conns.some((c) => c.busy)) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, drainMs);
        this.drained = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.drained = undefined;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const c of this.conns) {
      if (c.busy) this.totals.abandoned++;
      c.close();
    }
    return { ...this.totals };
  }

  // --- ConnectionEvents -------------------------------------------------------------

  onReady(conn: Connection): void {
    if (this.plan.mode === 'rate' && !this.scheduleStarted && this.running) {
      this.scheduleStarted = true;
      this.nextDue = performance.now();
      this.tick();
    }
    this.dispatch(conn);
  }

  onComplete(conn: Connection, result: Completion, startedAt: number): void {
    if (result.ok) {
      this.latency.record((performance.now() - startedAt) * 1000);
      this.wOk++;
      this.totals.ok++;
    } else {
      this.wErrors[result.kind] = (this.wErrors[result.kind] ?? 0) + 1;
      this.totals.failed++;
    }
    if (!this.running) {
      if (this.drained && !this.conns.some((c) => c.busy)) this.drained();
      return;
    }
    if (conn.open) this.dispatch(conn);
  }

  onConnectError(conn: Connection, message: string): void {
    this.totals.connectErrors++;
    this.totals.lastConnectError = message;
    // Retry, but not in a tight loop against a server that is not there.
    if (this.running) setTimeout(() => this.running && conn.connect(), 100);
  }

  // --- internals --------------------------------------------------------------------

  private openConnection(): Connection {
    const p = this.plan;
    let conn: Connection;
    if (p.protocol === 'ws') {
      if (this.mux === undefined || this.mux.full) this.mux = new WsMux(p.wsUrl, p.request, Math.max(1, p.pipeline ?? 1), this, this.readBuffer);
      conn = this.mux.addLane();
    } else if (p.protocol === 'grpc' || p.protocol === 'grpc-stream') {
      if (this.grpcMux === undefined || this.grpcMux.full) {
        const request = Buffer.from(p.request.buffer, p.request.byteOffset, p.request.byteLength);
        const lanes = Math.max(1, p.pipeline ?? 1);
        const streaming = p.protocol === 'grpc-stream';
        // Raw HTTP/2 frames (grpc-raw.ts) when a request fits one frame; node:http2 otherwise.
        this.grpcMux = request.length <= RAW_MAX_MESSAGE - 16
          ? new RawGrpcMux(grpcHost(p.grpcAddress!), grpcPort(p.grpcAddress!), streaming ? GRPC_STREAM_PATH : GRPC_INFER_PATH, request, lanes, streaming, this)
          : new GrpcMux(p.grpcAddress!, request, lanes, streaming, this);
      }
      conn = this.grpcMux.addLane();
    } else {
      conn = new HttpConnection(p.host, p.port, Buffer.from(p.request.buffer, p.request.byteOffset, p.request.byteLength), this, this.readBuffer);
    }
    this.conns.push(conn);
    conn.connect();
    return conn;
  }

  /** An open, idle connection: send now (closed loop), or take a due request (open loop). */
  private dispatch(conn: Connection): void {
    if (!this.running || conn.busy) return;
    if (this.plan.mode === 'concurrency') {
      this.send(conn, performance.now());
      return;
    }
    if (this.backlogHead < this.backlog.length) {
      const due = this.backlog[this.backlogHead++]!;
      if (this.backlogHead > 1024 && this.backlogHead * 2 > this.backlog.length) {
        this.backlog = this.backlog.slice(this.backlogHead);
        this.backlogHead = 0;
      }
      this.send(conn, due);
    } else {
      this.idle.push(conn);
    }
  }

  private send(conn: Connection, startedAt: number): void {
    this.wSent++;
    this.totals.sent++;
    conn.send(startedAt);
  }

  /** Rate mode: issues every request due by now, then sleeps until the next one. */
  private tick(): void {
    this.timer = undefined;
    this.immediate = undefined;
    if (!this.running) return;
    const p = this.plan;
    const now = performance.now();
    while (this.nextDue <= now) {
      const due = this.nextDue;
      this.nextDue += p.distribution === 'poisson' ? (-Math.log(1 - Math.random()) * 1000) / p.rate : 1000 / p.rate;
      let conn = this.idle.pop();
      while (conn !== undefined && (!conn.open || conn.busy)) conn = this.idle.pop();
      if (conn !== undefined) {
        this.send(conn, due);
        continue;
      }
      this.backlog.push(due);
      const waiting = this.backlog.length - this.backlogHead;
      if (waiting > this.wMaxBacklog) this.wMaxBacklog = waiting;
      if (this.conns.length < p.connections) this.openConnection();
    }
    const wait = this.nextDue - performance.now();
    // Timers fire late by up to ~1 ms: sleep with a timer only for longer gaps, and finish
    // short ones with setImmediate so requests leave close to when they are due.
    if (wait > 2) this.timer = setTimeout(() => this.tick(), wait - 1);
    else this.immediate = setImmediate(() => this.tick());
  }

  private checkTimeouts(): void {
    const limit = performance.now() - this.plan.timeoutMs;
    for (const c of this.conns) if (c.busy && c.startedAt < limit) c.fail('timeout');
  }
}
