/**
 * API keys: `tw_` + 32 random bytes in base64url. The server keeps only their SHA-256
 * (hex), so a leaked auth file does not leak working keys; `addKey` writes a new entry and
 * hands the key back once, for the operator to copy.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TensorwireError } from '../errors';
import { MAX_AUTH_FILE_BYTES, parseAuthFile } from './auth-file';

/** Every tensorwire API key starts with this (secret scanners and humans can spot one). */
export const API_KEY_PREFIX = 'tw_';
/** A key: prefix + base64url of 32 bytes (43 characters). */
export const API_KEY_PATTERN = /^tw_[A-Za-z0-9_-]{43}$/;

/** A new random API key. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** The hash the auth file stores: lower-case hex SHA-256 of the key's UTF-8 bytes. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Adds a key named `name` with `scopes` to the auth file at `path` (created, mode 0600, when
 * missing) and returns the key. The new file is validated as a whole before it replaces the
 * old one, which is replaced by rename: a running server never reads half a file.
 */
export function addKey(path: string, name: string, scopes: readonly string[]): string {
  let root: { keys?: unknown[] } & Record<string, unknown> = { keys: [] };
  const exists = existsSync(path);
  if (exists) {
    if (statSync(path).size > MAX_AUTH_FILE_BYTES) throw new TensorwireError('INVALID_INPUT', `${basename(path)} is over the ${MAX_AUTH_FILE_BYTES}-byte limit`);
    const text = readFileSync(path, 'utf8');
    parseAuthFile(text); // refuse to extend a file the server would refuse
    root = JSON.parse(text) as typeof root;
    root.keys ??= [];
  }
  const key = generateApiKey();
  root.keys!.push({ name, sha256: hashApiKey(key), scopes: [...scopes] });
  const text = JSON.stringify(root, null, 2) + '\n';
  parseAuthFile(text); // names the problem (duplicate name, unknown scope) before anything is written
  const mode = exists ? statSync(path).mode & 0o777 : 0o600;
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(temp, text, { mode });
  chmodSync(temp, mode); // writeFileSync's mode is masked by the umask
  renameSync(temp, path);
  return key;
}
