/**
 * A TCP connection whose reads land in one reused buffer (`onread`): no Buffer per read and
 * no stream 'data' events, which is most of what a read costs the load generator. The
 * consumer must parse each read before the next one (it copies the little it keeps).
 */
import { connect, type Socket } from 'node:net';

/**
 * Opens a no-delay socket to host:port. `onBytes` gets each read while `isCurrent(socket)`
 * holds (reads of a socket the owner has replaced stop); when it throws, `onProtocolError`
 * gets the message.
 */
export function connectReusingBuffer(
  host: string,
  port: number,
  readBuffer: Buffer,
  isCurrent: (socket: Socket) => boolean,
  onBytes: (bytes: Buffer) => void,
  onProtocolError: (message: string) => void,
): Socket {
  const socket = connect({
    host,
    port,
    noDelay: true,
    onread: {
      buffer: readBuffer,
      callback: (n: number, buf: Uint8Array) => {
        if (!isCurrent(socket)) return false;
        try {
          onBytes((buf as Buffer).subarray(0, n));
        } catch (e) {
          onProtocolError(`protocol error: ${(e as Error).message}`);
        }
        return true;
      },
    },
  });
  return socket;
}
