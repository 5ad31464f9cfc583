// The proxy's downstream side: the listeners a snapshot names, and what happens to a
// connection accepted on one of them.
//
// Protocol detection: the first bytes a client sends decide.
// - The HTTP/2 connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", prior knowledge, h2c):
//   the connection becomes one of weft-proxy's own HTTP/2 connections (src/proxy/h2/), which
//   reads the bytes read so far first.
// - A request line (an HTTP method and a space): node:http's server, HTTP/1.1 (and 1.0); a
//   request with "Upgrade: h2c" continues as HTTP/2 (src/proxy/h2c-upgrade.ts); one asking for
//   another protocol (WebSocket) is routed, then tunnelled to an endpoint (src/proxy/tunnel.ts).
// - Anything else, or nothing within DETECT_TIMEOUT_MS (a protocol where the server speaks
//   first): TCP passthrough to an endpoint of the listener's own Service port, balanced like
//   requests (per connection), bytes copied both ways.
// For HTTP/1.1, the bytes read to decide are pushed back into the socket (unshift) before
// node:http's server takes it, so it reads them first.
//
// Limits, so that a hostile or broken peer cannot hold resources forever: request headers at
// most MAX_HEADER_BYTES (HTTP/1.1: 431; HTTP/2: the stream is refused); HTTP/1.1 headers
// within HEADERS_TIMEOUT_MS (408); at most MAX_STREAMS concurrent streams per HTTP/2
// connection; a connection with no request in flight closes after IDLE_MS of silence; a TCP
// passthrough closes after TCP_IDLE_MS of silence. Malformed HTTP/1.1 gets its 400 and the
// connection is closed; the proxy itself is not affected.
import http from 'node:http';
import net from 'node:net';
import type { ListenerConfig } from '../contract/proxy-snapshot.js';
import type { Logger } from '../lib/log.js';
import type { EndpointState } from './balance.js';
import {
  Conn,
  flowDestination,
  handleH1Request,
  handleH2Stream,
  type ForwardContext,
  type ListenerBinding,
} from './forward.js';
import { H2Connection, type H2Settings } from './h2/connection.js';
import { PREFACE } from './h2/frames.js';
import type { QueueBudget } from './h2/queue-budget.js';
import { SWITCHING, headerBlock, prefaceLength, stream1Frames, wantsH2cUpgrade } from './h2c-upgrade.js';
import { passthroughFlow } from './telemetry.js';
import { tunnel, wantsTunnel } from './tunnel.js';
import type { Endpoint } from './upstream.js';
import type { ServiceRouter } from './route-match.js';

export const DETECT_TIMEOUT_MS = 5000;
export const HEADERS_TIMEOUT_MS = 10_000;
export const IDLE_MS = 5 * 60_000;
export const TCP_IDLE_MS = 60 * 60_000;
export const MAX_HEADER_BYTES = 32 * 1024;
export const MAX_STREAMS = 1000;

const DOWNSTREAM_SETTINGS: H2Settings = Object.freeze({
  maxConcurrentStreams: MAX_STREAMS,
  initialWindowSize: 256 * 1024,
  connectionWindowSize: 1 << 20,
  maxHeaderListSize: MAX_HEADER_BYTES,
  // Each stream of a client that reads nothing can hold an upstream stream window (256 KiB);
  // 1,000 of them would be 256 MB.
  maxQueuedBytes: 16 << 20,
});

const kConn = Symbol('weft.conn');
type WithConn = { [kConn]?: Conn };

const METHODS = new Set(http.METHODS);
const LONGEST_METHOD = Math.max(...http.METHODS.map((m) => m.length));
const noop = () => {};

type Sniffed = 'h2' | 'h1' | 'tcp' | 'more';

/** What the first bytes of a connection say it is. */
export function classify(buf: Buffer): Sniffed {
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return n === PREFACE.length ? 'h2' : 'more';
  const limit = Math.min(buf.length, LONGEST_METHOD + 1);
  for (let i = 0; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x20) return i > 0 && METHODS.has(buf.toString('latin1', 0, i)) ? 'h1' : 'tcp';
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f)) return 'tcp'; // A-Z - _
  }
  return buf.length > LONGEST_METHOD ? 'tcp' : 'more';
}

/** "::ffff:10.0.0.1" (an IPv4 client of a dual-stack socket) → "10.0.0.1". */
function clientIp(a: string | undefined): string {
  if (a === undefined) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export interface FrontendContext extends ForwardContext {
  readonly log: Logger;
  /** The process's budget of DATA waiting for clients' windows. */
  readonly queueBudget?: QueueBudget;
  /** Listen with SO_REUSEPORT (several worker processes share each listener). */
  readonly reusePort: boolean;
}

/** One listening socket, bound to one Service port. */
export class Listener implements ListenerBinding {
  serviceKey: string;
  service: string;
  router: ServiceRouter | undefined;
  readonly key: string;
  readonly conns = new Set<Conn>();
  private readonly server: net.Server;
  private closed = false;

  constructor(
    readonly config: ListenerConfig,
    private readonly frontend: Frontend,
  ) {
    this.key = `${config.address} ${config.port}`;
    this.service = config.service;
    this.serviceKey = `${config.service}:${config.servicePort}`;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => frontend.accept(this, socket));
    this.server.on('error', (err) =>
      frontend.ctx.log.error('listener error', { listener: this.key, error: err.message }),
    );
  }

  /** Binds; rejects with the system's error (EADDRINUSE, EADDRNOTAVAIL, EACCES...). */
  bind(): Promise<void> {
    const { address, port } = this.config;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(
        { host: address, port, ipv6Only: address.includes(':'), reusePort: this.frontend.ctx.reusePort, backlog: 1024 },
        () => {
          this.server.off('error', onError);
          resolve();
        },
      );
    });
  }

  /** At commit: what the listener's connections route with from now on. */
  bindTo(config: ListenerConfig, router: ServiceRouter | undefined): void {
    this.service = config.service;
    this.serviceKey = `${config.service}:${config.servicePort}`;
    this.router = router;
  }

  /** Stops accepting; open connections drain (HTTP) or go on (TCP passthrough). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
    for (const c of this.conns) this.frontend.drainConn(c);
  }
}

/** The HTTP servers of a process, shared by its listeners, and the accepted connections. */
export class Frontend {
  readonly h1: http.Server;
  private readonly h2Settings: H2Settings;
  /** Connections open now, all listeners. */
  active = 0;
  readonly accepted = { h1: 0, h2: 0, tcp: 0 };
  private readonly all = new Set<Conn>();

  constructor(readonly ctx: FrontendContext) {
    this.h2Settings = { ...DOWNSTREAM_SETTINGS, ...(ctx.queueBudget && { queueBudget: ctx.queueBudget }) };
    this.h1 = http.createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: HEADERS_TIMEOUT_MS,
        requestTimeout: 0, // a request body may stream for long; the idle timeout bounds silence
        keepAliveTimeout: IDLE_MS,
        connectionsCheckingInterval: 1000,
        joinDuplicateHeaders: true,
        shouldUpgradeCallback: (req) => wantsH2cUpgrade(req) || wantsTunnel(req),
      },
      (req, res) => {
        const conn = (req.socket as WithConn)[kConn]!;
        try {
          handleH1Request(conn, req, res);
        } catch (err) {
          // A bug must cost this request, not the process and everyone else's.
          ctx.log.error('a request failed inside the proxy', {
            client: conn.remoteIp,
            error: (err as Error).message,
            stack: (err as Error).stack,
          });
          if (res.headersSent) res.destroy();
          else res.writeHead(500, { 'content-length': 0 }).end();
        }
      },
    );
    this.h1.timeout = IDLE_MS;
    // The HTTP/1.1 server never listens itself (it is handed sockets): 'listening' starts the
    // periodic check that enforces headersTimeout.
    this.h1.emit('listening');
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.clientError(err, socket));
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
  }

  /** What the process holds for its clients (see H2Connection.bufferedBytes). */
  bufferedBytes(): number {
    let n = 0;
    for (const c of this.all) n += c.h2 ? c.h2.bufferedBytes : c.socket.writableLength;
    return n;
  }

  accept(listener: Listener, socket: net.Socket): void {
    const conn = new Conn(this.ctx, listener, socket, clientIp(socket.remoteAddress), socket.remotePort ?? 0);
    (socket as WithConn)[kConn] = conn;
    listener.conns.add(conn);
    this.all.add(conn);
    this.active++;
    socket.once('close', () => {
      listener.conns.delete(conn);
      this.all.delete(conn);
      this.active--;
    });
    socket.on('error', noop);
    this.sniff(conn, listener);
  }

  private sniff(conn: Conn, listener: Listener): void {
    const socket = conn.socket;
    let buf: Buffer | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
    };
    const onData = (chunk: Buffer) => {
      buf = buf === undefined ? chunk : Buffer.concat([buf, chunk]);
      const what = classify(buf);
      if (what === 'more') return;
      done();
      this.dispatch(conn, listener, what, buf);
    };
    const onEnd = () => {
      done();
      if (buf === undefined) socket.destroy();
      else this.dispatch(conn, listener, 'tcp', buf);
    };
    const timer = setTimeout(() => {
      done();
      this.dispatch(conn, listener, 'tcp', buf);
    }, DETECT_TIMEOUT_MS);
    socket.on('data', onData);
    socket.on('end', onEnd);
  }

  private dispatch(conn: Conn, listener: Listener, what: Exclude<Sniffed, 'more'>, buf: Buffer | undefined): void {
    const socket = conn.socket;
    if (conn.closing && what !== 'tcp') return void socket.destroy();
    socket.pause();
    if (what === 'tcp') return this.passthrough(conn, listener, buf);
    if (what === 'h2') return this.toH2(conn, buf!);
    socket.unshift(buf!);
    conn.kind = 'h1';
    this.accepted.h1++;
    this.h1.emit('connection', socket);
    socket.resume();
  }

  /** The connection speaks HTTP/2 from here; `read`: what was read of it so far. */
  private toH2(conn: Conn, read: Buffer): void {
    conn.kind = 'h2';
    this.accepted.h2++;
    const socket = conn.socket;
    const log = this.ctx.log;
    conn.h2 = new H2Connection(
      socket,
      'server',
      this.h2Settings,
      {
        onStream: (s, list) => handleH2Stream(conn, s, list, MAX_HEADER_BYTES),
        onClose: (err) => {
          if (err) log.debug('downstream connection error', { client: conn.remoteIp, error: err.message });
        },
        onOwnerError: (err, stream) =>
          log.error('a request failed inside the proxy', {
            client: conn.remoteIp,
            stream,
            error: err.message,
            stack: err.stack,
          }),
      },
      read,
    );
    socket.setTimeout(IDLE_MS, () => {
      if (conn.inFlight === 0) conn.h2?.drain();
    });
    if (conn.closing) conn.h2.drain();
    socket.resume();
  }

  /** The proxy's own answer to a request it cannot read. */
  private clientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    this.ctx.log.debug('malformed HTTP/1.1 request', { client: socket.remoteAddress, error: err.code ?? err.message });
    if (socket.writable && !(socket as net.Socket & { _httpMessage?: unknown })._httpMessage) {
      const status =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? '431 Request Header Fields Too Large'
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroySoon();
    } else socket.destroy();
  }

  /** "Upgrade: h2c" (wantsH2cUpgrade said yes): 101, then the client's preface, then HTTP/2
   *  with the request as stream 1. Any other upgrade (WebSocket) is tunnelled to an endpoint. */
  private upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const conn = (socket as WithConn)[kConn]!;
    if (!wantsH2cUpgrade(req)) return tunnel(conn, req, socket, head, TCP_IDLE_MS);
    socket.write(SWITCHING);
    let buf = head;
    const timer = setTimeout(() => socket.destroy(), HEADERS_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      check();
    };
    const check = () => {
      const n = prefaceLength(buf);
      if (n === 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (n < 0) return void socket.destroy();
      socket.pause();
      this.accepted.h1--;
      this.toH2(conn, Buffer.concat([buf.subarray(0, n), stream1Frames(headerBlock(req)), buf.subarray(n)]));
    };
    socket.on('data', onData);
    if (buf.length) check();
  }

  private passthrough(conn: Conn, listener: Listener, first: Buffer | undefined): void {
    conn.kind = 'tcp';
    this.accepted.tcp++;
    const socket = conn.socket;
    const t0 = performance.now();
    const backend = this.ctx.state?.backends.get(listener.serviceKey);
    const pick = backend?.balancer.pick();
    let dropReason: string | undefined;
    socket.once('close', () => this.reportPassthrough(conn, t0, pick, dropReason));
    if (backend === undefined || pick === undefined) {
      this.ctx.log.debug('TCP passthrough: no endpoint', { service: listener.serviceKey, client: conn.remoteIp });
      dropReason = 'no-endpoint';
      return void socket.destroy();
    }
    let tConnect = 0;
    backend.balancer.start(pick);
    const up = net.connect({ host: pick.endpoint.ip, port: pick.endpoint.port, noDelay: true, allowHalfOpen: true });
    up.once('connect', () => (tConnect = performance.now()));
    up.on('error', (err) => {
      this.ctx.log.debug('TCP passthrough: endpoint error', { endpoint: pick.endpoint.authority, error: err.message });
      if (tConnect === 0) dropReason = 'upstream-error';
      socket.destroy();
    });
    up.once('close', (hadError) => {
      backend.balancer.done(pick, (tConnect || performance.now()) - t0, tConnect !== 0 && !hadError);
      if (hadError) socket.destroy();
    });
    socket.once('close', () => {
      if (!up.destroyed && (socket.errored || !up.writableEnded)) up.destroy();
    });
    const idle = () => {
      socket.destroy();
      up.destroy();
    };
    socket.setTimeout(TCP_IDLE_MS, idle);
    if (first?.length) up.write(first);
    socket.pipe(up);
    up.pipe(socket);
    socket.resume();
  }

  private reportPassthrough(
    conn: Conn,
    t0: number,
    pick: EndpointState<Endpoint> | undefined,
    dropReason: string | undefined,
  ): void {
    const state = this.ctx.state;
    if (!this.ctx.flows.wanted || state === undefined) return;
    const flow = passthroughFlow({
      time: t0,
      source: { ip: conn.remoteIp, port: conn.remotePort, ...conn.source(state).flow },
      destination: flowDestination(conn, state, dropReason === undefined ? pick : undefined),
      service: conn.binding.service,
      sent: conn.socket.bytesRead,
      received: conn.socket.bytesWritten,
      durationMs: performance.now() - t0,
      dropReason,
    });
    this.ctx.flows.push(`${JSON.stringify({ flow })}\n`);
  }

  /** Finish what is in flight on a connection, then close it. */
  drainConn(c: Conn): void {
    if (c.closing) return;
    c.closing = true;
    if (c.kind === 'sniff') c.socket.destroy();
    else if (c.kind === 'h2') c.h2?.drain();
    else if (c.kind === 'h1' && c.inFlight === 0) c.socket.end();
  }

  /** Every connection of the process: drain them, and after `graceMs` close what is left. */
  async drainAll(graceMs: number): Promise<void> {
    for (const c of this.all) this.drainConn(c);
    const deadline = performance.now() + graceMs;
    while (this.active > 0 && performance.now() < deadline) {
      // HTTP/1.1 connections close once their last request is done; passthroughs by themselves.
      for (const c of this.all) if (c.kind === 'h1' && c.inFlight === 0 && !c.socket.writableEnded) c.socket.end();
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const c of this.all) c.socket.destroy();
  }
}
