/**
 * The `tensorwire` package: what `require('tensorwire')` and `import ... from 'tensorwire'`
 * give (esm/index.mjs re-exports the same names for ESM). docs/api.md describes each; anything
 * not exported here is internal and may change.
 */

// A server: one call, one handle.
export { createTensorwire, type Tensorwire, type CreateOptions } from './tensorwire';
export { OPTION_BOUNDS, type TensorwireOptions, type ProviderKind } from './tensorwire-options';

// Clients for a running server (HTTP and the WebSocket stream), typed arrays in and out.
export {
  HttpClient,
  StreamClient,
  streamUrl,
  datatypeOf,
  toFloat32,
  bytesTensorStrings,
  bytesTensorElements,
  type HttpClientOptions,
  type InferOptions,
  type InferResult,
  type InferInputs,
  type StreamClientOptions,
  type StreamInferOptions,
  type SubscribeOptions,
  type FeedPrediction,
  type Tensor,
  type TensorInput,
  type TypedArray,
} from './client';

// The gRPC front end on its own (KServe v2 / Triton GRPCInferenceService and grpc.health.v1), over a service.
export { startGrpcServer, DEFAULT_GRPC_PORT, type GrpcServerOptions, type RunningGrpcServer } from './grpc';

// The one error class and its catalogue of codes (each code maps to one HTTP status).
export { TensorwireError, ERROR_CATALOGUE, isTensorwireError, type ErrorCode } from './errors';

// The engine on its own: ONNX Runtime sessions off the event loop, without a server.
export { loadModel, engineInfo, LoadedModel, type LoadOptions, type ModelMetadata, type TensorSpec, type Datatype, type ProviderOptions } from './engine';

// Types a caller of `tw.service` meets.
export type { TensorwireService, ModelControl } from './core/service';
export type { RepositoryIndexEntry, ModelStatistics, VersionState, Readiness, BatchingChange, BatchingSettings } from './core/types';
export type { InferRequest, InferResponse } from './protocol/types';
