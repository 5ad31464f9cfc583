// The observer's flow ring: the last `capacity` raw event records, in shared memory. One writer
// (the ring worker thread) appends; readers on the main thread copy records out and decode
// them only when someone asks, so a flow nobody looks at costs one copy.
//
// Records are numbered by sequence from 0; record s lives in slot s % capacity. The writer
// announces how far it is about to write (`claimed`) before touching slots and how far it has
// written (`written`) after; a reader that copied record s keeps it only if, after the copy,
// `claimed` - capacity <= s still holds, i.e. the writer had not started to reuse its slot.
export const SLOT_BYTES = 128;
export const DEFAULT_FLOW_BUFFER = 16_384;
/** 1 GiB of slots. */
export const MAX_FLOW_BUFFER = 8_388_608;
const SLOT_HDR = 4; // u16 length, u16 reserved
export const MAX_RECORD = SLOT_BYTES - SLOT_HDR;

const WRITTEN = 0;
const CLAIMED = 1;

/** What a worker needs to attach to the same ring. */
export interface FlowRingShared {
  control: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  capacity: number;
}

export class FlowRing {
  private readonly control: BigInt64Array;
  private readonly slots: Uint8Array;
  private readonly view: DataView;

  private constructor(readonly shared: FlowRingShared) {
    this.control = new BigInt64Array(shared.control);
    this.slots = new Uint8Array(shared.slots);
    this.view = new DataView(shared.slots);
  }

  static create(capacity: number): FlowRing {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error(`flow ring capacity ${capacity}: want a positive integer`);
    return new FlowRing({
      control: new SharedArrayBuffer(16),
      slots: new SharedArrayBuffer(capacity * SLOT_BYTES),
      capacity,
    });
  }

  static attach(shared: FlowRingShared): FlowRing {
    return new FlowRing(shared);
  }

  get capacity(): number {
    return this.shared.capacity;
  }

  /** Records appended so far (the next record's sequence number). */
  written(): number {
    return Number(Atomics.load(this.control, WRITTEN));
  }

  /** The oldest sequence number still held. */
  oldest(): number {
    return Math.max(0, this.written() - this.capacity);
  }

  // ---- the writer's side ----

  private pendingFrom = -1;
  private next = 0;

  /** Starts a batch of at most `n` appends (n < capacity): readers treat the slots it may reuse
   *  as gone from now on. */
  begin(n: number): void {
    this.next = this.written();
    this.pendingFrom = this.next;
    Atomics.store(this.control, CLAIMED, BigInt(this.next + n));
  }

  /** Appends one record (at most MAX_RECORD bytes; longer ones are cut, callers check) inside a
   *  batch. */
  append(src: Uint8Array, off: number, len: number): void {
    const at = (this.next % this.capacity) * SLOT_BYTES;
    const n = Math.min(len, MAX_RECORD);
    this.view.setUint16(at, n, true);
    this.slots.set(src.subarray(off, off + n), at + SLOT_HDR);
    this.next++;
  }

  /** Publishes the batch's records; returns how many there were. */
  commit(): number {
    const n = this.next - this.pendingFrom;
    Atomics.store(this.control, WRITTEN, BigInt(this.next));
    Atomics.store(this.control, CLAIMED, BigInt(this.next));
    this.pendingFrom = -1;
    return n;
  }

  // ---- the readers' side ----

  /** Copies record `seq` into a new Buffer, or returns undefined when it is not held (not
   *  written yet, or overwritten before or while it was copied). */
  read(seq: number): Buffer | undefined {
    if (seq < 0 || seq >= this.written() || seq < this.oldest()) return undefined;
    const at = (seq % this.capacity) * SLOT_BYTES;
    const len = this.view.getUint16(at, true);
    const copy = Buffer.from(this.slots.subarray(at + SLOT_HDR, at + SLOT_HDR + Math.min(len, MAX_RECORD)));
    if (Number(Atomics.load(this.control, CLAIMED)) - this.capacity > seq) return undefined;
    return copy;
  }
}
