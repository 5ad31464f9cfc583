// GET /v1/status (what `weft status` shows): the agent's own fields and each controller's.
import type { SyncStats } from '../datapath/lb-writer.js';
import type { ObserverStatus } from '../observe/flow-source.js';
import type { InformerState, SourceProblem } from '../sources/kubernetes.js';
import type { ProxyStatus } from './proxy-supervisor.js';

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

/** Every field, in the order the status has always shown them (whichever controller fills
 *  them in). */
const FIELD_ORDER: { [K in keyof Required<AgentStatus>]: null } = {
  version: null,
  node: null,
  pid: null,
  startedAt: null,
  source: null,
  bpfRoot: null,
  cgroup: null,
  synced: null,
  waitingFor: null,
  lastSync: null,
  problems: null,
  informers: null,
  endpoints: null,
  podCidrs: null,
  policy: null,
  observer: null,
  proxy: null,
};

/** The agent's fields and the controllers' parts, as one status in the usual field order. */
export function composeStatus(
  own: Partial<AgentStatus>,
  parts: readonly (Partial<AgentStatus> | undefined)[],
): AgentStatus {
  const all: Partial<AgentStatus> = Object.assign({}, own, ...parts);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(FIELD_ORDER) as (keyof AgentStatus)[]) if (key in all) out[key] = all[key];
  return out as unknown as AgentStatus;
}
