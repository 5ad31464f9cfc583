// weft-proxy under weftd: started, restarted when it exits (with backoff), told the current
// snapshot whenever it (re)starts, and followed for its L7 flows. In Kubernetes the proxy may
// run as a container of its own: then only the socket is shared (--manage-proxy=false).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiRequest, apiStream } from '../lib/unix-http.js';
import type { Logger } from '../lib/log.js';
import type { ProxyStatus } from '../contract/agent-api.js';
import type { Flow } from '../contract/flow.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../bin/weft-proxy');
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
const READY_POLL_MS = 50;
const MAX_POLL_MS = 1000;

export interface SupervisorOptions<S extends { version: number }> {
  adminSocket: string;
  manage: boolean;
  metricsAddress: string;
  logLevel: string;
  log: Logger;
  /** The snapshot the proxy should hold now (undefined: nothing to send yet). */
  snapshot: () => S | undefined;
  /** The proxy accepted a snapshot. */
  onAccepted: (snapshot: S) => void;
  /** L7 flows the proxy reported, and how many it dropped. */
  onFlow: (flow: Flow) => void;
  onLost: (count: number) => void;
}

export class ProxySupervisor<S extends { version: number }> {
  private child: ChildProcess | undefined;
  private restarts = 0;
  private backoff = MIN_BACKOFF_MS;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private version = 0;
  private lastError: string | undefined;
  private pushing: Promise<void> | undefined;
  private pushAgain = false;
  private flows: AbortController | undefined;
  private started = false;
  /** The proxy answers on its socket: snapshots can go. */
  private ready = false;

  constructor(private readonly opts: SupervisorOptions<S>) {}

  /** Starts the proxy (or, unmanaged, starts talking to it); idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.opts.manage) this.spawn();
    else void this.connect();
  }

  status(): ProxyStatus {
    return {
      managed: this.opts.manage,
      running: this.opts.manage ? this.child !== undefined : this.ready,
      ...(this.child?.pid !== undefined && { pid: this.child.pid }),
      restarts: this.restarts,
      version: this.version,
      ...(this.lastError && { lastError: this.lastError }),
    };
  }

  /** Sends the current snapshot now (coalescing: one push at a time, the latest wins). */
  push(): void {
    if (!this.started || !this.ready) return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    this.pushing = this.pushOnce().finally(() => {
      this.pushing = undefined;
      if (this.pushAgain) {
        this.pushAgain = false;
        this.push();
      }
    });
  }

  private async pushOnce(): Promise<void> {
    const snap = this.opts.snapshot();
    if (!snap || snap.version <= this.version) return;
    try {
      await apiRequest<{ version: number }>(this.opts.adminSocket, 'PUT', '/v1/snapshot', snap, 10_000);
      this.version = snap.version;
      this.lastError = undefined;
      this.opts.log.info('weft-proxy took the snapshot', { version: snap.version });
      this.opts.onAccepted(snap);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.opts.log.error('weft-proxy refused the snapshot; it keeps its last good one', {
        version: snap.version,
        error: this.lastError,
      });
    }
  }

  private spawn(): void {
    fs.rmSync(this.opts.adminSocket, { force: true });
    const child = spawn(
      BIN,
      [
        '--admin-socket',
        this.opts.adminSocket,
        '--metrics-address',
        this.opts.metricsAddress,
        '--log-level',
        this.opts.logLevel,
      ],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    this.child = child;
    this.opts.log.info('weft-proxy started', { pid: child.pid, admin_socket: this.opts.adminSocket });
    child.once('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.ready = false;
      this.version = 0; // a new process holds nothing
      this.flows?.abort();
      if (this.stopped) return;
      this.restarts++;
      this.lastError = `exited (${signal ?? `code ${code}`})`;
      this.opts.log.error('weft-proxy exited; restarting it', { code, signal, restart_in_ms: this.backoff });
      this.timer = setTimeout(() => this.spawn(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    });
    child.once('error', (err) => this.opts.log.error('weft-proxy could not start', { error: err.message }));
    void this.connect();
  }

  /** Waits for the admin socket, sends the snapshot and follows the flows. */
  private async connect(): Promise<void> {
    const child = this.child;
    for (let wait = READY_POLL_MS; ; wait = Math.min(wait * 2, MAX_POLL_MS)) {
      if (this.stopped || (this.opts.manage && this.child !== child)) return;
      try {
        await apiRequest(this.opts.adminSocket, 'GET', '/healthz', undefined, 1000);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    this.backoff = MIN_BACKOFF_MS;
    this.ready = true;
    this.opts.log.info('weft-proxy ready', { admin_socket: this.opts.adminSocket });
    this.push();
    this.followFlows();
  }

  private followFlows(): void {
    const ac = new AbortController();
    this.flows = ac;
    apiStream(
      this.opts.adminSocket,
      '/v1/flows?follow=1',
      (item) => {
        const it = item as { flow?: Flow; lost?: { count?: unknown } };
        if (it.flow) this.opts.onFlow(it.flow);
        else if (typeof it.lost?.count === 'number') this.opts.onLost(it.lost.count);
      },
      { signal: ac.signal },
    ).then(
      () => this.streamEnded(ac, 'the proxy ended it'),
      (err: Error) => this.streamEnded(ac, err.message),
    );
  }

  /** The flow stream ends when the proxy goes away. A managed proxy's exit is handled where it
   *  exits; an external one (a container of its own) is waited for and, once back, given the
   *  snapshot again: a restarted proxy holds nothing, and the kernel still sends it the routed
   *  Services' connections. */
  private streamEnded(ac: AbortController, why: string): void {
    if (ac.signal.aborted || this.stopped || this.flows !== ac) return;
    if (this.opts.manage) {
      if (!this.child) return;
      this.opts.log.warn('lost the weft-proxy flow stream; following again', { error: why });
      this.timer = setTimeout(() => this.followFlows(), MIN_BACKOFF_MS);
      return;
    }
    this.ready = false;
    this.version = 0;
    this.restarts++;
    this.lastError = `went away (${why})`;
    this.opts.log.error('weft-proxy went away; waiting for it', { error: why, admin_socket: this.opts.adminSocket });
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.flows?.abort();
    const child = this.child;
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 7000);
    await exited;
    clearTimeout(t);
  }
}
