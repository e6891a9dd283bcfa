/**
 * Compresses a response body for a client that accepts gzip or deflate, off the event loop
 * (zlib's streams deflate on libuv's thread pool; the chunks are joined a slice at a time).
 */
import zlib from 'node:zlib';
import type { ContentCoding } from './content-coding';
import { joinChunks } from './join-chunks';

/** Output chunk of the deflate (one thread-pool round trip each; see body-decompression.ts). */
const DEFLATE_CHUNK_BYTES = 256 * 1024;

/**
 * `body` compressed with `coding` at `level` (1 fastest .. 9 smallest). Deflate is the zlib
 * format (RFC 9110), what Triton's server sends and its clients read.
 */
export function compressBody(body: Uint8Array, coding: ContentCoding, level: number): Promise<Buffer> {
  const options: zlib.ZlibOptions = { level, chunkSize: Math.max(64, Math.min(DEFLATE_CHUNK_BYTES, body.byteLength)) };
  const deflate = coding === 'gzip' ? zlib.createGzip(options) : zlib.createDeflate(options);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    deflate.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
    });
    deflate.on('error', reject);
    deflate.on('end', () => {
      joinChunks(chunks, total).then(resolve, reject);
    });
    deflate.end(body);
  });
}
