/**
 * The gRPC front end's defaults, in a module of their own so the CLI and the options can name
 * them without loading @grpc/grpc-js (which loads only when a gRPC server starts).
 */

/** Triton's gRPC port: `tensorwire serve`'s default `--grpc-port`. */
export const DEFAULT_GRPC_PORT = 8001;
