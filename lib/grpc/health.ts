/**
 * grpc.health.v1.Health, for load balancers and Kubernetes gRPC probes. The service "" and
 * "inference.GRPCInferenceService" report the server's readiness (NOT_SERVING from the moment
 * a graceful shutdown begins); any other name is taken as a model name and reports that
 * model's readiness; an unknown one is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch), as the
 * health protocol says.
 *
 * Watch sends the status at once and then each change, checking once a second: readiness is
 * cheap to read, and a probe needs no finer grain.
 */
import * as grpc from '@grpc/grpc-js';
import { isTensorwireError } from '../errors';
import type { GrpcContext } from './grpc-context';
import { checkDecoded } from './malformed';
import { statusDetails, toServiceError } from './status';

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** The service name of the whole server, besides "". */
export const INFERENCE_SERVICE_NAME = 'inference.GRPCInferenceService';

/** How often Watch re-reads the status. */
export const WATCH_INTERVAL_MS = 1000;

/** Longest service name accepted (a model name; client text). */
const MAX_SERVICE_NAME = 256;

function statusOf(ctx: GrpcContext, service: string): ServingStatus {
  if (service === '' || service === INFERENCE_SERVICE_NAME) return !ctx.draining && ctx.service.isReady() ? 'SERVING' : 'NOT_SERVING';
  if (service.length > MAX_SERVICE_NAME) return 'SERVICE_UNKNOWN';
  try {
    return !ctx.draining && ctx.service.modelReadiness(service).ready ? 'SERVING' : 'NOT_SERVING';
  } catch (e) {
    if (isTensorwireError(e) && e.code === 'NOT_FOUND') return 'SERVICE_UNKNOWN';
    return 'NOT_SERVING';
  }
}

/** An open Watch, for shutdown. */
export interface HealthWatches {
  /** Ends every open Watch (status OK) and stops their timers. */
  endAll(): void;
}

/** The implementation of grpc.health.v1.Health, and a handle on its open watches. */
export function healthService(ctx: GrpcContext): { implementation: grpc.UntypedServiceImplementation; watches: HealthWatches } {
  const open = new Set<() => void>();
  const implementation: grpc.UntypedServiceImplementation = {
    Check: ((call: grpc.ServerUnaryCall<{ service?: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      try {
        checkDecoded(call.request);
      } catch (e) {
        callback(toServiceError(e));
        return;
      }
      const service = call.request.service ?? '';
      const status = statusOf(ctx, service);
      if (status === 'SERVICE_UNKNOWN') callback({ code: grpc.status.NOT_FOUND, details: statusDetails(`unknown service '${service.slice(0, 64)}'`) });
      else callback(null, { status });
    }) as grpc.handleUnaryCall<unknown, unknown>,
    Watch: ((call: grpc.ServerWritableStream<{ service?: string }, unknown>) => {
      try {
        checkDecoded(call.request);
      } catch (e) {
        call.emit('error', toServiceError(e));
        return;
      }
      const service = call.request.service ?? '';
      let last: ServingStatus | undefined;
      const send = (): void => {
        const status = statusOf(ctx, service);
        if (status !== last) {
          last = status;
          call.write({ status });
        }
      };
      const timer = setInterval(send, WATCH_INTERVAL_MS);
      const stop = (): void => {
        clearInterval(timer);
        open.delete(stop);
      };
      const end = (): void => {
        stop();
        call.end();
      };
      open.add(end);
      call.on('cancelled', stop);
      call.on('error', stop);
      send();
    }) as grpc.handleServerStreamingCall<unknown, unknown>,
  };
  return { implementation, watches: { endAll: () => [...open].forEach((end) => end()) } };
}
