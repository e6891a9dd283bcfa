/**
 * The gRPC front end: KServe v2 / Triton's GRPCInferenceService and grpc.health.v1 over the
 * front door (docs/grpc.md).
 */
export {
  startGrpcServer,
  DEFAULT_GRPC_PORT,
  DEFAULT_GRPC_MAX_MESSAGE_BYTES,
  DEFAULT_GRPC_STREAM_MAX_INFLIGHT,
  DEFAULT_GRPC_MAX_CONCURRENT_STREAMS,
  type GrpcServerOptions,
  type RunningGrpcServer,
} from './server';
export { loadProtos, protoDirectory, PROTO_FILES, PROTO_LOADER_OPTIONS, type LoadedProtos } from './proto';
export { decodeInferRequest, encodeInferResponse, type DecodedInfer } from './infer-codec';
export { ERROR_CODE_METADATA, grpcStatusOf, toServiceError } from './status';
export { INFERENCE_SERVICE_NAME } from './health';
