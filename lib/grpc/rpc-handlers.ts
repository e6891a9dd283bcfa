/**
 * The unary RPCs of GRPCInferenceService other than inference: health, metadata,
 * configuration, statistics and the repository extension, each the gRPC form of the HTTP
 * route that answers the same question (lib/server/routes-*.ts), with the same errors.
 * The shared-memory, trace and log RPCs answer UNIMPLEMENTED: the HTTP API has none either.
 */
import * as grpc from '@grpc/grpc-js';
import { TensorwireError } from '../errors';
import type { ControlCall } from '../frontdoor/types';
import { loadConfig, wireIndexEntry } from '../server/routes-repository';
import { serverMetadata } from '../server/server-info';
import { callContext, selectedMetadata } from './call-context';
import type { GrpcContext } from './grpc-context';
import { clip } from './infer-codec';
import { checkDecoded } from './malformed';
import { modelInfer } from './model-infer';
import { shuttingDown, statusDetails, toServiceError } from './status';
import { modelStreamInfer } from './stream-infer';
import type { WireIndexRequest, WireModelRequest, WireRepositoryParameter, WireRepositoryRequest } from './wire-types';

type Unary = (request: never, call: grpc.ServerUnaryCall<unknown, unknown>) => unknown;

/**
 * A unary handler from a function that returns (or resolves with) the response or throws a
 * TensorwireError. Asynchronous ones (repository actions) count as in flight, so a graceful
 * shutdown waits for them as it does for HTTP's.
 */
function unary(ctx: GrpcContext, fn: Unary): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    let result: unknown;
    try {
      checkDecoded(call.request);
      result = fn(call.request as never, call);
    } catch (e) {
      callback(toServiceError(e));
      return;
    }
    if (result instanceof Promise) {
      ctx.inflight.enter();
      result.then(
        (r) => {
          ctx.inflight.leave();
          callback(null, r);
        },
        (e: unknown) => {
          ctx.inflight.leave();
          callback(toServiceError(e));
        },
      );
    } else callback(null, result);
  };
}

/** The model and optional version of a request ('' means none, as proto3 cannot tell absent from empty). */
function target(request: WireModelRequest): [string, string | undefined] {
  const name = request.name ?? '';
  if (name === '') throw new TensorwireError('INVALID_INPUT', "'name' is required");
  return [name, request.version || undefined];
}

/** tensorwire serves one repository: the only repository name it knows is the empty one. */
function checkRepositoryName(name: string | undefined): void {
  if (name !== undefined && name !== '') {
    throw new TensorwireError('NOT_FOUND', `unknown repository '${clip(name)}': tensorwire serves one repository; leave repository_name empty`);
  }
}

/** A repository parameter as the JSON value HTTP's load body would carry. */
function repositoryParameterValue(p: WireRepositoryParameter): unknown {
  switch (p.parameter_choice) {
    case 'string_param':
      return p.string_param ?? '';
    case 'bool_param':
      return p.bool_param ?? false;
    case 'int64_param':
      return Number(p.int64_param ?? 0);
    case 'bytes_param':
      // File overrides (`file:<path>` with bytes) are refused by loadConfig by their name.
      return p.bytes_param;
    default:
      return undefined;
  }
}

/** Runs a repository action through the gateway (admission, authorization, audit). */
function control<T>(ctx: GrpcContext, call: grpc.ServerUnaryCall<unknown, unknown>, action: string, target: string, run: () => Promise<T>): Promise<T> {
  const controlCall: ControlCall = { action, target, context: callContext(call, selectedMetadata(call.metadata), undefined) };
  return ctx.gateway.control(controlCall, run);
}

function unimplemented(rpc: string, what: string): grpc.handleUnaryCall<unknown, unknown> {
  return (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: statusDetails(`${rpc}: ${what} is not supported by tensorwire (the HTTP API has none either)`) });
}

/** The implementation of inference.GRPCInferenceService. */
export function inferenceService(ctx: GrpcContext): grpc.UntypedServiceImplementation {
  const { service } = ctx;
  return {
    ServerLive: unary(ctx, () => ({ live: service.isLive() })),
    ServerReady: unary(ctx, () => ({ ready: !ctx.draining && service.isReady() })),
    ModelReady: unary(ctx, (request: WireModelRequest) => ({ ready: service.modelReadiness(...target(request)).ready })),
    ServerMetadata: unary(ctx, () => serverMetadata()),
    ModelMetadata: unary(ctx, (request: WireModelRequest) => service.modelMetadata(...target(request))),
    ModelConfig: unary(ctx, (request: WireModelRequest) => ({ config: service.modelConfig(...target(request)) })),
    ModelStatistics: unary(ctx, (request: WireModelRequest) => ({ model_stats: service.statistics(request.name || undefined, request.version || undefined) })),
    RepositoryIndex: unary(ctx, async (request: WireIndexRequest) => {
      checkRepositoryName(request.repository_name);
      const readyOnly = request.ready === true;
      const index = service.scanRepositoryIndex ? await service.scanRepositoryIndex(readyOnly) : service.repositoryIndex(readyOnly);
      return { models: index.map(wireIndexEntry) };
    }),
    RepositoryModelLoad: unary(ctx, (request: WireRepositoryRequest, call) => {
      checkRepositoryName(request.repository_name);
      const model = request.model_name ?? '';
      if (model === '') throw new TensorwireError('INVALID_INPUT', "'model_name' is required");
      if (ctx.draining) throw shuttingDown();
      const parameters = Object.fromEntries(Object.entries(request.parameters).map(([k, p]) => [k, repositoryParameterValue(p)]));
      const config = loadConfig(model, { parameters });
      return control(ctx, call, 'repository.load', model, async () => {
        await service.loadModel(model, config);
        return {};
      });
    }),
    RepositoryModelUnload: unary(ctx, (request: WireRepositoryRequest, call) => {
      checkRepositoryName(request.repository_name);
      const model = request.model_name ?? '';
      if (model === '') throw new TensorwireError('INVALID_INPUT', "'model_name' is required");
      // Triton's unload_dependents: there are no dependents (ensembles) to unload here.
      return control(ctx, call, 'repository.unload', model, async () => {
        await service.unloadModel(model);
        return {};
      });
    }),
    ModelInfer: modelInfer(ctx),
    ModelStreamInfer: modelStreamInfer(ctx),
    SystemSharedMemoryStatus: unimplemented('SystemSharedMemoryStatus', 'system shared memory'),
    SystemSharedMemoryRegister: unimplemented('SystemSharedMemoryRegister', 'system shared memory'),
    SystemSharedMemoryUnregister: unimplemented('SystemSharedMemoryUnregister', 'system shared memory'),
    CudaSharedMemoryStatus: unimplemented('CudaSharedMemoryStatus', 'CUDA shared memory'),
    CudaSharedMemoryRegister: unimplemented('CudaSharedMemoryRegister', 'CUDA shared memory'),
    CudaSharedMemoryUnregister: unimplemented('CudaSharedMemoryUnregister', 'CUDA shared memory'),
    TraceSetting: unimplemented('TraceSetting', 'tracing'),
    LogSettings: unimplemented('LogSettings', 'changing log settings'),
  } as grpc.UntypedServiceImplementation;
}
