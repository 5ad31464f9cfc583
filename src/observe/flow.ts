// A flow: one observed event of the datapath (or, later, of the L7 proxy), decoded and
// enriched with the workloads behind its addresses. This is the shape of `weft observe -o json`
// (one object per line) and of the agent's flow API: field names are a contract.

export type FlowType = 'trace' | 'drop' | 'policy-verdict' | 'sock' | 'l7';

/** FORWARDED: passed on; DROPPED: dropped (see drop_reason); TRANSLATED: a socket's service
 *  address was translated to a backend; REDIRECTED: sent to the node's L7 proxy. */
export type FlowVerdict = 'FORWARDED' | 'DROPPED' | 'TRANSLATED' | 'REDIRECTED';

export interface FlowEndpoint {
  ip: string;
  /** Absent for protocols without ports. */
  port?: number;
  /** Security identity (src/state/identities.ts); 0 when not known. */
  identity: number;
  namespace?: string;
  pod?: string;
  /** The pod's labels as "key=value", sorted; empty when not a pod. */
  labels: string[];
}

export interface FlowL7 {
  type: 'http';
  method?: string;
  path?: string;
  status?: number;
  grpc_status?: number;
  latency_ms?: number;
}

export interface Flow {
  /** RFC 3339 with nanoseconds, UTC. */
  time: string;
  verdict: FlowVerdict;
  /** DROPPED only: the kernel's reason, as `weft observe --drop-reason` takes it (policy-denied, spoofed-source, ...). */
  drop_reason?: string;
  type: FlowType;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  l4: { protocol: 'TCP' | 'UDP' | 'SCTP' | 'ICMPv4' | 'ICMPv6' | string; tcp_flags?: string[] };
  /** The packet goes against the direction its connection was opened in. */
  is_reply: boolean;
  /** ns/name of the Service whose address was translated, when there was one. */
  service?: string;
  /** Where it was seen: from-pod (pod egress), to-pod (pod ingress), sock (connect time),
   *  proxy (a connection weft-proxy passed through as TCP: it was not HTTP). */
  observation_point?: 'from-pod' | 'to-pod' | 'sock' | 'proxy';
  /** policy-verdict flows: the rule that allowed it, or the isolation that denied it. */
  policy?: { name: string | null; rule: string; direction: 'ingress' | 'egress' };
  l7?: FlowL7;
  /** A short human summary (TCP flags, ICMP type, HTTP request line). */
  summary: string;
}
