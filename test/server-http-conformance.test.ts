/**
 * Pins what uWebSockets.js's own HTTP/1.1 parser (20.30, the build we ship) does with
 * requests RFC 9112 says to answer differently. None of these reach tensorwire's code, so
 * they cannot be fixed around; docs/http-conformance.md lists each with its mitigation. If a
 * uWS upgrade changes one, its test fails here: update the page and the test together.
 */
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../lib/server/server';
import { FakeService } from './server-fixture';

let server: RunningServer;
let service: FakeService;
beforeEach(async () => {
  service = new FakeService();
  server = await startServer(service, { port: 0 });
});
afterEach(async () => {
  await server.close();
});

/** What a raw client saw within `ms`: the bytes received and whether the server closed. */
interface Seen {
  text: string;
  closed: boolean;
}

function send(bytes: string, ms = 500): Promise<Seen> {
  return new Promise((resolve) => {
    const socket = net.connect(server.port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.on('data', (d) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.write(bytes);
    setTimeout(() => {
      socket.destroy();
      resolve({ text, closed });
    }, ms);
  });
}

const statuses = (text: string): string[] => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]!);
const gateBody = JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1], data: [7] }] });

describe('pipelining', () => {
  it('answers pipelined requests with synchronous answers each, in order', async () => {
    const seen = await send('GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\nGET /v2/nope HTTP/1.1\r\nHost: t\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n');
    expect(statuses(seen.text)).toEqual(['200', '404', '200']);
    expect(seen.closed).toBe(false);
  });

  it('closes the connection (no answers) when a request arrives while an asynchronous one is still running [uWS]', async () => {
    const seen = await send(
      `POST /v2/models/gate/infer HTTP/1.1\r\nHost: t\r\nContent-Length: ${gateBody.length}\r\n\r\n${gateBody}GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n`,
    );
    expect(seen).toEqual({ text: '', closed: true });
    // The first request reached the core and was cancelled by the close; the second never ran.
    expect(service.aborts).toEqual(['gate:7']);
  });
});

describe('message framing (RFC 9112 section 6, 7.1)', () => {
  it('answers two different Content-Length headers with 400 and closes, running nothing', async () => {
    // uWS takes the first and closes without an answer once the rest was parsed.
    const seen = await send(`POST /v2/models/gate/infer HTTP/1.1\r\nHost: t\r\nContent-Length: ${gateBody.length}\r\nContent-Length: 300\r\n\r\n${gateBody}`);
    expect(statuses(seen.text)).toEqual(['400']);
    expect(seen.text).toContain(`{"error":"conflicting Content-Length headers: '${gateBody.length}' and '300'","code":"INVALID_INPUT"}`);
    expect(seen.closed).toBe(true);
    expect(service.received).toHaveLength(0);
  });

  it('still dispatches a request sent in the same bytes after the refused one, and then keeps the connection [uWS]', async () => {
    const smuggled = 'GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n';
    const seen = await send(`POST /v2/models/gate/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 300\r\n\r\n{}${smuggled}`);
    expect(statuses(seen.text)).toEqual(['400', '200']);
    // The next request resets uWS's "close after this response".
    expect(seen.closed).toBe(false);
  });

  it('accepts a repeated Content-Length with the same value', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [3] }] });
    const seen = await send(`POST /v2/models/big/infer HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(statuses(seen.text)).toEqual(['200']);
  });

  it('closes without an answer on Content-Length and Transfer-Encoding together [uWS]', async () => {
    const seen = await send('POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n');
    expect(seen).toEqual({ text: '', closed: true });
  });

  it('closes without an answer on a Content-Length of 10 digits or more [uWS]', async () => {
    expect(await send('POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n')).toEqual({ text: '', closed: true });
    // Nine digits are parsed (and refused by the body limit).
    expect(statuses((await send('POST /v2/models/add/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n')).text)).toEqual(['413']);
  });

  it('closes without an answer on a chunk extension (5;ext=1) [uWS]', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [3] }] });
    const seen = await send(`POST /v2/models/big/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\n\r\n`);
    expect(seen).toEqual({ text: '', closed: true });
  });

  it('accepts a chunk-size line ended by a bare LF [uWS]', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'N', datatype: 'INT32', shape: [1], data: [3] }] });
    const seen = await send(`POST /v2/models/big/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\n${body}\r\n0\r\n\r\n`);
    expect(statuses(seen.text)).toEqual(['200']);
  });
});

describe('requests the parser never completes: no answer, the connection held until the idle timeout [uWS]', () => {
  const held: [string, string][] = [
    ['49 header lines (Host and 48 more)', 'GET /v2/health/live HTTP/1.1\r\nHost: t\r\n' + Array.from({ length: 48 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n'],
    ["HTTP/1.0 (HAProxy's default health check)", 'OPTIONS / HTTP/1.0\r\n\r\n'],
    ['HTTP/1.0 GET with a Host', 'GET /v2/health/live HTTP/1.0\r\nHost: t\r\n\r\n'],
    ['no Host header', 'GET /v2/health/live HTTP/1.1\r\n\r\n'],
    ['a NUL byte in a header value', 'GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n'],
    ['a header line without a colon', 'GET /v2/health/live HTTP/1.1\r\nHost: t\r\nnot a header\r\n\r\n'],
  ];
  for (const [what, bytes] of held) {
    it(what, async () => {
      expect(await send(bytes)).toEqual({ text: '', closed: false });
    });
  }

  it('serves 48 header lines (Host and 47 more)', async () => {
    const seen = await send('GET /v2/health/live HTTP/1.1\r\nHost: t\r\n' + Array.from({ length: 47 }, (_, i) => `X-H${i}: v\r\n`).join('') + '\r\n');
    expect(statuses(seen.text)).toEqual(['200']);
  });
});
