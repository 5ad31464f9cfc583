// weftd: sources → store → compiled state → datapath, plus the local API.
import type http from 'node:http';
import fs from 'node:fs';
import { LbWriter } from '../datapath/lb-writer.js';
import { mapInfo } from '../datapath/libbpf.js';
import { cgroup2Root, isCgroup2Dir } from '../datapath/pins.js';
import { loadSocketPrograms, type LoadedDatapath } from '../datapath/programs.js';
import type { Logger } from '../lib/log.js';
import { ManifestsDirSource } from '../sources/manifests-dir.js';
import type { KubernetesSource } from '../sources/kubernetes.js';
import { slimClientNode } from '../sources/client-node/slim.js';
import { ServiceTable, type Frontend } from '../state/services.js';
import { ResourceStore } from '../state/store.js';
import { HttpError, serveApi } from './api.js';
import { EndpointDatapath } from '../datapath/endpoint-datapath.js';
import { EndpointController } from './endpoint-controller.js';
import { EndpointPrograms } from './endpoint-programs.js';
import type { AgentConfig } from './config.js';
import { AgentMetrics } from './metrics.js';
import { releaseScratchMemory } from './memory.js';
import { PolicyController } from './policy-controller.js';
import { agentFlowContext } from './flow-context.js';
import { readMaps } from '../datapath/kernel-state.js';
import { L7Controller, type L7Snapshot } from './l7.js';
import { ProxySupervisor } from './proxy-supervisor.js';
import { ensureProxyAddresses } from './proxy-address.js';
import { SYNC_RETRY_MS, SyncLoop, type AgentContext } from './controller.js';
import { FlowController } from './flow-controller.js';
import type { AgentStatus } from './status.js';

export type { AgentStatus } from './status.js';

export const VERSION = '0.1.0';

export class Agent {
  private readonly store = new ResourceStore();
  private readonly table = new ServiceTable();
  /** Set after a failed write: the next sync diffs the whole table against the kernel. */
  private fullSync = true;
  private readonly metrics = new AgentMetrics();
  private datapath: LoadedDatapath | undefined;
  private writer: LbWriter | undefined;
  private source: ManifestsDirSource | KubernetesSource | undefined;
  private waitingFor = 'the datapath';
  private kubeServer: string | undefined;
  /** Aborted when the agent stops: no sync runs after that. */
  private readonly stopping = new AbortController();
  private endpoints: EndpointController | undefined;
  private endpointDatapath: EndpointDatapath | undefined;
  private policy: PolicyController | undefined;
  private servers: http.Server[] = [];
  private readonly loop = new SyncLoop(() => this.sync(), this.stopping.signal);
  private readonly startedAt = new Date().toISOString();
  private lastSync: AgentStatus['lastSync'];
  private readonly cgroup: string;
  /** True once the first complete view of the source is in the kernel. */
  private synced = false;
  private notes = new Set<string>();
  private flows: FlowController | undefined;
  private metricsAddress: string;
  private l7: L7Controller | undefined;
  private proxy: ProxySupervisor<L7Snapshot> | undefined;
  private proxyError: string | undefined;
  /** The redirected Service ports as the kernel holds them (L7Controller.kernelSet()). */
  private l7Written = '';

  constructor(
    private readonly cfg: AgentConfig,
    private readonly log: Logger,
  ) {
    this.cgroup = cfg.cgroup ?? cgroup2Root();
    this.metricsAddress = cfg.metricsAddress;
  }

  async start(): Promise<void> {
    const { cfg, log } = this;
    if (!isCgroup2Dir(this.cgroup)) throw new Error(`--cgroup ${this.cgroup} is not a cgroup v2 directory`);
    fs.mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    // Loaded only in Kubernetes mode: the client library alone costs tens of MB of memory, and
    // only the parts of it that weftd uses are loaded (slimClientNode before the first import).
    if (cfg.source.kind === 'kubernetes') slimClientNode();
    const k8s = cfg.source.kind === 'kubernetes' ? await import('../sources/kubernetes.js') : undefined;
    const kubeconfig = cfg.source.kind === 'kubernetes' ? k8s?.loadKubeConfig(cfg.source.kubeconfig) : undefined;
    this.kubeServer = kubeconfig?.getCurrentCluster()?.server;

    // The datapath first: from here on the kernel keeps serving what was pinned before us.
    this.datapath = loadSocketPrograms({ bpfRoot: cfg.bpfRoot, cgroupDir: this.cgroup });
    for (const a of this.datapath.attached) log.info('program ready', { program: a.program, action: a.action, cgroup: this.cgroup });
    const services = this.map('lb_services');
    const backends = this.map('lb_backends');
    this.writer = new LbWriter(services, backends, {
      services: mapInfo(services.fd).maxEntries,
      backends: mapInfo(backends.fd).maxEntries,
    });
    log.info('adopted pinned state', { bpf_root: cfg.bpfRoot, ...this.writer.size });
    this.endpointDatapath = EndpointDatapath.open({ bpfRoot: cfg.bpfRoot });
    this.endpointDatapath.setFlowEvents(cfg.flowEvents);
    const ctx: AgentContext = {
      cfg,
      log,
      store: this.store,
      metrics: this.metrics.registry,
      stopping: this.stopping.signal,
      waitingFor: () => this.waitingFor,
    };
    const endpoints = new EndpointController(ctx, (): EndpointPrograms => programs);
    const policy = new PolicyController(ctx, this.endpointDatapath, endpoints);
    const programs = new EndpointPrograms(ctx, this.endpointDatapath, endpoints, policy);
    this.endpoints = endpoints;
    this.policy = policy;
    const flowContext = agentFlowContext({ policy: () => policy.engine, endpoints: () => endpoints.registry, services: this.table });
    this.flows = new FlowController(ctx, flowContext);
    if (cfg.proxy.mode !== 'off') {
      this.l7 = new L7Controller({ addresses: cfg.proxy.addresses, portBase: cfg.proxy.portBase, balancer: cfg.proxy.balancer, stateDir: cfg.stateDir }, {
        store: this.store,
        frontends: () => this.table.frontends(),
        isolatedBackend: (ip) => this.isolatedBackend(ip),
        workload: (ip) => flowContext.workload(ip),
        localAddresses: () => endpoints.records().flatMap((r) => r.ips.map((a) => a.address)),
      }, log);
    }
    this.metrics.maps(() => readMaps(cfg.bpfRoot));
    this.metrics.syncLag(() => {
      const since = Math.min(this.loop.changedSince ?? Infinity, this.policy?.pendingSince() ?? Infinity);
      return since === Infinity ? 0 : (Date.now() - since) / 1000;
    });

    // Serve before the source has synced, so probes and `weft status` can tell what the agent
    // waits for; CNI calls are told to try again until the node's pod CIDRs are known.
    const metricsServer = await this.metrics.serve(cfg.metricsAddress, () => this.synced || `waiting for ${this.waitingFor}`);
    this.servers.push(metricsServer);
    // The bound address: with port 0 (tests), the one the kernel picked.
    const bound = metricsServer.address();
    this.metricsAddress = bound && typeof bound === 'object' ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : cfg.metricsAddress;
    this.servers.push(
      await serveApi(cfg.socketPath, {
        'GET /v1/status': () => this.status(),
        'GET /v1/services': () => this.frontendNames(),
        ...policy.routes,
        ...endpoints.routes,
        ...this.flows.routes,
        'GET /healthz': () => ({ ok: true }),
        'GET /readyz': () => (this.synced ? { ready: true } : Promise.reject(new HttpError(503, `not ready: waiting for ${this.waitingFor}`))),
      }),
    );

    // Only a source that has loaded everything may drive a sync: syncing a partial view would
    // delete the services it has not read yet.
    this.waitingFor = cfg.source.kind === 'dir' ? `the manifests in ${cfg.source.dir}` : 'the first list of every resource from the Kubernetes API';
    this.source = k8s && kubeconfig ? new k8s.KubernetesSource(kubeconfig, this.store, log) : new ManifestsDirSource((cfg.source as { dir: string }).dir, this.store, log);
    await this.source.start();
    if (this.stopping.signal.aborted) return;

    endpoints.start();
    // Policy before the endpoints are re-attached: their isolation comes from it.
    policy.start();
    programs.start();
    this.sync();
    this.store.on('change', (kinds) => {
      if (kinds.has('Service') || kinds.has('EndpointSlice') || kinds.has('HTTPRoute') || kinds.has('GRPCRoute') || kinds.has('ReferenceGrant')) {
        this.loop.changed();
      }
      endpoints.changed(kinds);
      if (kinds.has('NetworkPolicy') || kinds.has('Pod') || kinds.has('Namespace')) {
        policy.changed(kinds);
        // Isolation decides which routed Services may go through the proxy.
        if (this.l7?.active || kinds.has('NetworkPolicy')) this.loop.schedule();
      }
    });
    // The first load's scratch is garbage now; what the agent keeps is what it holds from here.
    const released = releaseScratchMemory();
    log.debug('released the first load\'s scratch memory', { gc_ms: released.gcMs?.toFixed(1), trim_ms: released.trimMs.toFixed(1) });
    log.info('weftd ready', { node: cfg.nodeName, socket: cfg.socketPath, metrics: this.metricsAddress });
  }

  private map(name: string) {
    const m = this.datapath?.maps.get(name);
    if (!m) throw new Error(`map ${name} missing from the loaded object`);
    return m;
  }

  private sync(): void {
    if (!this.writer || !this.source?.synced) return;
    const end = this.metrics.syncSeconds.startTimer();
    const t0 = performance.now();
    const changedSince = this.loop.changedSince;
    for (const [ns, name] of this.store.takeChanged('Service')) {
      const svc = this.store.get('Service', ns, name);
      if (svc) this.table.setService(svc);
      else this.table.deleteService(ns, name);
    }
    for (const [ns, name] of this.store.takeChanged('EndpointSlice')) {
      const slice = this.store.get('EndpointSlice', ns, name);
      if (slice) this.table.setSlice(slice);
      else this.table.deleteSlice(ns, name);
    }
    const changes = this.table.commit();
    if (this.l7) {
      this.l7.compile();
      // Redirecting or no longer redirecting a Service port rewrites its frontends.
      if (this.l7.kernelSet() !== this.l7Written) this.fullSync = true;
    }
    const kf = (f: Frontend) => this.l7?.kernelFrontend(f) ?? f;
    const compileMs = performance.now() - t0;
    if (changes.notesChanged) {
      // Each note once, when it appears, not on every sync while it stays true.
      const notes = this.table.notes();
      for (const note of notes) if (!this.notes.has(note)) this.log.warn(note);
      this.notes = new Set(notes);
    }
    this.metrics.manifestErrors.set([...this.source.problems.values()].reduce((n, p) => n + p.length, 0));
    try {
      const stats = this.fullSync ? this.writer.sync(this.table.frontends().map(kf)) : this.writer.update(changes.upserts.map(kf), changes.removes);
      this.fullSync = false;
      this.l7Written = this.l7?.kernelSet() ?? '';
      this.loop.written(changedSince);
      end();
      this.metrics.syncs.inc({ result: 'ok' });
      this.metrics.services.set(stats.services);
      this.metrics.backends.set(stats.backends);
      this.lastSync = { at: new Date().toISOString(), stats };
      if (stats.written || stats.deleted || !this.synced) {
        this.log.info('datapath synced', { services: stats.services, backends: stats.backends, written: stats.written, deleted: stats.deleted, compile_ms: compileMs.toFixed(1), ms: stats.ms.toFixed(1) });
      }
      if (!this.synced) this.metrics.ready.set(1);
      this.synced = true;
      // After the kernel write: a Service port leaving the proxy is out of the kernel first.
      this.updateProxy();
    } catch (err) {
      end();
      this.metrics.syncs.inc({ result: 'error' });
      this.lastSync = { at: new Date().toISOString(), error: (err as Error).message };
      this.fullSync = true;
      this.log.error('datapath sync failed; the kernel keeps its last good state', { error: (err as Error).message, retry_s: SYNC_RETRY_MS / 1000 });
      this.loop.retry();
    }
  }

  /** Starts the proxy once something is routed, and sends it the current snapshot. */
  private updateProxy(): void {
    const l7 = this.l7;
    if (!l7 || !l7.active) return;
    if (!this.proxy) {
      try {
        ensureProxyAddresses(this.cfg.proxy.addresses);
      } catch (err) {
        this.proxyError = `cannot set up the proxy addresses: ${(err as Error).message}`;
        this.log.error('routes not applied: the proxy addresses cannot be set up', { error: (err as Error).message });
        return;
      }
      this.proxyError = undefined;
      this.proxy = new ProxySupervisor({
        adminSocket: this.cfg.proxy.adminSocket,
        manage: this.cfg.proxy.mode === 'managed',
        metricsAddress: this.cfg.proxy.metricsAddress,
        logLevel: this.cfg.logLevel,
        log: this.log,
        snapshot: () => l7.snapshot(),
        onAccepted: (snap) => {
          if (l7.acceptedSnapshot(snap)) this.loop.schedule();
        },
        onFlow: (flow) => this.flows?.addFlow(flow),
        onLost: (count) => this.flows?.addLost(count),
      });
      this.proxy.start();
    }
    this.proxy.push();
  }

  /** Whether an address is a local pod that NetworkPolicy isolates for ingress. */
  private isolatedBackend(ip: string): boolean {
    return this.policy?.ingressIsolated(ip) ?? false;
  }

  /** Which Service each frontend belongs to: names the kernel does not know. */
  private frontendNames() {
    return this.table.frontends().map((f) => ({
      service: f.service,
      portName: f.portName,
      frontend: `${f.key.family === 6 ? `[${f.key.ip}]` : f.key.ip}:${f.key.port}/${f.key.proto}`,
    }));
  }

  status(): AgentStatus {
    return {
      version: VERSION,
      node: this.cfg.nodeName,
      pid: process.pid,
      startedAt: this.startedAt,
      source: this.cfg.source.kind === 'dir' ? `dir:${this.cfg.source.dir}` : `kubernetes (${this.kubeServer})`,
      bpfRoot: this.cfg.bpfRoot,
      cgroup: this.cgroup,
      synced: this.synced,
      ...(!this.synced && { waitingFor: this.waitingFor }),
      ...(this.lastSync && { lastSync: this.lastSync }),
      problems: [...(this.source?.problems.values() ?? [])].flat(),
      ...(this.source && 'informerStates' in this.source && { informers: this.source.informerStates() }),
      endpoints: this.endpoints?.records().length ?? 0,
      podCidrs: this.endpoints?.registry?.poolUsage() ?? [],
      ...this.policy?.status(),
      ...this.flows?.status(),
      // Once routes exist: while routed, while the proxy runs, and while a note says why not.
      ...(this.l7 && (this.l7.active || this.proxy || this.l7.routeNotes.length > 0) && {
        proxy: {
          ...(this.proxy?.status() ?? { managed: this.cfg.proxy.mode === 'managed', running: false, restarts: 0, version: 0 }),
          ...(this.proxyError && { lastError: this.proxyError }),
          routedPorts: this.l7!.routedPorts,
          notes: [...this.l7!.routeNotes],
        },
      }),
    };
  }

  /** Stops serving. The datapath stays: pinned programs and maps keep working without us. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.source?.stop();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    fs.rmSync(this.cfg.socketPath, { force: true });
    await this.proxy?.stop();
    await this.flows?.stop();
    this.datapath?.close();
    this.endpointDatapath?.close();
  }
}
