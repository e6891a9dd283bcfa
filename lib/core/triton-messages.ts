/**
 * The wording of model lookup and load errors, as Triton words them, so code written against
 * Triton (which shows or logs these messages, and sometimes tests them) reads the same text
 * from tensorwire. Every transport says them: the core makes them, once, here.
 *
 * Triton's forms (core: ModelRepositoryManager::GetModel prefixes the life cycle's message):
 *   Request for unknown model: 'm' is not found                      (404)
 *   Request for unknown model: 'm' version 3 is not found            (404)
 *   Request for unknown model: 'm' version 3 is not at ready state   (503)
 *   Request for unknown model: 'm' has no available versions         (Triton 404; here 503, see
 *                                                                     docs/protocol.md)
 *   failed to load 'm'...                                             (load API)
 * Where tensorwire knows why a version does not serve, the reason follows the Triton text.
 * Names come from URLs and request bodies: echoed truncated.
 */
import { truncateForMessage } from '../util/message-text';

const PREFIX = 'Request for unknown model: ';

function quoted(name: string): string {
  return `'${truncateForMessage(name)}'`;
}

/** No model of that name. */
export function unknownModelMessage(name: string): string {
  return `${PREFIX}${quoted(name)} is not found`;
}

/** The model exists; the version does not. */
export function unknownVersionMessage(name: string, version: string): string {
  return `${PREFIX}${quoted(name)} version ${truncateForMessage(version)} is not found`;
}

/** The version exists but does not serve now (loading, failed, unloaded, draining). */
export function versionNotReadyMessage(name: string, version: string, reason?: string): string {
  return `${PREFIX}${quoted(name)} version ${truncateForMessage(version)} is not at ready state${reason ? `: ${reason}` : ''}`;
}

/** An unversioned request, and no version of the model serves. */
export function noAvailableVersionMessage(name: string, reason?: string): string {
  return `${PREFIX}${quoted(name)} has no available versions${reason ? `: ${reason}` : ''}`;
}

/** A load (repository API, --load-model) that did not leave the model serving. */
export function loadFailedMessage(name: string, detail: string): string {
  return `failed to load ${quoted(name)}: ${detail}`;
}
