// CNI ADD and DEL latency: Weft's plugin (with the real weftd, the datapath programmed before
// ADD returns) against the reference bridge + host-local plugins, measured the same way in the
// same run: each call is one plugin process started in the node namespace, as a runtime does,
// timed from spawn to exit. Pods alternate between the two plugins, so noise hits both.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { World } from '../test/harness/world.js';
import { AgentProcess, REPO } from '../test/harness/agent.js';

export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface CniLatency {
  status: 'ok' | 'unavailable';
  reason?: string;
  pods: number;
  weft?: { add: LatencySummary; del: LatencySummary };
  reference?: { add: LatencySummary; del: LatencySummary };
}

const REFERENCE_BIN = '/usr/lib/cni';

function summarize(ms: number[]): LatencySummary {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: s[s.length - 1]! };
}

/** Runs one CNI command in the node namespace; resolves with its wall time, or throws with
 *  the plugin's own error output. */
function invoke(world: World, plugin: string, env: Record<string, string>, conf: object): Promise<number> {
  const t0 = performance.now();
  const child = spawn('nsenter', [`--net=/run/netns/${world.nodeNetns}`, plugin], {
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_PATH: REFERENCE_BIN,
      CNI_IFNAME: 'eth0',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.end(JSON.stringify(conf));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code === 0) resolve(ms);
      else reject(new Error(`${plugin} ${env.CNI_COMMAND} exited ${code}: ${out.trim()}`));
    });
  });
}

export async function measureCniLatency(pods: number, register: (w: World) => void): Promise<CniLatency> {
  const weftPlugin = join(REPO, 'build/bin/weft-cni');
  if (!existsSync(weftPlugin)) return { status: 'unavailable', reason: `${weftPlugin} not built`, pods };
  if (!existsSync(join(REFERENCE_BIN, 'bridge')))
    return { status: 'unavailable', reason: `reference plugins not in ${REFERENCE_BIN}`, pods };
  const world = World.create({ kind: 'bench' });
  register(world);
  const agent = new AgentProcess(world, { where: 'node', extraArgs: ['--pod-cidr', '10.244.0.0/16,fd00:10:244::/64'] });
  try {
    await agent.start();
    const confs = {
      weft: { cniVersion: '1.1.0', name: 'weft', type: 'weft-cni', agentSocket: agent.socket, mtu: 1500 },
      reference: {
        cniVersion: '1.0.0',
        name: 'reference',
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true, // sets forwarding in the node namespace only
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: '10.245.0.0/16' }], [{ subnet: 'fd00:10:245::/64' }]],
          dataDir: join(world.stateDir, 'host-local'),
        },
      },
    };
    const plugins = { weft: weftPlugin, reference: join(REFERENCE_BIN, 'bridge') };
    const times = {
      weft: { add: [] as number[], del: [] as number[] },
      reference: { add: [] as number[], del: [] as number[] },
    };
    const netns = { weft: [] as string[], reference: [] as string[] };
    for (let i = 0; i < pods; i++) {
      netns.weft.push(world.addNetns(`w${i}`));
      netns.reference.push(world.addNetns(`r${i}`));
    }
    for (const phase of ['ADD', 'DEL'] as const) {
      for (let i = 0; i < pods; i++) {
        // Alternate which plugin goes first, so neither always runs on a warmer machine.
        const order = i % 2 === 0 ? (['weft', 'reference'] as const) : (['reference', 'weft'] as const);
        for (const which of order) {
          const ms = await invoke(
            world,
            plugins[which],
            {
              CNI_COMMAND: phase,
              CNI_CONTAINERID: `${which}-${i}`,
              CNI_NETNS: phase === 'ADD' ? netns[which][i]! : '',
            },
            confs[which],
          );
          times[which][phase === 'ADD' ? 'add' : 'del'].push(ms);
        }
      }
    }
    return {
      status: 'ok',
      pods,
      weft: { add: summarize(times.weft.add), del: summarize(times.weft.del) },
      reference: { add: summarize(times.reference.add), del: summarize(times.reference.del) },
    };
  } catch (e) {
    return { status: 'unavailable', reason: (e as Error).message, pods };
  } finally {
    await agent.stop();
    await world.dispose();
  }
}
