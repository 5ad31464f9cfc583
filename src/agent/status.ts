// GET /v1/status (what `weft status` shows; its type is src/contract/agent-api.ts's AgentStatus):
// the agent's own fields and each controller's, composed.
import type { AgentStatus } from '../contract/agent-api.js';

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
  const all = parts.reduce<Partial<AgentStatus>>((acc, part) => ({ ...acc, ...part }), { ...own });
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(FIELD_ORDER) as (keyof AgentStatus)[]) if (key in all) out[key] = all[key];
  return out as unknown as AgentStatus;
}
