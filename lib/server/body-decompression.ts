/**
 * Decompresses a request body sent with `Content-Encoding: gzip` or `deflate`, off the event
 * loop (zlib's streams inflate on libuv's thread pool; the JS thread only counts and keeps
 * the output chunks), with the body limit applied to the DECOMPRESSED size.
 *
 * A zip bomb (a few KiB that inflate to gigabytes) stops at the limit: the running count of
 * output bytes is checked at every chunk and the inflate destroyed once it passes, so no
 * more than the limit plus one chunk is ever produced. The chunks are then joined into one
 * buffer a slice at a time (join-chunks.ts): about twice the limit at the peak, briefly. The
 * compressed body itself was bounded by the same limit when it was read.
 */
import zlib from 'node:zlib';
import { TensorwireError } from '../errors';
import type { ContentCoding } from './content-coding';
import { joinChunks } from './join-chunks';

/**
 * Output chunk of the inflate: each chunk is one round trip between the thread pool and the
 * JS thread. zlib's default (16 KiB) made a 30 MB body ~2000 trips and took 820 ms here;
 * 256 KiB takes ~120 trips and 55-90 ms. It is also the most a refused body overshoots by.
 */
const INFLATE_CHUNK_BYTES = 256 * 1024;

/**
 * `body` inflated. Rejects with PAYLOAD_TOO_LARGE when the decompressed body would pass
 * `maxBytes`, INVALID_INPUT when the data is not what `coding` says.
 */
export function decompressBody(body: Buffer, coding: ContentCoding, maxBytes: number): Promise<Buffer> {
  const options: zlib.ZlibOptions = { chunkSize: Math.max(64, Math.min(INFLATE_CHUNK_BYTES, maxBytes + 1)) };
  // RFC 9110 says deflate is the zlib format; some clients send raw deflate data, which has
  // no zlib header: accept both, as browsers and most servers do.
  const inflate = coding === 'gzip' ? zlib.createGunzip(options) : hasZlibHeader(body) ? zlib.createInflate(options) : zlib.createInflateRaw(options);
  return new Promise<Buffer>((resolve, reject) => {
    let chunks: Buffer[] = [];
    let total = 0;
    let failed = false;
    const fail = (error: TensorwireError): void => {
      if (failed) return;
      failed = true;
      chunks = [];
      inflate.destroy();
      reject(error);
    };
    inflate.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) fail(new TensorwireError('PAYLOAD_TOO_LARGE', `decompressed request body (Content-Encoding: ${coding}) exceeds the limit of ${maxBytes} bytes`));
      else if (!failed) chunks.push(chunk);
    });
    // zlib's messages ("incorrect header check", "unexpected end of file") say what is wrong
    // and never echo the data.
    inflate.on('error', (e: Error) => fail(new TensorwireError('INVALID_INPUT', `request body is not valid ${coding} data as its Content-Encoding says (${e.message})`)));
    inflate.on('end', () => {
      if (!failed) joinChunks(chunks, total).then(resolve, reject);
    });
    inflate.end(body);
  });
}

/** True when `body` starts with a zlib header (RFC 1950: method 8, and a check that makes the first two bytes a multiple of 31). */
function hasZlibHeader(body: Buffer): boolean {
  return body.length >= 2 && (body[0]! & 0x0f) === 8 && ((body[0]! << 8) | body[1]!) % 31 === 0;
}
