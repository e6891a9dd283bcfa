/**
 * A real tensorwire server with its gRPC front end for integration tests: a temporary model
 * repository (server-harness.ts's writer), started by createTensorwire with `grpcPort: 0`
 * (the wiring `tensorwire serve` uses), and clients built by @grpc/proto-loader from the same
 * .proto files a user's client would be generated from. Nothing is mocked.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../lib/grpc/proto';
import type { ModelControl } from '../../lib/core/service';
import { createTensorwire, type Tensorwire } from '../../lib/tensorwire';
import type { TensorwireOptions } from '../../lib/tensorwire-options';
import { tempDir } from './engine-run';
import { writeHarnessModel, type HarnessModel } from './server-harness';

export interface GrpcHarnessOptions {
  models: HarnessModel[];
  modelControl?: ModelControl;
  loadModels?: string[];
  maxBodyBytes?: number;
  streamMaxInflight?: number;
  drainTimeoutMs?: number;
  /** createTensorwire's `traceDir` (trace files may be named only then). */
  traceDir?: string;
  /** createTensorwire's `security` (an auth file, TLS). */
  security?: TensorwireOptions['security'];
}

export interface GrpcHarness {
  readonly tw: Tensorwire;
  /** host:port of the gRPC server. */
  readonly address: string;
  readonly repo: string;
  /** A GRPCInferenceService client (one channel). */
  readonly client: grpc.Client;
  /** A grpc.health.v1.Health client. */
  readonly health: grpc.Client;
  /** A new client on its own channel (closed by close()). */
  newClient(): grpc.Client;
  /** Closes the clients, the server (no drain: tests end with requests queued on purpose), the core, and removes the repository. */
  close(): Promise<void>;
}

export async function startGrpcHarness(options: GrpcHarnessOptions): Promise<GrpcHarness> {
  const { dir: repo, cleanup } = tempDir('tw-grpc-');
  try {
    for (const model of options.models) await writeHarnessModel(repo, model);
    const tw = await createTensorwire({
      repository: repo,
      port: 0,
      grpcPort: 0,
      modelControl: options.modelControl ?? 'none',
      loadModels: options.loadModels ?? [],
      versionDrainMs: 2000,
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      ...(options.streamMaxInflight !== undefined ? { streamMaxInflight: options.streamMaxInflight } : {}),
      ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}),
      ...(options.traceDir !== undefined ? { traceDir: options.traceDir } : {}),
      ...(options.security !== undefined ? { security: options.security } : {}),
      log: () => undefined,
    });
    const address = tw.grpc!.address;
    const { Inference, Health } = loadProtos().clients;
    const clients: grpc.Client[] = [];
    const newClient = (): grpc.Client => {
      const c = new Inference(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
      clients.push(c);
      return c;
    };
    const client = newClient();
    const health = new Health(address, grpc.credentials.createInsecure());
    clients.push(health);
    let closed: Promise<void> | undefined;
    return {
      tw,
      address,
      repo,
      client,
      health,
      newClient,
      close() {
        closed ??= (async () => {
          for (const c of clients) c.close();
          await Promise.all([tw.server.close(), tw.grpc!.close(1000)]);
          await tw.service.shutdown();
          cleanup();
        })();
        return closed;
      },
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** A failed call's status, details and tensorwire error code (trailing metadata). */
export interface CallFailure {
  code: grpc.status;
  details: string;
  errorCode: string | undefined;
}

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: unknown) => void) => grpc.ClientUnaryCall;

/** Calls unary `method` on `client`; resolves with the response, rejects with the ServiceError. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a response of any shape; each test asserts the fields it reads
export function unary<T = any>(client: grpc.Client, method: string, request: unknown, options: grpc.CallOptions = {}, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as Record<string, UnaryMethod>)[method]!;
    call.call(client, request, metadata, options, (error, response) => (error ? reject(error) : resolve(response as T)));
  });
}

/** Starts unary `method` and returns the call (to cancel it) and its outcome. */
export function startUnary(client: grpc.Client, method: string, request: unknown, options: grpc.CallOptions = {}): { call: grpc.ClientUnaryCall; done: Promise<unknown> } {
  let call!: grpc.ClientUnaryCall;
  const done = new Promise((resolve, reject) => {
    call = (client as unknown as Record<string, UnaryMethod>)[method]!.call(client, request, new grpc.Metadata(), options, (error, response) => (error ? reject(error) : resolve(response)));
  });
  return { call, done };
}

/** Opens a ModelStreamInfer stream. */
export function openStream(client: grpc.Client, options: grpc.CallOptions = {}): grpc.ClientDuplexStream<unknown, StreamAnswer> {
  return (client as unknown as { ModelStreamInfer(m: grpc.Metadata, o: grpc.CallOptions): grpc.ClientDuplexStream<unknown, StreamAnswer> }).ModelStreamInfer(new grpc.Metadata(), options);
}

/** One ModelStreamInferResponse as the client reads it. */
export interface StreamAnswer {
  error_message: string;
  infer_response: { id: string; model_name: string; outputs: { name: string; shape: string[] }[]; raw_output_contents: Buffer[]; parameters: Record<string, { string_param?: string }> };
}

/** Calls unary `method` expecting a failure; resolves with its status (fails the test if the call succeeds). */
export async function failure(client: grpc.Client, method: string, request: unknown, options: grpc.CallOptions = {}): Promise<CallFailure> {
  try {
    await unary(client, method, request, options);
  } catch (e) {
    const error = e as grpc.ServiceError;
    const code = error.metadata?.get('tensorwire-error-code')[0];
    return { code: error.code, details: error.details, errorCode: typeof code === 'string' ? code : undefined };
  }
  throw new Error(`${method} succeeded; expected it to fail`);
}

/** The bytes of a Float32Array as a Buffer (raw_input_contents). */
export function rawOf(values: ArrayBufferView): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** Float32 values of a raw output (copied, so alignment does not matter). */
export function floatsOf(bytes: Uint8Array): Float32Array {
  return new Float32Array(Uint8Array.from(bytes).buffer);
}

/** A ModelInferRequest of one FP32 input given as raw bytes. */
export function rawFp32Request(model: string, input: string, shape: number[], values: Float32Array, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model_name: model, inputs: [{ name: input, datatype: 'FP32', shape }], raw_input_contents: [rawOf(values)], ...extra };
}
