// The node's endpoints: the registry the CNI plugin's calls fill (endpoints.ts: addresses from
// the node's pod CIDRs, interfaces, kept in the state directory), the CNI API (cni-api.ts) and
// GET /v1/endpoints. The registry is read once the source has synced: in Kubernetes mode the
// pod CIDRs come with the Node object, and follow it.
import type { Route } from '../lib/unix-http.js';
import { CniCode, CniError } from '../contract/cni.js';
import { cniRoutes, type EndpointProgrammer } from './cni-api.js';
import type { AgentContext, Controller, ResourceKind } from './controller.js';
import { EndpointRegistry } from './endpoints.js';
import type { AgentStatus, EndpointRecord } from '../contract/agent-api.js';

export class EndpointController implements Controller {
  /** Undefined until start(): until then CNI calls are told to try again later. */
  registry: EndpointRegistry | undefined;
  readonly routes: Readonly<Record<string, Route>>;

  constructor(
    private readonly ctx: AgentContext,
    /** What programs an endpoint's datapath (EndpointPrograms). */
    programs: () => EndpointProgrammer,
  ) {
    const registry = () => this.registry ?? notReady(ctx.waitingFor());
    const programmer: EndpointProgrammer = {
      attach: (ep) => programs().attach(ep),
      detach: (ifindex) => programs().detach(ifindex),
    };
    this.routes = {
      'GET /v1/endpoints': (): EndpointRecord[] => this.registry?.list() ?? [],
      ...cniRoutes(registry, programmer, ctx.log),
    };
  }

  start(): void {
    this.registry = EndpointRegistry.load(this.ctx.cfg.stateDir, this.podCidrs(), this.ctx.log);
  }

  changed(kinds: ReadonlySet<ResourceKind>): void {
    if (kinds.has('Node')) this.updatePodCidrs();
  }

  /** The node's endpoints; none until start(). */
  records(): readonly EndpointRecord[] {
    return this.registry?.list() ?? [];
  }

  status(): Partial<AgentStatus> {
    return { endpoints: this.registry?.list().length ?? 0, podCidrs: this.registry?.poolUsage() ?? [] };
  }

  /** --pod-cidr in local mode; the Node object's spec.podCIDRs in Kubernetes mode (the flag, if
   *  given, must agree: a node handing out addresses outside its range breaks routing). */
  private podCidrs(): string[] {
    const { cfg, store, log } = this.ctx;
    if (cfg.source.kind !== 'kubernetes') return cfg.podCidrs;
    const node = store.get('Node', '', cfg.nodeName);
    if (!node) log.warn('no Node object for this node; pod addresses wait for it', { node: cfg.nodeName });
    const fromNode = node?.spec.podCIDRs ?? [];
    if (fromNode.length === 0) return cfg.podCidrs;
    if (cfg.podCidrs.length && cfg.podCidrs.join(',') !== fromNode.join(',')) {
      log.warn('--pod-cidr differs from the Node object; using the Node object', {
        flag: cfg.podCidrs.join(','),
        node: fromNode.join(','),
      });
    }
    return fromNode;
  }

  private updatePodCidrs(): void {
    if (!this.registry) return;
    const next = this.podCidrs();
    if (next.join(',') === this.registry.podCidrs.join(',')) return;
    this.ctx.log.info('pod CIDRs changed', { from: this.registry.podCidrs.join(','), to: next.join(',') });
    this.registry.setPodCidrs(next);
  }
}

function notReady(waitingFor: string): never {
  throw new CniError(CniCode.TryAgainLater, `weftd is starting: waiting for ${waitingFor}`);
}
