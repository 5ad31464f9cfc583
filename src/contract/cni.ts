// The contract between the CNI plugin (native/, build/bin/weft-cni) and weftd, pure: what the
// plugin sends (network config, CNI_ARGS, its calls' bodies), what the agent answers (replies,
// error codes, the results the plugin prints), and the names both derive. CNI spec 1.1.
import type { Family } from '../lib/ip.js';
import { HttpError } from '../lib/unix-http.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** Well-known CNI error codes, and Weft's own (100 and up, as the spec reserves). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  ContainerUnknown: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PoolExhausted: 100,
  EndpointBroken: 101,
} as const;

const httpStatus = (cniCode: number) =>
  cniCode === CniCode.TryAgainLater ? 503 : cniCode === CniCode.PoolExhausted ? 409 : 400;

/** An error with its CNI code. Thrown in a handler of the agent's socket, it answers
 *  {error, cniCode}, which the plugin prints as its error result; the HTTP status says "try again
 *  later" (503), "pool exhausted" (409) or a bad request (400). */
export class CniError extends HttpError {
  constructor(
    readonly cniCode: number,
    message: string,
  ) {
    super(httpStatus(cniCode), message, { cniCode });
  }
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  mtu: number;
  agentSocket?: string;
  prevResult?: CniResult;
  validAttachments?: { containerID: string; ifname: string }[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseNetConf(raw: unknown): NetConf {
  if (!isObj(raw)) throw new CniError(CniCode.DecodeFailure, 'network configuration is not a JSON object');
  const str = (k: string): string => {
    const v = raw[k];
    if (typeof v !== 'string' || v === '')
      throw new CniError(CniCode.InvalidConfig, `network configuration: "${k}" must be a non-empty string`);
    return v;
  };
  const cniVersion = str('cniVersion');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `cniVersion ${cniVersion} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`,
    );
  }
  const mtu = raw.mtu ?? 1500;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535) {
    throw new CniError(
      CniCode.InvalidConfig,
      `network configuration: "mtu" must be an integer from 576 to 65535, got ${JSON.stringify(mtu)}`,
    );
  }
  const conf: NetConf = { cniVersion, name: str('name'), type: str('type'), mtu };
  if (raw.agentSocket !== undefined) conf.agentSocket = str('agentSocket');
  if (raw.prevResult !== undefined) {
    if (!isObj(raw.prevResult))
      throw new CniError(CniCode.InvalidConfig, 'network configuration: "prevResult" must be an object');
    conf.prevResult = raw.prevResult as unknown as CniResult;
  }
  const valid = raw['cni.dev/valid-attachments'] ?? raw.validAttachments;
  if (valid !== undefined) {
    if (
      !Array.isArray(valid) ||
      !valid.every((a) => isObj(a) && typeof a.containerID === 'string' && typeof a.ifname === 'string')
    ) {
      throw new CniError(
        CniCode.InvalidConfig,
        'network configuration: "cni.dev/valid-attachments" must be a list of {containerID, ifname}',
      );
    }
    conf.validAttachments = valid as NetConf['validAttachments'];
  }
  return conf;
}

/** CNI_ARGS: "K1=V1;K2=V2". */
export function parseCniArgs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of args.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

/** The host-side veth's name: "wft" + 12 hex digits of FNV-1a-64 over "<containerId>/<ifName>".
 *  The plugin computes the same, so it can clean up even when the agent is away. */
export function hostIfName(containerId: string, ifName: string): string {
  return `wft${fnv1a64(`${containerId}/${ifName}`).toString(16).padStart(16, '0').slice(0, 12)}`;
}

export function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

// Pods reach the node through link-local gateways on the host side of their veth: proxy ARP
// answers for 169.254.1.1, and the host veth's fixed MAC gives it this IPv6 link-local address.
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';

export interface PodAddress {
  family: Family;
  address: string;
  prefixLength: number;
  gateway: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

/** The ADD result: the host veth and the pod interface, their addresses and default routes,
 *  appended to a previous plugin's result when Weft runs in a chain. */
export function composeResult(opts: {
  conf: NetConf;
  hostIfName: string;
  hostMac: string;
  podIfName: string;
  podMac: string;
  netns: string;
  ips: PodAddress[];
}): CniResult {
  const prev = opts.conf.prevResult;
  const interfaces = [...(prev?.interfaces ?? [])];
  const podIndex = interfaces.length + 1;
  interfaces.push(
    { name: opts.hostIfName, mac: opts.hostMac },
    { name: opts.podIfName, mac: opts.podMac, sandbox: opts.netns },
  );
  const legacy = !opts.conf.cniVersion.startsWith('1.');
  return {
    cniVersion: opts.conf.cniVersion,
    interfaces,
    ips: [
      ...(prev?.ips ?? []),
      ...opts.ips.map((ip) => ({
        ...(legacy && { version: String(ip.family) }),
        address: `${ip.address}/${ip.prefixLength}`,
        gateway: ip.gateway,
        interface: podIndex,
      })),
    ],
    routes: [
      ...(prev?.routes ?? []),
      ...opts.ips.map((ip) => ({ dst: ip.family === 4 ? '0.0.0.0/0' : '::/0', gw: ip.gateway })),
    ],
    dns: prev?.dns ?? {},
  };
}

// ---- The plugin's calls: POST /v1/cni/{allocate,attach,del,check,gc} on the agent's socket ----
// (ADD: allocate, then attach; a failed ADD and DEL: del. STATUS asks GET /healthz.)

/** Every call's body: the network configuration from stdin, verbatim, and (all but gc) the CNI
 *  parameters from the environment: CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, CNI_ARGS. */
export interface CniCallBody {
  config: unknown;
  containerId?: string;
  ifName?: string;
  netns?: string;
  args?: string;
}

/** attach also sends the interfaces the plugin made, and the pod namespace's SO_NETNS_COOKIE
 *  (decimal; optional: older plugins do not send it). */
export interface CniAttachBody extends CniCallBody {
  hostIfIndex: number;
  hostMac: string;
  podMac: string;
  netnsCookie?: string;
}

export interface CniAllocateReply {
  hostIfName: string;
  mtu: number;
  ips: PodAddress[];
}

/** The result the plugin prints. */
export interface CniAttachReply {
  result: CniResult;
}

export interface CniDelReply {
  hostIfName: string;
}

export interface CniCheckReply {
  hostIfName: string;
  ips: PodAddress[];
}

/** The host veths of the endpoints GC removed, for the plugin to delete. */
export interface CniGcReply {
  hostIfNames: string[];
}

/** Any call's error answer (HTTP 4xx/5xx): the plugin prints `cniCode` (when absent, it picks
 *  one from the status) and `error`. */
export interface CniErrorReply {
  error: string;
  cniCode?: number;
}
