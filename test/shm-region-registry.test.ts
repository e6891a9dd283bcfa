/**
 * The shared memory region registry over the real addon and real POSIX shared memory (a file
 * in /dev/shm is what shm_open creates on Linux): limits, leases, and what a view kept past
 * a release reads.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { SharedMemoryRegistry, shmKeyProblem } from '../lib/shm/region-registry';
import { nativeShm } from '../lib/shm/native-shm';
import { MAX_SHM_KEY_CHARS } from '../lib/shm/limits';

let counter = 0;
const created: string[] = [];

function createShm(bytes: Uint8Array): string {
  const key = `/tw-unit-${process.pid}-${++counter}`;
  writeFileSync('/dev/shm' + key, bytes);
  created.push('/dev/shm' + key);
  return key;
}

const isMapped = (key: string): boolean => readFileSync('/proc/self/maps', 'utf8').includes('/dev/shm' + key);

afterAll(() => {
  for (const path of created) rmSync(path, { force: true });
});

describe('SharedMemoryRegistry', () => {
  it('checks keys the same way in JS and in the addon', () => {
    expect(nativeShm().shmStats().maxKeyChars).toBe(MAX_SHM_KEY_CHARS);
    for (const bad of ['', '/', 'x', '/a/b', '/../x', '/.', '/..', '/' + 'k'.repeat(MAX_SHM_KEY_CHARS), '/a\0b']) {
      expect(shmKeyProblem(bad), JSON.stringify(bad)).toBeDefined();
      // The addon refuses the same keys on its own (it never trusts the caller).
      expect(() => nativeShm().shmMap(bad, 0, 1), JSON.stringify(bad)).toThrow(/key/);
    }
    expect(shmKeyProblem('/ok_name-1.bin')).toBeUndefined();
  });

  it('bounds the number of regions and the bytes mapped, and counts them back down', () => {
    const key = createShm(new Uint8Array(4096));
    const registry = new SharedMemoryRegistry({ maxRegions: 2, maxMappedBytes: 5000 });
    registry.register('a', key, 0, 4096);
    expect(() => registry.register('b', key, 0, 1000)).toThrow(/byte_size 1000 would take the bytes mapped past this server's limit of 5000 \(4096 mapped now\)/);
    registry.register('b', key, 0, 900);
    expect(() => registry.register('c', key, 0, 1)).toThrow(/2 regions are registered, the most this server allows/);
    expect(registry.mappedBytes).toBe(4996);
    registry.unregister('a');
    expect(registry.mappedBytes).toBe(900);
    registry.register('c', key, 0, 4000);
    registry.close();
    expect(registry.size).toBe(0);
    expect(registry.mappedBytes).toBe(0);
    expect(() => registry.register('d', key, 0, 1)).toThrow(/shutting down/);
  });

  it('keeps a leased region mapped after unregister until the last lease is released', () => {
    const key = createShm(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    const registry = new SharedMemoryRegistry();
    registry.register('r', key, 2, 4);
    const first = registry.acquire('r', "input 'x'");
    const second = registry.acquire('r', "input 'y'");
    const view = first.view(1, 3, "input 'x'");
    expect(Array.from(view)).toEqual([4, 5, 6]);
    expect(() => first.view(2, 3, "input 'x'")).toThrow(/input 'x': shared_memory_offset 2 \+ shared_memory_byte_size 3 runs past the end of shared memory region 'r' \(4 bytes\)/);
    registry.unregister('r');
    expect(registry.size).toBe(0);
    expect(() => registry.acquire('r', "input 'z'")).toThrow(/input 'z': unknown shared memory region 'r'/);
    // The name is free again at once; the old mapping lives on for its users.
    registry.register('r', key, 0, 8);
    expect(isMapped(key)).toBe(true);
    first.release();
    first.release(); // twice is once
    expect(Array.from(view)).toEqual([4, 5, 6]);
    expect(registry.mappedBytes).toBe(12);
    second.release();
    expect(registry.mappedBytes).toBe(8);
    registry.close();
    expect(isMapped(key)).toBe(false);
    // A view kept past the release reads zeros; it never faults, and the object is untouched.
    expect(Array.from(view)).toEqual([0, 0, 0]);
    expect(Array.from(readFileSync('/dev/shm' + key))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('writes through to the shared object', () => {
    const key = createShm(new Uint8Array(16));
    const registry = new SharedMemoryRegistry();
    registry.register('w', key, 8, 8);
    const lease = registry.acquire('w', "output 'y'");
    lease.view(0, 8, "output 'y'").set([9, 8, 7, 6, 5, 4, 3, 2]);
    lease.release();
    registry.close();
    expect(Array.from(readFileSync('/dev/shm' + key))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2]);
  });

  it('gives an address range back once the GC collects a released buffer', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const collect = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await collect(); // buffers of the tests before
    const before = nativeShm().shmStats().reserved;
    const key = createShm(new Uint8Array(64));
    (() => {
      const registry = new SharedMemoryRegistry();
      registry.register('g', key, 0, 64);
      registry.close();
    })();
    expect(nativeShm().shmStats()).toMatchObject({ reserved: before + 1 });
    for (let i = 0; i < 10 && nativeShm().shmStats().reserved > before; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(nativeShm().shmStats().reserved).toBe(before);
  });
});
