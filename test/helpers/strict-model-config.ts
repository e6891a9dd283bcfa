/**
 * Parses a model config JSON as Triton's ModelConfig the way protobuf's strict JSON parser does
 * (Python's json_format.ParseDict, which Triton's tools use on GET .../config): every field must
 * exist in the message (proto or lowerCamel JSON name), each value must have its field's type,
 * at most one member of a oneof is set. protobufjs's fromObject ignores unknown fields and
 * converts loosely, so this walks the reflection itself and returns every problem it finds.
 */
import { join } from 'node:path';
import * as protobuf from 'protobufjs';

// The same schema the gRPC service answers ModelConfig with (proto/model_config.proto).
const PROTO = join(__dirname, '..', '..', 'proto', 'model_config.proto');

let modelConfig: protobuf.Type | undefined;

function rootType(): protobuf.Type {
  if (modelConfig === undefined) {
    const root = new protobuf.Root();
    root.loadSync(PROTO, { keepCase: true });
    root.resolveAll();
    modelConfig = root.lookupType('inference.ModelConfig');
  }
  return modelConfig;
}

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** An integer as protobuf JSON writes it: a number, or a decimal string (64-bit fields). */
function integer(v: unknown): bigint | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : undefined;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  return undefined;
}

function checkScalar(type: string, v: unknown, path: string, errors: string[]): void {
  const bad = (what: string) => errors.push(`${path}: expected ${what}, got ${JSON.stringify(v)}`);
  if (type === 'string') {
    if (typeof v !== 'string') bad('a string');
  } else if (type === 'bool') {
    if (typeof v !== 'boolean') bad('true or false');
  } else if (type === 'double' || type === 'float') {
    if (typeof v !== 'number' && !(typeof v === 'string' && (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v) || ['NaN', 'Infinity', '-Infinity'].includes(v)))) bad('a number');
  } else if (type === 'bytes') {
    if (typeof v !== 'string') bad('base64 text');
  } else {
    const n = integer(v);
    const range: [bigint, bigint] | undefined = INT32.has(type)
      ? [-(2n ** 31n), 2n ** 31n - 1n]
      : UINT32.has(type)
        ? [0n, 2n ** 32n - 1n]
        : INT64.has(type)
          ? [-(2n ** 63n), 2n ** 63n - 1n]
          : UINT64.has(type)
            ? [0n, 2n ** 64n - 1n]
            : undefined;
    if (range === undefined) errors.push(`${path}: unhandled type ${type}`);
    else if (n === undefined || n < range[0] || n > range[1]) bad(`a ${type}`);
  }
}

function checkValue(field: protobuf.Field, v: unknown, path: string, errors: string[]): void {
  if (v === null) return; // protobuf JSON: null is the field's default
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    const ok = typeof v === 'string' ? v in resolved.values : typeof v === 'number' && Object.values(resolved.values).includes(v);
    if (!ok) errors.push(`${path}: expected one of ${Object.keys(resolved.values).join(', ')}, got ${JSON.stringify(v)}`);
  } else if (resolved instanceof protobuf.Type) {
    checkMessage(resolved, v, path, errors);
  } else {
    checkScalar(field.type, v, path, errors);
  }
}

function checkMessage(type: protobuf.Type, value: unknown, path: string, errors: string[]): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    errors.push(`${path || '(root)'}: expected an object (${type.name}), got ${JSON.stringify(value)}`);
    return;
  }
  const byJsonName = new Map<string, protobuf.Field>();
  for (const f of type.fieldsArray) {
    byJsonName.set(f.name, f);
    byJsonName.set(lowerCamel(f.name), f);
  }
  const set = new Set<string>();
  for (const [key, v] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    const field = byJsonName.get(key);
    if (field === undefined) {
      errors.push(`${at}: no such field in ${type.name}`);
      continue;
    }
    if (set.has(field.name)) errors.push(`${at}: field given twice (as ${field.name} and ${lowerCamel(field.name)})`);
    if (v !== null) set.add(field.name);
    if (field instanceof protobuf.MapField) {
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v)) {
        errors.push(`${at}: expected an object (map), got ${JSON.stringify(v)}`);
        continue;
      }
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        if (field.keyType !== 'string') checkScalar(field.keyType, k, `${at} key "${k}"`, errors);
        checkValue(field, item, `${at}.${k}`, errors);
      }
    } else if (field.repeated) {
      if (v === null) continue;
      if (!Array.isArray(v)) {
        errors.push(`${at}: expected an array, got ${JSON.stringify(v)}`);
        continue;
      }
      v.forEach((item, i) => checkValue(field, item, `${at}[${i}]`, errors));
    } else {
      checkValue(field, v, at, errors);
    }
  }
  for (const oneof of type.oneofsArray) {
    const members = oneof.fieldsArray.filter((f) => set.has(f.name)).map((f) => f.name);
    if (members.length > 1) errors.push(`${path || '(root)'}: ${members.join(' and ')} are members of oneof ${oneof.name}: at most one may be set`);
  }
}

/** Every way `config` fails to parse strictly as Triton's ModelConfig (empty: it parses). */
export function strictModelConfigErrors(config: unknown): string[] {
  const errors: string[] = [];
  checkMessage(rootType(), config, '', errors);
  return errors;
}
