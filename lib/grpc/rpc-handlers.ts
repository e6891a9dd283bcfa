/**
 * The unary RPCs of GRPCInferenceService other than inference: health, metadata,
 * configuration, statistics, the repository, shared memory, trace and logging extensions,
 * each the gRPC form of the HTTP route that answers the same question (lib/server/routes-*.ts),
 * with the same scope (rpc-access.ts), the same control action and the same errors.
 */
import * as grpc from '@grpc/grpc-js';
import { TensorwireError } from '../errors';
import type { ControlCall, RequestContext } from '../frontdoor/types';
import { loadConfig, wireIndexEntry } from '../server/routes-repository';
import { serverMetadata } from '../server/server-info';
import type { GrpcRpc } from '../auth/route-scopes';
import { admitRpc, type AdmittedRpc, type RpcFacts } from './rpc-access';
import { cudaRegister, cudaStatus, systemRegister, systemStatus, systemUnregister, type WireRegionRequest, type WireSharedMemoryRegister } from './shared-memory-rpcs';
import { changesSettings, logSettings, traceSetting, type WireLogSettingsRequest, type WireTraceSettingRequest } from './settings-rpcs';
import type { GrpcContext } from './grpc-context';
import { clip } from './infer-codec';
import { checkDecoded } from './malformed';
import { modelInfer } from './model-infer';
import { shuttingDown, statusDetails, toServiceError } from './status';
import { modelStreamInfer } from './stream-infer';
import type { WireIndexRequest, WireModelRequest, WireRepositoryParameter, WireRepositoryRequest } from './wire-types';

type Unary = (request: never, call: grpc.ServerUnaryCall<unknown, unknown>, context: RequestContext) => unknown;

/**
 * A unary handler of `rpc` from a function that returns (or resolves with) the response or
 * throws a TensorwireError. The call is admitted first (rpc-access.ts: what the HTTP route
 * answering the same question needs; `facts` says what of the request the check reads).
 * Asynchronous ones (repository actions, a first-seen JWT) count as in flight, so a graceful
 * shutdown waits for them as it does for HTTP's.
 */
function unary(ctx: GrpcContext, rpc: GrpcRpc, fn: Unary, facts: (request: never) => RpcFacts = () => NO_FACTS): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    let result: unknown;
    try {
      checkDecoded(call.request);
      const admission = admitRpc(ctx, call, rpc, facts(call.request as never));
      result = admission instanceof Promise ? admission.then((a) => settle(a, () => fn(call.request as never, call, a.context))) : settle(admission, () => fn(call.request as never, call, admission.context));
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

const NO_FACTS: RpcFacts = Object.freeze({});

/** Runs `run` for an admitted call and frees its place (per-principal concurrency) once it settled. */
function settle(admitted: AdmittedRpc, run: () => unknown): unknown {
  let result: unknown;
  try {
    result = run();
  } catch (e) {
    admitted.release();
    throw e;
  }
  if (result instanceof Promise) return result.finally(admitted.release);
  admitted.release();
  return result;
}

/** The model and optional version of a request ('' means none, as proto3 cannot tell absent from empty). */
function target(request: WireModelRequest): [string, string | undefined] {
  const name = request.name ?? '';
  if (name === '') throw new TensorwireError('INVALID_INPUT', "'name' is required");
  return [name, request.version || undefined];
}

/** tensorwire serves one repository: the only repository name it knows is the empty one. */
/** The model a repository load/unload names (after checking the repository name); 400 when it names none. */
function repositoryModel(request: WireRepositoryRequest): string {
  checkRepositoryName(request.repository_name);
  const model = request.model_name ?? '';
  if (model === '') throw new TensorwireError('INVALID_INPUT', "'model_name' is required");
  return model;
}

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

/** Runs a control action of an admitted call through the gateway (draining, log, audit). */
function control<T>(ctx: GrpcContext, context: RequestContext, action: string, target: string | undefined, run: () => T | Promise<T>): Promise<T> {
  const controlCall: ControlCall = { action, target, context };
  return ctx.gateway.control(controlCall, run);
}

/** What a server started without the HTTP server's part answers (startGrpcServer on its own). */
function unimplemented(rpc: string, what: string): grpc.handleUnaryCall<unknown, unknown> {
  return (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: statusDetails(`${rpc}: this gRPC server was started without ${what} (createTensorwire gives it the HTTP server's)`) });
}

/** The model a request names, for the need of `infer-model` RPCs. */
const modelNamed = (request: WireModelRequest): RpcFacts => ({ target: request.name ?? '' });
const changing = (action: string) => (request: { settings: Record<string, unknown> }): RpcFacts => ({ changes: changesSettings(request), action: `${action}.${changesSettings(request) ? 'update' : 'read'}` });

/** The implementation of inference.GRPCInferenceService. */
export function inferenceService(ctx: GrpcContext): grpc.UntypedServiceImplementation {
  const { service } = ctx;
  return {
    ServerLive: unary(ctx, 'ServerLive', () => ({ live: service.isLive() })),
    ServerReady: unary(ctx, 'ServerReady', () => ({ ready: !ctx.draining && service.isReady() })),
    ModelReady: unary(ctx, 'ModelReady', (request: WireModelRequest) => ({ ready: service.modelReadiness(...target(request)).ready }), modelNamed),
    ServerMetadata: unary(ctx, 'ServerMetadata', () => serverMetadata()),
    ModelMetadata: unary(ctx, 'ModelMetadata', (request: WireModelRequest) => service.modelMetadata(...target(request)), modelNamed),
    ModelConfig: unary(ctx, 'ModelConfig', (request: WireModelRequest) => ({ config: service.modelConfig(...target(request)) }), modelNamed),
    ModelStatistics: unary(ctx, 'ModelStatistics', (request: WireModelRequest) => ({ model_stats: service.statistics(request.name || undefined, request.version || undefined) })),
    RepositoryIndex: unary(ctx, 'RepositoryIndex', async (request: WireIndexRequest) => {
      checkRepositoryName(request.repository_name);
      const readyOnly = request.ready === true;
      const index = service.scanRepositoryIndex ? await service.scanRepositoryIndex(readyOnly) : service.repositoryIndex(readyOnly);
      return { models: index.map(wireIndexEntry) };
    }),
    RepositoryModelLoad: unary(
      ctx,
      'RepositoryModelLoad',
      (request: WireRepositoryRequest, _call, context) => {
        const model = repositoryModel(request);
        if (ctx.draining) throw shuttingDown();
        const parameters = Object.fromEntries(Object.entries(request.parameters).map(([k, p]) => [k, repositoryParameterValue(p)]));
        const config = loadConfig(model, { parameters });
        return control(ctx, context, 'repository.load', model, async () => {
          await service.loadModel(model, config);
          return {};
        });
      },
      (request: WireRepositoryRequest) => ({ target: request.model_name, action: 'repository.load' }),
    ),
    RepositoryModelUnload: unary(
      ctx,
      'RepositoryModelUnload',
      (request: WireRepositoryRequest, _call, context) => {
        const model = repositoryModel(request);
        // Triton's unload_dependents: there are no dependents (ensembles) to unload here.
        return control(ctx, context, 'repository.unload', model, async () => {
          await service.unloadModel(model);
          return {};
        });
      },
      (request: WireRepositoryRequest) => ({ target: request.model_name, action: 'repository.unload' }),
    ),
    ModelInfer: modelInfer(ctx),
    ModelStreamInfer: modelStreamInfer(ctx),
    ...sharedMemoryHandlers(ctx),
    ...settingsHandlers(ctx),
  } as grpc.UntypedServiceImplementation;
}

/** The system and CUDA shared memory RPCs, over the HTTP server's registry. */
function sharedMemoryHandlers(ctx: GrpcContext): grpc.UntypedServiceImplementation {
  const registry = ctx.sharedMemory;
  const system = registry === undefined
    ? {
        SystemSharedMemoryStatus: unimplemented('SystemSharedMemoryStatus', 'shared memory regions'),
        SystemSharedMemoryRegister: unimplemented('SystemSharedMemoryRegister', 'shared memory regions'),
        SystemSharedMemoryUnregister: unimplemented('SystemSharedMemoryUnregister', 'shared memory regions'),
      }
    : {
        SystemSharedMemoryStatus: unary(ctx, 'SystemSharedMemoryStatus', (request: WireRegionRequest, _call, context) => control(ctx, context, 'shm.status', request.name || undefined, () => systemStatus(registry, request))),
        SystemSharedMemoryRegister: unary(
          ctx,
          'SystemSharedMemoryRegister',
          (request: WireSharedMemoryRegister, _call, context) => control(ctx, context, 'shm.register', request.name, () => systemRegister(registry, request)),
          (request: WireSharedMemoryRegister) => ({ action: 'shm.register', target: request.name }),
        ),
        SystemSharedMemoryUnregister: unary(
          ctx,
          'SystemSharedMemoryUnregister',
          (request: WireRegionRequest, _call, context) => control(ctx, context, 'shm.unregister', request.name || undefined, () => systemUnregister(registry, request)),
          (request: WireRegionRequest) => ({ action: 'shm.unregister', target: request.name || undefined }),
        ),
      };
  return {
    ...system,
    CudaSharedMemoryStatus: unary(ctx, 'CudaSharedMemoryStatus', (request: WireRegionRequest, _call, context) => control(ctx, context, 'cudashm.status', request.name || undefined, () => cudaStatus(request))),
    CudaSharedMemoryRegister: unary(ctx, 'CudaSharedMemoryRegister', (request: WireRegionRequest, _call, context) => control(ctx, context, 'cudashm.register', request.name, cudaRegister), (request: WireRegionRequest) => ({ action: 'cudashm.register', target: request.name })),
    CudaSharedMemoryUnregister: unary(ctx, 'CudaSharedMemoryUnregister', (request: WireRegionRequest, _call, context) => control(ctx, context, 'cudashm.unregister', request.name || undefined, () => ({})), (request: WireRegionRequest) => ({ action: 'cudashm.unregister', target: request.name || undefined })),
  };
}

/** TraceSetting and LogSettings, over the HTTP server's trace control and log. */
function settingsHandlers(ctx: GrpcContext): grpc.UntypedServiceImplementation {
  const { trace, log, service } = ctx;
  return {
    TraceSetting: trace === undefined
      ? unimplemented('TraceSetting', 'trace settings')
      : unary(ctx, 'TraceSetting', (request: WireTraceSettingRequest, _call, context) => control(ctx, context, changesSettings(request) ? 'trace.update' : 'trace.read', request.model_name || undefined, () => traceSetting(trace, service, request)), changing('trace')),
    LogSettings: log === undefined
      ? unimplemented('LogSettings', 'a server log')
      : unary(ctx, 'LogSettings', (request: WireLogSettingsRequest, _call, context) => control(ctx, context, changesSettings(request) ? 'logging.update' : 'logging.read', undefined, () => logSettings(log, request)), changing('logging')),
  };
}
