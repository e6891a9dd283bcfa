/**
 * Triton's logging extension (docs/protocol.md "Logging"):
 *
 *   GET  /v2/logging   {"log_file": "", "log_info": true, "log_warnings": true, "log_errors": true,
 *                       "log_verbose_level": 0, "log_format": "default"}
 *   POST /v2/logging   the settings to change; answers all of them afterwards
 */
import { parseJsonBody, type RouteSpec } from './router';
import type { ServerLog } from './server-log';

/** GET and POST /v2/logging over `log`. */
export function loggingRoutes(log: ServerLog): RouteSpec[] {
  return [
    {
      method: 'get',
      pattern: '/v2/logging',
      control: { action: 'logging.read' },
      handler: (x) => {
        x.sendJson(200, log.settings);
      },
    },
    {
      method: 'post',
      pattern: '/v2/logging',
      headers: ['content-length'],
      control: { action: 'logging.update' },
      handler: async (x, ctx) => {
        const body = await x.readBody(ctx.maxBodyBytes);
        x.sendJson(200, log.update(parseJsonBody(body, 'log settings')));
      },
    },
  ];
}
