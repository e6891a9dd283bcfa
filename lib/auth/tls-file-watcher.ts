/**
 * Serves renewed TLS certificates without a signal: when --tls-cert, --tls-key or --tls-ca
 * change on disk, the server's reload runs (the same as SIGHUP, lib/server/server.ts).
 *
 * fs.watch on the files' directories (certbot and cert-manager replace files by rename or
 * symlink swap, which a watch on the file itself would lose) wakes a check at once; a stat
 * poll catches what fs.watch misses (network file systems, some containers). A renewal
 * writes two or three files one after another, so the reload waits until the files were
 * quiet for `debounceMs`. A reload that fails (a half-written file, a key that is not the
 * certificate's) leaves the old certificate in service and logs why, once per change: the
 * next write wakes another attempt. Reading and checking happen off the JS thread
 * (fs.promises, in the reload); only stat signatures are taken here.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { fileSignature, type AuthLog } from './auth-file-watcher';

export interface TlsFileWatcherOptions {
  /** Quiet time after the last change before reloading, ms (default 1000, bounded 20-60000). */
  debounceMs?: number;
  /** Stat poll period, ms (default 2000, bounded 20-60000). */
  pollMs?: number;
  log?: AuthLog;
}

const CONSOLE_LOG: AuthLog = { info: (m) => console.log(m), error: (m) => console.error(m) };
const bounded = (value: number | undefined, fallback: number): number => Math.min(60_000, Math.max(20, value ?? fallback));

/** Watches the certificate files and calls `reload` after they changed and settled. */
export class TlsFileWatcher {
  private readonly log: AuthLog;
  private readonly debounceMs: number;
  private readonly watchers: FSWatcher[] = [];
  private readonly poll: NodeJS.Timeout;
  private readonly names: Set<string>;
  /** Signatures (mtime, size, inode, or the read error) of the files the server serves now or last tried. */
  private seen: string;
  private debounce: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private again = false;
  private reloading: Promise<void> | undefined;
  private closed = false;

  /** Starts watching `files` (the signatures taken now are the ones in service). */
  static async open(files: readonly string[], reload: () => Promise<string>, options: TlsFileWatcherOptions = {}): Promise<TlsFileWatcher> {
    return new TlsFileWatcher(files, reload, await signatures(files), options);
  }

  private constructor(
    private readonly files: readonly string[],
    private readonly reload: () => Promise<string>,
    initial: string,
    options: TlsFileWatcherOptions,
  ) {
    this.seen = initial;
    this.log = options.log ?? CONSOLE_LOG;
    this.debounceMs = bounded(options.debounceMs, 1000);
    this.names = new Set(files.map((f) => basename(f)));
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, (_event, file) => {
          // A kubernetes secret volume swaps a `..data` symlink, never the names themselves.
          if (file === null || this.names.has(file) || file.startsWith('..')) this.check();
        });
        w.on('error', () => w.close());
        this.watchers.push(w);
      } catch {
        // No inotify (or too many watches): the poll alone notices the change.
      }
    }
    this.poll = setInterval(() => this.check(), bounded(options.pollMs, 2000));
    this.poll.unref();
  }

  /** Resolves once a pending check, debounce and reload finished; for tests and shutdown. */
  async settled(): Promise<void> {
    for (;;) {
      if (this.checking) await this.checking;
      else if (this.debounce) await new Promise((r) => setTimeout(r, this.debounceMs));
      else if (this.reloading) await this.reloading;
      else return;
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
    for (const w of this.watchers) w.close();
  }

  /** Compares signatures; a change (re)starts the quiet period. */
  private check(): void {
    if (this.closed) return;
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = signatures(this.files).then((now) => {
      this.checking = undefined;
      if (this.again) {
        this.again = false;
        this.check();
      }
      if (this.closed || now === this.seen) return;
      this.seen = now;
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        void this.reloadNow();
      }, this.debounceMs);
    });
  }

  private async reloadNow(): Promise<void> {
    if (this.closed) return;
    // One reload at a time; a change during one is seen by the next check.
    if (this.reloading) await this.reloading;
    const started = this.reload().then(
      async (summary) => this.log.info(`TLS certificate files changed: reloaded, now serving ${summary}${await handoffNote()}`),
      (e: unknown) => this.log.error(`TLS certificate files changed but were not reloaded, the old certificate stays in service: ${(e as Error).message}`),
    );
    this.reloading = started;
    await started;
    if (this.reloading === started) this.reloading = undefined;
  }
}

/**
 * What the operator should know when the kernel reset connections queued on the old
 * listener (docs/security.md, TLS); empty when it hands them over or cannot be asked.
 */
export async function handoffNote(): Promise<string> {
  const value = await readFile('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').then((v) => v.trim(), () => undefined);
  return value === '0' ? ' (net.ipv4.tcp_migrate_req=0: connection attempts queued on the old listener as it closed were reset; set it to 1 for none)' : '';
}

/** One string over every file: changes when any is written, replaced or removed. */
async function signatures(files: readonly string[]): Promise<string> {
  const parts = await Promise.all(files.map((f) => fileSignature(f).catch((e: NodeJS.ErrnoException) => `missing:${e.code ?? 'error'}`)));
  return parts.join('|');
}
