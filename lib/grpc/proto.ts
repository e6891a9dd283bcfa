/**
 * The gRPC service definitions, loaded once from the package's proto/ directory (the
 * KServe v2 / Triton `inference` package and grpc.health.v1). Loaded at run time rather than
 * generated: the .proto files are the contract, and a client generated from the same files
 * (any language) talks to the server unchanged.
 *
 * Loader options, chosen for the hot path and for exactness:
 * - keepCase: field names as the protocol spells them (`raw_input_contents`).
 * - longs: String: int64/uint64 values (shapes, INT64/UINT64 contents, parameters) arrive as
 *   decimal strings, exact beyond 2^53; the codecs convert them once.
 * - bytes are left as Buffers: protobufjs decodes `bytes` fields as views of the received
 *   message, so a raw input tensor reaches the scheduler without a copy.
 * - arrays/objects: repeated and map fields are always present (empty when absent).
 * - oneofs: a parameter says which of its fields is set (`parameter_choice`).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Options for @grpc/proto-loader, shared by the server and the clients tests and the bench build. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
});

/** The .proto files, relative to the proto directory. */
export const PROTO_FILES = ['grpc_service.proto', 'health.proto'] as const;

let protoDir: string | undefined;

/** The package's proto/ directory, found by walking up from this file (lib/grpc or dist/lib/grpc). */
export function protoDirectory(): string {
  if (protoDir !== undefined) return protoDir;
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'proto', 'grpc_service.proto'))) return (protoDir = join(dir, 'proto'));
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('tensorwire: proto/grpc_service.proto not found next to the package; reinstall tensorwire');
}

/** Service definitions of the two packages, as grpc-js serves or calls them. */
export interface LoadedProtos {
  /** `inference.GRPCInferenceService`. */
  inference: grpc.ServiceDefinition;
  /** `grpc.health.v1.Health`. */
  health: grpc.ServiceDefinition;
  /** Client constructors of the same definitions (tests, bench). */
  clients: {
    Inference: grpc.ServiceClientConstructor;
    Health: grpc.ServiceClientConstructor;
  };
}

let loaded: LoadedProtos | undefined;

/** Loads (once) and returns the service definitions. Synchronous: the files are small and read at start. */
export function loadProtos(): LoadedProtos {
  if (loaded !== undefined) return loaded;
  const definition = protoLoader.loadSync([...PROTO_FILES], { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDirectory()] });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    inference: { GRPCInferenceService: grpc.ServiceClientConstructor };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const Inference = root.inference.GRPCInferenceService;
  const Health = root.grpc.health.v1.Health;
  loaded = { inference: Inference.service, health: Health.service, clients: { Inference, Health } };
  return loaded;
}
