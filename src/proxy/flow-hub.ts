// GET /v1/flows?follow=1 on the proxy's admin socket: every request's L7 flow, as NDJSON lines
// {"flow":{...}}, to each follower (weftd's observer, or anyone with the socket).
//
// The proxy keeps no history: a flow exists only for the followers there are when its request
// ends, and none is built while nobody follows. Each follower has a bounded queue: while its
// socket takes what is written the queue stays empty; a follower that reads too slowly fills
// it, further flows are dropped for it (not for others), and once there is room again it reads
// {"lost":{"stage":"proxy","count":N}} in line, where they would have been. The proxy never
// waits for a follower.
import type http from 'node:http';
import { HttpError, type StreamRoute } from '../lib/unix-http.js';

export const DEFAULT_MAX_QUEUE = 4096;

class Follower {
  private queue: string[] = [];
  private lost = 0;
  private scheduled = false;
  private waitingDrain = false;

  constructor(
    private readonly hub: FlowHub,
    private readonly res: http.ServerResponse,
    private readonly maxQueue: number,
  ) {
    res.on('drain', () => {
      this.waitingDrain = false;
      this.flush();
    });
  }

  offer(line: string): void {
    if (this.queue.length >= this.maxQueue) {
      this.lost++;
      this.hub.lostTotal++;
      return;
    }
    this.noteLost();
    this.queue.push(line);
    this.schedule();
  }

  private noteLost(): void {
    if (this.lost === 0) return;
    this.queue.push(`${JSON.stringify({ lost: { stage: 'proxy', count: this.lost } })}\n`);
    this.lost = 0;
  }

  private schedule(): void {
    if (this.scheduled || this.waitingDrain) return;
    this.scheduled = true;
    // Lines of one pass of the event loop leave in one write.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const res = this.res;
    if (res.destroyed || res.writableEnded) return;
    if (this.waitingDrain) return;
    if (this.queue.length < this.maxQueue) this.noteLost();
    if (this.queue.length === 0) return;
    const chunk = this.queue.length === 1 ? this.queue[0]! : this.queue.join('');
    this.queue = [];
    if (!res.write(chunk)) this.waitingDrain = true;
  }
}

export class FlowHub {
  private readonly followers = new Set<Follower>();
  /** Flows dropped for slow followers, all followers, since the start. */
  lostTotal = 0;

  constructor(
    /** Told when the first follower comes and when the last one leaves. */
    private readonly onWanted: (on: boolean) => void,
    private readonly maxQueue = DEFAULT_MAX_QUEUE,
  ) {}

  get followerCount(): number {
    return this.followers.size;
  }

  /** One line ("\n" included) to every follower. */
  publish(line: string): void {
    for (const f of this.followers) f.offer(line);
  }

  publishAll(lines: readonly string[]): void {
    for (const f of this.followers) for (const l of lines) f.offer(l);
  }

  routes(): Record<string, StreamRoute> {
    return {
      'GET /v1/flows': {
        stream: (req, res) => {
          const q = new URL(req.url ?? '/', 'http://weft').searchParams;
          const unknown = [...new Set([...q.keys()].filter((k) => k !== 'follow'))];
          if (unknown.length)
            throw new HttpError(
              400,
              `unknown parameter${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')} (the proxy's flows take follow=1 only)`,
            );
          const follow = q.getAll('follow');
          if (follow.length !== 1 || (follow[0] !== '1' && follow[0] !== 'true')) {
            throw new HttpError(
              400,
              'parameter follow: want follow=1 (the proxy keeps no history of flows; it streams them as requests end)',
            );
          }
          res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
          res.flushHeaders();
          const f = new Follower(this, res, this.maxQueue);
          this.followers.add(f);
          if (this.followers.size === 1) this.onWanted(true);
          res.once('close', () => {
            this.followers.delete(f);
            if (this.followers.size === 0) this.onWanted(false);
          });
        },
      },
    };
  }
}
