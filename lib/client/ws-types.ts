/**
 * The slice of the `ws` package (8.x) tensorwire's clients use, typed here because the
 * project has no @types/ws. `ws` is loaded lazily so that code paths that never open a
 * WebSocket do not need it installed.
 */

/** Options of `new WebSocket(url, options)` we pass. */
export interface WsClientOptions {
  perMessageDeflate?: boolean;
  /** Largest message accepted, bytes. */
  maxPayload?: number;
  /** Opening handshake timeout, ms. */
  handshakeTimeout?: number;
  headers?: Record<string, string>;
}

/** A `ws` client socket. */
export interface WsSocket {
  readonly readyState: number;
  /** Bytes queued but not yet written to the network. */
  readonly bufferedAmount: number;
  binaryType: 'nodebuffer' | 'arraybuffer' | 'fragments';
  send(data: string | Buffer | Uint8Array, options?: { binary?: boolean }, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'open', listener: () => void): this;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
  on(event: 'unexpected-response', listener: (req: unknown, res: { statusCode?: number }) => void): this;
}

/** The `ws` WebSocket class. */
export interface WsConstructor {
  new (url: string, options?: WsClientOptions): WsSocket;
  readonly OPEN: number;
}

import { TensorwireError } from '../errors';

let cached: WsConstructor | undefined;

/** The `ws` package's WebSocket class; throws a clear error when the package is missing. */
export function loadWs(): WsConstructor {
  if (cached === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded lazily: code that never opens a WebSocket does not need ws, and a missing package gets the error below
      cached = require('ws') as WsConstructor;
    } catch (e) {
      throw new TensorwireError('INTERNAL', `the WebSocket client needs the 'ws' package (npm install ws): ${(e as Error).message}`, { cause: e });
    }
  }
  return cached;
}
