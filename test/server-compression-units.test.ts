/**
 * The parts of HTTP compression that need no server: reading Content-Encoding and
 * Accept-Encoding, the bound on (de)compression jobs, the settings' bounds, the limits of
 * decompression, and the chunk join. The server-level behaviour is in
 * integration-compression.test.ts.
 */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { TensorwireError } from '../lib/errors';
import { requestCoding, responseCoding } from '../lib/server/content-coding';
import { HttpCompression } from '../lib/server/http-compression';
import { decompressBody } from '../lib/server/body-decompression';
import { joinChunks } from '../lib/server/join-chunks';

describe('Content-Encoding', () => {
  it('gzip, deflate and identity; case and spaces do not matter', () => {
    expect(requestCoding(undefined)).toBeUndefined();
    expect(requestCoding('')).toBeUndefined();
    expect(requestCoding('identity')).toBeUndefined();
    expect(requestCoding(' GZIP ')).toBe('gzip');
    expect(requestCoding('x-gzip')).toBe('gzip');
    expect(requestCoding('Deflate')).toBe('deflate');
  });

  it('anything else is INVALID_INPUT naming the header, echo bounded', () => {
    expect(() => requestCoding('br')).toThrow("Content-Encoding 'br' is an unsupported coding: send the body uncompressed or with one of gzip, deflate");
    expect(() => requestCoding('deflate, gzip')).toThrow('is more than one coding');
    try {
      requestCoding('x'.repeat(10_000));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TensorwireError);
      expect((e as TensorwireError).code).toBe('INVALID_INPUT');
      expect((e as TensorwireError).message.length).toBeLessThan(250);
    }
  });
});

describe('Accept-Encoding', () => {
  it.each([
    ['', undefined],
    ['gzip', 'gzip'],
    ['deflate', 'deflate'],
    ['gzip, deflate', 'gzip'],
    ['deflate, gzip', 'deflate'],
    ['br, deflate', 'deflate'],
    ['gzip;q=0.2, deflate;q=0.3', 'deflate'],
    ['gzip; q=1.0, deflate;q=0.3', 'gzip'],
    ['gzip;q=0', undefined],
    ['gzip;q=0, *', 'deflate'],
    ['*', 'gzip'],
    ['*;q=0', undefined],
    ['gzip;q=0.5, identity', undefined],
    ['identity;q=0, gzip;q=0.1', 'gzip'],
    ['gzip;q=abc', undefined],
    ['gzip;q=2', undefined],
    ['br, zstd', undefined],
    [',,;, ;q=', undefined],
  ])('%j -> %s', (header, expected) => {
    expect(responseCoding(header)).toBe(expected);
  });
});

describe('HttpCompression', () => {
  it('bounds every setting', () => {
    expect(() => new HttpCompression({ maxJobs: 0 })).toThrow('compression.maxJobs must be an integer in 1..1024, got 0');
    expect(() => new HttpCompression({ maxJobs: 1e9 })).toThrow('compression.maxJobs');
    expect(() => new HttpCompression({ level: 0 })).toThrow('compression.level must be an integer in 1..9, got 0');
    expect(() => new HttpCompression({ minResponseBytes: -1 })).toThrow('compression.minResponseBytes');
    expect(() => new HttpCompression({ minResponseBytes: 1.5 })).toThrow('compression.minResponseBytes');
    expect(new HttpCompression({ enabled: false }).minResponseBytes).toBe(Infinity);
  });

  it('past maxJobs: decompression is 503 with Retry-After, compression declines; room again once jobs end', async () => {
    const c = new HttpCompression({ maxJobs: 2 });
    const body = zlib.gzipSync(Buffer.alloc(2 * 1024 * 1024, 7));
    const running = [c.decompress(body, 'gzip', 8 * 1024 * 1024), c.decompress(body, 'gzip', 8 * 1024 * 1024)];
    expect(c.jobsInFlight).toBe(2);
    const refused = await c.decompress(body, 'gzip', 8 * 1024 * 1024).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TensorwireError);
    expect(refused).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryAfterSeconds: 1 });
    expect(c.compress(Buffer.alloc(4096), 'gzip')).toBeUndefined();
    for (const r of await Promise.all(running)) expect(r.equals(Buffer.alloc(2 * 1024 * 1024, 7))).toBe(true);
    expect(c.jobsInFlight).toBe(0);
    const again = c.compress(Buffer.alloc(4096, 1), 'deflate');
    expect(again).toBeDefined();
    expect(zlib.inflateSync(await again!).equals(Buffer.alloc(4096, 1))).toBe(true);
    expect(c.jobsInFlight).toBe(0);
  });

  it('failed jobs free their slot too', async () => {
    const c = new HttpCompression({ maxJobs: 1 });
    await expect(c.decompress(Buffer.from('not gzip'), 'gzip', 1024)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    expect(c.jobsInFlight).toBe(0);
    await expect(c.decompress(zlib.gzipSync(Buffer.alloc(2048)), 'gzip', 1024)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(c.jobsInFlight).toBe(0);
  });

  it('turned off: compressed bodies are refused naming the coding', async () => {
    const c = new HttpCompression({ enabled: false });
    await expect(c.decompress(zlib.gzipSync('{}'), 'gzip', 1024)).rejects.toThrow("Content-Encoding 'gzip' is turned off on this server");
  });
});

describe('decompressBody', () => {
  it('exactly the limit passes, one byte more is PAYLOAD_TOO_LARGE', async () => {
    const limit = 300_000;
    expect((await decompressBody(zlib.gzipSync(Buffer.alloc(limit, 1)), 'gzip', limit)).length).toBe(limit);
    await expect(decompressBody(zlib.gzipSync(Buffer.alloc(limit + 1, 1)), 'gzip', limit)).rejects.toThrow(`decompressed request body (Content-Encoding: gzip) exceeds the limit of ${limit} bytes`);
  });

  it('deflate in the zlib format and raw; gzip data under deflate is refused', async () => {
    const data = Buffer.from('{"inputs":[]}'.repeat(100));
    expect((await decompressBody(zlib.deflateSync(data), 'deflate', 1 << 20)).equals(data)).toBe(true);
    expect((await decompressBody(zlib.deflateRawSync(data), 'deflate', 1 << 20)).equals(data)).toBe(true);
    await expect(decompressBody(zlib.gzipSync(data), 'deflate', 1 << 20)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('an empty body is not valid gzip', async () => {
    await expect(decompressBody(Buffer.alloc(0), 'gzip', 1024)).rejects.toThrow('request body is not valid gzip data as its Content-Encoding says (unexpected end of file)');
  });
});

describe('joinChunks', () => {
  it('joins in order into a buffer owning its whole ArrayBuffer, across loop turns for large inputs', async () => {
    for (const sizes of [[], [5], [3, 0, 7], Array.from({ length: 40 }, (_, i) => 100_000 + i)]) {
      const chunks = sizes.map((n, i) => Buffer.alloc(n, i + 1));
      const expected = Buffer.concat(chunks);
      const joined = await joinChunks(chunks, expected.length);
      expect(joined.equals(expected)).toBe(true);
      expect(joined.byteOffset).toBe(0);
      expect(joined.buffer.byteLength).toBe(expected.length);
    }
  });
});

describe('tensorwire serve --http-compression', () => {
  it('on by default (nothing passed), off turns it off, anything else is refused', async () => {
    const { parseServeArgs } = await import('../lib/cli');
    expect(parseServeArgs(['--repo', 'r']).compression).toBeUndefined();
    expect(parseServeArgs(['--repo', 'r', '--http-compression', 'on']).compression).toBeUndefined();
    expect(parseServeArgs(['--repo', 'r', '--http-compression', 'off']).compression).toEqual({ enabled: false });
    expect(() => parseServeArgs(['--repo', 'r', '--http-compression', 'gzip'])).toThrow("--http-compression must be on or off, got 'gzip'");
  });
});
