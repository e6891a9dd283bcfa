/**
 * Trace settings (Triton's trace extension): one global scope and optional per-model
 * overrides, each field of which falls back to the global one. This file is pure: it reads
 * and validates the wire form, keeps the settings and decides which request is sampled. The
 * files are trace-writer.ts's, the front door hook trace-control.ts's.
 *
 * On the wire every value is a string (`"trace_rate": "1000"`) and the level an array
 * (`["TIMESTAMPS"]`), as Triton sends them; numbers are accepted too. In a model's POST a
 * field set to null removes the model's override of it.
 */
import { TensorwireError } from '../errors';
import { previewValue, truncateForMessage } from '../util/message-text';

/** The levels tensorwire traces ("TENSORS" is Triton's too, but not implemented here). */
export type TraceLevel = 'OFF' | 'TIMESTAMPS';

/** One scope's settings, every field known. */
export interface TraceSetting {
  level: TraceLevel;
  /** One request in `rate` is sampled. */
  rate: number;
  /** Traces left to take; -1: unlimited. */
  count: number;
  /** 0: one file; N: the traces N at a time into `<file>.0`, `<file>.1`... */
  logFrequency: number;
  /** File name inside the trace directory; '' when none is set. */
  file: string;
}

/** Bounds of the numbers a client can set (inclusive). */
export const TRACE_BOUNDS = {
  rate: [1, 2 ** 31 - 1],
  count: [-1, 2 ** 31 - 1],
  logFrequency: [0, 2 ** 31 - 1],
} as const;

/** A trace file name: no path separator, no leading dot (so neither `..` nor a hidden file), 128 characters at most. */
const TRACE_FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** The defaults of the global scope (Triton's: OFF, every 1000th request, unlimited, one file). */
export const DEFAULT_TRACE_SETTING: Readonly<TraceSetting> = Object.freeze({ level: 'OFF', rate: 1000, count: -1, logFrequency: 0, file: '' });

/** A change as read from a POST: a field absent is kept; null (model scope only) removes the override. */
export type TraceChange = { [K in keyof TraceSetting]?: TraceSetting[K] | null };

const WIRE_FIELDS: Record<string, keyof TraceSetting> = {
  trace_level: 'level',
  trace_rate: 'rate',
  trace_count: 'count',
  log_frequency: 'logFrequency',
  trace_file: 'file',
};

/**
 * Reads a POST body. `traceDir` says whether trace files may be named at all (the server was
 * started with --trace-dir); `where` names the scope in messages.
 */
export function readTraceChange(body: unknown, where: string, traceDir: boolean): TraceChange {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: expected a JSON object like {"trace_level": ["TIMESTAMPS"], "trace_rate": "100"}, got ${previewValue(body)}`);
  }
  const change: TraceChange = {};
  for (const [key, value] of Object.entries(body)) {
    const field = WIRE_FIELDS[key];
    if (field === undefined) {
      throw new TensorwireError('INVALID_INPUT', `${where}: unknown trace setting '${truncateForMessage(key)}' (known: ${Object.keys(WIRE_FIELDS).join(', ')})`);
    }
    if (value === null) {
      change[field] = null;
      continue;
    }
    if (field === 'level') change.level = readLevel(value, where);
    else if (field === 'file') change.file = readFile(value, where, traceDir);
    else change[field] = readNumber(key, field, value, where);
  }
  return change;
}

function readLevel(value: unknown, where: string): TraceLevel {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0 || list.length > 2 || !list.every((l) => typeof l === 'string')) {
    throw new TensorwireError('INVALID_INPUT', `${where}: trace_level must be an array of levels like ["TIMESTAMPS"] or ["OFF"], got ${previewValue(value)}`);
  }
  for (const l of list as string[]) {
    if (l === 'TENSORS') throw new TensorwireError('INVALID_INPUT', `${where}: trace_level "TENSORS" is not supported by tensorwire; use ["TIMESTAMPS"]`);
    if (l !== 'OFF' && l !== 'TIMESTAMPS') throw new TensorwireError('INVALID_INPUT', `${where}: unknown trace_level "${truncateForMessage(l)}" (OFF or TIMESTAMPS)`);
  }
  if (list.includes('OFF') && list.length > 1) throw new TensorwireError('INVALID_INPUT', `${where}: trace_level "OFF" must be the only level given`);
  return list[0] as TraceLevel;
}

function readFile(value: unknown, where: string, traceDir: boolean): string {
  if (typeof value !== 'string') throw new TensorwireError('INVALID_INPUT', `${where}: trace_file must be a file name (a string), got ${previewValue(value)}`);
  if (!traceDir) {
    throw new TensorwireError('INVALID_INPUT', `${where}: trace_file cannot be set: the server was started without --trace-dir DIR (trace files are written only inside that directory)`);
  }
  if (value === '') return '';
  if (!TRACE_FILE_NAME.test(value)) {
    throw new TensorwireError('INVALID_INPUT', `${where}: trace_file '${truncateForMessage(value)}' must be a plain file name inside --trace-dir (letters, digits, _ . -; no path separator, not starting with '.'; at most 128 characters)`);
  }
  return value;
}

function readNumber(key: string, field: 'rate' | 'count' | 'logFrequency', value: unknown, where: string): number {
  const [min, max] = TRACE_BOUNDS[field];
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d{1,12}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new TensorwireError('INVALID_INPUT', `${where}: ${key} must be an integer from ${min} to ${max} (as a string, like "100"), got ${previewValue(value)}`);
  }
  return n;
}

/** One scope: its own fields (all for the global scope, some for a model), its sample counter and what is left of its count. */
export class TraceScope {
  /** Requests seen since the scope's settings last changed. */
  seen = 0;
  /** Traces left, when this scope sets count; -1 unlimited. */
  remaining: number;

  constructor(public own: Partial<TraceSetting>) {
    this.remaining = own.count ?? -1;
  }
}

/** The global scope and the model overrides. */
export class TraceSettings {
  readonly global = new TraceScope({ ...DEFAULT_TRACE_SETTING });
  private readonly models = new Map<string, TraceScope>();
  /** Set when a sample took a scope's last trace (the caller may then uninstall the hook). */
  exhausted = false;

  /** Whether any scope may sample (the front door hook is installed only then). */
  get active(): boolean {
    if (this.isOn(this.global)) return true;
    for (const scope of this.models.values()) if (this.isOn(scope)) return true;
    return false;
  }

  /** The settings in force for `model` (or the global ones), as Triton's GET answers them. */
  effective(model?: string): TraceSetting {
    const scope = model === undefined ? undefined : this.models.get(model);
    const g = this.global.own as TraceSetting;
    const own = scope?.own ?? {};
    return {
      level: own.level ?? g.level,
      rate: own.rate ?? g.rate,
      count: own.count !== undefined ? scope!.remaining : this.global.remaining,
      logFrequency: own.logFrequency ?? g.logFrequency,
      file: own.file ?? g.file,
    };
  }

  /**
   * Applies a change to the global scope (`model` undefined) or a model's; resets that scope's
   * sample counter (and its count, when given). A scope left on must have a trace file.
   */
  update(change: TraceChange, model: string | undefined, where: string): void {
    if (model === undefined) {
      const own = { ...this.global.own };
      for (const [k, v] of Object.entries(change) as [keyof TraceSetting, unknown][]) {
        if (v === null) throw new TensorwireError('INVALID_INPUT', `${where}: null removes a model's override; the global ${wireName(k)} needs a value`);
        (own as Record<string, unknown>)[k] = v;
      }
      this.checkFile(own as TraceSetting, where);
      this.global.own = own;
      this.global.seen = 0;
      if (change.count !== undefined && change.count !== null) this.global.remaining = change.count;
      return;
    }
    const before = this.models.get(model);
    const own: Partial<TraceSetting> = { ...(before?.own ?? {}) };
    for (const [k, v] of Object.entries(change) as [keyof TraceSetting, unknown][]) {
      if (v === null) delete own[k];
      else (own as Record<string, unknown>)[k] = v;
    }
    const merged = { ...(this.global.own as TraceSetting), ...own };
    this.checkFile(merged, where);
    if (Object.keys(own).length === 0) {
      this.models.delete(model);
      return;
    }
    const scope = new TraceScope(own);
    if (change.count === undefined && before?.own.count !== undefined && own.count !== undefined) scope.remaining = before.remaining;
    this.models.set(model, scope);
  }

  /**
   * Whether this request of `model` is traced: every `rate`-th request of its scope, while
   * the count lasts. Called only while `active`.
   */
  sample(model: string): TraceSetting | undefined {
    const scope = this.models.get(model) ?? this.global;
    const g = this.global.own as TraceSetting;
    const own = scope.own;
    // Field by field, so an untraced request allocates nothing.
    if ((own.level ?? g.level) === 'OFF' || (own.file ?? g.file) === '') return undefined;
    const counter = own.count !== undefined ? scope : this.global;
    if (counter.remaining === 0) return undefined;
    if (++scope.seen % (own.rate ?? g.rate) !== 0) return undefined;
    if (counter.remaining > 0 && --counter.remaining === 0) this.exhausted = true;
    return scope === this.global ? g : { ...g, ...own };
  }

  private isOn(scope: TraceScope): boolean {
    const g = this.global.own as TraceSetting;
    const level = scope.own.level ?? g.level;
    const file = scope.own.file ?? g.file;
    const counter = scope.own.count !== undefined ? scope : this.global;
    return level !== 'OFF' && file !== '' && counter.remaining !== 0;
  }

  private checkFile(setting: TraceSetting, where: string): void {
    if (setting.level !== 'OFF' && setting.file === '') {
      throw new TensorwireError('INVALID_INPUT', `${where}: trace_level ${setting.level} needs a trace_file (a file name inside the directory given with --trace-dir DIR)`);
    }
  }
}

function wireName(field: keyof TraceSetting): string {
  return Object.entries(WIRE_FIELDS).find(([, f]) => f === field)![0];
}

/** A setting as Triton's GET answers it: strings, the level an array. */
export function wireTraceSetting(s: TraceSetting): Record<string, string | string[]> {
  return {
    trace_level: [s.level],
    trace_rate: String(s.rate),
    trace_count: String(s.count),
    log_frequency: String(s.logFrequency),
    trace_file: s.file,
    trace_mode: 'triton',
  };
}
