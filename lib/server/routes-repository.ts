/**
 * The KServe/Triton model repository extension: index, load, unload.
 *
 * State names on the wire are Triton's (READY, LOADING, UNLOADING, UNAVAILABLE): clients such
 * as tritonclient compare against them. tensorwire's finer states map onto them: warming is
 * still LOADING, draining is already UNLOADING, failed is UNAVAILABLE with the failure as
 * the reason.
 */
import type { RepositoryIndexEntry, VersionState } from '../core/types';
import { TensorwireError } from '../errors';
import { readLoadParameters } from '../repository/upload-parameters';
import type { ModelUploads } from './model-uploads';
import { previewValue, truncateForMessage } from '../util/message-text';
import { parseJsonBody, type RouteSpec } from './router';

const WIRE_STATE: Record<VersionState, string> = {
  loading: 'LOADING',
  warming: 'LOADING',
  ready: 'READY',
  draining: 'UNLOADING',
  unloading: 'UNLOADING',
  unavailable: 'UNAVAILABLE',
  failed: 'UNAVAILABLE',
};

/** One entry of the index as Triton sends it. */
export function wireIndexEntry(entry: RepositoryIndexEntry): { name: string; version: string; state: string; reason: string } {
  return { name: entry.name, version: entry.version, state: WIRE_STATE[entry.state] ?? entry.state.toUpperCase(), reason: entry.reason };
}

/** Reads `{"ready": bool}` (optional) from POST /v2/repository/index. */
function readyOnlyFlag(body: unknown): boolean {
  if (body === undefined) return false;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TensorwireError('INVALID_INPUT', `repository index request: expected a JSON object like {"ready": true}, got ${previewValue(body)}`);
  }
  const ready = (body as { ready?: unknown }).ready;
  if (ready === undefined) return false;
  if (typeof ready !== 'boolean') throw new TensorwireError('INVALID_INPUT', `repository index request: "ready" must be a boolean, got ${previewValue(ready)}`);
  return ready;
}

/**
 * Reads the optional load parameters without files. Triton's form: `{"parameters": {"config":
 * "<model config as a JSON string>"}}`. File overrides (`file:<path>` parameters) are refused
 * here rather than ignored: transports that take uploads go through ModelUploads.
 */
export function loadConfig(model: string, body: unknown): Record<string, unknown> | undefined {
  return readLoadParameters(model, body, 'unsupported').config;
}

/**
 * POST /v2/repository/index, /v2/repository/models/{m}/load and /unload. With `uploads`, loads
 * may carry model files (`file:` parameters, when uploads are allowed) and the model's upload
 * directory goes with its unload.
 */
export function repositoryRoutesWith(uploads: ModelUploads | undefined): RouteSpec[] {
  return [
  {
    method: 'post',
    pattern: '/v2/repository/index',
    headers: ['content-length'],
    control: { action: 'repository.index' },
    handler: async (x, ctx) => {
      const body = await x.readBody(ctx.maxBodyBytes);
      const readyOnly = readyOnlyFlag(parseJsonBody(body, 'repository index request'));
      const index = ctx.service.scanRepositoryIndex ? await ctx.service.scanRepositoryIndex(readyOnly) : ctx.service.repositoryIndex(readyOnly);
      x.sendJson(200, index.map(wireIndexEntry));
    },
  },
  {
    method: 'post',
    pattern: '/v2/repository/models/:model/load',
    headers: ['content-length'],
    control: { action: 'repository.load' },
    handler: async (x, ctx) => {
      const model = x.params[0]!;
      const body = await x.readBody(ctx.maxBodyBytes);
      if (uploads !== undefined) await uploads.load(ctx.service, model, body);
      else await ctx.service.loadModel(model, loadConfig(model, parseJsonBody(body, `load request for model '${truncateForMessage(model)}'`)));
      x.send(200);
    },
  },
  {
    method: 'post',
    pattern: '/v2/repository/models/:model/unload',
    headers: ['content-length'],
    control: { action: 'repository.unload' },
    handler: async (x, ctx) => {
      const model = x.params[0]!;
      // Triton accepts {"parameters": {"unload_dependents": bool}}; there are no dependents here.
      parseJsonBody(await x.readBody(ctx.maxBodyBytes), `unload request for model '${truncateForMessage(model)}'`);
      if (uploads !== undefined) await uploads.unload(ctx.service, model);
      else await ctx.service.unloadModel(model);
      x.send(200);
    },
  },
];
}

/** The repository routes without uploads (`file:` parameters are refused with 403). */
export const repositoryRoutes: RouteSpec[] = repositoryRoutesWith(undefined);
