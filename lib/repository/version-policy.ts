/**
 * Triton version policies: which of a model's available versions are served.
 */
import type { VersionPolicy } from './config';

/** Triton's default: serve the newest version only. */
export const DEFAULT_VERSION_POLICY: VersionPolicy = Object.freeze({ latest: Object.freeze({ num_versions: 1 }) });

/**
 * The versions `policy` selects from `available`, ascending. `latest` takes the newest N,
 * `all` every one, `specific` those listed that exist (a listed version that is missing on disk
 * is simply not served; the caller can compare with `missingVersions` to report it).
 */
export function selectVersions(policy: VersionPolicy | undefined, available: readonly number[]): number[] {
  const sorted = [...new Set(available)].sort((a, b) => a - b);
  const p = policy ?? DEFAULT_VERSION_POLICY;
  if ('all' in p) return sorted;
  if ('specific' in p) {
    const wanted = new Set(p.specific.versions);
    return sorted.filter((v) => wanted.has(v));
  }
  return sorted.slice(Math.max(0, sorted.length - p.latest.num_versions));
}

/** Versions a `specific` policy names that are not available (empty for other policies). */
export function missingVersions(policy: VersionPolicy | undefined, available: readonly number[]): number[] {
  if (!policy || !('specific' in policy)) return [];
  const have = new Set(available);
  return [...new Set(policy.specific.versions)].filter((v) => !have.has(v)).sort((a, b) => a - b);
}
