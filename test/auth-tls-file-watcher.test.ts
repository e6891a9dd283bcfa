/**
 * TlsFileWatcher on real files: a renewal written in several steps reloads once, after the
 * files were quiet; a failed reload is logged and the next change tries again; nothing
 * happens after close.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { handoffNote, TlsFileWatcher } from '../lib/auth/tls-file-watcher';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-tlswatch-'));
  writeFileSync(join(dir, 'cert.pem'), 'cert 1');
  writeFileSync(join(dir, 'key.pem'), 'key 1');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(test: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`waited ${ms} ms`);
    await sleep(20);
  }
}

describe('TlsFileWatcher', () => {
  it('reloads once for a renewal written in several steps, after the files were quiet', async () => {
    const infos: string[] = [];
    let reloads = 0;
    const w = await TlsFileWatcher.open([join(dir, 'cert.pem'), join(dir, 'key.pem')], async () => `serial ${++reloads}`, { debounceMs: 1000, pollMs: 50, log: { info: (m) => infos.push(m), error: () => undefined } });
    try {
      writeFileSync(join(dir, 'cert.pem'), 'cert 2, first half');
      await sleep(60);
      writeFileSync(join(dir, 'cert.pem'), 'cert 2, whole');
      await sleep(60);
      writeFileSync(join(dir, 'key.tmp'), 'key 2');
      renameSync(join(dir, 'key.tmp'), join(dir, 'key.pem'));
      await until(() => reloads === 1);
      await sleep(1200); // no second reload for the same change
      await w.settled();
      expect(reloads).toBe(1);
      expect(infos).toEqual([`TLS certificate files changed: reloaded, now serving serial 1${await handoffNote()}`]);
    } finally {
      w.close();
    }
  });

  it('logs a failed reload and tries again on the next change; stops after close', async () => {
    const errors: string[] = [];
    let calls = 0;
    const w = await TlsFileWatcher.open([join(dir, 'cert.pem'), join(dir, 'key.pem')], async () => {
      calls++;
      if (calls === 1) throw new Error('--tls-key key.pem is not the key of the certificate in --tls-cert cert.pem');
      return 'the new one';
    }, { debounceMs: 50, pollMs: 50, log: { info: () => undefined, error: (m) => errors.push(m) } });
    writeFileSync(join(dir, 'cert.pem'), 'cert 2');
    await until(() => errors.length === 1);
    expect(errors[0]).toBe('TLS certificate files changed but were not reloaded, the old certificate stays in service: --tls-key key.pem is not the key of the certificate in --tls-cert cert.pem');
    await sleep(300);
    expect(calls).toBe(1); // an unchanged file is not retried
    writeFileSync(join(dir, 'key.pem'), 'key 2');
    await until(() => calls === 2);
    await w.settled();
    w.close();
    writeFileSync(join(dir, 'key.pem'), 'key 3');
    await sleep(300);
    expect(calls).toBe(2);
  });
});
