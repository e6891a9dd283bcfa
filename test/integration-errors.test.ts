/**
 * Every client error of the inference endpoint against the real server core and engine:
 * status, `{"error": ...}` body, and a message that names the tensor or field at fault,
 * what was expected and what came. The server runs with a small body limit (64 KiB) so the
 * 413 path is cheap to reach.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel, multiIoModel } from './fixtures/models';
import { binaryRequest, bytes, call, postJson, startHarness, type Harness } from './helpers/server-harness';

const LIMIT = 64 * 1024;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    maxBodyBytes: LIMIT,
    models: [
      { name: 'mlp', versions: { 1: (d) => mlpModel(d, { file: 'model.onnx' }) }, config: { max_batch_size: 4 } },
      { name: 'multi_io', versions: { 1: (d) => multiIoModel(d, { file: 'model.onnx' }) } },
    ],
  });
});
afterAll(async () => {
  await h?.close();
});

const row = (n = 256) => Array.from({ length: n }, (_, i) => i / n);
const mlpInput = (over: Record<string, unknown> = {}) => ({ name: 'input', datatype: 'FP32', shape: [1, 256], data: row(), ...over });

/** POSTs to the MLP and expects `status` with exactly `message` (or a match). */
async function expectError(body: unknown, status: number, message: string | RegExp, path = '/v2/models/mlp/infer'): Promise<void> {
  const r = await postJson(h.base, path, body);
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toBe('application/json');
  expect(Object.keys(r.json)).toEqual(['error', 'code']);
  if (typeof message === 'string') expect(r.json.error).toBe(message);
  else expect(r.json.error).toMatch(message);
}

describe('404: unknown model or version', () => {
  it('unknown model', async () => {
    await expectError({ inputs: [mlpInput()] }, 404, "Request for unknown model: 'nope' is not found", '/v2/models/nope/infer');
  });
  it('unknown version', async () => {
    await expectError({ inputs: [mlpInput()] }, 404, "Request for unknown model: 'mlp' version 3 is not found", '/v2/models/mlp/versions/3/infer');
  });
  it('unknown endpoint and wrong method', async () => {
    const r = await call(h.base, '/v2/models/mlp/infer');
    expect(r.status).toBe(404);
    expect(r.json.error).toBe('unknown endpoint: GET /v2/models/mlp/infer');
  });
});

describe('400: the request does not fit the model', () => {
  it('unknown input', async () => {
    await expectError({ inputs: [mlpInput(), mlpInput({ name: 'extra' })] }, 400, "unknown input 'extra'; the model's inputs are 'input'");
  });
  it('missing input', async () => {
    await expectError(
      { inputs: [{ name: 'a', datatype: 'INT64', shape: [1, 3], data: [1, 2, 3] }] },
      400,
      "missing input 'b'; the model's inputs are 'a', 'b'",
      '/v2/models/multi_io/infer',
    );
  });
  it('no inputs array', async () => {
    await expectError({ id: 'x' }, 400, "'inputs' must be an array, got undefined");
  });
  it('unknown requested output', async () => {
    await expectError({ inputs: [mlpInput()], outputs: [{ name: 'logits' }] }, 400, "unknown output 'logits'; the model's outputs are 'output'");
  });
  it('datatype mismatch', async () => {
    await expectError({ inputs: [mlpInput({ datatype: 'FP64' })] }, 400, "input 'input': expected datatype FP32, got FP64");
  });
  it('unknown datatype', async () => {
    await expectError({ inputs: [mlpInput({ datatype: 'FLOAT' })] }, 400, /^input 'input': unknown datatype "FLOAT"; expected one of BOOL, /);
  });
  it('rank mismatch', async () => {
    await expectError({ inputs: [mlpInput({ shape: [256] })] }, 400, "input 'input': expected shape [-1,256] (rank 2), got [256] (rank 1)");
  });
  it('fixed dimension mismatch', async () => {
    await expectError({ inputs: [mlpInput({ shape: [1, 255], data: row(255) })] }, 400, "input 'input': expected shape [-1,256], got [1,255]");
  });
  it('data length vs shape', async () => {
    await expectError({ inputs: [mlpInput({ data: row(255) })] }, 400, "input 'input': expected 256 FP32 values for shape [1,256], got 255");
  });
  it('a value that is not a number names its index', async () => {
    const data = row();
    (data as unknown[])[17] = 'x';
    await expectError({ inputs: [mlpInput({ data })] }, 400, 'input \'input\': value at index 17 is not a number (got "x")');
  });
  it('integer out of range names the datatype and index', async () => {
    await expectError(
      {
        inputs: [
          { name: 'a', datatype: 'INT64', shape: [1, 3], data: [1, '9223372036854775808', 3] },
          { name: 'b', datatype: 'FP32', shape: [1, 3], data: [0, 0, 0] },
        ],
      },
      400,
      "input 'a': value at index 1 (\"9223372036854775808\") is out of range for INT64 [-9223372036854775808, 9223372036854775807]",
      '/v2/models/multi_io/infer',
    );
  });
  it('batch dimensions that disagree between inputs', async () => {
    await expectError(
      {
        inputs: [
          { name: 'a', datatype: 'INT64', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
          { name: 'b', datatype: 'FP32', shape: [1, 3], data: [0, 0, 0] },
        ],
      },
      400,
      "input 'b': batch size 1 does not match input 'a' batch size 2",
      '/v2/models/multi_io/infer',
    );
  });
  it('batch over max_batch_size', async () => {
    await expectError({ inputs: [mlpInput({ shape: [5, 256], data: row(5 * 256) })] }, 400, 'batch size 5 exceeds max_batch_size 4');
  });
  it('bad request parameters name the parameter', async () => {
    await expectError({ inputs: [mlpInput()], parameters: { timeout: -1 } }, 400, "request parameter 'timeout' must be a non-negative integer (microseconds), got -1");
    await expectError({ inputs: [mlpInput()], parameters: { binary_data_output: 'yes' } }, 400, 'request parameter \'binary_data_output\' must be a boolean, got "yes"');
  });
});

describe('400: malformed protocol', () => {
  it('malformed JSON', async () => {
    await expectError('{"inputs": [', 400, /^malformed JSON: /);
  });
  it('a JSON body that is not an object', async () => {
    await expectError('[1,2]', 400, 'the request must be a JSON object, got [1,2]');
  });
  it('Inference-Header-Content-Length beyond the body', async () => {
    const { body } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [1, 256], bytes: bytes(new Float32Array(256)) }]);
    const res = await call(h.base, '/v2/models/mlp/infer', { method: 'POST', body, headers: { 'inference-header-content-length': String(body.length + 1) } });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe(`Inference-Header-Content-Length ${body.length + 1} is beyond the end of the body (${body.length} bytes)`);
  });
  it('Inference-Header-Content-Length that is not a number', async () => {
    const res = await call(h.base, '/v2/models/mlp/infer', { method: 'POST', body: '{}', headers: { 'inference-header-content-length': 'ten' } });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe("Inference-Header-Content-Length must be a non-negative integer, got 'ten'");
  });
  it('binary_data_size that does not match the shape', async () => {
    const header = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], parameters: { binary_data_size: 1000 } }] });
    const body = Buffer.concat([Buffer.from(header), Buffer.alloc(1000)]);
    const res = await call(h.base, '/v2/models/mlp/infer', { method: 'POST', body, headers: { 'inference-header-content-length': String(header.length) } });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe("input 'input': binary_data_size 1000 does not match FP32 shape [1,256] (expected 1024 bytes)");
  });
  it('binary data that does not add up to the body', async () => {
    const { body, headerLength } = binaryRequest([{ name: 'input', datatype: 'FP32', shape: [1, 256], bytes: bytes(new Float32Array(256)) }]);
    const res = await call(h.base, '/v2/models/mlp/infer', { method: 'POST', body: Buffer.concat([body, Buffer.alloc(8)]), headers: { 'inference-header-content-length': String(headerLength) } });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe("the request carries 1032 bytes of binary data but the inputs' binary_data_size add up to 1024");
  });
  it('binary_data_size without the binary extension header', async () => {
    await expectError(
      { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 256], parameters: { binary_data_size: 1024 } }] },
      400,
      "input 'input': parameters.binary_data_size is set but the request carries no binary data (no Inference-Header-Content-Length header, or a text stream frame)",
    );
  });
});

describe('413: body over the limit', () => {
  it('an announced Content-Length over the limit is refused before the body is read', async () => {
    const big = JSON.stringify({ inputs: [mlpInput({ data: row(), pad: 'x'.repeat(LIMIT) })] });
    const r = await postJson(h.base, '/v2/models/mlp/infer', big);
    expect(r.status).toBe(413);
    expect(r.json.error).toBe(`request body of ${Buffer.byteLength(big)} bytes exceeds the limit of ${LIMIT} bytes`);
  });

  it('a chunked body (no Content-Length) is cut off at the limit', async () => {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: h.port, method: 'POST', path: '/v2/models/mlp/infer', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (sent < 8) {
          sent++;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    expect(status).toBe(413);
    expect(JSON.parse(body).error).toMatch(new RegExp(`^request body of at least \\d+ bytes exceeds the limit of ${LIMIT} bytes$`));
  });

  it('the server keeps serving after refusing bodies', async () => {
    const r = await postJson(h.base, '/v2/models/mlp/infer', { inputs: [mlpInput()] });
    expect(r.status).toBe(200);
    expect(r.json.outputs[0].shape).toEqual([1, 16]);
  });
});
