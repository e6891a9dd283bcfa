/**
 * The response cache's store: answers by key, least recently used first out, bounded by a
 * server-wide byte budget (`--cache-bytes`). Map keeps insertion order, so "touch" is a
 * delete and a re-insert and the oldest entry is the first key. Stored outputs are copies:
 * nothing a transport or another request holds is shared with an entry's bytes.
 */
import type { InferOutputTensor } from '../protocol/types';

/** Default budget: 256 MiB. */
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;
/** Bookkeeping bytes counted per entry beyond its outputs and key. */
const ENTRY_OVERHEAD_BYTES = 256;

/** One cached answer. */
export interface CachedAnswer {
  readonly modelVersion: string;
  readonly outputs: readonly Readonly<InferOutputTensor>[];
  readonly bytes: number;
}

export class ResponseCache {
  private readonly entries = new Map<string, CachedAnswer>();
  private used = 0;
  /** Entries pushed out to make room, since start. */
  evictions = 0;

  constructor(readonly budgetBytes: number = DEFAULT_CACHE_BYTES) {}

  /** Bytes held now (outputs, keys and bookkeeping). */
  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The answer stored under `key` (now the most recently used), or undefined. */
  get(key: string): CachedAnswer | undefined {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /**
   * Stores a copy of `outputs` under `key`, evicting the least recently used entries to stay
   * within the budget. An answer larger than an eighth of the budget is not stored (it would
   * flush most of the cache for one entry). Returns whether it was stored.
   */
  put(key: string, modelVersion: string, outputs: readonly InferOutputTensor[]): boolean {
    let bytes = ENTRY_OVERHEAD_BYTES + key.length * 2;
    for (const o of outputs) bytes += o.data.byteLength + o.name.length * 2 + o.shape.length * 8;
    if (bytes > this.budgetBytes / 8) return false;
    const previous = this.entries.get(key);
    if (previous !== undefined) {
      this.entries.delete(key);
      this.used -= previous.bytes;
    }
    // One allocation for every output's bytes. A plain Uint8Array, not a pooled Buffer: callers
    // may rely on `data.slice()` copying and on `data.buffer` holding only this answer.
    let total = 0;
    for (const o of outputs) total += o.data.byteLength;
    const store = new Uint8Array(total);
    let offset = 0;
    const copies = outputs.map((o) => {
      store.set(o.data, offset);
      const data = store.subarray(offset, offset + o.data.byteLength);
      offset += o.data.byteLength;
      return { name: o.name, datatype: o.datatype, shape: [...o.shape], data, binary: o.binary };
    });
    this.entries.set(key, { modelVersion, outputs: copies, bytes });
    this.used += bytes;
    if (this.used > this.budgetBytes) {
      for (const [oldKey, old] of this.entries) {
        if (this.used <= this.budgetBytes) break;
        this.entries.delete(oldKey);
        this.used -= old.bytes;
        this.evictions++;
      }
    }
    return true;
  }

  /** Drops every entry. */
  clear(): void {
    this.entries.clear();
    this.used = 0;
  }
}
