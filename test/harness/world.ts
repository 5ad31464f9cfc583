// A world for one test file: a node namespace that routes, pod namespaces joined to it by veths,
// a cgroup v2 child for the socket programs, a bpffs pin root and a state directory, all of its
// own. Everything it makes is recorded, and removed by dispose() (also on SIGINT/SIGTERM and
// at exit, and by the next world if this process died before it could clean up).
//
// Addressing, as a routed CNI would do it: each pod has a /32 and /128 on eth0 and routes only
// to the pod prefixes, through a link-local gateway on the node side of its veth. No pod has a
// default route, so an address nobody translated fails at once instead of leaving the VM.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeAllPins, } from '../../src/datapath/programs.js';
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
}

interface Record_ {
  pid: number;
  /** A kept world (the make-run demo) outlives its creator; only dispose() removes it. */
  keep?: boolean;
  /** Processes outside the world's namespaces and cgroup (the demo's agent). */
  pids?: number[];
  netns: string[];
  cgroup: string;
  bpfRoot: string;
  stateDir: string;
}

function sh(cmd: string, args: string[], opts: { netns?: string; ignoreError?: boolean } = {}): string {
  const argv = opts.netns ? ['ip', ['netns', 'exec', opts.netns, cmd, ...args]] as const : [cmd, args] as const;
  try {
    return execFileSync(argv[0], argv[1], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (opts.ignoreError) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${[argv[0], ...argv[1]].join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
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

  private constructor(opts: WorldOptions) {
    World.sweep();
    this.keep = opts.keep ?? false;
    this.id = opts.name ?? randomBytes(2).toString('hex');
    this.prefix = opts.name ? `w${opts.name}` : `wt${this.id}`;
    this.nodeNetns = `${this.prefix}-node`;
    this.cgroupDir = path.join(cgroup2Root(), `weft-test-${this.id}`);
    this.bpfRoot = opts.bpfRoot ?? `/sys/fs/bpf/weft-test-${this.id}`;
    this.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `weft-test-${this.id}-`));
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
      netns: [this.nodeNetns, ...[...this.pods.values()].map((p) => p.netns)],
      cgroup: this.cgroupDir,
      bpfRoot: this.bpfRoot,
      stateDir: this.stateDir,
    };
    fs.writeFileSync(path.join(REGISTRY, `${this.id}.json`), JSON.stringify(rec));
  }

  private static removeRecorded(rec: Record_): void {
    for (const pid of rec.pids ?? []) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
    // Processes in the cgroup first (they may hold the namespaces and sockets).
    if (fs.existsSync(rec.cgroup)) {
      try {
        fs.writeFileSync(path.join(rec.cgroup, 'cgroup.kill'), '1');
      } catch {
        /* older kernels: kill one by one */
        for (const pid of fs.readFileSync(path.join(rec.cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
        }
      }
      for (let i = 0; i < 50 && fs.existsSync(rec.cgroup); i++) {
        try {
          fs.rmdirSync(rec.cgroup);
        } catch {
          execFileSync('sleep', ['0.02']);
        }
      }
    }
    for (const ns of rec.netns) {
      // Processes left in a namespace (a backend spawned outside the cgroup) die with it.
      const pids = sh('ip', ['netns', 'pids', ns], { ignoreError: true }).split('\n').filter(Boolean);
      for (const pid of pids) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      sh('ip', ['netns', 'del', ns], { ignoreError: true });
    }
    try { removeAllPins(rec.bpfRoot); } catch { /* not there */ }
    fs.rmSync(rec.stateDir, { recursive: true, force: true });
  }

  /** Creates a pod: a namespace with eth0, a /32 and a /128, routes to the pod prefixes only. */
  addPod(name: string): Pod {
    const n = ++this.podIndex;
    if (n > 250) throw new Error('a world holds at most 250 pods');
    const pod: Pod = {
      name,
      netns: `${this.prefix}-${name}`,
      ipv4: `10.244.0.${n + 1}`,
      ipv6: `fd00:10:244::${(n + 1).toString(16)}`,
      hostVeth: `${this.prefix}h${n}`,
    };
    this.pods.set(name, pod);
    sh('ip', ['netns', 'add', pod.netns]);
    this.record();
    const peer = `${this.prefix}p${n}`;
    sh('ip', ['link', 'add', pod.hostVeth, 'netns', this.nodeNetns, 'type', 'veth', 'peer', 'name', peer, 'netns', pod.netns]);
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

  /** Adds a route in a pod (the bench sends a service CIDR to the node for iptables). */
  addPodRoute(pod: Pod, prefix: string): void {
    const v6 = prefix.includes(':');
    sh('ip', [...(v6 ? ['-6'] : []), 'route', 'add', prefix, 'via', v6 ? GW6 : GW4, 'dev', 'eth0'], { netns: pod.netns });
  }

  /** Runs a command in a namespace; inCgroup puts it in the world's cgroup before it creates
   *  any socket (a socket's cgroup is fixed at creation). `nsenter --net` keeps the mount
   *  namespace, so bpffs and cgroupfs stay visible. */
  spawn(where: Where, argv: string[], opts: { inCgroup?: boolean; stdio?: SpawnOptions['stdio']; env?: NodeJS.ProcessEnv; detached?: boolean } = {}): ChildProcess {
    const netns = where === 'host' ? undefined : where === 'node' ? this.nodeNetns : where.netns;
    const enter = netns ? ['nsenter', `--net=/run/netns/${netns}`] : [];
    const join = opts.inCgroup ? `echo $$ > ${this.cgroupDir}/cgroup.procs && ` : '';
    const child = spawn('sh', ['-c', `${join}exec "$@"`, 'sh', ...enter, ...argv], {
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      detached: opts.detached ?? false,
    });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs to completion, bounded by timeoutMs; resolves with the exit code and output. */
  run(where: Where, argv: string[], opts: { inCgroup?: boolean; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = this.spawn(where, argv, { inCgroup: opts.inCgroup ?? false });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    return new Promise((resolve) => {
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
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
      netns: [...[...this.pods.values()].map((p) => p.netns), this.nodeNetns],
      cgroup: this.cgroupDir,
      bpfRoot: this.bpfRoot,
      stateDir: this.stateDir,
    });
    fs.rmSync(path.join(REGISTRY, `${this.id}.json`), { force: true });
  }
}
