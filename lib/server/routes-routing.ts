/**
 * Live traffic policy of a model (tensorwire's extension; docs/routing.md):
 *
 *   GET  /v2/models/{m}/routing   {"policy": {...} | null, "live": {"split", "state", "events", "window"}}
 *   POST /v2/models/{m}/routing   a whole policy: {"weights": {"2": 95, "3": 5}, "route_key": "header:x-tensorwire-route-key",
 *                                 "labels": {...}, "shadow": {...}, "fallback": "2", "guard": {...}}
 *   POST /v2/models/{m}/feedback  {"id": "<request id>", "reward": 0..1}: a reward for the bandit (lib/routing/bandit.ts)
 *
 * A POST replaces the policy in force (absent fields are off) and answers once every version
 * it names serves; a version that does not exist or failed to load is a 400 naming it, and
 * the previous policy stays. Validation is lib/repository/config-routing.ts's (the message
 * names the field).
 */
import { TensorwireError } from '../errors';
import { CONFIG_LIMITS } from '../repository/config-limits';
import type { RoutingTable } from '../routing/routing-table';
import { truncateForMessage } from '../util/message-text';
import { parseJsonBody, type RouteSpec } from './router';
import { inferAt, INFER_HEADERS } from './routes-models';

/** Largest feedback body read: an id of 256 characters and a number fit many times over. */
const FEEDBACK_BODY_BYTES = 4096;

/** GET and POST /v2/models/{m}/routing over `table`, and inference by version label. */
export function routingRoutes(table: RoutingTable): RouteSpec[] {
  return [
    {
      // Triton's version labels in the URL: the label resolves to its version, then it is an infer.
      method: 'post',
      pattern: '/v2/models/:model/labels/:label/infer',
      headers: INFER_HEADERS,
      handler: (x, ctx) => inferAt(x, ctx, [x.params[0]!, table.resolveLabel(x.params[0]!, x.params[1]!)]),
    },
    {
      method: 'get',
      pattern: '/v2/models/:model/routing',
      control: { action: 'routing.read' },
      handler: (x) => {
        x.sendJson(200, table.read(x.params[0]!));
      },
    },
    {
      method: 'post',
      pattern: '/v2/models/:model/routing',
      headers: ['content-length'],
      control: { action: 'routing.update' },
      handler: async (x, ctx) => {
        const model = x.params[0]!;
        // readBody must be called before the first await (uWS delivers data only to a handler attached synchronously).
        const body = await x.readBody(Math.min(ctx.maxBodyBytes, CONFIG_LIMITS.configBytes));
        const where = `routing policy of model '${truncateForMessage(model)}'`;
        const policy = parseJsonBody(body, where);
        if (policy === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: the body is empty; send a JSON object such as {"weights": {"1": 100}} ({} turns routing off)`);
        x.sendJson(200, await table.update(model, policy));
      },
    },
    {
      // A reward for the bandit (docs/routing.md, "Bandit"): high-frequency, so not an audited control action.
      method: 'post',
      pattern: '/v2/models/:model/feedback',
      headers: ['content-length'],
      handler: async (x, ctx) => {
        const model = x.params[0]!;
        const body = await x.readBody(Math.min(ctx.maxBodyBytes, FEEDBACK_BODY_BYTES));
        const where = `feedback for model '${truncateForMessage(model)}'`;
        const parsed = parseJsonBody(body, where);
        if (parsed === undefined) throw new TensorwireError('INVALID_INPUT', `${where}: the body is empty; send {"id": "<request id>", "reward": <0..1>}`);
        x.sendJson(200, table.feedback(model, parsed));
      },
    },
  ];
}
