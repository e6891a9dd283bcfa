/**
 * The server process of bench/auth-serve.ts: createTensorwire over `--repo` with one
 * security mode, printing `listening <port>` once it serves.
 *
 *   none     no `security` option: nothing checked, nothing copied (an embedding's choice)
 *   default  `security: {}`: what `tensorwire serve` runs without flags (loopback principal,
 *            Host allow-list, JSON-only management)
 *   keys     `--auth FILE`: API keys required
 *   tls      `security: { tls }`: the default mode over HTTPS
 */
import { parseArgs } from 'node:util';
import { createTensorwire } from '../lib/tensorwire';
import type { SecurityOptions } from '../lib/auth/serve-flags';

const { values } = parseArgs({ options: { repo: { type: 'string' }, mode: { type: 'string' }, auth: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' } } });

async function main(): Promise<void> {
  let security: SecurityOptions | undefined;
  switch (values.mode) {
    case 'none':
      break;
    case 'default':
      security = {};
      break;
    case 'keys':
      security = { authFile: values.auth! };
      break;
    case 'tls':
      security = { tls: { cert: values.cert!, key: values.key! } };
      break;
    default:
      throw new Error(`unknown --mode ${values.mode}`);
  }
  const tw = await createTensorwire({ repository: values.repo!, port: 0, modelControl: 'none', log: () => undefined, ...(security ? { security } : {}) });
  process.on('SIGTERM', () => void tw.close().then(() => process.exit(0)));
  console.log(`listening ${tw.server.port}`);
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
