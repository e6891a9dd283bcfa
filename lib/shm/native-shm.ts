/**
 * The addon's shared memory functions (native/shm_region.cpp), typed. Kept here rather than
 * in lib/engine: they serve the transports' shared memory extension, not model execution.
 */
import { nativeAddon } from '../engine/native-binding';

/** What native/shm_region.cpp exports. */
export interface NativeShm {
  /** Maps [offset, offset + byteSize) of the POSIX shared memory object `key`; throws INVALID_INPUT naming the field. */
  shmMap(key: string, offset: number, byteSize: number): ArrayBuffer;
  /** Lets go of the shared object behind `buffer` (the buffer then reads zeros); false when already released. */
  shmRelease(buffer: ArrayBuffer): boolean;
  /** The object's size when it shrank below the window since it was mapped (touching it would fault), else undefined. */
  shmCheck(buffer: ArrayBuffer): number | undefined;
  /** Windows still backed by a shared object, their bytes, and address ranges the GC has not collected yet. */
  shmStats(): { mapped: number; mappedBytes: number; reserved: number; maxKeyChars: number };
}

/** The addon, seen through its shared memory functions. */
export function nativeShm(): NativeShm {
  return nativeAddon() as unknown as NativeShm;
}
