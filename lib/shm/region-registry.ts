/**
 * The system shared memory regions of one server (Triton's system_shared_memory extension):
 * register, status, unregister, and leases that requests hold while they read or write a
 * region. HTTP routes call it (lib/server/routes-shared-memory.ts); the gRPC service's
 * SystemSharedMemory* RPCs can call the same methods (they take and return the same fields).
 *
 * Lifetime: a region unregistered while requests use it leaves the name table at once (the
 * name can be registered again) but keeps its mapping until its last lease is released; only
 * then is the shared object let go (native/shm_region.hpp: the window is swapped for zeros, so
 * even a view kept by mistake never faults). `close` lets go of every mapping at shutdown.
 */
import { TensorwireError } from '../errors';
import { truncateForMessage } from '../util/message-text';
import { nativeShm, type NativeShm } from './native-shm';
import { DEFAULT_MAX_SHM_MAPPED_BYTES, DEFAULT_MAX_SHM_REGIONS, MAX_SHM_KEY_CHARS, MAX_SHM_REGION_NAME_CHARS, type SharedMemoryLimits } from './limits';

/** One region as the status call reports it (Triton's field names). */
export interface SystemSharedMemoryStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

/** A registered mapping and who uses it. */
class Region {
  /** Leases not released yet. */
  users = 0;
  /** Out of the name table; released when `users` drops to 0. */
  unregistered = false;
  private released = false;
  readonly bytes: Uint8Array;

  constructor(
    readonly name: string,
    readonly key: string,
    readonly offset: number,
    readonly buffer: ArrayBuffer,
    private readonly native: NativeShm,
    private readonly onReleased: (region: Region) => void,
  ) {
    this.bytes = new Uint8Array(buffer);
  }

  get byteSize(): number {
    return this.buffer.byteLength;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.native.shmRelease(this.buffer);
    this.onReleased(this);
  }
}

/**
 * A request's hold on a region: the mapping stays until `release` (call it once, in a finally).
 */
export class RegionLease {
  private held = true;

  constructor(private readonly region: Region) {}

  /** The region's name. */
  get name(): string {
    return this.region.name;
  }

  /**
   * The bytes [offset, offset + byteSize) of the region, a view (no copy). Throws
   * INVALID_INPUT naming `label` (the tensor) when the window runs past the region.
   */
  view(offset: number, byteSize: number, label: string): Uint8Array {
    const size = this.region.byteSize;
    if (offset > size || byteSize > size - offset) {
      throw new TensorwireError(
        'INVALID_INPUT',
        `${label}: shared_memory_offset ${offset} + shared_memory_byte_size ${byteSize} runs past the end of shared memory region '${truncateForMessage(this.region.name)}' (${size} bytes)`,
      );
    }
    return this.region.bytes.subarray(offset, offset + byteSize);
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    const region = this.region;
    region.users--;
    if (region.unregistered && region.users === 0) region.release();
  }
}

/** Region names, keys and numbers as a client sends them, checked with messages that name the field. */
function checkRegistration(name: string, key: unknown, offset: unknown, byteSize: unknown): asserts key is string {
  const where = `system shared memory region '${truncateForMessage(name)}'`;
  if (name.length === 0 || name.length > MAX_SHM_REGION_NAME_CHARS) {
    throw new TensorwireError('INVALID_INPUT', `system shared memory region name must be 1 to ${MAX_SHM_REGION_NAME_CHARS} characters`);
  }
  if (typeof key !== 'string') throw new TensorwireError('INVALID_INPUT', `${where}: "key" must be a string`);
  const keyProblem = shmKeyProblem(key);
  if (keyProblem !== undefined) throw new TensorwireError('INVALID_INPUT', `${where}: "key" '${truncateForMessage(key)}' ${keyProblem}`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw new TensorwireError('INVALID_INPUT', `${where}: "offset" must be a non-negative integer`);
  if (typeof byteSize !== 'number' || !Number.isSafeInteger(byteSize) || byteSize <= 0) throw new TensorwireError('INVALID_INPUT', `${where}: "byte_size" must be a positive integer`);
}

/**
 * Why `key` is not a POSIX shared memory name, or undefined when it is one: "/name", no
 * other '/', so it can only name an object in shared memory (never a path elsewhere). The
 * addon checks the same (native/shm_region.cpp ShmKeyProblem).
 */
export function shmKeyProblem(key: string): string | undefined {
  if (key.length < 2 || !key.startsWith('/')) return "must be a POSIX shared memory name: '/' followed by a name";
  if (key.length > MAX_SHM_KEY_CHARS) return `is longer than ${MAX_SHM_KEY_CHARS} characters`;
  if (key.indexOf('/', 1) !== -1) return "must not contain '/' after the first character (it names an object in shared memory, not a path)";
  if (key.includes('\0')) return 'must not contain NUL';
  if (key === '/.' || key === '/..') return "must name an object, not '.' or '..'";
  return undefined;
}

/** The system shared memory regions of one server. */
export class SharedMemoryRegistry {
  private readonly regions = new Map<string, Region>();
  /** Unregistered regions still in use, so `close` can let them go too. */
  private readonly draining = new Set<Region>();
  /** Bytes mapped now, unregistered regions still in use included. */
  private mapped = 0;
  private readonly maxRegions: number;
  private readonly maxMappedBytes: number;
  private closed = false;

  constructor(limits: SharedMemoryLimits = {}, private readonly native: NativeShm = nativeShm()) {
    this.maxRegions = limits.maxRegions ?? DEFAULT_MAX_SHM_REGIONS;
    this.maxMappedBytes = limits.maxMappedBytes ?? DEFAULT_MAX_SHM_MAPPED_BYTES;
    if (!Number.isSafeInteger(this.maxRegions) || this.maxRegions < 0) throw new RangeError(`maxRegions must be a non-negative integer, got ${this.maxRegions}`);
    if (!Number.isSafeInteger(this.maxMappedBytes) || this.maxMappedBytes < 0) throw new RangeError(`maxMappedBytes must be a non-negative integer, got ${this.maxMappedBytes}`);
  }

  /** Regions registered (not counting unregistered ones still in use). */
  get size(): number {
    return this.regions.size;
  }

  /** Bytes mapped now, regions unregistered but still in use included. */
  get mappedBytes(): number {
    return this.mapped;
  }

  /**
   * Maps [offset, offset + byteSize) of the shared memory object `key` as region `name`.
   * Throws INVALID_INPUT (400) for a name already registered (as Triton), a key that is not a
   * shared memory name or does not exist, an offset or size past the object's end, or a
   * limit reached; the message names the field.
   */
  register(name: string, key: unknown, offset: unknown, byteSize: unknown): void {
    if (this.closed) throw new TensorwireError('UNAVAILABLE', 'the server is shutting down', { retryAfterSeconds: 1 });
    checkRegistration(name, key, offset, byteSize);
    const where = `system shared memory region '${truncateForMessage(name)}'`;
    if (this.regions.has(name)) throw new TensorwireError('INVALID_INPUT', `${where} is already registered (unregister it first)`);
    if (this.regions.size >= this.maxRegions) throw new TensorwireError('INVALID_INPUT', `${where}: ${this.maxRegions} regions are registered, the most this server allows`);
    const size = byteSize as number;
    if (size > this.maxMappedBytes - this.mapped) {
      throw new TensorwireError('INVALID_INPUT', `${where}: byte_size ${size} would take the bytes mapped past this server's limit of ${this.maxMappedBytes} (${this.mapped} mapped now)`);
    }
    let buffer: ArrayBuffer;
    try {
      buffer = this.native.shmMap(key, offset as number, size);
    } catch (e) {
      throw new TensorwireError('INVALID_INPUT', `${where}: ${truncateForMessage((e as Error).message, 400)}`);
    }
    this.mapped += size;
    this.regions.set(name, new Region(name, key, offset as number, buffer, this.native, (r) => {
      this.mapped -= r.byteSize;
      this.draining.delete(r);
    }));
  }

  /** Status of every region, or of `name` (NOT_FOUND when it is not registered). */
  status(name?: string): SystemSharedMemoryStatus[] {
    if (name === undefined) return [...this.regions.values()].map(statusOf);
    const region = this.regions.get(name);
    if (region === undefined) throw new TensorwireError('NOT_FOUND', `Unable to find system shared memory region: '${truncateForMessage(name)}'`);
    return [statusOf(region)];
  }

  /**
   * Unregisters `name`, or every region when undefined. An unknown name is not an error
   * (Triton answers 200 too). A region in use is let go when its last request finishes.
   */
  unregister(name?: string): void {
    if (name === undefined) {
      for (const region of [...this.regions.values()]) this.drop(region);
      return;
    }
    const region = this.regions.get(name);
    if (region !== undefined) this.drop(region);
  }

  /** A lease on region `name` for the tensor `label`; INVALID_INPUT when it is not registered. */
  acquire(name: string, label: string): RegionLease {
    const region = this.regions.get(name);
    if (region === undefined) throw new TensorwireError('INVALID_INPUT', `${label}: unknown shared memory region '${truncateForMessage(name)}' (register it first)`);
    // A client that truncated its object would make the first touch of the window fault (SIGBUS).
    const shrunk = this.native.shmCheck(region.buffer);
    if (shrunk !== undefined) {
      throw new TensorwireError(
        'INVALID_INPUT',
        `${label}: shared memory region '${truncateForMessage(name)}' is unusable: its object '${truncateForMessage(region.key)}' shrank to ${shrunk} bytes, short of the registered offset + byte_size ${region.offset + region.byteSize}; unregister and register it again`,
      );
    }
    region.users++;
    return new RegionLease(region);
  }

  /**
   * Shutdown: every region leaves the table and every mapping is let go now, in use or not
   * (in-flight requests are being cancelled; a view they still hold reads zeros, never faults).
   */
  close(): void {
    this.closed = true;
    for (const region of [...this.regions.values()]) {
      region.unregistered = true;
      this.regions.delete(region.name);
      region.release();
    }
    for (const region of [...this.draining]) region.release();
  }

  private drop(region: Region): void {
    this.regions.delete(region.name);
    region.unregistered = true;
    if (region.users === 0) {
      region.release();
    } else {
      this.draining.add(region);
    }
  }
}

function statusOf(region: Region): SystemSharedMemoryStatus {
  return { name: region.name, key: region.key, offset: region.offset, byte_size: region.byteSize };
}
