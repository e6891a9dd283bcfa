/**
 * Compresses a response body for a client that accepts gzip or deflate, off the event loop
 * (zlib's asynchronous API deflates on libuv's thread pool).
 */
import zlib from 'node:zlib';
import type { ContentCoding } from './content-coding';

/** Output chunk of the deflate (one thread-pool round trip each; see body-decompression.ts). */
const DEFLATE_CHUNK_BYTES = 256 * 1024;

/**
 * `body` compressed with `coding` at `level` (1 fastest .. 9 smallest). Deflate is the zlib
 * format (RFC 9110), what Triton's server sends and its clients read.
 */
export function compressBody(body: Uint8Array, coding: ContentCoding, level: number): Promise<Buffer> {
  const options: zlib.ZlibOptions = { level, chunkSize: Math.max(64, Math.min(DEFLATE_CHUNK_BYTES, body.byteLength)) };
  return new Promise<Buffer>((resolve, reject) => {
    const done = (error: Error | null, result: Buffer): void => (error === null ? resolve(result) : reject(error));
    if (coding === 'gzip') zlib.gzip(body, options, done);
    else zlib.deflate(body, options, done);
  });
}
