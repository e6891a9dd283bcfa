/**
 * Writes the files of a load request (upload-parameters.ts checked their paths) into a fresh
 * private directory: `mkdtemp` (mode 0700) under `root`, one `<version>/` directory (0700)
 * per version and each file (0600, created exclusively). Only names that passed the path
 * check are joined, so nothing lands outside the new directory. A failure removes the
 * directory before rethrowing.
 *
 * Decoding base64 costs time in proportion to the file: large uploads run this inside the
 * upload worker (upload-worker.ts), small ones on the JS thread.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TensorwireError } from '../errors';
import type { UploadFile } from './upload-parameters';

/** Prefix of upload directories (under the system's temporary directory by default). */
export const UPLOAD_DIR_PREFIX = 'tensorwire-upload-';

/** Writes `files` into a new private directory under `root`; resolves with its path. */
export async function writeUploadFiles(files: readonly UploadFile[], root: string): Promise<string> {
  const dir = await mkdtemp(join(root, UPLOAD_DIR_PREFIX));
  try {
    const versions = new Set(files.map((f) => f.version));
    for (const v of versions) await mkdir(join(dir, v), { mode: 0o700 });
    for (const f of files) {
      const bytes = Buffer.from(f.base64, 'base64');
      await writeFile(join(dir, f.version, f.name), bytes, { mode: 0o600, flag: 'wx' });
    }
    return dir;
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw new TensorwireError('INTERNAL', `could not write the uploaded model files: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
