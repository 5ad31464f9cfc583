// The snapshot weftd sends weft-proxy, from the compiled route table (./compile.ts) and the
// Services' frontends: store → ProxySnapshot. Pure. The snapshot's types and their wire
// validation are the contract's (src/contract/proxy-snapshot.ts).
import type {
  BackendConfig,
  BackendEndpoint,
  BalancerAlgorithm,
  ListenerConfig,
  ProxySnapshot,
  ServicePortConfig,
  WorkloadConfig,
} from '../../contract/proxy-snapshot.js';
import type { Frontend } from '../services.js';
import type { BackendNeed } from './compile.js';

/** A snapshot from compiled routes and the Services' frontends (which hold the ready
 *  endpoints, target ports resolved). A backend key with no TCP frontend gets no endpoints.
 *  Listeners and workloads are weftd's to give (none by default). */
export function buildSnapshot(input: {
  version: number;
  balancer?: BalancerAlgorithm;
  services: ServicePortConfig[];
  backends: Iterable<BackendNeed>;
  frontends: Iterable<Frontend>;
  listeners?: ListenerConfig[];
  workloads?: Record<string, WorkloadConfig>;
}): ProxySnapshot {
  const byKey = new Map<string, Map<string, BackendEndpoint>>();
  for (const f of input.frontends) {
    if (f.key.proto !== 'TCP') continue;
    const key = `${f.service}:${f.key.port}`;
    let m = byKey.get(key);
    if (!m) byKey.set(key, (m = new Map<string, BackendEndpoint>()));
    for (const b of f.backends) m.set(`${b.ip} ${b.port}`, { ip: b.ip, port: b.port });
  }
  const backends: Record<string, BackendConfig> = {};
  for (const need of input.backends) {
    const endpoints = [...(byKey.get(need.key)?.values() ?? [])].sort((a, b) =>
      a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1,
    );
    backends[need.key] = { protocol: need.protocol, endpoints };
  }
  return {
    version: input.version,
    balancer: input.balancer ?? 'peak-ewma',
    services: input.services,
    backends,
    listeners: input.listeners ?? [],
    workloads: input.workloads ?? {},
  };
}
