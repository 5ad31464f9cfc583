// weftd's command line. The flags are a contract (see README): extend, don't change.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BPF_ROOT } from '../datapath/pins.js';
import { isCidr } from '../lib/ip.js';
import { DEFAULT_FLOW_BUFFER, MAX_FLOW_BUFFER } from '../observe/flow-ring.js';

export const DEFAULT_STATE_DIR = '/var/run/weft';

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
  else if (src === 'kubernetes') source = { kind: 'kubernetes', ...(values.kubeconfig && { kubeconfig: values.kubeconfig }) };
  else throw new UsageError(`--source must be dir:PATH or kubernetes${src ? `, got ${JSON.stringify(src)}` : ''}`);
  const level = values['log-level'];
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`--log-level ${level}: want debug, info, warn or error`);
  const flowEvents = values['flow-events'];
  if (flowEvents !== 'new-and-drops' && flowEvents !== 'every-packet') throw new UsageError(`--flow-events ${flowEvents}: want new-and-drops or every-packet`);
  const flowBuffer = values['flow-buffer-size'];
  const flowBufferSize = /^\d{1,9}$/.test(flowBuffer) ? Number(flowBuffer) : NaN;
  if (!(flowBufferSize >= 1 && flowBufferSize <= MAX_FLOW_BUFFER)) throw new UsageError(`--flow-buffer-size ${flowBuffer}: want a number of flows from 1 to ${MAX_FLOW_BUFFER}`);
  // Repeatable and comma-separated both: a second flag must not silently replace the first.
  const podCidrs = (values['pod-cidr'] ?? []).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const cidr of podCidrs) {
    if (!isCidr(cidr)) throw new UsageError(`--pod-cidr ${cidr}: not a CIDR (want e.g. 10.244.1.0/24 or fd00:10:244:1::/64)`);
  }
  const stateDir = path.resolve(values['state-dir']);
  return {
    source,
    bpfRoot: path.resolve(values['bpf-root']),
    ...(values.cgroup && { cgroup: path.resolve(values.cgroup) }),
    stateDir,
    socketPath: path.join(stateDir, 'weft.sock'),
    nodeName: values['node-name'],
    podCidrs,
    metricsAddress: values['metrics-address'],
    logLevel: level as AgentConfig['logLevel'],
    flowEvents,
    flowBufferSize,
  };
}
