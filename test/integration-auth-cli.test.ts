/**
 * `tensorwire serve` enforces its security flags (lib/cli.ts passes the setup to
 * createTensorwire): without --auth the loopback defaults (Host allow-list, JSON-only
 * management), with --auth keys made by `tensorwire auth add-key`, audit lines on stdout.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUpClis, slowRepository, spawnCli } from './helpers/cli-process';
import { tempDir } from './helpers/engine-run';
import { raw } from './helpers/auth-client';

const ROOT = join(__dirname, '..');
afterEach(cleanUpClis);

/** `tensorwire auth add-key`, as an operator runs it: the key is the last line of stdout. */
function addKeyCli(file: string, name: string, scopes: string): string {
  const out = execFileSync(process.execPath, ['-r', join(ROOT, 'test/helpers/ts-require.cjs'), join(ROOT, 'lib/cli.ts'), 'auth', 'add-key', '--file', file, '--name', name, '--scopes', scopes], { cwd: ROOT, encoding: 'utf8' });
  return out.trim().split('\n').pop()!;
}

describe('tensorwire serve', () => {
  it('applies the loopback defaults without --auth', async () => {
    const cli = await spawnCli(await slowRepository(1, { layers: 1, width: 4 }));
    expect((await raw(cli.base, 'GET', '/v2/models/m')).status).toBe(200);
    expect((await raw(cli.base, 'GET', '/v2/models/m', { host: 'rebound.example' })).status).toBe(403);
    const plain = await raw(cli.base, 'POST', '/v2/repository/models/m/unload', { 'content-type': 'text/plain' }, '{}');
    expect(plain.status).toBe(400);
    expect(plain.json.error).toMatch(/application\/json/);
  }, 60_000);

  it('requires keys made by `tensorwire auth add-key` with --auth, and audits management on stdout', async () => {
    const { dir, cleanup } = tempDir('tw-cli-auth-');
    try {
      const file = join(dir, 'auth.json');
      const reader = addKeyCli(file, 'reader', 'infer,monitor');
      expect(reader).toMatch(/^tw_[A-Za-z0-9_-]{43}$/);
      const cli = await spawnCli(await slowRepository(1, { layers: 1, width: 4 }), ['--auth', file]);
      expect((await raw(cli.base, 'GET', '/v2/models/m')).status).toBe(401);
      expect((await raw(cli.base, 'GET', '/v2/models/m', { authorization: `Bearer ${reader}` })).status).toBe(200);
      const refused = await raw(cli.base, 'POST', '/v2/repository/models/m/unload', { authorization: `Bearer ${reader}`, 'content-type': 'application/json' }, '{}');
      expect(refused.status).toBe(403);
      await new Promise((r) => setTimeout(r, 100));
      const line = cli.output.find((l) => l.includes('"audit":true') && l.includes('repository.unload'));
      expect(line, cli.output.join('\n')).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ principal: 'reader', action: 'repository.unload', target: 'm', result: 'FORBIDDEN' });
      expect(cli.output.join('\n')).not.toContain(reader);
      const metrics = await raw(cli.base, 'GET', '/metrics', { authorization: `Bearer ${reader}` });
      expect(metrics.text).toMatch(/tensorwire_audit_events_total\{action="repository.unload",result="FORBIDDEN"\} 1/);
    } finally {
      cleanup();
    }
  }, 60_000);
});
