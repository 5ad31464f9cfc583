// The observer: a worker thread drains the kernel's events into a shared flow ring
// (ring-worker.ts); this side, on the agent's main thread, answers flow queries and feeds
// followers from that ring, decoding and enriching only the flows someone reads, and keeps the
// numbers `weft status` and the metrics show.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openPinnedMap, perCpuSlots, type RawMap } from '../datapath/libbpf.js';
import { pinLayout } from '../datapath/pins.js';
import type { Logger } from '../lib/log.js';
import { decodeFlow, type FlowContext } from './decode.js';
import { matches } from './filter.js';
import type { ObserverStatus } from '../contract/agent-api.js';
import type { Flow, FlowStreamItem, LostStage } from '../contract/flow.js';
import { FlowRing } from './flow-ring.js';
import type { FlowQuery, FlowSource, FlowSubscription } from './flow-source.js';
import { CONTROL, STAT, dropCounts, flowCounts, type WorkerInit } from './worker-shared.js';

const RESTART_MS = 2000;
const RATE_WINDOW_S = 10;
/** Records a follower pass handles before yielding to the event loop. */
const PASS_RECORDS = 8192;
/** Followers are also checked this often, in case a wake-up raced with their reads. */
const FOLLOW_TICK_MS = 200;

export interface ObserverOptions {
  bpfRoot: string;
  /** Flows the ring holds (--flow-buffer-size). */
  capacity: number;
  /** What the agent knows about addresses, endpoints, services and rules. */
  context: Omit<FlowContext, 'wallTimeNs'>;
  log: Logger;
}

interface Follower {
  query: FlowQuery;
  deliver: (item: FlowStreamItem) => boolean;
  /** Next sequence number to read. */
  cursor: number;
  /** Next L7 flow to read (their own sequence). */
  l7Cursor: number;
  paused: boolean;
  lost: number;
  closed: boolean;
}

/** bpf_ktime_get_ns() and Node's hrtime both read CLOCK_MONOTONIC: one offset turns them into
 *  wall-clock time. It is taken again now and then, so that clock steps reach new flows. */
class MonotonicClock {
  private offset = 0n;
  private takenAt = 0;

  wallTimeNs(mono: bigint): bigint {
    const now = Date.now();
    if (now - this.takenAt > 60_000 || now < this.takenAt) {
      this.offset = BigInt(now) * 1_000_000n - process.hrtime.bigint();
      this.takenAt = now;
    }
    return mono + this.offset;
  }
}

export class Observer implements FlowSource {
  readonly ring: FlowRing;
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL.size * 4));
  private readonly stats = new Float64Array(new SharedArrayBuffer(STAT.size * 8));
  private readonly ctx: FlowContext;
  private worker: Worker | undefined;
  private restart: NodeJS.Timeout | undefined;
  private readonly followers = new Set<Follower>();
  private followLost = 0;
  private proxyLost = 0;
  private passScheduled = false;
  private tick: NodeJS.Timeout | undefined;
  private readonly rateSamples: [ms: number, read: number][] = [];
  private readonly rateTimer: NodeJS.Timeout;
  private readonly lostMap: RawMap;
  private stopped = false;
  private workerError: string | undefined;
  /** L7 flows (from the node proxy), already flows: a ring of objects beside the kernel's. */
  private readonly l7: (Flow | undefined)[];
  private l7Written = 0;

  constructor(private readonly opts: ObserverOptions) {
    this.ring = FlowRing.create(opts.capacity);
    this.l7 = new Array<Flow | undefined>(Math.max(1024, Math.ceil(opts.capacity / 4)));
    const clock = new MonotonicClock();
    this.ctx = { ...opts.context, wallTimeNs: (ns) => clock.wallTimeNs(ns) };
    this.lostMap = openPinnedMap(path.join(pinLayout(opts.bpfRoot).maps, 'events_lost'));
    this.rateTimer = setInterval(() => this.sampleRate(), 1000).unref();
    this.sampleRate();
    this.startWorker();
  }

  private startWorker(): void {
    const init: WorkerInit = {
      bpfRoot: this.opts.bpfRoot,
      ring: this.ring.shared,
      control: this.control.buffer,
      stats: this.stats.buffer,
    };
    Atomics.store(this.control, CONTROL.stop, 0);
    const worker = new Worker(new URL('./ring-worker.js', import.meta.url), { workerData: init, name: 'weft-ring' });
    this.worker = worker;
    worker.on('message', () => this.schedulePass());
    worker.on('error', (err: Error) => {
      this.workerError = err.message;
      this.opts.log.error('flow observer failed; restarting it', { error: err.message, retry_s: RESTART_MS / 1000 });
    });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.stopped) return;
      if (code !== 0 && !this.workerError) this.opts.log.error('flow observer exited; restarting it', { code });
      this.restart = setTimeout(() => this.startWorker(), RESTART_MS);
    });
    worker.on('online', () => {
      this.workerError = undefined;
    });
    // The worker must not keep the agent alive on its own.
    worker.unref();
  }

  /** Whether the worker reads the kernel's ring now. */
  get running(): boolean {
    return this.worker !== undefined && this.workerError === undefined;
  }

  /** L7 flows the node proxy said it dropped. */
  addLost(count: number): void {
    this.proxyLost += count;
  }

  /** An L7 flow the node proxy reported. */
  addFlow(flow: Flow): void {
    this.l7[this.l7Written % this.l7.length] = flow;
    this.l7Written++;
    if (this.followers.size) this.schedulePass();
  }

  private l7Oldest(): number {
    return Math.max(0, this.l7Written - this.l7.length);
  }

  // ---- FlowSource ----

  query(q: FlowQuery): Flow[] {
    const want = q.last ?? Infinity;
    if (want <= 0) return [];
    const kernel: Flow[] = [];
    const oldest = this.ring.oldest();
    for (let seq = this.ring.written() - 1; seq >= oldest && kernel.length < want; seq--) {
      const flow = this.flowAt(seq);
      if (flow && matches(q.filter, flow)) kernel.push(flow);
    }
    const l7: Flow[] = [];
    for (let seq = this.l7Written - 1; seq >= this.l7Oldest() && l7.length < want; seq--) {
      const flow = this.l7[seq % this.l7.length]!;
      if (matches(q.filter, flow)) l7.push(flow);
    }
    if (l7.length === 0) return kernel.reverse();
    // Both newest first; times are RFC 3339 in UTC with nanoseconds: they sort as text.
    const all = [...kernel, ...l7].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
    return all.slice(0, want).reverse();
  }

  follow(q: FlowQuery, deliver: (item: FlowStreamItem) => boolean): FlowSubscription & { resume(): void } {
    const f: Follower = {
      query: q,
      deliver,
      cursor: this.ring.written(),
      l7Cursor: this.l7Written,
      paused: false,
      lost: 0,
      closed: false,
    };
    for (const flow of q.last !== undefined || q.filter.since ? this.query(q) : []) {
      if (!deliver({ flow })) f.paused = true;
    }
    this.followers.add(f);
    this.tick ??= setInterval(() => this.schedulePass(), FOLLOW_TICK_MS);
    this.schedulePass();
    return {
      close: () => {
        f.closed = true;
        this.followers.delete(f);
        if (this.followers.size === 0) {
          clearInterval(this.tick);
          this.tick = undefined;
        }
      },
      resume: () => {
        if (f.closed || !f.paused) return;
        f.paused = false;
        this.schedulePass();
      },
    };
  }

  private flowAt(seq: number): Flow | undefined {
    const raw = this.ring.read(seq);
    return raw && decodeFlow(raw, this.ctx);
  }

  private schedulePass(): void {
    if (this.passScheduled) return;
    this.passScheduled = true;
    setImmediate(() => {
      this.passScheduled = false;
      this.followPass();
    });
  }

  /** Hands every follower what arrived since its cursor, up to PASS_RECORDS each. */
  private followPass(): void {
    let more = false;
    const written = this.ring.written();
    for (const f of this.followers) {
      if (f.paused || f.closed) continue;
      const oldest = this.ring.oldest();
      if (f.cursor < oldest) {
        f.lost += oldest - f.cursor;
        f.cursor = oldest;
      }
      const end = Math.min(written, f.cursor + PASS_RECORDS);
      for (; f.cursor < end && !f.paused && !f.closed; f.cursor++) {
        if (f.lost) this.reportLost(f);
        const raw = this.ring.read(f.cursor);
        if (!raw) {
          f.lost++; // overwritten while it was read
          continue;
        }
        const flow = decodeFlow(raw, this.ctx);
        if (flow && matches(f.query.filter, flow) && !f.deliver({ flow })) f.paused = true;
      }
      this.followL7(f);
      if (f.lost && !f.paused && !f.closed) this.reportLost(f);
      if ((f.cursor < this.ring.written() || f.l7Cursor < this.l7Written) && !f.paused) more = true;
    }
    if (more) this.schedulePass();
    else if (this.followers.size) Atomics.store(this.control, CONTROL.wake, 1);
  }

  private followL7(f: Follower): void {
    const oldest = this.l7Oldest();
    if (f.l7Cursor < oldest) {
      f.lost += oldest - f.l7Cursor;
      f.l7Cursor = oldest;
    }
    const end = Math.min(this.l7Written, f.l7Cursor + PASS_RECORDS);
    for (; f.l7Cursor < end && !f.paused && !f.closed; f.l7Cursor++) {
      const flow = this.l7[f.l7Cursor % this.l7.length]!;
      if (matches(f.query.filter, flow) && !f.deliver({ flow })) f.paused = true;
    }
  }

  private reportLost(f: Follower): void {
    const count = f.lost;
    f.lost = 0;
    this.followLost += count;
    if (!f.deliver({ lost: { stage: 'follow', count } })) f.paused = true;
  }

  // ---- numbers ----

  private sampleRate(): void {
    this.rateSamples.push([Date.now(), this.stats[STAT.read]!]);
    while (this.rateSamples.length > RATE_WINDOW_S + 1) this.rateSamples.shift();
  }

  /** Reservations the kernel could not make, summed over CPUs. */
  kernelLost(): number {
    const v = this.lostMap.lookup(Buffer.alloc(4));
    return (v ? perCpuSlots(v, 8) : []).reduce((sum, slot) => sum + Number(slot.readBigUInt64LE(0)), 0);
  }

  lost(): Record<LostStage, number> {
    return {
      kernel: this.kernelLost(),
      decode: this.stats[STAT.decodeLost]!,
      follow: this.followLost,
      proxy: this.proxyLost,
    };
  }

  /** Flows counted by the worker: by event type code and verdict; drops by reason and direction code. */
  counts() {
    return { read: this.stats[STAT.read]!, flows: flowCounts(this.stats), drops: dropCounts(this.stats) };
  }

  status(): ObserverStatus {
    const [first, last] = [this.rateSamples[0]!, [Date.now(), this.stats[STAT.read]!] as const];
    const seconds = (last[0] - first[0]) / 1000;
    const peak = this.stats[STAT.kernelRingPeak]!;
    this.stats[STAT.kernelRingPeak] = 0;
    return {
      flowsPerSecond: seconds > 0 ? Math.round(((last[1] - first[1]) / seconds) * 10) / 10 : 0,
      flowsTotal: last[1],
      kernelRing: { usedBytes: peak, sizeBytes: this.stats[STAT.kernelRingSize]! },
      flowRing: { flows: this.ring.written() - this.ring.oldest(), capacity: this.ring.capacity },
      lost: this.lost(),
      followers: this.followers.size,
      ...(this.workerError && { error: this.workerError }),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restart);
    clearInterval(this.tick);
    clearInterval(this.rateTimer);
    for (const f of this.followers) f.closed = true;
    this.followers.clear();
    const worker = this.worker;
    if (worker) {
      Atomics.store(this.control, CONTROL.stop, 1);
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      // The worker notices the flag within its epoll timeout; terminate() covers a stuck one.
      const timer = setTimeout(() => void worker.terminate(), 1000);
      await exited;
      clearTimeout(timer);
    }
    this.lostMap.close();
  }
}
