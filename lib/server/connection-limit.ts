/**
 * Caps open connections (HTTP and WebSocket together) by pausing the listen socket.
 *
 * Why it works this way: uWebSockets.js 20.30 has no hook for an HTTP connection opening or
 * closing (later uWS.js has `App.filter`, this build does not), so connections cannot be
 * counted one by one. Every connection is a file descriptor, though, so the process's open
 * descriptors (/proc/self/fd) minus those open at start count them. While the count is at
 * the cap the listen socket is closed: the kernel refuses new connections at once
 * (ECONNREFUSED) instead of queueing them, and uSockets does not spin on a listen socket
 * whose accept() fails with EMFILE. Once enough connections closed it listens again.
 *
 * The count is sampled every `POLL_MS`, so a burst can overshoot the cap by what arrives in
 * one interval; the cap is therefore clamped below the descriptor limit with headroom.
 * Descriptors other than connections opened after start (a model file being read) count as
 * connections while they are open. Without /proc (not Linux) there is no cap.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';

/** Default cap on open connections. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** How often the open descriptors are counted, ms. */
export const POLL_MS = 100;

/** The soft RLIMIT_NOFILE of this process, or undefined when it cannot be read (not Linux). */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line === undefined ? NaN : Number(line.slice('Max open files'.length).trim().split(/\s+/)[0]);
    return Number.isSafeInteger(soft) && soft > 0 ? soft : undefined; // "unlimited" reads as NaN
  } catch {
    return undefined;
  }
}

/**
 * Open descriptors of this process, or undefined without /proc. Linux 6.2+ reports the count
 * as the size of /proc/self/fd (~16 µs, and it needs no descriptor of its own); older kernels
 * report 0 and the directory is listed instead (~12 ms at 10,000 descriptors).
 */
export function openDescriptors(): number | undefined {
  try {
    const size = statSync('/proc/self/fd').size;
    return size > 0 ? size : readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

/**
 * The cap that fits: `requested`, lowered so that the descriptors open now, the cap and a
 * reserve (for model files, pipes, and the overshoot of one poll interval) stay under the
 * descriptor limit. Never below 1.
 */
export function effectiveMaxConnections(requested: number, limit = openFileLimit(), open = openDescriptors()): number {
  if (limit === undefined || open === undefined) return requested;
  const reserve = 32 + Math.ceil(limit / 20);
  return Math.max(1, Math.min(requested, limit - open - reserve));
}

/** What the limiter drives: the listen socket. */
export interface ListenControl {
  /** Stop accepting (close the listen socket). */
  pause(): void;
  /** Accept again (listen on the same address); false when that failed (retried later). */
  resume(): Promise<boolean>;
}

/** Samples the open connections and pauses/resumes listening around `max`. */
export class ConnectionLimiter {
  private readonly baseline: number;
  private readonly timer: NodeJS.Timeout | undefined;
  private paused = false;
  private resuming = false;
  private stopped = false;

  /**
   * @param max the cap (already clamped, see effectiveMaxConnections).
   * @param baseline descriptors open before the first connection (listen sockets included).
   */
  constructor(
    readonly max: number,
    baseline: number | undefined,
    private readonly control: ListenControl,
  ) {
    this.baseline = baseline ?? 0;
    if (baseline === undefined) return; // no /proc: nothing to count
    // Not unref'd: while listening is paused and the last connection closes, this timer is
    // what keeps the process alive to listen again. close() stops it.
    this.timer = setInterval(() => this.check(), POLL_MS);
  }

  /**
   * Connections open now (descriptors above the baseline). Infinity when they cannot be
   * counted: /proc was readable at start, so that means no descriptor is left (EMFILE).
   */
  get open(): number {
    const fds = openDescriptors();
    return fds === undefined ? Infinity : Math.max(0, fds - this.baseline);
  }

  /** True while new connections are refused. */
  get refusing(): boolean {
    return this.paused;
  }

  /** Samples now: pauses at the cap, resumes once below 95% of it (so it does not flap). */
  check(): void {
    if (this.stopped || this.resuming) return;
    const open = this.open;
    if (!this.paused && open >= this.max) {
      this.paused = true;
      this.control.pause();
    } else if (this.paused && open < this.max - Math.max(1, Math.floor(this.max / 20))) {
      this.resuming = true;
      void this.control.resume().then((ok) => {
            this.resuming = false;
        if (ok && !this.stopped) this.paused = false;
      });
    }
  }

  /** Stops sampling (the server is closing). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
