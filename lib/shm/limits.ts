/**
 * Bounds of the system shared memory extension (docs/protocol.md, "System shared memory").
 * A mapping costs no memory of its own (the pages belong to the client's shared object), but
 * each one takes address space and page tables, and every region is a name to look up: both
 * are bounded so a client with the manage scope cannot grow them without end.
 */

/** Most regions registered at once, per server. */
export const DEFAULT_MAX_SHM_REGIONS = 1024;

/** Most bytes mapped at once over all regions, per server: 64 GiB. */
export const DEFAULT_MAX_SHM_MAPPED_BYTES = 64 * 1024 * 1024 * 1024;

/** Longest region name (Triton sets none; this matches model names, lib/protocol/request-limits.ts). */
export const MAX_SHM_REGION_NAME_CHARS = 512;

/** Longest key, '/' included: NAME_MAX of the tmpfs behind shm_open (native/shm_region.hpp has the same). */
export const MAX_SHM_KEY_CHARS = 255;

/** Limits of one registry (a server's). */
export interface SharedMemoryLimits {
  /** Most regions at once. Default DEFAULT_MAX_SHM_REGIONS. */
  maxRegions?: number;
  /** Most bytes mapped at once, regions being unregistered while requests use them included. Default DEFAULT_MAX_SHM_MAPPED_BYTES. */
  maxMappedBytes?: number;
}
