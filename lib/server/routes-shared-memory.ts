/**
 * Triton's shared memory extension over HTTP (docs/protocol.md, "System shared memory"):
 *
 *   GET  /v2/systemsharedmemory[/region/{name}]/status       [{"name","key","offset","byte_size"}]
 *   POST /v2/systemsharedmemory/region/{name}/register        {"key": "/shm_key", "offset": 0, "byte_size": N}
 *   POST /v2/systemsharedmemory[/region/{name}]/unregister    (empty body; every region without a name)
 *
 * CUDA shared memory is not served yet: its status lists no region and its unregister
 * succeeds (Triton's clients call both to clean up before they start), its register says so.
 * Registering maps memory of the host into the server, so it needs the manage scope; status
 * needs monitor (lib/auth/route-scopes.ts).
 */
import { TensorwireError } from '../errors';
import type { SharedMemoryRegistry } from '../shm/region-registry';
import { previewValue, truncateForMessage } from '../util/message-text';
import { parseJsonBody, type RouteSpec } from './router';

/** A register body is three fields: anything past this is not one. */
const MAX_REGISTER_BODY_BYTES = 64 * 1024;
/** Unregister bodies are empty in Triton's protocol; a little slack for `{}`. */
const MAX_UNREGISTER_BODY_BYTES = 4 * 1024;

function registerFields(name: string, body: unknown): { key: unknown; offset: unknown; byteSize: unknown } {
  const where = `register request for system shared memory region '${truncateForMessage(name)}'`;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: expected a JSON object like {"key": "/my_shm", "offset": 0, "byte_size": 1024}, got ${previewValue(body)}`);
  }
  const fields = body as { key?: unknown; offset?: unknown; byte_size?: unknown };
  if (fields.key === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: "key" is missing`);
  if (fields.byte_size === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: "byte_size" is missing`);
  return { key: fields.key, offset: fields.offset ?? 0, byteSize: fields.byte_size };
}

/** CUDA shared memory registration's refusal (gRPC's CudaSharedMemoryRegister answers the same). */
export const cudaUnsupported = (): TensorwireError =>
  new TensorwireError('INVALID_INPUT', 'CUDA shared memory is not supported by this server yet: register system shared memory (/v2/systemsharedmemory/region/{name}/register) instead');

/** The routes of both shared memory extensions, over `registry` (the server's). */
export function sharedMemoryRoutes(registry: SharedMemoryRegistry): RouteSpec[] {
  return [
    {
      method: 'get',
      pattern: '/v2/systemsharedmemory/status',
      control: { action: 'shm.status' },
      handler: (x) => {
        x.sendJson(200, registry.status());
      },
    },
    {
      method: 'get',
      pattern: '/v2/systemsharedmemory/region/:name/status',
      control: { action: 'shm.status' },
      handler: (x) => {
        x.sendJson(200, registry.status(x.params[0]!));
      },
    },
    {
      method: 'post',
      pattern: '/v2/systemsharedmemory/region/:name/register',
      headers: ['content-length'],
      control: { action: 'shm.register' },
      handler: async (x) => {
        const name = x.params[0]!;
        // readBody must be called before the first await (uWS delivers data only to a reader attached synchronously).
        const body = await x.readBody(MAX_REGISTER_BODY_BYTES);
        const { key, offset, byteSize } = registerFields(name, parseJsonBody(body, `register request for system shared memory region '${truncateForMessage(name)}'`));
        registry.register(name, key, offset, byteSize);
        x.send(200);
      },
    },
    {
      method: 'post',
      pattern: '/v2/systemsharedmemory/region/:name/unregister',
      headers: ['content-length'],
      control: { action: 'shm.unregister' },
      handler: async (x) => {
        const name = x.params[0]!;
        await x.readBody(MAX_UNREGISTER_BODY_BYTES);
        registry.unregister(name);
        x.send(200);
      },
    },
    {
      method: 'post',
      pattern: '/v2/systemsharedmemory/unregister',
      headers: ['content-length'],
      control: { action: 'shm.unregister' },
      handler: async (x) => {
        await x.readBody(MAX_UNREGISTER_BODY_BYTES);
        registry.unregister();
        x.send(200);
      },
    },
    {
      method: 'get',
      pattern: '/v2/cudasharedmemory/status',
      control: { action: 'cudashm.status' },
      handler: (x) => {
        x.sendJson(200, []);
      },
    },
    {
      method: 'get',
      pattern: '/v2/cudasharedmemory/region/:name/status',
      control: { action: 'cudashm.status' },
      handler: (x) => {
        throw new TensorwireError('NOT_FOUND', `Unable to find cuda shared memory region: '${truncateForMessage(x.params[0]!)}'`);
      },
    },
    {
      method: 'post',
      pattern: '/v2/cudasharedmemory/region/:name/register',
      headers: ['content-length'],
      control: { action: 'cudashm.register' },
      handler: async (x) => {
        await x.readBody(MAX_REGISTER_BODY_BYTES);
        throw cudaUnsupported();
      },
    },
    {
      method: 'post',
      pattern: '/v2/cudasharedmemory/region/:name/unregister',
      headers: ['content-length'],
      control: { action: 'cudashm.unregister' },
      handler: async (x) => {
        // No CUDA region can exist: unregistering one succeeds, as Triton's for an unknown name.
        await x.readBody(MAX_UNREGISTER_BODY_BYTES);
        x.send(200);
      },
    },
    {
      method: 'post',
      pattern: '/v2/cudasharedmemory/unregister',
      headers: ['content-length'],
      control: { action: 'cudashm.unregister' },
      handler: async (x) => {
        await x.readBody(MAX_UNREGISTER_BODY_BYTES);
        x.send(200);
      },
    },
  ];
}
