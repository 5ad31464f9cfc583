// Services + EndpointSlices → load-balancer frontends, each with its backends. Pure.
import { canonicalIp, ipFamily, type Family } from '../lib/ip.js';
import { SERVICE_NAME_LABEL, type Endpoint, type EndpointSlice, type Service } from './resources.js';

/** The protocols a frontend load-balances (SCTP is not, yet). */
export type L4Proto = 'TCP' | 'UDP';

/** An address and port: a backend, or the node proxy's listener. */
export interface L4Addr {
  ip: string;
  port: number;
  family: Family;
}

/** What a frontend answers to: a Service's cluster IP, port and protocol. */
export interface ServiceKey {
  ip: string;
  port: number;
  proto: L4Proto;
  family: Family;
}

export interface Frontend {
  /** namespace/name of the Service. */
  service: string;
  portName: string;
  key: ServiceKey;
  /** Ready backends, sorted and without duplicates. */
  backends: L4Addr[];
  /** LB_SERVICE_F_* (bpf/include/lb.h); unset: none. */
  flags?: number;
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
        notes.push(
          `Service ${name} port ${p.port}: ${backends.length} backends, only the first ${MAX_BACKENDS_PER_FRONTEND} are used`,
        );
        backends = backends.slice(0, MAX_BACKENDS_PER_FRONTEND);
      }
      frontends.push({
        service: name,
        portName: p.name ?? '',
        key: { ip: canonicalIp(ip), port: p.port, proto: p.protocol, family },
        backends,
      });
    }
  }
  return { frontends, notes };
}

interface Claim {
  /** namespace, then name: the first claimant of an address wins it. */
  order: string;
  name: string;
  frontend: Frontend;
}

interface Compiled {
  frontends: Frontend[];
  notes: string[];
  /** "ip port/proto" of each frontend: what two Services may not share. */
  addrs: string[];
}

/** What one commit changed in the table's frontends. */
export interface TableChanges {
  /** Frontends that are new, or whose winning version changed. */
  upserts: Frontend[];
  /** Frontends whose address no Service holds any more (the last version written). */
  removes: Frontend[];
  /** Whether notes() may answer differently. */
  notesChanged: boolean;
}

const sliceOwner = (s: EndpointSlice) => {
  const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
  return svc ? `${s.metadata.namespace}/${svc}` : undefined;
};
const nameOf = (r: { metadata: { namespace: string; name: string } }) => `${r.metadata.namespace}/${r.metadata.name}`;
const addrOf = (f: Frontend) => `${f.key.ip} ${f.key.port}/${f.key.proto}`;

/** Every Service's frontends, kept by difference: objects go in one at a time, and commit()
 *  recompiles only the Services they touch, so one EndpointSlice update costs one Service,
 *  not a pass over ten thousand. */
export class ServiceTable {
  private readonly services = new Map<string, Service>();
  private readonly slices = new Map<string, { owner: string | undefined; slice: EndpointSlice }>();
  private readonly slicesOf = new Map<string, Map<string, EndpointSlice>>();
  private readonly compiled = new Map<string, Compiled>();
  /** address → the Services that claim it, first by namespace, then name; [0] holds it. */
  private readonly claims = new Map<string, Claim[]>();
  private readonly dirty = new Set<string>();

  /** Sources hand back the very same object for an unchanged Service: that costs nothing. */
  setService(svc: Service): void {
    if (this.services.get(nameOf(svc)) === svc) return;
    this.services.set(nameOf(svc), svc);
    this.dirty.add(nameOf(svc));
  }

  deleteService(namespace: string, name: string): void {
    if (this.services.delete(`${namespace}/${name}`)) this.dirty.add(`${namespace}/${name}`);
  }

  setSlice(slice: EndpointSlice): void {
    if (this.slices.get(nameOf(slice))?.slice === slice) return;
    this.unlinkSlice(nameOf(slice));
    const owner = sliceOwner(slice);
    this.slices.set(nameOf(slice), { owner, slice });
    if (!owner) return;
    let m = this.slicesOf.get(owner);
    if (!m) this.slicesOf.set(owner, (m = new Map<string, EndpointSlice>()));
    m.set(nameOf(slice), slice);
    this.dirty.add(owner);
  }

  deleteSlice(namespace: string, name: string): void {
    this.unlinkSlice(`${namespace}/${name}`);
  }

  /** Recompiles the Services touched since the last commit; returns what changed. */
  commit(): TableChanges {
    // Each touched address's holder before this commit, recorded before its first change.
    const before = new Map<string, Frontend | undefined>();
    const touch = (addr: string) => {
      if (!before.has(addr)) before.set(addr, this.claims.get(addr)?.[0]?.frontend);
    };
    let notesChanged = false;
    for (const name of this.dirty) {
      const old = this.compiled.get(name);
      for (const addr of old?.addrs ?? []) {
        touch(addr);
        const list = this.claims.get(addr)!.filter((c) => c.name !== name);
        if (list.length) this.claims.set(addr, list);
        else this.claims.delete(addr);
      }
      const svc = this.services.get(name);
      const out = svc ? compileService(svc, [...(this.slicesOf.get(name)?.values() ?? [])]) : undefined;
      if ((old?.notes.length ?? 0) + (out?.notes.length ?? 0) > 0) notesChanged = true;
      if (!svc || !out) {
        this.compiled.delete(name);
        continue;
      }
      const order = `${svc.metadata.namespace}\0${svc.metadata.name}`;
      const addrs = out.frontends.map(addrOf);
      this.compiled.set(name, { frontends: out.frontends, notes: out.notes, addrs });
      out.frontends.forEach((frontend, i) => {
        const addr = addrs[i]!;
        touch(addr);
        const list = this.claims.get(addr) ?? [];
        const at = list.findIndex((c) => c.order > order);
        list.splice(at < 0 ? list.length : at, 0, { order, name, frontend });
        this.claims.set(addr, list);
      });
    }
    this.dirty.clear();
    const upserts: Frontend[] = [];
    const removes: Frontend[] = [];
    for (const [addr, was] of before) {
      const list = this.claims.get(addr);
      if ((list?.length ?? 0) > 1 || this.conflicted.has(addr)) notesChanged = true;
      if ((list?.length ?? 0) > 1) this.conflicted.add(addr);
      else this.conflicted.delete(addr);
      const now = list?.[0]?.frontend;
      if (now === was) continue;
      if (now) upserts.push(now);
      else removes.push(was!);
    }
    return { upserts, removes, notesChanged };
  }

  /** namespace/name of the Service whose frontend this is (as of the last commit). */
  serviceAt(ip: string, port: number, proto: string): string | undefined {
    return this.claims.get(`${ip} ${port}/${proto}`)?.[0]?.frontend.service;
  }

  /** The frontend every claimed address resolves to. */
  frontends(): Frontend[] {
    return [...this.claims.values()].map((c) => c[0]!.frontend);
  }

  /** What was skipped, each naming the object, in a stable order. */
  notes(): string[] {
    const notes = [...this.compiled.values()].flatMap((c) => c.notes);
    for (const addr of this.conflicted) {
      const [held, ...losers] = this.claims.get(addr) ?? [];
      for (const l of losers) notes.push(`Service ${l.name}: ${addr} is already Service ${held!.name}'s; ignored`);
    }
    return notes.sort();
  }

  /** Addresses more than one Service claims. */
  private readonly conflicted = new Set<string>();

  private unlinkSlice(key: string): void {
    const prev = this.slices.get(key);
    if (!prev) return;
    this.slices.delete(key);
    if (!prev.owner) return;
    const m = this.slicesOf.get(prev.owner);
    m?.delete(key);
    if (m?.size === 0) this.slicesOf.delete(prev.owner);
    this.dirty.add(prev.owner);
  }
}

/** All Services' frontends at once. Pure. */
export function compileServices(services: Iterable<Service>, slices: Iterable<EndpointSlice>): CompiledServices {
  const table = new ServiceTable();
  for (const s of services) table.setService(s);
  for (const s of slices) table.setSlice(s);
  table.commit();
  return { frontends: table.frontends(), notes: table.notes() };
}
