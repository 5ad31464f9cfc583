// weftd's command line. The flags are a contract (see README): extend, don't change.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_STATE_DIR, apiSocketPath } from '../contract/agent-api.js';
import { BALANCER_ALGORITHMS, type BalancerAlgorithm } from '../contract/proxy-snapshot.js';
import { DEFAULT_BPF_ROOT } from '../datapath/pins.js';
import { ipFamily, isCidr } from '../lib/ip.js';
import { DEFAULT_PROXY_ADDRESSES, PROXY_INTERFACE } from '../datapath/proxy-address.js';
import { DEFAULT_FLOW_BUFFER, MAX_FLOW_BUFFER } from '../observe/flow-ring.js';

export interface AgentConfig {
  source: { kind: 'dir'; dir: string } | { kind: 'kubernetes'; kubeconfig?: string };
  bpfRoot: string;
  cgroup?: string;
  stateDir: string;
  socketPath: string;
  nodeName: string;
  podCidrs: string[];
  metricsAddress: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** What the datapath reports into the events ring: new connections and drops, or every packet. */
  flowEvents: 'new-and-drops' | 'every-packet';
  /** Flows the observer keeps in memory for `weft observe`. */
  flowBufferSize: number;
  /** The L7 proxy: run by weftd (managed), run beside it (external), or none (off). */
  proxy: {
    mode: 'managed' | 'external' | 'off';
    addresses: { 4?: string; 6?: string };
    portBase: number;
    metricsAddress: string;
    adminSocket: string;
    /** How the proxy picks an endpoint for each request. */
    balancer: BalancerAlgorithm;
  };
}

export const USAGE = `Usage: weftd --source dir:PATH|kubernetes [flags]

Weft's node agent: loads the datapath programs, keeps their maps in sync with the cluster's
Services and EndpointSlices, and serves the local API.

Flags:
  --source dir:PATH        read manifests (YAML/JSON, upstream Kubernetes shapes) from PATH
  --source kubernetes      watch the Kubernetes API: Services, EndpointSlices, Pods, Namespaces,
                           Nodes, NetworkPolicies, and Gateway API routes when their CRDs exist
  --kubeconfig FILE        kubeconfig for --source kubernetes (default: $KUBECONFIG, else the
                           pod's service account)
  --bpf-root DIR           pin root for maps and links (default ${DEFAULT_BPF_ROOT})
  --cgroup DIR             cgroup v2 directory for the socket programs
                           (default: the root of the cgroup2 mount, from /proc/mounts)
  --state-dir DIR          agent state and API socket DIR/weft.sock (default ${DEFAULT_STATE_DIR})
  --node-name NAME         this node's name (default: the hostname)
  --pod-cidr CIDR[,CIDR]   this node's pod CIDRs, repeatable (local mode; in Kubernetes
                           mode the Node object's spec.podCIDRs win)
  --metrics-address ADDR   Prometheus metrics listen address (default 127.0.0.1:9962)
  --log-level LEVEL        debug, info, warn or error (default info)
  --flow-events WHAT       what the datapath reports: new-and-drops (new connections, policy
                           verdicts and drops; the default) or every-packet
  --flow-buffer-size N     flows kept in memory for weft observe (default ${DEFAULT_FLOW_BUFFER},
                           128 bytes each; at most ${MAX_FLOW_BUFFER})
  --proxy MODE             the per-node L7 proxy (weft-proxy) for Services with HTTPRoutes or
                           GRPCRoutes: managed (weftd runs it; the default), external (it runs
                           beside weftd, e.g. a second container, on --proxy-admin-socket) or
                           off (routes are not applied)
  --proxy-address ADDR     the proxy's listen address, one per family, repeatable (default
                           ${DEFAULT_PROXY_ADDRESSES[4]} and ${DEFAULT_PROXY_ADDRESSES[6]}, on ${PROXY_INTERFACE})
  --proxy-port-base PORT   listener ports, one per routed Service port, from here up (default 15000)
  --proxy-admin-socket P   the proxy's control socket (default <state-dir>/proxy.sock)
  --proxy-metrics-address ADDR  the proxy's Prometheus listen address (managed; default 127.0.0.1:9964)
  --proxy-balancer ALG     how the proxy picks an endpoint for each request: peak-ewma (power of
                           two choices over peak-EWMA latency; the default), round-robin or
                           least-request
  -h, --help               show this help
`;

export class UsageError extends Error {}

const OPTIONS = {
  source: { type: 'string' },
  kubeconfig: { type: 'string' },
  'bpf-root': { type: 'string', default: DEFAULT_BPF_ROOT },
  cgroup: { type: 'string' },
  'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
  'node-name': { type: 'string', default: os.hostname() },
  'pod-cidr': { type: 'string', multiple: true },
  'metrics-address': { type: 'string', default: '127.0.0.1:9962' },
  'log-level': { type: 'string', default: 'info' },
  'flow-events': { type: 'string', default: 'new-and-drops' },
  'flow-buffer-size': { type: 'string', default: String(DEFAULT_FLOW_BUFFER) },
  proxy: { type: 'string', default: 'managed' },
  'proxy-address': { type: 'string', multiple: true },
  'proxy-port-base': { type: 'string', default: '15000' },
  'proxy-admin-socket': { type: 'string' },
  'proxy-metrics-address': { type: 'string', default: '127.0.0.1:9964' },
  'proxy-balancer': { type: 'string', default: 'peak-ewma' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function parseConfig(argv: string[]): AgentConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, strict: true, options: OPTIONS });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values } = parsed;
  if (values.help) return 'help';
  const src = values.source;
  let source: AgentConfig['source'];
  if (src?.startsWith('dir:') && src.length > 4) source = { kind: 'dir', dir: path.resolve(src.slice(4)) };
  else if (src === 'kubernetes')
    source = { kind: 'kubernetes', ...(values.kubeconfig && { kubeconfig: values.kubeconfig }) };
  else throw new UsageError(`--source must be dir:PATH or kubernetes${src ? `, got ${JSON.stringify(src)}` : ''}`);
  const level = values['log-level'];
  if (!['debug', 'info', 'warn', 'error'].includes(level))
    throw new UsageError(`--log-level ${level}: want debug, info, warn or error`);
  const flowEvents = values['flow-events'];
  if (flowEvents !== 'new-and-drops' && flowEvents !== 'every-packet')
    throw new UsageError(`--flow-events ${flowEvents}: want new-and-drops or every-packet`);
  const flowBuffer = values['flow-buffer-size'];
  const flowBufferSize = /^\d{1,9}$/.test(flowBuffer) ? Number(flowBuffer) : NaN;
  if (!(flowBufferSize >= 1 && flowBufferSize <= MAX_FLOW_BUFFER))
    throw new UsageError(`--flow-buffer-size ${flowBuffer}: want a number of flows from 1 to ${MAX_FLOW_BUFFER}`);
  // Repeatable and comma-separated both: a second flag must not silently replace the first.
  const podCidrs = (values['pod-cidr'] ?? [])
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  for (const cidr of podCidrs) {
    if (!isCidr(cidr))
      throw new UsageError(`--pod-cidr ${cidr}: not a CIDR (want e.g. 10.244.1.0/24 or fd00:10:244:1::/64)`);
  }
  const stateDir = path.resolve(values['state-dir']);
  const proxyMode = values.proxy;
  if (proxyMode !== 'managed' && proxyMode !== 'external' && proxyMode !== 'off')
    throw new UsageError(`--proxy ${proxyMode}: want managed, external or off`);
  const proxyAddresses: { 4?: string; 6?: string } = values['proxy-address'] ? {} : { ...DEFAULT_PROXY_ADDRESSES };
  for (const a of values['proxy-address'] ?? []) {
    const family = ipFamily(a);
    if (!family) throw new UsageError(`--proxy-address ${a}: not an IP address`);
    if (proxyAddresses[family])
      throw new UsageError(
        `--proxy-address ${a}: an IPv${family} address is already given (${proxyAddresses[family]})`,
      );
    proxyAddresses[family] = a;
  }
  const portBase = /^\d{1,5}$/.test(values['proxy-port-base']) ? Number(values['proxy-port-base']) : NaN;
  if (!(portBase >= 1024 && portBase <= 65535))
    throw new UsageError(`--proxy-port-base ${values['proxy-port-base']}: want a port from 1024 to 65535`);
  const balancer = values['proxy-balancer'] as BalancerAlgorithm;
  if (!BALANCER_ALGORITHMS.includes(balancer))
    throw new UsageError(`--proxy-balancer ${balancer}: want ${BALANCER_ALGORITHMS.join(', ')}`);
  return {
    source,
    bpfRoot: path.resolve(values['bpf-root']),
    ...(values.cgroup && { cgroup: path.resolve(values.cgroup) }),
    stateDir,
    socketPath: apiSocketPath(stateDir),
    nodeName: values['node-name'],
    podCidrs,
    metricsAddress: values['metrics-address'],
    logLevel: level as AgentConfig['logLevel'],
    flowEvents,
    flowBufferSize,
    proxy: {
      mode: proxyMode,
      addresses: proxyAddresses,
      portBase,
      metricsAddress: values['proxy-metrics-address'],
      adminSocket: path.resolve(values['proxy-admin-socket'] ?? path.join(stateDir, 'proxy.sock')),
      balancer,
    },
  };
}
