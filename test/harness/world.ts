// A world for one test file (or one bench point): a node namespace that routes, pod namespaces
// joined to it by veths, a cgroup v2 child for the socket programs, a bpffs pin root and a state
// directory, all of its own. Everything it makes is recorded, and removed by dispose() (also on
// SIGINT/SIGTERM and at exit, and by the next world if this process died before it could clean
// up). Whatever runs inside its namespaces (iptables and nftables rules, sysctls) goes with them.
//
// Addressing, as a routed CNI would do it: each pod has a /32 and /128 on eth0 and routes only
// to the pod prefixes, through a link-local gateway on the node side of its veth. No pod has a
// default route, so an address nobody translated fails at once instead of leaving the VM.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeAllPins } from '../../src/datapath/programs.js';
import { cgroup2Root } from '../../src/datapath/pins.js';

export const POD_CIDR4 = '10.244.0.0/16';
export const POD_CIDR6 = 'fd00:10:244::/64';
const GW4 = '169.254.1.1';
const GW6 = 'fe80::1';
const REGISTRY = '/run/weft-test';

export interface Pod {
  name: string;
  netns: string; // name under /run/netns
  ipv4: string;
  ipv6: string;
  hostVeth: string;
}

export type Where = Pod | 'node' | 'host';

export interface WorldOptions {
  name?: string;
  keep?: boolean;
  bpfRoot?: string;
  /** What the world is for, a short lowercase word ('test' unless given, 'bench' for make
   *  bench): its cgroup, pin root and state directory are weft-<kind>-<id>, and an unnamed
   *  world's namespaces and interfaces w<first letter><id>-* (wt1a2b-node, wb1a2b-node). */
  kind?: string;
}

export interface PodOptions {
  /** The pod's IPv4 address, inside POD_CIDR4 (otherwise the next 10.244.0.x). */
  ipv4?: string;
  /** The pod's IPv6 address, inside POD_CIDR6 (otherwise the next fd00:10:244::x). */
  ipv6?: string;
}

export interface WorldSpawnOptions {
  /** Put the process in the world's cgroup before it creates any socket. */
  inCgroup?: boolean;
  /** CPU list for taskset (e.g. '1' or '0,2-3'): the process runs only there. */
  cpus?: string;
  stdio?: SpawnOptions['stdio'];
  env?: NodeJS.ProcessEnv;
  detached?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed because it ran longer than timeoutMs. */
  timedOut: boolean;
}

interface Record_ {
  pid: number;
  /** A kept world (the make-run demo) outlives its creator; only dispose() removes it. */
  keep?: boolean;
  /** Processes outside the world's namespaces and cgroup (the demo's agent). */
  pids?: number[];
  /** Host files and directories the world made outside its own directories (CNI config and
   *  plugins for a container runtime), removed last-made first. */
  paths?: (string | { path: string; recursive: true })[];
  netns: string[];
  cgroup: string;
  bpfRoot: string;
  stateDir: string;
}

function sh(cmd: string, args: string[], opts: { netns?: string; ignoreError?: boolean } = {}): string {
  const argv = opts.netns ? (['ip', ['netns', 'exec', opts.netns, cmd, ...args]] as const) : ([cmd, args] as const);
  try {
    return execFileSync(argv[0], argv[1], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (opts.ignoreError) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${[argv[0], ...argv[1]].join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Removes a cgroup and any children a runtime made in it, deepest first (bounded retries:
 *  a cgroup whose last process is still exiting refuses rmdir for a moment). */
function removeCgroupTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(path.join(dir, entry.name));
  }
  for (let i = 0; i < 50 && fs.existsSync(dir); i++) {
    try {
      fs.rmdirSync(dir);
    } catch {
      execFileSync('sleep', ['0.02']);
    }
  }
}

/** Removes a directory and its empty subdirectories; any file (someone else's) keeps its
 *  directory in place. */
function removeEmptyDirs(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeEmptyDirs(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    /* not empty: leave it */
  }
}

function cgroupV1Mounts(): string[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' && f[1])
    .map((f) => f[1]!);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class World {
  readonly id: string;
  readonly prefix: string;
  readonly nodeNetns: string;
  readonly cgroupDir: string;
  readonly bpfRoot: string;
  readonly stateDir: string;
  readonly pods = new Map<string, Pod>();
  private readonly children = new Set<ChildProcess>();
  private podIndex = 0;
  private disposed = false;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.disposeSync();
    process.kill(process.pid, sig);
  };
  private readonly onExit = () => this.disposeSync();

  private readonly keep: boolean;
  private readonly extraPids: number[] = [];
  private readonly extraNetns: string[] = [];
  private readonly extraPaths: NonNullable<Record_['paths']> = [];

  private constructor(opts: WorldOptions) {
    World.sweep();
    const kind = opts.kind ?? 'test';
    if (!/^[a-z][a-z0-9]{0,9}$/.test(kind))
      throw new Error(`world kind ${JSON.stringify(kind)}: expected a short lowercase word`);
    this.keep = opts.keep ?? false;
    this.id = World.claimId(opts.name, this.keep);
    this.prefix = opts.name ? `w${opts.name}` : `w${kind[0]}${this.id}`;
    this.nodeNetns = `${this.prefix}-node`;
    this.cgroupDir = path.join(cgroup2Root(), `weft-${kind}-${this.id}`);
    this.bpfRoot = opts.bpfRoot ?? `/sys/fs/bpf/weft-${kind}-${this.id}`;
    this.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `weft-${kind}-${this.id}-`));
    this.record();
    if (!this.keep) {
      process.once('SIGINT', this.onSignal);
      process.once('SIGTERM', this.onSignal);
      process.once('exit', this.onExit);
    }
  }

  /** A new world. With `name`, its namespaces are w<name>-*; with `keep`, it stays after this
   *  process exits, until World.removeKept(name). */
  static create(opts: WorldOptions = {}): World {
    if (opts.name && fs.existsSync(path.join(REGISTRY, `${opts.name}.json`))) {
      throw new Error(`a world named ${opts.name} exists already (remove it first)`);
    }
    const w = new World(opts);
    try {
      sh('ip', ['netns', 'add', w.nodeNetns]);
      w.record();
      sh('ip', ['link', 'set', 'lo', 'up'], { netns: w.nodeNetns });
      // Forwarding inside the node namespace only: never host-wide.
      sh('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'], { netns: w.nodeNetns });
      fs.mkdirSync(w.cgroupDir);
    } catch (err) {
      w.disposeSync();
      throw err;
    }
    return w;
  }

  /** Takes an id no other world uses: creating its registry record claims it (atomically, so
   *  two processes starting worlds at once never share one). */
  private static claimId(name: string | undefined, keep: boolean): string {
    fs.mkdirSync(REGISTRY, { recursive: true });
    for (let attempt = 0; ; attempt++) {
      const id = name ?? randomBytes(2).toString('hex');
      try {
        // A placeholder until record(): its owner is alive, so no sweep touches it.
        fs.writeFileSync(path.join(REGISTRY, `${id}.json`), JSON.stringify({ pid: process.pid, keep, netns: [] }), {
          flag: 'wx',
        });
        return id;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (name !== undefined) throw new Error(`a world named ${name} exists already (remove it first)`);
        if (attempt >= 100) throw new Error(`no free world id in ${REGISTRY}`);
      }
    }
  }

  /** Removes what worlds of dead test processes left behind. */
  static sweep(): void {
    if (!fs.existsSync(REGISTRY)) return;
    for (const f of fs.readdirSync(REGISTRY)) {
      const file = path.join(REGISTRY, f);
      try {
        const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as Record_;
        if (rec.keep || pidAlive(rec.pid)) continue;
        World.removeRecorded(rec);
      } catch {
        /* unreadable record: drop it */
      }
      fs.rmSync(file, { force: true });
    }
  }

  /** Removes a kept world and everything running in it. Returns false if there was none. */
  static removeKept(name: string): boolean {
    const file = path.join(REGISTRY, `${name}.json`);
    if (!fs.existsSync(file)) return false;
    World.removeRecorded(JSON.parse(fs.readFileSync(file, 'utf8')) as Record_);
    fs.rmSync(file, { force: true });
    return true;
  }

  /** Records a host file or directory to remove when the world goes (even if this process
   *  dies first: the next world's sweep removes it). */
  adoptPath(p: string, opts: { recursive?: boolean } = {}): void {
    // recursive: a directory only the world's own processes write to, removed whole.
    this.extraPaths.push(opts.recursive ? { path: p, recursive: true } : p);
    this.record();
  }

  /** Records a process to kill when the world goes (one outside its namespaces and cgroup). */
  adopt(pid: number): void {
    this.extraPids.push(pid);
    this.record();
  }

  private record(): void {
    fs.mkdirSync(REGISTRY, { recursive: true });
    const rec: Record_ = {
      pid: process.pid,
      keep: this.keep,
      pids: this.extraPids,
      paths: this.extraPaths,
      netns: [this.nodeNetns, ...[...this.pods.values()].map((p) => p.netns), ...this.extraNetns],
      cgroup: this.cgroupDir,
      bpfRoot: this.bpfRoot,
      stateDir: this.stateDir,
    };
    fs.writeFileSync(path.join(REGISTRY, `${this.id}.json`), JSON.stringify(rec));
  }

  private static removeRecorded(rec: Record_): void {
    // Processes outside the namespaces (the demo's agent) get a clean stop, bounded to 5 s.
    const extra = (rec.pids ?? []).filter((pid) => {
      try {
        process.kill(pid, 'SIGTERM');
        return true;
      } catch {
        return false;
      }
    });
    for (let i = 0; i < 100 && extra.some(pidAlive); i++) execFileSync('sleep', ['0.05']);
    for (const pid of extra.filter(pidAlive))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    // Processes in the cgroup first (they may hold the namespaces and sockets).
    if (rec.cgroup && fs.existsSync(rec.cgroup)) {
      try {
        fs.writeFileSync(path.join(rec.cgroup, 'cgroup.kill'), '1');
      } catch {
        /* older kernels: kill one by one */
        for (const pid of fs.readFileSync(path.join(rec.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      removeCgroupTree(rec.cgroup);
    }
    // A container runtime (runc) also makes the same path in each cgroup v1 hierarchy.
    if (rec.cgroup) {
      const rel = path.relative(cgroup2Root(), rec.cgroup);
      for (const dir of cgroupV1Mounts()) {
        const p = path.join(dir, rel);
        if (fs.existsSync(p)) removeCgroupTree(p);
      }
    }
    for (const ns of rec.netns ?? []) {
      // Processes left in a namespace (a backend spawned outside the cgroup) die with it.
      const pids = sh('ip', ['netns', 'pids', ns], { ignoreError: true }).split('\n').filter(Boolean);
      for (const pid of pids)
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      sh('ip', ['netns', 'del', ns], { ignoreError: true });
    }
    if (rec.bpfRoot)
      try {
        removeAllPins(rec.bpfRoot);
      } catch {
        /* not there */
      }
    for (const entry of [...(rec.paths ?? [])].reverse()) {
      try {
        if (typeof entry !== 'string') fs.rmSync(entry.path, { recursive: true, force: true });
        else if (fs.statSync(entry).isDirectory()) removeEmptyDirs(entry);
        else fs.unlinkSync(entry);
      } catch {
        /* gone already */
      }
    }
    if (rec.stateDir) fs.rmSync(rec.stateDir, { recursive: true, force: true });
  }

  /** What of this world still exists (namespaces, cgroup, pins, state, registry record):
   *  nothing once dispose() has run. For callers that verify their cleanup. */
  leftovers(): string[] {
    const left: string[] = [];
    for (const ns of [this.nodeNetns, ...[...this.pods.values()].map((p) => p.netns)]) {
      if (fs.existsSync(`/run/netns/${ns}`)) left.push(`netns ${ns}`);
    }
    if (fs.existsSync(this.cgroupDir)) left.push(`cgroup ${this.cgroupDir}`);
    if (fs.existsSync(this.bpfRoot)) left.push(`pins ${this.bpfRoot}`);
    if (fs.existsSync(this.stateDir)) left.push(`state ${this.stateDir}`);
    const rec = path.join(REGISTRY, `${this.id}.json`);
    if (fs.existsSync(rec)) left.push(`record ${rec}`);
    return left;
  }

  /** Creates a pod: a namespace with eth0, a /32 and a /128, routes to the pod prefixes only.
   *  Addresses are the next free ones unless given. */
  addPod(name: string, opts: PodOptions = {}): Pod {
    if (this.pods.has(name)) throw new Error(`a pod named ${name} exists already`);
    const n = ++this.podIndex;
    if (n > 250) throw new Error('a world holds at most 250 pods');
    const pod: Pod = {
      name,
      netns: `${this.prefix}-${name}`,
      ipv4: opts.ipv4 ?? `10.244.0.${n + 1}`,
      ipv6: opts.ipv6 ?? `fd00:10:244::${(n + 1).toString(16)}`,
      hostVeth: `${this.prefix}h${n}`,
    };
    if (!/^10\.244\.\d{1,3}\.\d{1,3}$/.test(pod.ipv4) || pod.ipv4.split('.').some((o) => Number(o) > 255)) {
      throw new Error(`pod ${name}: ${pod.ipv4} is not an IPv4 address in ${POD_CIDR4}`);
    }
    if (!/^fd00:10:244::[0-9a-f]{1,4}$/i.test(pod.ipv6))
      throw new Error(`pod ${name}: ${pod.ipv6} is not an address in ${POD_CIDR6}`);
    for (const other of this.pods.values()) {
      if (other.ipv4 === pod.ipv4 || other.ipv6.toLowerCase() === pod.ipv6.toLowerCase()) {
        throw new Error(`pod ${name}: ${other.ipv4 === pod.ipv4 ? pod.ipv4 : pod.ipv6} is pod ${other.name}'s address`);
      }
    }
    this.pods.set(name, pod);
    sh('ip', ['netns', 'add', pod.netns]);
    this.record();
    const peer = `${this.prefix}p${n}`;
    sh('ip', [
      'link',
      'add',
      pod.hostVeth,
      'netns',
      this.nodeNetns,
      'type',
      'veth',
      'peer',
      'name',
      peer,
      'netns',
      pod.netns,
    ]);
    const inPod = (...args: string[]) => sh('ip', args, { netns: pod.netns });
    const inNode = (...args: string[]) => sh('ip', args, { netns: this.nodeNetns });
    inPod('link', 'set', peer, 'name', 'eth0');
    inPod('link', 'set', 'lo', 'up');
    inPod('addr', 'add', `${pod.ipv4}/32`, 'dev', 'eth0');
    inPod('-6', 'addr', 'add', `${pod.ipv6}/128`, 'dev', 'eth0', 'nodad');
    inPod('link', 'set', 'eth0', 'up');
    inPod('route', 'add', GW4, 'dev', 'eth0', 'scope', 'link');
    inPod('route', 'add', POD_CIDR4, 'via', GW4, 'dev', 'eth0', 'src', pod.ipv4);
    inNode('addr', 'add', `${GW4}/32`, 'dev', pod.hostVeth);
    inNode('-6', 'addr', 'add', `${GW6}/64`, 'dev', pod.hostVeth, 'nodad');
    inNode('link', 'set', pod.hostVeth, 'up');
    inPod('-6', 'route', 'add', POD_CIDR6, 'via', GW6, 'dev', 'eth0', 'src', pod.ipv6);
    inNode('route', 'add', `${pod.ipv4}/32`, 'dev', pod.hostVeth);
    inNode('-6', 'route', 'add', `${pod.ipv6}/128`, 'dev', pod.hostVeth);
    return pod;
  }

  /** A bare network namespace (`<prefix>-<name>`, /run/netns), removed with the world: for a
   *  CNI plugin to set up, as a container runtime would hand it one. Returns its path. */
  addNetns(name: string): string {
    const ns = `${this.prefix}-${name}`;
    sh('ip', ['netns', 'add', ns]);
    this.extraNetns.push(ns);
    this.record();
    return `/run/netns/${ns}`;
  }

  /** Adds a route in a pod via the node (e.g. a service CIDR, for rules in the node namespace
   *  that translate it: a pod has no route for it otherwise). */
  addPodRoute(pod: Pod, prefix: string): void {
    const v6 = prefix.includes(':');
    sh('ip', [...(v6 ? ['-6'] : []), 'route', 'add', prefix, 'via', v6 ? GW6 : GW4, 'dev', 'eth0'], {
      netns: pod.netns,
    });
  }

  /** Sets sysctls of one namespace (a pod's or the node's), e.g.
   *  { 'net.ipv4.tcp_tw_reuse': 1 }. Only per-namespace settings change: never the host's. */
  setSysctls(where: Pod | 'node', settings: Record<string, string | number>): void {
    const kv = Object.entries(settings).map(([k, v]) => {
      if (!/^net\.[\w.-]+$/.test(k)) throw new Error(`sysctl ${k}: only net.* settings are per namespace`);
      return `${k}=${v}`;
    });
    if (kv.length > 0) sh('sysctl', ['-qw', ...kv], { netns: where === 'node' ? this.nodeNetns : where.netns });
  }

  /** Runs a command in a namespace; inCgroup puts it in the world's cgroup before it creates
   *  any socket (a socket's cgroup is fixed at creation); cpus pins it with taskset.
   *  `nsenter --net` keeps the mount namespace, so bpffs and cgroupfs stay visible. The
   *  process is killed when the world goes, if it is still running. */
  spawn(where: Where, argv: string[], opts: WorldSpawnOptions = {}): ChildProcess {
    const netns = where === 'host' ? undefined : where === 'node' ? this.nodeNetns : where.netns;
    const enter = netns ? ['nsenter', `--net=/run/netns/${netns}`] : [];
    if (opts.cpus !== undefined && !/^\d+([-,]\d+)*$/.test(opts.cpus))
      throw new Error(`cpus ${JSON.stringify(opts.cpus)}: expected a CPU list such as 1 or 0,2-3`);
    const pin = opts.cpus !== undefined ? ['taskset', '-c', opts.cpus] : [];
    const join = opts.inCgroup ? `echo $$ > ${this.cgroupDir}/cgroup.procs && ` : '';
    const child = spawn('sh', ['-c', `${join}exec "$@"`, 'sh', ...enter, ...pin, ...argv], {
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      detached: opts.detached ?? false,
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs to completion, bounded by timeoutMs (then SIGKILL); resolves with the exit code,
   *  the signal and the output. */
  run(
    where: Where,
    argv: string[],
    opts: { inCgroup?: boolean; cpus?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const { timeoutMs = 20_000, ...spawnOpts } = opts;
    const child = this.spawn(where, argv, spawnOpts);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    return new Promise((resolve) => {
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, timedOut });
      });
    });
  }

  /** Lets this process exit while a kept world's processes go on running. */
  release(): void {
    for (const c of this.children) {
      c.stdout?.destroy();
      c.stderr?.destroy();
      c.unref();
    }
    this.children.clear();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await Promise.all(
      [...this.children].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    this.disposeSync();
  }

  disposeSync(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const c of this.children) c.kill('SIGKILL');
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    process.removeListener('exit', this.onExit);
    World.removeRecorded({
      pid: process.pid,
      pids: this.extraPids,
      paths: this.extraPaths,
      netns: [...[...this.pods.values()].map((p) => p.netns), ...this.extraNetns, this.nodeNetns],
      cgroup: this.cgroupDir,
      bpfRoot: this.bpfRoot,
      stateDir: this.stateDir,
    });
    fs.rmSync(path.join(REGISTRY, `${this.id}.json`), { force: true });
  }
}
