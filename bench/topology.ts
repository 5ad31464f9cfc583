// The bench's world, built with the test harness's World (test/harness/world.ts):
//
//   client pod ──veth── node (forwards) ──veth── backend pod 1..N
//
// World gives the namespaces, /32 veths via a link-local gateway, routes to the test prefixes
// only, forwarding in the node namespace only, a cgroup v2 child, and cleanup (also on signals
// and at exit, and of worlds left by killed runs). What is the bench's own: fixed addresses, a
// route for the service CIDR via the node (so rules there can translate it), the client's
// port-range sysctls, and a line-watching wrapper for its long-running processes.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { POD_CIDR4, World, type Pod } from '../test/harness/world.js';

export const POD_CIDR = POD_CIDR4;
export const SERVICE_CIDR = '10.96.0.0/12';

export interface Topology {
  world: World;
  client: Pod;
  backends: Pod[];
}

/** A fresh world: a client pod and one backend pod per address, all routing the service CIDR
 *  to the node. */
export function createTopology(o: { clientIP: string; backendIPs: string[] }): Topology {
  const world = World.create({ kind: 'bench' });
  try {
    const client = world.addPod('client', { ipv4: o.clientIP });
    // The client opens tens of thousands of short connections per run: give it the whole port
    // range and let it reuse TIME_WAIT ports (per-namespace settings, this namespace only).
    world.setSysctls(client, {
      'net.ipv4.ip_local_port_range': '1024 65535',
      'net.ipv4.tcp_tw_reuse': 1,
      'net.ipv4.tcp_max_tw_buckets': 262144,
    });
    const backends = o.backendIPs.map((ip, i) => world.addPod(`backend-${i + 1}`, { ipv4: ip }));
    for (const pod of [client, ...backends]) world.addPodRoute(pod, SERVICE_CIDR);
    return { world, client, backends };
  } catch (e) {
    world.disposeSync();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Long-running processes: output kept by line, waiting for a line, stopping with a grace period

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

/** Watches a process started with World.spawn (stdout and stderr piped). */
export function watch(child: ChildProcess, name: string): Proc {
  if (child.pid === undefined) throw new Error(`${name}: could not start`);
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });
  return {
    name,
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
          reject(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms`));
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
          reject(new Error(`${name} exited (${signal ?? code}) before ${re}${tail ? `: ${tail}` : ''}`));
        });
      });
    },
    async stop(graceMs = 3000) {
      if (!running) return;
      child.kill('SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        child.kill('SIGKILL');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The run's work directory (generated rules and manifests), shared by its worlds

const WORK_PREFIX = 'wb-';

/** A work directory wb-<base36 pid>-*, removed at exit; first removes those of dead runs. */
export function createWorkDir(log: (m: string) => void): string {
  const tmp = tmpdir();
  const re = new RegExp(`^${WORK_PREFIX}([0-9a-z]+)-`);
  for (const d of readdirSync(tmp)) {
    const m = re.exec(d);
    if (!m || benchAlive(parseInt(m[1]!, 36))) continue;
    log(`bench: removing stale work dir ${join(tmp, d)}`);
    rmSync(join(tmp, d), { recursive: true, force: true });
  }
  const dir = mkdtempSync(join(tmp, `${WORK_PREFIX}${process.pid.toString(36)}-`));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** True if pid is a live bench orchestrator. */
function benchAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bench/run');
  } catch {
    return false;
  }
}
