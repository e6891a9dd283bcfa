/**
 * Trace files: JSON lines appended to files inside the directory fixed at start
 * (`--trace-dir`). Writes go through a write stream (libuv's thread pool does the I/O), never
 * synchronous calls on the JS thread. Each file buffers at most `maxBufferedBytes` in memory:
 * when the disk is slower than the traces, lines are dropped and counted rather than queued
 * without end. All files together take at most `maxBytes` and `maxFiles` per server run.
 *
 * Names come validated from trace-settings.ts (no separator, no leading dot), and files open
 * with O_NOFOLLOW: a symbolic link planted in the directory is not followed.
 */
import { constants, createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';

/** Limits of the trace files of one server. */
export interface TraceFileLimits {
  /** Bytes a file may hold in memory waiting for the disk before lines are dropped. Default 1 MiB. */
  maxBufferedBytes: number;
  /** Bytes written to trace files in all, per server run. Default 1 GiB. */
  maxBytes: number;
  /** Files opened in all (log_frequency makes one per N traces), per server run. Default 1000. */
  maxFiles: number;
}

export const DEFAULT_TRACE_FILE_LIMITS: Readonly<TraceFileLimits> = Object.freeze({ maxBufferedBytes: 1024 * 1024, maxBytes: 1024 ** 3, maxFiles: 1000 });

/** Numeric open flags (fs.open takes them, the typings of createWriteStream say string only). */
const OPEN_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW;

/** The file a trace name writes to now, with log_frequency's rotation state. */
interface OpenTrace {
  stream: WriteStream | undefined;
  logFrequency: number;
  /** Index of the current `<name>.<index>` file (log_frequency > 0). */
  index: number;
  /** Traces in the current file. */
  inFile: number;
}

/** Appends trace lines to files in one directory. */
export class TraceFiles {
  /** Lines dropped: the disk was behind, a limit was reached, or the file could not be written. */
  dropped = 0;
  /** Lines handed to a stream. */
  written = 0;
  private bytes = 0;
  private filesOpened = 0;
  private readonly open = new Map<string, OpenTrace>();
  /** Streams ended (rotated away or closing) and not flushed yet. */
  private readonly ending = new Set<Promise<void>>();
  private readonly limits: TraceFileLimits;

  constructor(private readonly dir: string, limits: Partial<TraceFileLimits> = {}) {
    this.limits = { ...DEFAULT_TRACE_FILE_LIMITS, ...limits };
  }

  /** Appends `line` (one JSON object, without newline) to trace `name`, rotating every `logFrequency` traces when > 0. */
  write(name: string, logFrequency: number, line: string): void {
    let file = this.open.get(name);
    if (file === undefined || file.logFrequency !== logFrequency) {
      this.finish(file?.stream);
      file = { stream: undefined, logFrequency, index: 0, inFile: 0 };
      this.open.set(name, file);
    }
    if (logFrequency > 0 && file.inFile === logFrequency) {
      this.finish(file.stream);
      file.stream = undefined;
      file.index++;
      file.inFile = 0;
    }
    const size = Buffer.byteLength(line) + 1;
    if (this.bytes + size > this.limits.maxBytes) {
      this.dropped++;
      return;
    }
    let stream = file.stream;
    if (stream === undefined) {
      if (this.filesOpened >= this.limits.maxFiles) {
        this.dropped++;
        return;
      }
      this.filesOpened++;
      stream = createWriteStream(join(this.dir, logFrequency > 0 ? `${name}.${file.index}` : name), { flags: OPEN_FLAGS as unknown as string, mode: 0o600 });
      const opened = file;
      // A file that cannot be opened or written (gone directory, a link, a full disk) drops its lines.
      stream.on('error', () => {
        if (opened.stream === stream) opened.stream = undefined;
        this.dropped++;
      });
      file.stream = stream;
    }
    if (stream.writableLength > this.limits.maxBufferedBytes) {
      this.dropped++;
      return;
    }
    this.bytes += size;
    file.inFile++;
    this.written++;
    stream.write(line + '\n');
  }

  /** Flushes and closes every file (server shutdown), those rotated away included. */
  async close(): Promise<void> {
    for (const f of this.open.values()) this.finish(f.stream);
    this.open.clear();
    await Promise.all(this.ending);
  }

  /** Ends `stream`; close() waits for what is still being flushed. */
  private finish(stream: WriteStream | undefined): void {
    if (stream === undefined) return;
    const done = new Promise<void>((resolve) => {
      stream.once('error', () => resolve());
      if (stream.destroyed) resolve();
      else stream.end(() => resolve());
    });
    this.ending.add(done);
    void done.then(() => this.ending.delete(done));
  }
}
