/**
 * Request tracing: the front door's tracer (sampling, per-stage timestamps) over the trace
 * settings (trace-settings.ts) and the trace files (trace-writer.ts).
 *
 * Cost when tracing is off: the tracer is installed on the front door only while some scope
 * is on, so an untraced server pays one property check per call.
 *
 * One line per sampled request, Triton's trace shape on one line:
 *
 *   {"id":7,"model_name":"mlp","model_version":"1","request_id":"r1","timestamps":[
 *     {"name":"REQUEST_START","ns":...},{"name":"QUEUE_START","ns":...},
 *     {"name":"COMPUTE_START","ns":...},{"name":"COMPUTE_INPUT_END","ns":...},
 *     {"name":"COMPUTE_OUTPUT_START","ns":...},{"name":"COMPUTE_END","ns":...},
 *     {"name":"REQUEST_END","ns":...},{"name":"HTTP_SEND_END","ns":...}]}
 *
 * Nanoseconds since the epoch. REQUEST_START is when the front door got the call (decoded),
 * REQUEST_END when the core answered; the queue and compute stamps are placed from the
 * durations the scheduler measured for that request (queue wait, input copy, run, output
 * copy), ending where the core answered; `<TRANSPORT>_SEND_END` is taken once the
 * transport handed the answer to its socket. A failed request has REQUEST_START, REQUEST_END
 * and its error code.
 */
import type { FrontDoor } from '../frontdoor/front-door';
import type { CallTrace, CallTracer } from '../frontdoor/front-door';
import type { InferCall } from '../frontdoor/types';
import type { InferResponse } from '../protocol/types';
import { TensorwireError } from '../errors';
import { TraceSettings, type TraceChange, type TraceSetting } from './trace-settings';
import { TraceFiles, type TraceFileLimits } from './trace-writer';

/** Nanoseconds since the epoch, from the monotonic clock (anchored once to the wall clock). */
const EPOCH_OFFSET_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
function nowNs(): bigint {
  return EPOCH_OFFSET_NS + process.hrtime.bigint();
}

/** Options of TraceControl. */
export interface TraceControlOptions {
  /** Directory trace files are written in (`--trace-dir`); without it trace_file cannot be set. */
  traceDir?: string;
  limits?: Partial<TraceFileLimits>;
  /** Where dropped trace lines are reported (a warning at most every DROP_REPORT_MS). */
  warn?: (line: string) => void;
}

/** Dropped lines are reported at most this often. */
const DROP_REPORT_MS = 10_000;

/** Owns a server's trace settings and files, and installs the tracer on its front door while tracing is on. */
export class TraceControl implements CallTracer {
  readonly settings = new TraceSettings();
  readonly files: TraceFiles | undefined;
  private nextId = 1;
  private readonly warn: ((line: string) => void) | undefined;
  private reportedDrops = 0;
  private lastDropReport = 0;

  constructor(private readonly frontDoor: FrontDoor, options: TraceControlOptions = {}) {
    this.files = options.traceDir === undefined ? undefined : new TraceFiles(options.traceDir, options.limits);
    this.warn = options.warn;
  }

  /** Whether trace files may be named (the server has a trace directory). */
  get hasTraceDir(): boolean {
    return this.files !== undefined;
  }

  /** Applies a change (global when `model` is undefined) and installs or removes the tracer. */
  update(change: TraceChange, model: string | undefined, where: string): TraceSetting {
    this.settings.update(change, model, where);
    this.refresh();
    return this.settings.effective(model);
  }

  /** Installs the tracer while any scope samples, removes it otherwise. */
  private refresh(): void {
    this.frontDoor.tracer = this.settings.active && this.files !== undefined ? this : undefined;
  }

  begin(call: InferCall): CallTrace | undefined {
    const setting = this.settings.sample(call.model);
    if (this.settings.exhausted) {
      // A count ran out: with nothing else on, later calls skip the hook again.
      this.settings.exhausted = false;
      this.refresh();
    }
    if (setting === undefined) return undefined;
    return new RequestTrace(this, this.nextId++, call, setting);
  }

  /** Writes a finished trace (called after the answer went out). */
  record(setting: TraceSetting, line: string): void {
    const files = this.files;
    if (files === undefined) return;
    files.write(setting.file, setting.logFrequency, line);
    if (files.dropped > this.reportedDrops && this.warn !== undefined) {
      const now = Date.now();
      if (now - this.lastDropReport >= DROP_REPORT_MS) {
        this.warn(`trace: ${files.dropped - this.reportedDrops} trace line(s) dropped (the disk is behind, a trace file cannot be written, or the trace byte/file budget is spent); ${files.dropped} in all`);
        this.reportedDrops = files.dropped;
        this.lastDropReport = now;
      }
    }
  }

  /** Flushes and closes the trace files. */
  async close(): Promise<void> {
    this.frontDoor.tracer = undefined;
    await this.files?.close();
  }
}

class RequestTrace implements CallTrace {
  private readonly startNs = nowNs();

  constructor(
    private readonly control: TraceControl,
    private readonly id: number,
    private readonly call: InferCall,
    private readonly setting: TraceSetting,
  ) {}

  end(response: InferResponse | undefined, error: unknown): void {
    const endNs = nowNs();
    const stamps: [string, bigint][] = [['REQUEST_START', this.startNs]];
    const t = response?.timings;
    if (t !== undefined) {
      // Placed backwards from the answer, clamped so the stamps never go back in time.
      const computeEnd = endNs;
      const outputStart = max(this.startNs, computeEnd - us(t.computeOutputUs));
      const inputEnd = max(this.startNs, outputStart - us(t.computeInferUs));
      const computeStart = max(this.startNs, inputEnd - us(t.computeInputUs));
      const queueStart = max(this.startNs, computeStart - us(t.queueUs));
      stamps.push(['QUEUE_START', queueStart], ['COMPUTE_START', computeStart], ['COMPUTE_INPUT_END', inputEnd], ['COMPUTE_OUTPUT_START', outputStart], ['COMPUTE_END', computeEnd]);
    }
    stamps.push(['REQUEST_END', endNs]);
    const version = response?.modelVersion ?? this.call.version ?? '';
    const code = error === undefined ? undefined : error instanceof TensorwireError ? error.code : 'INTERNAL';
    const transport = this.call.context.transport.toUpperCase();
    // After the promise continuations that send the answer (as the live feed does).
    setImmediate(() => {
      stamps.push([`${transport}_SEND_END`, nowNs()]);
      const head = JSON.stringify({ id: this.id, model_name: this.call.model, model_version: version, request_id: this.call.request.id ?? '', ...(code !== undefined ? { error: code } : {}) });
      // ns as exact JSON integers (past 2^53, so not through Number).
      const list = stamps.map(([name, ns]) => `{"name":"${name}","ns":${ns}}`).join(',');
      this.control.record(this.setting, `${head.slice(0, -1)},"timestamps":[${list}]}`);
    });
  }
}

function us(micros: number): bigint {
  return BigInt(Math.max(0, Math.round(micros * 1000)));
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
