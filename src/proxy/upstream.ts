// Connections to endpoints (the backends' pods), pooled per endpoint and shared by every
// backend, snapshot and downstream connection of the process.
//
// - h2c: multiplexed HTTP/2 sessions (prior knowledge). Requests go on the first session with
//   room under the peer's SETTINGS_MAX_CONCURRENT_STREAMS; a second session (up to
//   MAX_H2_SESSIONS) opens only when they are all full. A session that receives GOAWAY takes no
//   new stream (those in flight finish) and one that closes is forgotten: the next request opens
//   a new one. Idle sessions close after IDLE_MS.
// - http1: an undici Pool per endpoint (keep-alive connections, no pipelining).
// - unknown (a Service port without an appProtocol): the first request to an endpoint probes
//   it with h2c prior knowledge (whatever the client speaks: HTTP/2 to the endpoint multiplexes
//   every client's requests on one connection); an endpoint that accepts the TCP connection but
//   does not answer the preface with SETTINGS (an HTTP/1.1 server answers 400 and closes) is
//   remembered as http1, and the requests that waited for the probe go over HTTP/1.1. A
//   connect failure teaches nothing. What an endpoint speaks is learned once per endpoint
//   (ip, port) while some backend names it.
import net from 'node:net';
import type { Pool } from 'undici';
import type { Logger } from '../lib/log.js';
import { H2Connection, type H2Settings } from './h2/connection.js';
import type { QueueBudget } from './h2/queue-budget.js';

// undici is loaded on the first HTTP/1.1 upstream request: a proxy whose endpoints all speak
// HTTP/2 never pays its memory (about 15 MB resident).
let undici: typeof import('undici') | undefined;
let loadingUndici: Promise<typeof import('undici')> | undefined;
function loadUndici(): Promise<typeof import('undici')> {
  return (loadingUndici ??= import('undici').then((m) => (undici = m)));
}

const MAX_H2_SESSIONS = 4;
/** Clients that cancel requests make the proxy reset their upstream streams, and backends
 *  count a connection's resets against rapid-reset attacks (nghttp2: a burst of 1,000, then 33
 *  a second) and close it with ENHANCE_YOUR_CALM, failing every other client's requests in
 *  flight on it. So a connection that has reset this many streams takes no new ones. */
const RETIRE_AFTER_RESETS = 500;
const MAX_STREAMS_CAP = 1000;
const IDLE_MS = 5 * 60_000;
/** Receive windows: large enough that a fast backend is not held up by ours (256 KiB per
 *  stream: 2.5 GB/s at a 0.1 ms round trip), small enough that what a stalled client's streams
 *  hold in the proxy stays bounded (a stream window each: see creditConnectionOnReceipt). */
const UPSTREAM_SETTINGS: H2Settings = Object.freeze({
  maxConcurrentStreams: 100, // a client takes no pushed streams; the value only has to be sane
  initialWindowSize: 256 * 1024,
  connectionWindowSize: 1 << 24,
  maxHeaderListSize: 64 * 1024,
  // A connection carries many clients' streams: a client that stops reading holds its streams'
  // windows (256 KiB each), never the connection's, which every other stream needs.
  creditConnectionOnReceipt: true,
});

export interface UpstreamOptions {
  connectTimeoutMs: number;
  log: Logger;
  /** The process's budget of DATA waiting for endpoints' windows. */
  queueBudget?: QueueBudget;
}

/** What an endpoint's connections are made with. */
interface UpstreamContext extends UpstreamOptions {
  h2Settings: H2Settings;
  /** Every HTTP/2 connection open now, retired ones draining included. */
  open: Set<H2Conn>;
}

const errorWithCode = (message: string, code: string) => Object.assign(new Error(message), { code });

/** One HTTP/2 connection to an endpoint. */
export class H2Conn {
  usable = true;
  connected = false;
  settled = false;
  readonly h2: H2Connection;

  constructor(
    readonly pool: H2Pool,
    ep: Endpoint,
    opts: UpstreamContext,
    onSettled: (c: H2Conn, err: Error | undefined) => void,
  ) {
    const socket = net.connect({ host: ep.ip, port: ep.port, noDelay: true });
    const timer = setTimeout(() => {
      if (!this.settled) {
        const err = this.connected
          ? errorWithCode(
              `no HTTP/2 SETTINGS from ${ep.authority} within ${opts.connectTimeoutMs} ms`,
              'ERR_PROBE_TIMEOUT',
            )
          : errorWithCode(`connect timeout to ${ep.authority} within ${opts.connectTimeoutMs} ms`, 'ETIMEDOUT');
        this.h2.destroy(err);
      }
    }, opts.connectTimeoutMs);
    const settle = (err: Error | undefined) => {
      if (this.settled) return;
      this.settled = true;
      clearTimeout(timer);
      onSettled(this, err);
    };
    socket.once('connect', () => (this.connected = true));
    this.h2 = new H2Connection(socket, 'client', opts.h2Settings, {
      onReady: () => settle(undefined),
      onGoaway: () => this.retire(),
      onClose: (err) => {
        opts.open.delete(this);
        this.retire();
        if (err) opts.log.debug('upstream connection error', { endpoint: ep.authority, error: err.message });
        if (this.settled) return;
        // Connected, and closed (or spoke something else) before its SETTINGS: not h2c.
        if (this.connected && (err === undefined || (err as NodeJS.ErrnoException).code === undefined)) {
          settle(
            errorWithCode(
              `${ep.authority} does not speak HTTP/2 (${err?.message ?? 'closed the connection before its SETTINGS'})`,
              'ERR_NOT_H2',
            ),
          );
        } else settle(err ?? errorWithCode(`${ep.authority} closed the connection`, 'ECONNRESET'));
      },
      onOwnerError: (err, stream) =>
        opts.log.error('a request failed inside the proxy', {
          endpoint: ep.authority,
          stream,
          error: err.message,
          stack: err.stack,
        }),
    });
    if (!this.h2.closed) opts.open.add(this);
    socket.setTimeout(IDLE_MS, () => {
      if (this.h2.active === 0) this.h2.drain();
    });
  }

  get active(): number {
    return this.h2.active;
  }

  get maxStreams(): number {
    return Math.min(MAX_STREAMS_CAP, this.h2.peerMaxStreams);
  }

  /** No new streams: in-flight ones finish. */
  retire(): void {
    if (!this.usable) return;
    this.usable = false;
    this.pool.forget(this);
  }
}

export class H2Pool {
  private conns: H2Conn[] = [];

  constructor(
    private readonly ep: Endpoint,
    private readonly opts: UpstreamContext,
  ) {}

  /** A connection with room for one more stream: the first with room, else a new one, else the least loaded. */
  acquire(): H2Conn {
    const conns = this.conns;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i]!;
      if (c.h2.resetsSent >= RETIRE_AFTER_RESETS) {
        // Its streams in flight finish; new ones go to a fresh connection.
        c.retire();
        c.h2.drain();
        i--;
        continue;
      }
      if (c.h2.canRequest && c.active < c.maxStreams) return c;
    }
    if (conns.length < MAX_H2_SESSIONS) return this.open();
    let best = conns[0]!;
    for (const c of conns) if (c.active < best.active) best = c;
    return best;
  }

  open(onSettled?: (err: Error | undefined) => void): H2Conn {
    const c = new H2Conn(this, this.ep, this.opts, (_c, err) => onSettled?.(err));
    if (c.usable) this.conns.push(c);
    return c;
  }

  forget(c: H2Conn): void {
    const i = this.conns.indexOf(c);
    if (i >= 0) this.conns.splice(i, 1);
  }

  get size(): number {
    return this.conns.length;
  }

  close(): void {
    for (const c of [...this.conns]) {
      c.retire();
      c.h2.drain();
    }
  }
}

export type WireProtocol = 'h2' | 'http1';

/** One endpoint (ip, port): its connections, and what it was found to speak. */
export class Endpoint {
  readonly key: string;
  /** "10.0.0.1:8080", "[fd00::1]:8080" */
  readonly authority: string;
  readonly origin: string;
  private h2pool: H2Pool | undefined;
  private h1pool: Pool | undefined;
  /** For backends of unknown protocol: what a probe found. */
  learned: WireProtocol | undefined;
  private probing: Promise<WireProtocol> | undefined;

  constructor(
    readonly ip: string,
    readonly port: number,
    private readonly opts: UpstreamContext,
  ) {
    this.key = `${ip} ${port}`;
    this.authority = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
    this.origin = `http://${this.authority}`;
  }

  h2(): H2Pool {
    return (this.h2pool ??= new H2Pool(this, this.opts));
  }

  /** The endpoint's HTTP/1.1 pool (a promise only while undici loads, once per process). */
  h1(): Pool | Promise<Pool> {
    if (this.h1pool) return this.h1pool;
    if (!undici) return loadUndici().then(() => this.h1() as Pool);
    return (this.h1pool = new undici.Pool(this.origin, {
      connections: 1024,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      // The route's timeouts are the proxy's; a quiet stream is not an error of its own.
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: this.opts.connectTimeoutMs,
      maxHeaderSize: 64 * 1024,
      allowH2: false,
      connect: { noDelay: true },
    }));
  }

  /** For a backend of unknown protocol and an HTTP/2 client: h2 once known, else a probe. */
  probe(): WireProtocol | Promise<WireProtocol> {
    if (this.learned) return this.learned;
    return (this.probing ??= new Promise<WireProtocol>((resolve, reject) => {
      this.h2().open((err) => {
        this.probing = undefined;
        if (!err) resolve((this.learned = 'h2'));
        else if (
          (err as NodeJS.ErrnoException).code === 'ERR_NOT_H2' ||
          (err as NodeJS.ErrnoException).code === 'ERR_PROBE_TIMEOUT'
        ) {
          this.opts.log.info('endpoint does not speak h2c: HTTP/1.1 from now on', { endpoint: this.authority });
          resolve((this.learned = 'http1'));
        } else reject(err);
      });
    }));
  }

  /** Graceful: requests in flight finish. */
  close(): void {
    this.h2pool?.close();
    const p = this.h1pool;
    this.h1pool = undefined;
    this.h2pool = undefined;
    if (p) p.close().catch(() => {});
  }
}

/** Every endpoint of the process by "ip port", created on first mention. */
export class EndpointRegistry {
  private readonly endpoints = new Map<string, Endpoint>();

  private readonly opts: UpstreamContext;

  constructor(opts: UpstreamOptions) {
    this.opts = {
      ...opts,
      h2Settings: { ...UPSTREAM_SETTINGS, ...(opts.queueBudget && { queueBudget: opts.queueBudget }) },
      open: new Set(),
    };
  }

  get(ip: string, port: number): Endpoint {
    const key = `${ip} ${port}`;
    let e = this.endpoints.get(key);
    if (!e) this.endpoints.set(key, (e = new Endpoint(ip, port, this.opts)));
    return e;
  }

  /** Closes (gracefully) and forgets the endpoints no backend names any more. */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, e] of this.endpoints) {
      if (keys.has(key)) continue;
      e.close();
      this.endpoints.delete(key);
    }
  }

  /** What the process holds for endpoints on its HTTP/2 connections, retired ones draining
   *  included (undici's HTTP/1.1 connections keep their own). */
  bufferedBytes(): number {
    let n = 0;
    for (const c of this.opts.open) n += c.h2.bufferedBytes;
    return n;
  }

  closeAll(): void {
    for (const e of this.endpoints.values()) e.close();
    this.endpoints.clear();
  }
}
