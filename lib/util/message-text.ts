/**
 * Client text inside error messages. A message echoes what a client sent (an unknown key, a
 * bad value) so the client sees what was wrong, but a hostile client can send megabytes: the
 * echo must stay short, and making it must cost time in proportion to the echo, not to the
 * input (no JSON.stringify of a 60 MB value, which is also recursive and overflows the stack on
 * deep nesting).
 */

/** Default longest echo, in characters. */
export const MESSAGE_TEXT_CHARS = 80;

/** `text` cut to `max` characters, with `...` and the full length when it was cut. */
export function truncateForMessage(text: string, max = MESSAGE_TEXT_CHARS): string {
  if (text.length <= max) return text;
  return `${text.slice(0, Math.max(0, max - 3))}... (${text.length} characters)`;
}

/**
 * A short, single-line JSON-like rendering of any received value, for messages. Walks only
 * as far as `max` characters reach: the cost is bounded by `max`, whatever the value's size
 * or depth.
 */
export function previewValue(v: unknown, max = MESSAGE_TEXT_CHARS): string {
  let out = '';
  let full = true;
  const add = (s: string): boolean => {
    if (out.length + s.length > max) {
      out += s.slice(0, Math.max(0, max - out.length));
      full = false;
      return false;
    }
    out += s;
    return true;
  };
  const walk = (x: unknown): boolean => {
    if (x === undefined) return add('nothing');
    if (typeof x === 'string') return add(JSON.stringify(x.length > max ? x.slice(0, max) : x));
    if (typeof x !== 'object' || x === null) return add(String(x));
    if (Array.isArray(x)) {
      if (!add('[')) return false;
      for (let i = 0; i < x.length; i++) if (!(i === 0 || add(',')) || !walk(x[i])) return false;
      return add(']');
    }
    if (!add('{')) return false;
    let first = true;
    for (const key in x as Record<string, unknown>) {
      if (!Object.prototype.hasOwnProperty.call(x, key)) continue;
      if (!(first || add(',')) || !add(JSON.stringify(key.length > max ? key.slice(0, max) : key) + ':') || !walk((x as Record<string, unknown>)[key])) return false;
      first = false;
    }
    return add('}');
  };
  walk(v);
  return full ? out : `${out.slice(0, Math.max(0, max - 3))}...`;
}

/**
 * `text` with every occurrence of the directory `dir` (and the separator after it) removed, so
 * a message from a lower layer (ONNX Runtime names the model file it failed on) names paths
 * relative to `dir` (the model repository) and never the server's own directories.
 */
export function relativeToDirectory(text: string, dir: string, sep = '/'): string {
  const prefix = dir.endsWith(sep) ? dir : dir + sep;
  return prefix.length > 1 ? text.split(prefix).join('') : text;
}
