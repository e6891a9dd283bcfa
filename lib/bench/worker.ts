/**
 * Entry of a load-generator worker thread: owns one LoadRunner at a time and answers the
 * main thread's numbered requests (see worker-pool.ts for the other side).
 */
import { parentPort } from 'node:worker_threads';
import { LoadRunner } from './load-runner';
import type { WorkerRequest, WorkerReply } from './worker-pool';
import { TensorwireError } from '../errors';

if (parentPort === null) throw new TensorwireError('INTERNAL', 'lib/bench/worker is a worker_threads entry point');
const port = parentPort;
let runner: LoadRunner | undefined;

async function handle(msg: WorkerRequest): Promise<unknown> {
  switch (msg.op) {
    case 'start':
      runner = new LoadRunner(msg.plan);
      runner.start();
      return undefined;
    case 'reset':
      runner?.resetWindow();
      return undefined;
    case 'snapshot':
      return runner!.snapshot();
    case 'progress':
      return runner!.progress();
    case 'stop': {
      const totals = await runner!.stop(msg.drainMs);
      runner = undefined;
      return totals;
    }
  }
}

port.on('message', (msg: WorkerRequest) => {
  handle(msg).then(
    (result) => port.postMessage({ seq: msg.seq, result } satisfies WorkerReply),
    (e: unknown) => port.postMessage({ seq: msg.seq, error: String((e as Error)?.stack ?? e) } satisfies WorkerReply),
  );
});
