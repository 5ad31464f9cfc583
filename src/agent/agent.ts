// weftd: loads the datapath, composes the controllers that keep it in step with the source
// (each has one job and owns its state; see controller.ts), serves the local API and metrics.
import type http from 'node:http';
import fs from 'node:fs';
import { EndpointDatapath } from '../datapath/endpoint-datapath.js';
import { cgroup2Root, isCgroup2Dir } from '../datapath/pins.js';
import { loadSocketPrograms, type LoadedDatapath } from '../datapath/programs.js';
import { readMaps } from '../datapath/kernel-state.js';
import type { Logger } from '../lib/log.js';
import { ManifestsDirSource } from '../sources/manifests-dir.js';
import type { KubernetesSource } from '../sources/kubernetes.js';
import { slimClientNode } from '../sources/client-node/slim.js';
import { ResourceStore } from '../state/store.js';
import { HttpError, serveApi, type Route } from '../lib/unix-http.js';
import type { AgentConfig } from './config.js';
import type { AgentContext, Controller } from './controller.js';
import { EndpointController } from './endpoint-controller.js';
import { EndpointPrograms } from './endpoint-programs.js';
import { FlowController } from './flow-controller.js';
import { agentFlowContext } from './flow-context.js';
import { releaseScratchMemory } from './memory.js';
import { AgentMetrics } from './metrics.js';
import { PolicyController } from './policy-controller.js';
import { ProxyController } from './proxy-controller.js';
import { ServiceController } from './service-controller.js';
import { composeStatus } from './status.js';
import type { AgentStatus, SourceProblem } from '../contract/agent-api.js';

export const VERSION = '0.1.0';

export class Agent {
  private readonly store = new ResourceStore();
  private readonly metrics = new AgentMetrics();
  private readonly stopping = new AbortController();
  private readonly startedAt = new Date().toISOString();
  private readonly cgroup: string;
  private metricsAddress: string;
  private socketPrograms: LoadedDatapath | undefined;
  private endpointDatapath: EndpointDatapath | undefined;
  private source: ManifestsDirSource | KubernetesSource | undefined;
  private kubeServer: string | undefined;
  private waitingFor = 'the datapath';
  private controllers: Controller[] = [];
  /** True once the controllers have started (the source's first complete view). */
  private started = false;
  private servers: http.Server[] = [];

  constructor(
    private readonly cfg: AgentConfig,
    private readonly log: Logger,
  ) {
    this.cgroup = cfg.cgroup ?? cgroup2Root();
    this.metricsAddress = cfg.metricsAddress;
  }

  /** The controllers, each with one job and its own state, in the order they start, hear of
   *  the store's changes and stop. That order is the order of the writes: policy, then the
   *  endpoints' programs (which take their isolation from it), then the Services (whose
   *  redirects to the proxy depend on both). Adding a controller is adding it here. */
  private compose(dp: EndpointDatapath): Controller[] {
    const { cfg } = this;
    const ctx: AgentContext = {
      cfg,
      log: this.log,
      store: this.store,
      metrics: this.metrics.registry,
      stopping: this.stopping.signal,
      waitingFor: () => this.waitingFor,
    };
    const endpoints = new EndpointController(ctx, (): EndpointPrograms => programs);
    const policy = new PolicyController(ctx, dp, endpoints);
    const programs = new EndpointPrograms(ctx, dp, endpoints, policy);
    const services = new ServiceController(ctx, {
      maps: { services: this.map('lb_services'), backends: this.map('lb_backends') },
      redirect: (): ProxyController | undefined => proxy,
      sourceProblems: () => this.problems().length,
    });
    const names = agentFlowContext({
      policy: () => policy.engine,
      endpoints: () => endpoints.registry,
      services: services.table,
    });
    const flows = new FlowController(ctx, names);
    const proxy =
      cfg.proxy.mode === 'off'
        ? undefined
        : new ProxyController(ctx, {
            services,
            ingressIsolated: (ip) => policy.ingressIsolated(ip),
            workload: (ip) => names.workload(ip),
            localAddresses: () => endpoints.records().flatMap((r) => r.ips.map((a) => a.address)),
            flows,
          });
    return [endpoints, policy, programs, services, ...(proxy ? [proxy] : []), flows];
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
    this.socketPrograms = loadSocketPrograms({ bpfRoot: cfg.bpfRoot, cgroupDir: this.cgroup });
    for (const a of this.socketPrograms.attached)
      log.info('program ready', { program: a.program, action: a.action, cgroup: this.cgroup });
    this.endpointDatapath = EndpointDatapath.open({ bpfRoot: cfg.bpfRoot });
    this.endpointDatapath.setFlowEvents(cfg.flowEvents);
    this.controllers = this.compose(this.endpointDatapath);
    this.metrics.readiness(() => this.synced);
    this.metrics.maps(() => readMaps(cfg.bpfRoot));
    this.metrics.syncLag(() => {
      const since = Math.min(...this.controllers.map((c) => c.pendingSince?.() ?? Infinity));
      return since === Infinity ? 0 : (Date.now() - since) / 1000;
    });

    // Serve before the source has synced, so probes and `weft status` can tell what the agent
    // waits for; CNI calls are told to try again until the node's pod CIDRs are known.
    const metricsServer = await this.metrics.serve(
      cfg.metricsAddress,
      () => this.synced || `waiting for ${this.waitingFor}`,
    );
    this.servers.push(metricsServer);
    // The bound address: with port 0 (tests), the one the kernel picked.
    const bound = metricsServer.address();
    this.metricsAddress =
      bound && typeof bound === 'object'
        ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
        : cfg.metricsAddress;
    this.servers.push(
      await serveApi(cfg.socketPath, {
        'GET /v1/status': () => this.status(),
        ...this.controllers.reduce<Record<string, Route>>((all, c) => ({ ...all, ...c.routes }), {}),
        'GET /healthz': () => ({ ok: true }),
        'GET /readyz': () =>
          this.synced
            ? { ready: true }
            : Promise.reject(new HttpError(503, `not ready: waiting for ${this.waitingFor}`)),
      }),
    );

    // Only a source that has loaded everything may drive a sync: syncing a partial view would
    // delete the services it has not read yet.
    this.waitingFor =
      cfg.source.kind === 'dir'
        ? `the manifests in ${cfg.source.dir}`
        : 'the first list of every resource from the Kubernetes API';
    this.source =
      k8s && kubeconfig
        ? new k8s.KubernetesSource(kubeconfig, this.store, log)
        : new ManifestsDirSource((cfg.source as { dir: string }).dir, this.store, log);
    await this.source.start();
    if (this.stopping.signal.aborted) return;

    for (const c of this.controllers) c.start?.();
    this.started = true;
    this.store.on('change', (kinds) => {
      for (const c of this.controllers) c.changed?.(kinds);
    });
    // The first load's scratch is garbage now; what the agent keeps is what it holds from here.
    const released = releaseScratchMemory();
    log.debug("released the first load's scratch memory", {
      gc_ms: released.gcMs?.toFixed(1),
      trim_ms: released.trimMs.toFixed(1),
    });
    log.info('weftd ready', { node: cfg.nodeName, socket: cfg.socketPath, metrics: this.metricsAddress });
  }

  /** True once the first complete view of the source is in the kernel. */
  private get synced(): boolean {
    return this.started && this.controllers.every((c) => c.synced !== false);
  }

  private problems(): SourceProblem[] {
    return [...(this.source?.problems.values() ?? [])].flat();
  }

  private map(name: string) {
    const m = this.socketPrograms?.maps.get(name);
    if (!m) throw new Error(`map ${name} missing from the loaded object`);
    return m;
  }

  status(): AgentStatus {
    const synced = this.synced;
    const own: Partial<AgentStatus> = {
      version: VERSION,
      node: this.cfg.nodeName,
      pid: process.pid,
      startedAt: this.startedAt,
      source: this.cfg.source.kind === 'dir' ? `dir:${this.cfg.source.dir}` : `kubernetes (${this.kubeServer})`,
      bpfRoot: this.cfg.bpfRoot,
      cgroup: this.cgroup,
      synced,
      ...(!synced && { waitingFor: this.waitingFor }),
      problems: this.problems(),
      ...(this.source && 'informerStates' in this.source && { informers: this.source.informerStates() }),
    };
    return composeStatus(
      own,
      this.controllers.map((c) => c.status?.()),
    );
  }

  /** Stops serving. The datapath stays: pinned programs and maps keep working without us. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.source?.stop();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    fs.rmSync(this.cfg.socketPath, { force: true });
    for (const c of this.controllers) await c.stop?.();
    this.socketPrograms?.close();
    this.endpointDatapath?.close();
  }
}
