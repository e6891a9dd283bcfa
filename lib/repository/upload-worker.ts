/**
 * Worker thread entry of large model uploads (lib/server/model-uploads.ts): parses the load
 * request body, checks it (upload-parameters.ts, the same checks as the JS thread's) and
 * writes the files (upload-files.ts), so neither the JSON parse nor the base64 decode of a
 * body of tens of megabytes holds the event loop. One message in, one answer out:
 *
 *   in:  { body: Uint8Array, model: string, root: string }
 *   out: { config, dir } | { error: { code, message } }
 */
import { parentPort } from 'node:worker_threads';
import { TensorwireError, toTensorwireError } from '../errors';
import { writeUploadFiles } from './upload-files';
import { readLoadParameters } from './upload-parameters';
import { truncateForMessage } from '../util/message-text';

if (parentPort === null) throw new TensorwireError('INTERNAL', 'lib/repository/upload-worker is a worker_threads entry point');
const port = parentPort;

port.once('message', (m: { body: Uint8Array; model: string; root: string }) => {
  void (async () => {
    try {
      const text = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength).toString('utf8');
      let parsed: unknown;
      try {
        parsed = text.length === 0 ? undefined : JSON.parse(text);
      } catch (e) {
        throw new TensorwireError('INVALID_INPUT', `load request for model '${truncateForMessage(m.model)}': the body is not valid JSON (${truncateForMessage((e as Error).message)})`);
      }
      const { config, files } = readLoadParameters(m.model, parsed, 'allowed');
      const dir = files.length > 0 ? await writeUploadFiles(files, m.root) : undefined;
      port.postMessage({ config, dir });
    } catch (e) {
      const err = toTensorwireError(e);
      port.postMessage({ error: { code: err.code, message: err.message } });
    }
  })();
});
