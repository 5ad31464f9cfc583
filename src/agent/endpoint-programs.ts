// Each endpoint's datapath: bpf/lxc.c's programs on the host side of its veth. Attached when the
// CNI plugin has set an endpoint up, after the endpoint's policy is in the kernel (so a new pod
// is never reachable unprotected; a failed policy write fails the ADD); detached when it goes;
// after a restart, attached again to every endpoint whose interface is still there.
import type { EndpointDatapath } from '../datapath/endpoint-datapath.js';
import { currentIfindex, programInfo, type EndpointProgrammer } from './cni-api.js';
import type { AgentContext, Controller } from './controller.js';
import type { EndpointRecord } from '../contract/agent-api.js';

/** What the programs need from policy (PolicyController). */
export interface EndpointPolicy {
  /** Writes the policy now; throws when the kernel refuses. */
  writeNow(): void;
  /** An endpoint's isolation flags; undefined until a compile has been written. */
  flagsFor(endpointId: number): number | undefined;
  /** An endpoint went away. */
  endpointsChanged(): void;
}

export class EndpointPrograms implements Controller, EndpointProgrammer {
  constructor(
    private readonly ctx: AgentContext,
    private readonly datapath: EndpointDatapath,
    private readonly endpoints: { records(): readonly EndpointRecord[] },
    private readonly policy: EndpointPolicy,
  ) {}

  /** After a restart: every endpoint whose host veth is still there gets its programs again
   *  (replacing the pinned ones atomically), and links of interfaces no endpoint owns go. */
  start(): void {
    const { log, cfg } = this.ctx;
    const dp = this.datapath;
    const records = this.endpoints.records();
    const owned = new Set<number>();
    let restored = 0;
    for (const ep of records) {
      if (ep.state !== 'ready' || ep.hostIfIndex === undefined) continue;
      const ifindex = currentIfindex(ep.hostIfName);
      if (ifindex !== ep.hostIfIndex) {
        log.warn('endpoint interface is gone; waiting for the runtime to delete the pod', {
          endpoint: ep.id,
          container: ep.containerId,
          host_if: ep.hostIfName,
        });
        continue;
      }
      dp.attach({ ...programInfo(ep, ifindex), flags: this.policy.flagsFor(ep.id) });
      owned.add(ifindex);
      restored++;
    }
    for (const ifindex of dp.attachedIfindexes()) if (!owned.has(ifindex)) dp.detach(ifindex);
    log.info('endpoints restored', {
      endpoints: records.length,
      attached: restored,
      pod_cidrs: cfg.podCidrs.join(',') || undefined,
    });
  }

  attach(info: Parameters<EndpointProgrammer['attach']>[0]): void {
    this.policy.writeNow();
    this.datapath.attach({ ...info, flags: this.policy.flagsFor(info.endpointId) ?? 0 });
  }

  detach(ifindex: number): void {
    this.datapath.detach(ifindex);
    this.policy.endpointsChanged();
  }
}
