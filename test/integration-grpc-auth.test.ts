/**
 * Access control over gRPC against a real server with an auth file: every RPC needs what the
 * HTTP route answering the same question needs (GRPC_RPC_ROUTES), with API keys in the
 * `authorization` metadata, and over mTLS (--tls-ca) the client certificate's subject is the
 * principal of the auth file's `mtls` entry. Certificates are made here with openssl.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addKey } from '../lib/auth/api-key';
import { AuditLog } from '../lib/auth/audit';
import { createSecurity, type SecuritySetup } from '../lib/auth/serve-flags';
import { GRPC_RPC_ROUTES, grpcRouteOf, type GrpcRpc } from '../lib/auth/route-scopes';
import { loadProtos } from '../lib/grpc/proto';
import { mlpModel } from './fixtures/models';
import { makeCertificates } from './helpers/auth-client';
import { openStream, rawFp32Request, startGrpcHarness, unary, type GrpcHarness, type StreamAnswer } from './helpers/grpc-harness';

const MLP = { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' };
const MODELS = [{ name: 'mlp', versions: { 1: (d: string) => mlpModel(d, MLP) } }];
const INFER = rawFp32Request('mlp', 'input', [1, 4], Float32Array.of(0.1, 0.2, 0.3, 0.4));
const SHM_DIR = '/dev/shm';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-grpc-auth-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The status code of a call (OK when it succeeds). */
async function statusOf(client: grpc.Client, method: string, request: unknown, metadata = new grpc.Metadata()): Promise<grpc.status> {
  try {
    await unary(client, method, request, { deadline: Date.now() + 15_000 }, metadata);
    return grpc.status.OK;
  } catch (e) {
    return (e as grpc.ServiceError).code;
  }
}

function bearer(key: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${key}`);
  return m;
}

describe('the RPC scope table', () => {
  it('names every RPC of the service, each an HTTP route of HTTP_ROUTE_SCOPES', () => {
    const rpcs = Object.keys(loadProtos().inference).sort();
    expect(Object.keys(GRPC_RPC_ROUTES).sort()).toEqual(rpcs);
    for (const rpc of rpcs) {
      expect(grpcRouteOf(rpc as GrpcRpc, false).need, rpc).toBeDefined();
      expect(grpcRouteOf(rpc as GrpcRpc, true).need, rpc).toBeDefined();
    }
    expect(grpcRouteOf('SystemSharedMemoryRegister', false).need).toBe('manage');
    expect(grpcRouteOf('SystemSharedMemoryStatus', false).need).toBe('monitor');
    expect(grpcRouteOf('TraceSetting', false).need).toBe('monitor');
    expect(grpcRouteOf('TraceSetting', true).need).toBe('manage');
    expect(grpcRouteOf('LogSettings', true).need).toBe('manage');
    expect(grpcRouteOf('ServerLive', false).need).toBe('open');
  });
});

describe('API keys in metadata: each RPC needs its HTTP twin\'s scope', () => {
  let h: GrpcHarness;
  const keys: Record<string, string> = {};
  const audit: string[] = [];
  let shmKey = '';
  let security: SecuritySetup | undefined;

  beforeAll(async () => {
    const authFile = join(dir, 'keys.json');
    keys.infer = addKey(authFile, 'inferer', ['infer']);
    keys.monitor = addKey(authFile, 'watcher', ['monitor']);
    keys.manage = addKey(authFile, 'operator', ['manage']);
    shmKey = `/tw-grpc-auth-${process.pid}`;
    writeFileSync(SHM_DIR + shmKey, new Uint8Array(64));
    security = createSecurity({ authFile }, '127.0.0.1', {}, { audit: new AuditLog({ write: (line) => audit.push(line) }) });
    h = await startGrpcHarness({ models: MODELS, loadModels: ['mlp'], modelControl: 'explicit', security });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
    security?.close();
    rmSync(SHM_DIR + shmKey, { force: true });
  });

  it('health is open; everything else needs a credential (UNAUTHENTICATED without one)', async () => {
    expect(await statusOf(h.client, 'ServerLive', {})).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'ServerReady', {})).toBe(grpc.status.OK);
    for (const [rpc, request] of [['ServerMetadata', {}], ['ModelMetadata', { name: 'mlp' }], ['ModelInfer', INFER], ['SystemSharedMemoryStatus', {}], ['TraceSetting', { settings: {} }], ['LogSettings', { settings: {} }], ['RepositoryModelUnload', { model_name: 'mlp' }]] as const) {
      expect(await statusOf(h.client, rpc, request), rpc).toBe(grpc.status.UNAUTHENTICATED);
    }
    const bad = await statusOf(h.client, 'ServerMetadata', {}, bearer('tw_' + 'x'.repeat(43)));
    expect(bad).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('monitor reads shared memory, trace and log settings; changing them needs manage', async () => {
    const monitor = bearer(keys.monitor!);
    expect(await statusOf(h.client, 'SystemSharedMemoryStatus', {}, monitor)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'CudaSharedMemoryStatus', {}, monitor)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'TraceSetting', { settings: {} }, monitor)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'LogSettings', { settings: {} }, monitor)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'ModelStatistics', {}, monitor)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'SystemSharedMemoryRegister', { name: 'r', key: shmKey, byte_size: 64 }, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await statusOf(h.client, 'SystemSharedMemoryUnregister', {}, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await statusOf(h.client, 'CudaSharedMemoryUnregister', {}, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await statusOf(h.client, 'TraceSetting', { settings: { trace_rate: { value: ['5'] } } }, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await statusOf(h.client, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 1 } } }, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    // Before this change gRPC's repository RPCs were not checked at all.
    expect(await statusOf(h.client, 'RepositoryModelUnload', { model_name: 'mlp' }, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await statusOf(h.client, 'ModelInfer', INFER, monitor)).toBe(grpc.status.PERMISSION_DENIED);
    // A refused management action is audited as HTTP's is.
    expect(audit.some((l) => l.includes('"shm.register"') && l.includes('watcher') && l.includes('FORBIDDEN'))).toBe(true);
    // Nothing was changed.
    expect((await unary(h.client, 'SystemSharedMemoryStatus', {}, {}, monitor)).regions).toEqual({});
    expect(h.tw.server.log.settings.log_verbose_level).toBe(0);
  });

  it('manage registers and unregisters regions and changes settings; infer infers and reads model metadata only', async () => {
    const manage = bearer(keys.manage!);
    expect(await statusOf(h.client, 'SystemSharedMemoryRegister', { name: 'r', key: shmKey, byte_size: 64 }, manage)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'SystemSharedMemoryUnregister', { name: 'r' }, manage)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 0 } } }, manage)).toBe(grpc.status.OK);
    const infer = bearer(keys.infer!);
    expect(await statusOf(h.client, 'ModelInfer', INFER, infer)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'ModelMetadata', { name: 'mlp' }, infer)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'ServerMetadata', {}, infer)).toBe(grpc.status.OK);
    expect(await statusOf(h.client, 'SystemSharedMemoryStatus', {}, infer)).toBe(grpc.status.PERMISSION_DENIED);
    expect(await statusOf(h.client, 'RepositoryModelUnload', { model_name: 'mlp' }, infer)).toBe(grpc.status.PERMISSION_DENIED);
  });
});

describe('mTLS: the client certificate subject is the auth file\'s mtls principal', () => {
  let h: GrpcHarness;
  let security: SecuritySetup | undefined;
  const file = (name: string): Buffer => readFileSync(join(dir, name));

  beforeAll(async () => {
    expect(existsSync('/usr/bin/openssl'), '/usr/bin/openssl is missing: apt-get install openssl').toBe(true);
    makeCertificates(dir, [{ ca: 'ca', issue: [{ name: 'server', cn: 'localhost' }, { name: 'batch', cn: 'batch-job' }, { name: 'ops', cn: 'ops-team' }, { name: 'stranger', cn: 'intruder' }] }]);
    const authFile = join(dir, 'mtls.json');
    writeFileSync(
      authFile,
      JSON.stringify({
        mtls: [
          { subject: 'CN=batch-job', name: 'batch', scopes: ['infer:mlp'] },
          { subject: 'CN=ops-team', name: 'ops', scopes: ['manage', 'monitor'] },
        ],
      }),
    );
    security = createSecurity({ authFile, tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') } }, '127.0.0.1', {}, { audit: new AuditLog({ write: () => undefined }) });
    h = await startGrpcHarness({ models: MODELS, loadModels: ['mlp'], security });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
    security?.close();
  });

  function clientAs(name: string): grpc.Client {
    const { Inference } = loadProtos().clients;
    return new Inference(h.address, grpc.credentials.createSsl(file('ca.pem'), file(`${name}.key`), file(`${name}.pem`)), { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' });
  }

  it('a known subject gets its scopes: infer on its model works, management is refused', async () => {
    const batch = clientAs('batch');
    try {
      const answer = await unary(batch, 'ModelInfer', INFER);
      expect(answer.raw_output_contents[0]).toHaveLength(8);
      expect(await statusOf(batch, 'ModelMetadata', { name: 'mlp' })).toBe(grpc.status.OK);
      expect(await statusOf(batch, 'SystemSharedMemoryRegister', { name: 'r', key: '/x', byte_size: 4 })).toBe(grpc.status.PERMISSION_DENIED);
      expect(await statusOf(batch, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 1 } } })).toBe(grpc.status.PERMISSION_DENIED);
      // The stream is the same principal.
      const stream = openStream(batch);
      const answers: StreamAnswer[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        stream.on('data', (a: StreamAnswer) => answers.push(a));
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      stream.write({ ...INFER, id: 's1' });
      stream.end();
      await ended;
      expect(answers[0]!.error_message).toBe('');
    } finally {
      batch.close();
    }
  });

  it('another subject gets its own scopes: manage and monitor, no inference', async () => {
    const ops = clientAs('ops');
    try {
      expect(await statusOf(ops, 'LogSettings', { settings: { log_verbose_level: { uint32_param: 0 } } })).toBe(grpc.status.OK);
      expect(await statusOf(ops, 'SystemSharedMemoryStatus', {})).toBe(grpc.status.OK);
      expect(await statusOf(ops, 'ModelInfer', INFER)).toBe(grpc.status.PERMISSION_DENIED);
    } finally {
      ops.close();
    }
  });

  it('a subject not in the auth file (certificate of the same CA) gets UNAUTHENTICATED', async () => {
    const stranger = clientAs('stranger');
    try {
      expect(await statusOf(stranger, 'ModelInfer', INFER)).toBe(grpc.status.UNAUTHENTICATED);
      expect(await statusOf(stranger, 'ServerMetadata', {})).toBe(grpc.status.UNAUTHENTICATED);
      try {
        await unary(stranger, 'ModelInfer', INFER);
      } catch (e) {
        expect((e as grpc.ServiceError).details).toContain("client certificate subject 'CN=intruder' is not in the auth file");
      }
    } finally {
      stranger.close();
    }
  });
});
