// The bench's world: network namespaces for a client pod, a routing node and backend pods,
// a cgroup v2 child for client processes, and the processes started inside them.
//
//   client pod ──veth── node (forwards) ──veth── backend pod 1..N
//
// Pods get a /32 and routes to the test prefixes only (pod CIDR and service CIDR, via a
// link-local gateway address on the node side of their veth); no default route anywhere.
// Forwarding is switched on inside the node namespace only. Every name starts with `wb-` and
// carries a run tag derived from the orchestrator's pid, so leftovers from a killed run can be
// recognised and removed by the next one.
//
// Everything created is registered for cleanup: `destroy()` in a finally block, and
// `installSignalCleanup()` runs the same cleanups synchronously on SIGINT/SIGTERM/SIGHUP.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PREFIX = 'wb-';
export const POD_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/12';
/** The node side of every pod veth carries this address; pods route via it. */
export const GATEWAY = '169.254.1.1';

// ---------------------------------------------------------------------------------------------
// Cleanup registry

interface Cleanup {
  id: number;
  name: string;
  fn: () => void;
}

const cleanups: Cleanup[] = [];
let nextCleanupId = 1;

/** Registers a synchronous cleanup; returns a function that unregisters it. LIFO order. */
export function onCleanup(name: string, fn: () => void): () => void {
  const id = nextCleanupId++;
  cleanups.push({ id, name, fn });
  return () => {
    const i = cleanups.findIndex((c) => c.id === id);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** Runs every registered cleanup (newest first). Returns the errors, never throws. */
export function runAllCleanups(): string[] {
  const errors: string[] = [];
  while (cleanups.length > 0) {
    const c = cleanups.pop()!;
    try {
      c.fn();
    } catch (e) {
      errors.push(`${c.name}: ${(e as Error).message}`);
    }
  }
  return errors;
}

let signalsInstalled = false;

/** On SIGINT/SIGTERM/SIGHUP: run all cleanups synchronously, then exit 128+signal. */
export function installSignalCleanup(log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const handler = (sig: NodeJS.Signals, num: number): void => {
    log(`bench: ${sig}: cleaning up`);
    for (const e of runAllCleanups()) log(`bench: cleanup: ${e}`);
    process.exit(128 + num);
  };
  process.once('SIGINT', () => handler('SIGINT', 2));
  process.once('SIGTERM', () => handler('SIGTERM', 15));
  process.once('SIGHUP', () => handler('SIGHUP', 1));
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs a command, throws with its stderr on failure. */
export function run(cmd: string, args: string[], input?: string, timeoutMs = 120_000): string {
  try {
    return execFileSync(cmd, args, {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
      maxBuffer: 64 << 20,
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const detail = (err.stderr ?? '').trim().split('\n').slice(0, 5).join(' | ') || err.message;
    throw new Error(`${cmd} ${args.join(' ').slice(0, 200)}: ${detail}`);
  }
}

function tryRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** The mount point of the cgroup v2 hierarchy, from /proc/mounts. */
export function cgroup2Mount(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2' && f[1]) return f[1].replace(/\\040/g, ' ');
  }
  throw new Error('no cgroup2 mount in /proc/mounts');
}

/** True if /sys/fs/bpf (or the given dir) is a mounted bpf filesystem. */
export function isBpffs(dir = '/sys/fs/bpf'): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => {
      const f = l.split(' ');
      return f[1] === dir && f[2] === 'bpf';
    });
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name; a zombie has finished.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Synchronous; for cleanup paths. */
export function killPidSync(pid: number, graceMs = 2000): void {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return;
    sleepSync(20);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  const hard = Date.now() + 2000;
  while (Date.now() < hard && pidAlive(pid)) sleepSync(20);
}

// ---------------------------------------------------------------------------------------------
// Processes in namespaces

export interface SpawnOptions {
  /** Log name. */
  name: string;
  /** Network namespace name (entered with nsenter --net, which keeps the mount namespace). */
  netns?: string;
  /** CPU list for taskset, e.g. "1". */
  cpus?: string;
  /** cgroup v2 directory: the process is moved into it before it execs the program. */
  cgroup?: string;
  env?: NodeJS.ProcessEnv;
}

export interface Proc {
  name: string;
  pid: number;
  child: ChildProcess;
  /** All stdout and stderr lines so far (bounded to the last 2000). */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
  /** Resolves with the first line (stdout or stderr) matching re; rejects on exit or timeout. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

function commandLine(argv: string[], o: SpawnOptions): string[] {
  let cmd = [...argv];
  if (o.cpus !== undefined) cmd = ['taskset', '-c', o.cpus, ...cmd];
  if (o.netns !== undefined) cmd = ['nsenter', `--net=${netnsPath(o.netns)}`, '--', ...cmd];
  if (o.cgroup !== undefined) {
    // The shell moves itself into the cgroup (it still sees the host's mount namespace), then
    // execs: the program creates its sockets already inside the cgroup.
    cmd = ['sh', '-c', 'echo $$ > "$0" && exec "$@"', join(o.cgroup, 'cgroup.procs'), ...cmd];
  }
  return cmd;
}

/** Starts a long-running process; it is killed by pid on cleanup if still running. */
export function spawnProc(argv: string[], o: SpawnOptions): Proc {
  const cmd = commandLine(argv, o);
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  if (child.pid === undefined) throw new Error(`${o.name}: could not start ${cmd.join(' ')}`);
  const pid = child.pid;
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  let running = true;
  const onData = (stream: NodeJS.ReadableStream): void => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (lines.length > 2000) lines.splice(0, lines.length - 2000);
        for (let k = waiters.length - 1; k >= 0; k--) {
          const w = waiters[k]!;
          if (w.re.test(line)) {
            waiters.splice(k, 1);
            w.resolve(line);
          }
        }
      }
    });
  };
  onData(child.stdout!);
  onData(child.stderr!);
  const unregister = onCleanup(`kill ${o.name} (${pid})`, () => killPidSync(pid));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      running = false;
      unregister();
      resolve({ code, signal });
    });
  });
  const proc: Proc = {
    name: o.name,
    pid,
    child,
    lines,
    exited,
    isRunning: () => running,
    waitForLine(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        let done = false;
        const timer = setTimeout(() => {
          if (done) return;
          done = true;
          reject(new Error(`${o.name}: no line matching ${re} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push({
          re,
          resolve: (l) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then(({ code, signal }) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          const tail = lines.slice(-5).join(' | ');
          reject(new Error(`${o.name} exited (${signal ?? code}) before ${re}${tail ? `: ${tail}` : ''}`));
        });
      });
    },
    async stop(graceMs = 3000) {
      if (!running) return;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
      }
    },
  };
  return proc;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion (killed after timeoutMs), collecting its output. */
export async function runProc(argv: string[], o: SpawnOptions, timeoutMs: number): Promise<RunResult> {
  const cmd = commandLine(argv, o);
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
  if (child.pid === undefined) throw new Error(`${o.name}: could not start ${cmd.join(' ')}`);
  const pid = child.pid;
  const unregister = onCleanup(`kill ${o.name} (${pid})`, () => killPidSync(pid, 500));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    if (stdout.length < 16 << 20) stdout += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 1 << 20) stderr += d;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  });
  clearTimeout(timer);
  unregister();
  return { code, signal, stdout, stderr, timedOut };
}

// ---------------------------------------------------------------------------------------------
// Stale state from killed runs

function tagPid(tag: string): number {
  return parseInt(tag, 36);
}

/** True if pid is a live bench orchestrator (so its wb- objects are in use). */
function ownerAlive(tag: string): boolean {
  const pid = tagPid(tag);
  if (!Number.isFinite(pid) || pid <= 0 || pid === process.pid) return pid === process.pid;
  if (!pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bench/run');
  } catch {
    return false;
  }
}

/** Removes wb-<tag>-* namespaces, wb-<tag> cgroups and bpffs dirs whose run is gone. */
export function reapStale(log: (m: string) => void): void {
  const re = new RegExp(`^${PREFIX}([0-9a-z]+)-`);
  let names: string[] = [];
  try {
    names = run('ip', ['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => re.test(n));
  } catch {
    /* no netns support: nothing to reap */
  }
  for (const ns of names) {
    const tag = re.exec(ns)![1]!;
    if (ownerAlive(tag)) continue;
    log(`bench: removing stale namespace ${ns}`);
    try {
      for (const p of run('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean)) killPidSync(Number(p), 1000);
    } catch {
      /* ignore */
    }
    tryRun('ip', ['netns', 'del', ns]);
  }
  const cg = (() => {
    try {
      return cgroup2Mount();
    } catch {
      return undefined;
    }
  })();
  const dirRe = new RegExp(`^${PREFIX}([0-9a-z]+)(-|$)`);
  if (cg) {
    for (const d of readdirSync(cg)) {
      const m = dirRe.exec(d);
      if (!m || ownerAlive(m[1]!)) continue;
      log(`bench: removing stale cgroup ${join(cg, d)}`);
      removeCgroup(join(cg, d));
    }
  }
  const tmp = tmpdir();
  for (const d of readdirSync(tmp)) {
    const m = dirRe.exec(d);
    if (!m || ownerAlive(m[1]!)) continue;
    log(`bench: removing stale work dir ${join(tmp, d)}`);
    rmSync(join(tmp, d), { recursive: true, force: true });
  }
  if (existsSync('/sys/fs/bpf')) {
    for (const d of readdirSync('/sys/fs/bpf')) {
      const m = dirRe.exec(d);
      if (!m || ownerAlive(m[1]!)) continue;
      log(`bench: removing stale bpffs dir /sys/fs/bpf/${d}`);
      rmSync(join('/sys/fs/bpf', d), { recursive: true, force: true });
    }
  }
}

/** Kills whatever is in a cgroup dir, then removes it (retrying while it drains). */
export function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (let attempt = 0; attempt < 50; attempt++) {
    let pids: number[] = [];
    try {
      pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      /* gone */
    }
    for (const p of pids) killPidSync(p, 500);
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw e;
    }
    sleepSync(50);
  }
  throw new Error(`cgroup ${dir} still busy`);
}

// ---------------------------------------------------------------------------------------------
// The topology

export interface TopologyOptions {
  /** Run tag (base36 pid of the orchestrator). */
  tag: string;
  /** Distinguishes topologies within one run (a fresh world for every measured point). */
  index: number;
  backends: number;
  clientIP: string;
  /** backendIP(i) for i = 0..backends-1. */
  backendIPs: string[];
}

export class Topology {
  readonly node: string;
  readonly client: string;
  readonly backendNs: string[];
  readonly cgroupDir: string;
  readonly clientIP: string;
  readonly backendIPs: string[];
  private readonly created: string[] = [];
  private cgroupCreated = false;
  private unregister: (() => void) | undefined;
  private destroyed = false;

  private constructor(o: TopologyOptions) {
    const base = `${PREFIX}${o.tag}-${o.index}`;
    this.node = `${base}-node`;
    this.client = `${base}-client`;
    this.backendNs = o.backendIPs.map((_, i) => `${base}-b${i + 1}`);
    this.cgroupDir = join(cgroup2Mount(), `${PREFIX}${o.tag}-${o.index}`);
    this.clientIP = o.clientIP;
    this.backendIPs = o.backendIPs;
  }

  /** Builds the namespaces, veths, addresses, routes, sysctls and the cgroup. */
  static create(o: TopologyOptions): Topology {
    if (o.backendIPs.length !== o.backends) throw new Error('backendIPs must have one address per backend');
    const t = new Topology(o);
    t.unregister = onCleanup(`topology ${t.node}`, () => t.destroySync());
    try {
      t.build();
    } catch (e) {
      t.destroySync();
      throw e;
    }
    return t;
  }

  private addNs(name: string): void {
    run('ip', ['netns', 'add', name]);
    this.created.push(name);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private sysctl(ns: string, kv: string[]): void {
    run('nsenter', [`--net=${netnsPath(ns)}`, '--', 'sysctl', '-q', '-w', ...kv]);
  }

  private addPod(ns: string, nodeIf: string, ip: string): void {
    this.addNs(ns);
    // Created directly inside the two namespaces: nothing appears in the host namespace.
    run('ip', ['link', 'add', nodeIf, 'netns', this.node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run('ip', ['-n', this.node, 'link', 'set', nodeIf, 'up']);
    run('ip', ['-n', this.node, 'addr', 'add', `${GATEWAY}/32`, 'dev', nodeIf]);
    run('ip', ['-n', this.node, 'route', 'add', `${ip}/32`, 'dev', nodeIf, 'scope', 'link']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'route', 'add', `${GATEWAY}/32`, 'dev', 'eth0', 'scope', 'link']);
    // Only the test prefixes; no default route.
    run('ip', ['-n', ns, 'route', 'add', POD_CIDR, 'via', GATEWAY, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'route', 'add', SERVICE_CIDR, 'via', GATEWAY, 'dev', 'eth0']);
  }

  private build(): void {
    this.addNs(this.node);
    // Forwarding inside the node namespace only (a per-namespace setting).
    this.sysctl(this.node, ['net.ipv4.ip_forward=1']);
    this.addPod(this.client, 'wb-client', this.clientIP);
    // The client opens tens of thousands of short connections per run: give it the whole port
    // range and let it reuse TIME_WAIT ports (per-namespace settings, this namespace only).
    this.sysctl(this.client, [
      'net.ipv4.ip_local_port_range=1024 65535',
      'net.ipv4.tcp_tw_reuse=1',
      'net.ipv4.tcp_max_tw_buckets=262144',
    ]);
    this.backendNs.forEach((ns, i) => this.addPod(ns, `wb-b${i + 1}`, this.backendIPs[i]!));
    mkdirSync(this.cgroupDir);
    this.cgroupCreated = true;
  }

  /** Tears everything down: processes inside the namespaces and cgroup, namespaces, cgroup. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const errors: string[] = [];
    for (const ns of [...this.created].reverse()) {
      try {
        for (const p of run('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean)) killPidSync(Number(p));
      } catch {
        /* ignore */
      }
      if (!tryRun('ip', ['netns', 'del', ns])) errors.push(`ip netns del ${ns} failed`);
    }
    if (this.cgroupCreated) {
      try {
        removeCgroup(this.cgroupDir);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    this.unregister?.();
    if (errors.length > 0) throw new Error(errors.join('; '));
  }
}
