/**
 * Class labels of a model's outputs for the classification extension: each output config's
 * `label_filename` names a file in the model directory holding one label per line (Triton's
 * format). Read once when a version loads, asynchronously (the event loop never waits on
 * the file), and bounded: a label file is configuration, not data.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { TensorwireError } from '../errors';
import type { ModelConfig } from './config';

/** Largest label file read (bytes). */
export const MAX_LABEL_FILE_BYTES = 4 * 1024 * 1024;
/** Most labels one file may hold. */
export const MAX_LABELS = 1 << 20;

/** Labels by output name; outputs without a label file are absent. */
export type OutputLabels = ReadonlyMap<string, readonly string[]>;

/** Reads the label file of every output that names one. `modelName` names the model in messages (never a path). */
export async function loadOutputLabels(modelDir: string, modelName: string, config: ModelConfig): Promise<OutputLabels> {
  const labels = new Map<string, readonly string[]>();
  for (const output of config.output ?? []) {
    const file = output.label_filename;
    if (file === undefined) continue;
    // config.ts admits plain file names only, so this stays inside the model directory.
    const where = `${modelName}/${file} (label_filename of output '${output.name}')`;
    const full = path.join(modelDir, file);
    let text: string;
    try {
      const info = await stat(full);
      if (!info.isFile()) throw new TensorwireError('MODEL_LOAD_FAILED', `${where} is not a file`);
      if (info.size > MAX_LABEL_FILE_BYTES) throw new TensorwireError('MODEL_LOAD_FAILED', `${where} holds ${info.size} bytes; a label file may hold at most ${MAX_LABEL_FILE_BYTES}`);
      text = await readFile(full, 'utf8');
    } catch (e) {
      if (e instanceof TensorwireError) throw e;
      throw new TensorwireError('MODEL_LOAD_FAILED', `cannot read ${where}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    const lines = text.split(/\r?\n/);
    // A final newline ends the last label; it does not start an empty one.
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length > MAX_LABELS) throw new TensorwireError('MODEL_LOAD_FAILED', `${where} holds ${lines.length} labels; the limit is ${MAX_LABELS}`);
    labels.set(output.name, lines);
  }
  return labels;
}
