/**
 * Live batching configuration of a serving model (tensorwire's extension; docs/lifecycle.md):
 *
 *   GET  /v2/models/{m}/batching   the settings in force
 *   POST /v2/models/{m}/batching   {"max_queue_delay_microseconds": 500, "preferred_batch_size": [8],
 *                                   "default_queue_policy": {"max_queue_size": 256, ...},
 *                                   "priority_levels": 2, "default_priority_level": 2,
 *                                   "priority_queue_policy": {"1": {...}}, "instance_count": 2}
 *
 * Every field is optional. Batching fields apply at once to every serving version, without a
 * reload; a new instance_count loads the same files with that many instances beside the
 * serving version and swaps to it (no downtime). The answer is the settings in force, after
 * the swap when there was one. Validation is the core's (the message names the field).
 */
import { TensorwireError } from '../errors';
import type { BatchingChange } from '../core/types';
import { truncateForMessage } from '../util/message-text';
import { parseJsonBody, type RouteSpec } from './router';

function unsupported(): TensorwireError {
  return new TensorwireError('NOT_FOUND', 'this server core does not support live batching changes');
}

/** GET and POST /v2/models/{m}/batching. */
export const batchingRoutes: RouteSpec[] = [
  {
    method: 'get',
    pattern: '/v2/models/:model/batching',
    control: { action: 'batching.read' },
    handler: (x, ctx) => {
      if (!ctx.service.batchingSettings) throw unsupported();
      x.sendJson(200, ctx.service.batchingSettings(x.params[0]!));
    },
  },
  {
    method: 'post',
    pattern: '/v2/models/:model/batching',
    headers: ['content-length'],
    control: { action: 'batching.update' },
    handler: async (x, ctx) => {
      const model = x.params[0]!;
      // readBody must be called before the first await (uWS delivers data only to a handler attached synchronously).
      const body = await x.readBody(ctx.maxBodyBytes);
      if (!ctx.service.updateBatching) throw unsupported();
      const where = `batching change of model '${truncateForMessage(model)}'`;
      const change = parseJsonBody(body, where);
      if (change === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: the body is empty; send a JSON object such as {"max_queue_delay_microseconds": 500}`);
      x.sendJson(200, await ctx.service.updateBatching(model, change as BatchingChange));
    },
  },
];
