/**
 * The Prometheus text exposition format (what GET /metrics answers), parsed strictly for
 * tests: every sample must belong to a family declared by a `# TYPE` line (histogram samples
 * by their base name), label values are unescaped, and a line that is not valid text format
 * throws, so a malformed exposition fails the test instead of reading as "0".
 */
/** One sample line: its full name (with _bucket/_sum/_count), labels and value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
/** A metric family: the name and type of its # TYPE line and its samples. */
export interface Family {
  name: string;
  type: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL_PAIR = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;

/** A sample value as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan"). */
function parseNumber(text: string): number {
  if (/^[+-]?inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return NaN;
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw new Error(`not a sample value: '${text}'`);
  return n;
}

/** Parses an exposition into families; throws on a line that is not valid text format. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const declare = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', samples: [] }));
    return f;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) ?(.*)$`).exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') declare(meta[2]!).type = meta[3]!;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    LABEL_PAIR.lastIndex = 0;
    while (LABEL_PAIR.lastIndex < body.length) {
      const at = LABEL_PAIR.lastIndex;
      const p = LABEL_PAIR.exec(body);
      if (!p) throw new Error(`bad labels at ${at} in: ${line}`);
      labels[p[1]!] = p[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const name = m[1]!;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const family = families.get(name) ?? (families.get(base)?.type === 'histogram' ? families.get(base) : undefined);
    if (!family) throw new Error(`sample ${name} has no # TYPE line`);
    family.samples.push({ name, labels, value: parseNumber(m[3]!) });
  }
  return families;
}

/** One scrape of /metrics, parsed, with lookups. */
export class Scrape {
  readonly families: Map<string, Family>;
  readonly samples: Sample[];
  constructor(readonly text: string) {
    this.families = parseExposition(text);
    this.samples = [...this.families.values()].flatMap((f) => f.samples);
  }
  private matching(name: string, labels: Record<string, string>): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }
  /** Sum of the matching samples; throws when none matches (a missing series is a failure, not a 0). */
  get(name: string, labels: Record<string, string> = {}): number {
    const found = this.matching(name, labels);
    if (found.length === 0) throw new Error(`no sample ${name}${JSON.stringify(labels)} in /metrics`);
    return found.reduce((a, s) => a + s.value, 0);
  }
  /** Like get, but 0 when no series matches (failure reasons appear on first use). */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.matching(name, labels).reduce((a, s) => a + s.value, 0);
  }
  has(name: string, labels: Record<string, string> = {}): boolean {
    return this.matching(name, labels).length > 0;
  }
}
