/**
 * docs/metrics.md and the registry must name the same metrics, with the same types and labels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { Registry } from 'prom-client';
import { createMetrics } from '../lib/metrics/registry';
import { AuditLog } from '../lib/auth/audit';
import { cacheMetrics } from '../lib/cache/cache-stage';
import { ResponseCache } from '../lib/cache/response-cache';
import { routingMetrics } from '../lib/routing/routing-metrics';

interface Documented {
  type: string;
  labels: string[];
}

/** Rows of the markdown tables whose first cell is a back-quoted metric name. */
function parseDocs(): Map<string, Documented> {
  const text = readFileSync(join(__dirname, '..', 'docs', 'metrics.md'), 'utf8');
  const out = new Map<string, Documented>();
  for (const line of text.split('\n')) {
    const m = /^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(\w+)\s*\|([^|]*)\|/.exec(line);
    if (!m) continue;
    const labels = [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((x) => x[1]!);
    expect(out.has(m[1]!), `${m[1]} documented twice`).toBe(false);
    out.set(m[1]!, { type: m[2]!, labels });
  }
  return out;
}

/** Every metric of a registry with all optional parts enabled (GPU provider given). */
async function registered(): Promise<Map<string, Documented>> {
  const metrics = createMetrics(new Registry(), {
    gpuProvider: () => [{ gpu: '0', utilization: 0.5, memoryUsedBytes: 1, memoryTotalBytes: 2 }],
  });
  // The access-control counters (registered by createTensorwire when security is on).
  new AuditLog({ registry: metrics.registry, write: () => undefined });
  // The traffic-policy and response-cache families (registered on first use of a policy or a cached model).
  routingMetrics(metrics.registry);
  cacheMetrics(metrics.registry, new ResponseCache());
  const out = new Map<string, Documented>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    // getMetricsAsArray() is typed as bare MetricObjects; every registered metric has get().
    const got = await (metric as unknown as { get(): Promise<{ name: string; type: string }> }).get();
    const labels = [...((metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [])];
    out.set(got.name, { type: got.type, labels });
  }
  return out;
}

describe('docs/metrics.md', () => {
  test('documents every registered metric with its type and labels', async () => {
    const docs = parseDocs();
    const reg = await registered();
    expect(reg.size).toBeGreaterThan(30);
    for (const [name, r] of reg) {
      expect(docs.get(name), `${name} is registered but not in docs/metrics.md`).toBeDefined();
      expect(docs.get(name)!.type, `${name} type`).toBe(r.type);
      expect([...docs.get(name)!.labels].sort(), `${name} labels`).toEqual([...r.labels].sort());
    }
  });

  test('documents nothing that is not registered', async () => {
    const docs = parseDocs();
    const reg = await registered();
    const extra = [...docs.keys()].filter((n) => !reg.has(n));
    expect(extra).toEqual([]);
  });

  test('GPU gauges exist only when a GPU provider is given', () => {
    const names = createMetrics(new Registry(), { defaultMetrics: false }).registry.getMetricsAsArray().map((m) => m.name);
    expect(names.filter((n) => n.includes('gpu'))).toEqual([]);
    expect(names.filter((n) => n.startsWith('nodejs_') || n.startsWith('process_'))).toEqual([]);
  });
});
