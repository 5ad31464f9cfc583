// The CNI plugin as a container runtime runs it: build/bin/weft-cni with CNI_* in its
// environment and the network configuration on stdin, started in the world's node namespace
// (where weftd must run too: the host veths live there); and sandboxes, the network namespaces
// a runtime would have made for its containers.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { CniResult, NetConf } from '../../src/contract/cni.js';
import { REPO } from './agent.js';
import type { Pod, World } from './world.js';

export const WEFT_CNI = path.join(REPO, 'build/bin/weft-cni');

export interface CniCall {
  command: string;
  config?: object | string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  /** Variables to leave out of the environment (to test their absence). */
  omit?: string[];
}

export interface CniOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json?: Record<string, unknown>;
  /** Wall time of the invocation. */
  ms: number;
}

/** Runs the plugin in the node namespace as a runtime would, bounded by timeoutMs. */
export async function cni(world: World, call: CniCall, timeoutMs = 45_000): Promise<CniOutcome> {
  const env: Record<string, string> = { CNI_COMMAND: call.command, CNI_PATH: path.dirname(WEFT_CNI) };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifName !== undefined) env.CNI_IFNAME = call.ifName;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  for (const k of call.omit ?? []) delete env[k];
  // world.spawn adds the test runner's environment: `env -u` takes out every CNI_* variable
  // this call does not set, so the plugin sees only what a runtime would have given it.
  const unset = Object.keys(process.env)
    .filter((k) => k.startsWith('CNI_'))
    .concat(['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'])
    .filter((k, i, all) => !(k in env) && all.indexOf(k) === i)
    .flatMap((k) => ['-u', k]);
  const t0 = performance.now();
  const child = world.spawn('node', ['env', ...unset, WEFT_CNI], { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin?.on('error', () => {}); // a plugin that exits before reading stdin
  child.stdin?.end(
    call.config === undefined ? '' : typeof call.config === 'string' ? call.config : JSON.stringify(call.config),
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  const ms = performance.now() - t0;
  let json: Record<string, unknown> | undefined;
  try {
    json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json, ms };
}

export interface Sandbox {
  name: string;
  /** What a runtime passes as CNI_NETNS. */
  path: string;
  /** For World.spawn/run and the pod fixtures, which only use the namespace's name. */
  where: Pod;
}

/** Network namespaces standing for containers: <world prefix>-cni<N>, made with
 *  world.addNetns, so the world removes them even if the test dies. */
export class Sandboxes {
  private n = 0;

  constructor(readonly world: World) {}

  add(): Sandbox {
    const netnsPath = this.world.addNetns(`cni${++this.n}`);
    const name = path.basename(netnsPath);
    return { name, path: netnsPath, where: { name, netns: name, ipv4: '', ipv6: '', hostVeth: '' } };
  }

  /** Removes one namespace now (a container going away), killing what still runs in it. The
   *  world's later removal of it finds nothing to do. */
  remove(name: string): void {
    let pids: string[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')
        .filter(Boolean);
    } catch {
      /* gone already */
    }
    for (const pid of pids)
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  }
}

/** `ip -j ...` in a namespace, parsed. */
export function ipJson<T = Record<string, unknown>[]>(netns: string, ...args: string[]): T {
  const out = execFileSync('ip', ['-n', netns, '-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out || '[]') as T;
}

/** `ip ...` in a namespace, for changes (breaking a pod on purpose). */
export function ipIn(netns: string, ...args: string[]): void {
  execFileSync('ip', ['-n', netns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A sysctl as a namespace sees it (read through nsenter, so /proc/sys/net is that namespace's). */
export function sysctlIn(netns: string, key: string): string {
  return execFileSync('nsenter', [`--net=/run/netns/${netns}`, 'cat', `/proc/sys/${key.replaceAll('.', '/')}`], {
    encoding: 'utf8',
  }).trim();
}

/** A pod as a runtime makes it: CNI ADD through the plugin to `agentSocket` for a sandbox,
 *  named by CNI_ARGS; its addresses from the result. Fails the test when ADD fails. */
export async function addCniPod(
  world: World,
  agentSocket: string,
  namespace: string,
  name: string,
  box: Sandbox,
): Promise<{ ipv4: string; ipv6?: string }> {
  const r = await cni(world, {
    command: 'ADD',
    containerId: `pod-${namespace}-${name}-${world.id}`,
    netns: box.path,
    ifName: 'eth0',
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name}`,
    config: { cniVersion: '1.1.0', name: 'weft', type: 'weft-cni', agentSocket, mtu: 1500 } satisfies NetConf,
  });
  if (r.code !== 0) throw new Error(`CNI ADD ${namespace}/${name} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
  const ips = ((r.json as CniResult | undefined)?.ips ?? []).map((i) => i.address.replace(/\/\d+$/, ''));
  const ipv4 = ips.find((a) => !a.includes(':'));
  if (!ipv4) throw new Error(`CNI ADD ${namespace}/${name} gave no IPv4 address: ${r.stdout}`);
  const ipv6 = ips.find((a) => a.includes(':'));
  return { ipv4, ...(ipv6 && { ipv6 }) };
}
