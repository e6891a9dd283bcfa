/**
 * The cache's doorkeeper (TinyLFU's, or a CDN's "cache on second hit"): an answer is stored
 * only when its key was already seen recently. Most never-repeated requests ("one-hit
 * wonders") then cost a miss nothing beyond the key: no copy of the answer, no LRU insert
 * or eviction, no long-lived objects for the garbage collector to move. The price: a
 * repeated input is answered from the cache from its third request on, not its second.
 *
 * Memory is fixed: a direct-mapped table of 32-bit fingerprints of keys (two FNV-1a style
 * hashes over the key's characters, ~100 of them: the digest and the descriptive part). A
 * fingerprint collision only admits an answer early; it never serves a wrong one (the LRU
 * is keyed by the whole key).
 */
/** Slots of the table: 2^16 (256 KiB); a key is remembered until 65,536 others pass its slot, on average. */
const SLOTS = 1 << 16;

export class Doorkeeper {
  private readonly seen = new Int32Array(SLOTS);

  /** True when `key` was seen since its slot was last taken (store its answer); else remembers it. */
  admit(key: string): boolean {
    // Over the whole key: requests with the same bytes but other outputs or another model are other keys.
    let a = 0x811c9dc5;
    let b = 0x01000193;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
    }
    const slot = (a ^ (a >>> 16)) & (SLOTS - 1);
    const print = b | 1; // never 0, the empty slot
    if (this.seen[slot] === print) return true;
    this.seen[slot] = print;
    return false;
  }
}

