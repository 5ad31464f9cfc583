// One proxy process's data plane: the running state, its listeners and connections, the
// upstream pools, and the process's metrics. The admin side (src/proxy/admin.ts) drives it
// through DataPlane, in this process (one worker) or over IPC in each worker process
// (src/proxy/workers.ts).
//
// A snapshot goes in two steps. prepare() builds the next state aside and binds the listeners
// it adds; it may fail (a listener cannot be bound: the error names it), and then abort()
// closes what it bound and nothing else changed. commit() cannot fail: balancers of backends
// that stay take their new endpoints, listeners are rebound to their (new) Service port's
// router, the state reference is swapped, listeners no longer named stop accepting and drain,
// and the connections to endpoints no backend names any more close once idle.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProxySnapshot } from '../contract/proxy-snapshot.js';
import type { Logger } from '../lib/log.js';
import type { ForwardContext } from './forward.js';
import { RuntimeState } from './runtime.js';
import { Frontend, Listener, type FrontendContext } from './server.js';
import { QueueBudget } from './h2/queue-budget.js';
import { HttpStats, type FlowTap } from './telemetry.js';
import { EndpointRegistry } from './upstream.js';

/** What prom-client's getMetricsAsJSON() returns. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export interface DataPlane {
  /** Builds the snapshot aside and binds its new listeners; throws naming what failed. */
  prepare(snapshot: ProxySnapshot): Promise<void>;
  /** Swaps the prepared snapshot in. */
  commit(): Promise<void>;
  /** Forgets the prepared snapshot, closing what prepare bound. */
  abort(): Promise<void>;
  /** The data plane's metrics, to aggregate. */
  metrics(): Promise<MetricsJson>;
  /** Whether anyone follows the flows (build them or not). */
  setFlowsWanted(on: boolean): void;
  /** Stops accepting, finishes what is in flight (at most graceMs), closes everything. */
  drain(graceMs: number): Promise<void>;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** Per process (worker): 256 streams' worth of stalled upstream windows (256 KiB each). */
export const DEFAULT_MAX_QUEUED_BYTES = 64 << 20;

export class ProxyCore implements DataPlane, ForwardContext, FrontendContext {
  state: RuntimeState | undefined;
  readonly stats = new HttpStats();
  readonly registry = new Registry();
  readonly endpoints: EndpointRegistry;
  readonly queueBudget: QueueBudget;
  readonly frontend: Frontend;
  readonly flows: FlowTap & { wanted: boolean };
  private readonly listeners = new Map<string, Listener>();
  private pending: { state: RuntimeState; fresh: Listener[] } | undefined;

  constructor(
    readonly log: Logger,
    readonly reusePort: boolean,
    flowSink: (line: string) => void,
    opts: { connectTimeoutMs?: number; processMetrics?: boolean; maxQueuedBytes?: number } = {},
  ) {
    this.queueBudget = new QueueBudget(opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES);
    this.endpoints = new EndpointRegistry({
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      log,
      queueBudget: this.queueBudget,
    });
    this.frontend = new Frontend(this);
    this.flows = { wanted: false, push: flowSink };
    for (const m of this.stats.metrics())
      this.registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
    const registers = [this.registry];
    const frontend = this.frontend;
    new Gauge({
      name: 'weft_proxy_connections_active',
      help: 'Downstream connections open now',
      registers,
      collect() {
        this.set(frontend.active);
      },
    });
    const endpoints = this.endpoints;
    new Gauge({
      name: 'weft_proxy_buffered_bytes',
      help:
        'Bytes held for peers slower than their senders (DATA waiting for HTTP/2 windows, socket backlogs), ' +
        'by side: downstream (clients) or upstream (endpoints)',
      labelNames: ['side'],
      registers,
      collect() {
        this.set({ side: 'downstream' }, frontend.bufferedBytes());
        this.set({ side: 'upstream' }, endpoints.bufferedBytes());
      },
    });
    const budget = this.queueBudget;
    const shed: Counter = new Counter({
      name: 'weft_proxy_streams_shed_total',
      help:
        'HTTP/2 streams reset (ENHANCE_YOUR_CALM) for holding too much DATA for a peer that does not open ' +
        'its windows, by the budget passed: connection (16 MiB) or process (--max-queued-mib)',
      labelNames: ['budget'],
      registers,
      collect() {
        shed.reset();
        shed.inc({ budget: 'connection' }, budget.shed.connection);
        shed.inc({ budget: 'process' }, budget.shed.process);
      },
    });
    const accepted: Counter = new Counter({
      name: 'weft_proxy_connections_total',
      help: 'Downstream connections accepted, by the protocol detected: h1 (HTTP/1.1), h2 (HTTP/2, prior knowledge or upgrade), tcp (passthrough)',
      labelNames: ['protocol'],
      registers,
      collect() {
        accepted.reset();
        for (const [protocol, n] of Object.entries(frontend.accepted)) accepted.inc({ protocol }, n);
      },
    });
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'weft_proxy_' });
  }

  async prepare(snapshot: ProxySnapshot): Promise<void> {
    if (this.pending) await this.abort();
    const state = RuntimeState.prepare(snapshot, this.state, this.endpoints);
    const fresh: Listener[] = [];
    for (const [i, l] of snapshot.listeners.entries()) {
      if (this.listeners.has(`${l.address} ${l.port}`)) continue;
      const listener = new Listener(l, this.frontend);
      try {
        await listener.bind();
      } catch (err) {
        for (const f of fresh) f.close();
        throw new Error(`listeners[${i}]: cannot listen on ${l.address} port ${l.port}: ${(err as Error).message}`);
      }
      fresh.push(listener);
    }
    this.pending = { state, fresh };
  }

  async commit(): Promise<void> {
    const p = this.pending;
    if (!p) throw new Error('no snapshot prepared');
    this.pending = undefined;
    const { state, fresh } = p;
    state.commit();
    for (const l of fresh) this.listeners.set(l.key, l);
    const named = new Set<string>();
    for (const l of state.snapshot.listeners) {
      const key = `${l.address} ${l.port}`;
      named.add(key);
      this.listeners.get(key)!.bindTo(l, state.router.forService(`${l.service}:${l.servicePort}`));
    }
    const removed: Listener[] = [];
    for (const [key, l] of this.listeners) {
      if (named.has(key)) continue;
      this.listeners.delete(key);
      // Its connections keep routing with their Service port's new router while they drain.
      l.router = state.router.forService(l.serviceKey);
      removed.push(l);
    }
    this.state = state;
    for (const l of removed) l.close();
    this.endpoints.retain(state.endpointKeys());
  }

  async abort(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    for (const l of p?.fresh ?? []) l.close();
  }

  metrics(): Promise<MetricsJson> {
    return this.registry.getMetricsAsJSON();
  }

  setFlowsWanted(on: boolean): void {
    this.flows.wanted = on;
  }

  async drain(graceMs: number): Promise<void> {
    await this.abort();
    for (const l of this.listeners.values()) l.close();
    this.listeners.clear();
    await this.frontend.drainAll(graceMs);
    this.endpoints.closeAll();
  }

  /** Listening sockets now, "address port". */
  listening(): string[] {
    return [...this.listeners.keys()];
  }
}
