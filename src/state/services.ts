// Services + EndpointSlices → load-balancer frontends, each with its backends. Pure.
import { canonicalIp, ipFamily, type Family } from '../lib/ip.js';
import type { L4Addr, L4Proto, ServiceKey } from '../datapath/lb-codecs.js';
import { SERVICE_NAME_LABEL, type Endpoint, type EndpointSlice, type Service } from './resources.js';

export interface Frontend {
  /** namespace/name of the Service. */
  service: string;
  portName: string;
  key: ServiceKey;
  /** Ready backends, sorted and without duplicates. */
  backends: L4Addr[];
}

export interface CompiledServices {
  frontends: Frontend[];
  /** Things that were skipped, each naming the object: worth a log line, not an error. */
  notes: string[];
}

/** The most backends one frontend can hold (lb_service_value.backend_count is 16 bits). */
export const MAX_BACKENDS_PER_FRONTEND = 65535;

const isReady = (e: Endpoint) => e.conditions?.ready !== false; // unset means ready
// kube-proxy's fallback when nothing is ready: endpoints still serving while they terminate.
const isServingTerminating = (e: Endpoint) => e.conditions?.serving === true && e.conditions?.terminating === true;

function slicesByService(slices: Iterable<EndpointSlice>): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${s.metadata.namespace}/${svc}`;
    const list = out.get(key);
    if (list) list.push(s);
    else out.set(key, [s]);
  }
  return out;
}

function backendsFor(slices: readonly EndpointSlice[], family: Family, portName: string, proto: L4Proto): L4Addr[] {
  const pick = (accept: (e: Endpoint) => boolean): L4Addr[] => {
    const seen = new Map<string, L4Addr>();
    for (const slice of slices) {
      if (slice.addressType !== `IPv${family}`) continue;
      const port = slice.ports?.find((p) => (p.name ?? '') === portName && (p.protocol ?? 'TCP') === proto)?.port;
      if (port === undefined) continue;
      for (const e of slice.endpoints) {
        if (!accept(e)) continue;
        for (const a of e.addresses) {
          const ip = canonicalIp(a);
          seen.set(`${ip}|${port}`, { ip, port, family });
        }
      }
    }
    return [...seen.values()].sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
  };
  const ready = pick(isReady);
  return ready.length > 0 ? ready : pick(isServingTerminating);
}

export function compileServices(services: Iterable<Service>, slices: Iterable<EndpointSlice>): CompiledServices {
  const bySvc = slicesByService(slices);
  const frontends: Frontend[] = [];
  const notes: string[] = [];
  const owners = new Map<string, string>();
  // Sorted by namespace, then name, so that when two Services claim one address the same one
  // wins on every node.
  const order = (s: Service) => [s.metadata.namespace, s.metadata.name] as const;
  const sorted = [...services].sort((a, b) => {
    const [na, ma] = order(a);
    const [nb, mb] = order(b);
    return na === nb ? (ma < mb ? -1 : ma > mb ? 1 : 0) : na < nb ? -1 : 1;
  });
  for (const svc of sorted) {
    const name = `${svc.metadata.namespace}/${svc.metadata.name}`;
    if (svc.spec.type === 'ExternalName') continue;
    const ips = (svc.spec.clusterIPs ?? []).filter((ip) => ip !== 'None' && ip !== '');
    const svcSlices = bySvc.get(name) ?? [];
    for (const ip of ips) {
      const family = ipFamily(ip);
      if (!family) continue;
      for (const p of svc.spec.ports) {
        if (p.protocol === 'SCTP') {
          notes.push(`Service ${name} port ${p.port}/SCTP: SCTP is not load-balanced by the socket programs yet`);
          continue;
        }
        let backends = backendsFor(svcSlices, family, p.name ?? '', p.protocol);
        if (backends.length > MAX_BACKENDS_PER_FRONTEND) {
          notes.push(`Service ${name} port ${p.port}: ${backends.length} backends, only the first ${MAX_BACKENDS_PER_FRONTEND} are used`);
          backends = backends.slice(0, MAX_BACKENDS_PER_FRONTEND);
        }
        const keyText = `${canonicalIp(ip)} ${p.port}/${p.protocol}`;
        const owner = owners.get(keyText);
        if (owner !== undefined) {
          notes.push(`Service ${name}: ${keyText} is already Service ${owner}'s; ignored`);
          continue;
        }
        owners.set(keyText, name);
        frontends.push({
          service: name,
          portName: p.name ?? '',
          key: { ip: canonicalIp(ip), port: p.port, proto: p.protocol, family },
          backends,
        });
      }
    }
  }
  return { frontends, notes };
}
