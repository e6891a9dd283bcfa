/**
 * Keeps the auth file in force without a restart: a key deleted from the file stops working
 * within a second. fs.watch on the file's directory (an editor or `auth add-key` replaces
 * the file by rename, which a watch on the file itself would lose) wakes a reload at once;
 * a stat poll every `pollMs` catches what fs.watch misses (network file systems, some
 * containers). A file that fails to read or validate leaves the last good one in force and
 * logs why, once per change.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { loadAuthFile, MAX_AUTH_FILE_BYTES, parseAuthFile, type AuthConfig } from './auth-file';

/** Where reload news goes (console by default). */
export interface AuthLog {
  info(message: string): void;
  error(message: string): void;
}

export interface AuthFileWatcherOptions {
  /** Stat poll period, ms (default 250, bounded 20-5000). */
  pollMs?: number;
  log?: AuthLog;
}

const CONSOLE_LOG: AuthLog = { info: (m) => console.log(m), error: (m) => console.error(m) };

/** The auth file in force, reloaded on change. */
export class AuthFileWatcher {
  private config: AuthConfig;
  private readonly listeners: ((config: AuthConfig) => void)[] = [];
  private readonly log: AuthLog;
  private readonly shownAs: string;
  private watcher: FSWatcher | undefined;
  private readonly poll: NodeJS.Timeout;
  /** The last stat signature seen (mtime, size, inode), loaded or refused. */
  private seen: string;
  private reloading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  /** Loads `path` now (throws when it cannot be used: refuse to start rather than run open) and starts watching it. */
  static open(path: string, options: AuthFileWatcherOptions = {}): AuthFileWatcher {
    const config = loadAuthFile(path, basename(path));
    const s = statSync(path, { bigint: true });
    return new AuthFileWatcher(path, config, `${s.mtimeNs}:${s.size}:${s.ino}`, options);
  }

  private constructor(
    private readonly path: string,
    initial: AuthConfig,
    initialSignature: string,
    options: AuthFileWatcherOptions = {},
  ) {
    this.config = initial;
    this.seen = initialSignature;
    this.log = options.log ?? CONSOLE_LOG;
    this.shownAs = basename(path);
    const pollMs = Math.min(5000, Math.max(20, options.pollMs ?? 250));
    try {
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === this.shownAs) this.check();
      });
      this.watcher.on('error', () => this.stopWatching());
    } catch {
      // No inotify (or too many watches): the poll alone keeps the promise of one second.
      this.watcher = undefined;
    }
    this.poll = setInterval(() => this.check(), pollMs);
    this.poll.unref();
  }

  /** The configuration in force now. */
  get current(): AuthConfig {
    return this.config;
  }

  /** Calls `listener` with every newly loaded configuration. */
  onChange(listener: (config: AuthConfig) => void): void {
    this.listeners.push(listener);
  }

  /** Resolves once any reload in progress (and one it asked for) finished; for tests and shutdown. */
  async settled(): Promise<void> {
    while (this.reloading) await this.reloading;
  }

  /** Stops watching. */
  close(): void {
    this.closed = true;
    clearInterval(this.poll);
    this.stopWatching();
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Re-reads the file when its stat signature changed; never two reads at once. */
  private check(): void {
    if (this.closed) return;
    if (this.reloading) {
      this.again = true;
      return;
    }
    this.reloading = this.reload().finally(() => {
      this.reloading = undefined;
      if (this.again) {
        this.again = false;
        this.check();
      }
    });
  }

  private async reload(): Promise<void> {
    let signature: string;
    try {
      signature = await fileSignature(this.path);
    } catch (e) {
      const s = `missing:${(e as NodeJS.ErrnoException).code}`;
      if (s !== this.seen) this.log.error(`auth file ${this.shownAs} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}); keeping the last good one in force`);
      this.seen = s;
      return;
    }
    if (signature === this.seen) return;
    this.seen = signature;
    try {
      const size = Number(signature.split(':')[1]);
      if (size > MAX_AUTH_FILE_BYTES) throw new Error(`${size} bytes, over the ${MAX_AUTH_FILE_BYTES}-byte limit`);
      const config = parseAuthFile(await readFile(this.path, 'utf8'));
      if (this.closed) return;
      this.config = config;
      this.log.info(`auth file ${this.shownAs} reloaded: ${config.keysByHash.size} key(s), ${config.mtlsBySubject.size} certificate subject(s)`);
      for (const listener of this.listeners) listener(config);
    } catch (e) {
      this.log.error(`auth file ${this.shownAs} not reloaded, the last good one stays in force: ${(e as Error).message}`);
    }
  }
}

/** mtime, size and inode: changes on every write or replacement of the file. */
export async function fileSignature(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.mtimeNs}:${s.size}:${s.ino}`;
}
