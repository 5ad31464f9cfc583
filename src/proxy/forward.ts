// The per-request stack of weft-proxy: route → balance → endpoint, for every request of every
// downstream connection, whatever its protocol and the endpoint's.
//
//   downstream (H2Down: a node:http2 server stream | H1Down: a node:http request/response)
//     → route: the listener's ServiceRouter decides (forward, or answer 404/500 itself)
//     → balance: the backend's balancer picks an endpoint (503 when there is none)
//     → endpoint: a pooled upstream (h2c session stream | undici Pool dispatch), headers
//       converted and edited, bodies streamed both ways with backpressure (no pipe()), trailers
//       passed through (gRPC), the route's timeout armed (504)
//     → finish: the balancer learns the latency, the metrics count, the flow (if anyone
//       follows) is emitted.
//
// Per-request cost is the proxy's main performance lever: one Exchange object per request
// holds its state; upstream events go to methods through a few closures; header objects are
// edited in place where the protocols match (h2 → h2: the downstream's header object is the
// upstream's); no timer unless the route has a timeout; telemetry costs a label-key
// concatenation and a Map lookup (src/proxy/telemetry.ts); flows are built only while followed.
//
// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded either way: Connection and the
// headers it names, Keep-Alive, Proxy-Connection (and every proxy-* header), TE (except
// "trailers" towards an HTTP/2 endpoint), Transfer-Encoding, Upgrade, HTTP2-Settings; Expect
// is answered by the proxy's own server. No X-Forwarded-For is added: in a mesh the client's
// address reaches the backend's proxy as flow metadata, and adding one would change what the
// application sees compared with no mesh (linkerd2-proxy adds none either).
//
// Errors the proxy answers itself: 404 (no route; gRPC: 12 UNIMPLEMENTED), 500 (the rule's
// backend cannot be resolved; 14 UNAVAILABLE), 503 (no endpoint, or the endpoint refused the
// connection; 14), 502 (the endpoint failed otherwise before its response; 14), 504 (the
// route's timeout; 4 DEADLINE_EXCEEDED). A gRPC request (content-type application/grpc...) gets
// them as gRPC expects: HTTP 200, headers only, with grpc-status and grpc-message. A request
// without a body whose connection attempt failed (refused, reset, GOAWAY/REFUSED_STREAM before
// processing) is tried once more on another pick of the balancer.
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Logger } from '../lib/log.js';
import type { FlowEndpoint } from '../observe/flow.js';
import type { EndpointState } from './balance.js';
import { applyHeaderEdits, type ForwardDecision, type RouteRequest, type ServiceRouter } from './route-match.js';
import type { Backend, RuntimeState, WorkloadInfo } from './runtime.js';
import type { HeaderEdits } from './snapshot.js';
import { l7Flow, type FlowTap, type HttpStats } from './telemetry.js';
import type { Endpoint, H2Conn } from './upstream.js';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** A route's header edits on HTTP/2 request headers: an edit of Host is one of :authority. */
function editH2Headers(h: Headers, edits: readonly HeaderEdits[]): void {
  if (!edits.length) return;
  applyHeaderEdits(h, edits);
  if (h.host !== undefined) {
    h[':authority'] = h.host;
    delete h.host;
  }
}

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
  session: http2.ServerHttp2Session | undefined;
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

// ---- headers ----

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'http2-settings', 'expect', 'host']);

type Headers = Record<string, string | string[] | undefined>;

/** Whether a header is not to be forwarded ("host" is handled by each conversion). */
function hopByHop(name: string, named: Set<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (named !== undefined && named.has(name));
}

/** The header names a Connection header lists (they are hop-by-hop too). */
function connectionNamed(v: string | string[] | undefined): Set<string> | undefined {
  if (v === undefined) return undefined;
  const s = typeof v === 'string' ? v : v.join(',');
  if (s === 'keep-alive' || s === 'close' || s === 'Keep-Alive') return undefined;
  const out = new Set<string>();
  for (const t of s.split(',')) {
    const n = t.trim().toLowerCase();
    if (n) out.add(n);
  }
  return out;
}

const isGrpc = (ct: string | string[] | undefined): boolean =>
  typeof ct === 'string' && ct.startsWith('application/grpc') && (ct.length === 16 || ct.charCodeAt(16) === 43 /* + */ || ct.charCodeAt(16) === 59 /* ; */);

function applyEdits(headers: Headers, edits: readonly HeaderEdits[]): void {
  if (edits.length) applyHeaderEdits(headers, edits);
}

/** grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"). */
const grpcMessage = (s: string) => encodeURIComponent(s);

// ---- downstream ----

// Option objects shared by every request (node:http2 reads them, respond() does not copy them).
const RESPOND_END: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true });
const RESPOND_BODY: http2.ServerStreamResponseOptions = Object.freeze({ endStream: false });
const RESPOND_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({ endStream: false, waitForTrailers: true });
const REQUEST_END: http2.ClientSessionRequestOptions = Object.freeze({ endStream: true });
const REQUEST_BODY: http2.ClientSessionRequestOptions = Object.freeze({ endStream: false });

/** The client's side of one exchange. */
interface Downstream {
  readonly isH2: boolean;
  readonly hasBody: boolean;
  readonly body: Readable;
  /** Response headers are out. */
  readonly started: boolean;
  /** The request's headers for an HTTP/2 upstream (pseudo-headers included). */
  toH2(edits: readonly HeaderEdits[]): Headers;
  /** The request's headers for an HTTP/1.1 upstream. */
  toH1(edits: readonly HeaderEdits[]): Headers;
  /** headers: no pseudo-header, no hop-by-hop header; or (HTTP/2 downstream only) an HTTP/2
   *  upstream's raw header list, :status included. */
  respond(status: number, headers: Headers | string[], endStream: boolean, waitForTrailers: boolean): void;
  write(chunk: Buffer): boolean;
  end(trailers: Headers | undefined): void;
  /** Ends the response abnormally (after it started). */
  reset(timeout: boolean): void;
  /** The proxy's own answer (nothing was sent yet). */
  replyLocal(status: number, grpc: boolean, grpcStatus: number, reason: string): void;
  onDrain(ex: Exchange): void;
}

class H2Down implements Downstream {
  readonly isH2 = true;
  private trailers: Headers | undefined;
  private waitingTrailers = false;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    readonly headers: http2.IncomingHttpHeaders,
    /** The request's header list as it arrived ([name, value, ...]): passed on as is when no
     *  edit applies (HTTP/2 allows no connection-specific header, and TE only as "trailers"),
     *  which spares node:http2 copying and re-checking a header object. */
    readonly raw: string[] | undefined,
  ) {}

  get hasBody(): boolean {
    return !this.stream.endAfterHeaders;
  }
  get body(): Readable {
    return this.stream;
  }
  get started(): boolean {
    return this.stream.headersSent;
  }

  toH2(edits: readonly HeaderEdits[]): Headers {
    const h = this.headers as Headers;
    const te = h.te;
    if (te !== undefined && te !== 'trailers') delete h.te;
    if (h.expect !== undefined) delete h.expect;
    editH2Headers(h, edits);
    return h;
  }

  toH1(edits: readonly HeaderEdits[]): Headers {
    const src = this.headers as Headers;
    const out: Headers = {};
    for (const k in src) {
      if (k.charCodeAt(0) === 58 /* : */ || hopByHop(k, undefined)) continue;
      out[k] = src[k];
    }
    out.host = src[':authority'] ?? src.host;
    applyEdits(out, edits);
    return out;
  }

  respond(status: number, headers: Headers | string[], endStream: boolean, waitForTrailers: boolean): void {
    if (!Array.isArray(headers)) headers[':status'] = status as unknown as string;
    this.waitingTrailers = waitForTrailers && !endStream;
    if (this.stream.destroyed) return;
    this.stream.respond(headers as http2.OutgoingHttpHeaders, endStream ? RESPOND_END : this.waitingTrailers ? RESPOND_TRAILERS : RESPOND_BODY);
    if (this.waitingTrailers) this.stream.once('wantTrailers', () => this.stream.sendTrailers((this.trailers ?? {}) as http2.OutgoingHttpHeaders));
  }

  write(chunk: Buffer): boolean {
    return this.stream.destroyed ? true : this.stream.write(chunk);
  }

  end(trailers: Headers | undefined): void {
    this.trailers = trailers;
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end();
  }

  reset(timeout: boolean): void {
    if (!this.stream.destroyed) this.stream.close(timeout ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR);
  }

  replyLocal(status: number, grpc: boolean, grpcStatus: number, reason: string): void {
    const s = this.stream;
    if (s.destroyed || s.headersSent) return;
    if (grpc) {
      s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': grpcMessage(reason) }, { endStream: true });
    } else {
      const body = this.headers[':method'] === 'HEAD' ? '' : `${reason}\n`;
      s.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) }, { endStream: body === '' });
      if (body) s.end(body);
    }
    // The client may still be sending a body: take and drop it.
    if (!s.readableEnded) s.resume();
  }

  onDrain(ex: Exchange): void {
    this.stream.once('drain', () => ex.resumeUpstream());
  }
}

class H1Down implements Downstream {
  readonly isH2 = false;
  readonly hasBody: boolean;

  constructor(readonly req: http.IncomingMessage, readonly res: http.ServerResponse) {
    const h = req.headers;
    this.hasBody = h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
  }

  get body(): Readable {
    return this.req;
  }
  get started(): boolean {
    return this.res.headersSent;
  }

  toH2(edits: readonly HeaderEdits[]): Headers {
    const src = this.req.headers as Headers;
    const named = connectionNamed(src.connection);
    const out: Headers = { ':method': this.req.method, ':path': this.req.url, ':scheme': 'http', ':authority': src.host };
    for (const k in src) if (!hopByHop(k, named)) out[k] = src[k];
    if (src.te !== undefined && /\btrailers\b/i.test(String(src.te))) out.te = 'trailers';
    editH2Headers(out, edits);
    return out;
  }

  toH1(edits: readonly HeaderEdits[]): Headers {
    const src = this.req.headers as Headers;
    const named = connectionNamed(src.connection);
    const out: Headers = {};
    for (const k in src) if (k === 'host' || !hopByHop(k, named)) out[k] = src[k];
    applyEdits(out, edits);
    return out;
  }

  respond(status: number, headers: Headers, endStream: boolean): void {
    const res = this.res;
    if (res.destroyed) return;
    res.writeHead(status, headers as http.OutgoingHttpHeaders);
    if (endStream) res.end();
  }

  write(chunk: Buffer): boolean {
    return this.res.destroyed ? true : this.res.write(chunk);
  }

  end(): void {
    if (!this.res.destroyed && !this.res.writableEnded) this.res.end();
  }

  reset(): void {
    // HTTP/1.1 has no way to end a response abnormally but to close the connection.
    this.res.destroy();
  }

  replyLocal(status: number, grpc: boolean, grpcStatus: number, reason: string): void {
    const res = this.res;
    if (res.destroyed || res.headersSent) return;
    if (grpc) {
      res.writeHead(200, { 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': grpcMessage(reason), 'content-length': 0 });
      res.end();
      return;
    }
    const body = this.req.method === 'HEAD' ? '' : `${reason}\n`;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  onDrain(ex: Exchange): void {
    this.res.once('drain', () => ex.resumeUpstream());
  }
}

// ---- the exchange ----

const scratch: { method: string; path: string; headers: RouteRequest['headers'] } = { method: '', path: '', headers: {} };
const noop = () => {};

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
  'ERR_HTTP2_INVALID_SESSION',
  'ERR_HTTP2_GOAWAY_SESSION',
]);

export class Exchange {
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
  upH2: http2.ClientHttp2Stream | undefined;
  upH2Conn: H2Conn | undefined;
  upH1: Dispatcher.DispatchController | undefined;
  /** The upstream's response is complete. */
  private upDone = false;
  private waitingDrain = false;
  private upError: Error | undefined;
  private h2Headers: Headers | undefined;
  private h1Headers: Headers | undefined;
  /** The client takes trailers (te: trailers), or the exchange is gRPC. */
  private readonly trailersWanted: boolean;

  constructor(
    readonly conn: Conn,
    readonly state: RuntimeState,
    readonly down: Downstream,
    readonly method: string,
    readonly path: string,
    contentType: string | string[] | undefined,
  ) {
    this.grpc = isGrpc(contentType);
    this.trailersWanted = this.grpc || (down.isH2 && (down as H2Down).headers.te === 'trailers');
    conn.inFlight++;
  }

  // ---- routing and balancing ----

  run(router: ServiceRouter | undefined, headers: RouteRequest['headers']): void {
    if (router === undefined) return this.replyLocal(404, 12, `no route: ${this.conn.binding.serviceKey} is not routed`, 'no-route');
    scratch.method = this.method;
    scratch.path = this.path;
    scratch.headers = headers;
    const d = router.route(scratch);
    scratch.headers = {};
    if (d.route !== undefined) this.route = d.route;
    if (d.kind === 'respond') return this.replyLocal(d.status, d.grpcStatus, d.reason, d.status === 404 ? 'no-route' : 'invalid-backend');
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
    if (pick === undefined) return this.replyLocal(503, 14, `no endpoint: ${backend.key} has no ready endpoint`, 'no-endpoint');
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

  // ---- HTTP/2 upstream ----

  private sendH2(): void {
    const ep = this.pick!.endpoint;
    const edits = this.decision!.requestHeaders;
    const raw = edits.length === 0 && this.down.isH2 ? (this.down as H2Down).raw : undefined;
    const headers = raw ?? (this.h2Headers ??= this.down.toH2(edits));
    const conn = ep.h2().acquire();
    let up: http2.ClientHttp2Stream;
    try {
      up = conn.session.request(headers as http2.OutgoingHttpHeaders, this.down.hasBody ? REQUEST_BODY : REQUEST_END);
    } catch (err) {
      return this.upstreamFailed(err as Error);
    }
    conn.active++;
    this.upH2 = up;
    this.upH2Conn = conn;
    up.on('response', (h, flags, rawHeaders: string[]) => this.onH2Response(h, flags, rawHeaders));
    up.on('data', (chunk: Buffer) => {
      if (!this.down.write(chunk) && !this.waitingDrain) {
        up.pause();
        this.waitingDrain = true;
        this.down.onDrain(this);
      }
    });
    up.on('trailers', (t) => this.onH2Trailers(t));
    up.on('end', () => this.upstreamEnd());
    up.on('error', (err) => (this.upError = err));
    up.on('close', () => {
      conn.active--;
      if (this.finished || this.upH2 !== up) return;
      const err = this.upError ?? new Error(`the endpoint reset the stream (code ${up.rstCode})`);
      this.upstreamFailed(Object.assign(err, { rstCode: up.rstCode }));
    });
    if (this.down.hasBody) streamBody(this.down.body, up);
  }

  private trailers: Headers | undefined;

  private onH2Response(h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number, raw: string[] | undefined): void {
    if (this.finished) return;
    const status = h[':status'] ?? 502;
    if (status < 200) return;
    const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const trailers = this.trailersWanted || (h as Headers).trailer !== undefined || isGrpc(h['content-type']);
    if (raw !== undefined && this.down.isH2 && this.decision!.responseHeaders.length === 0) {
      // HTTP/2 to HTTP/2 without edits: the header list goes on as it came.
      this.headSeen(status, h as Headers);
      this.down.respond(status, raw, endStream, trailers);
      return;
    }
    delete h[':status'];
    this.head(status, h as Headers, endStream, trailers);
  }

  private onH2Trailers(t: http2.IncomingHttpHeaders): void {
    this.trailers = t as Headers;
  }

  // ---- HTTP/1.1 upstream ----

  private sendH1(): void {
    const ep = this.pick!.endpoint;
    const headers = (this.h1Headers ??= this.down.toH1(this.decision!.requestHeaders));
    const down = this.down;
    const opts: Dispatcher.DispatchOptions = {
      path: this.path,
      method: this.method as Dispatcher.HttpMethod,
      headers: headers as Record<string, string | string[]>,
      // An iterator that does not destroy the client's stream when undici gives up on it: the
      // proxy still has to answer that client.
      body: down.hasBody ? (down.body.iterator({ destroyOnReturn: false }) as unknown as Readable) : null,
      upgrade: null,
      headersTimeout: 0,
      bodyTimeout: 0,
    };
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
    const named = connectionNamed(headers.connection);
    for (const k in headers) if (hopByHop(k, named)) delete headers[k];
    this.head(status, headers, false, false);
  }

  h1Data(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.finished) return;
    if (!this.down.write(chunk) && !this.waitingDrain) {
      controller.pause();
      this.waitingDrain = true;
      this.down.onDrain(this);
    }
  }

  h1End(trailers: Headers | undefined): void {
    if (trailers && Object.keys(trailers).length) this.trailers = trailers;
    this.upstreamEnd();
  }

  // ---- the response, whatever the upstream ----

  private headSeen(status: number, headers: Headers): void {
    this.status = status;
    this.tHeaders = performance.now();
    if (this.grpc) {
      const gs = headers['grpc-status'];
      if (gs !== undefined) this.grpcStatus = Number(gs);
    }
  }

  private head(status: number, headers: Headers, endStream: boolean, waitForTrailers: boolean): void {
    this.headSeen(status, headers);
    applyEdits(headers, this.decision!.responseHeaders);
    this.down.respond(status, headers, endStream, waitForTrailers);
  }

  resumeUpstream(): void {
    this.waitingDrain = false;
    if (this.upH2) this.upH2.resume();
    else this.upH1?.resume();
  }

  private upstreamEnd(): void {
    if (this.finished) return;
    this.upDone = true;
    const t = this.trailers;
    if (this.grpc && t !== undefined && t['grpc-status'] !== undefined) this.grpcStatus = Number(t['grpc-status']);
    this.down.end(t);
    this.finish();
  }

  upstreamFailed(err: Error): void {
    if (this.finished) return;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const refused = CONNECT_ERRORS.has(code) || (err as { rstCode?: number }).rstCode === NGHTTP2_REFUSED_STREAM;
    const elapsed = performance.now() - this.t0;
    this.conn.ctx.log.debug('upstream request failed', { endpoint: this.pick?.endpoint.authority, error: err.message, code });
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
      return this.replyLocal(refused ? 503 : 502, 14, `upstream ${refused ? 'connect error' : 'error'}: ${err.message}`, 'upstream-error');
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
      if (!up.destroyed) up.close(NGHTTP2_CANCEL);
    }
    const c = this.upH1;
    if (c !== undefined) {
      this.upH1 = undefined;
      if (!c.aborted) c.abort(new Error('the exchange ended'));
    }
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
    if (pick !== undefined) this.backend!.balancer.done(pick, this.tHeaders ? this.tHeaders - this.t0 : latency, !this.failed && this.status < 500);
    const state = this.state;
    const src = conn.source(state);
    const dst = pick === undefined ? undefined : state.workload(pick.endpoint.ip);
    const ctx = conn.ctx;
    ctx.stats.record(
      src.label,
      dst === undefined ? '' : dst.label,
      this.backend === undefined ? '' : this.backend.service,
      this.route,
      this.status === 0 ? 'canceled' : String(this.status),
      this.grpcStatus < 0 ? '' : String(this.grpcStatus),
      latency / 1000,
    );
    if (ctx.flows.wanted) this.emitFlow(src, dst, latency);
  }

  private emitFlow(src: WorkloadInfo, dst: WorkloadInfo | undefined, latencyMs: number): void {
    const conn = this.conn;
    const source: FlowEndpoint = { ip: conn.remoteIp, port: conn.remotePort, ...src.flow };
    let destination: FlowEndpoint;
    if (this.pick !== undefined && dst !== undefined) {
      destination = { ip: this.pick.endpoint.ip, port: this.pick.endpoint.port, ...dst.flow };
    } else {
      const sp = conn.binding.serviceKey;
      const ip = this.state.serviceAddress(sp, conn.v6) ?? conn.socket.localAddress ?? '';
      destination = { ip, port: Number(sp.slice(sp.lastIndexOf(':') + 1)), identity: 0, labels: [] };
    }
    const flow = l7Flow({
      time: this.t0,
      source,
      destination,
      service: conn.binding.service,
      method: this.method,
      path: this.path,
      status: this.status,
      grpcStatus: this.grpcStatus,
      latencyMs,
      dropReason: this.dropReason,
    });
    conn.ctx.flows.push(`${JSON.stringify({ flow })}\n`);
  }
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
  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: http.IncomingHttpHeaders): void {
    this.ex.h1Head(controller, statusCode, headers as Headers);
  }
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.ex.h1Data(controller, chunk);
  }
  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: http.IncomingHttpHeaders): void {
    this.ex.h1End(trailers as Headers);
  }
  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.ex.upstreamFailed(err);
  }
}

/** A request body to the upstream, with backpressure both ways; stops when either side ends. */
function streamBody(src: Readable, dst: Writable): void {
  const onData = (chunk: Buffer) => {
    if (dst.destroyed || dst.writableEnded) return;
    if (!dst.write(chunk)) src.pause();
  };
  src.on('data', onData);
  dst.on('drain', () => src.resume());
  src.once('end', () => {
    if (!dst.destroyed && !dst.writableEnded) dst.end();
  });
  dst.once('close', () => {
    src.off('data', onData);
    // Whatever the client still sends is dropped.
    if (!src.readableEnded) src.resume();
  });
}

// ---- entry points ----

/** A request of an HTTP/2 downstream connection. */
export function handleH2Stream(conn: Conn, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[] | undefined): void {
  stream.on('error', noop);
  const method = headers[':method'] ?? '';
  const path = headers[':path'];
  const state = conn.ctx.state;
  if (path === undefined || state === undefined || method === 'CONNECT') {
    // CONNECT (no :path) is not routed; nor is anything before the first snapshot.
    if (!stream.destroyed) stream.respond({ ':status': state === undefined ? 503 : 405 }, { endStream: true });
    return;
  }
  const ex = new Exchange(conn, state, new H2Down(stream, headers, raw), method, path, headers['content-type']);
  stream.once('close', () => ex.canceled());
  ex.run(conn.binding.router, headers);
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
  const ex = new Exchange(conn, state, new H1Down(req, res), req.method ?? 'GET', req.url ?? '/', req.headers['content-type']);
  res.once('close', () => ex.canceled());
  ex.run(conn.binding.router, req.headers);
}
