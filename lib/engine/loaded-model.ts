/**
 * A loaded model version: its metadata, its instances' staging slots, its memory and unload.
 */
import { TensorwireError } from '../errors';
import type { NativeModel } from './native-binding';
import { StagingSlot, type SlotOwner } from './staging-slot';
import type { ModelMemory, ModelMetadata, TensorSpec } from './types';

export class LoadedModel implements SlotOwner {
  readonly metadata: ModelMetadata;
  /** Rows a batch may hold; 0 when the model is not batchable. */
  readonly maxBatchSize: number;
  readonly instanceCount: number;
  readonly outputs: readonly TensorSpec[];
  private readonly free: StagingSlot[][];
  private readonly slots: StagingSlot[] = [];
  private unloaded: Promise<void> | undefined;

  constructor(
    readonly native: NativeModel,
    readonly path: string,
    metadata: ModelMetadata,
    maxBatchSize: number,
    /** Host bytes of the session's weights (0 when they live on a GPU). */
    private readonly weightBytes = 0,
  ) {
    this.metadata = metadata;
    this.outputs = metadata.outputs;
    this.maxBatchSize = metadata.batchable ? maxBatchSize : 0;
    this.instanceCount = native.instanceCount;
    this.free = [];
    for (let i = 0; i < native.instanceCount; i++) {
      const perInstance: StagingSlot[] = [];
      for (let s = native.slotsPerInstance - 1; s >= 0; s--) {
        const slot = new StagingSlot(this, i, s, metadata.inputs.length);
        perInstance.push(slot);
        this.slots.push(slot);
      }
      this.free.push(perInstance);
    }
  }

  /**
   * A free staging slot, or undefined when every slot is held. Prefers the instance with the
   * most free slots, i.e. the idlest one, so N instances run N batches at once.
   */
  acquireSlot(): StagingSlot | undefined {
    if (this.unloaded) return undefined;
    let best = -1;
    let bestFree = 0;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i].length;
      if (n > bestFree) {
        best = i;
        bestFree = n;
      }
    }
    if (best < 0) return undefined;
    const slot = this.free[best].pop()!;
    slot.held = true;
    return slot;
  }

  /** Slots not held by anyone. */
  freeSlotCount(): number {
    let n = 0;
    for (const f of this.free) n += f.length;
    return n;
  }

  /** Instances with no slot held (nothing queued or running on them). */
  idleInstanceCount(): number {
    let n = 0;
    const perInstance = this.native.slotsPerInstance;
    for (const f of this.free) if (f.length === perInstance) n++;
    return n;
  }

  /** @internal called by StagingSlot.release() */
  slotReleased(slot: StagingSlot): void {
    if (this.unloaded) return;
    this.free[slot.instance].push(slot);
  }

  /** Bytes held by this version: staging buffers and (CPU) weights on the host; device buffers and ORT's arena on the GPU. */
  memory(): ModelMemory {
    if (this.unloaded) return { host: 0, gpu: 0 };
    const m = this.native.memory();
    return { host: m.host + this.weightBytes, gpu: m.gpu };
  }

  /**
   * Frees everything: queued batches reject with CANCELLED, a running one finishes first.
   * Callers drain their queues before. Idempotent.
   */
  unload(): Promise<void> {
    this.unloaded ??= this.native.unload();
    return this.unloaded;
  }

  get isUnloaded(): boolean {
    return this.unloaded !== undefined;
  }

  /** Throws UNAVAILABLE when the model was unloaded. */
  assertLoaded(): void {
    if (this.unloaded) throw new TensorwireError('UNAVAILABLE', `model ${this.path} was unloaded`);
  }
}
