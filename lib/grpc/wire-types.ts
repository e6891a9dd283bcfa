/**
 * The `inference` messages tensorwire reads and writes, as @grpc/proto-loader hands them over
 * with PROTO_LOADER_OPTIONS (proto.ts): snake_case names, 64-bit integers as decimal strings,
 * bytes as Buffers, repeated and map fields always present. Only the fields tensorwire uses.
 * Outgoing messages may use numbers for 64-bit fields (protobufjs accepts both).
 */

/** One inference parameter; `parameter_choice` names the field that is set. */
export interface WireParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: string | number;
  string_param?: string;
  double_param?: number;
  uint64_param?: string | number;
}

/** Typed tensor contents: the repeated field of the tensor's datatype. */
export interface WireContents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: string[];
  uint_contents: number[];
  uint64_contents: string[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

export interface WireInferInput {
  name?: string;
  datatype?: string;
  shape: string[];
  parameters: Record<string, WireParameter>;
  contents?: WireContents;
}

export interface WireRequestedOutput {
  name?: string;
  parameters: Record<string, WireParameter>;
}

/** ModelInferRequest (also each message of ModelStreamInfer). */
export interface WireInferRequest {
  model_name?: string;
  model_version?: string;
  id?: string;
  parameters: Record<string, WireParameter>;
  inputs: WireInferInput[];
  outputs: WireRequestedOutput[];
  raw_input_contents: Buffer[];
}

export interface WireInferOutput {
  name: string;
  datatype: string;
  shape: number[];
  /** Only for an output written into shared memory: where it went. */
  parameters?: Record<string, WireParameter>;
}

/** ModelInferResponse as tensorwire writes it: every output's bytes in raw_output_contents. */
export interface WireInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, WireParameter>;
  outputs: WireInferOutput[];
  raw_output_contents: Uint8Array[];
}

/** ModelStreamInferResponse: an answer, or an error naming the request's id. */
export interface WireStreamResponse {
  error_message: string;
  infer_response?: WireInferResponse;
}

/** Requests naming a model and an optional version (ModelReady, ModelMetadata, ModelConfig, ModelStatistics). */
export interface WireModelRequest {
  name?: string;
  version?: string;
}

export interface WireRepositoryParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param';
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  bytes_param?: Buffer;
}

export interface WireRepositoryRequest {
  repository_name?: string;
  model_name?: string;
  parameters: Record<string, WireRepositoryParameter>;
}

export interface WireIndexRequest {
  repository_name?: string;
  ready?: boolean;
}
