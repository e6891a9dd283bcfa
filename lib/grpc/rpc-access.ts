/**
 * The access check of gRPC's unary RPCs (ModelInfer and ModelStreamInfer are checked by the
 * front door's infer stage, lib/frontdoor/authorize.ts). Each RPC needs what the HTTP route
 * answering the same question needs (GRPC_RPC_ROUTES in lib/auth/route-scopes.ts), checked
 * by the HTTP server's Gate with the call's `authorization` metadata or, over mTLS, its
 * client certificate subject. A management action refused here is audited as HTTP's is.
 */
import type * as grpc from '@grpc/grpc-js';
import { toTensorwireError } from '../errors';
import { isRefusal, type Admission } from '../frontdoor/authorize';
import type { RequestContext } from '../frontdoor/types';
import { grpcRouteOf, needOf, type GrpcRpc } from '../auth/route-scopes';
import { callContext, callPeer, selectedMetadata } from './call-context';
import type { GrpcContext } from './grpc-context';

/** What the check needs to know of a request besides its RPC. */
export interface RpcFacts {
  /** The model the request names (the need of `infer-model` RPCs), or what a management action acts on (a region; audit target). */
  target?: string;
  /** TraceSetting / LogSettings: the request changes settings (else it reads them). */
  changes?: boolean;
  /** The front door action it runs, for the audit of a refusal ('repository.load'). */
  action?: string;
}

/** A call let in: its context (principal set), and what to call once it settled. */
export interface AdmittedRpc {
  readonly context: RequestContext;
  readonly release: () => void;
}

const NOTHING = (): void => undefined;

/**
 * Authenticates, authorizes and admits a unary call; resolves with its context, or throws
 * (rejects) the refusal (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED). Without
 * access control (no gate) every call is let in.
 */
export function admitRpc(ctx: GrpcContext, call: grpc.ServerUnaryCall<unknown, unknown>, rpc: GrpcRpc, facts: RpcFacts): AdmittedRpc | Promise<AdmittedRpc> {
  const context = callContext(call, selectedMetadata(call.metadata), undefined, callPeer(call, ctx.readsSubjects));
  const gate = ctx.gate;
  if (gate === undefined) return { context, release: NOTHING };
  const route = grpcRouteOf(rpc, facts.changes === true);
  const need = needOf(route.need, facts.target);
  const info = context.tlsSubject === undefined ? { address: context.address } : { address: context.address, tlsSubject: context.tlsSubject };
  const admission = gate.admit(context.headers['authorization'], info, need);
  return admission instanceof Promise ? admission.then((a) => admitted(ctx, context, a, facts)) : admitted(ctx, context, admission, facts);
}

function admitted(ctx: GrpcContext, context: RequestContext, admission: Admission, facts: RpcFacts): AdmittedRpc {
  if (isRefusal(admission)) {
    if (admission.principal !== undefined) context.principal = admission.principal;
    if (facts.action !== undefined) ctx.gateway.controlRefused?.({ action: facts.action, target: facts.target, context }, toTensorwireError(admission.refused));
    throw admission.refused;
  }
  context.principal = admission.principal;
  context.authorized = true;
  return { context, release: admission.release };
}
