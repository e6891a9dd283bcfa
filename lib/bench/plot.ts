/**
 * `--plot`: an SVG of latency (p50 and p99) against throughput, one point per level, the
 * classic "latency-throughput curve". Hand-written SVG, no dependency.
 */
import type { BenchReport } from './run';

const W = 720;
const H = 440;
const M = { left: 70, right: 150, top: 50, bottom: 55 };

/** A round step for about `target` ticks over `range` (1, 2 or 5 times a power of ten). */
export function niceStep(range: number, target = 5): number {
  if (!(range > 0)) return 1;
  const raw = range / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const m = raw / pow;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function fmt(n: number): string {
  return Number(n.toPrecision(6)).toString();
}

/** The SVG document. Levels with no successful request are left out of the curves. */
export function renderPlot(report: BenchReport): string {
  const pts = report.levels.filter((l) => l.requests > 0);
  const maxX = Math.max(1, ...pts.map((l) => l.throughput));
  const maxY = Math.max(0.001, ...pts.map((l) => l.latencyMs.p99));
  const sx = niceStep(maxX * 1.05);
  const sy = niceStep(maxY * 1.1);
  const xMax = Math.ceil((maxX * 1.05) / sx) * sx;
  const yMax = Math.ceil((maxY * 1.1) / sy) * sy;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (v: number) => M.left + (v / xMax) * pw;
  const Y = (v: number) => M.top + ph - (v / yMax) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  const title = `${report.model}${report.modelVersion ? ` v${report.modelVersion}` : ''} — ${report.protocol}, ${report.mode}, ${report.samplesPerRequest} sample(s)/request`;
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`);
  // Grid and ticks.
  for (let v = 0; v <= xMax + sx / 2; v += sx) {
    out.push(`<line x1="${fmt(X(v))}" y1="${M.top}" x2="${fmt(X(v))}" y2="${M.top + ph}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${fmt(X(v))}" y="${M.top + ph + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  for (let v = 0; v <= yMax + sy / 2; v += sy) {
    out.push(`<line x1="${M.left}" y1="${fmt(Y(v))}" x2="${M.left + pw}" y2="${fmt(Y(v))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${fmt(Y(v) + 4)}" text-anchor="end">${fmt(v)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle">throughput (requests/s)</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms)</text>`);

  const series: [string, string, (l: (typeof pts)[number]) => number][] = [
    ['p50', '#1f77b4', (l) => l.latencyMs.p50],
    ['p99', '#d62728', (l) => l.latencyMs.p99],
  ];
  series.forEach(([name, color, get], si) => {
    if (pts.length > 0) {
      const path = pts.map((l) => `${fmt(X(l.throughput))},${fmt(Y(get(l)))}`).join(' ');
      out.push(`<polyline class="series-${name}" fill="none" stroke="${color}" stroke-width="2" points="${path}"/>`);
      for (const l of pts) {
        out.push(`<circle cx="${fmt(X(l.throughput))}" cy="${fmt(Y(get(l)))}" r="3.5" fill="${color}"><title>${escapeXml(`${report.mode} ${l.level}: ${l.throughput.toFixed(1)} req/s, ${name} ${get(l).toFixed(3)} ms`)}</title></circle>`);
      }
    }
    const ly = M.top + 10 + si * 20;
    out.push(`<line x1="${W - M.right + 15}" y1="${ly}" x2="${W - M.right + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${W - M.right + 46}" y="${ly + 4}">${name} latency</text>`);
  });
  // Level labels next to the p99 points.
  for (const l of pts) out.push(`<text x="${fmt(X(l.throughput) + 5)}" y="${fmt(Y(l.latencyMs.p99) - 6)}" fill="#555" font-size="10">${escapeXml(String(l.level))}</text>`);
  out.push(`<text x="${W - M.right + 15}" y="${M.top + 60}" fill="#555" font-size="10">labels: ${report.mode === 'rate' ? 'target rate' : 'concurrency'}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
