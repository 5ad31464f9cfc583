// From a raw ring buffer record to a Flow: the record's structs (endpoint-codecs.ts, checked
// against BTF) plus what the agent knows about the addresses in it. Pure given its context; run
// only for flows someone asks for.
import {
  TRACE_F_NEW,
  TRACE_F_REPLY,
  eventHdr,
  eventType,
  pktTraceEvent,
  policyVerdictEvent,
  protoName,
  sockXlateEvent,
  type EventHeader,
} from '../datapath/endpoint-codecs.js';
import type { Flow, FlowEndpoint } from '../contract/flow.js';

/** Who is behind an address, as the agent knows it now. */
export interface Workload {
  identity: number;
  namespace?: string;
  pod?: string;
  /** "key=value", sorted. */
  labels: readonly string[];
}

export interface FlowContext {
  /** Wall-clock time in ns since the epoch of a bpf_ktime_get_ns() reading. */
  wallTimeNs(monotonicNs: bigint): bigint;
  /** The pod, node or world behind an address. */
  workload(ip: string): Workload;
  /** A local endpoint (a pod the CNI plugin set up) by its endpoint id. */
  endpoint(id: number): Workload | undefined;
  /** The local pod whose network namespace has this cookie, and its address of a family. */
  socketOwner(netnsCookie: bigint, family: 4 | 6): { workload: Workload; ip?: string } | undefined;
  /** ns/name of the Service with this frontend. */
  service(ip: string, port: number, proto: number): string | undefined;
  /** The NetworkPolicy rule behind a rule id of the kernel's policy map. */
  rule(id: number): { policy: string | null; rule: string } | undefined;
  /** The policies that isolate a local endpoint in a direction (ns/name, sorted). */
  isolatedBy(endpointId: number, direction: 'ingress' | 'egress'): readonly string[];
}

const EVENT_DROP = eventType.value('drop');
const EVENT_TRACE = eventType.value('trace');
const EVENT_POLICY = eventType.value('policy-verdict');
const EVENT_SOCK = eventType.value('sock');
/** Where a record's type is (event_hdr.type, a byte), read before anything else. */
const TYPE_AT = eventHdr.fields.type.offset;

/** The record sizes per event type; anything shorter cannot be decoded. */
export const RECORD_SIZES: Readonly<Record<number, number>> = {
  [EVENT_DROP]: eventHdr.size,
  [EVENT_TRACE]: pktTraceEvent.size,
  [EVENT_POLICY]: policyVerdictEvent.size,
  [EVENT_SOCK]: sockXlateEvent.size,
};

/** Whether a record is one decodeFlow can read. */
export function decodable(data: Uint8Array, off: number, len: number): boolean {
  const need = len > TYPE_AT ? RECORD_SIZES[data[off + TYPE_AT]!] : undefined;
  return need !== undefined && len >= need;
}

// The fields after the header, read in place: the struct codecs would decode the header again.
const TRACE = pktTraceEvent.fields;
const POLICY = policyVerdictEvent.fields;

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];
const ICMP = 1;
const TCP = 6;
const ICMPV6 = 58;

function tcpFlags(bits: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < 8; i++) if (bits & (1 << i)) out.push(TCP_FLAG_NAMES[i]!);
  return out;
}

// The text up to the second ("2026-12-04T12:00:01"), kept for the second it is: flows come in
// bursts within one second, and Date's formatting is most of a flow's decoding cost otherwise.
let cachedSecond = -1n;
let cachedPrefix = '';

function rfc3339(ns: bigint): string {
  const second = ns / 1_000_000_000n;
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(Number(second) * 1000).toISOString().slice(0, 19);
  }
  return `${cachedPrefix}.${(ns - second * 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

function endpointOf(w: Workload, ip: string, port: number | undefined): FlowEndpoint {
  return {
    ip,
    ...(port !== undefined && { port }),
    identity: w.identity,
    ...(w.namespace !== undefined && { namespace: w.namespace }),
    ...(w.pod !== undefined && { pod: w.pod }),
    labels: [...w.labels],
  };
}

const hasPorts = (proto: number) => proto !== ICMP && proto !== ICMPV6;

/** The flow of a record, or undefined for a record that is not decodable. */
export function decodeFlow(raw: Buffer, ctx: FlowContext): Flow | undefined {
  if (!decodable(raw, 0, raw.length)) return undefined;
  const hdr = eventHdr.decode(raw);
  switch (raw[TYPE_AT]) {
    case EVENT_DROP:
      return packetFlow(hdr, ctx, { verdict: 'DROPPED', type: 'drop', ...(hdr.reason && { drop_reason: hdr.reason }) });
    case EVENT_TRACE: {
      const ctFlags = TRACE.ct_flags.read(raw, 0);
      const peer = TRACE.peer_identity.read(raw, 0);
      return packetFlow(
        hdr,
        ctx,
        { verdict: 'FORWARDED', type: 'trace', is_reply: (ctFlags & TRACE_F_REPLY) !== 0 },
        peer,
        (ctFlags & TRACE_F_NEW) !== 0,
      );
    }
    case EVENT_POLICY: {
      const allowed = POLICY.allowed.read(raw, 0) !== 0;
      const ruleId = POLICY.rule_id.read(raw, 0);
      const peer = POLICY.peer_identity.read(raw, 0);
      return packetFlow(
        hdr,
        ctx,
        {
          verdict: allowed ? 'FORWARDED' : 'DROPPED',
          type: 'policy-verdict',
          ...(!allowed && { drop_reason: 'policy-denied' }),
          policy: verdictPolicy(hdr, allowed, ruleId, ctx),
        },
        peer,
      );
    }
    case EVENT_SOCK:
      return sockFlow(raw, ctx);
  }
  return undefined;
}

/** What decided a verdict: the allowing rule, or the policies whose isolation nothing in them
 *  lifted (the same answer `weft explain` gives). */
function verdictPolicy(
  hdr: EventHeader,
  allowed: boolean,
  ruleId: number,
  ctx: FlowContext,
): NonNullable<Flow['policy']> {
  const direction = hdr.direction;
  if (allowed) {
    const r = ctx.rule(ruleId);
    return { name: r?.policy ?? null, rule: r?.rule ?? `rule ${ruleId}`, direction };
  }
  const by = ctx.isolatedBy(hdr.endpointId, direction);
  if (by.length === 0) return { name: null, rule: 'no rule allows it', direction };
  return {
    name: by[0]!,
    rule: by.length > 1 ? `default deny (also isolated by ${by.slice(1).join(', ')})` : 'default deny',
    direction,
  };
}

/** A packet seen at a pod's interface: the pod is the source on egress (from-pod) and the
 *  destination on ingress (to-pod). */
function packetFlow(
  hdr: EventHeader,
  ctx: FlowContext,
  fields: Pick<Flow, 'verdict' | 'type'> & Partial<Flow>,
  peerIdentity?: number,
  isNew = false,
): Flow {
  const saddr = hdr.saddr ?? '';
  const daddr = hdr.daddr ?? '';
  const ports = hasPorts(hdr.proto);
  const local = hdr.endpointId ? ctx.endpoint(hdr.endpointId) : undefined;
  const egress = hdr.direction === 'egress';
  const peerIp = egress ? daddr : saddr;
  const peerKnown = ctx.workload(peerIp);
  // The kernel looks the peer up only where policy needs it; 0 is "not looked up".
  const peer = peerIdentity ? { ...peerKnown, identity: peerIdentity } : peerKnown;
  const mine = local ?? ctx.workload(egress ? saddr : daddr);
  const src = endpointOf(egress ? mine : peer, saddr, ports ? hdr.sport : undefined);
  const dst = endpointOf(egress ? peer : mine, daddr, ports ? hdr.dport : undefined);
  const proto = hdr.family ? l4Name(hdr.proto) : `ethertype 0x${hdr.ethertype.toString(16).padStart(4, '0')}`;
  const flags = hdr.proto === TCP ? tcpFlags(hdr.tcpFlags) : [];
  const service = ports && hdr.family ? ctx.service(daddr, hdr.dport, hdr.proto) : undefined;
  const { is_reply = false, ...rest } = fields;
  return {
    time: rfc3339(ctx.wallTimeNs(hdr.timeNs)),
    ...rest,
    source: src,
    destination: dst,
    l4: { protocol: proto, ...(flags.length && { tcp_flags: flags }) },
    is_reply,
    ...(service !== undefined && { service }),
    observation_point: egress ? 'from-pod' : 'to-pod',
    summary: summary(hdr, flags, isNew),
  };
}

function sockFlow(raw: Buffer, ctx: FlowContext): Flow {
  const ev = sockXlateEvent.decode(raw);
  const { hdr } = ev;
  const backend = hdr.daddr ?? '';
  const service = ctx.service(ev.svcAddr, ev.svcPort, hdr.proto);
  const owner = ctx.socketOwner(ev.netnsCookie, hdr.family === 6 ? 6 : 4);
  // A socket hook sees no source address before the kernel picks one: the pod's own address
  // stands for it, and nothing at all when the socket is not a known pod's.
  const source: FlowEndpoint = owner
    ? endpointOf(owner.workload, owner.ip ?? unspecified(hdr.family), undefined)
    : { ip: unspecified(hdr.family), identity: 0, labels: [] };
  return {
    time: rfc3339(ctx.wallTimeNs(hdr.timeNs)),
    verdict: ev.redirected ? 'REDIRECTED' : 'TRANSLATED',
    type: 'sock',
    source,
    destination: endpointOf(ctx.workload(backend), backend, hdr.dport),
    l4: { protocol: l4Name(hdr.proto) },
    is_reply: false,
    ...(service !== undefined && { service }),
    observation_point: 'sock',
    summary: `${ev.isConnect ? 'connect' : 'sendmsg'} ${hostPort(ev.svcAddr, ev.svcPort)} → ${hostPort(backend, hdr.dport)}`,
  };
}

const unspecified = (family: number | undefined) => (family === 6 ? '::' : '0.0.0.0');

function l4Name(proto: number): string {
  return proto === ICMP ? 'ICMPv4' : protoName(proto);
}

const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

function summary(hdr: EventHeader, flags: string[], isNew: boolean): string {
  if (hdr.proto === ICMP || hdr.proto === ICMPV6) return `${l4Name(hdr.proto)} id ${hdr.sport}`;
  if (flags.length) return `TCP Flags: ${flags.join(', ')}`;
  return isNew ? 'new connection' : '';
}
