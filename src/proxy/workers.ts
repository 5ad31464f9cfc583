// --workers N: N worker processes, each a whole data plane (src/proxy/core.ts) that binds every
// listener with SO_REUSEPORT, so that the kernel spreads new connections over them. The
// primary keeps the admin socket and the metrics listener: it validates a snapshot once, then
// prepares it in every worker and commits it in every worker only when all prepared (a worker
// that cannot bind a listener makes every worker abort). Flows come back from the workers in
// batches, only while someone follows; metrics are asked for at scrape time and aggregated.
// A worker that dies is started again (after RESTART_DELAY_MS) and given the running snapshot;
// meanwhile the others take its share of new connections.
//
// IPC messages (JSON over the child_process channel):
//   primary → worker: {t:'call', id, op:'prepare'|'commit'|'abort'|'metrics'|'drain', arg?}
//                     {t:'flows', on}
//   worker → primary: {t:'ready'}, {t:'reply', id, ok, value?, error?}, {t:'flows', lines}
import { fork, type ChildProcess } from 'node:child_process';
import type { ProxySnapshot } from '../contract/proxy-snapshot.js';
import type { Logger } from '../lib/log.js';
import type { DataPlane, MetricsJson } from './core.js';

const RESTART_DELAY_MS = 500;

export type Call = { t: 'call'; id: number; op: 'prepare' | 'commit' | 'abort' | 'metrics' | 'drain'; arg?: unknown };
export type ToWorker = Call | { t: 'flows'; on: boolean };
export type FromWorker =
  | { t: 'ready' }
  | { t: 'reply'; id: number; ok: boolean; value?: unknown; error?: string }
  | { t: 'flows'; lines: string[] };

export interface WorkerOptions {
  /** The worker's entry script (build/js/src/proxy/worker.js). */
  entry: string;
  args: string[];
  execArgv: string[];
  log: Logger;
  onFlows: (lines: string[]) => void;
  /** A restarted worker is ready: give it the running snapshot. */
  onRestart: (w: WorkerPlane) => Promise<void>;
}

export class WorkerPlane implements DataPlane {
  private child: ChildProcess | undefined;
  private ready: Promise<void> = Promise.resolve();
  private seq = 0;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private flowsOn = false;
  private stopping = false;
  alive = false;

  constructor(
    readonly index: number,
    private readonly opts: WorkerOptions,
  ) {}

  start(): Promise<void> {
    const child = fork(this.opts.entry, this.opts.args, {
      execArgv: this.opts.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.t !== 'ready') return;
        child.off('message', onMessage);
        child.off('exit', onEarlyExit);
        this.alive = true;
        resolve();
      };
      const onEarlyExit = (code: number | null) =>
        reject(new Error(`worker ${this.index} exited (${code}) before it was ready`));
      child.on('message', onMessage);
      child.once('exit', onEarlyExit);
    });
    child.on('message', (m: FromWorker) => this.onMessage(m));
    child.once('exit', (code, signal) => this.onExit(code, signal));
    return this.ready.then(() => {
      if (this.flowsOn) this.send({ t: 'flows', on: true });
    });
  }

  private onMessage(m: FromWorker): void {
    if (m.t === 'reply') {
      const c = this.calls.get(m.id);
      if (!c) return;
      this.calls.delete(m.id);
      if (m.ok) c.resolve(m.value);
      else c.reject(new Error(m.error ?? 'the worker failed'));
    } else if (m.t === 'flows') this.opts.onFlows(m.lines);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.alive = false;
    for (const c of this.calls.values()) c.reject(new Error(`worker ${this.index} exited (${signal ?? code})`));
    this.calls.clear();
    if (this.stopping) return;
    this.opts.log.error('worker exited: restarting it', { worker: this.index, code, signal });
    setTimeout(() => {
      if (this.stopping) return;
      this.start().then(
        () => this.opts.onRestart(this),
        (err: Error) => this.opts.log.error('worker restart failed', { worker: this.index, error: err.message }),
      );
    }, RESTART_DELAY_MS);
  }

  private send(m: ToWorker): void {
    if (this.child?.connected) this.child.send(m);
  }

  private async call<T>(op: Call['op'], arg?: unknown): Promise<T> {
    await this.ready;
    const child = this.child;
    if (!child?.connected || !this.alive) throw new Error(`worker ${this.index} is not running`);
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ t: 'call', id, op, ...(arg !== undefined && { arg }) } satisfies Call);
    });
  }

  prepare(snapshot: ProxySnapshot): Promise<void> {
    return this.call('prepare', snapshot);
  }
  commit(): Promise<void> {
    return this.call('commit');
  }
  abort(): Promise<void> {
    return this.call('abort');
  }
  metrics(): Promise<MetricsJson> {
    return this.call('metrics');
  }
  setFlowsWanted(on: boolean): void {
    this.flowsOn = on;
    this.send({ t: 'flows', on });
  }

  async drain(graceMs: number): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    await this.call('drain', graceMs).catch(() => {});
    // The worker exits once drained; if it does not, it is made to.
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  }
}
