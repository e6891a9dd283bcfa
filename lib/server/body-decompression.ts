/**
 * Decompresses a request body sent with `Content-Encoding: gzip` or `deflate`, off the event
 * loop (zlib's asynchronous API inflates on libuv's thread pool; the JS thread only collects
 * the output chunks), with the body limit applied to the DECOMPRESSED size.
 *
 * A zip bomb (a few KiB that inflate to gigabytes) stops at the limit: zlib's
 * `maxOutputLength` ends the inflate as soon as the output passes it, so no more than the
 * limit plus one output chunk is ever produced, and the result is joined into one buffer
 * once (peak: about twice the limit, briefly). The compressed body itself was bounded by
 * the same limit when it was read.
 */
import zlib from 'node:zlib';
import { TensorwireError } from '../errors';
import type { ContentCoding } from './content-coding';

/**
 * Output chunk of the inflate: each chunk is one round trip between the thread pool and the
 * JS thread, so small chunks (zlib's default is 16 KiB) cost a 30 MB body ~2000 of them;
 * 256 KiB costs ~120, and is also the most a refused body can overshoot the limit by.
 */
const INFLATE_CHUNK_BYTES = 256 * 1024;

/**
 * `body` inflated. Rejects with PAYLOAD_TOO_LARGE when the decompressed body would pass
 * `maxBytes`, INVALID_INPUT when the data is not what `coding` says.
 */
export function decompressBody(body: Buffer, coding: ContentCoding, maxBytes: number): Promise<Buffer> {
  const options: zlib.ZlibOptions = { maxOutputLength: maxBytes, chunkSize: Math.max(64, Math.min(INFLATE_CHUNK_BYTES, maxBytes + 1)) };
  return new Promise<Buffer>((resolve, reject) => {
    const done = (error: Error | null, result: Buffer): void => {
      if (error === null) resolve(result);
      else reject(decompressionError(error, coding, maxBytes));
    };
    if (coding === 'gzip') zlib.gunzip(body, options, done);
    // RFC 9110 says deflate is the zlib format; some clients send raw deflate data, which
    // has no zlib header: accept both, as browsers and most servers do.
    else if (hasZlibHeader(body)) zlib.inflate(body, options, done);
    else zlib.inflateRaw(body, options, done);
  });
}

/** True when `body` starts with a zlib header (RFC 1950: method 8, and a check that makes the first two bytes a multiple of 31). */
function hasZlibHeader(body: Buffer): boolean {
  return body.length >= 2 && (body[0]! & 0x0f) === 8 && ((body[0]! << 8) | body[1]!) % 31 === 0;
}

function decompressionError(error: Error, coding: ContentCoding, maxBytes: number): TensorwireError {
  if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
    return new TensorwireError('PAYLOAD_TOO_LARGE', `decompressed request body (Content-Encoding: ${coding}) exceeds the limit of ${maxBytes} bytes`);
  }
  // zlib's messages ("incorrect header check", "unexpected end of file") say what is wrong
  // and never echo the data.
  return new TensorwireError('INVALID_INPUT', `request body is not valid ${coding} data as its Content-Encoding says (${error.message})`);
}
