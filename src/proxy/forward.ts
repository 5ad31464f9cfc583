// The per-request stack of weft-proxy: route → balance → endpoint, for every request of every
// downstream connection, whatever its protocol and the endpoint's.
//
//   downstream (src/proxy/downstream.ts: a stream of the proxy's own HTTP/2 connection, or a
//   node:http request/response)
//     → route: the listener's ServiceRouter decides (forward, or answer 404/500 itself)
//     → balance: the backend's balancer picks an endpoint (503 when there is none)
//     → endpoint: a pooled upstream (a stream of a pooled HTTP/2 connection | an undici Pool
//       dispatch), headers edited, bodies relayed both ways with flow control, trailers passed
//       through (gRPC), the route's timeout armed (504)
//     → finish: the balancer learns the latency, the metrics count, the flow (if anyone
//       follows) is emitted.
//
// Per-request cost is the proxy's main performance lever. HTTP/2 to HTTP/2, a request is one
// Exchange object: its header list goes upstream as it came (a copy only when a route edits
// it), the response's list comes back the same way, and DATA payloads are handed from one
// connection's read buffer to the other's output without copies of their own; flow-control
// credit is returned to the sender only once the bytes are passed on, so a slow side holds
// the other back by its window. No timer unless the route has a timeout; telemetry costs a
// label-key concatenation and a Map lookup (src/proxy/telemetry.ts); flows are built only
// while followed.
//
// No X-Forwarded-For is added: in a mesh the client's address reaches the backend's proxy as
// flow metadata, and adding one would change what the application sees compared with no mesh
// (linkerd2-proxy adds none either).
//
// Errors the proxy answers itself: 404 (no route; gRPC: 12 UNIMPLEMENTED), 500 (the rule's
// backend cannot be resolved; 14 UNAVAILABLE), 503 (no endpoint, or the endpoint refused the
// connection; 14), 502 (the endpoint failed otherwise before its response; 14), 504 (the
// route's timeout; 4 DEADLINE_EXCEEDED). A gRPC request (content-type application/grpc...) gets
// them as gRPC expects: HTTP 200, headers only, with grpc-status and grpc-message. A request
// without a body whose connection attempt failed (refused, reset, GOAWAY/REFUSED_STREAM before
// processing) is tried once more on another pick of the balancer.
import type http from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../lib/log.js';
import type { FlowEndpoint } from '../contract/flow.js';
import type { EndpointState } from './balance.js';
import {
  H1Down,
  H2Down,
  h1ResponseHead,
  isGrpc,
  readH2Request,
  type Downstream,
  type ExchangeHooks,
  type Headers,
} from './downstream.js';
import type { H2Connection, H2Stream, H2StreamHandler } from './h2/connection.js';
import { malformedFields } from './h2/fields.js';
import { ErrorCode } from './h2/frames.js';
import { editList, listGet, objectToList, type HeaderList } from './header-list.js';
import type { ForwardDecision, ServiceRouter } from './route-match.js';
import type { Backend, RuntimeState, WorkloadInfo } from './runtime.js';
import { l7Flow, type FlowTap, type HttpStats } from './telemetry.js';
import type { Endpoint } from './upstream.js';

/** What a listener is bound to, as forwarding needs it; updated in place at each commit. */
export interface ListenerBinding {
  /** "namespace/name:port" */
  readonly serviceKey: string;
  /** "namespace/name" */
  readonly service: string;
  router: ServiceRouter | undefined;
}

/** What the forwarding stack needs of its process. */
export interface ForwardContext {
  /** The running state: read once per request. */
  readonly state: RuntimeState | undefined;
  readonly stats: HttpStats;
  readonly flows: FlowTap;
  readonly log: Logger;
}

/** One accepted downstream connection. */
export class Conn {
  inFlight = 0;
  /** Draining: finish what is in flight, take nothing new. */
  closing = false;
  kind: 'sniff' | 'h1' | 'h2' | 'tcp' = 'sniff';
  h2: H2Connection | undefined;
  private srcVersion = -1;
  private src: WorkloadInfo | undefined;

  constructor(
    readonly ctx: ForwardContext,
    readonly binding: ListenerBinding,
    readonly socket: net.Socket,
    readonly remoteIp: string,
    readonly remotePort: number,
  ) {}

  get v6(): boolean {
    return this.remoteIp.includes(':');
  }

  /** The client's workload, looked up once per connection and snapshot. */
  source(state: RuntimeState): WorkloadInfo {
    if (this.srcVersion !== state.version) {
      this.src = state.workload(this.remoteIp);
      this.srcVersion = state.version;
    }
    return this.src!;
  }
}

const EMPTY = Buffer.alloc(0);
const NO_HEADERS: readonly string[] = Object.freeze([]);
// One request object for the router, reused (it keeps nothing of it).
const scratch: { method: string; path: string; headers: Headers | readonly string[] } = {
  method: '',
  path: '',
  headers: NO_HEADERS,
};

/** Failures after which the request cannot have reached the application. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_NOT_H2',
  'ERR_PROBE_TIMEOUT',
]);

export class Exchange implements ExchangeHooks, H2StreamHandler {
  readonly t0 = performance.now();
  readonly grpc: boolean;
  decision: ForwardDecision | undefined;
  backend: Backend | undefined;
  pick: EndpointState<Endpoint> | undefined;
  status = 0;
  grpcStatus = -1;
  tHeaders = 0;
  finished = false;
  failed = false;
  dropReason: string | undefined;
  route = '';
  attempts = 0;
  timer: NodeJS.Timeout | undefined;
  /** The upstream: a stream of a pooled HTTP/2 connection, or an undici dispatch. */
  upH2: H2Stream | undefined;
  upH1: Dispatcher.DispatchController | undefined;
  /** The request body for undici. */
  private h1Body: Readable | undefined;
  /** Request body that arrived before an upstream took it (bounded by the client's window). */
  private held: Buffer[] | undefined;
  private heldEnd = false;
  private heldTrailers: HeaderList | undefined;
  /** The upstream's response began, and is complete. */
  private upHead = false;
  private upDone = false;
  /** Response bytes of the HTTP/2 upstream not yet credited back (the client is slow). */
  private upHeld = 0;
  private trailers: HeaderList | undefined;

  constructor(
    readonly conn: Conn,
    readonly state: RuntimeState,
    readonly down: Downstream,
    readonly method: string,
    readonly path: string,
    contentType: string | string[] | undefined,
  ) {
    this.grpc = isGrpc(contentType);
    conn.inFlight++;
    down.attach(this);
  }

  // ---- routing and balancing ----

  run(router: ServiceRouter | undefined, headers: Headers | readonly string[]): void {
    if (router === undefined)
      return this.replyLocal(404, 12, `no route: ${this.conn.binding.serviceKey} is not routed`, 'no-route');
    scratch.method = this.method;
    scratch.path = this.path;
    scratch.headers = headers;
    const d = router.forClient(this.conn.source(this.state).flow.namespace).route(scratch);
    scratch.headers = NO_HEADERS; // the request's headers are not kept alive by the scratch
    if (d.route !== undefined) this.route = d.route;
    if (d.kind === 'respond')
      return this.replyLocal(d.status, d.grpcStatus, d.reason, d.status === 404 ? 'no-route' : 'invalid-backend');
    this.decision = d;
    const backend = this.state.backends.get(d.backend);
    if (backend === undefined) return this.replyLocal(503, 14, `no endpoint: ${d.backend} is unknown`, 'no-endpoint');
    this.backend = backend;
    const ms = d.backendRequestTimeoutMs ?? d.requestTimeoutMs;
    if (ms) this.timer = setTimeout(onTimeout, ms, this);
    this.attempt();
  }

  private attempt(): void {
    const backend = this.backend!;
    const pick = backend.balancer.pick();
    if (pick === undefined)
      return this.replyLocal(503, 14, `no endpoint: ${backend.key} has no ready endpoint`, 'no-endpoint');
    this.pick = pick;
    this.attempts++;
    backend.balancer.start(pick);
    const protocol = backend.protocol;
    if (protocol === 'h2c') return this.sendH2();
    if (protocol === 'http1') return this.sendH1();
    const p = pick.endpoint.probe();
    if (p === 'h2') return this.sendH2();
    if (p === 'http1') return this.sendH1();
    p.then(
      (w) => {
        if (this.finished) return;
        if (w === 'h2') this.sendH2();
        else this.sendH1();
      },
      (err: Error) => this.upstreamFailed(err),
    );
  }

  // ---- the request body, whatever the upstream ----

  requestData(chunk: Buffer, end: boolean): boolean {
    if (this.finished && this.upDone) return true; // answered: the rest is dropped
    const up = this.upH2;
    if (up !== undefined) return up.write(chunk, end);
    const b = this.h1Body;
    if (b !== undefined) {
      const ok = chunk.length ? b.push(chunk) : true;
      if (end) b.push(null);
      return ok;
    }
    if (chunk.length) (this.held ??= []).push(chunk);
    if (end) this.heldEnd = true;
    return false;
  }

  requestTrailers(list: HeaderList): void {
    if (this.upH2 !== undefined) this.upH2.trailers(list);
    else if (this.h1Body !== undefined)
      this.h1Body.push(null); // HTTP/1.1 upstream: trailers dropped
    else {
      this.heldTrailers = list;
      this.heldEnd = true;
    }
  }

  /** The upstream exists now: what the client sent meanwhile goes to it. */
  private releaseHeld(): void {
    const held = this.held;
    const end = this.heldEnd;
    const trailers = this.heldTrailers;
    this.held = undefined;
    this.heldTrailers = undefined;
    let ok = true;
    if (held !== undefined)
      for (let i = 0; i < held.length; i++)
        ok = this.requestData(held[i]!, end && trailers === undefined && i === held.length - 1);
    else if (end && trailers === undefined) ok = this.requestData(EMPTY, true);
    if (trailers !== undefined) this.requestTrailers(trailers);
    if (ok) this.down.resumeBody();
  }

  // ---- HTTP/2 upstream ----

  private sendH2(): void {
    const ep = this.pick!.endpoint;
    const c = ep.h2().acquire();
    if (c.h2.closed)
      return this.upstreamFailed(
        Object.assign(new Error(`${ep.authority}: the connection is closed`), { code: 'ECONNRESET' }),
      );
    const headers = this.down.h2Request(this.decision!.requestHeaders);
    const body = this.down.hasBody;
    this.upH2 = c.h2.request(headers, !body, this);
    if (body && (this.held !== undefined || this.heldEnd)) this.releaseHeld();
  }

  onHeaders(s: H2Stream, list: string[], endStream: boolean): void {
    if (this.finished || s !== this.upH2) return;
    const malformed = malformedFields(list, this.upHead ? undefined : ':status');
    if (malformed !== undefined) {
      s.reset(ErrorCode.PROTOCOL_ERROR);
      return this.upstreamFailed(new Error(`a malformed response ${this.upHead ? 'trailer' : 'head'}: ${malformed}`));
    }
    if (this.upHead) {
      this.trailers = list;
      if (endStream) this.upstreamEnd();
      return;
    }
    const st = list[0] === ':status' ? list[1]! : listGet(list, ':status');
    const status = st === undefined || !/^[1-9]\d\d$/.test(st) ? 0 : Number(st);
    if (status === 0) {
      s.reset(ErrorCode.PROTOCOL_ERROR);
      return this.upstreamFailed(new Error(`a response without a valid :status (${st ?? 'none'})`));
    }
    if (status < 200) return; // 1xx: not passed on
    this.upHead = true;
    this.headSeen(status, list);
    const edits = this.decision!.responseHeaders;
    this.down.respond(status, edits.length ? editList(list, edits) : list, endStream);
    if (endStream) this.upstreamEnd();
  }

  onData(s: H2Stream, data: Buffer, endStream: boolean): void {
    if (this.finished || s !== this.upH2) return s.credit(data.length);
    if (endStream) this.upDone = true;
    if (this.down.write(data, endStream)) s.credit(data.length);
    else this.upHeld += data.length;
    if (endStream) this.upstreamEnd();
  }

  onReset(s: H2Stream, code: number, why: string, cause?: NodeJS.ErrnoException): void {
    if (this.finished || s !== this.upH2) return;
    const err: Error & { rstCode?: number; code?: string } = new Error(why);
    err.rstCode = code;
    const errno = cause?.code;
    if (errno !== undefined) err.code = errno;
    this.upstreamFailed(err);
  }

  /** The upstream stream took what was queued: the client may send more. */
  onDrain(): void {
    this.down.resumeBody();
  }

  // ---- HTTP/1.1 upstream ----

  private sendH1(): void {
    const ep = this.pick!.endpoint;
    const headers = this.down.h1Request(this.decision!.requestHeaders);
    let body: Readable | null = null;
    if (this.down.hasBody) {
      body = this.h1Body = new Readable({ read: () => this.down.resumeBody() });
    }
    const opts: Dispatcher.DispatchOptions = {
      path: this.path,
      method: this.method,
      headers: headers as Record<string, string | string[]>,
      body,
      upgrade: null,
      headersTimeout: 0,
      bodyTimeout: 0,
    };
    if (body !== null && (this.held !== undefined || this.heldEnd)) this.releaseHeld();
    const pool = ep.h1();
    if (pool instanceof Promise) {
      pool.then(
        (p) => {
          if (!this.finished) this.dispatchH1(p, opts);
        },
        (err: Error) => this.upstreamFailed(err),
      );
    } else this.dispatchH1(pool, opts);
  }

  private dispatchH1(pool: Dispatcher, opts: Dispatcher.DispatchOptions): void {
    try {
      pool.dispatch(opts, new H1Handler(this));
    } catch (err) {
      this.upstreamFailed(err as Error);
    }
  }

  /** From undici: the response's head. */
  h1Head(controller: Dispatcher.DispatchController, status: number, headers: Headers): void {
    this.upH1 = controller;
    if (this.finished || status < 200) return;
    const list = h1ResponseHead(status, headers);
    this.upHead = true;
    this.headSeen(status, list);
    const edits = this.decision!.responseHeaders;
    this.down.respond(status, edits.length ? editList(list, edits) : list, false);
  }

  h1Data(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.finished) return;
    if (!this.down.write(chunk, false)) controller.pause();
  }

  h1End(trailers: Headers | undefined): void {
    if (trailers && Object.keys(trailers).length) this.trailers = objectToList(trailers);
    this.upstreamEnd();
  }

  // ---- the response, whatever the upstream ----

  private headSeen(status: number, list: HeaderList): void {
    this.status = status;
    this.tHeaders = performance.now();
    if (this.grpc) {
      const gs = listGet(list, 'grpc-status');
      if (gs !== undefined) this.grpcStatus = grpcCode(gs);
    }
  }

  resumeUpstream(): void {
    const up = this.upH2;
    if (up !== undefined) {
      const n = this.upHeld;
      this.upHeld = 0;
      if (n) up.credit(n);
    } else this.upH1?.resume();
  }

  private upstreamEnd(): void {
    if (this.finished) return;
    this.upDone = true;
    const t = this.trailers;
    if (this.grpc && t !== undefined) {
      const gs = listGet(t, 'grpc-status');
      if (gs !== undefined) this.grpcStatus = grpcCode(gs);
    }
    this.down.end(t);
    this.finish();
  }

  upstreamFailed(err: Error): void {
    if (this.finished) return;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const refused = CONNECT_ERRORS.has(code) || (err as { rstCode?: number }).rstCode === ErrorCode.REFUSED_STREAM;
    const elapsed = performance.now() - this.t0;
    this.conn.ctx.log.debug('upstream request failed', {
      endpoint: this.pick?.endpoint.authority,
      error: err.message,
      code,
    });
    if (!this.down.started) {
      this.upH2 = undefined;
      this.upH1 = undefined;
      if (refused && !this.down.hasBody && this.attempts < 2 && this.backend!.balancer.size > 0) {
        // Nothing reached the application: another endpoint may take it.
        this.backend!.balancer.done(this.pick!, elapsed, false);
        this.pick = undefined;
        return this.attempt();
      }
      this.failed = true;
      return this.replyLocal(
        refused ? 503 : 502,
        14,
        `upstream ${refused ? 'connect error' : 'error'}: ${err.message}`,
        'upstream-error',
      );
    }
    this.failed = true;
    this.dropReason = 'upstream-error';
    this.down.reset(false);
    this.finish();
  }

  timeout(): void {
    this.timer = undefined;
    if (this.finished) return;
    this.failed = true;
    if (!this.down.started) this.replyLocal(504, 4, 'upstream request timeout', 'upstream-timeout');
    else {
      this.dropReason = 'upstream-timeout';
      this.down.reset(true);
      this.finish();
    }
  }

  /** The client went away before the end. */
  canceled(): void {
    if (this.finished) return;
    this.finish();
  }

  replyLocal(status: number, grpcStatus: number, reason: string, dropReason: string): void {
    this.status = this.grpc ? 200 : status;
    if (this.grpc) this.grpcStatus = grpcStatus;
    this.dropReason = dropReason;
    this.down.replyLocal(status, this.grpc, grpcStatus, reason);
    this.finish();
  }

  private abortUpstream(): void {
    const up = this.upH2;
    if (up !== undefined) {
      this.upH2 = undefined;
      up.reset(ErrorCode.CANCEL);
    }
    const c = this.upH1;
    if (c !== undefined) {
      this.upH1 = undefined;
      if (!c.aborted) c.abort(new Error('the exchange ended'));
    }
    this.h1Body?.destroy();
  }

  // ---- the end: balancer, metrics, flow ----

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const conn = this.conn;
    conn.inFlight--;
    // A draining HTTP/1.1 connection closes after its last response (written before the FIN).
    if (conn.closing && conn.inFlight === 0 && conn.kind === 'h1') conn.socket.end();
    const now = performance.now();
    const latency = now - this.t0;
    const pick = this.pick;
    if (!this.upDone) this.abortUpstream();
    if (pick !== undefined)
      this.backend!.balancer.done(
        pick,
        this.tHeaders ? this.tHeaders - this.t0 : latency,
        !this.failed && this.status < 500,
      );
    report(conn, this.state, this, latency);
  }
}

/** One request as its telemetry sees it (an Exchange is one; so is an upgraded connection). */
export interface RequestReport {
  readonly t0: number;
  readonly pick: EndpointState<Endpoint> | undefined;
  readonly backend: Backend | undefined;
  readonly route: string;
  /** 0: the client left before the response began. */
  readonly status: number;
  /** -1: not gRPC. */
  readonly grpcStatus: number;
  readonly method: string;
  readonly path: string;
  readonly dropReason: string | undefined;
}

/** A finished request into the metrics, and into a flow if anyone follows them. */
export function report(conn: Conn, state: RuntimeState, r: RequestReport, latencyMs: number): void {
  const src = conn.source(state);
  const pick = r.pick;
  const dst = pick === undefined ? undefined : state.workload(pick.endpoint.ip);
  const ctx = conn.ctx;
  ctx.stats.record(
    src.label,
    dst === undefined ? '' : dst.label,
    r.backend === undefined ? '' : r.backend.service,
    r.route,
    r.status,
    r.grpcStatus,
    latencyMs / 1000,
  );
  if (!ctx.flows.wanted) return;
  const flow = l7Flow({
    time: r.t0,
    source: { ip: conn.remoteIp, port: conn.remotePort, ...src.flow },
    destination: flowDestination(conn, state, pick, dst),
    service: conn.binding.service,
    method: r.method,
    path: r.path,
    status: r.status,
    grpcStatus: r.grpcStatus,
    latencyMs,
    dropReason: r.dropReason,
  });
  ctx.flows.push(`${JSON.stringify({ flow })}\n`);
}

/** The endpoint a flow went to, or the Service address when it went to none. */
export function flowDestination(
  conn: Conn,
  state: RuntimeState,
  pick: EndpointState<Endpoint> | undefined,
  dst = pick && state.workload(pick.endpoint.ip),
): FlowEndpoint {
  if (pick !== undefined && dst !== undefined) return { ip: pick.endpoint.ip, port: pick.endpoint.port, ...dst.flow };
  const sp = conn.binding.serviceKey;
  const ip = state.serviceAddress(sp, conn.v6) ?? conn.socket.localAddress ?? '';
  return { ip, port: Number(sp.slice(sp.lastIndexOf(':') + 1)), identity: 0, labels: [] };
}

function grpcCode(v: string): number {
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 98 ? n : 2;
}

function onTimeout(ex: Exchange): void {
  ex.timeout();
}

/** undici's handler for one HTTP/1.1 upstream request: it only passes events on. */
class H1Handler implements Dispatcher.DispatchHandler {
  constructor(private readonly ex: Exchange) {}
  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.ex.finished) controller.abort(new Error('the exchange ended'));
    else this.ex.upH1 = controller;
  }
  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: http.IncomingHttpHeaders,
  ): void {
    this.ex.h1Head(controller, statusCode, headers);
  }
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.ex.h1Data(controller, chunk);
  }
  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: http.IncomingHttpHeaders): void {
    this.ex.h1End(trailers);
  }
  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.ex.upstreamFailed(err);
  }
}

// ---- entry points ----

/** A request of an HTTP/2 downstream connection. */
export function handleH2Stream(conn: Conn, stream: H2Stream, list: string[], maxHeaderBytes: number): void {
  const head = readH2Request(list);
  if (typeof head === 'string') {
    conn.ctx.log.debug('malformed HTTP/2 request', { client: conn.remoteIp, error: head });
    return stream.reset(ErrorCode.PROTOCOL_ERROR);
  }
  stream.expectedLength = head.contentLength;
  const down = new H2Down(stream, list, head);
  const state = conn.ctx.state;
  if (stream.headerListSize > maxHeaderBytes) return down.replyLocal(431, false, 0, 'request header fields too large');
  if (head.path === undefined || state === undefined || head.method === 'CONNECT') {
    // CONNECT (no :path) is not routed; nor is anything before the first snapshot.
    return down.replyLocal(
      state === undefined ? 503 : 405,
      false,
      0,
      state === undefined ? 'no routes yet' : 'method not allowed',
    );
  }
  const ex = new Exchange(conn, state, down, head.method, head.path, head.contentType);
  ex.run(conn.binding.router, list);
}

/** A request of an HTTP/1.1 downstream connection. */
export function handleH1Request(conn: Conn, req: http.IncomingMessage, res: http.ServerResponse): void {
  req.on('error', noop);
  res.on('error', noop);
  if (conn.closing) res.shouldKeepAlive = false;
  const state = conn.ctx.state;
  if (state === undefined) {
    res.writeHead(503, { 'content-length': 0 });
    res.end();
    return;
  }
  const ex = new Exchange(
    conn,
    state,
    new H1Down(req, res),
    req.method ?? 'GET',
    req.url ?? '/',
    req.headers['content-type'],
  );
  res.once('close', () => ex.canceled());
  ex.run(conn.binding.router, req.headers);
}

const noop = () => {};
