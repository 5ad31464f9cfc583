// `make bench`: new-connection rate and request/response latency from a client pod to three
// backend pods through a routing node, for
//   (a) direct      the backend pod IPs themselves (the baseline),
//   (b) weft        the ClusterIP through Weft's socket-level load balancer,
//   (c) iptables    the ClusterIP through kube-proxy-shaped iptables rules (measured service last),
//   (d) nftables    the ClusterIP through kube-proxy-shaped nftables rules,
// with 1, 1,000 and 10,000 services installed (3 endpoints each; fillers point at unused
// addresses). At each size every path gets a fresh world of its own (test/harness/world.ts:
// no TIME_WAIT or conntrack state shared between paths), all are set up side by side, and
// their runs are interleaved round robin. Prints a table with ratios against (a) and writes
// build/bench/results.json. Goals are reported, not asserted.
//
// Knobs (environment, or --name=value flags): WEFT_BENCH_SIZES=1,1000,10000
// WEFT_BENCH_MODES=direct,weft,iptables,nftables WEFT_BENCH_RUNS=5 WEFT_BENCH_CONN_SECONDS=2
// WEFT_BENCH_CONCURRENCY=2 WEFT_BENCH_RR_COUNT=20000 WEFT_BENCH_SYNC=1
// WEFT_BENCH_CLIENT_CPU / WEFT_BENCH_SERVER_CPU (CPU lists for taskset; "" = no pinning),
// WEFT_BENCH_WEFTD / WEFT_BENCH_WEFT (agent and CLI programs instead of bin/weftd, bin/weft),
// WEFT_BENCH_K8S=1 (Kubernetes mode against the test API server), WEFT_BENCH_K8S_CHANGES=200,
// WEFT_BENCH_POLICY=1 (NetworkPolicy, bench/policy.ts: 100 policies on two CNI pods against none,
// 1,000 applied at once), WEFT_BENCH_POLICY_COUNT=100, WEFT_BENCH_POLICY_APPLY=1000,
// WEFT_BENCH_POLICY_PODS=1000 (remote pods), WEFT_BENCH_POLICY_EDITS=6 (of each kind).
// WEFT_BENCH_FLOWS=1 (flow events into the observer, bench/flows.ts), WEFT_BENCH_FLOWS_SECONDS=2,
// WEFT_BENCH_FLOWS_MAX=4000000 (the highest rate tried, events a second).
// WEFT_BENCH_L7=1 (L7 proxies, bench/l7.ts: h2load through weft-proxy, HAProxy, nginx and two
// HAProxy hops against direct), WEFT_BENCH_L7_RUNS=3, WEFT_BENCH_L7_SECONDS=10 (a fixed-rate run),
// WEFT_BENCH_L7_SAT_SECONDS=5 (a saturation run), WEFT_BENCH_L7_RATE=1000 (requests/s, fixed rate),
// WEFT_BENCH_L7_CLIENTS=10 (h2load connections, both kinds of run),
// WEFT_BENCH_L7_IDLE_CONNECTIONS=2000 (held open against each proxy, memory per connection; 0: skip),
// WEFT_BENCH_L7_PATHS=direct,weft-proxy,haproxy,nginx,haproxy-2hop, WEFT_BENCH_L7_PROXY_CPU (the
// proxies' CPU list; the server CPU unless given), WEFT_BENCH_WEFT_PROXY (environment only:
// the program instead of bin/weft-proxy), WEFT_BENCH_WEFT_PROXY_ARGS (environment only: extra
// arguments for it, space-separated).
// WEFT_BENCH_MODES= (empty) measures no paths: with the other parts off, one part alone.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cgroup2Root } from '../src/datapath/pins.js';
import { World } from '../test/harness/world.js';
import { fillerServices, iptablesRestore, nftScript, type KubeService, type RuleOptions } from './kube-proxy-rules.js';
import { measureApplyLatency, type ApplyLatency } from './apply-latency.js';
import { measureCniLatency, type CniLatency } from './cni-latency.js';
import { measureKubernetes, type KubernetesResult } from './k8s-sync.js';
import { measurePolicy, policyReport, policySummary, type PolicyResult } from './policy.js';
import { flowsReport, measureFlows, type FlowResult } from './flows.js';
import { L7_PATHS, l7Goals, l7Report, l7Summary, measureL7, type L7PathName, type L7Result } from './l7.js';
import { writeManifests, type ManifestService } from './manifests.js';
import { POD_CIDR, SERVICE_CIDR, createTopology, createWorkDir, watch, type Proc, type Topology } from './topology.js';
import { logfmtFields, startWeft, weftUnavailableReason, type WeftAgent } from './weft-agent.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const LOADGEN = join(REPO, 'build', 'bin', 'loadgen');
const ECHO = join(REPO, 'build', 'bin', 'echo-server');
const RESULTS = join(REPO, 'build', 'bench', 'results.json');

type Mode = 'direct' | 'weft' | 'iptables' | 'nftables';
const ALL_MODES: Mode[] = ['direct', 'weft', 'iptables', 'nftables'];

// ---------------------------------------------------------------------------------------------
// Configuration

function knob(name: string, def: string): string {
  const flag = `--${name
    .toLowerCase()
    .replace(/^weft_bench_/, '')
    .replace(/_/g, '-')}=`;
  const arg = process.argv.find((a) => a.startsWith(flag));
  if (arg !== undefined) return arg.slice(flag.length);
  return process.env[name] ?? def;
}

function intKnob(name: string, def: number, lo: number, hi: number): number {
  const v = Number(knob(name, String(def)));
  if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`${name}: expected a number in [${lo}, ${hi}]`);
  return v;
}

const cpus = availableParallelism();
const cfg = {
  sizes: knob('WEFT_BENCH_SIZES', '1,1000,10000')
    .split(',')
    .map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 1 || n > 30000) throw new Error(`WEFT_BENCH_SIZES: bad size ${s}`);
      return n;
    }),
  modes: knob('WEFT_BENCH_MODES', ALL_MODES.join(','))
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean)
    .map((m) => {
      const t = m as Mode;
      if (!ALL_MODES.includes(t)) throw new Error(`WEFT_BENCH_MODES: unknown mode ${m}`);
      return t;
    }),
  runs: intKnob('WEFT_BENCH_RUNS', 5, 1, 20),
  connSeconds: intKnob('WEFT_BENCH_CONN_SECONDS', 2, 0.2, 60),
  warmupSeconds: 1,
  concurrency: intKnob('WEFT_BENCH_CONCURRENCY', 2, 1, 64),
  rrCount: intKnob('WEFT_BENCH_RR_COUNT', 20000, 100, 10_000_000),
  rrWarmup: 1000,
  sync: knob('WEFT_BENCH_SYNC', '1') !== '0',
  syncServices: intKnob('WEFT_BENCH_SYNC_SERVICES', 10000, 1, 30000),
  syncBackendsPerService: intKnob('WEFT_BENCH_SYNC_BACKENDS', 10, 1, 100),
  cniPods: intKnob('WEFT_BENCH_CNI_PODS', 50, 0, 250),
  k8s: knob('WEFT_BENCH_K8S', '1') !== '0',
  k8sChanges: intKnob('WEFT_BENCH_K8S_CHANGES', 200, 10, 5000),
  policy: knob('WEFT_BENCH_POLICY', '1') !== '0',
  policyCount: intKnob('WEFT_BENCH_POLICY_COUNT', 100, 1, 1000),
  policyApply: intKnob('WEFT_BENCH_POLICY_APPLY', 1000, 10, 10000),
  policyPods: intKnob('WEFT_BENCH_POLICY_PODS', 1000, 0, 2000),
  policyEdits: intKnob('WEFT_BENCH_POLICY_EDITS', 6, 0, 100),
  flows: knob('WEFT_BENCH_FLOWS', '1') !== '0',
  flowsSeconds: intKnob('WEFT_BENCH_FLOWS_SECONDS', 2, 0.5, 60),
  flowsMax: intKnob('WEFT_BENCH_FLOWS_MAX', 4_000_000, 125_000, 64_000_000),
  l7: knob('WEFT_BENCH_L7', '1') !== '0',
  l7Runs: intKnob('WEFT_BENCH_L7_RUNS', 3, 1, 20),
  l7Seconds: intKnob('WEFT_BENCH_L7_SECONDS', 10, 2, 300),
  l7SatSeconds: intKnob('WEFT_BENCH_L7_SAT_SECONDS', 5, 1, 300),
  l7Rate: intKnob('WEFT_BENCH_L7_RATE', 1000, 10, 1_000_000),
  l7Clients: intKnob('WEFT_BENCH_L7_CLIENTS', 10, 1, 1000),
  l7IdleConnections: intKnob('WEFT_BENCH_L7_IDLE_CONNECTIONS', 2000, 0, 10_000),
  l7Paths: knob('WEFT_BENCH_L7_PATHS', L7_PATHS.join(','))
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean)
    .map((m) => {
      const t = m as L7PathName;
      if (!L7_PATHS.includes(t)) throw new Error(`WEFT_BENCH_L7_PATHS: unknown path ${m} (${L7_PATHS.join(', ')})`);
      return t;
    }),
  clientCpus: knob('WEFT_BENCH_CLIENT_CPU', cpus >= 2 ? '1' : ''),
  serverCpus: knob('WEFT_BENCH_SERVER_CPU', cpus >= 2 ? '0' : ''),
};
/** The L7 proxies' CPUs: the servers' unless given (the client keeps a CPU of its own). */
const l7ProxyCpus = knob('WEFT_BENCH_L7_PROXY_CPU', cfg.serverCpus);
const WEFT_PROXY = process.env.WEFT_BENCH_WEFT_PROXY ?? join(REPO, 'bin', 'weft-proxy');
const WEFT_PROXY_ARGS = (process.env.WEFT_BENCH_WEFT_PROXY_ARGS ?? '').split(/\s+/).filter(Boolean);

const CLIENT_IP = '10.244.0.10';
const BACKEND_IPS = ['10.244.1.1', '10.244.1.2', '10.244.1.3'];
const TARGET_PORT = 8080;
const SERVICE: ManifestService = {
  namespace: 'bench',
  name: 'echo',
  portName: 'http',
  clusterIP: '10.96.0.10',
  port: 80,
  proto: 'tcp',
  targetPort: TARGET_PORT,
  endpoints: BACKEND_IPS.map((ip) => ({ ip, port: TARGET_PORT })),
};
const RULE_OPTS: RuleOptions = { clusterCIDR: POD_CIDR, serviceCIDRs: [SERVICE_CIDR] };

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Runs a command on the host (tool checks and versions), throws with its stderr on failure. */
function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim().split('\n')[0] || err.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics

interface Spread {
  min: number;
  median: number;
  max: number;
}

function spread(xs: number[]): Spread | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]! };
}

// ---------------------------------------------------------------------------------------------
// loadgen

interface ConnRun {
  count: number;
  rate: number;
  errors: number;
  first_error: string | null;
  connect_p50_us: number;
  connect_p99_us: number;
  txn_p50_us: number;
  txn_p99_us: number;
  /** The client's own CPU time per connection (includes the forward path's softirq work). */
  cpu_us_per_conn: number;
  [k: string]: unknown;
}

interface RrRun {
  p50_us: number;
  p99_us: number;
  mean_us: number;
  peer: string;
  [k: string]: unknown;
}

async function loadgen<T>(topo: Topology, args: string[], timeoutMs: number): Promise<T> {
  // In the world's cgroup, so Weft's socket programs see its connects (the other paths ignore it).
  const r = await topo.world.run(topo.client, [LOADGEN, ...args], {
    inCgroup: true,
    timeoutMs,
    ...(cfg.clientCpus ? { cpus: cfg.clientCpus } : {}),
  });
  const line = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (r.code !== 0 || !line) {
    const why = r.timedOut ? 'timed out' : (r.stderr.trim().split('\n').pop() ?? `exit ${r.signal ?? r.code}`);
    throw new Error(`loadgen ${args[0]}: ${why || `exit ${r.signal ?? r.code}`}`);
  }
  return JSON.parse(line) as T;
}

function connArgs(targets: string[], seconds: number): string[] {
  return [
    'conn',
    ...targets.flatMap((t) => ['--target', t]),
    '--duration',
    String(seconds),
    '--concurrency',
    String(cfg.concurrency),
    '--size',
    '64',
  ];
}

// ---------------------------------------------------------------------------------------------
// Paths under test

interface PathSetup {
  label: string;
  connTargets: string[];
  rrTarget: string;
  setupSeconds?: number;
  setupWhat?: string;
  /** The agent's "datapath synced" log fields (weft only). */
  weftSync?: Record<string, string>;
  notes: string[];
  teardown(): Promise<string[]>;
}

interface Ctx {
  work: string;
  iptablesRestoreCmd: string;
  iptablesFlavor: string;
  services: Map<number, KubeService[]>;
}

const VIP = `${SERVICE.clusterIP}:${SERVICE.port}`;

function servicesFor(ctx: Ctx, size: number): KubeService[] {
  let s = ctx.services.get(size);
  if (!s) {
    // Fillers first: the measured service is the last rule in KUBE-SERVICES.
    s = [
      ...fillerServices({
        count: size - 1,
        firstClusterIP: '10.97.0.1',
        firstEndpointIP: '10.244.128.1',
        endpointsPerService: 3,
        port: 80,
        targetPort: TARGET_PORT,
      }),
      SERVICE,
    ];
    ctx.services.set(size, s);
  }
  return s;
}

/** User + system CPU seconds a process has used (from /proc/PID/stat, 100 ticks a second). */
function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Runs a command in the world's node namespace; returns its wall time in seconds. */
async function timed(world: World, argv: string[], timeoutMs: number, what: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await world.run('node', argv, { timeoutMs });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.code !== 0) {
    const err = r.timedOut
      ? `timed out after ${timeoutMs / 1000} s`
      : r.stderr.trim().split('\n').slice(0, 3).join(' | ') || `exit ${r.signal ?? r.code}`;
    throw new Error(`${what}: ${err}`);
  }
  return secs;
}

async function setupPath(mode: Mode, size: number, topo: Topology, ctx: Ctx): Promise<PathSetup> {
  const none = async (): Promise<string[]> => [];
  switch (mode) {
    case 'direct':
      return {
        label: 'direct (pod IP)',
        connTargets: BACKEND_IPS.map((ip) => `${ip}:${TARGET_PORT}`),
        rrTarget: `${BACKEND_IPS[0]}:${TARGET_PORT}`,
        notes: [],
        teardown: none,
      };
    case 'iptables': {
      const file = join(ctx.work, `iptables-${size}.rules`);
      if (!existsSync(file)) writeFileSync(file, iptablesRestore(servicesFor(ctx, size), RULE_OPTS));
      const secs = await timed(topo.world, [ctx.iptablesRestoreCmd, file], 120_000, ctx.iptablesRestoreCmd);
      return {
        label: `iptables (${ctx.iptablesFlavor})`,
        connTargets: [VIP],
        rrTarget: VIP,
        setupSeconds: secs,
        setupWhat: `${ctx.iptablesRestoreCmd} load`,
        notes: [],
        teardown: none, // the rules go with the node namespace
      };
    }
    case 'nftables': {
      const file = join(ctx.work, `nft-${size}.nft`);
      if (!existsSync(file)) writeFileSync(file, nftScript(servicesFor(ctx, size), RULE_OPTS));
      const secs = await timed(topo.world, ['nft', '-f', file], 600_000, 'nft -f');
      return {
        label: 'nftables',
        connTargets: [VIP],
        rrTarget: VIP,
        setupSeconds: secs,
        setupWhat: 'nft -f load',
        notes: [],
        teardown: none, // the table goes with the node namespace
      };
    }
    case 'weft': {
      const dir = join(ctx.work, `manifests-${size}`);
      if (!existsSync(dir)) {
        const svcs = servicesFor(ctx, size).map((s) => ({ ...s, targetPort: TARGET_PORT }));
        writeManifests(dir, svcs);
      }
      const agent: WeftAgent = await startWeft({
        repoRoot: REPO,
        manifestsDir: dir,
        world: topo.world,
        ...(cfg.serverCpus ? { cpus: cfg.serverCpus } : {}),
        expectClusterIP: SERVICE.clusterIP,
        readyTimeoutMs: 30_000 + size * 3,
        log,
      });
      const synced = await agent.waitSynced(5_000);
      const fields = synced ? logfmtFields(synced.line) : undefined;
      const ms = fields?.['ms'];
      const cpu0 = procCpuSeconds(agent.proc.pid);
      const wall0 = Date.now();
      return {
        label: 'weft (socket LB)',
        connTargets: [VIP],
        rrTarget: VIP,
        setupSeconds: agent.readySeconds,
        setupWhat: `agent start → ready${ms !== undefined ? ` (map sync ${ms} ms)` : ` (${agent.readyBy})`}`,
        ...(fields ? { weftSync: fields } : {}),
        notes: [],
        teardown: async () => {
          const cpu1 = procCpuSeconds(agent.proc.pid);
          const warnings: string[] = [];
          if (cpu0 !== undefined && cpu1 !== undefined) {
            const used = cpu1 - cpu0;
            const wall = (Date.now() - wall0) / 1000;
            if (used > 0.05 * wall)
              warnings.push(`weftd used ${used.toFixed(2)} s of CPU during the ${wall.toFixed(0)} s it was measured`);
          }
          return [...warnings, ...(await agent.stop())];
        },
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One measured point

interface Point {
  size: number;
  mode: Mode;
  label: string;
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  setupSeconds?: number;
  setupWhat?: string;
  weftSync?: Record<string, string>;
  conn?: {
    runs: ConnRun[];
    rate: Spread;
    connect_p50_us: Spread;
    connect_p99_us: Spread;
    cpu_us_per_conn: Spread;
    errors: number;
  };
  rr?: { runs: RrRun[]; p50_us: Spread; p99_us: Spread };
  /** Against direct at the same size: medians, and best run against best run. */
  ratio?: { conn_rate?: number; conn_rate_best?: number; rr_p50?: number };
  warnings: string[];
}

const LABELS: Record<Mode, string> = {
  direct: 'direct (pod IP)',
  weft: 'weft (socket LB)',
  iptables: 'iptables',
  nftables: 'nftables',
};

/** Every world the run made, for the final check that nothing of them is left. */
const worlds: World[] = [];

async function startEchoServers(topo: Topology): Promise<Proc[]> {
  const procs: Proc[] = [];
  try {
    for (const pod of topo.backends) {
      const child = topo.world.spawn(
        pod,
        [ECHO, pod.ipv4, String(TARGET_PORT), '--size', '64'],
        cfg.serverCpus ? { cpus: cfg.serverCpus } : {},
      );
      const p = watch(child, `echo-server ${pod.ipv4}`);
      procs.push(p);
      await p.waitForLine(/"event":"listening"/, 5000);
    }
  } catch (e) {
    await Promise.all(procs.map((p) => p.stop()));
    throw e;
  }
  return procs;
}

interface Slot {
  point: Point;
  topo: Topology;
  servers: Proc[];
  path?: PathSetup;
  connRuns: ConnRun[];
  rrRuns: RrRun[];
}

function newTopology(): Topology {
  const topo = createTopology({ clientIP: CLIENT_IP, backendIPs: BACKEND_IPS });
  worlds.push(topo.world);
  return topo;
}

/** Builds one path in a topology of its own and checks that a few ping-pongs get through. */
async function prepareSlot(mode: Mode, size: number, ctx: Ctx): Promise<Slot | Point> {
  const point: Point = { size, mode, label: LABELS[mode], status: 'ok', warnings: [] };
  const unavailable = mode === 'weft' ? 'unavailable' : 'failed';
  if (mode === 'weft') {
    const why = weftUnavailableReason(REPO);
    if (why) return { ...point, status: 'unavailable', reason: why };
  }
  const slot: Slot = { point, topo: newTopology(), servers: [], connRuns: [], rrRuns: [] };
  try {
    slot.servers = await startEchoServers(slot.topo);
    try {
      slot.path = await setupPath(mode, size, slot.topo, ctx);
    } catch (e) {
      throw Object.assign(new Error((e as Error).message), { status: unavailable });
    }
    point.label = slot.path.label;
    if (slot.path.setupSeconds !== undefined) point.setupSeconds = slot.path.setupSeconds;
    if (slot.path.setupWhat !== undefined) point.setupWhat = slot.path.setupWhat;
    if (slot.path.weftSync !== undefined) point.weftSync = slot.path.weftSync;
    // Probe: a few ping-pongs must work. For a ClusterIP this proves translation happened:
    // untranslated, the node has no route for the service CIDR.
    try {
      await loadgen<RrRun>(
        slot.topo,
        ['rr', '--target', slot.path.rrTarget, '--count', '20', '--warmup', '0', '--timeout-ms', '1000'],
        15_000,
      );
    } catch (e) {
      throw Object.assign(new Error(`probe ${slot.path.rrTarget}: ${(e as Error).message}`), { status: unavailable });
    }
    return slot;
  } catch (e) {
    point.status = (e as { status?: Point['status'] }).status ?? 'failed';
    point.reason = (e as Error).message;
    await releaseSlot(slot);
    return point;
  }
}

async function releaseSlot(slot: Slot): Promise<void> {
  if (slot.path) slot.point.warnings.push(...(await slot.path.teardown()));
  slot.path = undefined;
  await Promise.all(slot.servers.map((p) => p.stop()));
  slot.servers = [];
  try {
    await slot.topo.world.dispose();
  } catch (e) {
    slot.point.warnings.push(`teardown: ${(e as Error).message}`);
  }
}

/**
 * Measures every path at one size. All paths are set up side by side, each in a fresh
 * topology of its own (no TIME_WAIT or conntrack state shared between paths), and the runs
 * are interleaved round robin with a rotating start, so slow drift and noise from anything
 * else on the machine spread evenly over the paths instead of landing on one.
 */
async function measureSize(size: number, ctx: Ctx): Promise<Point[]> {
  const points: Point[] = [];
  const slots: Slot[] = [];
  try {
    for (const mode of cfg.modes) {
      const t0 = Date.now();
      const s = await prepareSlot(mode, size, ctx);
      if ('topo' in s) {
        slots.push(s);
        points.push(s.point);
        const setup =
          s.point.setupSeconds !== undefined ? `: ${s.point.setupWhat} ${s.point.setupSeconds.toFixed(2)} s` : '';
        log(
          `bench: ${fmtInt(size)} services, ${s.point.label} ready${setup} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
        );
      } else {
        points.push(s);
        log(`bench: ${fmtInt(size)} services, ${s.label}: ${s.status}: ${s.reason}`);
      }
    }
    const live = (): Slot[] => slots.filter((s) => s.point.status === 'ok');
    const guarded = async (s: Slot, f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (e) {
        s.point.status = 'failed';
        s.point.reason = (e as Error).message;
        log(`bench: ${fmtInt(size)} services, ${s.point.label}: failed: ${s.point.reason}`);
      }
    };
    for (const s of live()) {
      await guarded(s, async () => {
        await loadgen<ConnRun>(
          s.topo,
          connArgs(s.path!.connTargets, cfg.warmupSeconds),
          (cfg.warmupSeconds + 20) * 1000,
        );
      });
    }
    const connTimeout = (cfg.connSeconds + 20) * 1000;
    const rrTimeout = 30_000 + cfg.rrCount; // 1 ms a ping-pong is far beyond anything seen
    for (let r = 0; r < cfg.runs; r++) {
      const order = live();
      for (let k = 0; k < order.length; k++) {
        const s = order[(k + r) % order.length]!;
        await guarded(s, async () => {
          s.connRuns.push(await loadgen<ConnRun>(s.topo, connArgs(s.path!.connTargets, cfg.connSeconds), connTimeout));
        });
      }
    }
    for (let r = 0; r < cfg.runs; r++) {
      const order = live();
      for (let k = 0; k < order.length; k++) {
        const s = order[(k + r) % order.length]!;
        await guarded(s, async () => {
          s.rrRuns.push(
            await loadgen<RrRun>(
              s.topo,
              [
                'rr',
                '--target',
                s.path!.rrTarget,
                '--count',
                String(cfg.rrCount),
                '--warmup',
                String(cfg.rrWarmup),
                '--size',
                '64',
              ],
              rrTimeout,
            ),
          );
        });
      }
    }
    for (const s of live()) {
      const p = s.point;
      p.conn = {
        runs: s.connRuns,
        rate: spread(s.connRuns.map((x) => x.rate))!,
        connect_p50_us: spread(s.connRuns.map((x) => x.connect_p50_us))!,
        connect_p99_us: spread(s.connRuns.map((x) => x.connect_p99_us))!,
        cpu_us_per_conn: spread(s.connRuns.map((x) => x.cpu_us_per_conn))!,
        errors: s.connRuns.reduce((a, x) => a + x.errors, 0),
      };
      const firstErr = s.connRuns.find((x) => x.first_error)?.first_error;
      if (p.conn.errors > 0) p.warnings.push(`${p.conn.errors} connection errors (first: ${firstErr})`);
      p.rr = {
        runs: s.rrRuns,
        p50_us: spread(s.rrRuns.map((x) => x.p50_us))!,
        p99_us: spread(s.rrRuns.map((x) => x.p99_us))!,
      };
      log(
        `bench: ${fmtInt(size)} services, ${p.label}: ${s.connRuns.map((x) => fmtInt(x.rate)).join(' / ')} conn/s (client CPU ${s.connRuns.map((x) => fmtUs(x.cpu_us_per_conn)).join(' / ')} µs/conn), rr p50 ${s.rrRuns.map((x) => fmtUs(x.p50_us)).join(' / ')} µs`,
      );
      for (const w of p.warnings) log(`bench:   warning: ${w}`);
    }
  } finally {
    for (const s of slots) await releaseSlot(s);
  }
  return points;
}

// ---------------------------------------------------------------------------------------------
// Full sync of many services into Weft's maps

interface SyncResult {
  status: 'ok' | 'unavailable';
  reason?: string;
  services: number;
  backends: number;
  method: string;
  /** The writer's own time for the sync, from the "datapath synced" line (ms=...). */
  writerSeconds?: number;
  /** Agent spawn → "datapath synced" log line. */
  syncedSeconds?: number;
  /** Agent spawn → ready (first of: "datapath synced", the last service listed by the CLI). */
  readySeconds?: number;
  /** The "datapath synced" log fields. */
  fields?: Record<string, string>;
  /** `weft service list` showed the last service after the sync. */
  lastServiceListed?: boolean;
  /** The agent's first log lines (timestamps show where the time before the sync went). */
  agentLog?: string[];
  /** Manifest edit → kernel, with the sync's services present. */
  apply?: ApplyLatency[];
  warnings: string[];
}

async function measureSync(ctx: Ctx): Promise<SyncResult> {
  const n = cfg.syncServices;
  const per = cfg.syncBackendsPerService;
  const base: SyncResult = {
    status: 'ok',
    services: n,
    backends: n * per,
    method:
      'the lb-writer time the agent logs with "datapath synced" (ms=); also agent start → that line (Node start-up, reading and compiling the manifests, opening maps, and the write)',
    warnings: [],
  };
  const why = weftUnavailableReason(REPO);
  if (why) return { ...base, status: 'unavailable', reason: why };
  const dir = join(ctx.work, `manifests-sync-${n}x${per}`);
  // ClusterIPs from 10.100.0.1 and backends from 10.160.0.1 on: map entries only, never contacted.
  const svcs: ManifestService[] = fillerServices({
    count: n,
    firstClusterIP: '10.100.0.1',
    firstEndpointIP: '10.160.0.1',
    endpointsPerService: per,
    port: 80,
    targetPort: TARGET_PORT,
    namespace: 'sync',
  }).map((s) => ({ ...s, targetPort: TARGET_PORT }));
  writeManifests(dir, svcs);
  const last = svcs[svcs.length - 1]!;
  // Only the node namespace and the cgroup are needed: no pods.
  let world: World | undefined;
  let agent: WeftAgent | undefined;
  try {
    world = World.create({ kind: 'bench' });
    worlds.push(world);
    agent = await startWeft({
      repoRoot: REPO,
      manifestsDir: dir,
      world,
      // Not pinned: nothing is measured alongside, the agent may use every CPU.
      expectClusterIP: last.clusterIP,
      readyTimeoutMs: 120_000,
      log,
    });
    const synced = await agent.waitSynced(30_000);
    const r: SyncResult = { ...base, readySeconds: agent.readySeconds };
    if (synced !== undefined) {
      r.syncedSeconds = synced.seconds;
      r.fields = logfmtFields(synced.line);
      const ms = Number(r.fields['ms']);
      if (r.fields['ms'] !== undefined && Number.isFinite(ms)) r.writerSeconds = ms / 1000;
      for (const [k, want] of [
        ['services', n],
        ['backends', n * per],
      ] as const) {
        const got = r.fields[k];
        if (got !== undefined && Number(got) !== want) r.warnings.push(`agent reported ${k}=${got}, expected ${want}`);
      }
    } else {
      r.warnings.push('no "datapath synced" line seen; readySeconds is the time until the last service was listed');
    }
    r.agentLog = agent.proc.lines.slice(0, 40);
    try {
      r.apply = await measureApplyLatency({ manifestsDir: dir, bpfRoot: world.bpfRoot, services: svcs, changes: 20 });
    } catch (e) {
      r.warnings.push(`apply latency: ${(e as Error).message}`);
    }
    try {
      r.lastServiceListed = (await agent.listServices()).includes(last.clusterIP);
      if (!r.lastServiceListed) r.warnings.push(`weft service list does not show ${last.clusterIP}`);
    } catch (e) {
      r.warnings.push((e as Error).message);
    }
    return r;
  } catch (e) {
    return { ...base, status: 'unavailable', reason: (e as Error).message };
  } finally {
    if (agent) base.warnings.push(...(await agent.stop()));
    try {
      await world?.dispose();
    } catch (e) {
      base.warnings.push(`teardown: ${(e as Error).message}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

type K8sOutcome = ({ status: 'ok' } & KubernetesResult) | { status: 'unavailable'; reason: string };

/** Kubernetes mode: the sync's services served by the test API server (see k8s-sync.ts). */
async function measureK8s(): Promise<K8sOutcome> {
  const why = weftUnavailableReason(REPO);
  if (why) return { status: 'unavailable', reason: why };
  const svcs: ManifestService[] = fillerServices({
    count: cfg.syncServices,
    firstClusterIP: '10.100.0.1',
    firstEndpointIP: '10.160.0.1',
    endpointsPerService: cfg.syncBackendsPerService,
    port: 80,
    targetPort: TARGET_PORT,
    namespace: 'sync',
  }).map((s) => ({ ...s, targetPort: TARGET_PORT }));
  const world = World.create({ kind: 'bench' });
  worlds.push(world);
  try {
    return { status: 'ok', ...(await measureKubernetes({ world, services: svcs, changes: cfg.k8sChanges, log })) };
  } catch (e) {
    return { status: 'unavailable', reason: (e as Error).message.split('\n')[0]! };
  } finally {
    await world.dispose();
  }
}

function k8sText(k: K8sOutcome): string {
  if (k.status !== 'ok') return `unavailable (${k.reason})`;
  return [
    `first list + sync ${k.readySeconds.toFixed(2)} s`,
    `EndpointSlice change → kernel (${k.latency.changes} changes): p50 ${k.latency.p50Ms.toFixed(1)} ms, p99 ${k.latency.p99Ms.toFixed(1)} ms, max ${k.latency.maxMs.toFixed(1)} ms`,
    `agent RSS ${k.rssMb.toFixed(0)} MB after sync, ${k.rssAfterChangesMb.toFixed(0)} MB after the changes (peak ${k.peakRssMb.toFixed(0)} MB)`,
  ].join('; ');
}

// ---------------------------------------------------------------------------------------------
// Output

function syncText(s: SyncResult): string {
  const parts: string[] = [];
  if (s.writerSeconds !== undefined) parts.push(`lb-writer ${(s.writerSeconds * 1000).toFixed(0)} ms`);
  if (s.syncedSeconds !== undefined) parts.push(`agent start → "datapath synced" ${s.syncedSeconds.toFixed(2)} s`);
  else if (s.readySeconds !== undefined) parts.push(`agent start → last service listed ${s.readySeconds.toFixed(2)} s`);
  if (s.lastServiceListed !== undefined)
    parts.push(s.lastServiceListed ? 'last service listed by the CLI' : 'last service NOT listed');
  for (const a of s.apply ?? []) {
    parts.push(
      `\n  manifest edit → kernel, ${a.edit} (${a.changes} edits, ${s.services.toLocaleString('en-US')} services present): p50 ${a.p50Ms.toFixed(1)} ms, p99 ${a.p99Ms.toFixed(1)} ms`,
    );
  }
  return parts.join('; ');
}

function fmtInt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

function fmtUs(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lpad(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

/** Relative spread of a point's conn rates ((max - min) / median) beyond which it is flagged. */
const NOISY = 0.15;

function table(points: Point[]): string {
  const out: string[] = [];
  const head =
    pad('  path', 24) +
    lpad('new conn/s  min / median / max', 34) +
    lpad('×direct', 9) +
    lpad('CPU µs/conn', 13) +
    lpad('connect p99', 13) +
    lpad('rr p50 µs  min / med / max', 29) +
    lpad('×direct', 9) +
    lpad('rr p99 µs', 11) +
    '   setup';
  for (const size of cfg.sizes) {
    out.push('');
    out.push(`services = ${fmtInt(size)}`);
    out.push(head);
    const direct = points.find((q) => q.size === size && q.mode === 'direct' && q.status === 'ok')?.conn?.rate;
    for (const p of points.filter((q) => q.size === size)) {
      if (p.status !== 'ok' || !p.conn || !p.rr) {
        const name = p.mode === 'weft' ? 'weft' : p.label;
        out.push(
          `${pad(`  ${p.label}`, 24)}${name}: ${p.status === 'unavailable' ? 'unavailable' : 'FAILED'} (${p.reason ?? 'unknown'})`,
        );
        continue;
      }
      const c = p.conn.rate;
      const r = p.rr.p50_us;
      const conn = `${fmtInt(c.min)} / ${fmtInt(c.median)} / ${fmtInt(c.max)}`;
      const rr = `${fmtUs(r.min)} / ${fmtUs(r.median)} / ${fmtUs(r.max)}`;
      const setup = p.setupSeconds !== undefined ? `${p.setupWhat ?? 'setup'} ${p.setupSeconds.toFixed(2)} s` : '';
      out.push(
        pad(`  ${p.label}`, 24) +
          lpad(conn, 34) +
          lpad(p.ratio?.conn_rate !== undefined ? `${p.ratio.conn_rate.toFixed(2)}x` : '-', 9) +
          lpad(fmtUs(p.conn.cpu_us_per_conn.median), 13) +
          lpad(`${fmtUs(p.conn.connect_p99_us.median)} µs`, 13) +
          lpad(rr, 29) +
          lpad(p.ratio?.rr_p50 !== undefined ? `${p.ratio.rr_p50.toFixed(2)}x` : '-', 9) +
          lpad(fmtUs(p.rr.p99_us.median), 11) +
          `   ${setup}`,
      );
      for (const w of p.warnings) out.push(`${pad('', 24)}warning: ${w}`);
    }
    const noisy = points
      .filter((q) => q.size === size && q.status === 'ok' && q.conn)
      .filter((q) => (q.conn!.rate.max - q.conn!.rate.min) / q.conn!.rate.median > NOISY);
    if (noisy.length > 0) {
      const best = points
        .filter((q) => q.size === size && q.ratio?.conn_rate_best !== undefined && q.mode !== 'direct')
        .map((q) => `${q.mode} ${q.ratio!.conn_rate_best!.toFixed(2)}x`);
      out.push(
        `  note: runs varied by more than ${NOISY * 100}% (${noisy.map((q) => q.mode).join(', ')}): something else was using the CPUs;` +
          ` ratios of medians are uncertain here${direct && best.length ? `; best run vs best run: ${best.join(', ')}` : ''}`,
      );
    }
  }
  out.push('');
  out.push(
    '×direct: conn = median rate / direct median rate (higher is better); rr = median p50 / direct median p50 (lower is better).',
  );
  out.push(
    "CPU µs/conn: the client process's CPU time per connection (median over runs); on veth it includes the forward",
  );
  out.push('path through the node namespace, netfilter included.');
  out.push('connect p99, rr p99: medians over runs.');
  return out.join('\n');
}

interface Goal {
  goal: string;
  status: 'met' | 'missed' | 'n/a';
  detail: string;
}

function cniText(c: CniLatency): string {
  if (c.status !== 'ok' || !c.weft || !c.reference) return `unavailable (${c.reason})`;
  const f = (l: { p50Ms: number; p99Ms: number }) => `p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms`;
  return [
    `ADD weft-cni ${f(c.weft.add)} | bridge+host-local ${f(c.reference.add)} (${(c.weft.add.p50Ms / c.reference.add.p50Ms).toFixed(2)}x at p50)`,
    `DEL weft-cni ${f(c.weft.del)} | bridge+host-local ${f(c.reference.del)}`,
  ].join('; ');
}

function goals(
  points: Point[],
  sync: SyncResult | undefined,
  cni?: CniLatency,
  k8s?: K8sOutcome,
  policy?: PolicyResult,
  flows?: FlowResult,
  l7?: L7Result,
): Goal[] {
  const get = (mode: Mode, size: number): Point | undefined =>
    points.find((p) => p.mode === mode && p.size === size && p.status === 'ok');
  const rate = (p: Point | undefined): number | undefined => p?.conn?.rate.median;
  const out: Goal[] = [];
  // weft's rate over another path's at every size, met when `pass` holds at each.
  const atEverySize = (goal: string, other: Mode, pass: (ratio: number) => boolean): Goal => {
    const detail: string[] = [];
    let ok = true;
    let known = true;
    for (const size of cfg.sizes) {
      const w = rate(get('weft', size));
      const o = rate(get(other, size));
      if (w === undefined || o === undefined) {
        known = false;
        detail.push(`${size}: n/a`);
        continue;
      }
      detail.push(`${size}: ${(w / o).toFixed(3)}x`);
      if (!pass(w / o)) ok = false;
    }
    return { goal, status: !known ? 'n/a' : ok ? 'met' : 'missed', detail: detail.join(', ') };
  };
  out.push(atEverySize('weft ≥ 0.97x direct (new conn/s) at every size', 'direct', (r) => r >= 0.97));
  const big = Math.max(...cfg.sizes);
  const w10 = rate(get('weft', big));
  const i10 = rate(get('iptables', big));
  out.push({
    goal: `weft ≥ 2.5x iptables at ${fmtInt(big)} services`,
    status: w10 === undefined || i10 === undefined ? 'n/a' : w10 / i10 >= 2.5 ? 'met' : 'missed',
    detail: w10 === undefined || i10 === undefined ? 'n/a' : `${(w10 / i10).toFixed(3)}x`,
  });
  out.push(atEverySize('weft ahead of nftables at every size', 'nftables', (r) => r > 1));
  const s = sync?.writerSeconds ?? sync?.syncedSeconds ?? sync?.readySeconds;
  const how =
    sync?.writerSeconds !== undefined
      ? 'lb-writer time logged by the agent'
      : sync?.syncedSeconds !== undefined
        ? 'agent start → "datapath synced"'
        : 'agent start → service listed';
  out.push({
    goal: `full sync of ${fmtInt(cfg.syncServices)} services / ${fmtInt(cfg.syncServices * cfg.syncBackendsPerService)} backends ≤ 1 s`,
    status: s === undefined ? 'n/a' : s <= 1 ? 'met' : 'missed',
    detail: s === undefined ? (sync?.reason ?? 'not measured') : `${s.toFixed(3)} s (${how})`,
  });
  const apply = sync?.apply?.[0];
  out.push({
    goal: 'a manifest change is applied within 100 ms (p99, one-Service file)',
    status: apply === undefined ? 'n/a' : apply.p99Ms <= 100 ? 'met' : 'missed',
    detail:
      apply === undefined
        ? 'not measured'
        : `p99 ${apply.p99Ms.toFixed(1)} ms with ${fmtInt(cfg.syncServices)} services present`,
  });
  const w = cni?.weft?.add.p50Ms;
  const r = cni?.reference?.add.p50Ms;
  out.push({
    goal: 'CNI ADD ≤ 1.2x bridge + host-local (p50), datapath programmed before ADD returns',
    status: w === undefined || r === undefined ? 'n/a' : w / r <= 1.2 ? 'met' : 'missed',
    detail:
      w === undefined || r === undefined
        ? (cni?.reason ?? 'not measured')
        : `${(w / r).toFixed(2)}x (${w.toFixed(1)} ms vs ${r.toFixed(1)} ms)`,
  });
  const k = k8s?.status === 'ok' ? k8s : undefined;
  const unmeasured = k8s?.status === 'unavailable' ? k8s.reason : 'not measured';
  out.push({
    goal: `EndpointSlice change at the API server → kernel map, p99 ≤ 50 ms with ${fmtInt(cfg.syncServices)} services`,
    status: k === undefined ? 'n/a' : k.latency.p99Ms <= 50 ? 'met' : 'missed',
    detail: k === undefined ? unmeasured : `p50 ${k.latency.p50Ms.toFixed(1)} ms, p99 ${k.latency.p99Ms.toFixed(1)} ms`,
  });
  out.push({
    goal: `agent RSS ≤ 150 MB at ${fmtInt(cfg.syncServices)} services / ${fmtInt(cfg.syncServices * cfg.syncBackendsPerService)} endpoints (Kubernetes mode)`,
    status: k === undefined ? 'n/a' : Math.max(k.rssMb, k.rssAfterChangesMb) <= 150 ? 'met' : 'missed',
    detail:
      k === undefined
        ? unmeasured
        : `${Math.max(k.rssMb, k.rssAfterChangesMb).toFixed(0)} MB (peak during the first list ${k.peakRssMb.toFixed(0)} MB)`,
  });
  const pr = policy?.status === 'ok' ? policy.ratio : undefined;
  out.push({
    goal: `request/response p99 with ${cfg.policyCount} NetworkPolicies selecting both pods ≤ 1.03x none`,
    status: pr === undefined ? 'n/a' : pr.rr_p99 <= 1.03 ? 'met' : 'missed',
    detail:
      pr === undefined
        ? policy
          ? `${policy.status}: ${policy.reason ?? 'unknown'}`
          : 'not measured'
        : `${pr.rr_p99.toFixed(3)}x (rr p50 ${pr.rr_p50.toFixed(3)}x; new conn/s ${pr.conn_rate.toFixed(3)}x)`,
  });
  const lossless = flows?.status === 'ok' ? (flows.losslessRate ?? 0) : undefined;
  const at = flows?.steps.filter((s) => s.lostKernel === 0 && s.lostDecode === 0).at(-1);
  out.push({
    goal: 'flow events read by the observer ≥ 500,000/s without loss',
    status: lossless === undefined ? 'n/a' : lossless >= 500_000 ? 'met' : 'missed',
    detail:
      lossless === undefined
        ? flows
          ? `${flows.status}: ${flows.reason ?? 'unknown'}`
          : 'not measured'
        : `${fmtInt(Math.round(lossless))}/s${at ? `, agent CPU ${(at.cpuPer10k * 100).toFixed(2)}% of a CPU per 10,000 events/s` : ''}`,
  });
  out.push(...l7Goals(l7));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main

function toolVersion(cmd: string, args: string[]): string {
  try {
    return run(cmd, args).trim().split('\n')[0] ?? '';
  } catch {
    return 'unavailable';
  }
}

function preflight(): Ctx {
  if (process.getuid?.() !== 0) throw new Error('make bench needs root (network namespaces, cgroups, iptables, nft)');
  for (const bin of [LOADGEN, ECHO]) {
    if (!existsSync(bin)) throw new Error(`${bin} missing: run make bench-bins`);
  }
  for (const tool of ['ip', 'nsenter', 'taskset', 'nft']) {
    try {
      run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} not found`);
    }
  }
  let restore = 'iptables-legacy-restore';
  let flavor = 'legacy';
  try {
    run('sh', ['-c', 'command -v iptables-legacy-restore']);
  } catch {
    restore = 'iptables-restore';
    const v = toolVersion('iptables-restore', ['--version']);
    flavor = /nf_tables/.test(v) ? 'iptables-nft' : /legacy/.test(v) ? 'legacy' : v;
  }
  cgroup2Root(); // throws if absent
  return { work: createWorkDir(log), iptablesRestoreCmd: restore, iptablesFlavor: flavor, services: new Map() };
}

/** On SIGINT/SIGTERM/SIGHUP: exit 128+signal; the exit handlers remove every live world (its
 *  processes, namespaces with their rules, cgroup, pins) and the work directory. */
function exitOnSignals(): void {
  for (const [sig, num] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.once(sig, () => {
      log(`bench: ${sig}: cleaning up`);
      process.exit(128 + num);
    });
  }
}

async function main(): Promise<void> {
  exitOnSignals();
  const ctx = preflight();
  const started = Date.now();
  log(
    `bench: sizes ${cfg.sizes.join(', ')}; paths ${cfg.modes.join(', ')}; ${cfg.runs} runs × conn ${cfg.connSeconds} s (c=${cfg.concurrency}) and rr ${cfg.rrCount} × 64 B; client CPU ${cfg.clientCpus || 'any'}, servers CPU ${cfg.serverCpus || 'any'}; iptables: ${ctx.iptablesRestoreCmd}`,
  );
  const points: Point[] = [];
  let sync: SyncResult | undefined;
  let cni: CniLatency | undefined;
  let k8s: K8sOutcome | undefined;
  let policy: PolicyResult | undefined;
  let flows: FlowResult | undefined;
  let l7: L7Result | undefined;
  try {
    for (const size of cfg.sizes) points.push(...(await measureSize(size, ctx)));
    // Independent of the paths measured: --sizes=1 --modes=direct --runs=1 is a sync-only run.
    if (cfg.sync) {
      log(
        `bench: full sync of ${fmtInt(cfg.syncServices)} services × ${cfg.syncBackendsPerService} backends into Weft`,
      );
      sync = await measureSync(ctx);
      log(`bench: full sync: ${sync.status === 'ok' ? syncText(sync) : `unavailable (${sync.reason})`}`);
    }
    if (cfg.k8s) {
      log(
        `bench: Kubernetes mode, ${fmtInt(cfg.syncServices)} services × ${cfg.syncBackendsPerService} endpoints from the test API server`,
      );
      k8s = await measureK8s();
      log(`bench: Kubernetes: ${k8sText(k8s)}`);
    }
    if (cfg.cniPods > 0) {
      log(`bench: CNI ADD/DEL latency over ${cfg.cniPods} pods, weft-cni and bridge + host-local`);
      cni = await measureCniLatency(cfg.cniPods, (w) => worlds.push(w));
      log(`bench: CNI: ${cniText(cni)}`);
    }
    if (cfg.policy) {
      log(
        `bench: NetworkPolicy: ${cfg.policyCount} policies selecting two CNI pods against none (${cfg.runs} runs each, interleaved), then ${fmtInt(cfg.policyApply)} applied at once, ${fmtInt(cfg.policyPods)} remote pods known`,
      );
      policy = await measurePolicy({
        policies: cfg.policyCount,
        applyPolicies: cfg.policyApply,
        remotePods: cfg.policyPods,
        edits: cfg.policyEdits,
        runs: cfg.runs,
        connSeconds: cfg.connSeconds,
        warmupSeconds: cfg.warmupSeconds,
        concurrency: cfg.concurrency,
        rrCount: cfg.rrCount,
        rrWarmup: cfg.rrWarmup,
        clientCpus: cfg.clientCpus,
        serverCpus: cfg.serverCpus,
        log,
        register: (w) => worlds.push(w),
      });
      log(`bench: NetworkPolicy: ${policySummary(policy)}`);
    }
    if (cfg.flows) {
      log(`bench: flow events into the observer, ${cfg.flowsSeconds} s per rate, up to ${fmtInt(cfg.flowsMax)}/s`);
      flows = await measureFlows({
        seconds: cfg.flowsSeconds,
        maxRate: cfg.flowsMax,
        log,
        register: (w) => worlds.push(w),
      });
    }
    if (cfg.l7) {
      log(
        `bench: L7 proxies: ${cfg.l7Paths.join(', ')}; ${cfg.l7Runs} runs each (saturation ${cfg.l7SatSeconds} s, ${fmtInt(cfg.l7Rate)} requests/s for ${cfg.l7Seconds} s), interleaved`,
      );
      l7 = await measureL7({
        paths: cfg.l7Paths,
        runs: cfg.l7Runs,
        satSeconds: cfg.l7SatSeconds,
        rateSeconds: cfg.l7Seconds,
        rate: cfg.l7Rate,
        clients: cfg.l7Clients,
        streams: 10,
        idleConnections: cfg.l7IdleConnections,
        clientCpus: cfg.clientCpus,
        serverCpus: cfg.serverCpus,
        proxyCpus: l7ProxyCpus,
        weftProxy: WEFT_PROXY,
        weftProxyArgs: WEFT_PROXY_ARGS,
        log,
        register: (w) => worlds.push(w),
      });
      log(`bench: L7: ${l7Summary(l7)}`);
    }
  } finally {
    for (const w of worlds) w.disposeSync(); // already disposed unless something threw
    rmSync(ctx.work, { recursive: true, force: true });
  }

  for (const p of points) {
    const d = points.find((q) => q.size === p.size && q.mode === 'direct' && q.status === 'ok');
    if (p.status !== 'ok' || !d || !p.conn || !p.rr) continue;
    p.ratio = {
      conn_rate: p.conn.rate.median / d.conn!.rate.median,
      conn_rate_best: p.conn.rate.max / d.conn!.rate.max,
      rr_p50: p.rr.p50_us.median / d.rr!.p50_us.median,
    };
  }
  const gs = goals(points, sync, cni, k8s, policy, flows, l7);
  const leftovers = worlds.flatMap((w) => w.leftovers());

  const header = `Weft bench: ${cpus} CPUs, kernel ${release()}, Node ${process.version}; ${cfg.runs} runs per point, conn ${cfg.connSeconds} s × ${cfg.concurrency} threads, rr ${cfg.rrCount} × 64 B`;
  process.stdout.write(`\n${header}\n${points.length > 0 ? `${table(points)}\n` : ''}`);
  if (sync) {
    const s = sync.status === 'ok' ? syncText(sync) : `unavailable (${sync.reason})`;
    process.stdout.write(`\nfull sync, ${fmtInt(sync.services)} services / ${fmtInt(sync.backends)} backends: ${s}\n`);
    for (const w of sync.warnings) process.stdout.write(`  warning: ${w}\n`);
  }
  if (k8s)
    process.stdout.write(
      `\nKubernetes mode, ${fmtInt(cfg.syncServices)} services / ${fmtInt(cfg.syncServices * cfg.syncBackendsPerService)} endpoints: ${k8sText(k8s)}\n`,
    );
  if (cni) process.stdout.write(`\nCNI, ${cni.pods} pods: ${cniText(cni)}\n`);
  if (policy) process.stdout.write(`\n${policyReport(policy)}\n`);
  if (flows) process.stdout.write(`\n${flowsReport(flows)}\n`);
  if (l7) process.stdout.write(`\n${l7Report(l7)}\n`);
  process.stdout.write('\ngoals (reported, not asserted):\n');
  for (const g of gs) process.stdout.write(`  ${pad(g.status.toUpperCase(), 7)} ${g.goal}: ${g.detail}\n`);
  process.stdout.write(
    `\ncleanup: ${leftovers.length === 0 ? 'nothing left behind' : `LEFT BEHIND: ${leftovers.join(', ')}`}\n`,
  );

  mkdirSync(dirname(RESULTS), { recursive: true });
  const json = {
    version: 1,
    date: new Date().toISOString(),
    durationSeconds: (Date.now() - started) / 1000,
    machine: { cpus, kernel: release(), node: process.version, loadavg: readFileSync('/proc/loadavg', 'utf8').trim() },
    tools: {
      iptablesRestore: ctx.iptablesRestoreCmd,
      iptablesFlavor: ctx.iptablesFlavor,
      iptablesVersion: toolVersion(ctx.iptablesRestoreCmd, ['--version']),
      nftVersion: toolVersion('nft', ['--version']),
    },
    config: cfg,
    topology: {
      client: CLIENT_IP,
      backends: BACKEND_IPS,
      service: VIP,
      targetPort: TARGET_PORT,
      podCIDR: POD_CIDR,
      serviceCIDR: SERVICE_CIDR,
      endpointsPerService: 3,
      fillerClusterIPsFrom: '10.97.0.1',
      fillerEndpointsFrom: '10.244.128.1',
    },
    points,
    sync,
    k8s,
    cni,
    policy,
    flows,
    l7,
    goals: gs,
    leftovers,
  };
  writeFileSync(RESULTS, JSON.stringify(json, null, 2) + '\n');
  process.stdout.write(`results: ${RESULTS} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  if (leftovers.length > 0) process.exitCode = 1;
  // The agent misbehaved (policies not put in force, allowed traffic refused): fail loudly.
  if (policy?.status === 'failed') process.exitCode = 1;
  // Events unaccounted for: the observer's books do not balance.
  if (flows?.status === 'failed') process.exitCode = 1;
  // Requests through a proxy failed (errors, non-2xx, a wrong body): that path is broken.
  if (l7?.status === 'failed') process.exitCode = 1;
}

main().catch((e: unknown) => {
  log(`bench: ${(e as Error).stack ?? String(e)}`);
  for (const w of worlds) w.disposeSync();
  process.exitCode = 1;
});
