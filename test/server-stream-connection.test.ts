/**
 * The stream's flow-control policy (stream-connection.ts) with a scripted socket: exact
 * counts of what is sent, queued, admitted and cancelled.
 */
import { describe, expect, it } from 'vitest';
import { StreamConnection, type FrameSocket } from '../lib/server/stream-connection';

/** A socket whose buffered amount the test sets; records sends and closes. */
class ScriptedSocket implements FrameSocket {
  buffered = 0;
  sent: string[] = [];
  corks = 0;
  ended: [number | undefined, string | undefined] | undefined;
  closed = false;
  send(message: string | Uint8Array): number {
    this.sent.push(typeof message === 'string' ? message : `bytes:${message.byteLength}`);
    this.buffered += typeof message === 'string' ? message.length : message.byteLength;
    return 1;
  }
  getBufferedAmount(): number {
    return this.buffered;
  }
  cork(callback: () => void): void {
    this.corks++;
    callback();
  }
  end(code?: number, message?: string): void {
    this.ended = [code, message];
  }
  close(): void {
    this.closed = true;
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(maxInflight = 3, highWaterBytes = 100): { connection: StreamConnection; socket: ScriptedSocket } {
  const connection = new StreamConnection({ maxInflight, highWaterBytes });
  const socket = new ScriptedSocket();
  connection.attach(socket);
  return { connection, socket };
}

describe('StreamConnection', () => {
  it('admits up to maxInflight and frees a place only when the answer is handed to the socket', async () => {
    const { connection, socket } = setup(2);
    const a = connection.admit()!;
    const b = connection.admit()!;
    expect(connection.admit()).toBeUndefined();
    socket.buffered = 500; // backed up
    connection.respond(a, 'A', false);
    await tick();
    expect(socket.sent).toEqual([]);
    expect(connection.inflight).toBe(2); // still holds its place while queued
    socket.buffered = 0;
    connection.flush(); // the drain handler
    expect(socket.sent).toEqual(['A']);
    expect(connection.inflight).toBe(1);
    connection.respond(b, 'B', false);
    await tick();
    expect(connection.inflight).toBe(0);
  });

  it('sends the answers of one tick in one cork, in order', async () => {
    const { connection, socket } = setup(10, 1000);
    const controllers = [1, 2, 3, 4].map(() => connection.admit()!);
    controllers.forEach((c, i) => connection.respond(c, `r${i}`, false));
    connection.reject('e');
    expect(socket.sent).toEqual([]);
    await tick();
    expect(socket.sent).toEqual(['r0', 'r1', 'r2', 'r3', 'e']);
    expect(socket.corks).toBe(1);
  });

  it('stops handing frames over at the high-water mark and resumes on drain', async () => {
    const { connection, socket } = setup(10, 100);
    const big = new Uint8Array(80);
    for (let i = 0; i < 4; i++) connection.respond(connection.admit()!, big, true);
    await tick();
    // 0 < 100: send (80); 80 < 100: send (160); 160 >= 100: stop.
    expect(socket.sent).toEqual(['bytes:80', 'bytes:80']);
    expect(connection.queued).toBe(2);
    socket.buffered = 0;
    connection.flush();
    expect(socket.sent).toHaveLength(4);
    expect(connection.queued).toBe(0);
    expect(connection.inflight).toBe(0);
  });

  it('closes a backed-up connection whose rejections overflow the outbox budget', async () => {
    const { connection, socket } = setup(2, 100);
    socket.buffered = 1000;
    connection.reject('e1');
    connection.reject('e2');
    expect(socket.closed).toBe(false);
    connection.reject('e3');
    expect(socket.closed).toBe(true);
    expect(connection.isClosed).toBe(true);
    expect(connection.admit()).toBeUndefined();
  });

  it('lets a burst of rejections through when the socket takes them', async () => {
    const { connection, socket } = setup(2, 1_000_000);
    for (let i = 0; i < 10; i++) connection.reject(`e${i}`);
    await tick();
    expect(socket.closed).toBe(false);
    expect(socket.sent).toEqual(Array.from({ length: 10 }, (_, i) => `e${i}`));
  });

  it('cancels every admitted request when the socket closes, and sends nothing after', async () => {
    const { connection, socket } = setup(5);
    const a = connection.admit()!;
    const b = connection.admit()!;
    connection.onClose();
    expect(a.aborted).toBe(true);
    expect(b.aborted).toBe(true);
    expect((a.reason as { code: string }).code).toBe('CANCELLED');
    connection.respond(a, 'late', false);
    await tick();
    expect(socket.sent).toEqual([]);
  });

  it('nudges uWS with an empty cork while its buffered bytes do not move, backing off, until they drain or it closes', async () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const { connection, socket } = setup(5, 100);
    connection.respond(connection.admit()!, 'A', false);
    await tick();
    expect(socket.sent).toEqual(['A']);
    expect(socket.corks).toBe(1);
    // uWS keeps the byte and never reports it written (its writable poll was lost): the
    // watchdog notices at its second check and makes uWS try again; a stopped reader costs
    // a few checks a second at most (20 ms doubling to 1 s).
    await sleep(500);
    const nudges = socket.corks - 1;
    expect(nudges).toBeGreaterThanOrEqual(2);
    expect(nudges).toBeLessThanOrEqual(6);
    // Drained: the watchdog stops.
    socket.buffered = 0;
    await sleep(1100);
    const after = socket.corks;
    await sleep(300);
    expect(socket.corks).toBe(after);
    // Backed up again, then closed: no check runs on a closed connection.
    connection.respond(connection.admit()!, 'B', false);
    await tick();
    connection.onClose();
    const atClose = socket.corks;
    await sleep(100);
    expect(socket.corks).toBe(atClose);
  });

  it('feed frames go out only when nothing waits for the socket, after the answers already due', async () => {
    const { connection, socket } = setup(10, 100);
    connection.respond(connection.admit()!, 'A', false);
    // The answer is queued for this tick's flush: it goes first, then the feed frame.
    expect(connection.feedWritable()).toBe(true);
    connection.sendFeed('F1');
    expect(socket.sent).toEqual(['A', 'F1']);
    // Backed up: answers wait in the outbox, and no feed frame may be sent.
    socket.buffered = 500;
    connection.respond(connection.admit()!, 'B', false);
    await tick();
    expect(connection.feedWritable()).toBe(false);
    socket.buffered = 0;
    expect(connection.feedWritable()).toBe(true); // flushes B first
    expect(socket.sent).toEqual(['A', 'F1', 'B']);
    // Feed frames never count as in flight.
    expect(connection.inflight).toBe(0);
    connection.onClose();
    expect(connection.feedWritable()).toBe(false);
  });

  it('ends with a close code when the socket is not backed up', () => {
    const { connection, socket } = setup();
    connection.shutdown(1001, 'server shutting down');
    expect(socket.ended).toEqual([1001, 'server shutting down']);
    expect(socket.closed).toBe(false);
  });
});
