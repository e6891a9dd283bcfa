/**
 * The prediction feed hub's own CPU cost (lib/server/prediction-feed.ts), without sockets or
 * an engine, so that it can be read on a busy machine: N subscribers of the MLP asking for
 * everything (inputs included, the highest max_per_second), R predictions per second for S
 * seconds on a simulated clock; each frame sent is converted to bytes like uWS does. Prints
 * the frames sent and the hub's CPU time as a share of one core.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/stream-feed-hub.js [--subscribers 64] [--rate 3000]
 *       [--seconds 10] [--unbounded]
 *
 * --unbounded lifts the budget and caps (the feed before issue 13) for comparison.
 */
import { parseArgs } from 'node:util';
import { PredictionFeed, type FeedSink } from '../lib/server/prediction-feed';
import type { InferRequest, InferResponse } from '../lib/protocol/types';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '64' },
    rate: { type: 'string', default: '3000' },
    seconds: { type: 'string', default: '10' },
    unbounded: { type: 'boolean', default: false },
  },
});
const SUBSCRIBERS = Number(values.subscribers);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);

const feed = new PredictionFeed(values.unbounded ? { bytesPerSecond: Number.MAX_VALUE, maxPerSecond: Number.MAX_VALUE, maxPerModel: Number.MAX_SAFE_INTEGER } : {});
let frames = 0;
const sink = (): FeedSink => ({
  feedWritable: () => true,
  sendFeed: (frame) => {
    Buffer.from(frame); // uWS copies the string into its buffer as UTF-8
    frames++;
  },
});
for (let n = 0; n < SUBSCRIBERS; n++) feed.subscribe(sink(), 'mlp', { sampleRate: 1, maxPerSecond: values.unbounded ? 1e9 : feed.limits.maxPerSecond, includeInputs: true });

const x = new Float32Array(256).map(() => Math.random());
const y = new Float32Array(16).map(() => Math.random());
const request: InferRequest = { id: 'r', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256], data: new Uint8Array(x.buffer) }], binaryDataOutput: false, parameters: {} };
const response: InferResponse = { modelName: 'mlp', modelVersion: '1', id: 'r', outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 16], data: new Uint8Array(y.buffer), binary: false }] };

// The simulated clock: predictions evenly spread over SECONDS, however long publishing takes.
let now = 0;
performance.now = () => now;
const total = RATE * SECONDS;
const before = process.cpuUsage();
for (let i = 0; i < total; i++) {
  now = (i / RATE) * 1000;
  feed.publish('mlp', request, response, `r${i}`);
}
const cpu = process.cpuUsage(before);
const cpuMs = (cpu.user + cpu.system) / 1000;
console.log(`${SUBSCRIBERS} subscribers${values.unbounded ? ' (no budget, no caps)' : ''}, ${RATE} predictions/s for ${SECONDS} s: ${(frames / SECONDS).toFixed(0)} frames/s; the feed's CPU ${cpuMs.toFixed(0)} ms = ${(cpuMs / (SECONDS * 10)).toFixed(1)}% of one core`);
