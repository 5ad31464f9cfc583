// A flow: one observed event of the datapath or of the L7 proxy, decoded and enriched with the
// workloads behind its addresses. This is the shape of `weft observe -o json` (one object per
// line) and of the flow streams (weftd's GET /v1/flows, and weft-proxy's that weftd follows):
// field names are a contract.

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

/** Where flows were lost, in the order they pass:
 *  - kernel: the datapath could not reserve room in the ring buffer (it was full);
 *  - decode: a record the observer could not read (an unknown type or a short record);
 *  - follow: a follower of the API fell so far behind that the flow ring overwrote flows it had
 *    not read yet (counted per follower, and in total);
 *  - proxy: L7 flows weft-proxy dropped because the agent read them too slowly. */
export type LostStage = 'kernel' | 'decode' | 'follow' | 'proxy';

/** One line of an NDJSON flow stream: a flow, or a notice that flows were lost. */
export type FlowStreamItem = { flow: Flow } | { lost: { stage: LostStage; count: number } };
