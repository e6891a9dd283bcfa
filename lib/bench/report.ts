/**
 * Text, CSV and JSON forms of a bench report.
 */
import type { BenchReport, LevelResult } from './run';
import { SERVER_STAGES } from './server-metrics';

/** Right-aligned columns under a header. */
export function formatColumns(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

const f = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** The client-side table: one row per level. */
export function formatLevels(report: BenchReport): string {
  const rate = report.mode === 'rate';
  const header = [rate ? 'Rate' : 'Concurrency', 'Req/s', 'Infer/s', 'p50 ms', 'p90 ms', 'p95 ms', 'p99 ms', 'Max ms', 'Errors'];
  if (rate) header.splice(1, 0, 'Sent/s');
  const rows = report.levels.map((l) => {
    const row = [String(l.level) + (l.stable === false ? '*' : ''), f(l.throughput, 1), f(l.inferPerSec, 1), f(l.latencyMs.p50, 3), f(l.latencyMs.p90, 3), f(l.latencyMs.p95, 3), f(l.latencyMs.p99, 3), f(l.latencyMs.max, 3), String(l.errors)];
    if (rate) row.splice(1, 0, f(l.sendRate, 1));
    return row;
  });
  let text = formatColumns(header, rows);
  if (report.levels.some((l) => l.stable === false)) text += '* did not stabilise within --max-windows: figures of the last 3 windows\n';
  for (const l of report.levels) {
    const kinds = Object.entries(l.errorKinds);
    if (kinds.length > 0) text += `errors at ${l.level}: ${kinds.map(([k, v]) => `${k} x${v}`).join(', ')}\n`;
    if (l.totals.connectErrors > 0) text += `connect failures at ${l.level}: ${l.totals.connectErrors} (${l.totals.lastConnectError ?? ''})\n`;
  }
  return text;
}

/** The server-side table (mean ms per stage, from /metrics), or '' when no level has it. */
export function formatServer(report: BenchReport): string {
  if (!report.levels.some((l) => l.server)) return '';
  const header = [report.mode === 'rate' ? 'Rate' : 'Concurrency', 'Requests', ...SERVER_STAGES.map((s) => `${s} ms`), 'Avg batch'];
  const rows = report.levels.map((l) => {
    const s = l.server;
    if (!s) return [String(l.level), '-', ...SERVER_STAGES.map(() => '-'), '-'];
    return [String(l.level), String(s.requests), ...SERVER_STAGES.map((st) => f(s.stagesMs[st], 3)), s.avgBatch === undefined ? '-' : f(s.avgBatch, 2)];
  });
  return 'Server-side (tensorwire /metrics, mean per request):\n' + formatColumns(header, rows);
}

const CSV_COLUMNS: [string, (l: LevelResult) => string | number][] = [
  ['mode', (l) => l.mode],
  ['level', (l) => l.level],
  ['windows', (l) => l.windows],
  ['stable', (l) => (l.stable === undefined ? '' : String(l.stable))],
  ['duration_s', (l) => l.durationS],
  ['requests', (l) => l.requests],
  ['errors', (l) => l.errors],
  ['throughput_rps', (l) => l.throughput],
  ['infer_per_sec', (l) => l.inferPerSec],
  ['send_rate_rps', (l) => l.sendRate],
  ['latency_min_ms', (l) => l.latencyMs.min],
  ['latency_mean_ms', (l) => l.latencyMs.mean],
  ['latency_p50_ms', (l) => l.latencyMs.p50],
  ['latency_p90_ms', (l) => l.latencyMs.p90],
  ['latency_p95_ms', (l) => l.latencyMs.p95],
  ['latency_p99_ms', (l) => l.latencyMs.p99],
  ['latency_max_ms', (l) => l.latencyMs.max],
  ['sent_total', (l) => l.totals.sent],
  ...SERVER_STAGES.map((s): [string, (l: LevelResult) => string | number] => [`server_${s}_ms`, (l) => l.server?.stagesMs[s] ?? '']),
  ['server_avg_batch', (l) => l.server?.avgBatch ?? ''],
];

/** CSV with a header row and one row per level. */
export function toCsv(report: BenchReport): string {
  const rows = [CSV_COLUMNS.map(([name]) => name).join(',')];
  for (const l of report.levels) rows.push(CSV_COLUMNS.map(([, get]) => String(get(l))).join(','));
  return rows.join('\n') + '\n';
}

/** The JSON file: the report as it is. */
export function toJson(report: BenchReport): string {
  return JSON.stringify(report, null, 2) + '\n';
}
