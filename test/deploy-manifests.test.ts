/**
 * deploy/k8s against Kubernetes and against tensorwire itself. Every manifest validates
 * against the Kubernetes schemas (kubernetes-models, @kubernetes-models/keda; KServe's CRDs
 * against the schemas in fixtures/kserve-schemas.ts), the GPU overlay's patch applies and
 * still validates, and what the manifests promise is what the server does: the server started
 * with the Deployment's (and the KServe runtime's) own container args (port and repository
 * rewritten to a free port and a temporary repository) answers the probe paths, serves the
 * port the probes and the Service name, and exports every metric the autoscalers query.
 */
import { writeFileSync } from 'node:fs';
import { addKey } from '../lib/auth/api-key';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import Ajv from 'ajv';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { Container } from 'kubernetes-models/v1/Container';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpModel } from './fixtures/models';
import { CLUSTER_SERVING_RUNTIME_SCHEMA, INFERENCE_SERVICE_SCHEMA } from './fixtures/kserve-schemas';
import { ROOT } from './helpers/built-package';
import { tempDir } from './helpers/engine-run';
import { waitFor } from './helpers/hotswap';

const K8S = join(ROOT, 'deploy', 'k8s');

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped YAML, checked by the schemas below */
type Manifest = Record<string, any>;

interface Loaded {
  file: string;
  doc: Manifest;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFiles(join(dir, e.name)) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : []));
}

function parseYaml(file: string): unknown[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${relative(ROOT, file)}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

/** Every Kubernetes object under deploy/k8s (kustomizations and patches are not objects). */
function manifests(): Loaded[] {
  return yamlFiles(K8S)
    .filter((f) => !f.endsWith('kustomization.yaml') && !f.includes(`${join('k8s', 'gpu')}`))
    .flatMap((file) => parseYaml(file).map((doc) => ({ file: relative(ROOT, file), doc: doc as Manifest })));
}

const ajv = new Ajv({ allErrors: true, strict: false });
const kserve = {
  ClusterServingRuntime: ajv.compile(CLUSTER_SERVING_RUNTIME_SCHEMA),
  InferenceService: ajv.compile(INFERENCE_SERVICE_SCHEMA),
};

/**
 * Runs a kubernetes-models object's schema check. Its `validate` comes from
 * @kubernetes-models/base, whose types this project's module resolution does not reach.
 */
function checked(model: unknown): void {
  (model as { validate(): void }).validate();
}

/** Validates `doc` against its kind's schema; throws naming the field at fault. */
function validate(doc: Manifest): void {
  const key = `${doc.apiVersion} ${doc.kind}`;
  switch (key) {
    case 'apps/v1 Deployment':
      return checked(new Deployment(doc as any));
    case 'v1 Service':
      return checked(new Service(doc as any));
    case 'v1 PersistentVolumeClaim':
      return checked(new PersistentVolumeClaim(doc as any));
    case 'policy/v1 PodDisruptionBudget':
      return checked(new PodDisruptionBudget(doc as any));
    case 'keda.sh/v1alpha1 ScaledObject':
      return checked(new ScaledObject(doc as any));
    case 'serving.kserve.io/v1alpha1 ClusterServingRuntime':
    case 'serving.kserve.io/v1beta1 InferenceService': {
      const check = kserve[doc.kind as keyof typeof kserve];
      if (!check(doc as unknown)) throw new Error(ajv.errorsText(check.errors));
      for (const c of doc.spec.containers ?? []) checked(new Container(c));
      return;
    }
    default:
      throw new Error(`no schema for ${key}`);
  }
}

/** RFC 6902 "add" (the only op deploy/k8s/gpu uses), on a copy. */
function applyAddPatch(doc: Manifest, ops: { op: string; path: string; value: unknown }[]): Manifest {
  const out = structuredClone(doc);
  for (const { op, path, value } of ops) {
    if (op !== 'add') throw new Error(`unsupported patch op ${op}`);
    const keys = path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    const parent = keys.reduce((o: any, k) => (o[k] ??= {}), out);
    if (Array.isArray(parent) && last === '-') parent.push(value);
    else parent[last] = value;
  }
  return out;
}

function one(kind: string, file?: string): Manifest {
  const found = manifests().filter((m) => m.doc.kind === kind && (file === undefined || m.file.includes(file)));
  expect(found, `${kind} in ${file ?? 'deploy/k8s'}`).toHaveLength(1);
  return found[0]!.doc;
}

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

describe('deploy/k8s manifests validate against the Kubernetes, KEDA and KServe schemas', () => {
  it('every object validates', () => {
    const all = manifests();
    expect(all.map((m) => `${m.doc.kind}`).sort()).toEqual(['ClusterServingRuntime', 'Deployment', 'InferenceService', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'ScaledObject', 'ScaledObject', 'Service']);
    for (const m of all) expect(() => validate(m.doc), m.file).not.toThrow();
  });

  it('the validators catch a broken manifest (so the test above can fail)', () => {
    const dep = structuredClone(one('Deployment'));
    dep.spec.template.spec.containers[0].ports[0].containerPort = '8000x';
    expect(() => validate(dep)).toThrow(/containerPort/);
    const isvc = structuredClone(one('InferenceService'));
    isvc.spec.predictor.model.runtme = 'tensorwire';
    expect(() => validate(isvc)).toThrow(/additional properties/);
    const so = structuredClone(one('ScaledObject', 'k8s/scaledobject'));
    so.spec.maxReplicaCount = 'ten';
    expect(() => validate(so)).toThrow(/maxReplicaCount/);
  });

  it('every kustomization lists files that exist, and the GPU overlay patches the Deployment into a valid one with a GPU', () => {
    for (const k of yamlFiles(K8S).filter((f) => f.endsWith('kustomization.yaml'))) {
      const kust = parseYaml(k)[0] as Manifest;
      for (const r of [...(kust.resources ?? []), ...(kust.patches ?? []).map((p: Manifest) => p.path)]) expect(existsSync(join(k, '..', r)), `${relative(ROOT, k)}: ${r}`).toBe(true);
    }
    const ops = parseYaml(join(K8S, 'gpu', 'deployment-gpu.yaml'))[0] as { op: string; path: string; value: unknown }[];
    const gpu = applyAddPatch(one('Deployment'), ops);
    expect(() => validate(gpu)).not.toThrow();
    const c = gpu.spec.template.spec.containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(argValue(c.args, '--default-provider')).toBe('cuda');
  });

  it('the Service, PDB and ScaledObject select the Deployment, and the Service ports are container ports', () => {
    const dep = one('Deployment');
    const labels = dep.spec.template.metadata.labels;
    const svc = one('Service');
    const pdb = one('PodDisruptionBudget');
    expect(labels).toMatchObject(svc.spec.selector);
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    expect(one('ScaledObject', 'k8s/scaledobject').spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: dep.metadata.name });
    const ports = Object.fromEntries(dep.spec.template.spec.containers[0].ports.map((p: Manifest) => [p.name, p.containerPort]));
    expect(ports).toEqual({ http: 8000, grpc: 8001 });
    expect(Object.fromEntries(svc.spec.ports.map((p: Manifest) => [p.name, ports[p.targetPort]]))).toEqual({ http: 8000, grpc: 8001 });
  });

  it('the grace period covers the preStop sleep plus --drain-timeout-ms', () => {
    const pod = one('Deployment').spec.template.spec;
    const c = pod.containers[0];
    const preStop = c.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe('sleep');
    const drainS = Number(argValue(c.args, '--drain-timeout-ms')) / 1000;
    expect(drainS).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Number(preStop[1]) + drainS + 5);
  });

  it('the InferenceService names the tensorwire runtime, whose formats and protocol it asks for', () => {
    const runtime = one('ClusterServingRuntime');
    const model = one('InferenceService').spec.predictor.model;
    expect(model.runtime).toBe(runtime.metadata.name);
    expect(runtime.spec.supportedModelFormats.map((f: Manifest) => f.name)).toContain(model.modelFormat.name);
    expect(runtime.spec.protocolVersions).toContain(model.protocolVersion);
    expect(argValue(runtime.spec.containers[0].args, '--repo')).toBe('/mnt/models');
    expect(runtime.spec.annotations['prometheus.kserve.io/port']).toBe(argValue(runtime.spec.containers[0].args, '--port'));
    const dep = one('Deployment');
    expect(dep.spec.template.metadata.annotations['prometheus.io/port']).toBe(argValue(dep.spec.template.spec.containers[0].args, '--port'));
  });
});

/** `tensorwire serve` run from the TypeScript sources with the given args. */
async function serveWith(args: string[]): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(process.execPath, ['-r', join(ROOT, 'test/helpers/ts-require.cjs'), join(ROOT, 'lib/cli.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  let port = 0;
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`tensorwire ${args.join(' ')} exited (${child.exitCode}):\n${out}`);
      port = Number(/serving on http:\/\/[^:]+:(\d+)/.exec(out)?.[1] ?? 0);
      return port > 0;
    },
    30_000,
    'tensorwire to listen',
  );
  return { child, port, output: () => out };
}

describe.each([
  ['deploy/k8s Deployment', () => one('Deployment').spec.template.spec.containers[0] as Manifest],
  ['deploy/k8s/kserve ClusterServingRuntime', () => one('ClusterServingRuntime').spec.containers[0] as Manifest],
])('the server started with the %s container args', (_name, container) => {
  const { dir: repo, cleanup } = tempDir('tw-deploy-');
  let server: Awaited<ReturnType<typeof serveWith>>;
  /** Headers a scrape sends (a monitor key when the manifest requires credentials). */
  let scrapeHeaders: Record<string, string> = {};
  let c: Manifest;

  beforeAll(async () => {
    c = container();
    await mlpModel(join(repo, 'mlp', '1'), { inputDim: 4, hidden: 8, outputDim: 2, file: 'model.onnx' });
    const args = [...(c.args as string[])];
    const portAt = args.indexOf('--port');
    const repoAt = args.indexOf('--repo');
    expect(portAt).toBeGreaterThan(0);
    expect(repoAt).toBeGreaterThan(0);
    args[portAt + 1] = '0';
    args[repoAt + 1] = repo;
    const grpcAt = args.indexOf('--grpc-port');
    if (grpcAt >= 0) args[grpcAt + 1] = '0';
    // The manifest's auth file is a mounted Secret: a real one with Prometheus's monitor key stands in for it.
    const authAt = args.indexOf('--auth');
    if (authAt >= 0) {
      const authFile = join(repo, '..', `auth-${process.pid}-${Date.now()}.json`);
      writeFileSync(authFile, JSON.stringify({ keys: [] }));
      scrapeHeaders = { authorization: `Bearer ${addKey(authFile, 'prometheus', ['monitor'])}` };
      args[authAt + 1] = authFile;
    }
    server = await serveWith(args);
  }, 60_000);

  afterAll(async () => {
    if (server?.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('exit', r));
    }
    cleanup();
  });

  /** The container port a probe's `port` (a name or a number) refers to. */
  function probePort(port: string | number): number {
    if (typeof port === 'number') return port;
    const named = (c.ports as Manifest[]).find((p) => p.name === port);
    expect(named, `container port named ${port}`).toBeDefined();
    return named!.containerPort;
  }

  it('listens on the container port the probes use (its --port), on every interface', () => {
    const declared = Number(argValue(container().args, '--port'));
    expect(declared).toBe(c.ports[0].containerPort);
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean)) expect(probePort(probe.httpGet.port)).toBe(declared);
    expect(argValue(c.args, '--host')).toBe('0.0.0.0');
  });

  it('answers 200 on the readiness, liveness and startup probe paths once the model is loaded', async () => {
    const base = `http://127.0.0.1:${server.port}`;
    await waitFor(async () => (await fetch(`${base}${c.readinessProbe.httpGet.path}`)).status === 200, 30_000, `${c.readinessProbe.httpGet.path} to be 200`);
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean)) {
      expect((await fetch(`${base}${probe.httpGet.path}`)).status, probe.httpGet.path).toBe(200);
    }
    // Not a path that answers 200: a typo in a probe would be caught (401 where credentials are required first).
    expect([401, 404]).toContain((await fetch(`${base}/v2/health/readyz`)).status);
  });

  it('exports every metric the autoscalers query, on the path the scrape annotations name', async () => {
    const names = new Set<string>();
    for (const so of manifests().filter((m) => m.doc.kind === 'ScaledObject')) {
      for (const t of so.doc.spec.triggers) for (const n of (t.metadata.query as string).match(/tensorwire_[a-z_]+/g) ?? []) names.add(n);
    }
    expect([...names].sort()).toEqual(['tensorwire_inflight_requests', 'tensorwire_queue_depth']);
    const dep = one('Deployment');
    const path = dep.spec.template.metadata.annotations['prometheus.io/path'];
    const text = await (await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: scrapeHeaders })).text();
    for (const n of names) expect(text, n).toMatch(new RegExp(`^${n}(\\{[^}]*\\})? `, 'm'));
    expect(text).toMatch(/^tensorwire_queue_depth\{[^}]*model="mlp"/m);
  });
});
