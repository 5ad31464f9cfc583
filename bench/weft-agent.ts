// Starting and stopping weftd for the bench, tolerant of an agent that is not ready yet:
// every failure becomes an Error whose message says why, for the table's "unavailable" cell.
// The agent and the CLI run in the world's node namespace, with the world's pin root and
// cgroup; if the bench dies, the world's cleanup kills the agent and removes its pins.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { World } from '../test/harness/world.js';
import { watch, type Proc } from './topology.js';

export interface WeftOptions {
  repoRoot: string;
  manifestsDir: string;
  /** The agent runs in its node namespace, attaches to its cgroup, pins under its bpfRoot
   *  (removed on stop) and keeps its state in its stateDir. */
  world: World;
  cpus?: string;
  /** The agent is ready when `service list` shows this address (or it logs "datapath synced"). */
  expectClusterIP: string;
  readyTimeoutMs: number;
  log: (m: string) => void;
}

export interface WeftAgent {
  proc: Proc;
  stateDir: string;
  /** Seconds from spawn until ready (service visible or "datapath synced"). */
  readySeconds: number;
  /** Seconds from spawn until the "datapath synced" line, if it was seen by the time of ready. */
  syncedSeconds: number | undefined;
  /** Waits (bounded) for the "datapath synced" line: seconds from spawn and the line. */
  waitSynced(timeoutMs: number): Promise<{ seconds: number; line: string } | undefined>;
  /** How readiness was detected. */
  readyBy: 'service-list' | 'datapath-synced';
  /** `weft service list -o json` output (throws on failure). */
  listServices(): Promise<string>;
  /** Stops the agent and removes its pins. Returns warnings (never throws). */
  stop(): Promise<string[]>;
}

const SYNCED = /datapath synced/i;

/** logfmt fields of a line (key=value, values optionally JSON-quoted). */
export function logfmtFields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    const v = m[2]!;
    try {
      out[m[1]!] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
    } catch {
      out[m[1]!] = v;
    }
  }
  return out;
}

/** bin/weftd and bin/weft, or the programs named by WEFT_BENCH_WEFTD / WEFT_BENCH_WEFT. */
function binaries(repoRoot: string): { weftd: string; weft: string; overridden: boolean } {
  const weftd = process.env['WEFT_BENCH_WEFTD'];
  const weft = process.env['WEFT_BENCH_WEFT'];
  return {
    weftd: weftd || join(repoRoot, 'bin', 'weftd'),
    weft: weft || join(repoRoot, 'bin', 'weft'),
    overridden: Boolean(weftd || weft),
  };
}

/** Why the agent cannot be started at all, or undefined when it might be. */
export function weftUnavailableReason(repoRoot: string): string | undefined {
  const { weftd, weft, overridden } = binaries(repoRoot);
  if (!existsSync(weftd) || !existsSync(weft)) return `${weftd} or ${weft} missing`;
  if (overridden) return undefined;
  const agentMain = join(repoRoot, 'build', 'js', 'src', 'agent', 'main.js');
  if (!existsSync(agentMain)) return 'agent not built (build/js/src/agent/main.js missing)';
  const cliMain = join(repoRoot, 'build', 'js', 'src', 'cli', 'main.js');
  if (!existsSync(cliMain)) return 'CLI not built (build/js/src/cli/main.js missing)';
  return undefined;
}

/** Mounts bpffs at /sys/fs/bpf if it is not mounted (left mounted: others may use it). */
export function ensureBpffs(log: (m: string) => void): void {
  const mounted = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => {
      const f = l.split(' ');
      return f[1] === '/sys/fs/bpf' && f[2] === 'bpf';
    });
  if (mounted) return;
  log('bench: mounting bpffs at /sys/fs/bpf');
  execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function removePins(bpfRoot: string): string | undefined {
  if (!existsSync(bpfRoot)) return undefined;
  let left: string[] = [];
  try {
    left = readdirSync(bpfRoot, { recursive: true }).map(String);
  } catch {
    /* ignore */
  }
  rmSync(bpfRoot, { recursive: true, force: true });
  return left.length > 0
    ? `uninstall left ${left.length} pins under ${bpfRoot} (removed): ${left.slice(0, 5).join(', ')}`
    : undefined;
}

/** Starts weftd and waits until it serves the expected service. Throws with a reason. */
export async function startWeft(o: WeftOptions): Promise<WeftAgent> {
  const reason = weftUnavailableReason(o.repoRoot);
  if (reason) throw new Error(reason);
  ensureBpffs(o.log);
  const { weftd, weft } = binaries(o.repoRoot);
  const { world } = o;
  const bpfRoot = world.bpfRoot;
  const stateDir = mkdtempSync(join(world.stateDir, 'weftd-'));
  mkdirSync(bpfRoot, { recursive: true });
  const cli = (args: string[], timeoutMs: number) =>
    world.run('node', [weft, '--state-dir', stateDir, '--bpf-root', bpfRoot, ...args], { timeoutMs });
  const t0 = process.hrtime.bigint();
  const since = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
  const proc = watch(
    world.spawn(
      'node',
      [
        weftd,
        '--source',
        `dir:${o.manifestsDir}`,
        '--bpf-root',
        bpfRoot,
        '--cgroup',
        world.cgroupDir,
        '--state-dir',
        stateDir,
      ],
      {
        ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
      },
    ),
    'weftd',
  );
  let syncedSeconds: number | undefined;
  void proc.waitForLine(SYNCED, o.readyTimeoutMs + 60_000).then(
    () => {
      syncedSeconds ??= since();
    },
    () => undefined,
  );

  const waitSynced = async (timeoutMs: number): Promise<{ seconds: number; line: string } | undefined> => {
    try {
      const line = await proc.waitForLine(SYNCED, timeoutMs);
      syncedSeconds ??= since();
      return { seconds: syncedSeconds, line };
    } catch {
      return undefined;
    }
  };

  const listServices = async (): Promise<string> => {
    const r = await cli(['service', 'list', '-o', 'json'], 30_000);
    if (r.code !== 0)
      throw new Error(
        `weft service list: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? `exit ${r.code}`}`,
      );
    return r.stdout;
  };

  const stop = async (): Promise<string[]> => {
    const warnings: string[] = [];
    await proc.stop(10_000);
    const un = await cli(['uninstall'], 30_000);
    if (un.code !== 0) {
      warnings.push(
        `weft uninstall exited ${un.timedOut ? 'by timeout' : (un.signal ?? un.code)}: ${(un.stderr || un.stdout).trim().split('\n').slice(-2).join(' | ')}`,
      );
    }
    const left = removePins(bpfRoot);
    if (left) warnings.push(left);
    rmSync(stateDir, { recursive: true, force: true });
    return warnings;
  };

  try {
    const deadline = Date.now() + o.readyTimeoutMs;
    let lastCli = '';
    for (;;) {
      if (!proc.isRunning()) {
        const r = await proc.exited;
        throw new Error(`weftd exited (${r.signal ?? r.code}): ${proc.lines.slice(-3).join(' | ') || 'no output'}`);
      }
      if (syncedSeconds !== undefined || proc.lines.some((l) => SYNCED.test(l))) {
        syncedSeconds ??= since();
        return {
          proc,
          stateDir,
          readySeconds: syncedSeconds,
          syncedSeconds,
          readyBy: 'datapath-synced',
          waitSynced,
          listServices,
          stop,
        };
      }
      const r = await cli(['service', 'list', '-o', 'json'], 5_000);
      if (r.code === 0 && r.stdout.includes(o.expectClusterIP)) {
        return {
          proc,
          stateDir,
          readySeconds: since(),
          syncedSeconds,
          readyBy: 'service-list',
          waitSynced,
          listServices,
          stop,
        };
      }
      lastCli = (r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? '';
      if (Date.now() > deadline) {
        throw new Error(
          `not ready after ${o.readyTimeoutMs / 1000} s (last CLI: ${lastCli.slice(0, 160) || 'no output'}; agent: ${proc.lines.slice(-1)[0]?.slice(0, 160) ?? 'no output'})`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (e) {
    const warnings = await stop();
    const extra = warnings.length ? ` [${warnings.join('; ')}]` : '';
    throw new Error(`${(e as Error).message}${extra}`);
  }
}
