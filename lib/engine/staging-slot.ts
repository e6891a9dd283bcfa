/**
 * A staging slot of one model instance, as the scheduler sees it. Ownership: acquireSlot()
 * hands the slot to one caller, who writes inputs, runs it once or more, reads the outputs
 * and calls release(); output views die on release (the next batch overwrites them).
 */
import { toTensorwireError } from '../errors';
import type { NativeModel } from './native-binding';
import type { BatchOutput, BatchResult, TensorSpec } from './types';

/** Callbacks of the owning model: slot bookkeeping lives there. */
export interface SlotOwner {
  readonly native: NativeModel;
  readonly outputs: readonly TensorSpec[];
  slotReleased(slot: StagingSlot): void;
}

export class StagingSlot {
  /** Cached byte views over the slot's input buffers (native memory, no copy). */
  private readonly inputViews: (Uint8Array | undefined)[];
  private running = false;
  held = false;

  constructor(
    private readonly owner: SlotOwner,
    readonly instance: number,
    readonly index: number,
    inputCount: number,
  ) {
    this.inputViews = new Array<Uint8Array | undefined>(inputCount);
  }

  /**
   * Writable view of input `i`'s staging buffer, at least `byteLength` long (it may be longer:
   * write at offsets from 0). Growing the buffer invalidates views handed out before.
   */
  inputView(i: number, byteLength: number): Uint8Array {
    let view = this.inputViews[i];
    if (view === undefined || view.byteLength < byteLength || view.buffer.byteLength === 0) {
      view = new Uint8Array(this.owner.native.inputBuffer(this.instance, this.index, i, byteLength));
      this.inputViews[i] = view;
    }
    return view;
  }

  /** True while a batch of this slot is queued or running. */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Runs the batch written into the inputs; shapes[i] is input i's full shape (batch first).
   * Resolves with views of the outputs in the slot; rejects with a TensorwireError
   * (CANCELLED, ENGINE_FAILURE, INVALID_INPUT, UNAVAILABLE).
   */
  async run(shapes: number[][]): Promise<BatchResult> {
    this.running = true;
    try {
      const r = await this.owner.native.run(this.instance, this.index, shapes);
      const outputs: BatchOutput[] = new Array(r.shapes.length);
      for (let o = 0; o < r.shapes.length; o++) {
        const spec = this.owner.outputs[o];
        const buffer = this.owner.native.outputBuffer(this.instance, this.index, o);
        outputs[o] = { name: spec.name, datatype: spec.datatype, shape: r.shapes[o], data: new Uint8Array(buffer, 0, r.bytes[o]) };
      }
      return { outputs, timing: { inputUs: r.timing[0], inferUs: r.timing[1], outputUs: r.timing[2] } };
    } catch (e) {
      throw toTensorwireError(e);
    } finally {
      this.running = false;
    }
  }

  /** Withdraws the queued batch or terminates the running one; its run() rejects with CANCELLED. */
  cancel(): boolean {
    return this.owner.native.cancel(this.instance, this.index);
  }

  /**
   * Returns the slot to its model. Buffers a large batch grew past their load-time size are
   * freed here (output views die now anyway), so one big request does not hold its memory
   * until unload.
   */
  release(): void {
    if (!this.held) return;
    this.held = false;
    if (!this.running) this.owner.native.trimSlot(this.instance, this.index);
    this.owner.slotReleased(this);
  }
}
