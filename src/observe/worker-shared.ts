// The memory the observer's main thread and its ring worker share, besides the flow ring: a
// control word array (Int32, for Atomics) and counters (Float64, written by the worker alone,
// read whenever the main thread wants them).
import { eventHdr, eventType, policyVerdictEvent } from '../datapath/endpoint-codecs.js';
import type { FlowRingShared } from './flow-ring.js';
import type { FlowVerdict } from '../contract/flow.js';

export interface WorkerInit {
  bpfRoot: string;
  ring: FlowRingShared;
  control: SharedArrayBuffer;
  stats: SharedArrayBuffer;
}

export const CONTROL = {
  /** Set by the main thread: the worker closes the ring and ends. */
  stop: 0,
  /** Set by the main thread when it wants to hear of the next flows; the worker clears it and
   *  posts one message. */
  wake: 1,
  size: 2,
} as const;

/** Event type codes (bpf/include/events.h enum weft_event_type) and where verdicts count. */
const TYPES = 8;
const VERDICTS: readonly FlowVerdict[] = ['FORWARDED', 'DROPPED', 'TRANSLATED', 'REDIRECTED'];
const REASONS = 16;
const DIRECTIONS = 2;

export const STAT = {
  /** Records read from the kernel's ring. */
  read: 0,
  /** Records that could not be decoded (unknown type, short or oversized). */
  decodeLost: 1,
  kernelRingSize: 2,
  /** The most bytes found waiting in the kernel's ring, since the main thread last reset it. */
  kernelRingPeak: 3,
  flows: 8,
  drops: 8 + TYPES * VERDICTS.length,
  size: 8 + TYPES * VERDICTS.length + REASONS * DIRECTIONS,
} as const;

const T_DROP = eventType.value('drop');
const T_TRACE = eventType.value('trace');
const T_POLICY = eventType.value('policy-verdict');
const T_SOCK = eventType.value('sock');
// Where the bytes counted are, from the structs' fields (each a u8: the BTF check holds them to it).
const TYPE_AT = eventHdr.fields.type.offset;
const REASON_AT = eventHdr.fields.reason.offset;
const DIRECTION_AT = eventHdr.fields.direction.offset;
const ALLOWED_AT = policyVerdictEvent.fields.allowed.offset;

/** Counts a decodable record by type and verdict, and drops by reason and direction. */
export function countRecord(stats: Float64Array, data: Uint8Array, off: number): void {
  const type = data[off + TYPE_AT]!;
  const verdict =
    type === T_DROP
      ? 1
      : type === T_TRACE
        ? 0
        : type === T_POLICY
          ? data[off + ALLOWED_AT]
            ? 0
            : 1
          : type === T_SOCK
            ? 2
            : 0;
  stats[STAT.flows + (type % TYPES) * VERDICTS.length + verdict]!++;
  if (type === T_DROP) {
    stats[STAT.drops + (data[off + REASON_AT]! % REASONS) * DIRECTIONS + (data[off + DIRECTION_AT]! % DIRECTIONS)]!++;
  }
}

/** The counters by type code and verdict that are not zero. */
export function flowCounts(stats: Float64Array): { type: number; verdict: FlowVerdict; count: number }[] {
  const out: { type: number; verdict: FlowVerdict; count: number }[] = [];
  for (let t = 0; t < TYPES; t++) {
    for (let v = 0; v < VERDICTS.length; v++) {
      const count = stats[STAT.flows + t * VERDICTS.length + v]!;
      if (count) out.push({ type: t, verdict: VERDICTS[v]!, count });
    }
  }
  return out;
}

/** The drop counters by reason code and direction code that are not zero. */
export function dropCounts(stats: Float64Array): { reason: number; direction: number; count: number }[] {
  const out: { reason: number; direction: number; count: number }[] = [];
  for (let r = 0; r < REASONS; r++) {
    for (let d = 0; d < DIRECTIONS; d++) {
      const count = stats[STAT.drops + r * DIRECTIONS + d]!;
      if (count) out.push({ reason: r, direction: d, count });
    }
  }
  return out;
}
