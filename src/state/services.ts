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

/** One Service's frontends, from its own EndpointSlices. Pure. */
export function compileService(svc: Service, slices: readonly EndpointSlice[]): CompiledServices {
  const name = `${svc.metadata.namespace}/${svc.metadata.name}`;
  const frontends: Frontend[] = [];
  const notes: string[] = [];
  if (svc.spec.type === 'ExternalName') return { frontends, notes };
  for (const ip of (svc.spec.clusterIPs ?? []).filter((x) => x !== 'None' && x !== '')) {
    const family = ipFamily(ip);
    if (!family) continue;
    for (const p of svc.spec.ports) {
      if (p.protocol === 'SCTP') {
        notes.push(`Service ${name} port ${p.port}/SCTP: SCTP is not load-balanced by the socket programs yet`);
        continue;
      }
      let backends = backendsFor(slices, family, p.name ?? '', p.protocol);
      if (backends.length > MAX_BACKENDS_PER_FRONTEND) {
        notes.push(`Service ${name} port ${p.port}: ${backends.length} backends, only the first ${MAX_BACKENDS_PER_FRONTEND} are used`);
        backends = backends.slice(0, MAX_BACKENDS_PER_FRONTEND);
      }
      frontends.push({ service: name, portName: p.name ?? '', key: { ip: canonicalIp(ip), port: p.port, proto: p.protocol, family }, backends });
    }
  }
  return { frontends, notes };
}

interface CacheEntry {
  svc: Service;
  slices: readonly EndpointSlice[];
  out: CompiledServices;
  /** "ip port/proto" of each frontend: what two Services may not share. */
  addrs: string[];
}

interface Claim {
  order: string;
  name: string;
  frontend: Frontend;
  losers?: Claim[] | undefined;
}

const sameList = <T>(a: readonly T[], b: readonly T[]) => a.length === b.length && a.every((x, i) => x === b[i]);
// namespace, then name: NUL sorts below every character a name may hold.
const orderKey = (s: Service) => `${s.metadata.namespace}\0${s.metadata.name}`;

/** Compiles all Services, reusing the result of every Service whose object and slices are the
 *  very objects of the previous call (sources replace an object when it changes), so an edit
 *  costs the Services it touches plus a linear pass, not a recompilation of everything. */
export class ServiceCompiler {
  private cache = new Map<string, CacheEntry>();

  compile(services: Iterable<Service>, slices: Iterable<EndpointSlice>): CompiledServices {
    const bySvc = slicesByService(slices);
    const notes: string[] = [];
    const next = new Map<string, CacheEntry>();
    // When Services claim one address, the first by namespace, then name, wins, so every
    // node picks the same one whatever order its sources delivered them in.
    const claims = new Map<string, Claim>();
    for (const svc of services) {
      const name = `${svc.metadata.namespace}/${svc.metadata.name}`;
      const svcSlices = bySvc.get(name) ?? [];
      let entry = this.cache.get(name);
      if (!entry || entry.svc !== svc || !sameList(entry.slices, svcSlices)) {
        const out = compileService(svc, svcSlices);
        entry = { svc, slices: svcSlices, out, addrs: out.frontends.map((f) => `${f.key.ip} ${f.key.port}/${f.key.proto}`) };
      }
      next.set(name, entry);
      notes.push(...entry.out.notes);
      const order = orderKey(svc);
      entry.out.frontends.forEach((frontend, i) => {
        const addr = entry.addrs[i]!;
        const claim = { order, name, frontend };
        const held = claims.get(addr);
        if (!held) return void claims.set(addr, claim);
        (held.losers ??= []).push(held.order < order ? claim : { ...held, losers: undefined });
        if (held.order > order) Object.assign(held, claim);
      });
    }
    this.cache = next;
    const conflicts: string[] = [];
    for (const [addr, c] of claims) {
      for (const l of c.losers ?? []) conflicts.push(`Service ${l.name}: ${addr} is already Service ${c.name}'s; ignored`);
    }
    // Notes in a stable order, whatever order the input came in.
    return { frontends: [...claims.values()].map((c) => c.frontend), notes: [...notes, ...conflicts].sort() };
  }
}

export function compileServices(services: Iterable<Service>, slices: Iterable<EndpointSlice>): CompiledServices {
  return new ServiceCompiler().compile(services, slices);
}
