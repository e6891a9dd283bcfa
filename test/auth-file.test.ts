/** The auth file: strict validation, add-key, and reloads (revocation within a second, broken edits kept out). */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessControl, isAuthFailure } from '../lib/auth/access-control';
import { addKey, API_KEY_PATTERN, hashApiKey } from '../lib/auth/api-key';
import { loadAuthFile, MAX_KEYS, normalizeSubject, parseAuthFile } from '../lib/auth/auth-file';
import { AuthFileWatcher } from '../lib/auth/auth-file-watcher';

const dirs: string[] = [];
const watchers: AuthFileWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempFile(name = 'auth.json'): string {
  const dir = mkdtempSync(join(tmpdir(), 'tw-auth-'));
  dirs.push(dir);
  return join(dir, name);
}

const HASH = 'a'.repeat(64);
const key = (over: Record<string, unknown> = {}) => ({ name: 'ci', sha256: HASH, scopes: ['infer'], ...over });

describe('parseAuthFile', () => {
  it('reads keys, certificate subjects and limits merged over the defaults', () => {
    const config = parseAuthFile(JSON.stringify({
      keys: [key({ limits: { requests_per_second: 5, burst: 10 } })],
      mtls: [{ subject: 'CN=batch, O=acme', name: 'batch', scopes: ['infer:resnet*', 'monitor'] }],
      defaults: { limits: { requests_per_second: 100, burst: 200, concurrent: 8 } },
    }));
    expect(config.keysByHash.get(HASH)).toMatchObject({ name: 'ci', limits: { requestsPerSecond: 5, burst: 10, concurrent: 8 } });
    expect(config.keysByHash.get(HASH)!.scopes.inferAll).toBe(true);
    expect(config.mtlsBySubject.get('CN=batch,O=acme')).toMatchObject({ name: 'batch', limits: { requestsPerSecond: 100, burst: 200, concurrent: 8 } });
    expect(config.defaultLimits).toEqual({ requestsPerSecond: 100, burst: 200, concurrent: 8 });
  });

  it('normalizes subjects in OpenSSL and Node forms alike', () => {
    expect(normalizeSubject('CN=a, O=b')).toBe('CN=a,O=b');
    expect(normalizeSubject('CN=a\nO=b')).toBe('CN=a,O=b');
  });

  it.each([
    ['not JSON', '{', /auth file: not valid JSON/],
    ['an array', '[]', /the top level must be an object, got an array/],
    ['an unknown top-level field', JSON.stringify({ key: [] }), /unknown field 'key' \(allowed: keys, mtls, defaults\)/],
    ['an unknown key field', JSON.stringify({ keys: [key({ scope: ['infer'] })] }), /keys\[0\]: unknown field 'scope'/],
    ['a bad hash', JSON.stringify({ keys: [key({ sha256: 'ABC' })] }), /key 'ci': 'sha256' must be 64 lower-case hex digits/],
    ['a raw key instead of a hash', JSON.stringify({ keys: [key({ sha256: 'tw_' + 'x'.repeat(43) })] }), /'sha256' must be 64 lower-case hex digits/],
    ['a duplicate name', JSON.stringify({ keys: [key(), key({ sha256: 'b'.repeat(64) })] }), /key 'ci': the name is used twice/],
    ['a duplicate hash', JSON.stringify({ keys: [key(), key({ name: 'other' })] }), /key 'other': the same key hash is listed twice/],
    ['a bad name', JSON.stringify({ keys: [key({ name: 'a b' })] }), /keys\[0\]: 'name' must be 1-64 letters/],
    ['a long name', JSON.stringify({ keys: [key({ name: 'n'.repeat(65) })] }), /'name' must be 1-64/],
    ['an unknown scope', JSON.stringify({ keys: [key({ scopes: ['admin'] })] }), /key 'ci': unknown scope 'admin'/],
    ['a rate over the bound', JSON.stringify({ keys: [key({ limits: { requests_per_second: 1e9 } })] }), /'requests_per_second' must be a number from 0.001 to 1000000, got 1000000000/],
    ['a fractional burst', JSON.stringify({ keys: [key({ limits: { requests_per_second: 1, burst: 1.5 } })] }), /'burst' must be an integer/],
    ['a zero concurrency', JSON.stringify({ defaults: { limits: { concurrent: 0 } } }), /'defaults' limits: 'concurrent' must be an integer from 1 to 100000, got 0/],
    ['a burst without a rate', JSON.stringify({ keys: [key({ limits: { burst: 5 } })] }), /'burst' needs 'requests_per_second'/],
    ['a subject without =', JSON.stringify({ mtls: [{ subject: 'batch', name: 'b', scopes: [] }] }), /'subject' must be a certificate subject like "CN=client"/],
    ['a name shared by a key and a subject', JSON.stringify({ keys: [key()], mtls: [{ subject: 'CN=x', name: 'ci', scopes: [] }] }), /mtls entry 'ci': the name is used twice/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parseAuthFile(text)).toThrow(message);
  });

  it('bounds the number of keys', () => {
    const keys = Array.from({ length: MAX_KEYS + 1 }, (_, i) => ({ name: `k${i}`, sha256: i.toString(16).padStart(64, '0'), scopes: [] }));
    expect(() => parseAuthFile(JSON.stringify({ keys }))).toThrow(`'keys': at most ${MAX_KEYS} entries, got ${MAX_KEYS + 1}`);
  });

  it('names a missing file without its directory', () => {
    expect(() => loadAuthFile('/nonexistent/dir/auth.json', 'auth.json')).toThrow('cannot read auth.json: ENOENT');
  });
});

describe('addKey', () => {
  it('creates the file with mode 0600, stores only the hash and returns a tw_ key', () => {
    const path = tempFile();
    const k = addKey(path, 'ci', ['infer', 'monitor']);
    expect(k).toMatch(API_KEY_PATTERN);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(k);
    expect(JSON.parse(text)).toEqual({ keys: [{ name: 'ci', sha256: hashApiKey(k), scopes: ['infer', 'monitor'] }] });
  });

  it('appends to an existing file, keeping its other fields and its mode', () => {
    const path = tempFile();
    writeFileSync(path, JSON.stringify({ defaults: { limits: { concurrent: 4 } }, keys: [] }), { mode: 0o640 });
    const a = addKey(path, 'a', ['infer']);
    const b = addKey(path, 'b', ['manage']);
    expect(a).not.toBe(b);
    const config = loadAuthFile(path);
    expect([...config.keysByHash.values()].map((e) => e.name)).toEqual(['a', 'b']);
    expect(config.keysByHash.get(hashApiKey(b))!.limits).toEqual({ concurrent: 4 });
    expect(statSync(path).mode & 0o777).toBe(0o640);
  });

  it('refuses a duplicate name or an unknown scope and leaves the file as it was', () => {
    const path = tempFile();
    addKey(path, 'a', ['infer']);
    const before = readFileSync(path, 'utf8');
    expect(() => addKey(path, 'a', ['infer'])).toThrow("key 'a': the name is used twice");
    expect(() => addKey(path, 'b', ['everything'])).toThrow("unknown scope 'everything'");
    expect(readFileSync(path, 'utf8')).toBe(before);
  });
});

describe('AuthFileWatcher', () => {
  const quiet = { info: () => undefined, error: (m: string) => errors.push(m) };
  let errors: string[] = [];
  afterEach(() => {
    errors = [];
  });

  async function until(condition: () => boolean, ms: number): Promise<number> {
    const start = performance.now();
    while (!condition()) {
      if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return performance.now() - start;
  }

  it('revokes a key deleted from the file within a second, without restart', async () => {
    const path = tempFile();
    const keep = addKey(path, 'keep', ['infer']);
    const revoke = addKey(path, 'revoke', ['infer']);
    const watcher = AuthFileWatcher.open(path, { log: quiet });
    watchers.push(watcher);
    const access = new AccessControl({ authConfig: () => watcher.current });
    const auth = (k: string) => access.authenticate(`Bearer ${k}`, { address: '10.0.0.1' });
    expect(auth(revoke)).toMatchObject({ name: 'revoke', via: 'api-key' });
    // Edit in place, as a person with an editor would.
    const root = JSON.parse(readFileSync(path, 'utf8'));
    root.keys = root.keys.filter((k: { name: string }) => k.name !== 'revoke');
    writeFileSync(path, JSON.stringify(root));
    const took = await until(() => isAuthFailure(auth(revoke) as never), 1000);
    expect(took).toBeLessThan(1000);
    expect(auth(keep)).toMatchObject({ name: 'keep' });
  });

  it('picks up a file replaced by rename (auth add-key, editors that save by rename)', async () => {
    const path = tempFile();
    addKey(path, 'a', ['infer']);
    const watcher = AuthFileWatcher.open(path, { log: quiet });
    watchers.push(watcher);
    const added = addKey(path, 'b', ['infer']);
    await until(() => watcher.current.keysByHash.has(hashApiKey(added)), 1000);
  });

  it('keeps the last good file when an edit breaks it, logs why, and takes the next good one', async () => {
    const path = tempFile();
    const k = addKey(path, 'a', ['infer']);
    const watcher = AuthFileWatcher.open(path, { log: quiet, pollMs: 20 });
    watchers.push(watcher);
    const good = watcher.current;
    writeFileSync(path, '{"keys": [ {"name": "a", "sha256": "oops"');
    await until(() => errors.length > 0, 1000);
    expect(errors[0]).toMatch(/^auth file auth.json not reloaded, the last good one stays in force: auth file: not valid JSON/);
    expect(watcher.current).toBe(good);
    expect(watcher.current.keysByHash.has(hashApiKey(k))).toBe(true);
    // The same broken file is reported once, not at every poll.
    await new Promise((r) => setTimeout(r, 100));
    expect(errors).toHaveLength(1);
    writeFileSync(path, JSON.stringify({ keys: [] }));
    await until(() => watcher.current.keysByHash.size === 0, 1000);
  });

  it('keeps the last good file when the file disappears', async () => {
    const path = tempFile();
    addKey(path, 'a', ['infer']);
    const watcher = AuthFileWatcher.open(path, { log: quiet, pollMs: 20 });
    watchers.push(watcher);
    renameSync(path, path + '.bak');
    await until(() => errors.length > 0, 1000);
    expect(errors[0]).toContain('cannot be read (ENOENT); keeping the last good one in force');
    expect(watcher.current.keysByHash.size).toBe(1);
  });
});
