/** The error catalogue, its HTTP statuses and docs/errors.md agree in both directions. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, TensorwireError, toTensorwireError } from '../lib/errors';

const doc = readFileSync(join(__dirname, '..', 'docs', 'errors.md'), 'utf8');
const documented = new Map([...doc.matchAll(/^\| ([A-Z_]+) \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]));

describe('error catalogue', () => {
  it('documents every code with its status, and nothing else', () => {
    const catalogue = new Map(Object.entries(ERROR_CATALOGUE).map(([code, e]) => [code, e.status as number]));
    expect(documented).toEqual(catalogue);
  });

  it('gives each error the status of its code', () => {
    expect(new TensorwireError('QUEUE_FULL', 'x', { retryAfterSeconds: 1 })).toMatchObject({ status: 503, retryAfterSeconds: 1, name: 'TensorwireError' });
    expect(new TensorwireError('DEADLINE_EXCEEDED', 'x').status).toBe(504);
  });

  it('maps native errors by code and anything else to INTERNAL', () => {
    const native = Object.assign(new Error('cannot load model /x.onnx: bad'), { code: 'MODEL_LOAD_FAILED' });
    expect(toTensorwireError(native)).toMatchObject({ code: 'MODEL_LOAD_FAILED', status: 400, message: 'cannot load model /x.onnx: bad' });
    expect(toTensorwireError(new Error('boom'))).toMatchObject({ code: 'INTERNAL', status: 500 });
    expect(toTensorwireError('text')).toMatchObject({ code: 'INTERNAL' });
  });
});
