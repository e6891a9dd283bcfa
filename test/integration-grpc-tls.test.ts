/**
 * gRPC over TLS on a real server started with the HTTPS flags (createTensorwire with
 * security.tls, as `tensorwire serve --tls-cert --tls-key [--tls-ca]`), certificates made
 * here with openssl: inference over TLS with the server's CA; a plaintext client gets
 * nothing; with --tls-ca a client certificate is required and must come from that CA.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../lib/grpc/proto';
import { createTensorwire, type Tensorwire } from '../lib/tensorwire';
import { mlpModel } from './fixtures/models';
import { makeCertificates } from './helpers/auth-client';
import { tempDir } from './helpers/engine-run';
import { writeHarnessModel } from './helpers/server-harness';

const MLP = { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' };
const REQUEST = {
  model_name: 'mlp',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4] }],
  raw_input_contents: [Buffer.from(Float32Array.of(0.1, 0.2, 0.3, 0.4).buffer)],
};

let certs = '';
const file = (name: string): Buffer => readFileSync(join(certs, name));

beforeAll(() => {
  expect(existsSync('/usr/bin/openssl'), '/usr/bin/openssl is missing: apt-get install openssl').toBe(true);
  certs = mkdtempSync(join(tmpdir(), 'tw-grpctls-'));
  makeCertificates(certs, [
    { ca: 'ca', issue: [{ name: 'server', cn: 'localhost' }, { name: 'client', cn: 'batch-job' }, { name: 'renewed', cn: 'renewed' }] },
    { ca: 'other-ca', issue: [{ name: 'stranger', cn: 'batch-job' }] },
  ]);
});
afterAll(() => rmSync(certs, { recursive: true, force: true }));

async function start(tls: { cert: string; key: string; ca?: string }): Promise<{ tw: Tensorwire; close(): Promise<void> }> {
  const { dir: repo, cleanup } = tempDir('tw-grpctls-repo-');
  await writeHarnessModel(repo, { name: 'mlp', versions: { 1: (d: string) => mlpModel(d, MLP) } });
  const tw = await createTensorwire({ repository: repo, port: 0, grpcPort: 0, modelControl: 'none', loadModels: ['mlp'], security: { tls }, log: () => undefined });
  return {
    tw,
    async close() {
      await Promise.all([tw.server.close(), tw.grpc!.close(1000)]);
      await tw.service.shutdown();
      cleanup();
    },
  };
}

/** ModelInfer with `credentials`: the answer's first output, or the error. */
function infer(address: string, credentials: grpc.ChannelCredentials): Promise<{ values?: Float32Array; error?: grpc.ServiceError }> {
  const { Inference } = loadProtos().clients;
  const client = new Inference(address, credentials, { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' }) as unknown as grpc.Client & { ModelInfer: (request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, answer: { raw_output_contents: Buffer[] }) => void) => void };
  return new Promise((resolve) => {
    client.ModelInfer(REQUEST, { deadline: Date.now() + 15_000 }, (error: grpc.ServiceError | null, answer: { raw_output_contents: Buffer[] }) => {
      client.close();
      if (error) resolve({ error });
      else {
        const raw = answer.raw_output_contents[0]!;
        resolve({ values: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) });
      }
    });
  });
}

describe('gRPC over TLS', () => {
  let server: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    server = await start({ cert: join(certs, 'server.pem'), key: join(certs, 'server.key') });
  }, 60_000);
  afterAll(async () => server?.close());

  it('answers a client that trusts the CA; a plaintext client or one trusting another CA gets UNAVAILABLE', async () => {
    expect(server.tw.grpc!.tls).toBe(true);
    const address = server.tw.grpc!.address;
    const ok = await infer(address, grpc.credentials.createSsl(file('ca.pem')));
    expect(ok.error).toBeUndefined();
    expect(ok.values).toHaveLength(2);
    const plain = await infer(address, grpc.credentials.createInsecure());
    expect(plain.error?.code).toBe(grpc.status.UNAVAILABLE);
    const distrusting = await infer(address, grpc.credentials.createSsl(file('other-ca.pem')));
    expect(distrusting.error?.code).toBe(grpc.status.UNAVAILABLE);
  });
});

describe('gRPC over TLS with --tls-ca: client certificates required', () => {
  let server: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    server = await start({ cert: join(certs, 'server.pem'), key: join(certs, 'server.key'), ca: join(certs, 'ca.pem') });
  }, 60_000);
  afterAll(async () => server?.close());

  it('answers a client with a certificate of the CA; refuses one without a certificate or with another CA\'s', async () => {
    const address = server.tw.grpc!.address;
    const ok = await infer(address, grpc.credentials.createSsl(file('ca.pem'), file('client.key'), file('client.pem')));
    expect(ok.error).toBeUndefined();
    expect(ok.values).toHaveLength(2);
    const anonymous = await infer(address, grpc.credentials.createSsl(file('ca.pem')));
    expect(anonymous.error?.code).toBe(grpc.status.UNAVAILABLE);
    const stranger = await infer(address, grpc.credentials.createSsl(file('ca.pem'), file('stranger.key'), file('stranger.pem')));
    expect(stranger.error?.code).toBe(grpc.status.UNAVAILABLE);
    // The server serves on.
    expect((await infer(address, grpc.credentials.createSsl(file('ca.pem'), file('client.key'), file('client.pem')))).values).toHaveLength(2);
  });
});

/** The CN of the certificate the gRPC port presents to a new connection. */
function servedCommonName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: file('ca.pem'), servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      const cn = socket.getPeerCertificate().subject.CN;
      socket.end();
      resolve(Array.isArray(cn) ? cn.join(',') : cn);
    });
    socket.on('error', reject);
  });
}

describe('gRPC certificate reload', () => {
  it('a reload of the server certificate reaches gRPC: new connections get the new one, an open channel keeps working, unusable files change nothing', async () => {
    const live = mkdtempSync(join(tmpdir(), 'tw-grpctls-live-'));
    copyFileSync(join(certs, 'server.pem'), join(live, 'cert.pem'));
    copyFileSync(join(certs, 'server.key'), join(live, 'key.pem'));
    const server = await start({ cert: join(live, 'cert.pem'), key: join(live, 'key.pem') });
    const { Inference } = loadProtos().clients;
    const channel = new Inference(server.tw.grpc!.address, grpc.credentials.createSsl(file('ca.pem')), { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' }) as unknown as grpc.Client & { ModelInfer: (request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null) => void) => void };
    const callOn = (): Promise<grpc.ServiceError | null> => new Promise((resolve) => channel.ModelInfer(REQUEST, { deadline: Date.now() + 15_000 }, (error) => resolve(error)));
    try {
      const port = server.tw.grpc!.port;
      expect(await servedCommonName(port)).toBe('localhost');
      expect(await callOn()).toBeNull();

      copyFileSync(join(certs, 'renewed.pem'), join(live, 'cert.pem'));
      copyFileSync(join(certs, 'renewed.key'), join(live, 'key.pem'));
      await server.tw.server.reloadTls(); // what SIGHUP and the file watch run
      expect(await servedCommonName(port)).toBe('renewed');
      expect(await callOn()).toBeNull(); // the channel opened before the reload

      // A half-written certificate: the reload fails and the running certificate stays.
      writeFileSync(join(live, 'cert.pem'), readFileSync(join(certs, 'server.pem'), 'utf8').slice(0, 200));
      await expect(server.tw.server.reloadTls()).rejects.toThrow();
      expect(await servedCommonName(port)).toBe('renewed');
      expect((await infer(server.tw.grpc!.address, grpc.credentials.createSsl(file('ca.pem')))).error).toBeUndefined();
    } finally {
      channel.close();
      await server.close();
      rmSync(live, { recursive: true, force: true });
    }
  }, 60_000);
});
