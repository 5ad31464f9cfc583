// What one snapshot becomes inside a proxy process: routers compiled, a balancer per backend,
// the workloads behind addresses. Built aside from the running one (prepare), swapped in as one
// reference (commit): a request reads the state once when it starts and keeps it.
//
// Balancers outlive snapshots: a backend that stays (same key, same algorithm) keeps its
// balancer, which update() gives the new endpoint list; endpoints that stay keep what the
// balancer learned of them. That update happens only at commit, which cannot fail, so an
// aborted snapshot (a listener that could not be bound) changes nothing.
import type { BackendProtocol, BalancerAlgorithm, ProxySnapshot } from '../contract/proxy-snapshot.js';
import type { FlowEndpoint } from '../contract/flow.js';
import { createBalancer, type Balancer } from './balance.js';
import { ProxyRouter } from './route-match.js';
import type { Endpoint, EndpointRegistry } from './upstream.js';

export class Backend {
  /** "namespace/name" of the backend Service, for telemetry. */
  readonly service: string;

  constructor(
    /** "namespace/name:port" */
    readonly key: string,
    public protocol: BackendProtocol,
    readonly balancer: Balancer<Endpoint>,
  ) {
    this.service = key.slice(0, key.lastIndexOf(':'));
  }
}

/** The workload behind an address, ready for flows and metrics. */
export interface WorkloadInfo {
  /** A flow endpoint without ip and port. */
  readonly flow: Readonly<Omit<FlowEndpoint, 'ip' | 'port'>>;
  /** The metrics label: "namespace/pod", or "unknown". */
  readonly label: string;
}

const UNKNOWN: WorkloadInfo = Object.freeze({ flow: Object.freeze({ identity: 0, labels: [] }), label: 'unknown' });

export class RuntimeState {
  readonly version: number;
  readonly router: ProxyRouter;
  readonly backends = new Map<string, Backend>();
  private readonly workloads = new Map<string, WorkloadInfo>();
  /** "namespace/name:port" → a cluster IP of each family, for flows the proxy answered itself. */
  private readonly serviceAddresses = new Map<string, { v4?: string; v6?: string }>();

  constructor(
    readonly snapshot: ProxySnapshot,
    /** Backends whose balancer the previous state had: kept, to update at commit. */
    readonly kept: ReadonlyMap<Backend, readonly Endpoint[]>,
  ) {
    this.version = snapshot.version;
    this.router = ProxyRouter.fromSnapshot(snapshot);
    for (const [ip, w] of Object.entries(snapshot.workloads)) {
      const flow: Omit<FlowEndpoint, 'ip' | 'port'> = {
        identity: w.identity,
        ...(w.namespace !== undefined && { namespace: w.namespace }),
        ...(w.pod !== undefined && { pod: w.pod }),
        labels: w.labels,
      };
      const label = w.namespace !== undefined && w.pod !== undefined ? `${w.namespace}/${w.pod}` : 'unknown';
      this.workloads.set(ip, Object.freeze({ flow: Object.freeze(flow), label }));
    }
    for (const s of snapshot.services) {
      const a: { v4?: string; v6?: string } = {};
      for (const ip of s.addresses) {
        if (ip.includes(':')) a.v6 ??= ip;
        else a.v4 ??= ip;
      }
      this.serviceAddresses.set(`${s.service}:${s.port}`, a);
    }
  }

  /** Builds the next state aside: new balancers for new backends, the old ones noted to be
   *  updated at commit. Endpoint objects come from the registry (no connection is opened). */
  static prepare(
    snapshot: ProxySnapshot,
    previous: RuntimeState | undefined,
    endpoints: EndpointRegistry,
    opts: { random?: () => number } = {},
  ): RuntimeState {
    const kept = new Map<Backend, Endpoint[]>();
    const state = new RuntimeState(snapshot, kept);
    for (const [key, cfg] of Object.entries(snapshot.backends)) {
      const eps = cfg.endpoints.map((e) => endpoints.get(e.ip, e.port));
      const old = previous?.backends.get(key);
      if (old && old.balancer.algorithm === snapshot.balancer) {
        kept.set(old, eps);
        state.backends.set(key, old);
      } else {
        const b = new Backend(key, cfg.protocol, newBalancer(snapshot.balancer, opts.random));
        b.balancer.update(eps);
        state.backends.set(key, b);
      }
    }
    return state;
  }

  /** The part of a swap that touches shared objects: kept balancers take their new endpoints. */
  commit(): void {
    for (const [b, eps] of this.kept) {
      b.balancer.update(eps);
      b.protocol = this.snapshot.backends[b.key]!.protocol;
    }
  }

  workload(ip: string): WorkloadInfo {
    return this.workloads.get(ip) ?? UNKNOWN;
  }

  /** A cluster IP of the Service port in the client's family (the destination the client asked
   *  for), for flows of requests that reached no endpoint. */
  serviceAddress(servicePort: string, v6: boolean): string | undefined {
    const a = this.serviceAddresses.get(servicePort);
    return a && (v6 ? (a.v6 ?? a.v4) : (a.v4 ?? a.v6));
  }

  /** Every endpoint key the state's backends name. */
  endpointKeys(): Set<string> {
    const keys = new Set<string>();
    for (const cfg of Object.values(this.snapshot.backends))
      for (const e of cfg.endpoints) keys.add(`${e.ip} ${e.port}`);
    return keys;
  }
}

function newBalancer(algorithm: BalancerAlgorithm, random: (() => number) | undefined): Balancer<Endpoint> {
  return createBalancer<Endpoint>(algorithm, { key: (e) => e.key, ...(random && { random }) });
}
