// Reads the endpoint datapath back from its pins alone (no program loaded, no agent needed):
// endpoints, conntrack, links, lost events, and drop events from the ring buffer. For the CLI,
// the observer and the tests.
import fs from 'node:fs';
import path from 'node:path';
import { RingBuffer, closeFd, objGet, openPinnedMap, perCpuSlots, tcxLinkInfo, type RawMap } from './libbpf.js';
import {
  ctEntry, ctKey, endpointInfo, eventHdr, type CtEntry, type CtKey, type EndpointInfo, type EventHeader,
} from './endpoint-codecs.js';
import { lxcLinkDir, parseLxcLinkPin, pinLayout, type TcHook } from './pins.js';

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
    [...m.entries()].map(([k, v]) => ({ ifindex: k.readUInt32LE(0), ...endpointInfo.decode(v) })).sort((a, b) => a.ifindex - b.ifindex),
  );
}

export function readConntrack(bpfRoot: string): { key: CtKey; entry: CtEntry }[] {
  return withMap(bpfRoot, 'ct', (m) => [...m.entries()].map(([k, v]) => ({ key: ctKey.decode(k), entry: ctEntry.decode(v) })));
}

/** Ring buffer reservations that failed (the ring was full), summed over CPUs. */
export function readEventsLost(bpfRoot: string): bigint {
  return withMap(bpfRoot, 'events_lost', (m) => {
    const v = m.lookup(Buffer.alloc(4));
    return (v ? perCpuSlots(v, 8) : []).reduce((sum, slot) => sum + slot.readBigUInt64LE(0), 0n);
  });
}

export interface EndpointLink {
  ifindex: number;
  hook: TcHook;
  pin: string;
  linkId?: number;
  progId?: number;
  /** BPF_TCX_INGRESS or BPF_TCX_EGRESS. */
  attachType?: number;
  /** The device the link holds: the pin's ifindex, or 0 once the device is gone. */
  attachedIfindex?: number;
  error?: string;
}

/** Every pinned TCX link of <bpfRoot>/links/lxc. */
export function readEndpointLinks(bpfRoot: string): EndpointLink[] {
  const dir = lxcLinkDir(pinLayout(bpfRoot));
  const out: EndpointLink[] = [];
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const parsed = parseLxcLinkPin(name);
    if (!parsed) continue;
    const pin = path.join(dir, name);
    let fd = -1;
    try {
      fd = objGet(pin);
      const info = tcxLinkInfo(fd);
      out.push({ ...parsed, pin, linkId: info.id, progId: info.progId, attachType: info.attachType, attachedIfindex: info.ifindex });
    } catch (err) {
      out.push({ ...parsed, pin, error: (err as Error).message });
    } finally {
      closeFd(fd);
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

/** A consumer of the events ring buffer: each event's header, decoded, reaches onEvent while
 *  consume() or poll() runs. An event is consumed once, by whichever reader gets it first. */
export function openEvents(bpfRoot: string, onEvent: (ev: EventHeader, raw: Buffer) => void): EventReader {
  const fd = objGet(path.join(pinLayout(bpfRoot).maps, 'events'));
  let rb: RingBuffer;
  try {
    rb = RingBuffer.open(fd, 'events', (raw) => onEvent(eventHdr.decode(raw), raw));
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return {
    consume: () => rb.consume(),
    poll: (ms) => rb.poll(ms),
    close() {
      rb.close();
      closeFd(fd);
    },
  };
}
