// Codecs for the pod endpoint maps and events declared in bpf/include/endpoint.h, conntrack.h
// and events.h (used by bpf/lxc.c). test/datapath/btf-layout.test.ts checks every struct, enum
// and map here against build/bpf/lxc.o's BTF.
import { addr, be16, nested, pad, struct, u32, u64, u8, type Coding, type StructCodec } from './codec.js';
import { POLICY_CODECS, ipcacheKey, ipcacheValue, policyKey, policyValue } from './policy-codecs.js';
import type { Family } from '../lib/ip.js';

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

function enumCodec<N extends string>(
  cName: string,
  size: number,
  members: readonly { cName: string; value: number; name: N }[],
): EnumCodec<N> {
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

const PROTO_NAMES: Record<number, string> = {
  1: 'ICMP',
  6: 'TCP',
  17: 'UDP',
  58: 'ICMPv6',
  132: 'SCTP',
  136: 'UDPLite',
};

/** IANA name of an IP protocol number, or the number itself. */
export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? String(proto);
}

function asFamily(f: number): Family | undefined {
  return f === 4 || f === 6 ? f : undefined;
}

// ---- lxc_endpoints: __u32 ifindex → struct endpoint_info ----

export interface EndpointInfo {
  endpointId: number;
  flags: number;
  ipv4?: string;
  ipv6?: string;
}

export const endpointInfo = struct(
  'endpoint_info',
  44,
  {
    endpoint_id: u32(0),
    flags: u32(4),
    ipv4: addr(8),
    ipv6: addr(24),
    has_ipv4: u8(40),
    has_ipv6: u8(41),
    pad: pad(42, 2),
  },
  (f, size): Coding<EndpointInfo> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.endpoint_id.write(buf, off, v.endpointId);
      f.flags.write(buf, off, v.flags);
      if (v.ipv4 !== undefined) {
        f.ipv4.write(buf, off, v.ipv4, 4);
        f.has_ipv4.write(buf, off, 1);
      }
      if (v.ipv6 !== undefined) {
        f.ipv6.write(buf, off, v.ipv6, 6);
        f.has_ipv6.write(buf, off, 1);
      }
    },
    decode(buf, off = 0) {
      const out: EndpointInfo = { endpointId: f.endpoint_id.read(buf, off), flags: f.flags.read(buf, off) };
      if (f.has_ipv4.read(buf, off)) out.ipv4 = f.ipv4.read(buf, off, 4);
      if (f.has_ipv6.read(buf, off)) out.ipv6 = f.ipv6.read(buf, off, 6);
      return out;
    },
  }),
);

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

export const endpointMetricsKey = struct(
  'endpoint_metrics_key',
  8,
  {
    endpoint_id: u32(0),
    direction: u8(4),
    pad: pad(5, 3),
  },
  (f, size): Coding<EndpointMetricsKey> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.endpoint_id.write(buf, off, v.endpointId);
      f.direction.write(buf, off, weftDir.value(v.direction));
    },
    decode(buf, off = 0) {
      return { endpointId: f.endpoint_id.read(buf, off), direction: enumName(weftDir, f.direction.read(buf, off)) };
    },
  }),
);

export interface EndpointCounters {
  packets: bigint;
  bytes: bigint;
  drops: bigint;
}

/** One CPU's slot of an lxc_metrics value. */
export const endpointMetrics = struct(
  'endpoint_metrics',
  24,
  {
    packets: u64(0),
    bytes: u64(8),
    drops: u64(16),
  },
  (f): Coding<EndpointCounters> => ({
    encodeInto(v, buf, off) {
      f.packets.write(buf, off, v.packets);
      f.bytes.write(buf, off, v.bytes);
      f.drops.write(buf, off, v.drops);
    },
    decode(buf, off = 0) {
      return { packets: f.packets.read(buf, off), bytes: f.bytes.read(buf, off), drops: f.drops.read(buf, off) };
    },
  }),
);

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

export const ctKey = struct(
  'ct_key',
  40,
  {
    ep_addr: addr(0),
    peer_addr: addr(16),
    ep_port: be16(32),
    peer_port: be16(34),
    proto: u8(36),
    family: u8(37),
    pad: pad(38, 2),
  },
  (f, size): Coding<CtKey> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.ep_addr.write(buf, off, v.epAddr, v.family);
      f.peer_addr.write(buf, off, v.peerAddr, v.family);
      f.ep_port.write(buf, off, v.epPort);
      f.peer_port.write(buf, off, v.peerPort);
      f.proto.write(buf, off, v.proto);
      f.family.write(buf, off, v.family);
    },
    decode(buf, off = 0) {
      const family = asFamily(f.family.read(buf, off));
      if (!family) throw new Error(`ct_key: family ${f.family.read(buf, off)} is neither 4 nor 6`);
      return {
        family,
        proto: f.proto.read(buf, off),
        epAddr: f.ep_addr.read(buf, off, family),
        peerAddr: f.peer_addr.read(buf, off, family),
        epPort: f.ep_port.read(buf, off),
        peerPort: f.peer_port.read(buf, off),
      };
    },
  }),
);

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

export const ctEntry = struct(
  'ct_entry',
  56,
  {
    packets_orig: u64(0),
    bytes_orig: u64(8),
    packets_reply: u64(16),
    bytes_reply: u64(24),
    created_ns: u64(32),
    last_seen_ns: u64(40),
    endpoint_id: u32(48),
    origin: u8(52),
    state: u8(53),
    tcp_flags_orig: u8(54),
    tcp_flags_reply: u8(55),
  },
  (f): Coding<CtEntry> => ({
    encodeInto(v, buf, off) {
      f.packets_orig.write(buf, off, v.packetsOrig);
      f.bytes_orig.write(buf, off, v.bytesOrig);
      f.packets_reply.write(buf, off, v.packetsReply);
      f.bytes_reply.write(buf, off, v.bytesReply);
      f.created_ns.write(buf, off, v.createdNs);
      f.last_seen_ns.write(buf, off, v.lastSeenNs);
      f.endpoint_id.write(buf, off, v.endpointId);
      f.origin.write(buf, off, weftDir.value(v.origin));
      f.state.write(buf, off, ctState.value(v.state));
      f.tcp_flags_orig.write(buf, off, v.tcpFlagsOrig);
      f.tcp_flags_reply.write(buf, off, v.tcpFlagsReply);
    },
    decode(buf, off = 0) {
      return {
        packetsOrig: f.packets_orig.read(buf, off),
        bytesOrig: f.bytes_orig.read(buf, off),
        packetsReply: f.packets_reply.read(buf, off),
        bytesReply: f.bytes_reply.read(buf, off),
        createdNs: f.created_ns.read(buf, off),
        lastSeenNs: f.last_seen_ns.read(buf, off),
        endpointId: f.endpoint_id.read(buf, off),
        origin: enumName(weftDir, f.origin.read(buf, off)),
        state: enumName(ctState, f.state.read(buf, off)),
        tcpFlagsOrig: f.tcp_flags_orig.read(buf, off),
        tcpFlagsReply: f.tcp_flags_reply.read(buf, off),
      };
    },
  }),
);

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

export const eventHdr = struct(
  'event_hdr',
  64,
  {
    time_ns: u64(0),
    type: u8(8),
    reason: u8(9),
    direction: u8(10),
    family: u8(11),
    ifindex: u32(12),
    endpoint_id: u32(16),
    pkt_len: u32(20),
    saddr: addr(24),
    daddr: addr(40),
    sport: be16(56),
    dport: be16(58),
    proto: u8(60),
    tcp_flags: u8(61),
    ethertype: be16(62),
  },
  (f, size): Coding<EventHeader> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.time_ns.write(buf, off, v.timeNs);
      f.type.write(buf, off, eventType.value(v.type));
      f.reason.write(buf, off, v.reason ? dropReason.value(v.reason) : 0);
      f.direction.write(buf, off, weftDir.value(v.direction));
      f.family.write(buf, off, v.family ?? 0);
      f.ifindex.write(buf, off, v.ifindex);
      f.endpoint_id.write(buf, off, v.endpointId);
      f.pkt_len.write(buf, off, v.pktLen);
      if (v.family && v.saddr) f.saddr.write(buf, off, v.saddr, v.family);
      if (v.family && v.daddr) f.daddr.write(buf, off, v.daddr, v.family);
      f.sport.write(buf, off, v.sport);
      f.dport.write(buf, off, v.dport);
      f.proto.write(buf, off, v.proto);
      f.tcp_flags.write(buf, off, v.tcpFlags);
      f.ethertype.write(buf, off, v.ethertype);
    },
    decode(buf, off = 0) {
      const family = asFamily(f.family.read(buf, off));
      const reason = dropReason.name(f.reason.read(buf, off));
      const saddr = family ? f.saddr.read(buf, off, family) : undefined;
      const daddr = family ? f.daddr.read(buf, off, family) : undefined;
      return {
        timeNs: f.time_ns.read(buf, off),
        type: enumName(eventType, f.type.read(buf, off)),
        ...(reason && { reason }),
        direction: enumName(weftDir, f.direction.read(buf, off)),
        ...(family && { family }),
        ifindex: f.ifindex.read(buf, off),
        endpointId: f.endpoint_id.read(buf, off),
        pktLen: f.pkt_len.read(buf, off),
        ...(saddr !== undefined && { saddr }),
        ...(daddr !== undefined && { daddr }),
        sport: f.sport.read(buf, off),
        dport: f.dport.read(buf, off),
        proto: f.proto.read(buf, off),
        tcpFlags: f.tcp_flags.read(buf, off),
        ethertype: f.ethertype.read(buf, off),
      };
    },
  }),
);

// ---- the events that add to the header ----

export const TRACE_F_NEW = 1;
export const TRACE_F_REPLY = 2;

export interface TraceEvent {
  hdr: EventHeader;
  peerIdentity: number;
  /** TRACE_F_*. */
  ctFlags: number;
}

export const pktTraceEvent = struct(
  'pkt_trace_event',
  72,
  {
    hdr: nested(0, eventHdr),
    peer_identity: u32(64),
    ct_flags: u8(68),
    pad: pad(69, 3),
  },
  (f, size): Coding<TraceEvent> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.hdr.write(buf, off, v.hdr);
      f.peer_identity.write(buf, off, v.peerIdentity >>> 0);
      f.ct_flags.write(buf, off, v.ctFlags);
    },
    decode(buf, off = 0) {
      return {
        hdr: f.hdr.read(buf, off),
        peerIdentity: f.peer_identity.read(buf, off),
        ctFlags: f.ct_flags.read(buf, off),
      };
    },
  }),
);

export interface PolicyVerdictEvent {
  hdr: EventHeader;
  peerIdentity: number;
  /** The allowing rule; 0 when denied. */
  ruleId: number;
  allowed: boolean;
}

export const policyVerdictEvent = struct(
  'policy_verdict_event',
  80,
  {
    hdr: nested(0, eventHdr),
    peer_identity: u32(64),
    rule_id: u32(68),
    allowed: u8(72),
    pad: pad(73, 7),
  },
  (f, size): Coding<PolicyVerdictEvent> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.hdr.write(buf, off, v.hdr);
      f.peer_identity.write(buf, off, v.peerIdentity >>> 0);
      f.rule_id.write(buf, off, v.ruleId >>> 0);
      f.allowed.write(buf, off, v.allowed ? 1 : 0);
    },
    decode(buf, off = 0) {
      return {
        hdr: f.hdr.read(buf, off),
        peerIdentity: f.peer_identity.read(buf, off),
        ruleId: f.rule_id.read(buf, off),
        allowed: f.allowed.read(buf, off) !== 0,
      };
    },
  }),
);

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
export const sockXlateEvent = struct(
  'sock_xlate_event',
  104,
  {
    hdr: nested(0, eventHdr),
    svc_addr: addr(64),
    svc_port: be16(80),
    is_connect: u8(82),
    redirected: u8(83),
    pad: pad(84, 4),
    cgroup_id: u64(88),
    netns_cookie: u64(96),
  },
  (f, size): Coding<SockXlateEvent> => ({
    encodeInto(v, buf, off) {
      buf.fill(0, off, off + size);
      f.hdr.write(buf, off, v.hdr);
      f.svc_addr.write(buf, off, v.svcAddr, v.hdr.family ?? 4);
      f.svc_port.write(buf, off, v.svcPort);
      f.is_connect.write(buf, off, v.isConnect ? 1 : 0);
      f.redirected.write(buf, off, v.redirected ? 1 : 0);
      f.cgroup_id.write(buf, off, v.cgroupId);
      f.netns_cookie.write(buf, off, v.netnsCookie);
    },
    decode(buf, off = 0) {
      const hdr = f.hdr.read(buf, off);
      return {
        hdr,
        svcAddr: f.svc_addr.read(buf, off, hdr.family ?? 4),
        svcPort: f.svc_port.read(buf, off),
        isConnect: f.is_connect.read(buf, off) !== 0,
        redirected: f.redirected.read(buf, off) !== 0,
        cgroupId: f.cgroup_id.read(buf, off),
        netnsCookie: f.netns_cookie.read(buf, off),
      };
    },
  }),
);

/** bpf/include/events.h EVENTS_RING_BYTES: 8 MiB holds about 116,000 drop events, 58 ms of a
 *  2 million a second burst while the observer's thread waits for a CPU. */
export const EVENTS_RING_BYTES = 8 << 20;

/** The maps lxc.o and sock.o share (pinned once, reused by both): the events ring and its settings. */
export const SHARED_EVENT_MAPS = ['events', 'events_lost', 'events_config'] as const;

export interface EventsConfig {
  traceLevel: EventsLevel;
}

export const eventsConfigValue = struct(
  'events_config_value',
  4,
  {
    trace_level: u32(0),
  },
  (f): Coding<EventsConfig> => ({
    encodeInto(v, buf, off) {
      f.trace_level.write(buf, off, eventsLevel.value(v.traceLevel));
    },
    decode(buf, off = 0) {
      return { traceLevel: enumName(eventsLevel, f.trace_level.read(buf, off)) };
    },
  }),
);

// ---- the maps ----

export const BPF_MAP_TYPE = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LPM_TRIE: 11,
  RINGBUF: 27,
} as const;

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
  lxc_endpoints: {
    type: BPF_MAP_TYPE.HASH,
    maxEntries: 4096,
    key: { scalar: 4 },
    value: endpointInfo,
  },
  lxc_metrics: {
    type: BPF_MAP_TYPE.PERCPU_HASH,
    maxEntries: 2 * 4096 + 2,
    key: endpointMetricsKey,
    value: endpointMetrics,
  },
  ct: {
    type: BPF_MAP_TYPE.LRU_HASH,
    maxEntries: 262144,
    key: ctKey,
    value: ctEntry,
  },
  events: { type: BPF_MAP_TYPE.RINGBUF, maxEntries: EVENTS_RING_BYTES },
  events_lost: { type: BPF_MAP_TYPE.PERCPU_ARRAY, maxEntries: 1, key: { scalar: 4 }, value: { scalar: 8 } },
  events_config: {
    type: BPF_MAP_TYPE.ARRAY,
    maxEntries: 1,
    key: { scalar: 4 },
    value: eventsConfigValue,
  },
  ipcache: {
    type: BPF_MAP_TYPE.LPM_TRIE,
    maxEntries: 1 << 18,
    key: ipcacheKey,
    value: ipcacheValue,
  },
  policy: {
    type: BPF_MAP_TYPE.LPM_TRIE,
    maxEntries: 1 << 20,
    key: policyKey,
    value: policyValue,
  },
};

export const ENDPOINT_CODECS: readonly StructCodec<unknown>[] = [
  endpointInfo,
  endpointMetricsKey,
  endpointMetrics,
  ctKey,
  ctEntry,
  eventHdr,
  pktTraceEvent,
  policyVerdictEvent,
  eventsConfigValue,
  ...POLICY_CODECS,
] as StructCodec<unknown>[];
