/**
 * TraceSetting and LogSettings: the gRPC form of GET/POST /v2/trace/setting (and a model's)
 * and GET/POST /v2/logging over the same TraceControl and ServerLog, read and validated by
 * the same functions. A request with no settings reads; one with some changes them; both
 * answer the settings in force afterwards.
 *
 * Wire shapes (Triton's): trace values are lists of strings (`trace_rate: ["100"]`; an empty
 * list clears a model's override, as JSON null does); log values are bool_param,
 * uint32_param or string_param.
 */
import { TensorwireError } from '../errors';
import type { InferenceService } from '../core/types';
import type { LogSettings, ServerLog } from '../server/server-log';
import type { TraceControl } from '../server/trace-control';
import { readTraceChange, wireTraceSetting } from '../server/trace-settings';
import { truncateForMessage } from '../util/message-text';

export interface WireTraceSettingRequest {
  settings: Record<string, { value: string[] }>;
  model_name?: string;
}

export interface WireLogSettingValue {
  parameter_choice?: 'bool_param' | 'uint32_param' | 'string_param';
  bool_param?: boolean;
  uint32_param?: number;
  string_param?: string;
}

export interface WireLogSettingsRequest {
  settings: Record<string, WireLogSettingValue>;
}

/** True when the request changes settings (has any). */
export function changesSettings(request: { settings: Record<string, unknown> }): boolean {
  for (const _ in request.settings) return true;
  return false;
}

/** A trace setting's values as the JSON body HTTP reads: the level a list, others one string, an empty list null. */
function traceBody(settings: Record<string, { value: string[] }>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [key, { value }] of Object.entries(settings)) {
    // Duplicate or odd shapes are refused by readTraceChange, naming the setting.
    const v = value.length === 0 ? null : key === 'trace_level' || value.length > 1 ? value : value[0];
    Object.defineProperty(body, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return body;
}

export function traceSetting(trace: TraceControl, service: InferenceService, request: WireTraceSettingRequest): { settings: Record<string, { value: string[] }> } {
  const model = request.model_name || undefined;
  // The model must be known, as HTTP's model routes ask (NOT_FOUND).
  if (model !== undefined) service.modelReadiness(model);
  const where = model === undefined ? 'trace setting' : `trace setting of model '${truncateForMessage(model)}'`;
  const setting = changesSettings(request) ? trace.update(readTraceChange(traceBody(request.settings), where, trace.hasTraceDir), model, where) : trace.settings.effective(model);
  const settings: Record<string, { value: string[] }> = {};
  for (const [key, v] of Object.entries(wireTraceSetting(setting))) settings[key] = { value: Array.isArray(v) ? v : [v] };
  return { settings };
}

function logValue(key: string, v: WireLogSettingValue): unknown {
  switch (v.parameter_choice) {
    case 'bool_param':
      return v.bool_param ?? false;
    case 'uint32_param':
      return v.uint32_param ?? 0;
    case 'string_param':
      return v.string_param ?? '';
    default:
      throw new TensorwireError('INVALID_INPUT', `log settings: ${truncateForMessage(key)} has no value (set bool_param, uint32_param or string_param)`);
  }
}

function wireLogValue(value: LogSettings[keyof LogSettings]): WireLogSettingValue {
  if (typeof value === 'boolean') return { bool_param: value };
  if (typeof value === 'number') return { uint32_param: value };
  return { string_param: value };
}

export function logSettings(log: ServerLog, request: WireLogSettingsRequest): { settings: Record<string, WireLogSettingValue> } {
  let current: Readonly<LogSettings> = log.settings;
  if (changesSettings(request)) {
    const body: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(request.settings)) Object.defineProperty(body, key, { value: logValue(key, v), enumerable: true, writable: true, configurable: true });
    current = log.update(body);
  }
  const settings: Record<string, WireLogSettingValue> = {};
  for (const [key, v] of Object.entries(current) as [keyof LogSettings, LogSettings[keyof LogSettings]][]) settings[key] = wireLogValue(v);
  return { settings };
}
