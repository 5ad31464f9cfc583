// Flow events in `make bench`: how many events a second the agent's observer takes from the
// kernel without losing any, and what it costs the agent.
//
// One world, one weftd (--source dir:, the world's pins). The bench process loads lxc.o on the
// agent's pinned maps and runs its pod program with BPF_PROG_TEST_RUN on a packet from an
// interface no endpoint owns: each run is one drop event into the agent's ring buffer. Events
// are produced at a set rate (batches of a millisecond's worth, paced by the clock) for a few
// seconds per step, rates doubling from 125,000 a second, and for each step the bench reads
// from `GET /v1/status`:
//   - read by the observer, lost in the kernel (ring full) and lost to decoding: read + lost
//     must equal what was produced (the bench fails loudly otherwise);
//   - the agent's CPU seconds over the step (/proc/PID/stat), as a share of one CPU per
//     10,000 events a second;
//   - with one follower, `weft observe -f -o json` in a process of its own, the flows it printed
//     (decoded and enriched by the agent, a JSON line each) and the losses it reported.
// The highest step with nothing lost in the kernel or decoding is the lossless rate.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { BpfObject, progTestRun, type ProgramHandle } from '../src/datapath/libbpf.js';
import { pinLayout } from '../src/datapath/pins.js';
import { defaultObjectDir } from '../src/datapath/programs.js';
import type { AgentStatus } from '../src/contract/agent-api.js';
import { AgentProcess, WEFT } from '../test/harness/agent.js';
import { World } from '../test/harness/world.js';

export interface FlowBenchOptions {
  /** Seconds per rate step. */
  seconds: number;
  /** The highest rate tried, events a second. */
  maxRate: number;
  log: (m: string) => void;
  register: (w: World) => void;
}

export interface FlowStep {
  /** Events a second asked for, and what the producer achieved. */
  targetRate: number;
  producedRate: number;
  produced: number;
  read: number;
  lostKernel: number;
  lostDecode: number;
  /** Agent CPU (all threads) over the step, as a share of one CPU. */
  agentCpu: number;
  /** agentCpu per 10,000 events a second. */
  cpuPer10k: number;
  /** Flows a follower of the flow API received, and the losses it was told of. */
  followed: number;
  followLost: number;
}

export interface FlowResult {
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  steps: FlowStep[];
  /** The highest produced rate with nothing lost before the flow ring. */
  losslessRate?: number;
}

const START_RATE = 125_000;
const BATCH_MS = 1;

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Produces `rate` events a second for `seconds`, in batches of BATCH_MS worth, paced by
 *  the clock (a busy wait: timers are too coarse at these rates). Returns how many. */
function produce(prog: ProgramHandle, rate: number, seconds: number): { produced: number; elapsed: number } {
  const pkt = Buffer.alloc(64);
  pkt.writeUInt16BE(0x0800, 12);
  const batch = Math.max(1, Math.round((rate * BATCH_MS) / 1000));
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  let produced = 0;
  while (produced < total) {
    const n = Math.min(batch, total - produced);
    progTestRun(prog.fd, pkt, prog.name, n);
    produced += n;
    const due = t0 + (produced / rate) * 1000;
    while (performance.now() < due) {
      // wait for this batch's slot
    }
  }
  return { produced, elapsed: (performance.now() - t0) / 1000 };
}

/** `weft observe -f -o json` in a process of its own (this one busy-waits while producing),
 *  counting the flows it prints and the losses it reports, until stopped. */
function follow(world: World, stateDir: string): { stop(): Promise<{ flows: number; lost: number }> } {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'weft-bench-follow-'));
  const out = join(dir, 'count');
  const err = join(dir, 'stderr');
  // The counter outlives the SIGINT that stops the group: it counts until weft closes the pipe.
  const counter = `process.on('SIGINT', () => {}); let n = 0; process.stdin.on('data', (d) => { for (const c of d) if (c === 10) n++; }).on('end', () => require('fs').writeFileSync(process.argv[1], String(n)));`;
  const child = spawn(
    'sh',
    [
      '-c',
      `"$0" observe --state-dir "$1" -f -o json --type drop 2>"$2" | "$3" -e "$4" "$5"`,
      WEFT,
      stateDir,
      err,
      process.execPath,
      counter,
      out,
    ],
    { detached: true, stdio: 'ignore' },
  );
  world.adopt(child.pid!);
  const exited = new Promise((r) => child.once('exit', r));
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 500)); // let it drain what is in flight
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        /* gone */
      }
      await exited;
      const flows = Number(fs.readFileSync(out, 'utf8').trim() || 0);
      const lost = [...fs.readFileSync(err, 'utf8').matchAll(/(\d+) flows? lost/g)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
      fs.rmSync(dir, { recursive: true, force: true });
      return { flows, lost };
    },
  };
}

export async function measureFlows(o: FlowBenchOptions): Promise<FlowResult> {
  const world = World.create({ kind: 'bench' });
  o.register(world);
  const agent = new AgentProcess(world, { where: 'node' });
  let obj: BpfObject | undefined;
  const steps: FlowStep[] = [];
  try {
    await agent.start();
    obj = BpfObject.load(join(defaultObjectDir(), 'lxc.o'), { mapPinDir: pinLayout(agent.bpfRoot).maps });
    const prog = obj.programs().find((p) => p.name === 'lxc_from_pod');
    if (!prog) return { status: 'unavailable', reason: 'no lxc_from_pod in lxc.o', steps };
    const pid = agent.pid!;
    const observer = async () => {
      const s = (await agent.get<AgentStatus>('/v1/status')).observer;
      if (!s) throw new Error('the agent reports no observer');
      return s;
    };
    for (let rate = START_RATE; rate <= o.maxRate; rate *= 2) {
      const before = await observer();
      const follower = follow(world, agent.stateDir);
      await new Promise((r) => setTimeout(r, 100));
      const cpu0 = cpuSeconds(pid);
      const { produced, elapsed } = produce(prog, rate, o.seconds);
      // Let the observer finish the step: it is done when everything is accounted for.
      const want = before.flowsTotal + before.lost.kernel + before.lost.decode + produced;
      let after = await observer();
      for (let i = 0; i < 100 && after.flowsTotal + after.lost.kernel + after.lost.decode < want; i++) {
        await new Promise((r) => setTimeout(r, 20));
        after = await observer();
      }
      const cpu = (cpuSeconds(pid) - cpu0) / elapsed;
      const followed = await follower.stop();
      const step: FlowStep = {
        targetRate: rate,
        producedRate: produced / elapsed,
        produced,
        read: after.flowsTotal - before.flowsTotal,
        lostKernel: after.lost.kernel - before.lost.kernel,
        lostDecode: after.lost.decode - before.lost.decode,
        agentCpu: cpu,
        cpuPer10k: cpu / (produced / elapsed / 10_000),
        followed: followed.flows,
        followLost: followed.lost,
      };
      steps.push(step);
      o.log(
        `bench: flows at ${Math.round(step.producedRate).toLocaleString('en-US')}/s: read ${step.read}, lost ${step.lostKernel} (kernel) ${step.lostDecode} (decode), agent CPU ${(cpu * 100).toFixed(0)}%, follower got ${step.followed} (told of ${step.followLost} lost)`,
      );
      if (step.read + step.lostKernel + step.lostDecode !== produced) {
        return {
          status: 'failed',
          reason: `produced ${produced} but the agent accounts for ${step.read + step.lostKernel + step.lostDecode}`,
          steps,
        };
      }
    }
    const lossless = steps.filter((s) => s.lostKernel === 0 && s.lostDecode === 0).map((s) => s.producedRate);
    return { status: 'ok', steps, ...(lossless.length && { losslessRate: Math.max(...lossless) }) };
  } catch (err) {
    return { status: 'unavailable', reason: (err as Error).message, steps };
  } finally {
    obj?.close();
    await agent.stop();
    await world.dispose();
  }
}

export function flowsReport(r: FlowResult): string {
  if (r.status !== 'ok' && r.steps.length === 0) return `flow events: ${r.status} (${r.reason})`;
  const lines = [
    `flow events (drop events from BPF_PROG_TEST_RUN into the agent's ring; ${r.status}${r.reason ? `: ${r.reason}` : ''}):`,
  ];
  lines.push('  rate/s      read        lost kernel  lost decode  agent CPU  CPU per 10k/s  follower got (lost)');
  for (const s of r.steps) {
    lines.push(
      `  ${Math.round(s.producedRate).toLocaleString('en-US').padEnd(11)} ${String(s.read).padEnd(11)} ${String(s.lostKernel).padEnd(12)} ${String(s.lostDecode).padEnd(12)} ${`${(s.agentCpu * 100).toFixed(0)}%`.padEnd(10)} ${`${(s.cpuPer10k * 100).toFixed(2)}%`.padEnd(14)} ${s.followed} (${s.followLost})`,
    );
  }
  lines.push(
    `  lossless up to: ${r.losslessRate ? `${Math.round(r.losslessRate).toLocaleString('en-US')} events/s` : 'none of the steps'}`,
  );
  return lines.join('\n');
}
