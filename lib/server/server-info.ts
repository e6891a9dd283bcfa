/**
 * What GET /v2 reports: the server's name, version and the KServe v2 extensions it
 * implements. The version is read from the package's own package.json, found by walking up
 * from this file so it works from lib/ (tests, ts sources) and from dist/lib (published).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Extensions of the Open Inference Protocol (Triton's names) this server implements. */
export const SERVER_EXTENSIONS = ['binary_tensor_data', 'classification', 'model_repository', 'statistics', 'schedule_policy', 'model_configuration', 'system_shared_memory', 'trace', 'logging'] as const;

/** Body of GET /v2. */
export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

let cached: ServerMetadata | undefined;

/** The server metadata, computed once. */
export function serverMetadata(): ServerMetadata {
  if (cached === undefined) cached = { name: 'tensorwire', version: packageVersion(), extensions: [...SERVER_EXTENSIONS] };
  return cached;
}

function packageVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tensorwire' && typeof pkg.version === 'string') return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return '0.0.0';
}
