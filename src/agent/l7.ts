// Which Service ports go through the node proxy, and what the proxy is told about them.
//
// A Service port with an HTTPRoute or GRPCRoute attached (mesh profile: parentRef naming the
// Service) is L7: its frontends' one backend in the kernel becomes the proxy's listener for
// that port (a port of its own on the proxy address of the family), flagged LB_SERVICE_F_L7.
// The listener port names the Service port, so the proxy needs no per-connection lookup to
// find the original destination, and getpeername still shows the Service (the kernel's revnat
// records the Service for the listener as for any backend).
//
// Order, so that no connection meets a listener that is not there: a Service port is
// redirected in the kernel only once the proxy has accepted a snapshot with its listener, and
// is taken out of the kernel before a snapshot without it is sent. The kernel redirects
// desired ∩ accepted.
//
// Fail closed on NetworkPolicy: the proxy's upstream connections come from the node, which
// every pod admits, so a routed Service with a backend isolated for ingress would bypass its
// policy. Until the proxy enforces policy, such a Service port stays L4 (a note says why).
import fs from 'node:fs';
import path from 'node:path';
import type { BalancerAlgorithm, ProxySnapshot, ServicePortConfig } from '../contract/proxy-snapshot.js';
import { LB_SERVICE_F_L7 } from '../datapath/lb-codecs.js';
import type { Logger } from '../lib/log.js';
import type { Workload } from '../observe/decode.js';
import { compileRoutes } from '../state/routes/compile.js';
import { buildSnapshot } from '../state/routes/snapshot.js';
import type { Frontend, L4Addr } from '../state/services.js';
import type { ResourceStore } from '../state/store.js';

export interface L7Options {
  /** The proxy's listen addresses, by family. */
  addresses: { 4?: string; 6?: string };
  /** Listener ports are allocated from here up. */
  portBase: number;
  balancer: BalancerAlgorithm;
  /** Where the allocations are kept across restarts (the kernel holds them meanwhile). */
  stateDir: string;
}

export interface L7Inputs {
  store: ResourceStore;
  frontends: () => readonly Frontend[];
  /** Whether a backend address is a local pod isolated for ingress. */
  isolatedBackend: (ip: string) => boolean;
  workload: (ip: string) => Workload;
  /** Local pods' addresses (clients of the proxy). */
  localAddresses: () => readonly string[];
}

export type L7Snapshot = ProxySnapshot;

const PORTS_FILE = 'proxy-ports.json';
const MAX_PORT = 65535;

export class L7Controller {
  /** "ns/name:port" → compiled routing, for ports that may be L7. */
  private desired = new Map<string, ServicePortConfig>();
  private backends: { key: string; protocol: 'http1' | 'h2c' | 'unknown' }[] = [];
  /** Service ports in the last snapshot the proxy accepted. */
  private accepted = new Set<string>();
  private readonly ports = new Map<string, number>();
  private notes: string[] = [];
  private version = Date.now();
  private latest: L7Snapshot | undefined;
  private latestContent = '';
  /** Frontend objects handed out, so that the same input gives the same object (the LB
   *  writer skips unchanged objects). */
  private readonly rewritten = new WeakMap<Frontend, { key: string; port: number; out: Frontend }>();

  constructor(
    private readonly opts: L7Options,
    private readonly inputs: L7Inputs,
    private readonly log: Logger,
  ) {
    try {
      const saved = JSON.parse(fs.readFileSync(path.join(opts.stateDir, PORTS_FILE), 'utf8')) as Record<string, number>;
      for (const [k, v] of Object.entries(saved))
        if (Number.isInteger(v) && v >= opts.portBase && v <= MAX_PORT) this.ports.set(k, v);
    } catch {
      /* none yet */
    }
  }

  /** Recompiles from the store's routes and Services; returns whether the desired set of L7
   *  Service ports or their routing changed (a snapshot is due). */
  compile(): boolean {
    const routes = [...this.inputs.store.ofKind('HTTPRoute'), ...this.inputs.store.ofKind('GRPCRoute')];
    // Every sync asks: with no route at all (most clusters), that must cost nothing.
    if (routes.length === 0 && this.desired.size === 0 && this.notes.length === 0) return false;
    const out = compileRoutes(routes, this.inputs.store.ofKind('Service'), this.inputs.store.ofKind('ReferenceGrant'));
    const notes = [...out.notes];
    const frontends = this.inputs.frontends();
    const next = new Map<string, ServicePortConfig>();
    const backendsOf = new Map<string, Frontend['backends']>();
    for (const f of frontends)
      if (f.key.proto === 'TCP')
        backendsOf.set(`${f.service}:${f.key.port}`, [
          ...(backendsOf.get(`${f.service}:${f.key.port}`) ?? []),
          ...f.backends,
        ]);
    for (const sp of out.services) {
      const key = `${sp.service}:${sp.port}`;
      // Every pod the proxy may send this port's requests to: the route's backends, and the
      // Service's own (a connection that is not HTTP passes through to them).
      const targets = new Set([
        key,
        ...sp.rules.flatMap((r) => r.backends.flatMap((b) => (b.backend ? [b.backend] : []))),
      ]);
      const isolated = [...targets]
        .flatMap((t) => backendsOf.get(t) ?? [])
        .find((b) => this.inputs.isolatedBackend(b.ip));
      if (isolated) {
        notes.push(
          `Service ${sp.service} port ${sp.port}: backend ${isolated.ip} is isolated by NetworkPolicy; ` +
            'its routes wait until the proxy enforces policy (traffic stays in the kernel, policy in force)',
        );
        continue;
      }
      next.set(key, sp);
    }
    const changed =
      JSON.stringify([...next]) !== JSON.stringify([...this.desired]) ||
      JSON.stringify(out.backends) !== JSON.stringify(this.backends);
    this.desired = next;
    this.backends = out.backends;
    if (notes.join('\n') !== this.notes.join('\n'))
      for (const n of notes) if (!this.notes.includes(n)) this.log.warn(n);
    this.notes = notes;
    this.allocatePorts();
    return changed;
  }

  /** Whether any Service port is routed (the proxy is needed). */
  get active(): boolean {
    return this.desired.size > 0 || this.accepted.size > 0;
  }

  get routeNotes(): readonly string[] {
    return this.notes;
  }

  /** The frontend as the kernel should hold it: the proxy listener for a redirected Service
   *  port, the frontend itself otherwise. */
  kernelFrontend(f: Frontend): Frontend {
    if (f.key.proto !== 'TCP') return f;
    const key = `${f.service}:${f.key.port}`;
    const proxyIp = this.opts.addresses[f.key.family];
    const port = this.ports.get(key);
    if (!proxyIp || port === undefined || !this.desired.has(key) || !this.accepted.has(key)) return f;
    const cached = this.rewritten.get(f);
    if (cached && cached.port === port) return cached.out;
    const listener: L4Addr = { ip: proxyIp, port, family: f.key.family };
    const out: Frontend = { ...f, backends: [listener], flags: LB_SERVICE_F_L7 };
    this.rewritten.set(f, { key, port, out });
    return out;
  }

  /** The snapshot the proxy should hold: rebuilt from the desired state, with a new version
   *  only when its content changed. Undefined while nothing is routed and nothing was sent. */
  snapshot(): L7Snapshot | undefined {
    if (!this.active && !this.latest) return undefined;
    const next = this.build();
    const content = JSON.stringify({ ...next, version: 0 });
    if (content !== this.latestContent) {
      this.latestContent = content;
      this.latest = { ...next, version: ++this.version };
    }
    return this.latest;
  }

  private build(): L7Snapshot {
    const services = [...this.desired.values()];
    const base = buildSnapshot({
      version: 0,
      balancer: this.opts.balancer,
      services,
      backends: this.backends,
      frontends: this.inputs.frontends(),
    });
    const listeners = services.flatMap((sp) => {
      const port = this.ports.get(`${sp.service}:${sp.port}`)!;
      return (['4', '6'] as const)
        .map((fam) => this.opts.addresses[fam])
        .filter((a): a is string => a !== undefined)
        .map((address) => ({ address, port, service: sp.service, servicePort: sp.port }));
    });
    const ips = new Set<string>(this.inputs.localAddresses());
    for (const b of Object.values(base.backends)) for (const e of b.endpoints) ips.add(e.ip);
    const workloads: ProxySnapshot['workloads'] = {};
    for (const ip of ips) {
      const w = this.inputs.workload(ip);
      workloads[ip] = { ...w, labels: [...w.labels] };
    }
    return { ...base, listeners, workloads };
  }

  /** Service ports routed now (desired), for status. */
  get routedPorts(): string[] {
    return [...this.desired.keys()];
  }

  /** The Service ports the kernel redirects now, as one comparable text. */
  kernelSet(): string {
    return [...this.desired.keys()]
      .filter((k) => this.accepted.has(k))
      .sort()
      .join(' ');
  }

  /** Whether the kernel redirects this Service port now. */
  redirected(key: string): boolean {
    return this.desired.has(key) && this.accepted.has(key);
  }

  /** The proxy accepted a snapshot: its Service ports may be redirected now. Returns whether
   *  the kernel's set changes. */
  acceptedSnapshot(snapshot: { services: readonly ServicePortConfig[] }): boolean {
    const next = new Set(snapshot.services.map((s) => `${s.service}:${s.port}`));
    const changed = next.size !== this.accepted.size || [...next].some((k) => !this.accepted.has(k));
    this.accepted = next;
    return changed;
  }

  /** Stable listener ports: a Service port keeps its port while it is routed or the kernel may
   *  still send connections there. A freed port may serve another Service port later:
   *  connections the proxy accepted before keep their own sockets. */
  private allocatePorts(): void {
    const used = new Set(this.ports.values());
    let next = this.opts.portBase;
    let dirty = false;
    for (const key of this.desired.keys()) {
      if (this.ports.has(key)) continue;
      while (used.has(next)) next++;
      if (next > MAX_PORT) {
        this.log.error('no free proxy listener port', { service_port: key, base: this.opts.portBase });
        this.desired.delete(key);
        continue;
      }
      this.ports.set(key, next);
      used.add(next);
      dirty = true;
    }
    // Forget ports of Service ports neither desired nor accepted (not in the kernel any more).
    for (const key of [...this.ports.keys()]) {
      if (!this.desired.has(key) && !this.accepted.has(key)) {
        this.ports.delete(key);
        dirty = true;
      }
    }
    if (dirty) {
      const file = path.join(this.opts.stateDir, PORTS_FILE);
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(Object.fromEntries(this.ports)));
      fs.renameSync(`${file}.tmp`, file);
    }
  }
}
