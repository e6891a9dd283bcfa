/**
 * Triton's trace extension (docs/protocol.md "Trace"):
 *
 *   GET  /v2/trace/setting                 the global settings
 *   POST /v2/trace/setting                 {"trace_level": ["TIMESTAMPS"], "trace_rate": "100", ...}
 *   GET  /v2/models/{m}/trace/setting      the settings in force for m
 *   POST /v2/models/{m}/trace/setting      m's overrides; a field set to null falls back to the global one
 *
 * Each answers the settings in force afterwards, in Triton's shape (strings, level an array).
 * The model must be known (Triton asks the same).
 */
import { truncateForMessage } from '../util/message-text';
import { parseJsonBody, type RouteSpec, type ServerContext } from './router';
import type { TraceControl } from './trace-control';
import { readTraceChange, wireTraceSetting } from './trace-settings';

function whereOf(model: string | undefined): string {
  return model === undefined ? 'trace setting' : `trace setting of model '${truncateForMessage(model)}'`;
}

/** Throws NOT_FOUND for a model the server does not know. */
function knownModel(ctx: ServerContext, model: string): void {
  ctx.service.modelReadiness(model);
}

/** The four trace setting routes over `trace`. */
export function traceRoutes(trace: TraceControl): RouteSpec[] {
  const read: RouteSpec['handler'] = (x, ctx) => {
    const name = x.params[0];
    if (name !== undefined) knownModel(ctx, name);
    x.sendJson(200, wireTraceSetting(trace.settings.effective(name)));
  };
  const update = (global: boolean): RouteSpec['handler'] => async (x, ctx) => {
    const model = global ? undefined : x.params[0]!;
    const body = await x.readBody(ctx.maxBodyBytes);
    const where = whereOf(model);
    if (model !== undefined) knownModel(ctx, model);
    const change = readTraceChange(parseJsonBody(body, where), where, trace.hasTraceDir);
    x.sendJson(200, wireTraceSetting(trace.update(change, model, where)));
  };
  return [
    { method: 'get', pattern: '/v2/trace/setting', control: { action: 'trace.read' }, handler: read },
    { method: 'post', pattern: '/v2/trace/setting', headers: ['content-length'], control: { action: 'trace.update' }, handler: update(true) },
    { method: 'get', pattern: '/v2/models/:model/trace/setting', control: { action: 'trace.read' }, handler: read },
    { method: 'post', pattern: '/v2/models/:model/trace/setting', headers: ['content-length'], control: { action: 'trace.update' }, handler: update(false) },
  ];
}
