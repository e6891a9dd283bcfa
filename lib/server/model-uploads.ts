/**
 * Loading models from bytes (Triton's `file:` load parameters, docs/protocol.md "Loading
 * models from bytes"), on a server started with --allow-model-upload.
 *
 * The files go to a private temporary directory per load (lib/repository/upload-files.ts),
 * which the core then loads through its one load path (`loadModel` with that directory in
 * place of the repository's). A model keeps at most one such directory: a later load
 * (with or without files) or an unload removes it once the core is done with it, a failed
 * load removes its own, and `close` removes every one at shutdown.
 *
 * Bodies over IN_THREAD_MAX_BYTES are parsed, checked, decoded and written in a worker
 * thread (lib/repository/upload-worker.ts). Loads and unloads of one model run one at a
 * time, so the directory a model serves from is never removed under a load in progress.
 */
import { tmpdir } from 'node:os';
import { rm } from 'node:fs/promises';
import type { InferenceService } from '../core/types';
import { TensorwireError, type ErrorCode } from '../errors';
import { readLoadParameters } from '../repository/upload-parameters';
import { writeUploadFiles } from '../repository/upload-files';
import { spawnScriptWorker } from '../util/script-worker';
import { truncateForMessage } from '../util/message-text';
import { parseJsonBody } from './router';

/** Bodies up to this size are handled on the JS thread (the decode takes well under a millisecond). */
export const IN_THREAD_MAX_BYTES = 256 * 1024;
/** Upload workers at once: each holds a body (up to --max-body-bytes) and a thread; more wait for a retry (503). */
export const MAX_CONCURRENT_UPLOADS = 2;

/** What a load body asked for, files already written. */
interface StagedLoad {
  config: Record<string, unknown> | undefined;
  dir: string | undefined;
}

export class ModelUploads {
  /** The upload directory each model serves from. */
  private readonly dirs = new Map<string, string>();
  /** The load or unload of each model in progress (removed when it settles). */
  private readonly running = new Map<string, Promise<void>>();
  private closed = false;
  /** Upload workers running. */
  private staging = 0;

  /**
   * @param allowed whether `file:` parameters are accepted (--allow-model-upload).
   * @param root where upload directories are made (default: the system's temporary directory).
   */
  constructor(readonly allowed: boolean, private readonly root: string = tmpdir()) {}

  /** How many models serve from an upload directory (for tests and metrics). */
  get size(): number {
    return this.dirs.size;
  }

  /** POST /v2/repository/models/{m}/load with `body`. */
  load(service: InferenceService, model: string, body: Buffer): Promise<void> {
    if (!this.allowed) {
      const { config } = readLoadParameters(model, parseJsonBody(body, whereOf(model)), 'forbidden');
      return service.loadModel(model, config);
    }
    return this.serialize(model, async () => {
      const staged = await this.stage(model, body);
      if (this.closed) {
        await this.remove(staged.dir);
        throw new TensorwireError('UNAVAILABLE', 'the server is shutting down', { retryAfterSeconds: 1 });
      }
      try {
        await service.loadModel(model, staged.config, staged.dir === undefined ? undefined : { directory: staged.dir });
      } catch (e) {
        await this.remove(staged.dir);
        throw e;
      }
      // The new files serve now: the previous upload (if any) is no longer read.
      const previous = this.dirs.get(model);
      if (staged.dir === undefined) this.dirs.delete(model);
      else this.dirs.set(model, staged.dir);
      if (previous !== staged.dir) await this.remove(previous);
    });
  }

  /** POST /v2/repository/models/{m}/unload: the core unloads, then the model's upload directory goes. */
  unload(service: InferenceService, model: string): Promise<void> {
    return this.serialize(model, async () => {
      await service.unloadModel(model);
      const dir = this.dirs.get(model);
      this.dirs.delete(model);
      await this.remove(dir);
    });
  }

  /** Removes every upload directory (server shutdown; the core has unloaded or is unloading). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.running.values());
    const dirs = [...this.dirs.values()];
    this.dirs.clear();
    await Promise.all(dirs.map((d) => this.remove(d)));
  }

  private serialize(model: string, run: () => Promise<void>): Promise<void> {
    const before = this.running.get(model) ?? Promise.resolve();
    const mine = before.then(run, run);
    const settled = mine.then(() => undefined, () => undefined);
    this.running.set(model, settled);
    void settled.then(() => {
      if (this.running.get(model) === settled) this.running.delete(model);
    });
    return mine;
  }

  private async stage(model: string, body: Buffer): Promise<StagedLoad> {
    if (body.length > IN_THREAD_MAX_BYTES) return this.stageInWorker(model, body);
    const { config, files } = readLoadParameters(model, parseJsonBody(body, whereOf(model)), 'allowed');
    return { config, dir: files.length > 0 ? await writeUploadFiles(files, this.root) : undefined };
  }

  /** Parses, checks and writes in a worker of its own (uploads are rare; the worker exits after one). */
  private async stageInWorker(model: string, body: Buffer): Promise<StagedLoad> {
    if (this.staging >= MAX_CONCURRENT_UPLOADS) {
      throw new TensorwireError('UNAVAILABLE', `${MAX_CONCURRENT_UPLOADS} model uploads are being written already; retry shortly`, { retryAfterSeconds: 1 });
    }
    this.staging++;
    try {
      return await this.runWorker(model, body);
    } finally {
      this.staging--;
    }
  }

  private runWorker(model: string, body: Buffer): Promise<StagedLoad> {
    const worker = spawnScriptWorker(`${__dirname}/../repository`, 'upload-worker', 'the model upload worker', 'build with tsc');
    // The body's memory moves to the worker instead of being copied, when it is the buffer's alone.
    const owned = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : Buffer.from(body);
    const bytes = new Uint8Array(owned.buffer, owned.byteOffset, owned.byteLength);
    return new Promise<StagedLoad>((resolve, reject) => {
      worker.once('message', (reply: StagedLoad & { error?: { code: ErrorCode; message: string } }) => {
        void worker.terminate();
        if (reply.error !== undefined) reject(new TensorwireError(reply.error.code, reply.error.message));
        else resolve({ config: reply.config, dir: reply.dir });
      });
      worker.once('error', (e) => reject(new TensorwireError('INTERNAL', `the model upload worker failed: ${e.message}`)));
      // Exiting without an answer (killed, out of memory) must not leave the load waiting (a no-op once settled).
      worker.once('exit', () => reject(new TensorwireError('INTERNAL', 'the model upload worker exited without an answer')));
      worker.postMessage({ body: bytes, model, root: this.root }, [bytes.buffer as ArrayBuffer]);
    });
  }

  private async remove(dir: string | undefined): Promise<void> {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function whereOf(model: string): string {
  return `load request for model '${truncateForMessage(model)}'`;
}
