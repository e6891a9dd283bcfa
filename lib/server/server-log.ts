/**
 * The server's log (Triton's logging extension, docs/protocol.md "Logging"): the lines the
 * core writes (models loaded, failed, swapped: INFO), repository warnings (WARNING), failures
 * (ERROR) and, with log_verbose_level >= 1, one line per management action with its result.
 * GET/POST /v2/logging read and change its settings at run time.
 *
 * Lines go to the sink the server was given (stdout by default). log_file cannot be set over
 * the network: a control route that chose where the server writes could overwrite any file
 * the process may write. Redirect stdout instead.
 */
import { TensorwireError } from '../errors';
import { previewValue, truncateForMessage } from '../util/message-text';

/** Log settings, Triton's names and types. */
export interface LogSettings {
  log_file: string;
  log_info: boolean;
  log_warnings: boolean;
  log_errors: boolean;
  log_verbose_level: number;
  log_format: 'default' | 'ISO8601';
}

/** Highest verbose level (level 1 is all tensorwire has; the bound keeps the value meaningful). */
export const MAX_LOG_VERBOSE_LEVEL = 255;

export const DEFAULT_LOG_SETTINGS: Readonly<LogSettings> = Object.freeze({
  log_file: '',
  log_info: true,
  log_warnings: true,
  log_errors: true,
  log_verbose_level: 0,
  log_format: 'default',
});

type Severity = 'I' | 'W' | 'E' | 'V';

/** Writes log lines as the settings say. */
export class ServerLog {
  private current: LogSettings = { ...DEFAULT_LOG_SETTINGS };

  /** `write` receives each line without newline (default: stdout). */
  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(line + '\n')) {}

  get settings(): Readonly<LogSettings> {
    return this.current;
  }

  /** The verbose level in force (callers skip building lines when it is below theirs). */
  get verboseLevel(): number {
    return this.current.log_verbose_level;
  }

  info(line: string): void {
    if (this.current.log_info) this.emit('I', line);
  }

  warn(line: string): void {
    if (this.current.log_warnings) this.emit('W', line);
  }

  error(line: string): void {
    if (this.current.log_errors) this.emit('E', line);
  }

  verbose(level: number, line: string): void {
    if (level <= this.current.log_verbose_level) this.emit('V', line);
  }

  /**
   * Applies a POST /v2/logging body: only the settings given change; an unknown name or a
   * value of the wrong type is a 400 naming it. Nothing changes unless all are valid.
   */
  update(body: unknown): LogSettings {
    if (body === undefined) return this.current;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new TensorwireError('INVALID_INPUT', `log settings: expected a JSON object like {"log_verbose_level": 1}, got ${previewValue(body)}`);
    }
    const next = { ...this.current };
    for (const [key, value] of Object.entries(body)) {
      switch (key) {
        case 'log_file':
          if (value !== '' && value !== null) {
            throw new TensorwireError('INVALID_INPUT', 'log settings: log_file cannot be set over the network (it would let a client choose a file the server writes); tensorwire logs to stdout: redirect it');
          }
          break;
        case 'log_info':
        case 'log_warnings':
        case 'log_errors':
          if (typeof value !== 'boolean') throw new TensorwireError('INVALID_INPUT', `log settings: ${key} must be true or false, got ${previewValue(value)}`);
          next[key] = value;
          break;
        case 'log_verbose_level':
          if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_LOG_VERBOSE_LEVEL) {
            throw new TensorwireError('INVALID_INPUT', `log settings: log_verbose_level must be an integer from 0 to ${MAX_LOG_VERBOSE_LEVEL}, got ${previewValue(value)}`);
          }
          next.log_verbose_level = value;
          break;
        case 'log_format':
          if (value !== 'default' && value !== 'ISO8601') throw new TensorwireError('INVALID_INPUT', `log settings: log_format must be "default" or "ISO8601", got ${previewValue(value)}`);
          next.log_format = value;
          break;
        default:
          throw new TensorwireError('INVALID_INPUT', `log settings: unknown setting '${truncateForMessage(key)}' (known: ${Object.keys(DEFAULT_LOG_SETTINGS).join(', ')})`);
      }
    }
    this.current = next;
    return next;
  }

  /** default: the line as the core wrote it (what tensorwire always printed); ISO8601: time and severity first. */
  private emit(severity: Severity, line: string): void {
    this.write(this.current.log_format === 'ISO8601' ? `${new Date().toISOString()} ${severity} ${line}` : line);
  }
}
