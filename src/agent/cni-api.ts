// The agent's side of a CNI call. The plugin does what must happen inside namespaces; these
// handlers validate the configuration, hand out addresses, program the datapath and compose
// the result the plugin prints. Every handler is safe to repeat.
import { interfaceIndex } from '../datapath/libbpf.js';
import type { Logger } from '../lib/log.js';
import type { Handler, JsonRoute } from '../lib/unix-http.js';
import {
  CniCode,
  CniError,
  HOST_VETH_MAC,
  composeResult,
  hostIfName,
  parseCniArgs,
  parseNetConf,
  type CniAllocateReply,
  type CniAttachReply,
  type CniCheckReply,
  type CniDelReply,
  type CniGcReply,
  type NetConf,
} from '../contract/cni.js';
import type { EndpointRecord } from '../contract/agent-api.js';
import type { EndpointRegistry } from './endpoints.js';

/** What programs the datapath for an endpoint (bpf/lxc.c on its host veth). */
export interface EndpointProgrammer {
  attach(ep: { endpointId: number; ifindex: number; ifname?: string; ipv4?: string; ipv6?: string }): void;
  detach(ifindex: number): void;
}

interface CniRequest {
  conf: NetConf;
  containerId: string;
  ifName: string;
  netns: string;
  args: Record<string, string>;
  body: Record<string, unknown>;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

function parseRequest(body: unknown, opts: { needNetns: boolean }): CniRequest {
  if (typeof body !== 'object' || body === null)
    throw new CniError(CniCode.DecodeFailure, 'request body is not a JSON object');
  const b = body as Record<string, unknown>;
  const env = (k: string, name: string, required: boolean): string => {
    const v = b[k];
    if (v === undefined || v === null || v === '') {
      if (required) throw new CniError(CniCode.InvalidEnvironment, `${name} is required`);
      return '';
    }
    if (typeof v !== 'string') throw new CniError(CniCode.InvalidEnvironment, `${name} must be a string`);
    return v;
  };
  return {
    conf: parseNetConf(b.config),
    containerId: env('containerId', 'CNI_CONTAINERID', true),
    ifName: env('ifName', 'CNI_IFNAME', true),
    netns: env('netns', 'CNI_NETNS', opts.needNetns),
    args: parseCniArgs(env('args', 'CNI_ARGS', false)),
    body: b,
  };
}

/** The host veth's ifindex as the agent's namespace sees it, or undefined if it is gone. */
export const currentIfindex = interfaceIndex;

const addrOf = (rec: EndpointRecord, family: 4 | 6) => rec.ips.find((ip) => ip.family === family)?.address;

export function programInfo(rec: EndpointRecord, ifindex: number) {
  const ipv4 = addrOf(rec, 4);
  const ipv6 = addrOf(rec, 6);
  // The name lets the datapath check the ifindex really is this veth here before attaching.
  return { endpointId: rec.id, ifindex, ifname: rec.hostIfName, ...(ipv4 && { ipv4 }), ...(ipv6 && { ipv6 }) };
}

/** The CNI handlers. `registry` answers the node's endpoint registry, or throws a CNI error
 *  (try again later) while the agent cannot hand out addresses yet. */
export function cniRoutes(
  registry: () => EndpointRegistry,
  programmer: EndpointProgrammer | undefined,
  log: Logger,
): Record<string, JsonRoute> {
  const handlers: Record<string, Handler> = {
    'POST /v1/cni/allocate': (_, body): CniAllocateReply => {
      const r = parseRequest(body, { needNetns: true });
      const rec = registry().allocate({
        containerId: r.containerId,
        ifName: r.ifName,
        netns: r.netns,
        ...(r.args.K8S_POD_NAMESPACE && { podNamespace: r.args.K8S_POD_NAMESPACE }),
        ...(r.args.K8S_POD_NAME && { podName: r.args.K8S_POD_NAME }),
      });
      log.info('addresses allocated', {
        container: r.containerId,
        if: r.ifName,
        ips: rec.ips.map((i) => i.address).join(','),
      });
      return { hostIfName: rec.hostIfName, mtu: r.conf.mtu, ips: rec.ips };
    },

    'POST /v1/cni/attach': (_, body): CniAttachReply => {
      const r = parseRequest(body, { needNetns: true });
      const rec = registry().get(r.containerId, r.ifName);
      if (!rec)
        throw new CniError(
          CniCode.ContainerUnknown,
          `no addresses were allocated for container ${r.containerId} interface ${r.ifName}`,
        );
      const hostIfIndex = r.body.hostIfIndex;
      const hostMac = r.body.hostMac;
      const podMac = r.body.podMac;
      if (typeof hostIfIndex !== 'number' || !Number.isInteger(hostIfIndex) || hostIfIndex <= 0)
        throw new CniError(CniCode.DecodeFailure, 'hostIfIndex must be a positive integer');
      if (typeof hostMac !== 'string' || !MAC.test(hostMac) || typeof podMac !== 'string' || !MAC.test(podMac))
        throw new CniError(CniCode.DecodeFailure, 'hostMac and podMac must be MAC addresses');
      // Optional (older plugins do not send it): names the pod behind its sockets' events.
      const cookie = r.body.netnsCookie;
      if (
        cookie !== undefined &&
        (typeof cookie !== 'string' || !/^\d{1,20}$/.test(cookie) || BigInt(cookie) >= 1n << 64n)
      ) {
        throw new CniError(CniCode.DecodeFailure, 'netnsCookie must be a decimal string of a 64-bit number');
      }
      // A repeated ADD recreates the veth: the old interface's programs go first.
      if (rec.hostIfIndex !== undefined && rec.hostIfIndex !== hostIfIndex) programmer?.detach(rec.hostIfIndex);
      programmer?.attach(programInfo(rec, hostIfIndex));
      registry().markReady(rec, {
        hostIfIndex,
        hostMac,
        podMac,
        ...(cookie && cookie !== '0' && { netnsCookie: cookie }),
      });
      log.info('endpoint ready', {
        endpoint: rec.id,
        container: r.containerId,
        pod: rec.podName && `${rec.podNamespace}/${rec.podName}`,
        host_if: rec.hostIfName,
      });
      return {
        result: composeResult({
          conf: r.conf,
          hostIfName: rec.hostIfName,
          hostMac: hostMac || HOST_VETH_MAC,
          podIfName: r.ifName,
          podMac,
          netns: r.netns,
          ips: rec.ips,
        }),
      };
    },

    'POST /v1/cni/del': (_, body): CniDelReply => {
      const r = parseRequest(body, { needNetns: false });
      const rec = registry().get(r.containerId, r.ifName);
      if (rec?.hostIfIndex !== undefined) programmer?.detach(rec.hostIfIndex);
      if (registry().remove(r.containerId, r.ifName))
        log.info('endpoint removed', { endpoint: rec?.id, container: r.containerId, if: r.ifName });
      return { hostIfName: rec?.hostIfName ?? hostIfName(r.containerId, r.ifName) };
    },

    'POST /v1/cni/check': (_, body): CniCheckReply => {
      const r = parseRequest(body, { needNetns: true });
      const rec = registry().get(r.containerId, r.ifName);
      if (!rec)
        throw new CniError(
          CniCode.ContainerUnknown,
          `container ${r.containerId} interface ${r.ifName} has no endpoint`,
        );
      if (rec.state !== 'ready')
        throw new CniError(CniCode.EndpointBroken, `endpoint ${rec.id} was never completed (ADD did not finish)`);
      const ifindex = currentIfindex(rec.hostIfName);
      if (ifindex === undefined)
        throw new CniError(CniCode.EndpointBroken, `host interface ${rec.hostIfName} of endpoint ${rec.id} is gone`);
      if (ifindex !== rec.hostIfIndex)
        throw new CniError(
          CniCode.EndpointBroken,
          `host interface ${rec.hostIfName} has ifindex ${ifindex}, endpoint ${rec.id} was set up on ${rec.hostIfIndex}`,
        );
      return { hostIfName: rec.hostIfName, ips: rec.ips };
    },

    'POST /v1/cni/gc': (_, body): CniGcReply => {
      const b = (body ?? {}) as Record<string, unknown>;
      const conf = parseNetConf(b.config);
      if (!conf.validAttachments)
        throw new CniError(CniCode.InvalidConfig, 'GC needs "cni.dev/valid-attachments" in the network configuration');
      const gone = registry().gc(conf.validAttachments);
      for (const rec of gone) {
        if (rec.hostIfIndex !== undefined) programmer?.detach(rec.hostIfIndex);
        log.info('endpoint garbage-collected', { endpoint: rec.id, container: rec.containerId, if: rec.ifName });
      }
      return { hostIfNames: gone.map((r) => r.hostIfName) };
    },
  };
  // An unreadable request body is the plugin's decode failure: the plugin prints the code.
  const bodyErrorFields = { cniCode: CniCode.DecodeFailure };
  return Object.fromEntries(Object.entries(handlers).map(([route, handle]) => [route, { handle, bodyErrorFields }]));
}
