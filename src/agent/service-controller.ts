// Services into the kernel's load-balancing maps (lb_services, lb_backends): the store's
// Services and EndpointSlices folded into the service table (src/state/services.ts) by
// difference, their frontends rewritten on the way where the proxy takes a Service port (L7,
// proxy-controller.ts), written by the LB writer (src/datapath/lb-writer.ts). Its first
// complete write is what makes the agent ready.
import { Counter, Gauge, Histogram } from 'prom-client';
import { LbWriter } from '../datapath/lb-writer.js';
import { mapInfo, type RawMap } from '../datapath/libbpf.js';
import { ServiceTable, type Frontend } from '../state/services.js';
import { SYNC_RETRY_MS, SyncLoop, type AgentContext, type Controller, type ResourceKind } from './controller.js';
import type { AgentStatus, ServiceName } from '../contract/agent-api.js';

/** Kinds whose objects decide the frontends and backends (routes decide the L7 redirects). */
const SERVICE_KINDS: readonly ResourceKind[] = ['Service', 'EndpointSlice', 'HTTPRoute', 'GRPCRoute', 'ReferenceGrant'];
/** Kinds that change which endpoints NetworkPolicy isolates. */
const ISOLATION_KINDS: readonly ResourceKind[] = ['NetworkPolicy', 'Pod', 'Namespace'];

/** Rewrites frontends on their way into the kernel: a Service port the proxy takes points at
 *  the proxy's listener instead of its backends. */
export interface FrontendRedirect {
  /** Whether any Service port is routed (isolation may change which ones may be). */
  readonly active: boolean;
  /** Before a write, once the table is committed: recompiles, and returns the Service ports
   *  redirected now as one comparable text (when it changes, every frontend is rewritten). */
  compile(): string;
  kernelFrontend(f: Frontend): Frontend;
  /** The write is in the kernel: a Service port that left the redirect is out of it now. */
  written(): void;
}

export interface ServiceInputs {
  maps: { services: RawMap; backends: RawMap };
  /** The L7 redirect, when the proxy is on. */
  redirect: () => FrontendRedirect | undefined;
  /** How many objects the source rejects now (weft_manifest_errors, set at each sync). */
  sourceProblems: () => number;
}

export class ServiceController implements Controller {
  readonly table = new ServiceTable();
  readonly routes = { 'GET /v1/services': () => this.frontendNames() };
  private readonly writer: LbWriter;
  private readonly loop: SyncLoop;
  private readonly metrics: ReturnType<typeof serviceMetrics>;
  /** Set after a failed write: the next sync diffs the whole table against the kernel. */
  private fullSync = true;
  /** The redirected Service ports as the kernel holds them (FrontendRedirect.compile()). */
  private redirected = '';
  private started = false;
  private firstWritten = false;
  private lastSync: AgentStatus['lastSync'];
  private notes = new Set<string>();

  constructor(
    private readonly ctx: AgentContext,
    private readonly inputs: ServiceInputs,
  ) {
    const { services, backends } = inputs.maps;
    this.writer = new LbWriter(services, backends, {
      services: mapInfo(services.fd).maxEntries,
      backends: mapInfo(backends.fd).maxEntries,
    });
    ctx.log.info('adopted pinned state', { bpf_root: ctx.cfg.bpfRoot, ...this.writer.size });
    this.loop = new SyncLoop(() => this.sync(), ctx.stopping);
    this.metrics = serviceMetrics(ctx);
  }

  /** True once the first complete view of the source is in the kernel. */
  get synced(): boolean {
    return this.firstWritten;
  }

  start(): void {
    this.started = true;
    this.sync();
  }

  changed(kinds: ReadonlySet<ResourceKind>): void {
    if (SERVICE_KINDS.some((k) => kinds.has(k))) this.loop.changed();
    // Isolation decides which routed Services may go through the proxy.
    if (ISOLATION_KINDS.some((k) => kinds.has(k)) && (this.inputs.redirect()?.active || kinds.has('NetworkPolicy'))) {
      this.loop.schedule();
    }
  }

  /** Syncs again soon without a change in the store (the redirect's inputs changed). */
  resync(): void {
    this.loop.schedule();
  }

  pendingSince(): number | undefined {
    return this.loop.changedSince;
  }

  frontends(): readonly Frontend[] {
    return this.table.frontends();
  }

  status(): Partial<AgentStatus> {
    return { ...(this.lastSync && { lastSync: this.lastSync }) };
  }

  private sync(): void {
    if (!this.started) return;
    const { store, log } = this.ctx;
    const redirect = this.inputs.redirect();
    const end = this.metrics.syncSeconds.startTimer();
    const t0 = performance.now();
    const changedSince = this.loop.changedSince;
    for (const [ns, name] of store.takeChanged('Service')) {
      const svc = store.get('Service', ns, name);
      if (svc) this.table.setService(svc);
      else this.table.deleteService(ns, name);
    }
    for (const [ns, name] of store.takeChanged('EndpointSlice')) {
      const slice = store.get('EndpointSlice', ns, name);
      if (slice) this.table.setSlice(slice);
      else this.table.deleteSlice(ns, name);
    }
    const changes = this.table.commit();
    let redirected = '';
    if (redirect) {
      redirected = redirect.compile();
      // Redirecting or no longer redirecting a Service port rewrites its frontends.
      if (redirected !== this.redirected) this.fullSync = true;
    }
    const kf = (f: Frontend) => redirect?.kernelFrontend(f) ?? f;
    const compileMs = performance.now() - t0;
    if (changes.notesChanged) {
      // Each note once, when it appears, not on every sync while it stays true.
      const notes = this.table.notes();
      for (const note of notes) if (!this.notes.has(note)) log.warn(note);
      this.notes = new Set(notes);
    }
    this.metrics.manifestErrors.set(this.inputs.sourceProblems());
    try {
      const stats = this.fullSync
        ? this.writer.sync(this.table.frontends().map(kf))
        : this.writer.update(changes.upserts.map(kf), changes.removes);
      this.fullSync = false;
      this.redirected = redirected;
      this.loop.written(changedSince);
      end();
      this.metrics.syncs.inc({ result: 'ok' });
      this.metrics.services.set(stats.services);
      this.metrics.backends.set(stats.backends);
      this.lastSync = { at: new Date().toISOString(), stats };
      if (stats.written || stats.deleted || !this.firstWritten) {
        log.info('datapath synced', {
          services: stats.services,
          backends: stats.backends,
          written: stats.written,
          deleted: stats.deleted,
          compile_ms: compileMs.toFixed(1),
          ms: stats.ms.toFixed(1),
        });
      }
      this.firstWritten = true;
      // After the kernel write: a Service port leaving the proxy is out of the kernel first.
      redirect?.written();
    } catch (err) {
      end();
      this.metrics.syncs.inc({ result: 'error' });
      this.lastSync = { at: new Date().toISOString(), error: (err as Error).message };
      this.fullSync = true;
      log.error('datapath sync failed; the kernel keeps its last good state', {
        error: (err as Error).message,
        retry_s: SYNC_RETRY_MS / 1000,
      });
      this.loop.retry();
    }
  }

  /** Which Service each frontend belongs to: names the kernel does not know. */
  private frontendNames(): ServiceName[] {
    return this.table.frontends().map((f) => ({
      service: f.service,
      portName: f.portName,
      frontend: `${f.key.family === 6 ? `[${f.key.ip}]` : f.key.ip}:${f.key.port}/${f.key.proto}`,
    }));
  }
}

function serviceMetrics({ metrics: registry }: AgentContext) {
  const registers = [registry];
  return {
    services: new Gauge({
      name: 'weft_lb_frontends',
      help: 'Service frontends (address, port, protocol) in the kernel',
      registers,
    }),
    backends: new Gauge({ name: 'weft_lb_backends', help: 'Backend slots in the kernel', registers }),
    syncs: new Counter({
      name: 'weft_datapath_syncs_total',
      help: 'Datapath syncs by result',
      labelNames: ['result'],
      registers,
    }),
    syncSeconds: new Histogram({
      name: 'weft_datapath_sync_duration_seconds',
      help: 'Time to compile desired state and write the difference into the maps',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    manifestErrors: new Gauge({ name: 'weft_manifest_errors', help: 'Manifest objects currently rejected', registers }),
  };
}
