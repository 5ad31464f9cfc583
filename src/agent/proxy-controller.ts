// L7: which Service ports go through weft-proxy (l7.ts: their routes, listener ports and the
// proxy's snapshot) and the proxy itself (proxy-supervisor.ts: started once something is
// routed, restarted, followed for its flows). Between them, the services controller writes the
// redirects (this is its FrontendRedirect), in the order l7.ts's header gives: a Service port
// is redirected only once the proxy has accepted a snapshot with its listener (accepted →
// resync), and a port leaving the proxy is out of the kernel before a snapshot without it is
// sent (written → push).
import type { Workload } from '../observe/decode.js';
import type { Flow } from '../contract/flow.js';
import type { Frontend } from '../state/services.js';
import type { AgentContext, Controller } from './controller.js';
import { L7Controller, type L7Snapshot } from './l7.js';
import { ensureProxyAddresses } from '../datapath/proxy-address.js';
import { ProxySupervisor } from './proxy-supervisor.js';
import type { FrontendRedirect } from './service-controller.js';
import type { AgentStatus } from '../contract/agent-api.js';

export interface ProxyInputs {
  services: {
    frontends(): readonly Frontend[];
    /** Writes the frontends again: the proxy accepted a snapshot with other Service ports. */
    resync(): void;
  };
  /** Whether a backend address is a local pod isolated for ingress. */
  ingressIsolated(ip: string): boolean;
  workload(ip: string): Workload;
  /** Local pods' addresses (clients of the proxy). */
  localAddresses(): readonly string[];
  /** Where the proxy's L7 flows go. */
  flows: { addFlow(flow: Flow): void; addLost(count: number): void };
}

export class ProxyController implements Controller, FrontendRedirect {
  private readonly l7: L7Controller;
  private supervisor: ProxySupervisor<L7Snapshot> | undefined;
  private error: string | undefined;

  constructor(
    private readonly ctx: AgentContext,
    private readonly inputs: ProxyInputs,
  ) {
    const { cfg, store, log } = ctx;
    const opts = {
      addresses: cfg.proxy.addresses,
      portBase: cfg.proxy.portBase,
      balancer: cfg.proxy.balancer,
      stateDir: cfg.stateDir,
    };
    this.l7 = new L7Controller(
      opts,
      {
        store,
        frontends: () => inputs.services.frontends(),
        isolatedBackend: (ip) => inputs.ingressIsolated(ip),
        workload: (ip) => inputs.workload(ip),
        localAddresses: () => inputs.localAddresses(),
      },
      log,
    );
  }

  get active(): boolean {
    return this.l7.active;
  }

  compile(): string {
    this.l7.compile();
    return this.l7.kernelSet();
  }

  kernelFrontend(f: Frontend): Frontend {
    return this.l7.kernelFrontend(f);
  }

  written(): void {
    this.updateProxy();
  }

  status(): Partial<AgentStatus> {
    const { l7, supervisor } = this;
    const idle = { managed: this.ctx.cfg.proxy.mode === 'managed', running: false, restarts: 0, version: 0 };
    // Once routes exist: while routed, while the proxy runs, and while a note says why not.
    if (!(l7.active || supervisor || l7.routeNotes.length > 0)) return {};
    return {
      proxy: {
        ...(supervisor?.status() ?? idle),
        ...(this.error && { lastError: this.error }),
        routedPorts: l7.routedPorts,
        notes: [...l7.routeNotes],
      },
    };
  }

  async stop(): Promise<void> {
    await this.supervisor?.stop();
  }

  /** Starts the proxy once something is routed, and sends it the current snapshot. */
  private updateProxy(): void {
    const {
      l7,
      ctx: { cfg, log },
    } = this;
    if (!l7.active) return;
    if (!this.supervisor) {
      try {
        ensureProxyAddresses(cfg.proxy.addresses);
      } catch (err) {
        this.error = `cannot set up the proxy addresses: ${(err as Error).message}`;
        log.error('routes not applied: the proxy addresses cannot be set up', { error: (err as Error).message });
        return;
      }
      this.error = undefined;
      this.supervisor = new ProxySupervisor({
        adminSocket: cfg.proxy.adminSocket,
        manage: cfg.proxy.mode === 'managed',
        metricsAddress: cfg.proxy.metricsAddress,
        logLevel: cfg.logLevel,
        log,
        snapshot: () => l7.snapshot(),
        onAccepted: (snap) => {
          if (l7.acceptedSnapshot(snap)) this.inputs.services.resync();
        },
        onFlow: (flow) => this.inputs.flows.addFlow(flow),
        onLost: (count) => this.inputs.flows.addLost(count),
      });
      this.supervisor.start();
    }
    this.supervisor.push();
  }
}
