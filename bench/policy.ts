// Network policy in `make bench`: what NetworkPolicy enforcement (bpf/lxc.c) costs a pod's
// traffic, and how fast the agent puts policies in force.
//
// One world, one weftd in its node namespace (--source dir:, the world's cgroup and pins), and
// two pods made by the real CNI plugin (build/bin/weft-cni), so both have the lxc programs on
// their host veths: a client (loadgen) and a server (echo-server), talking pod IP to pod IP.
// The agent also knows Pod manifests of remote pods (other nodes', addresses in the pod CIDR,
// never contacted), so identities and the ipcache are a cluster's, not two pods'.
//
//   1. none          no NetworkPolicy at all;
//   2. N policies    N NetworkPolicies in the pods' namespace (100 by default) that all select
//                    both pods, Ingress and Egress, with realistic, varied rules (pod and
//                    namespace selectors, ipBlocks with exceptions, port lists, ranges, named
//                    ports) that together allow client → server:8080.
//   The two are measured interleaved (each run switches the policy file and waits until the
//   agent's /v1/policy shows the switch and the agent is idle again; the order alternates),
//   with the rest of the bench's loadgen runs: new connections per second (`loadgen conn`) and
//   request/response latency on one kept connection (`loadgen rr`). Before measuring with
//   policies, /v1/policy must show both pods isolated both ways with allow entries, and a port
//   no rule allows must time out (refused without policy): proof that the programs enforce.
//   Any connection error fails the part. Client on the client CPU, echo server and agent on
//   the server CPU, as elsewhere in the bench.
//   3. Apply time:   M NetworkPolicies (1,000 by default, in several namespaces, a fifth of
//                    them selecting the two pods) written at once (np-0000 in a file of its
//                    own, the rest in another, renamed in back to back): from the first rename
//                    until /v1/policy lists all M (polled every 2 ms), with the agent's
//                    lastWrite; then one policy edited (a port added, then taken out again, so
//                    the server's entries change), in its own file and inside the big file.
//
// Cleanup is the world's (namespaces, cgroup, pins, processes; also on signals and at exit).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { PolicyStatus } from '../src/contract/agent-api.js';
import { apiRequest } from '../src/lib/unix-http.js';
import { AgentProcess, REPO } from '../test/harness/agent.js';
import { cni, Sandboxes, WEFT_CNI, type Sandbox } from '../test/harness/cni.js';
import { POD_CIDR4, POD_CIDR6, World } from '../test/harness/world.js';
import { watch, type Proc } from './topology.js';
import { spread, type Spread } from './spread.js';

const LOADGEN = join(REPO, 'build', 'bin', 'loadgen');
const ECHO = join(REPO, 'build', 'bin', 'echo-server');

/** This node's pod ranges (the CNI plugin's addresses come from here); remote pods live in
 *  10.244.1.0/24 .. 10.244.8.0/24 and fd00:10:244::1:0/112 .. on. */
const NODE_CIDR4 = '10.244.0.0/24';
const NODE_CIDR6 = 'fd00:10:244::/112';
const NODE_NAME = 'test-node'; // AgentProcess's --node-name
const NS = 'bench';
const SERVER_PORT = 8080;
/** No rule of any generated policy allows it: with policy a SYN to it is dropped (the connect
 *  times out), without policy the server's kernel refuses it. */
const DENIED_PORT = 7;
const POLL_MS = 2;
const APPLY_TIMEOUT_MS = 60_000;
/** A switch between the measured states (none, N policies). */
const SWITCH_TIMEOUT_MS = 15_000;

export interface PolicyBenchOptions {
  /** NetworkPolicies selecting both pods in the measured case. */
  policies: number;
  /** NetworkPolicies written at once for the apply measurement. */
  applyPolicies: number;
  /** Pod manifests of remote pods. */
  remotePods: number;
  /** Edits of one policy with the applyPolicies present. */
  edits: number;
  runs: number;
  connSeconds: number;
  warmupSeconds: number;
  concurrency: number;
  rrCount: number;
  rrWarmup: number;
  clientCpus: string;
  serverCpus: string;
  log: (m: string) => void;
  register: (w: World) => void;
}

function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

interface ConnRun {
  count: number;
  rate: number;
  errors: number;
  first_error: string | null;
  connect_p50_us: number;
  connect_p99_us: number;
  cpu_us_per_conn: number;
  [k: string]: unknown;
}

interface RrRun {
  p50_us: number;
  p99_us: number;
  mean_us: number;
  [k: string]: unknown;
}

export type PolicyMode = 'none' | 'policies';

export interface PolicyPoint {
  mode: PolicyMode;
  label: string;
  policies: number;
  conn: {
    runs: ConnRun[];
    rate: Spread;
    connect_p50_us: Spread;
    connect_p99_us: Spread;
    cpu_us_per_conn: Spread;
    errors: number;
  };
  rr: { runs: RrRun[]; p50_us: Spread; p99_us: Spread };
  /** Switching to this state (policy file written or removed → /v1/policy shows it), ms. */
  switchMs: number[];
  /** The client's and the server's endpoint as /v1/policy showed them while this was measured. */
  endpoints: PolicyStatus['endpoints'];
  ipcache: number;
}

export interface PolicyApply {
  policies: number;
  namespaces: number;
  selectingThePods: number;
  /** Rename of the file → /v1/policy lists all of them. */
  ms: number;
  polls: number;
  lastWrite?: PolicyStatus['lastWrite'];
  revision: number;
  endpoints: PolicyStatus['endpoints'];
  /** The agent's "policy synced" lines logged meanwhile. */
  agentLines: string[];
}

export interface PolicyEdit {
  edits: number;
  what: string;
  p50Ms: number;
  maxMs: number;
  runsMs: number[];
  /** The last edit's write. */
  lastWrite?: PolicyStatus['lastWrite'];
}

export interface PolicyResult {
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  method: string;
  pods?: { client: string; server: string; remote: number; namespaces: number };
  points: PolicyPoint[];
  /** policies / none: medians. conn: higher is better; rr: lower is better. */
  ratio?: { conn_rate: number; rr_p50: number; rr_p99: number };
  /** The median of the run-by-run ratios (run k of one state against run k of the other, taken
   *  back to back): less sensitive to drift over the whole measurement. */
  pairedRatio?: { conn_rate: number; rr_p50: number; rr_p99: number };
  /** A port no rule allows: what a connect to it did, with and without policy. */
  enforcement?: { port: number; withPolicy: string; without: string };
  apply?: PolicyApply;
  /** One policy edited, with the apply case's policies present: one entry per kind of edit. */
  edits?: PolicyEdit[];
  /** Seconds the agent spent on CPU while traffic was measured (it should idle). */
  agentCpuSeconds?: number;
  /** The agent's warn and error lines. */
  agentWarnings: string[];
  /** The agent's log, without its "program ready" lines (at most the last 500 lines). */
  agentLog?: string[];
  /** On failure: the last /v1/policy answer and the end of the agent's log. */
  lastView?: PolicyStatus | string;
  agentLogTail?: string[];
  warnings: string[];
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// The cluster the agent is told about

type Labels = Record<string, string>;

export const NAMESPACE_LABELS: Record<string, Labels> = {
  [NS]: { team: 'perf', env: 'bench' },
  shop: { team: 'storefront', env: 'prod' },
  payments: { team: 'payments', env: 'prod', pci: 'true' },
  search: { team: 'search', env: 'prod' },
  monitoring: { team: 'sre', env: 'prod' },
  'kube-system': {},
  data: { team: 'data', env: 'staging' },
  web: { team: 'storefront', env: 'staging' },
  batch: { env: 'prod' },
};
const REMOTE_NAMESPACES = Object.keys(NAMESPACE_LABELS);
const TEAMS = ['storefront', 'payments', 'search', 'sre', 'data', 'perf'];
const APPS = [
  'frontend',
  'cart',
  'checkout',
  'catalog',
  'search-api',
  'indexer',
  'postgres',
  'redis',
  'kafka',
  'prometheus',
  'grafana',
  'coredns',
  'worker',
  'gateway',
  'auth',
];
const TIERS = ['frontend', 'backend', 'db', 'cache', 'client', 'server'];

const CLIENT_LABELS: Labels = { app: 'loadgen', tier: 'client', 'policy-bench': 'yes', version: 'v1', track: 'stable' };
const SERVER_LABELS: Labels = { app: 'echo', tier: 'server', 'policy-bench': 'yes', version: 'v1', track: 'stable' };

export function namespaceManifest(name: string): object {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { ...NAMESPACE_LABELS[name], 'kubernetes.io/metadata.name': name } },
  };
}

function podManifest(
  namespace: string,
  name: string,
  labels: Labels,
  nodeName: string,
  ports: object[],
  ips?: string[],
): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace, name, labels },
    spec: { nodeName, containers: [{ name: 'app', image: 'weft-bench/app', ports }] },
    ...(ips && { status: { phase: 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } }),
  };
}

/** Remote pods: deployments of 10 replicas (so ~count/10 label sets, as pod-template-hash makes
 *  them), spread over 8 other nodes and every namespace, each with an IPv4 and an IPv6 address. */
export function remotePods(count: number): object[] {
  const out: object[] = [];
  for (let i = 0; i < count; i++) {
    const deployment = Math.floor(i / 10);
    const namespace = REMOTE_NAMESPACES[deployment % REMOTE_NAMESPACES.length]!;
    const app = namespace === 'kube-system' && deployment % 2 === 0 ? 'coredns' : APPS[deployment % APPS.length]!;
    const labels: Labels = {
      app,
      tier: TIERS[(deployment * 7) % TIERS.length]!,
      version: `v${(deployment % 3) + 1}`,
      'pod-template-hash': `h${((deployment * 2654435761) % 0xffffff).toString(16)}`,
      ...(app === 'coredns' && { 'k8s-app': 'kube-dns' }),
      ...(deployment % 9 === 0 && { canary: 'true' }),
    };
    const node = 1 + (Math.floor(i / 250) % 8);
    const host = (i % 250) + 2;
    const ips = [`10.244.${node}.${host}`, `fd00:10:244::${node}:${host.toString(16)}`];
    const ports = [
      { name: 'http', containerPort: 8080 + (deployment % 3), protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ];
    out.push(podManifest(namespace, `${app}-${deployment}-${i % 10}`, labels, `node-${node}`, ports, ips));
  }
  return out;
}

type Obj = Record<string, unknown>;

/** The podSelector of policy i: five shapes, each selecting both bench pods. */
function benchPodSelector(i: number): Obj {
  switch (i % 5) {
    case 0:
      return { matchLabels: { 'policy-bench': 'yes' } };
    case 1:
      return { matchExpressions: [{ key: 'app', operator: 'In', values: ['loadgen', 'echo', `extra-${i}`] }] };
    case 2:
      return {
        matchLabels: { track: 'stable' },
        matchExpressions: [{ key: 'tier', operator: 'In', values: ['client', 'server'] }],
      };
    case 3:
      return {
        matchExpressions: [
          { key: 'version', operator: 'NotIn', values: [`v${9 + i}`] },
          { key: 'canary', operator: 'DoesNotExist' },
        ],
      };
    default:
      return { matchExpressions: [{ key: 'policy-bench', operator: 'Exists' }] };
  }
}

/** One NetworkPolicy, Ingress and Egress, with rules varied by i. In the bench namespace it
 *  selects both bench pods; every third allows client → server:8080 (ingress from tier=client),
 *  every third the client's egress to tier=server:8080; the rest allow other things. DENIED_PORT
 *  is in no rule. Elsewhere it selects one app of that namespace. */
function networkPolicy(namespace: string, name: string, i: number): object {
  const podSelector = namespace === NS ? benchPodSelector(i) : { matchLabels: { app: APPS[i % APPS.length] } };
  const team = TEAMS[i % TEAMS.length]!;
  const ingress: Obj[] = [
    i % 3 === 0
      ? {
          from: [{ podSelector: { matchLabels: { tier: 'client' } } }],
          ports: [
            { protocol: 'TCP', port: SERVER_PORT },
            { protocol: 'TCP', port: 9000 + (i % 500) },
          ],
        }
      : {
          from: [{ podSelector: { matchLabels: { app: APPS[(i * 3) % APPS.length] } } }],
          ports: [
            { protocol: 'TCP', port: 'http' },
            { protocol: 'TCP', port: 'metrics' },
          ],
        },
    {
      from: [
        {
          namespaceSelector: { matchLabels: { team } },
          podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['frontend', 'backend'] }] },
        },
      ],
      ports: [
        { protocol: 'TCP', port: 8000 + (i % 50), endPort: 8000 + (i % 50) + 15 },
        { protocol: 'UDP', port: 5000 + (i % 1000) },
      ],
    },
    {
      from: [
        { ipBlock: { cidr: `10.${100 + (i % 50)}.0.0/16`, except: [`10.${100 + (i % 50)}.${i % 256}.0/24`] } },
        { ipBlock: { cidr: `192.168.${i % 256}.0/24` } },
      ],
      ports: [
        { protocol: 'TCP', port: 443 },
        { protocol: 'TCP', port: 10000 + (i % 500) * 10, endPort: 10000 + (i % 500) * 10 + 9 },
      ],
    },
  ];
  if (i % 4 === 0)
    ingress.push({
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ports: [{ protocol: 'TCP', port: 'metrics' }],
    });
  const egress: Obj[] = [
    i % 3 === 1
      ? { to: [{ podSelector: { matchLabels: { tier: 'server' } } }], ports: [{ protocol: 'TCP', port: SERVER_PORT }] }
      : {
          to: [
            {
              podSelector: {
                matchExpressions: [
                  { key: 'app', operator: 'In', values: [APPS[i % APPS.length], APPS[(i + 5) % APPS.length]] },
                ],
              },
            },
          ],
          ports: [{ protocol: 'TCP', port: 'http' }],
        },
    {
      to: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
          podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
        },
      ],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    },
    {
      to: [
        { ipBlock: { cidr: `172.16.${i % 256}.0/24` } },
        { ipBlock: { cidr: `fd00:${(i % 4096).toString(16)}::/48` } },
      ],
      ports: [
        { protocol: 'TCP', port: 5432 },
        { protocol: 'TCP', port: 6379 },
      ],
    },
    {
      to: [
        {
          namespaceSelector: {
            matchExpressions: [
              { key: 'env', operator: 'In', values: ['prod', 'staging'] },
              { key: 'team', operator: 'Exists' },
            ],
          },
        },
      ],
      ports: [{ protocol: 'TCP', port: 20000 + (i % 1000) * 32, endPort: 20000 + (i % 1000) * 32 + 31 }],
    },
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace, name },
    spec: { podSelector, policyTypes: ['Ingress', 'Egress'], ingress, egress },
  };
}

/** The measured case: n policies in the bench namespace, each selecting both pods. */
export function benchPolicies(n: number): object[] {
  return Array.from({ length: n }, (_, i) => networkPolicy(NS, `bench-${String(i).padStart(3, '0')}`, i));
}

/** The apply case: n policies over every namespace, every fifth in the bench namespace (np-0000,
 *  np-0005, ...: those select both pods). extraPort(i): one more port in policy i's first ingress
 *  rule (the edits). */
export function clusterPolicies(n: number, extraPort: (i: number) => number | undefined = () => undefined): object[] {
  return Array.from({ length: n }, (_, i) => {
    const namespace = i % 5 === 0 ? NS : REMOTE_NAMESPACES[1 + (i % (REMOTE_NAMESPACES.length - 1))]!;
    const p = networkPolicy(namespace, `np-${String(i).padStart(4, '0')}`, i) as {
      spec: { ingress: { ports: object[] }[] };
    };
    const extra = extraPort(i);
    if (extra !== undefined) p.spec.ingress[0]!.ports.push({ protocol: 'TCP', port: extra });
    return p;
  });
}

const key = (p: object) => {
  const m = (p as { metadata: { namespace: string; name: string } }).metadata;
  return `${m.namespace}/${m.name}`;
};

// ---------------------------------------------------------------------------------------------
// The run

class PolicyBenchError extends Error {}

export async function measurePolicy(o: PolicyBenchOptions): Promise<PolicyResult> {
  const started = performance.now();
  const base = (): PolicyResult => ({
    status: 'ok',
    method:
      'client and server pods made by weft-cni (lxc programs on both host veths), loadgen → echo-server pod IP to pod IP; ' +
      `"none" and "${o.policies} policies" interleaved, the policy file switched between runs and the switch confirmed through /v1/policy; ` +
      `apply: ${o.applyPolicies} NetworkPolicies in two files renamed into the manifests directory back to back → /v1/policy lists them all (polled every ${POLL_MS} ms); edit: one port added to or taken out of one policy selecting both pods → /v1/policy has a newer revision and the server's entry count changed`,
    points: [],
    agentWarnings: [],
    warnings: [],
    seconds: 0,
  });
  const r = base();
  for (const [what, path] of [
    ['weft-cni', WEFT_CNI],
    ['loadgen', LOADGEN],
    ['echo-server', ECHO],
    ['weftd', join(REPO, 'build/js/src/agent/main.js')],
  ] as const) {
    if (!existsSync(path)) return { ...r, status: 'unavailable', reason: `${what} not built (${path} missing)` };
  }
  const world = World.create({ kind: 'bench' });
  o.register(world);
  const agent = new AgentProcess(world, { where: 'node', extraArgs: ['--pod-cidr', `${NODE_CIDR4},${NODE_CIDR6}`] });
  const procs: Proc[] = [];
  let lastView: PolicyStatus | string = 'no answer yet';
  const view = async (): Promise<PolicyStatus> => {
    const v = await apiRequest<PolicyStatus>(agent.socket, 'GET', '/v1/policy');
    lastView = v;
    return v;
  };
  const sandboxes: { box: Sandbox; containerId: string; name: string }[] = [];
  try {
    await agent.start(30_000);
    // As the rest of the bench pins weftd: with the echo server, away from the client.
    if (o.serverCpus && agent.pid !== undefined)
      execFileSync('taskset', ['-a', '-p', '-c', o.serverCpus, String(agent.pid)], { stdio: 'ignore' });
    const s = { client: '', server: '' };
    // As in a cluster: namespaces and pods exist before their sandboxes; the pods' addresses
    // show in their status once the runtime has set them up.
    agent.writeManifest('namespaces.yaml', Object.keys(NAMESPACE_LABELS).map(namespaceManifest));
    const remote = remotePods(o.remotePods);
    if (remote.length > 0) agent.writeManifest('remote-pods.yaml', remote);
    const serverPorts = [{ name: 'http', containerPort: SERVER_PORT, protocol: 'TCP' }];
    const localPods = (ips?: { client: string[]; server: string[] }) => [
      podManifest(NS, 'client', CLIENT_LABELS, NODE_NAME, [], ips?.client),
      podManifest(NS, 'server', SERVER_LABELS, NODE_NAME, serverPorts, ips?.server),
    ];
    agent.writeManifest('bench-pods.yaml', localPods());
    const boxes = new Sandboxes(world);
    const pods: Record<'client' | 'server', { box: Sandbox; ips: string[] }> = {} as never;
    for (const name of ['client', 'server'] as const) {
      const box = boxes.add();
      const containerId = `policy-${name}-${world.id}`;
      const add = await cni(world, {
        command: 'ADD',
        containerId,
        netns: box.path,
        ifName: 'eth0',
        args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${name}`,
        config: { cniVersion: '1.1.0', name: 'weft', type: 'weft-cni', agentSocket: agent.socket, mtu: 1500 },
      });
      if (add.code !== 0)
        throw new PolicyBenchError(`CNI ADD ${NS}/${name} exited ${add.code}: ${(add.stdout + add.stderr).trim()}`);
      sandboxes.push({ box, containerId, name });
      const ipsOut = (add.json?.ips ?? []) as { address: string; gateway?: string }[];
      const ips = ipsOut.map((i) => i.address.replace(/\/\d+$/, ''));
      if (!ips.some((ip) => !ip.includes(':')))
        throw new PolicyBenchError(`CNI ADD ${NS}/${name} gave no IPv4 address: ${add.stdout}`);
      confinePod(box, ipsOut);
      pods[name] = { box, ips };
      s[name] = ips.find((ip) => !ip.includes(':'))!;
    }
    agent.writeManifest('bench-pods.yaml', localPods({ client: pods.client.ips, server: pods.server.ips }));
    r.pods = {
      client: s.client,
      server: s.server,
      remote: o.remotePods,
      namespaces: Object.keys(NAMESPACE_LABELS).length,
    };
    const client = pods.client.box.where;
    const server = pods.server.box.where;
    // As the rest of the bench: tens of thousands of short connections from one address.
    world.setSysctls(client, {
      'net.ipv4.ip_local_port_range': '1024 65535',
      'net.ipv4.tcp_tw_reuse': 1,
      'net.ipv4.tcp_max_tw_buckets': 262144,
    });
    const echo = watch(
      world.spawn(server, [ECHO, s.server, String(SERVER_PORT), '--size', '64'], {
        inCgroup: true,
        ...(o.serverCpus ? { cpus: o.serverCpus } : {}),
      }),
      'echo-server',
    );
    procs.push(echo);
    await echo.waitForLine(/"event":"listening"/, 5000);

    const target = `${s.server}:${SERVER_PORT}`;
    const loadgen = async <T>(args: string[], timeoutMs: number): Promise<T> => {
      const res = await world.run(client, [LOADGEN, ...args], {
        inCgroup: true,
        timeoutMs,
        ...(o.clientCpus ? { cpus: o.clientCpus } : {}),
      });
      const line = res.stdout
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .pop();
      if (res.code !== 0 || !line) {
        const why = res.timedOut
          ? 'timed out'
          : res.stderr.trim().split('\n').pop() || `exit ${res.signal ?? res.code}`;
        throw new PolicyBenchError(`loadgen ${args[0]} → ${args[2]}: ${why}`);
      }
      return JSON.parse(line) as T;
    };
    const connArgs = (seconds: number) => [
      'conn',
      '--target',
      target,
      '--duration',
      String(seconds),
      '--concurrency',
      String(o.concurrency),
      '--size',
      '64',
    ];
    const connRun = async (seconds: number, mode: PolicyMode): Promise<ConnRun> => {
      const c = await loadgen<ConnRun>(connArgs(seconds), (seconds + 20) * 1000);
      if (c.count === 0 || c.errors > 0) {
        throw new PolicyBenchError(
          `${mode}: loadgen conn → ${target}: ${c.count} connections, ${c.errors} errors (first: ${c.first_error ?? 'none'}): traffic the policies allow did not flow`,
        );
      }
      return c;
    };
    /** What a connect to a port no rule allows does: "refused", "timed out" or something else. */
    const tryDenied = async (): Promise<string> => {
      const res = await world.run(
        client,
        [
          LOADGEN,
          'rr',
          '--target',
          `${s.server}:${DENIED_PORT}`,
          '--count',
          '1',
          '--warmup',
          '0',
          '--timeout-ms',
          '300',
        ],
        { inCgroup: true, timeoutMs: 15_000 },
      );
      if (res.code === 0) return 'connected';
      const msg = res.stderr.trim().split('\n').pop() ?? '';
      return /refused/i.test(msg) ? 'refused' : /timed out/i.test(msg) ? 'timed out' : msg || `exit ${res.code}`;
    };

    // The policy states and switching between them.
    const measured = benchPolicies(o.policies);
    const measuredKeys = measured.map(key).sort();
    const isPod = (e: PolicyStatus['endpoints'][number], name: string) => e.pod === `${NS}/${name}`;
    const podEndpoints = (v: PolicyStatus) => v.endpoints.filter((e) => isPod(e, 'client') || isPod(e, 'server'));
    const inForce = (v: PolicyStatus, mode: PolicyMode): boolean => {
      const want = mode === 'none' ? [] : measuredKeys;
      if (JSON.stringify([...v.policies].sort()) !== JSON.stringify(want)) return false;
      return ['client', 'server'].every((name) => {
        const e = v.endpoints.find((x) => isPod(x, name));
        if (mode === 'none') return !e || (e.ingress === 'open' && e.egress === 'open');
        return (
          e !== undefined && e.identity >= 256 && e.ingress === 'isolated' && e.egress === 'isolated' && e.entries > 0
        );
      });
    };
    let current: PolicyMode | undefined;
    let currentView: PolicyStatus | undefined;
    const switchMs: Record<PolicyMode, number[]> = { none: [], policies: [] };
    const switchTo = async (mode: PolicyMode): Promise<void> => {
      if (mode === current) return;
      const t = performance.now();
      if (mode === 'none') agent.removeManifest('bench-policies.yaml');
      else agent.writeManifest('bench-policies.yaml', measured);
      const deadline = Date.now() + SWITCH_TIMEOUT_MS;
      for (;;) {
        const v = await view().catch((e: Error) => e.message);
        if (typeof v !== 'string' && inForce(v, mode)) {
          currentView = v;
          break;
        }
        if (Date.now() > deadline) {
          throw new PolicyBenchError(
            `the agent did not put ${mode === 'none' ? 'the removal of every policy' : `the ${o.policies} policies`} in force within ${SWITCH_TIMEOUT_MS / 1000} s (want both pods ${mode === 'none' ? 'open' : 'isolated both ways with entries'})`,
          );
        }
        await sleep(POLL_MS);
      }
      if (current !== undefined) switchMs[mode].push(performance.now() - t); // not the first: nothing to switch from
      current = mode;
      // A few ping-pongs must get through after every switch.
      await loadgen<RrRun>(
        ['rr', '--target', target, '--count', '20', '--warmup', '0', '--timeout-ms', '1000'],
        15_000,
      );
      // The agent has just compiled and written (and will collect the garbage of it): measure
      // once it is idle again, so that its work does not land on the state switched to.
      await agentIdle(agent.pid);
    };

    // Enforcement check, both ways: a port no rule allows times out with policy, is refused without.
    await switchTo('none');
    const without = await tryDenied();
    await switchTo('policies');
    const withPolicy = await tryDenied();
    r.enforcement = { port: DENIED_PORT, withPolicy, without };
    if (withPolicy !== 'timed out') {
      throw new PolicyBenchError(
        `with ${o.policies} policies in force a connect to ${s.server}:${DENIED_PORT} (no rule allows it) was ${withPolicy}, expected it to time out (SYN dropped)`,
      );
    }
    if (without !== 'refused')
      r.warnings.push(`without policy a connect to ${s.server}:${DENIED_PORT} was ${without}, expected refused`);
    o.log(
      `bench: policy: pods ${s.client} → ${s.server}; ${o.policies} policies in force (${podEndpoints(currentView!).map(describe).join('; ')}); port ${DENIED_PORT}: ${withPolicy} with policy, ${without} without`,
    );

    // Interleaved measurement.
    const modes: PolicyMode[] = ['none', 'policies'];
    const runs: Record<PolicyMode, { conn: ConnRun[]; rr: RrRun[]; views: PolicyStatus[] }> = {
      none: { conn: [], rr: [], views: [] },
      policies: { conn: [], rr: [], views: [] },
    };
    for (const mode of [current!, ...modes.filter((m) => m !== current)]) {
      await switchTo(mode);
      await connRun(o.warmupSeconds, mode);
    }
    const cpu0 = procCpuSeconds(agent.pid);
    let agentBusy = 0;
    for (let k = 0; k < o.runs; k++) {
      const order = k % 2 === 0 ? modes : [...modes].reverse();
      for (const mode of order) {
        await switchTo(mode);
        const c0 = procCpuSeconds(agent.pid);
        runs[mode].conn.push(await connRun(o.connSeconds, mode));
        runs[mode].rr.push(
          await loadgen<RrRun>(
            ['rr', '--target', target, '--count', String(o.rrCount), '--warmup', String(o.rrWarmup), '--size', '64'],
            30_000 + o.rrCount,
          ),
        );
        const c1 = procCpuSeconds(agent.pid);
        if (c0 !== undefined && c1 !== undefined) agentBusy += c1 - c0;
        runs[mode].views.push(currentView!);
      }
    }
    const cpu1 = procCpuSeconds(agent.pid);
    if (cpu0 !== undefined && cpu1 !== undefined) r.agentCpuSeconds = agentBusy;
    for (const mode of modes) {
      const m = runs[mode];
      const v = m.views[m.views.length - 1]!;
      r.points.push({
        mode,
        label: mode === 'none' ? 'none' : `${o.policies} policies`,
        policies: mode === 'none' ? 0 : o.policies,
        conn: {
          runs: m.conn,
          rate: spread(m.conn.map((x) => x.rate)),
          connect_p50_us: spread(m.conn.map((x) => x.connect_p50_us)),
          connect_p99_us: spread(m.conn.map((x) => x.connect_p99_us)),
          cpu_us_per_conn: spread(m.conn.map((x) => x.cpu_us_per_conn)),
          errors: m.conn.reduce((a, x) => a + x.errors, 0),
        },
        rr: { runs: m.rr, p50_us: spread(m.rr.map((x) => x.p50_us)), p99_us: spread(m.rr.map((x) => x.p99_us)) },
        switchMs: switchMs[mode],
        endpoints: podEndpoints(v),
        ipcache: v.ipcache,
      });
      o.log(
        `bench: policy, ${mode === 'none' ? 'none' : `${o.policies} policies`}: ${m.conn.map((x) => Math.round(x.rate)).join(' / ')} conn/s, rr p50 ${m.rr.map((x) => x.p50_us.toFixed(1)).join(' / ')} µs, p99 ${m.rr.map((x) => x.p99_us.toFixed(1)).join(' / ')} µs`,
      );
    }
    const [none, pol] = r.points as [PolicyPoint, PolicyPoint];
    r.ratio = {
      conn_rate: pol.conn.rate.median / none.conn.rate.median,
      rr_p50: pol.rr.p50_us.median / none.rr.p50_us.median,
      rr_p99: pol.rr.p99_us.median / none.rr.p99_us.median,
    };
    const paired = (f: (p: PolicyPoint, k: number) => number) =>
      spread(none.conn.runs.map((_, k) => f(pol, k) / f(none, k))).median;
    r.pairedRatio = {
      conn_rate: paired((p, k) => p.conn.runs[k]!.rate),
      rr_p50: paired((p, k) => p.rr.runs[k]!.p50_us),
      rr_p99: paired((p, k) => p.rr.runs[k]!.p99_us),
    };

    // Apply time of many policies: from nothing in force to all of them. np-0000 (bench
    // namespace, selects both pods) is written as a file of its own, the rest as one file, both
    // renamed in back to back.
    await switchTo('none');
    // Nothing is measured alongside from here on: the agent may use every CPU (as for the full
    // sync of services).
    if (o.serverCpus && agent.pid !== undefined)
      execFileSync('taskset', ['-a', '-p', '-c', `0-${availableParallelism() - 1}`, String(agent.pid)], {
        stdio: 'ignore',
      });
    const n = o.applyPolicies;
    const extraPorts: Record<number, number | undefined> = {};
    const policiesNow = () => clusterPolicies(n, (i) => extraPorts[i]);
    const writeCluster = (which: 'single' | 'rest' | 'both') => {
      const all = policiesNow();
      if (which !== 'rest') writeAtomically(agent.manifestsDir, 'edited-policy.yaml', docs(all.slice(0, 1)));
      if (which !== 'single') writeAtomically(agent.manifestsDir, 'cluster-policies.yaml', docs(all.slice(1)));
    };
    const many = policiesNow();
    const manyKeys = many.map(key).sort();
    const logFrom = agent.log.length;
    const r0 = (await view()).revision;
    let polls = 0;
    const t0 = performance.now();
    writeCluster('both');
    let applied: PolicyStatus | undefined;
    while (performance.now() - t0 < APPLY_TIMEOUT_MS) {
      polls++;
      const v = await view().catch((e: Error) => e.message);
      if (
        typeof v !== 'string' &&
        v.revision > r0 &&
        v.policies.length === manyKeys.length &&
        JSON.stringify([...v.policies].sort()) === JSON.stringify(manyKeys)
      ) {
        applied = v;
        break;
      }
      await sleep(POLL_MS);
    }
    const applyMs = performance.now() - t0;
    if (!applied) {
      const lv = lastView as PolicyStatus | string; // assigned by view()
      const got = typeof lv === 'string' ? lv : `${lv.policies.length} policies`;
      throw new PolicyBenchError(
        `the agent did not list all ${n} policies within ${APPLY_TIMEOUT_MS / 1000} s of the write (last answer: ${got})`,
      );
    }
    current = undefined; // neither state of the measured case
    r.apply = {
      policies: n,
      namespaces: new Set(many.map((p) => key(p).split('/')[0])).size,
      selectingThePods: many.filter((p) => key(p).startsWith(`${NS}/`)).length,
      ms: applyMs,
      polls,
      ...(applied.lastWrite && { lastWrite: applied.lastWrite }),
      revision: applied.revision,
      endpoints: podEndpoints(applied),
      agentLines: agent.log
        .slice(logFrom)
        .split('\n')
        .filter((l) => /policy synced/.test(l)),
    };
    const pe = podEndpoints(applied);
    if (!pe.every((e) => e.ingress === 'isolated' && e.egress === 'isolated' && e.entries > 0)) {
      r.warnings.push(
        `with the ${n} policies the pods are not both isolated with entries: ${pe.map(describe).join(', ')}`,
      );
    }
    o.log(
      `bench: policy: ${n} policies written → listed by /v1/policy in ${applyMs.toFixed(0)} ms (${polls} polls); lastWrite ${JSON.stringify(applied.lastWrite ?? null)}`,
    );

    // One policy edited with the many present: a port added to (then taken out of) the first
    // ingress rule (from tier=client) of a policy that selects both pods, so the server's
    // entries change. Two kinds, alternating: np-0000 in its own file, np-0005 inside the file
    // of the rest (the agent reads that whole file again).
    const kinds = [
      {
        index: 0,
        file: 'single' as const,
        what: `${NS}/np-0000 in a file of its own`,
        times: [] as number[],
        last: undefined as PolicyStatus['lastWrite'],
      },
      {
        index: 5,
        file: 'rest' as const,
        what: `${NS}/np-0005 inside the file of ${n - 1}`,
        times: [] as number[],
        last: undefined as PolicyStatus['lastWrite'],
      },
    ];
    let prev = applied;
    for (let k = 0; k < o.edits * kinds.length; k++) {
      await sleep(50);
      const kind = kinds[k % kinds.length]!;
      const serverEntries = prev.endpoints.find((e) => isPod(e, 'server'))?.entries;
      extraPorts[kind.index] = extraPorts[kind.index] === undefined ? 40000 + k : undefined;
      const t1 = performance.now();
      writeCluster(kind.file);
      let done: PolicyStatus | undefined;
      while (performance.now() - t1 < APPLY_TIMEOUT_MS) {
        const v = await view().catch((e: Error) => e.message);
        if (
          typeof v !== 'string' &&
          v.revision > prev.revision &&
          v.endpoints.find((e) => isPod(e, 'server'))?.entries !== serverEntries
        ) {
          done = v;
          break;
        }
        await sleep(POLL_MS);
      }
      if (!done)
        throw new PolicyBenchError(
          `edit of ${kind.what} (${extraPorts[kind.index] === undefined ? 'a port taken out' : `port ${extraPorts[kind.index]} added`}) did not change the server's entries within ${APPLY_TIMEOUT_MS / 1000} s`,
        );
      kind.times.push(performance.now() - t1);
      kind.last = done.lastWrite;
      prev = done;
    }
    if (o.edits > 0) {
      r.edits = kinds.map((kd) => ({
        edits: kd.times.length,
        what: kd.what,
        p50Ms: percentile(kd.times, 0.5),
        maxMs: Math.max(...kd.times),
        runsMs: kd.times,
        ...(kd.last && { lastWrite: kd.last }),
      }));
      for (const kd of kinds)
        o.log(
          `bench: policy: edit of ${kd.what} → applied, ${n} present: ${kd.times.map((t) => t.toFixed(0)).join(' / ')} ms`,
        );
    }
    // The client → server traffic is allowed by the many policies too (np-0000 and others).
    await loadgen<RrRun>(['rr', '--target', target, '--count', '20', '--warmup', '0', '--timeout-ms', '1000'], 15_000);
    return r;
  } catch (e) {
    r.status = e instanceof PolicyBenchError || agent.pid !== undefined ? 'failed' : 'unavailable';
    r.reason = (e as Error).message.split('\n')[0]!;
    r.lastView = lastView;
    r.agentLogTail = agent.log.trim().split('\n').slice(-30);
    return r;
  } finally {
    r.agentWarnings = agent.log
      .split('\n')
      .filter((l) => /level=(warn|error)/.test(l))
      .slice(0, 50);
    r.agentLog = agent.log
      .split('\n')
      .filter((l) => l && !/msg="program ready"/.test(l))
      .slice(-500);
    for (const { box, containerId, name } of sandboxes.reverse()) {
      const del = await cni(world, {
        command: 'DEL',
        containerId,
        netns: box.path,
        ifName: 'eth0',
        args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${NS};K8S_POD_NAME=${name}`,
        config: { cniVersion: '1.1.0', name: 'weft', type: 'weft-cni', agentSocket: agent.socket, mtu: 1500 },
      }).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
      if (del.code !== 0) r.warnings.push(`CNI DEL ${containerId}: ${(del.stdout + del.stderr).trim().split('\n')[0]}`);
    }
    await Promise.all(procs.map((p) => p.stop()));
    await agent.stop();
    try {
      await world.dispose();
    } catch (e) {
      r.warnings.push(`teardown: ${(e as Error).message}`);
    }
    r.seconds = (performance.now() - started) / 1000;
  }
}

function describe(e: PolicyStatus['endpoints'][number] | undefined): string {
  if (!e) return 'not listed';
  return `${e.pod ?? `endpoint ${e.endpoint}`} identity ${e.identity}, ingress ${e.ingress}, egress ${e.egress}, ${e.entries} entries`;
}

/** A pod made by the CNI plugin has a default route via the node; the bench's pods get routes
 *  to the pod prefixes only, through the same gateway (TESTBED: no default route in a pod's
 *  namespace), so nothing they send can follow a route out of the machine. */
function confinePod(box: Sandbox, ips: { address: string; gateway?: string }[]): void {
  const ip = (...args: string[]) =>
    execFileSync('ip', ['-n', box.name, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (const [v6, prefix] of [
    [false, POD_CIDR4],
    [true, POD_CIDR6],
  ] as const) {
    const gw = ips.find((i) => i.address.includes(':') === v6 && i.gateway)?.gateway;
    const fam = v6 ? ['-6'] : ['-4'];
    if (gw) ip(...fam, 'route', 'replace', prefix, 'via', gw, 'dev', 'eth0');
    try {
      ip(...fam, 'route', 'del', 'default');
    } catch {
      /* none of this family */
    }
  }
  const left = execFileSync('ip', ['-n', box.name, '-j', 'route', 'show', 'default'], { encoding: 'utf8' }).trim();
  const left6 = execFileSync('ip', ['-n', box.name, '-6', '-j', 'route', 'show', 'default'], {
    encoding: 'utf8',
  }).trim();
  if ((left && left !== '[]') || (left6 && left6 !== '[]'))
    throw new PolicyBenchError(`pod namespace ${box.name} still has a default route: ${left} ${left6}`);
}

/** Objects as a multi-document YAML file (JSON is YAML). */
function docs(objs: object[]): string {
  return `${objs.map((x) => JSON.stringify(x)).join('\n---\n')}\n`;
}

function writeAtomically(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits (at most 3 s) until the process used no CPU for 150 ms. */
async function agentIdle(pid: number | undefined): Promise<void> {
  const deadline = performance.now() + 3000;
  let last = procCpuSeconds(pid);
  let quietSince = performance.now();
  while (last !== undefined && performance.now() < deadline) {
    await sleep(50);
    const now = procCpuSeconds(pid);
    if (now !== last) {
      last = now;
      quietSince = performance.now();
    } else if (performance.now() - quietSince >= 150) return;
  }
}

/** User + system CPU seconds of a process (from /proc/PID/stat, 100 ticks a second). */
function procCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Output

const int = (x: number) => Math.round(x).toLocaleString('en-US');
const us = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const trio = (s: Spread, f: (x: number) => string) => `${f(s.min)} / ${f(s.median)} / ${f(s.max)}`;

function entriesOf(p: { endpoints: PolicyStatus['endpoints'] }): string {
  const of = (name: string) => p.endpoints.find((e) => e.pod === `${NS}/${name}`);
  const c = of('client');
  const s = of('server');
  const iso = (e: typeof c) =>
    e ? `${e.ingress === 'isolated' ? 'I' : '-'}${e.egress === 'isolated' ? 'E' : '-'} ${e.entries}` : 'n/a';
  return `client ${iso(c)}, server ${iso(s)}`;
}

/** One line for the progress log. */
export function policySummary(r: PolicyResult): string {
  if (r.status !== 'ok') return `${r.status === 'unavailable' ? 'unavailable' : 'FAILED'} (${r.reason ?? 'unknown'})`;
  const parts: string[] = [];
  if (r.ratio)
    parts.push(
      `×none: conn ${r.ratio.conn_rate.toFixed(3)}x, rr p50 ${r.ratio.rr_p50.toFixed(3)}x, rr p99 ${r.ratio.rr_p99.toFixed(3)}x`,
    );
  if (r.pairedRatio)
    parts.push(
      `run by run: conn ${r.pairedRatio.conn_rate.toFixed(3)}x, rr p50 ${r.pairedRatio.rr_p50.toFixed(3)}x, rr p99 ${r.pairedRatio.rr_p99.toFixed(3)}x`,
    );
  if (r.apply) parts.push(`${int(r.apply.policies)} policies applied in ${r.apply.ms.toFixed(0)} ms`);
  for (const e of r.edits ?? []) parts.push(`edit of ${e.what} p50 ${e.p50Ms.toFixed(0)} ms`);
  return parts.join('; ');
}

/** The section of the bench's table. */
export function policyReport(r: PolicyResult): string {
  const out: string[] = [];
  const where = r.pods
    ? ` ${r.pods.client} → ${r.pods.server}:${SERVER_PORT}, both pods made by weft-cni; ${int(r.pods.remote)} remote pods in ${r.pods.namespaces} namespaces known`
    : '';
  out.push(`NetworkPolicy (lxc programs on both pods' veths):${where}`);
  if (r.status !== 'ok') {
    out.push(`  ${r.status === 'unavailable' ? 'unavailable' : 'FAILED'}: ${r.reason ?? 'unknown'}`);
    if (r.status === 'failed') {
      const v = r.lastView;
      if (v !== undefined)
        out.push(
          `  last /v1/policy: ${typeof v === 'string' ? v : JSON.stringify({ revision: v.revision, policies: v.policies.length, endpoints: v.endpoints, ipcache: v.ipcache, lastWrite: v.lastWrite })}`,
        );
      for (const l of r.agentLogTail ?? []) out.push(`  agent: ${l}`);
    }
  }
  if (r.points.length > 0) {
    const none = r.points.find((p) => p.mode === 'none');
    out.push(
      '  ' +
        'policies'.padEnd(14) +
        'new conn/s  min / median / max'.padStart(34) +
        '×none'.padStart(8) +
        'CPU µs/conn'.padStart(13) +
        'connect p99'.padStart(13) +
        'rr p50 µs  min / med / max'.padStart(29) +
        'rr p99 µs  min / med / max'.padStart(29) +
        '×none p50/p99'.padStart(15) +
        '   isolation, entries (I ingress, E egress)',
    );
    for (const p of r.points) {
      const ratio = (a: number, b: number | undefined) =>
        b === undefined || p === none ? '-' : `${(a / b).toFixed(2)}x`;
      out.push(
        '  ' +
          p.label.padEnd(14) +
          trio(p.conn.rate, int).padStart(34) +
          ratio(p.conn.rate.median, none?.conn.rate.median).padStart(8) +
          us(p.conn.cpu_us_per_conn.median).padStart(13) +
          `${us(p.conn.connect_p99_us.median)} µs`.padStart(13) +
          trio(p.rr.p50_us, us).padStart(29) +
          trio(p.rr.p99_us, us).padStart(29) +
          (p === none
            ? '-'
            : `${ratio(p.rr.p50_us.median, none?.rr.p50_us.median)} / ${ratio(p.rr.p99_us.median, none?.rr.p99_us.median)}`
          ).padStart(15) +
          `   ${entriesOf(p)}`,
      );
    }
  }
  if (r.pairedRatio) {
    const q = r.pairedRatio;
    out.push(
      `  ×none run by run (median of the ratios of runs taken back to back): conn ${q.conn_rate.toFixed(2)}x, rr p50 ${q.rr_p50.toFixed(2)}x, rr p99 ${q.rr_p99.toFixed(2)}x`,
    );
  }
  const pol = r.points.find((p) => p.mode === 'policies');
  const off = r.points.find((p) => p.mode === 'none');
  if (pol && pol.switchMs.length > 0) {
    const f = (xs: number[]) =>
      `p50 ${percentile(xs, 0.5).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms (${xs.length}×)`;
    out.push(
      `  switching between the two (file renamed in / removed → /v1/policy shows it): none → ${pol.label} ${f(pol.switchMs)}${off && off.switchMs.length ? `; back to none ${f(off.switchMs)}` : ''}`,
    );
  }
  if (r.enforcement)
    out.push(
      `  enforcement: a connect to port ${r.enforcement.port} (no rule allows it) ${r.enforcement.withPolicy} with the policies, was ${r.enforcement.without} without`,
    );
  if (r.apply) {
    const a = r.apply;
    const w = a.lastWrite;
    out.push(
      `  apply ${int(a.policies)} policies at once (${a.namespaces} namespaces, ${a.selectingThePods} selecting the two pods; two files renamed in back to back): ` +
        `listed by /v1/policy after ${a.ms.toFixed(0)} ms` +
        (w
          ? `; agent's write: ${w.ms.toFixed(1)} ms, ${int(w.entries)} allow entries, ${int(w.ipcache)} ipcache entries (${int(w.written)} written, ${int(w.deleted)} deleted)`
          : '') +
        `; ${entriesOf(a)}`,
    );
  }
  for (const e of r.edits ?? []) {
    const w = e.lastWrite;
    out.push(
      `  edit one policy, ${r.apply ? int(r.apply.policies) : 'the'} present (${e.what}; ${e.edits} edits, a port added / taken out): ` +
        `p50 ${e.p50Ms.toFixed(0)} ms, max ${e.maxMs.toFixed(0)} ms` +
        (w ? `; agent's last write ${w.ms.toFixed(1)} ms (${int(w.written)} written, ${int(w.deleted)} deleted)` : ''),
    );
  }
  if (r.agentCpuSeconds !== undefined)
    out.push(`  agent CPU while traffic was measured: ${r.agentCpuSeconds.toFixed(2)} s`);
  if (r.agentWarnings.length > 0) {
    out.push(`  agent warnings/errors (${r.agentWarnings.length}):`);
    for (const l of r.agentWarnings.slice(0, 10)) out.push(`    ${l}`);
  }
  for (const w of r.warnings) out.push(`  warning: ${w}`);
  out.push(
    `  (${r.seconds.toFixed(0)} s; ×none: medians over runs, conn higher is better, rr lower is better; p99 is noisy on this machine)`,
  );
  return out.join('\n');
}
