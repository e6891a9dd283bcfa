/**
 * The front door's vocabulary: what every transport (HTTP, the WebSocket stream, gRPC)
 * hands over after decoding its wire format, and what it gets back to encode.
 *
 * Transports only decode and encode. Everything between (admission, authorization, limits,
 * in-flight accounting, routing between versions, the response cache, the live feed, the
 * request id echo, metrics of refused requests) happens once, in the front door, whatever
 * the wire.
 */
import type { TensorwireError } from '../errors';
import type { InferRequest, InferResponse } from '../protocol/types';

/** The wire a request came in on. */
export type Transport = 'http' | 'stream' | 'grpc';

/** Who is calling, once authenticated. Anonymous callers have no name and the default scopes. */
export interface Principal {
  /** The key's or token's name; 'anonymous' when no credentials were required or given. */
  readonly name: string;
  /** Scopes granted (`infer`, `infer:<glob>`, `monitor`, `manage`, `feed:inputs`). */
  readonly scopes: readonly string[];
  /** How the caller authenticated. */
  readonly via: 'none' | 'loopback' | 'api-key' | 'jwt' | 'mtls';
}

/** What the front door knows about the request beyond its payload. */
export interface RequestContext {
  readonly transport: Transport;
  /** Set by the authorization stage; anonymous until then. */
  principal: Principal;
  /**
   * True once the transport authenticated, authorized and admitted the call itself (HTTP
   * routes do, before reading the body): the front door's access stage then lets it pass.
   */
  authorized?: boolean;
  /** The client's address (IP, without port), as the transport saw it. */
  readonly address: string;
  /** Subject of the client certificate the TLS layer verified ("CN=batch-job"), where the transport can read it (gRPC): authenticates as the auth file's `mtls` entry. */
  tlsSubject?: string;
  /**
   * Selected request headers (HTTP) or metadata (gRPC), lower-case names: only those the
   * front door's stages read (authorization, route keys, trace ids), never the body.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** The client's request id, or one generated for it (generated on first read). */
  readonly requestId: string;
  /** A trace id: the client's `traceparent` trace id when given, else generated (on first read). */
  readonly traceId: string;
}

/** One inference call, as every transport hands it over. */
export interface InferCall {
  /** Model name from the URL, the frame or the gRPC message. */
  readonly model: string;
  /** Version asked for, if any. */
  readonly version: string | undefined;
  readonly request: InferRequest;
  readonly context: RequestContext;
  /** Aborts when the client goes away or cancels. */
  readonly signal: AbortSignal;
  /**
   * The id the transport's answer carries when it is not the request's own `id` (a stream
   * frame's id, a string or a number); the live feed reports it as the request id.
   */
  readonly answerId?: string | number;
}

/**
 * A stage of the front door's pipeline (fastify's hooks, for inference): it may answer
 * itself (a cache hit), refuse (throw a TensorwireError), change the call (routing picks a
 * version) or wrap what comes after (`next`). Stages run in the order they are registered.
 */
export type InferStage = (call: InferCall, next: (call: InferCall) => Promise<InferResponse>) => Promise<InferResponse>;

/** A management action on a control route, for admission, authorization and audit. */
export interface ControlCall {
  /** e.g. 'repository.load', 'repository.unload', 'batching.update', 'batching.read'. */
  readonly action: string;
  /** The model it acts on, when there is one. */
  readonly target: string | undefined;
  readonly context: RequestContext;
}

/** What a transport calls. The one implementation is `FrontDoor` (front-door.ts). */
export interface InferGateway {
  /**
   * Runs one call through admission, the stages and the core. Resolves with the response
   * (its `id` already echoes the request's) or rejects with a TensorwireError whose code the
   * transport maps to its wire (lib/errors.ts).
   */
  infer(call: InferCall): Promise<InferResponse>;
  /**
   * A request for `model` (and `version`, when named) that the transport could not decode:
   * counted as a failure of the version that would have served it (when there is one) with
   * the error's code as the reason. Never throws.
   */
  refused(model: string | undefined, error: unknown, context: RequestContext, version?: string): void;
  /** Runs a control action after admission and authorization (and audits it). */
  control<T>(call: ControlCall, run: () => T | Promise<T>): Promise<T>;
  /** Records a management action the transport refused before calling `control` (audit). */
  controlRefused?(call: ControlCall, error: TensorwireError): void;
}
