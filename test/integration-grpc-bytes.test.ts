/**
 * BYTES tensors over gRPC end to end, against a real ONNX model with string tensors (an
 * Identity on strings, test/fixtures/string-models.ts): typed bytes_contents and raw
 * (4-byte length + bytes per element) input, the answer's raw_output_contents in Triton's
 * serialized form, a count that does not match the shape refused naming the input, and a
 * stream that serves on after a bad BYTES request.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeBytesElements } from '../lib/protocol/bytes-tensor';
import { NOT_UTF8, stringIdentityModel } from './fixtures/string-models';
import { failure, openStream, startGrpcHarness, unary, type GrpcHarness, type StreamAnswer } from './helpers/grpc-harness';

let h: GrpcHarness;

beforeAll(async () => {
  h = await startGrpcHarness({ models: [{ name: 'strings', versions: { 1: async (d: string) => stringIdentityModel(d) } }], loadModels: ['strings'] });
}, 120_000);
afterAll(async () => h?.close());

const ELEMENTS = [Buffer.from('cat'), Buffer.from(''), Buffer.from('ünïcødé'), Buffer.from('dog\u0000tail')];

describe('BYTES over gRPC with a string identity model', () => {
  it('bytes_contents in: raw_output_contents is the serialized input, shape and datatype as sent', async () => {
    const answer = await unary(h.client, 'ModelInfer', { model_name: 'strings', id: 'b1', inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 2], contents: { bytes_contents: ELEMENTS } }] });
    expect(answer.id).toBe('b1');
    expect(answer.outputs).toMatchObject([{ name: 'echo', datatype: 'BYTES', shape: ['2', '2'] }]);
    expect(Buffer.compare(answer.raw_output_contents[0], serializeBytesElements(ELEMENTS))).toBe(0);
  });

  it('raw BYTES input (Triton\'s serialized form) comes back byte for byte', async () => {
    const raw = serializeBytesElements([Buffer.from('a'), Buffer.alloc(300, 7)]);
    const answer = await unary(h.client, 'ModelInfer', { model_name: 'strings', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2] }], raw_input_contents: [raw] });
    expect(Buffer.compare(answer.raw_output_contents[0], raw)).toBe(0);
  });

  it('a bytes_contents count that does not match the shape: INVALID_ARGUMENT naming the input', async () => {
    const f = await failure(h.client, 'ModelInfer', { model_name: 'strings', inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 2], contents: { bytes_contents: ELEMENTS.slice(0, 3) } }] });
    expect(f.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(f.details).toBe("input 'text': contents.bytes_contents holds 3 elements but BYTES shape [2,2] needs 4");
    const raw = await failure(h.client, 'ModelInfer', { model_name: 'strings', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2] }], raw_input_contents: [serializeBytesElements([Buffer.from('only one')])] });
    expect(raw.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(raw.details).toContain("input 'text'");
    // ONNX string tensors hold text: bytes that are not UTF-8 are refused naming the element.
    const text = await failure(h.client, 'ModelInfer', { model_name: 'strings', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], contents: { bytes_contents: [Buffer.from('a'), Buffer.from(NOT_UTF8)] } }] });
    expect(text.details).toBe("input 'text': BYTES element 1 is not valid UTF-8 text");
  });

  it('a stream answers a bad BYTES request with an error and goes on serving', async () => {
    const stream = openStream(h.client);
    const answers: StreamAnswer[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (a: StreamAnswer) => answers.push(a));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    stream.write({ model_name: 'strings', id: 'bad', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], contents: { bytes_contents: [Buffer.from('x')] } }] });
    stream.write({ model_name: 'strings', id: 'good', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], contents: { bytes_contents: [Buffer.from('x'), Buffer.from('yz')] } }] });
    stream.end();
    await ended;
    expect(answers).toHaveLength(2);
    const byId = new Map(answers.map((a) => [a.infer_response.id, a]));
    expect(byId.get('bad')!.error_message).toContain("input 'text': contents.bytes_contents holds 1 elements but BYTES shape [1,2] needs 2");
    expect(byId.get('good')!.error_message).toBe('');
    expect(Buffer.compare(byId.get('good')!.infer_response.raw_output_contents[0]!, serializeBytesElements([Buffer.from('x'), Buffer.from('yz')]))).toBe(0);
  });
});
