/**
 * A server's HTTP compression: its settings, and the bound on (de)compression jobs in flight.
 *
 * Each job runs on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise),
 * which file I/O and DNS share. Without a bound a flood of compressed requests would queue
 * unbounded work there, each holding its body: past `maxJobs` a compressed request is
 * answered 503 with Retry-After, and a response that could be compressed goes out as it is
 * (it is ready; compressing it is only an optimisation).
 */
import { TensorwireError } from '../errors';
import { decompressBody } from './body-decompression';
import type { ContentCoding } from './content-coding';
import { compressBody } from './response-compression';

/** Settings of HTTP compression (`ServerOptions.compression`). */
export interface CompressionOptions {
  /** False: compressed request bodies are refused (400) and no response is compressed. Default true. */
  enabled?: boolean;
  /** Smallest response body compressed for a client that accepts it, bytes (0..1 GiB). Default 1024. */
  minResponseBytes?: number;
  /** Decompressions and compressions in flight per server (1..1024). Default 16. */
  maxJobs?: number;
  /** zlib level of compressed responses, 1 (fastest) .. 9 (smallest). Default 1: the CPU is what a model server runs short of. */
  level?: number;
}

export const DEFAULT_MIN_RESPONSE_BYTES = 1024;
export const DEFAULT_MAX_COMPRESSION_JOBS = 16;
export const DEFAULT_COMPRESSION_LEVEL = 1;

/** Seconds a request refused for a full job queue is told to wait. */
const RETRY_AFTER_S = 1;

/** One server's compression settings and jobs in flight. */
export class HttpCompression {
  readonly enabled: boolean;
  /** Responses below this size go out as they are (Infinity when compression is off). */
  readonly minResponseBytes: number;
  readonly maxJobs: number;
  readonly level: number;
  private jobs = 0;

  constructor(options: CompressionOptions = {}) {
    this.enabled = options.enabled ?? true;
    const minResponseBytes = options.minResponseBytes ?? DEFAULT_MIN_RESPONSE_BYTES;
    this.maxJobs = options.maxJobs ?? DEFAULT_MAX_COMPRESSION_JOBS;
    this.level = options.level ?? DEFAULT_COMPRESSION_LEVEL;
    checkInteger('compression.minResponseBytes', minResponseBytes, 0, 1024 * 1024 * 1024);
    checkInteger('compression.maxJobs', this.maxJobs, 1, 1024);
    checkInteger('compression.level', this.level, 1, 9);
    this.minResponseBytes = this.enabled ? minResponseBytes : Infinity;
  }

  /** Jobs running now (tests and metrics read it). */
  get jobsInFlight(): number {
    return this.jobs;
  }

  /**
   * `body` decompressed, its decompressed size bounded by `maxBytes` (PAYLOAD_TOO_LARGE
   * past it). Rejects with UNAVAILABLE (503, Retry-After) while `maxJobs` jobs run.
   */
  decompress(body: Buffer, coding: ContentCoding, maxBytes: number): Promise<Buffer> {
    if (!this.enabled) {
      return Promise.reject(new TensorwireError('INVALID_INPUT', `Content-Encoding '${coding}' is turned off on this server: send the body uncompressed`));
    }
    if (this.jobs >= this.maxJobs) {
      return Promise.reject(new TensorwireError('UNAVAILABLE', `too many compressed requests being decompressed (${this.maxJobs}); retry later or send the body uncompressed`, { retryAfterSeconds: RETRY_AFTER_S }));
    }
    return this.track(decompressBody(body, coding, maxBytes));
  }

  /** `body` compressed, or undefined (send it as it is) while `maxJobs` jobs run. */
  compress(body: Uint8Array, coding: ContentCoding): Promise<Buffer> | undefined {
    if (this.jobs >= this.maxJobs) return undefined;
    return this.track(compressBody(body, coding, this.level));
  }

  private track(job: Promise<Buffer>): Promise<Buffer> {
    this.jobs++;
    const finished = (): void => {
      this.jobs--;
    };
    job.then(finished, finished);
    return job;
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
}
