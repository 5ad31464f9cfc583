// weftd's local API: HTTP/JSON on the unix socket <state-dir>/weft.sock (src/lib/unix-http.ts),
// and the paths weftd and weft agree on. Its clients are weft (src/cli), the CNI plugin (its
// calls are in src/contract/cni.ts) and the tests. Field names are a contract: weft's `-o json`
// prints them.
//
//   GET /v1/status     AgentStatus                 weft status
//   GET /v1/services   ServiceName[]               weft service list (the names; the rest is read
//                                                  from the kernel's maps)
//   GET /v1/endpoints  EndpointRecord[]            weft endpoint list
//   GET /v1/policy     PolicyStatus
//   GET /v1/explain    ExplanationDetail           weft explain (query: ExplainQuery)
//   GET /v1/flows      NDJSON, one FlowStreamItem  weft observe (query: src/observe/flow-api.ts)
//                      (src/contract/flow.ts) a line
//   GET /healthz       { ok: true }                the CNI plugin's STATUS
//   GET /readyz        { ready: true }, else 503 {error} while not synced
//   POST /v1/cni/...   src/contract/cni.ts
//
// Errors answer {error} with a 4xx or 5xx status (503: not ready yet).
import path from 'node:path';
import type { PodAddress } from './cni.js';
import type { LostStage } from './flow.js';

/** Where weftd keeps its state and its socket (weftd --state-dir; weft --state-dir or
 *  WEFT_STATE_DIR). */
export const DEFAULT_STATE_DIR = '/var/run/weft';

/** The API socket's name in the state directory. */
export const API_SOCKET_NAME = 'weft.sock';

/** The API socket of a state directory: DIR/weft.sock. */
export function apiSocketPath(stateDir: string): string {
  return path.join(stateDir, API_SOCKET_NAME);
}

// ---- GET /v1/status ----

export interface AgentStatus {
  version: string;
  node: string;
  pid: number;
  startedAt: string;
  source: string;
  bpfRoot: string;
  cgroup: string;
  synced: boolean;
  /** Until synced: what the agent is waiting for. */
  waitingFor?: string;
  lastSync?: { at: string; stats?: SyncStats; error?: string };
  problems: SourceProblem[];
  /** Kubernetes mode: each informer's state. */
  informers?: InformerState[];
  endpoints: number;
  podCidrs: { cidr: string; used: number; capacity: string }[];
  policy?: { policies: number; revision: number; entries: number; ipcache: number; error?: string };
  observer?: ObserverStatus;
  /** The L7 proxy, once a Service has routes. */
  proxy?: ProxyStatus & { routedPorts: string[]; notes: string[] };
}

/** The last write of the services to the kernel. */
export interface SyncStats {
  services: number;
  backends: number;
  written: number;
  deleted: number;
  ms: number;
}

/** A manifest (or Kubernetes object) the source could not take. */
export interface SourceProblem {
  file: string;
  object?: string;
  errors: string[];
}

export interface InformerState {
  resource: string;
  /** Listed at least once: the store holds a complete view of this resource. */
  synced: boolean;
  objects: number;
  resourceVersion: string;
  lastError?: string;
  errors: number;
}

/** The flow observer's part. */
export interface ObserverStatus {
  /** Flows read from the kernel per second, over the last 10 seconds. */
  flowsPerSecond: number;
  /** Flows read from the kernel since the agent started. */
  flowsTotal: number;
  /** The kernel's ring buffer: the most bytes found waiting to be read since the previous
   *  status request (how close the observer came to losing events), of its size. */
  kernelRing: { usedBytes: number; sizeBytes: number };
  /** The observer's in-memory flow ring: flows held, of its capacity (--flow-buffer-size). */
  flowRing: { flows: number; capacity: number };
  /** Flows lost at each stage since the agent started (kernel: since the maps were created). */
  lost: Record<LostStage, number>;
  /** API clients following the flow stream now. */
  followers: number;
  /** Why the observer is not reading the kernel's ring now (it restarts itself). */
  error?: string;
}

/** weft-proxy, as weftd runs or follows it. */
export interface ProxyStatus {
  managed: boolean;
  running: boolean;
  pid?: number;
  restarts: number;
  /** The snapshot version the proxy holds, as it last said. */
  version: number;
  lastError?: string;
}

// ---- GET /v1/services ----

/** Which Service a frontend belongs to: names the kernel does not know. */
export interface ServiceName {
  /** namespace/name */
  service: string;
  /** The Service port's name; empty when it has none. */
  portName: string;
  /** "ip:port/PROTO" ("[ip]:port/PROTO" for IPv6), as weft service list prints a frontend. */
  frontend: string;
}

// ---- GET /v1/endpoints ----

/** A pod interface the CNI plugin set up through this agent (also what weftd keeps on disk). */
export interface EndpointRecord {
  id: number;
  containerId: string;
  ifName: string;
  podNamespace?: string;
  podName?: string;
  netns: string;
  hostIfName: string;
  hostIfIndex?: number;
  hostMac?: string;
  podMac?: string;
  ips: PodAddress[];
  /** The pod namespace's SO_NETNS_COOKIE, decimal (the CNI plugin reads it inside the pod). */
  netnsCookie?: string;
  /** allocated: addresses handed out, interfaces being set up; ready: datapath programmed. */
  state: 'allocated' | 'ready';
  createdAt: string;
}

// ---- GET /v1/policy ----

export interface PolicyStatus {
  revision: number;
  policies: string[];
  endpoints: {
    endpoint: number;
    pod: string | null;
    identity: number;
    ingress: 'isolated' | 'open';
    egress: 'isolated' | 'open';
    entries: number;
  }[];
  ipcache: number;
  lastWrite?: { ipcache: number; entries: number; written: number; deleted: number; ms: number; at: string };
  notes: string[];
}

// ---- GET /v1/explain ----

export type PolicyDirection = 'ingress' | 'egress';

/** Would policy allow a new connection from one pod to another: NAMESPACE/POD each, the port,
 *  and TCP, UDP or SCTP (default TCP). */
export type ExplainQuery = { from: string; to: string; port: string; protocol?: string };

/** What `weft explain -o json` prints: a contract. */
export interface Explanation {
  verdict: 'ALLOW' | 'DENY';
  policy: string | null;
  rule: string;
  direction: PolicyDirection;
}

/** The human form adds both directions' findings. */
export interface ExplanationDetail extends Explanation {
  steps: { direction: PolicyDirection; pod: string; verdict: 'ALLOW' | 'DENY'; policy: string | null; rule: string }[];
}
