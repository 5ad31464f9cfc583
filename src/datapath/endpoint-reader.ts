// Reads the endpoint datapath back from its pins alone (no program loaded, no agent needed):
// endpoints, conntrack, lost events, and drop events from the ring buffer; and the endpoints'
// TC filters, from the devices of the calling thread's network namespace. For the CLI, the
// observer and the tests.
import fs from 'node:fs';
import path from 'node:path';
import { interfaceName, openPinnedMap, perCpuSlots, tcQuery, type RawMap } from './libbpf.js';
import { LXC_HOOKS, lxcFilter } from './endpoint-datapath.js';
import {
  ctEntry,
  ctKey,
  endpointInfo,
  eventHdr,
  type CtEntry,
  type CtKey,
  type EndpointInfo,
  type EventHeader,
} from './endpoint-codecs.js';
import { pinLayout, type TcHook } from './pins.js';
import { RingReader } from './ring-reader.js';

function withMap<T>(bpfRoot: string, name: string, fn: (m: RawMap) => T): T {
  const m = openPinnedMap(path.join(pinLayout(bpfRoot).maps, name));
  try {
    return fn(m);
  } finally {
    m.close();
  }
}

export function readEndpoints(bpfRoot: string): ({ ifindex: number } & EndpointInfo)[] {
  return withMap(bpfRoot, 'lxc_endpoints', (m) =>
    [...m.entries()]
      .map(([k, v]) => ({ ifindex: k.readUInt32LE(0), ...endpointInfo.decode(v) }))
      .sort((a, b) => a.ifindex - b.ifindex),
  );
}

export function readConntrack(bpfRoot: string): { key: CtKey; entry: CtEntry }[] {
  return withMap(bpfRoot, 'ct', (m) =>
    [...m.entries()].map(([k, v]) => ({ key: ctKey.decode(k), entry: ctEntry.decode(v) })),
  );
}

/** Ring buffer reservations that failed (the ring was full), summed over CPUs. */
export function readEventsLost(bpfRoot: string): bigint {
  return withMap(bpfRoot, 'events_lost', (m) => {
    const v = m.lookup(Buffer.alloc(4));
    return (v ? perCpuSlots(v, 8) : []).reduce((sum, slot) => sum + slot.readBigUInt64LE(0), 0n);
  });
}

/** EndpointLink.error of an interface the calling thread's network namespace does not have. */
export const NO_DEVICE = 'no such device in this network namespace';

export interface EndpointLink {
  ifindex: number;
  hook: TcHook;
  /** The filter's handle and priority on the device's clsact hook. */
  handle: number;
  priority: number;
  /** The program in the filter. */
  progId?: number;
  /** Why there is no program: no such device (in this network namespace), or no filter. */
  error?: string;
}

/** The TC filters of every endpoint in lxc_endpoints, on both hooks of its veth, as the
 *  devices of the calling thread's network namespace have them (call it from the node's).
 *  None when nothing is pinned. */
export function readEndpointLinks(bpfRoot: string): EndpointLink[] {
  const out: EndpointLink[] = [];
  if (!fs.existsSync(path.join(pinLayout(bpfRoot).maps, 'lxc_endpoints'))) return out;
  for (const { ifindex } of readEndpoints(bpfRoot)) {
    const present = interfaceName(ifindex) !== undefined;
    for (const { hook, attachPoint } of LXC_HOOKS) {
      const filter = lxcFilter(ifindex, attachPoint);
      const base = { ifindex, hook, handle: filter.handle, priority: filter.priority };
      if (!present) {
        out.push({ ...base, error: NO_DEVICE });
        continue;
      }
      try {
        const progId = tcQuery(filter, `query ifindex ${ifindex} (tc ${hook})`);
        out.push(progId === undefined ? { ...base, error: 'no filter' } : { ...base, progId });
      } catch (err) {
        out.push({ ...base, error: (err as Error).message });
      }
    }
  }
  return out.sort((a, b) => a.ifindex - b.ifindex || a.hook.localeCompare(b.hook));
}

export interface EventReader {
  /** Hands every event there is now to onEvent; returns how many. */
  consume(): number;
  /** Waits up to timeoutMs for events (blocking this thread), then hands them over. */
  poll(timeoutMs: number): number;
  close(): void;
}

/** A consumer of the events ring buffer for tools and tests: each event's header, decoded, and
 *  a copy of its record reach onEvent while consume() or poll() runs. An event is consumed
 *  once, by whichever reader gets it first (the agent's observer, when one runs). */
export function openEvents(bpfRoot: string, onEvent: (ev: EventHeader, raw: Buffer) => void): EventReader {
  const ring = RingReader.openPinned(path.join(pinLayout(bpfRoot).maps, 'events'), 'events');
  const sink = (data: Uint8Array, off: number, len: number) => {
    const raw = Buffer.from(data.subarray(off, off + len));
    onEvent(eventHdr.decode(raw), raw);
  };
  return {
    consume: () => ring.read(sink),
    poll: (ms) => {
      ring.wait(ms); // the datapath may not wake a reader for a few events: read what is there either way
      return ring.read(sink);
    },
    close: () => ring.close(),
  };
}
