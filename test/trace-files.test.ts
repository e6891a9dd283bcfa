/**
 * The trace files and the sampling rules, on their own: lines the disk cannot take yet are
 * dropped and counted (never queued without end), the byte and file budgets hold, a planted
 * symbolic link is not followed; sampling takes every rate-th request of its scope while the
 * count lasts, and a model's override keeps its own counters.
 */
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TraceFiles } from '../lib/server/trace-writer';
import { TraceSettings } from '../lib/server/trace-settings';
import { tempDir } from './helpers/engine-run';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function dir(): string {
  const t = tempDir('tw-trace-files-');
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('TraceFiles', () => {
  it('drops and counts lines past the in-memory budget instead of queueing them', async () => {
    const d = dir();
    const files = new TraceFiles(d, { maxBufferedBytes: 4096 });
    const line = JSON.stringify({ pad: 'x'.repeat(200) });
    // Written in one tick: the stream cannot flush in between, so its buffer hits the budget.
    for (let i = 0; i < 1000; i++) files.write('t.jsonl', 0, line);
    expect(files.dropped).toBeGreaterThan(900);
    expect(files.written + files.dropped).toBe(1000);
    await files.close();
    const lines = readFileSync(join(d, 't.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(files.written);
    expect(lines.every((l) => l === line)).toBe(true);
  });

  it('keeps to the byte and file budgets', async () => {
    const d = dir();
    const bytes = new TraceFiles(d, { maxBytes: 100 });
    for (let i = 0; i < 10; i++) bytes.write('b.jsonl', 0, 'x'.repeat(29)); // 30 bytes a line with its newline
    expect([bytes.written, bytes.dropped]).toEqual([3, 7]);
    await bytes.close();
    const rotating = new TraceFiles(d, { maxFiles: 2 });
    for (let i = 0; i < 5; i++) rotating.write('r.jsonl', 1, '{}');
    expect([rotating.written, rotating.dropped]).toEqual([2, 3]);
    await rotating.close();
    expect([existsSync(join(d, 'r.jsonl.0')), existsSync(join(d, 'r.jsonl.1')), existsSync(join(d, 'r.jsonl.2'))]).toEqual([true, true, false]);
  });

  it('does not follow a symbolic link planted in the directory', async () => {
    const d = dir();
    const outside = join(dir(), 'victim');
    writeFileSync(outside, 'untouched');
    symlinkSync(outside, join(d, 'link.jsonl'));
    const files = new TraceFiles(d);
    files.write('link.jsonl', 0, '{"evil":true}');
    await new Promise((r) => setTimeout(r, 100));
    await files.close();
    expect(readFileSync(outside, 'utf8')).toBe('untouched');
    expect(files.dropped).toBe(1);
  });
});

describe('TraceSettings sampling', () => {
  const on = { level: 'TIMESTAMPS' as const, file: 't.jsonl' };

  it('samples every rate-th request while the count lasts', () => {
    const s = new TraceSettings();
    expect(s.active).toBe(false);
    s.update({ ...on, rate: 2, count: 3 }, undefined, 'test');
    expect(s.active).toBe(true);
    const sampled = Array.from({ length: 10 }, () => s.sample('m') !== undefined);
    expect(sampled).toEqual([false, true, false, true, false, true, false, false, false, false]);
    expect(s.effective().count).toBe(0);
    expect(s.active).toBe(false);
  });

  it('gives a model override its own counters and falls back field by field', () => {
    const s = new TraceSettings();
    s.update({ ...on, rate: 1000 }, undefined, 'test');
    s.update({ rate: 1, count: 1 }, 'a', 'test');
    expect(s.effective('a')).toEqual({ level: 'TIMESTAMPS', rate: 1, count: 1, logFrequency: 0, file: 't.jsonl' });
    expect(s.sample('a')).toBeDefined();
    expect(s.sample('a')).toBeUndefined();
    expect(s.sample('b')).toBeUndefined(); // the global rate: 1 in 1000
    s.update({ rate: null, count: null }, 'a', 'test');
    expect(s.effective('a')).toEqual(s.effective());
  });
});

describe('TraceControl', () => {
  it('reports dropped lines as a warning, at most once per interval', async () => {
    const { FrontDoor } = await import('../lib/frontdoor/front-door');
    const { createRequestContext } = await import('../lib/frontdoor/request-context');
    const { TraceControl } = await import('../lib/server/trace-control');
    const service = { infer: () => Promise.resolve({ modelName: 'm', modelVersion: '1', outputs: [] }) } as never;
    const door = new FrontDoor({ service });
    const warnings: string[] = [];
    // A byte budget smaller than one line: every trace is dropped.
    const trace = new TraceControl(door, { traceDir: dir(), limits: { maxBytes: 10 }, warn: (l) => warnings.push(l) });
    expect(door.tracer).toBeUndefined();
    trace.update({ level: 'TIMESTAMPS', file: 't.jsonl', rate: 1 }, undefined, 'test');
    expect(door.tracer).toBe(trace);
    const call = { model: 'm', version: undefined, request: { inputs: [] } as never, context: createRequestContext('http', '127.0.0.1', {}), signal: new AbortController().signal };
    for (let i = 0; i < 3; i++) await door.infer(call);
    await new Promise((r) => setImmediate(r));
    expect(trace.files!.dropped).toBe(3);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^trace: 1 trace line\(s\) dropped/);
    trace.update({ level: 'OFF' }, undefined, 'test');
    expect(door.tracer).toBeUndefined();
    await trace.close();
  });
});
