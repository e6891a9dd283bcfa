/**
 * The WebSocket stream endpoint, `GET /v2/stream` (design.md, "Interfaces others rely on"):
 * each text or binary frame is one inference request with an `id`; each gets exactly one
 * answer with the same id, in the same frame type (errors are text frames
 * `{"id","error","code"}`), possibly out of order. Bad frames get error frames; they never
 * close the socket. Flow control and its memory bound are stream-connection.ts's.
 *
 * Control frames (`subscribe`, `unsubscribe`) manage the connection's subscriptions to the
 * live prediction feed (prediction-feed.ts, off unless the server enables it); they get one
 * text answer each, never count as in flight, and the connection's subscriptions end when its
 * socket closes. The strings the server echoes (ids, model names) are bounded first
 * (stream-bounds.ts).
 *
 * Socket settings: messages up to the HTTP body limit (uWS closes the socket with 1009 on a
 * bigger one, before buffering it); no compression (tensor bytes barely compress and it
 * costs the event loop); an idle timeout of 120 s with automatic pings, so quiet but alive
 * clients stay connected while dead ones are dropped.
 */
import uWS from 'uWebSockets.js';
import { TensorwireError, toTensorwireError } from '../errors';
import { decodeStreamFrame, encodeStreamError, encodeStreamResponse, type StreamControl, type StreamFrame, type StreamId } from '../protocol/stream-frame';
import { decodeStreamFrameOffLoop, OFFLOAD_JSON_BYTES } from '../protocol/request-decode-pool';
import { errorBody, JSON_TYPE, statusLine } from './http-response';
import { shuttingDown, type ServerContext } from './router';
import { StreamConnection, type StreamLimits } from './stream-connection';
import type { Principal } from '../frontdoor/types';
import type { InferRequest } from '../protocol/types';
import { WWW_AUTHENTICATE } from '../auth/access-control';
import { checkWebSocketOrigin } from '../auth/browser-checks';
import { subscribeNeeds } from '../auth/route-scopes';
import { isRefusal, type Admission } from '../frontdoor/authorize';
import type { Need } from '../auth/scopes';

/** Stream options. */
export interface StreamOptions {
  /** Requests in flight per connection before 429 error frames. */
  maxInflight: number;
  /** Bytes buffered in uWS above which answers wait in the connection's outbox. Default 1 MiB. */
  highWaterBytes?: number;
  /** Whether clients may subscribe to the live prediction feed (403 otherwise). */
  feed: boolean;
}

/** The open stream connections, for shutdown. */
export interface StreamRegistry {
  /** Open connections. */
  readonly size: number;
  /** Closes every connection with 1001 (going away); their queued requests are cancelled. */
  closeAll(): void;
}

interface SocketData {
  connection: StreamConnection;
}

/** Default high-water mark of a connection's uWS send buffer. */
export const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024;
const IDLE_TIMEOUT_S = 120;
const CLOSE_GOING_AWAY = 1001;

/** Upgrade headers the front door's stages may read (authorization, tracing, route keys). */
const CONTEXT_HEADERS = ['authorization', 'origin', 'traceparent', 'x-request-id', 'x-tensorwire-route-key'] as const;

/** What a connection's request contexts know about the client, copied while the upgrade request is valid. */
function upgradeOrigin(res: uWS.HttpResponse, req: uWS.HttpRequest): { address: string; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const name of CONTEXT_HEADERS) {
    const value = req.getHeader(name);
    if (value !== '') headers[name] = value;
  }
  return { address: Buffer.from(res.getRemoteAddressAsText()).toString('latin1'), headers };
}

/** Answers an upgrade with an error instead of switching protocols. */
function refuseUpgrade(res: uWS.HttpResponse, error: TensorwireError): void {
  res.writeStatus(statusLine(error.status)).writeHeader('Content-Type', JSON_TYPE);
  if (error.status === 401) res.writeHeader('WWW-Authenticate', WWW_AUTHENTICATE);
  if (error.status === 429) res.writeHeader('Retry-After', String(error.retryAfterSeconds ?? 1));
  res.end(errorBody(error));
}

const AUTHORIZATION_FRAME_START = Buffer.from('{"authorization"');
/** Longest authorization frame looked at (a JWT and some room). */
const MAX_AUTHORIZATION_FRAME = 16 * 1024;

/** True when a text frame is `{"authorization": ...}` (compared bytewise: an inference frame costs one byte compare). */
function isAuthorizationFrame(message: ArrayBuffer): boolean {
  const n = message.byteLength;
  if (n < AUTHORIZATION_FRAME_START.length || n > MAX_AUTHORIZATION_FRAME) return false;
  const bytes = new Uint8Array(message, 0, AUTHORIZATION_FRAME_START.length);
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== AUTHORIZATION_FRAME_START[i]) return false;
  return true;
}

/** Registers `/v2/stream` on `app`. */
export function registerStream(app: uWS.TemplatedApp, context: ServerContext, options: StreamOptions): StreamRegistry {
  const limits: StreamLimits = { maxInflight: options.maxInflight, highWaterBytes: options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES };
  const open = new Set<StreamConnection>();
  const service = context.service;
  const frontDoor = context.frontDoor;
  const feed = context.feed;
  const security = context.security;

  /** Runs one decoded request through the front door and queues its single answer. */
  function dispatch(connection: StreamConnection, id: StreamId, name: string, version: string | undefined, request: InferRequest, binary: boolean): void {
    const signal = connection.admit();
    if (signal === undefined) {
      const error = new TensorwireError('TOO_MANY_REQUESTS', `${limits.maxInflight} requests are already in flight on this connection (the limit); wait for answers before sending more`);
      connection.reject(encodeStreamError(id, error));
      return;
    }
    const call = { model: name, version, request, context: connection.requestContext(id), signal: signal.asAbortSignal(), answerId: id };
    frontDoor.infer(call).then(
      (response) => {
        let frame: string | Uint8Array;
        try {
          frame = encodeStreamResponse(response, binary, id);
        } catch (e) {
          connection.respond(signal, encodeStreamError(id, toTensorwireError(e)), false);
          return;
        }
        connection.respond(signal, frame, binary);
      },
      (e: unknown) => {
        connection.respond(signal, encodeStreamError(id, toTensorwireError(e)), false);
      },
    );
  }

  /** Answers one control frame (its answer is a text frame like an error's: not in flight). */
  function control(connection: StreamConnection, id: StreamId, c: StreamControl): void {
    const head = '{"id":' + JSON.stringify(id) + ',';
    if (c.op === 'unsubscribe') {
      const was = feed.unsubscribe(connection, c.model);
      connection.reject(head + '"unsubscribed":' + JSON.stringify(c.model) + (was ? '' : ',"was_subscribed":false') + '}');
      return;
    }
    if (!options.feed) {
      connection.reject(encodeStreamError(id, new TensorwireError('FORBIDDEN', `cannot subscribe to '${c.model}': the live prediction feed is off on this server (it is off by default; --stream-feed on enables it)`)));
      return;
    }
    if (frontDoor.isDraining) {
      connection.reject(encodeStreamError(id, shuttingDown()));
      return;
    }
    if (security !== undefined) {
      // The feed shows other clients' traffic: monitor, and feed:inputs for their inputs.
      const admission = admitAll(connection, subscribeNeeds(c.includeInputs));
      if (admission instanceof Promise) {
        admission.then(
          (refusal) => (refusal === undefined ? subscribe(connection, id, c) : connection.reject(encodeStreamError(id, refusal))),
          (e: unknown) => connection.reject(encodeStreamError(id, toTensorwireError(e))),
        );
        return;
      }
      if (admission !== undefined) {
        connection.reject(encodeStreamError(id, admission));
        return;
      }
    }
    subscribe(connection, id, c);
  }

  /** Checks each need for the connection's credential (in order): undefined when all pass, else the first refusal. */
  function admitAll(connection: StreamConnection, needs: readonly Need[], i = 0): TensorwireError | undefined | Promise<TensorwireError | undefined> {
    for (; i < needs.length; i++) {
      const admission: Admission | Promise<Admission> = security!.gate.admit(connection.authorization, connection, needs[i]!);
      if (admission instanceof Promise) {
        const next = i + 1;
        return admission.then((a) => {
          if (isRefusal(a)) return a.refused;
          a.release();
          return admitAll(connection, needs, next);
        });
      }
      if (isRefusal(admission)) return admission.refused;
      admission.release();
    }
    return undefined;
  }

  function subscribe(connection: StreamConnection, id: StreamId, c: Extract<StreamControl, { op: 'subscribe' }>): void {
    if (connection.isClosed) return;
    const head = '{"id":' + JSON.stringify(id) + ',';
    try {
      // The infer path's test of existence: an unknown model throws NOT_FOUND. A known model
      // that is not ready yet may be subscribed to; its predictions come once it serves.
      service.modelReadiness(c.model);
      // Throws over a cap (subscriptions per connection or model, max_per_second).
      feed.subscribe(connection, c.model, c);
    } catch (e) {
      connection.reject(encodeStreamError(id, toTensorwireError(e)));
      return;
    }
    connection.reject(head + '"subscribed":' + JSON.stringify(c.model) + '}');
  }

  /** Frames of one connection being decoded off the loop at once; more get 429 error frames. */
  const MAX_DECODING_PER_CONNECTION = 4;
  const decoding = new WeakMap<StreamConnection, number>();

  function onMessage(connection: StreamConnection, message: ArrayBuffer, isBinary: boolean): void {
    if (security !== undefined && !isBinary && isAuthorizationFrame(message)) {
      onAuthorizationFrame(connection, Buffer.from(message).toString('utf8'));
      return;
    }
    // uWS reuses `message` after this callback: a binary frame's tensors are views into it,
    // so it is copied once; a text frame is decoded into a string at once.
    const jsonBytes = !isBinary ? message.byteLength : message.byteLength < 4 ? 0 : new DataView(message).getUint32(0, true);
    if (jsonBytes < OFFLOAD_JSON_BYTES) {
      onFrame(connection, decodeStreamFrame(isBinary ? new Uint8Array(message.slice(0)) : message, isBinary));
      return;
    }
    // A large JSON part is decoded on a worker thread (a 40 MB JSON frame held the loop for
    // about a second), a few per connection at a time so one client cannot queue gigabytes.
    const busy = decoding.get(connection) ?? 0;
    if (busy >= MAX_DECODING_PER_CONNECTION) {
      connection.reject(encodeStreamError(undefined, new TensorwireError('TOO_MANY_REQUESTS', `${MAX_DECODING_PER_CONNECTION} large frames (JSON over ${OFFLOAD_JSON_BYTES} bytes) are already being decoded on this connection; wait for their answers, or send tensors in binary frames`)));
      return;
    }
    decoding.set(connection, busy + 1);
    const done = (): void => void decoding.set(connection, (decoding.get(connection) ?? 1) - 1);
    decodeStreamFrameOffLoop(new Uint8Array(message.slice(0)), isBinary).then(
      (frame) => {
        done();
        onFrame(connection, frame);
      },
      (e: unknown) => {
        done();
        connection.reject(encodeStreamError(undefined, toTensorwireError(e)));
      },
    );
  }

  /**
   * `{"authorization": "Bearer ..."}` (browsers cannot set the upgrade's header): checked,
   * then every later request of the connection presents it. Answered `{"authenticated":
   * "<principal>"}` or a 401 error frame. Requests sent before the answer came are checked
   * against the credential the connection had then.
   */
  function onAuthorizationFrame(connection: StreamConnection, text: string): void {
    let value: unknown;
    let id: StreamId | undefined;
    try {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      value = parsed['authorization'];
      if (typeof parsed['id'] === 'string' || typeof parsed['id'] === 'number') id = parsed['id'] as StreamId;
    } catch {
      value = undefined;
    }
    if (typeof value !== 'string' || value === '') {
      connection.reject(encodeStreamError(id, new TensorwireError('INVALID_INPUT', 'an authorization frame is {"authorization": "Bearer <API key or JWT>"}')));
      return;
    }
    const credential = value;
    const answer = (outcome: Principal | TensorwireError): void => {
      if (outcome instanceof TensorwireError) {
        connection.reject(encodeStreamError(id, outcome));
        return;
      }
      connection.setAuthorization(credential);
      connection.reject((id === undefined ? '{' : '{"id":' + JSON.stringify(id) + ',') + '"authenticated":' + JSON.stringify(outcome.name) + '}');
    };
    const outcome = security!.gate.authenticate(credential, connection);
    if (outcome instanceof Promise) outcome.then(answer, (e: unknown) => connection.reject(encodeStreamError(id, toTensorwireError(e))));
    else answer(outcome);
  }

  function onFrame(connection: StreamConnection, frame: StreamFrame): void {
    if (!frame.ok) {
      frontDoor.refused(frame.modelName, frame.error, connection.requestContext(frame.id), frame.modelVersion);
      connection.reject(encodeStreamError(frame.id, frame.error));
      return;
    }
    if (frame.kind === 'control') {
      control(connection, frame.id, frame.control);
      return;
    }
    if (frame.id === undefined) {
      connection.reject(encodeStreamError(undefined, new TensorwireError('INVALID_INPUT', `every stream request needs an 'id' (a string or a number) to match its answer; this one for model '${frame.modelName}' has none`)));
      return;
    }
    dispatch(connection, frame.id, frame.modelName, frame.modelVersion, frame.request, frame.binary);
  }

  app.ws<SocketData>('/v2/stream', {
    maxPayloadLength: context.maxBodyBytes,
    // Our own rule keeps uWS's buffer near highWaterBytes; this is only the safety net
    // (uWS drops a frame when its buffer is already over this limit).
    maxBackpressure: limits.highWaterBytes * 2,
    closeOnBackpressureLimit: 0,
    idleTimeout: IDLE_TIMEOUT_S,
    sendPingsAutomatically: true,
    compression: uWS.DISABLED,

    upgrade: (res, req, socketContext) => {
      if (frontDoor.isDraining) {
        res.writeStatus(statusLine(503)).writeHeader('Content-Type', JSON_TYPE).writeHeader('Retry-After', '1').end(errorBody(shuttingDown()));
        return;
      }
      const origin = upgradeOrigin(res, req);
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const upgrade = (): void => {
        res.upgrade<SocketData>({ connection: new StreamConnection(limits, origin) }, key, protocol, extensions, socketContext);
      };
      if (security === undefined) {
        upgrade();
        return;
      }
      const host = req.getHeader('host');
      const refusal = security.hosts.check(host) ?? checkWebSocketOrigin(origin.headers['origin'], host, security.tls, security.allowedOrigins);
      if (refusal !== undefined) {
        refuseUpgrade(res, refusal);
        return;
      }
      const authorization = origin.headers['authorization'];
      // No header: a browser may still send its token in the first frame; until then every request gets 401.
      if (authorization === undefined || !security.gate.enabled) {
        upgrade();
        return;
      }
      const outcome = security.gate.authenticate(authorization, origin);
      if (!(outcome instanceof Promise)) {
        if (outcome instanceof TensorwireError) refuseUpgrade(res, outcome);
        else upgrade();
        return;
      }
      // The upgrade answers after the token verified: uWS requires onAborted, and a cork around the late answer.
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      outcome.then(
        (o) => {
          if (aborted) return;
          res.cork(() => {
            if (o instanceof TensorwireError) refuseUpgrade(res, o);
            else upgrade();
          });
        },
        (e: unknown) => {
          if (!aborted) res.cork(() => refuseUpgrade(res, toTensorwireError(e)));
        },
      );
    },

    open: (ws) => {
      const connection = ws.getUserData().connection;
      connection.attach(ws);
      open.add(connection);
    },

    message: (ws, message, isBinary) => {
      const connection = ws.getUserData().connection;
      try {
        onMessage(connection, message, isBinary);
      } catch (e) {
        // A bug must not escape into uWS (it would take the process down): report it.
        connection.reject(encodeStreamError(undefined, toTensorwireError(e)));
      }
    },

    drain: (ws) => {
      ws.getUserData().connection.flush();
    },

    close: (ws) => {
      const connection = ws.getUserData().connection;
      connection.onClose();
      feed.forget(connection);
      open.delete(connection);
    },
  });

  return {
    get size() {
      return open.size;
    },
    closeAll() {
      for (const connection of [...open]) connection.shutdown(CLOSE_GOING_AWAY, 'server shutting down');
      open.clear();
    },
  };
}
