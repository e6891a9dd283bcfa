/**
 * Messages that do not decode. grpc-js answers a request whose bytes are not its message type
 * with INTERNAL and, on a stream, ends the whole stream. A client's bad bytes are the
 * client's error, and one bad message should not take its stream's other requests with it:
 * so every request deserializer here catches the decode error and hands the handler a marker
 * instead, which the handler answers with INVALID_ARGUMENT (on a stream: an error answer, the
 * stream going on).
 */
import type * as grpc from '@grpc/grpc-js';
import { TensorwireError } from '../errors';

const MALFORMED = Symbol('malformed message');

/** What a handler receives in place of a message that did not decode. */
export interface MalformedMessage {
  readonly [MALFORMED]: string;
}

/** `definition` with every method's request deserializer made tolerant (see above). */
export function tolerantDefinition(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const deserialize = method.requestDeserialize;
    const type = method.path.split('/')[2] ?? name;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return deserialize(bytes);
        } catch (e) {
          const reason = String((e as Error).message ?? e).slice(0, 200);
          return { [MALFORMED]: `the ${bytes.length}-byte message is not a valid ${type} request (${reason})` } satisfies MalformedMessage;
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

/** Throws INVALID_INPUT when `message` is the marker of a message that did not decode. */
export function checkDecoded(message: unknown): void {
  if (typeof message === 'object' && message !== null && MALFORMED in message) {
    throw new TensorwireError('INVALID_INPUT', (message as MalformedMessage)[MALFORMED]);
  }
}
