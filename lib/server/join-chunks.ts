/**
 * Joins the output chunks of a (de)compression into one buffer a slice at a time, yielding
 * to the event loop between slices. One `Buffer.concat` of 30 MB held the loop for ~400 ms
 * here: the copy touches fresh memory, and each first touch of a page is a fault that this
 * kind of machine serves slowly. Spread over turns of the loop, other requests run between.
 */

/** Bytes copied per turn of the event loop. */
const JOIN_SLICE_BYTES = 1024 * 1024;

/**
 * `chunks` (of `total` bytes together) as one buffer that owns its whole ArrayBuffer (so it
 * can be transferred to a worker). Empties `chunks` as it goes, so the memory of copied
 * chunks can be freed before the join ends.
 */
export function joinChunks(chunks: Buffer[], total: number): Promise<Buffer> {
  if (total <= JOIN_SLICE_BYTES) {
    const joined = Buffer.allocUnsafeSlow(total);
    copyFrom(chunks, 0, joined, 0, chunks.length);
    return Promise.resolve(joined);
  }
  const joined = Buffer.allocUnsafeSlow(total);
  return new Promise<Buffer>((resolve) => {
    let next = 0;
    let offset = 0;
    const slice = (): void => {
      const start = next;
      let bytes = 0;
      while (next < chunks.length && bytes < JOIN_SLICE_BYTES) bytes += chunks[next++]!.length;
      offset = copyFrom(chunks, start, joined, offset, next);
      if (next < chunks.length) setImmediate(slice);
      else resolve(joined);
    };
    slice();
  });
}

/** Copies chunks[from..to) into `target` at `offset`, dropping each; returns the new offset. */
function copyFrom(chunks: Buffer[], from: number, target: Buffer, offset: number, to: number): number {
  for (let i = from; i < to; i++) {
    const chunk = chunks[i]!;
    target.set(chunk, offset);
    offset += chunk.length;
    chunks[i] = EMPTY;
  }
  return offset;
}

const EMPTY = Buffer.alloc(0);
