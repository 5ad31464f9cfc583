// What the agent tells the observer about the addresses, endpoints, services and rules in a
// flow: its current view, read when a flow is decoded (see README: a flow read long after the
// fact names who holds its addresses now).
import { protoName } from '../datapath/endpoint-codecs.js';
import type { FlowContext, Workload } from '../observe/decode.js';
import { IDENTITY_HOST, IDENTITY_WORLD } from '../state/identities.js';
import type { ServiceTable } from '../state/services.js';
import type { EndpointRecord } from '../contract/agent-api.js';
import type { EndpointRegistry } from './endpoints.js';
import type { PolicyEngine } from './policy.js';

const RESERVED_LABELS: Readonly<Record<number, readonly string[]>> = {
  [IDENTITY_HOST]: ['reserved:host'],
  [IDENTITY_WORLD]: ['reserved:world'],
};

const labelCache = new WeakMap<Readonly<Record<string, string>>, readonly string[]>();

function labelList(labels: Readonly<Record<string, string>>): readonly string[] {
  let l = labelCache.get(labels);
  if (!l)
    labelCache.set(
      labels,
      (l = Object.entries(labels)
        .map(([k, v]) => `${k}=${v}`)
        .sort()),
    );
  return l;
}

export function agentFlowContext(agent: {
  policy: () => PolicyEngine | undefined;
  endpoints: () => EndpointRegistry | undefined;
  services: ServiceTable;
}): Omit<FlowContext, 'wallTimeNs'> {
  const workload = (ip: string): Workload => {
    const h = agent.policy()?.holderOf(ip);
    if (!h) return { identity: 0, labels: [] };
    return {
      identity: h.identity,
      ...(h.namespace !== undefined && { namespace: h.namespace }),
      ...(h.name !== undefined && { pod: h.name }),
      labels: h.labels ? labelList(h.labels) : (RESERVED_LABELS[h.identity] ?? []),
    };
  };
  const endpointWorkload = (rec: EndpointRecord): Workload => {
    const w = rec.ips[0] ? workload(rec.ips[0].address) : { identity: 0, labels: [] };
    return { ...w, ...(rec.podNamespace && { namespace: rec.podNamespace }), ...(rec.podName && { pod: rec.podName }) };
  };
  return {
    workload,
    endpoint(id) {
      const rec = agent
        .endpoints()
        ?.list()
        .find((r) => r.id === id);
      return rec && endpointWorkload(rec);
    },
    socketOwner(cookie, family) {
      if (cookie === 0n) return undefined;
      const text = cookie.toString();
      const rec = agent
        .endpoints()
        ?.list()
        .find((r) => r.netnsCookie === text);
      if (!rec) return undefined;
      const ip = rec.ips.find((a) => a.address.includes(':') === (family === 6))?.address;
      return { workload: endpointWorkload(rec), ...(ip && { ip }) };
    },
    service: (ip, port, proto) => agent.services.serviceAt(ip, port, protoName(proto)),
    rule(id) {
      const r = agent.policy()?.rule(id);
      return r && { policy: r.policy, rule: r.rule };
    },
    isolatedBy: (id, direction) => agent.policy()?.isolatedBy(id, direction) ?? [],
  };
}
