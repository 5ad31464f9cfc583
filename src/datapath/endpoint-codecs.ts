// Codecs for the pod endpoint maps and events declared in bpf/include/endpoint.h, conntrack.h
// and events.h (used by bpf/lxc.c). test/datapath/btf-layout.test.ts checks every struct, enum
// and map here against build/bpf/lxc.o's BTF.
import type { StructCodec } from './codec.js';
import { POLICY_CODECS, ipcacheKey, ipcacheValue, policyKey, policyValue } from './policy-codecs.js';
import { formatIp, writeIpBytes, type Family } from '../lib/ip.js';

// ---- enums ----

/** A C enum of the headers: every member's C name, value, and the name TypeScript uses. */
export interface EnumCodec<N extends string> {
  readonly cName: string;
  /** Bytes the enum takes in a struct (the headers fix it with `enum x : __u8`). */
  readonly size: number;
  readonly members: readonly { readonly cName: string; readonly value: number; readonly name: N }[];
  name(value: number): N | undefined;
  value(name: N): number;
}

function enumCodec<N extends string>(cName: string, size: number, members: readonly { cName: string; value: number; name: N }[]): EnumCodec<N> {
  const byValue = new Map(members.map((m) => [m.value, m.name]));
  const byName = new Map(members.map((m) => [m.name, m.value]));
  return {
    cName,
    size,
    members,
    name: (v) => byValue.get(v),
    value: (n) => {
      const v = byName.get(n);
      if (v === undefined) throw new Error(`${cName}: no member named ${n}`);
      return v;
    },
  };
}

/** Seen from the pod: egress is what it sends (the host veth's TC ingress, lxc_from_pod),
 *  ingress what it receives (the host veth's TC egress, lxc_to_pod). */
export type Direction = 'egress' | 'ingress';
export const weftDir = enumCodec<Direction>('weft_dir', 1, [
  { cName: 'WEFT_DIR_EGRESS', value: 0, name: 'egress' },
  { cName: 'WEFT_DIR_INGRESS', value: 1, name: 'ingress' },
]);

export type CtState = 'new' | 'syn-sent' | 'syn-recv' | 'established' | 'closing' | 'closed';
export const ctState = enumCodec<CtState>('ct_state', 1, [
  { cName: 'CT_STATE_NEW', value: 1, name: 'new' },
  { cName: 'CT_STATE_SYN_SENT', value: 2, name: 'syn-sent' },
  { cName: 'CT_STATE_SYN_RECV', value: 3, name: 'syn-recv' },
  { cName: 'CT_STATE_ESTABLISHED', value: 4, name: 'established' },
  { cName: 'CT_STATE_CLOSING', value: 5, name: 'closing' },
  { cName: 'CT_STATE_CLOSED', value: 6, name: 'closed' },
]);

export type EventType = 'drop' | 'trace' | 'policy-verdict' | 'sock';
export const eventType = enumCodec<EventType>('weft_event_type', 1, [
  { cName: 'WEFT_EVENT_DROP', value: 1, name: 'drop' },
  { cName: 'WEFT_EVENT_TRACE', value: 2, name: 'trace' },
  { cName: 'WEFT_EVENT_POLICY', value: 3, name: 'policy-verdict' },
  { cName: 'WEFT_EVENT_SOCK', value: 4, name: 'sock' },
]);

export type EventsLevel = 'new-and-drops' | 'every-packet';
export const eventsLevel = enumCodec<EventsLevel>('events_level', 4, [
  { cName: 'EVENTS_NEW_AND_DROPS', value: 0, name: 'new-and-drops' },
  { cName: 'EVENTS_EVERY_PACKET', value: 1, name: 'every-packet' },
]);

export type DropReason = 'spoofed-source' | 'unknown-endpoint' | 'unsupported-l3' | 'malformed' | 'policy-denied';
export const dropReason = enumCodec<DropReason>('drop_reason', 1, [
  { cName: 'DROP_SPOOFED_SOURCE', value: 1, name: 'spoofed-source' },
  { cName: 'DROP_UNKNOWN_ENDPOINT', value: 2, name: 'unknown-endpoint' },
  { cName: 'DROP_UNSUPPORTED_L3', value: 3, name: 'unsupported-l3' },
  { cName: 'DROP_MALFORMED', value: 4, name: 'malformed' },
  { cName: 'DROP_POLICY', value: 5, name: 'policy-denied' },
]);

export const ALL_ENUMS: readonly EnumCodec<string>[] = [weftDir, ctState, eventType, dropReason, eventsLevel];

function enumName<N extends string>(e: EnumCodec<N>, v: number): N {
  const n = e.name(v);
  if (n === undefined) throw new Error(`${e.cName}: unknown value ${v}`);
  return n;
}

// ---- helpers ----

const PROTO_NAMES: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP', 136: 'UDPLite' };

/** IANA name of an IP protocol number, or the number itself. */
export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? String(proto);
}

function readFamily(buf: Buffer, off: number): Family | undefined {
  const f = buf.readUInt8(off);
  return f === 4 || f === 6 ? f : undefined;
}

function readAddr(buf: Buffer, off: number, family: Family | undefined): string | undefined {
  return family ? formatIp(buf.subarray(off, off + 16), family) : undefined;
}

// ---- lxc_endpoints: __u32 ifindex → struct endpoint_info ----

export interface EndpointInfo {
  endpointId: number;
  flags: number;
  ipv4?: string;
  ipv6?: string;
}

export const endpointInfo: StructCodec<EndpointInfo> = {
  cName: 'endpoint_info',
  size: 44,
  fields: {
    endpoint_id: { offset: 0, size: 4 },
    flags: { offset: 4, size: 4 },
    ipv4: { offset: 8, size: 16 },
    ipv6: { offset: 24, size: 16 },
    has_ipv4: { offset: 40, size: 1 },
    has_ipv6: { offset: 41, size: 1 },
    pad: { offset: 42, size: 2 },
  },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 44);
    buf.writeUInt32LE(v.endpointId, off);
    buf.writeUInt32LE(v.flags, off + 4);
    if (v.ipv4 !== undefined) {
      writeIpBytes(v.ipv4, 4, buf, off + 8);
      buf.writeUInt8(1, off + 40);
    }
    if (v.ipv6 !== undefined) {
      writeIpBytes(v.ipv6, 6, buf, off + 24);
      buf.writeUInt8(1, off + 41);
    }
  },
  decode(buf, off = 0) {
    const out: EndpointInfo = { endpointId: buf.readUInt32LE(off), flags: buf.readUInt32LE(off + 4) };
    if (buf.readUInt8(off + 40)) out.ipv4 = formatIp(buf.subarray(off + 8, off + 12), 4);
    if (buf.readUInt8(off + 41)) out.ipv6 = formatIp(buf.subarray(off + 24, off + 40), 6);
    return out;
  },
};

/** The lxc_endpoints key: the host-side veth's ifindex, a host-endian __u32. */
export function ifindexKey(ifindex: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(ifindex);
  return b;
}

// ---- lxc_metrics: per CPU, struct endpoint_metrics_key → struct endpoint_metrics ----

export interface EndpointMetricsKey {
  endpointId: number;
  direction: Direction;
}

export const endpointMetricsKey: StructCodec<EndpointMetricsKey> = {
  cName: 'endpoint_metrics_key',
  size: 8,
  fields: { endpoint_id: { offset: 0, size: 4 }, direction: { offset: 4, size: 1 }, pad: { offset: 5, size: 3 } },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 8);
    buf.writeUInt32LE(v.endpointId, off);
    buf.writeUInt8(weftDir.value(v.direction), off + 4);
  },
  decode(buf, off = 0) {
    return { endpointId: buf.readUInt32LE(off), direction: enumName(weftDir, buf.readUInt8(off + 4)) };
  },
};

export interface EndpointCounters {
  packets: bigint;
  bytes: bigint;
  drops: bigint;
}

/** One CPU's slot of an lxc_metrics value. */
export const endpointMetrics: StructCodec<EndpointCounters> = {
  cName: 'endpoint_metrics',
  size: 24,
  fields: { packets: { offset: 0, size: 8 }, bytes: { offset: 8, size: 8 }, drops: { offset: 16, size: 8 } },
  encodeInto(v, buf, off) {
    buf.writeBigUInt64LE(v.packets, off);
    buf.writeBigUInt64LE(v.bytes, off + 8);
    buf.writeBigUInt64LE(v.drops, off + 16);
  },
  decode(buf, off = 0) {
    return { packets: buf.readBigUInt64LE(off), bytes: buf.readBigUInt64LE(off + 8), drops: buf.readBigUInt64LE(off + 16) };
  },
};

// ---- ct: struct ct_key → struct ct_entry ----

/** A connection from one endpoint's side: its own address and port first, the peer's second,
 *  whichever way it was opened (see origin in CtEntry). ICMP echo: both ports are the id. */
export interface CtKey {
  family: Family;
  proto: number;
  epAddr: string;
  peerAddr: string;
  epPort: number;
  peerPort: number;
}

export const ctKey: StructCodec<CtKey> = {
  cName: 'ct_key',
  size: 40,
  fields: {
    ep_addr: { offset: 0, size: 16 },
    peer_addr: { offset: 16, size: 16 },
    ep_port: { offset: 32, size: 2 },
    peer_port: { offset: 34, size: 2 },
    proto: { offset: 36, size: 1 },
    family: { offset: 37, size: 1 },
    pad: { offset: 38, size: 2 },
  },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 40);
    writeIpBytes(v.epAddr, v.family, buf, off);
    writeIpBytes(v.peerAddr, v.family, buf, off + 16);
    buf.writeUInt16BE(v.epPort, off + 32);
    buf.writeUInt16BE(v.peerPort, off + 34);
    buf.writeUInt8(v.proto, off + 36);
    buf.writeUInt8(v.family, off + 37);
  },
  decode(buf, off = 0) {
    const family = readFamily(buf, off + 37);
    if (!family) throw new Error(`ct_key: family ${buf.readUInt8(off + 37)} is neither 4 nor 6`);
    return {
      family,
      proto: buf.readUInt8(off + 36),
      epAddr: formatIp(buf.subarray(off, off + 16), family),
      peerAddr: formatIp(buf.subarray(off + 16, off + 32), family),
      epPort: buf.readUInt16BE(off + 32),
      peerPort: buf.readUInt16BE(off + 34),
    };
  },
};

export interface CtEntry {
  /** In the direction that opened the connection. */
  packetsOrig: bigint;
  bytesOrig: bigint;
  packetsReply: bigint;
  bytesReply: bigint;
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC nanoseconds. */
  createdNs: bigint;
  lastSeenNs: bigint;
  endpointId: number;
  /** egress: the pod opened it; ingress: it was opened towards the pod. */
  origin: Direction;
  state: CtState;
  tcpFlagsOrig: number;
  tcpFlagsReply: number;
}

export const ctEntry: StructCodec<CtEntry> = {
  cName: 'ct_entry',
  size: 56,
  fields: {
    packets_orig: { offset: 0, size: 8 },
    bytes_orig: { offset: 8, size: 8 },
    packets_reply: { offset: 16, size: 8 },
    bytes_reply: { offset: 24, size: 8 },
    created_ns: { offset: 32, size: 8 },
    last_seen_ns: { offset: 40, size: 8 },
    endpoint_id: { offset: 48, size: 4 },
    origin: { offset: 52, size: 1 },
    state: { offset: 53, size: 1 },
    tcp_flags_orig: { offset: 54, size: 1 },
    tcp_flags_reply: { offset: 55, size: 1 },
  },
  encodeInto(v, buf, off) {
    buf.writeBigUInt64LE(v.packetsOrig, off);
    buf.writeBigUInt64LE(v.bytesOrig, off + 8);
    buf.writeBigUInt64LE(v.packetsReply, off + 16);
    buf.writeBigUInt64LE(v.bytesReply, off + 24);
    buf.writeBigUInt64LE(v.createdNs, off + 32);
    buf.writeBigUInt64LE(v.lastSeenNs, off + 40);
    buf.writeUInt32LE(v.endpointId, off + 48);
    buf.writeUInt8(weftDir.value(v.origin), off + 52);
    buf.writeUInt8(ctState.value(v.state), off + 53);
    buf.writeUInt8(v.tcpFlagsOrig, off + 54);
    buf.writeUInt8(v.tcpFlagsReply, off + 55);
  },
  decode(buf, off = 0) {
    return {
      packetsOrig: buf.readBigUInt64LE(off),
      bytesOrig: buf.readBigUInt64LE(off + 8),
      packetsReply: buf.readBigUInt64LE(off + 16),
      bytesReply: buf.readBigUInt64LE(off + 24),
      createdNs: buf.readBigUInt64LE(off + 32),
      lastSeenNs: buf.readBigUInt64LE(off + 40),
      endpointId: buf.readUInt32LE(off + 48),
      origin: enumName(weftDir, buf.readUInt8(off + 52)),
      state: enumName(ctState, buf.readUInt8(off + 53)),
      tcpFlagsOrig: buf.readUInt8(off + 54),
      tcpFlagsReply: buf.readUInt8(off + 55),
    };
  },
};

// ---- events: struct event_hdr, the start of every ring buffer record ----

export interface EventHeader {
  timeNs: bigint;
  type: EventType;
  /** Drop events only. */
  reason?: DropReason;
  direction: Direction;
  /** Undefined when the packet was not IP (ARP, another ethertype, unparsable). */
  family?: Family;
  ifindex: number;
  /** 0 when the interface has no endpoint. */
  endpointId: number;
  pktLen: number;
  saddr?: string;
  daddr?: string;
  sport: number;
  dport: number;
  proto: number;
  tcpFlags: number;
  ethertype: number;
}

export const eventHdr: StructCodec<EventHeader> = {
  cName: 'event_hdr',
  size: 64,
  fields: {
    time_ns: { offset: 0, size: 8 },
    type: { offset: 8, size: 1 },
    reason: { offset: 9, size: 1 },
    direction: { offset: 10, size: 1 },
    family: { offset: 11, size: 1 },
    ifindex: { offset: 12, size: 4 },
    endpoint_id: { offset: 16, size: 4 },
    pkt_len: { offset: 20, size: 4 },
    saddr: { offset: 24, size: 16 },
    daddr: { offset: 40, size: 16 },
    sport: { offset: 56, size: 2 },
    dport: { offset: 58, size: 2 },
    proto: { offset: 60, size: 1 },
    tcp_flags: { offset: 61, size: 1 },
    ethertype: { offset: 62, size: 2 },
  },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 64);
    buf.writeBigUInt64LE(v.timeNs, off);
    buf.writeUInt8(eventType.value(v.type), off + 8);
    buf.writeUInt8(v.reason ? dropReason.value(v.reason) : 0, off + 9);
    buf.writeUInt8(weftDir.value(v.direction), off + 10);
    buf.writeUInt8(v.family ?? 0, off + 11);
    buf.writeUInt32LE(v.ifindex, off + 12);
    buf.writeUInt32LE(v.endpointId, off + 16);
    buf.writeUInt32LE(v.pktLen, off + 20);
    if (v.family && v.saddr) writeIpBytes(v.saddr, v.family, buf, off + 24);
    if (v.family && v.daddr) writeIpBytes(v.daddr, v.family, buf, off + 40);
    buf.writeUInt16BE(v.sport, off + 56);
    buf.writeUInt16BE(v.dport, off + 58);
    buf.writeUInt8(v.proto, off + 60);
    buf.writeUInt8(v.tcpFlags, off + 61);
    buf.writeUInt16BE(v.ethertype, off + 62);
  },
  decode(buf, off = 0) {
    const family = readFamily(buf, off + 11);
    const reason = dropReason.name(buf.readUInt8(off + 9));
    const saddr = readAddr(buf, off + 24, family);
    const daddr = readAddr(buf, off + 40, family);
    return {
      timeNs: buf.readBigUInt64LE(off),
      type: enumName(eventType, buf.readUInt8(off + 8)),
      ...(reason && { reason }),
      direction: enumName(weftDir, buf.readUInt8(off + 10)),
      ...(family && { family }),
      ifindex: buf.readUInt32LE(off + 12),
      endpointId: buf.readUInt32LE(off + 16),
      pktLen: buf.readUInt32LE(off + 20),
      ...(saddr !== undefined && { saddr }),
      ...(daddr !== undefined && { daddr }),
      sport: buf.readUInt16BE(off + 56),
      dport: buf.readUInt16BE(off + 58),
      proto: buf.readUInt8(off + 60),
      tcpFlags: buf.readUInt8(off + 61),
      ethertype: buf.readUInt16BE(off + 62),
    };
  },
};

// ---- the events that add to the header ----

export const TRACE_F_NEW = 1;
export const TRACE_F_REPLY = 2;

export interface TraceEvent {
  hdr: EventHeader;
  peerIdentity: number;
  /** TRACE_F_*. */
  ctFlags: number;
}

export const pktTraceEvent: StructCodec<TraceEvent> = {
  cName: 'pkt_trace_event',
  size: 72,
  fields: { hdr: { offset: 0, size: 64 }, peer_identity: { offset: 64, size: 4 }, ct_flags: { offset: 68, size: 1 }, pad: { offset: 69, size: 3 } },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 72);
    eventHdr.encodeInto(v.hdr, buf, off);
    buf.writeUInt32LE(v.peerIdentity >>> 0, off + 64);
    buf.writeUInt8(v.ctFlags, off + 68);
  },
  decode(buf, off = 0) {
    return { hdr: eventHdr.decode(buf, off), peerIdentity: buf.readUInt32LE(off + 64), ctFlags: buf.readUInt8(off + 68) };
  },
};

export interface PolicyVerdictEvent {
  hdr: EventHeader;
  peerIdentity: number;
  /** The allowing rule; 0 when denied. */
  ruleId: number;
  allowed: boolean;
}

export const policyVerdictEvent: StructCodec<PolicyVerdictEvent> = {
  cName: 'policy_verdict_event',
  size: 80,
  fields: {
    hdr: { offset: 0, size: 64 }, peer_identity: { offset: 64, size: 4 }, rule_id: { offset: 68, size: 4 }, allowed: { offset: 72, size: 1 }, pad: { offset: 73, size: 7 },
  },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 80);
    eventHdr.encodeInto(v.hdr, buf, off);
    buf.writeUInt32LE(v.peerIdentity >>> 0, off + 64);
    buf.writeUInt32LE(v.ruleId >>> 0, off + 68);
    buf.writeUInt8(v.allowed ? 1 : 0, off + 72);
  },
  decode(buf, off = 0) {
    return { hdr: eventHdr.decode(buf, off), peerIdentity: buf.readUInt32LE(off + 64), ruleId: buf.readUInt32LE(off + 68), allowed: buf.readUInt8(off + 72) !== 0 };
  },
};

export interface SockXlateEvent {
  hdr: EventHeader;
  /** The service address the application asked for; hdr.daddr/dport are the backend. */
  svcAddr: string;
  svcPort: number;
  isConnect: boolean;
  /** The backend is the node proxy's listener: the Service has L7 routes. */
  redirected: boolean;
  cgroupId: bigint;
  netnsCookie: bigint;
}

/** Sent by bpf/sock.c (its BTF has it; lxc.o's does not). */
export const sockXlateEvent: StructCodec<SockXlateEvent> = {
  cName: 'sock_xlate_event',
  size: 104,
  fields: {
    hdr: { offset: 0, size: 64 }, svc_addr: { offset: 64, size: 16 }, svc_port: { offset: 80, size: 2 }, is_connect: { offset: 82, size: 1 },
    redirected: { offset: 83, size: 1 }, pad: { offset: 84, size: 4 }, cgroup_id: { offset: 88, size: 8 }, netns_cookie: { offset: 96, size: 8 },
  },
  encodeInto(v, buf, off) {
    buf.fill(0, off, off + 104);
    eventHdr.encodeInto(v.hdr, buf, off);
    writeIpBytes(v.svcAddr, v.hdr.family ?? 4, buf, off + 64);
    buf.writeUInt16BE(v.svcPort, off + 80);
    buf.writeUInt8(v.isConnect ? 1 : 0, off + 82);
    buf.writeUInt8(v.redirected ? 1 : 0, off + 83);
    buf.writeBigUInt64LE(v.cgroupId, off + 88);
    buf.writeBigUInt64LE(v.netnsCookie, off + 96);
  },
  decode(buf, off = 0) {
    const hdr = eventHdr.decode(buf, off);
    return {
      hdr,
      svcAddr: formatIp(buf.subarray(off + 64, off + (hdr.family === 6 ? 80 : 68)), hdr.family ?? 4),
      svcPort: buf.readUInt16BE(off + 80),
      isConnect: buf.readUInt8(off + 82) !== 0,
      redirected: buf.readUInt8(off + 83) !== 0,
      cgroupId: buf.readBigUInt64LE(off + 88),
      netnsCookie: buf.readBigUInt64LE(off + 96),
    };
  },
};

/** bpf/include/events.h EVENTS_RING_BYTES: 8 MiB holds about 116,000 drop events, 58 ms of a
 *  2 million a second burst while the observer's thread waits for a CPU. */
export const EVENTS_RING_BYTES = 8 << 20;

/** The maps lxc.o and sock.o share (pinned once, reused by both): the events ring and its settings. */
export const SHARED_EVENT_MAPS = ['events', 'events_lost', 'events_config'] as const;

export interface EventsConfig {
  traceLevel: EventsLevel;
}

export const eventsConfigValue: StructCodec<EventsConfig> = {
  cName: 'events_config_value',
  size: 4,
  fields: { trace_level: { offset: 0, size: 4 } },
  encodeInto(v, buf, off) {
    buf.writeUInt32LE(eventsLevel.value(v.traceLevel), off);
  },
  decode(buf, off = 0) {
    return { traceLevel: enumName(eventsLevel, buf.readUInt32LE(off)) };
  },
};

// ---- the maps ----

export const BPF_MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_HASH: 5, PERCPU_ARRAY: 6, LRU_HASH: 9, LPM_TRIE: 11, RINGBUF: 27 } as const;

/** A map key or value that is a plain integer rather than a struct: its size in bytes. */
export interface ScalarLayout {
  readonly scalar: 4 | 8;
}

export interface MapLayout {
  readonly type: number;
  readonly maxEntries: number;
  /** Absent for a ring buffer. */
  readonly key?: StructCodec<unknown> | ScalarLayout;
  /** For a per-CPU map: one CPU's slot. */
  readonly value?: StructCodec<unknown> | ScalarLayout;
}

/** Every map of lxc.o, as the headers declare it. */
export const ENDPOINT_MAPS: Readonly<Record<string, MapLayout>> = {
  lxc_endpoints: { type: BPF_MAP_TYPE.HASH, maxEntries: 4096, key: { scalar: 4 }, value: endpointInfo as StructCodec<unknown> },
  lxc_metrics: {
    type: BPF_MAP_TYPE.PERCPU_HASH,
    maxEntries: 2 * 4096 + 2,
    key: endpointMetricsKey as StructCodec<unknown>,
    value: endpointMetrics as StructCodec<unknown>,
  },
  ct: { type: BPF_MAP_TYPE.LRU_HASH, maxEntries: 262144, key: ctKey as StructCodec<unknown>, value: ctEntry as StructCodec<unknown> },
  events: { type: BPF_MAP_TYPE.RINGBUF, maxEntries: EVENTS_RING_BYTES },
  events_lost: { type: BPF_MAP_TYPE.PERCPU_ARRAY, maxEntries: 1, key: { scalar: 4 }, value: { scalar: 8 } },
  events_config: { type: BPF_MAP_TYPE.ARRAY, maxEntries: 1, key: { scalar: 4 }, value: eventsConfigValue as StructCodec<unknown> },
  ipcache: { type: BPF_MAP_TYPE.LPM_TRIE, maxEntries: 1 << 18, key: ipcacheKey as StructCodec<unknown>, value: ipcacheValue as StructCodec<unknown> },
  policy: { type: BPF_MAP_TYPE.LPM_TRIE, maxEntries: 1 << 20, key: policyKey as StructCodec<unknown>, value: policyValue as StructCodec<unknown> },
};

export const ENDPOINT_CODECS: readonly StructCodec<unknown>[] = [
  endpointInfo, endpointMetricsKey, endpointMetrics, ctKey, ctEntry, eventHdr, pktTraceEvent, policyVerdictEvent, eventsConfigValue, ...POLICY_CODECS,
] as StructCodec<unknown>[];
