// A process's budget of DATA waiting for peers' flow-control windows, over all its HTTP/2
// connections (to clients and to endpoints alike).
//
// Each connection has a budget of its own (H2Settings.maxQueuedBytes), but many connections
// can each stay just under theirs: 1,000 hostile connections at 16 MiB are 16 GB. Past the
// process's budget the streams holding the most are reset (ENHANCE_YOUR_CALM), largest first,
// until the process holds at most 7/8 of its budget. So the peers that hoard pay, and a
// client that is merely slow with a stream or two keeps them (Envoy's overload manager resets
// the streams with the most buffered the same way).

/** A connection that holds queued DATA. */
export interface QueueHolder {
  readonly queuedBytes: number;
  /** Resets its stream with the most queued; false if it has none. */
  shedLargest(): boolean;
}

export class QueueBudget {
  /** Queued now, all connections. */
  bytes = 0;
  /** Connections with queuedBytes > 0. */
  readonly holders = new Set<QueueHolder>();
  /** Streams reset for holding too much: past a connection's budget, past the process's. */
  readonly shed = { connection: 0, process: 0 };

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new Error(`a queue budget must be positive (got ${limit})`);
  }

  get over(): boolean {
    return this.bytes > this.limit;
  }

  /** Over budget: resets the largest holders' largest streams until the process is back under
   *  7/8 of it (some room, so that it does not run again at the next chunk). Linear in the
   *  holders per stream reset, and only ever runs while over budget. */
  relieve(): void {
    if (!this.over) return;
    const floor = this.limit - this.limit / 8;
    while (this.bytes > floor) {
      let top: QueueHolder | undefined;
      for (const h of this.holders) if (top === undefined || h.queuedBytes > top.queuedBytes) top = h;
      const before = this.bytes;
      if (top === undefined || !top.shedLargest() || this.bytes >= before) return;
      this.shed.process++;
    }
  }
}
