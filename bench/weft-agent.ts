// Starting and stopping weftd for the bench, tolerant of an agent that is not ready yet:
// every failure becomes an Error whose message says why, for the table's "unavailable" cell.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBpffs, killPidSync, onCleanup, run, runProc, spawnProc, type Proc } from './topology.js';

export interface WeftOptions {
  repoRoot: string;
  manifestsDir: string;
  /** A directory under /sys/fs/bpf used as --bpf-root; removed on stop. */
  bpfRoot: string;
  cgroupDir: string;
  /** Network namespace the agent and CLI run in (the node). */
  netns: string;
  cpus?: string;
  /** The agent is ready when `service list` shows this address (or it logs "datapath synced"). */
  expectClusterIP: string;
  readyTimeoutMs: number;
  /** Parent directory for the agent's --state-dir (a fresh subdirectory is made). */
  workDir?: string;
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
  if (isBpffs('/sys/fs/bpf')) return;
  log('bench: mounting bpffs at /sys/fs/bpf');
  run('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
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
  return left.length > 0 ? `uninstall left ${left.length} pins under ${bpfRoot} (removed): ${left.slice(0, 5).join(', ')}` : undefined;
}

function uninstallSync(repoRoot: string, netns: string, bpfRoot: string, stateDir: string): void {
  const { weft } = binaries(repoRoot);
  try {
    execFileSync('nsenter', [`--net=/run/netns/${netns}`, '--', weft, '--bpf-root', bpfRoot, '--state-dir', stateDir, 'uninstall'], {
      stdio: 'ignore',
      timeout: 30_000,
    });
  } catch {
    /* fall through to removing pins */
  }
  removePins(bpfRoot);
  rmSync(stateDir, { recursive: true, force: true });
}

/** Starts weftd and waits until it serves the expected service. Throws with a reason. */
export async function startWeft(o: WeftOptions): Promise<WeftAgent> {
  const reason = weftUnavailableReason(o.repoRoot);
  if (reason) throw new Error(reason);
  ensureBpffs(o.log);
  const { weftd, weft } = binaries(o.repoRoot);
  const stateDir = mkdtempSync(join(o.workDir ?? tmpdir(), 'wb-weft-state-'));
  mkdirSync(o.bpfRoot, { recursive: true });
  // Signal path: kill, uninstall, remove pins and state, synchronously.
  let procPid = 0;
  const unregister = onCleanup(`weftd ${o.bpfRoot}`, () => {
    if (procPid) killPidSync(procPid, 5000);
    uninstallSync(o.repoRoot, o.netns, o.bpfRoot, stateDir);
  });
  const t0 = process.hrtime.bigint();
  const since = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
  const proc = spawnProc(
    [weftd, '--source', `dir:${o.manifestsDir}`, '--bpf-root', o.bpfRoot, '--cgroup', o.cgroupDir, '--state-dir', stateDir],
    { name: 'weftd', netns: o.netns, ...(o.cpus !== undefined ? { cpus: o.cpus } : {}) },
  );
  procPid = proc.pid;
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
    const cli = await runProc([weft, '--state-dir', stateDir, '--bpf-root', o.bpfRoot, 'service', 'list', '-o', 'json'], { name: 'weft service list', netns: o.netns }, 30_000);
    if (cli.code !== 0) throw new Error(`weft service list: ${(cli.stderr || cli.stdout).trim().split('\n').slice(-1)[0] ?? `exit ${cli.code}`}`);
    return cli.stdout;
  };

  const stop = async (): Promise<string[]> => {
    const warnings: string[] = [];
    await proc.stop(10_000);
    const un = await runProc([weft, '--bpf-root', o.bpfRoot, '--state-dir', stateDir, 'uninstall'], { name: 'weft uninstall', netns: o.netns }, 30_000);
    if (un.code !== 0) {
      warnings.push(`weft uninstall exited ${un.timedOut ? 'by timeout' : (un.signal ?? un.code)}: ${(un.stderr || un.stdout).trim().split('\n').slice(-2).join(' | ')}`);
    }
    const left = removePins(o.bpfRoot);
    if (left) warnings.push(left);
    rmSync(stateDir, { recursive: true, force: true });
    unregister();
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
        return { proc, stateDir, readySeconds: syncedSeconds, syncedSeconds, readyBy: 'datapath-synced', waitSynced, listServices, stop };
      }
      const cli = await runProc([weft, '--state-dir', stateDir, '--bpf-root', o.bpfRoot, 'service', 'list', '-o', 'json'], { name: 'weft service list', netns: o.netns }, 5_000);
      if (cli.code === 0 && cli.stdout.includes(o.expectClusterIP)) {
        return { proc, stateDir, readySeconds: since(), syncedSeconds, readyBy: 'service-list', waitSynced, listServices, stop };
      }
      lastCli = (cli.stderr || cli.stdout).trim().split('\n').slice(-1)[0] ?? '';
      if (Date.now() > deadline) {
        throw new Error(`not ready after ${o.readyTimeoutMs / 1000} s (last CLI: ${lastCli.slice(0, 160) || 'no output'}; agent: ${proc.lines.slice(-1)[0]?.slice(0, 160) ?? 'no output'})`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (e) {
    const warnings = await stop();
    const extra = warnings.length ? ` [${warnings.join('; ')}]` : '';
    throw new Error(`${(e as Error).message}${extra}`);
  }
}
