/** `tensorwire auth add-key` and the startup checks of the serve security flags, as real processes. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { API_KEY_PATTERN, hashApiKey } from '../lib/auth/api-key';
import { main as authMain } from '../lib/auth/cli';
import { createSecurity } from '../lib/auth/serve-flags';
import { parseServeArgs } from '../lib/cli';
import { cleanUpClis, spawnCli } from './helpers/cli-process';

const ROOT = join(__dirname, '..');
const dirs: string[] = [];
afterEach(() => {
  cleanUpClis();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tw-auth-cli-'));
  dirs.push(d);
  return d;
}

/** Runs the CLI from the TypeScript sources; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['-r', join(ROOT, 'test/helpers/ts-require.cjs'), join(ROOT, 'lib/cli.ts'), ...args], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('tensorwire auth add-key', () => {
  it('creates the file (0600), stores the hash, and prints the key alone on the last line', async () => {
    const file = join(temp(), 'auth.json');
    const r = await cli(['auth', 'add-key', '--file', file, '--name', 'ci', '--scopes', 'infer,monitor']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const key = lines.at(-1)!;
    expect(key).toMatch(API_KEY_PATTERN);
    expect(lines.slice(0, -1).join('\n')).not.toContain(key);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ keys: [{ name: 'ci', sha256: hashApiKey(key), scopes: ['infer', 'monitor'] }] });
  });

  it('exits 1 naming the problem: duplicate name, unknown scope, missing flag', async () => {
    const file = join(temp(), 'auth.json');
    const out: string[] = [];
    const err: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((m: string) => void out.push(m));
    const error = vi.spyOn(console, 'error').mockImplementation((m: string) => void err.push(m));
    try {
      expect(authMain(['add-key', '--file', file, '--name', 'ci', '--scopes', 'infer'])).toBe(0);
      out.length = 0;
      expect(authMain(['add-key', '--file', file, '--name', 'ci', '--scopes', 'infer'])).toBe(1);
      expect(out).toEqual([]);
      expect(err.pop()).toContain("key 'ci': the name is used twice");
      expect(authMain(['add-key', '--file', file, '--name', 'x', '--scopes', 'admin'])).toBe(1);
      expect(err.pop()).toContain("unknown scope 'admin'");
      expect(authMain(['add-key', '--file', file, '--name', 'x'])).toBe(1);
      expect(err.pop()).toContain('add-key needs --file, --name and --scopes');
      expect(authMain(['remove-key'])).toBe(1);
      expect(err.pop()).toContain("unknown auth command 'remove-key'");
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  });
});

describe('tensorwire serve security flags', () => {
  it('refuses a non-loopback bind without credentials, naming --allow-unauthenticated', async () => {
    const r = await cli(['serve', '--repo', temp(), '--host', '0.0.0.0', '--port', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to serve on 0\.0\.0\.0 without authentication.*--allow-unauthenticated/);
  });

  it('serves beyond loopback with --allow-unauthenticated, warning about it', async () => {
    const served = await spawnCli(temp(), ['--host', '0.0.0.0', '--allow-unauthenticated']);
    expect(served.output.some((l) => l.startsWith('WARNING: serving on 0.0.0.0 without authentication'))).toBe(true);
  });

  it('refuses to start with a missing auth file or a weak JWT secret', async () => {
    const dir = temp();
    const missing = await cli(['serve', '--repo', dir, '--port', '0', '--auth', join(dir, 'none.json')]);
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.stderr).toContain('cannot read none.json: ENOENT');
    expect(missing.stderr).not.toContain(dir);
    expect(() => createSecurity({}, '0.0.0.0', { TENSORWIRE_JWT_SECRET: 'short' })).toThrow('TENSORWIRE_JWT_SECRET must be at least 32 bytes, got 5');
    expect(() => createSecurity({ jwtAudience: 'x' }, '127.0.0.1', {})).toThrow('--jwt-issuer and --jwt-audience need JWT verification');
    // A JWT secret counts as credentials for the bind policy.
    const ok = createSecurity({}, '0.0.0.0', { TENSORWIRE_JWT_SECRET: 'x'.repeat(32) });
    expect(ok.access.enabled).toBe(true);
    expect(ok.warnings).toEqual([]);
    ok.close();
  });

  it('parses the flags into options', () => {
    expect(parseServeArgs(['--repo', 'r'])).not.toHaveProperty('security');
    expect(parseServeArgs(['--repo', 'r', '--auth', 'a.json', '--allowed-hosts', 'a.example, b.example', '--cors-origins', '*', '--tls-cert', 'c.pem', '--tls-key', 'k.pem']).security).toEqual({
      authFile: 'a.json',
      allowedHosts: ['a.example', 'b.example'],
      corsOrigins: ['*'],
      tls: { cert: 'c.pem', key: 'k.pem' },
    });
    expect(() => parseServeArgs(['--repo', 'r', '--tls-cert', 'c.pem'])).toThrow('--tls-cert and --tls-key go together');
    expect(() => parseServeArgs(['--repo', 'r', '--allowed-origins', 'https://a.example/x'])).toThrow(/is not an origin/);
  });
});
