// The client's side of one exchange: an HTTP/2 stream of weft-proxy's own connection
// (src/proxy/h2/connection.ts) or a node:http request and response. The exchange
// (src/proxy/forward.ts) sees both through Downstream, with headers as HTTP/2 header lists.
//
// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded either way: Connection and the
// headers it names, Keep-Alive, Proxy-Connection (and every proxy-* header), TE (except
// "trailers" towards an HTTP/2 endpoint), Transfer-Encoding, Upgrade, HTTP2-Settings; Expect
// is answered by the proxy's own server. HTTP/2 requests carrying connection-specific headers
// are malformed (RFC 9113 §8.2.2) and reset before they get here.
import type http from 'node:http';
import type { HeaderEdits } from '../contract/proxy-snapshot.js';
import { badName, badTarget, badToken, badValue, nameError } from './h2/fields.js';
import { ErrorCode } from './h2/frames.js';
import type { H2Stream, H2StreamHandler } from './h2/connection.js';
import { editList, type HeaderList } from './header-list.js';
import { applyHeaderEdits } from './route-match.js';

export type Headers = Record<string, string | string[] | undefined>;

const EMPTY = Buffer.alloc(0);
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'expect',
  'host',
]);

/** Whether a header is not to be forwarded ("host" is handled by each conversion). */
export function hopByHop(name: string, named: Set<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (named !== undefined && named.has(name));
}

/** The header names a Connection header lists (they are hop-by-hop too). */
export function connectionNamed(v: string | string[] | undefined): Set<string> | undefined {
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

export const isGrpc = (ct: string | string[] | undefined): boolean =>
  typeof ct === 'string' &&
  ct.startsWith('application/grpc') &&
  (ct.length === 16 || ct.charCodeAt(16) === /* + */ 43 || ct.charCodeAt(16) === /* ; */ 59);

/** grpc-message is percent-encoded (gRPC over HTTP/2, "Responses"). */
const grpcMessage = (s: string) => encodeURIComponent(s);

/** What the exchange does for its downstream. */
export interface ExchangeHooks {
  /** A piece of the request body. false: held; resumeBody() once it is passed on. */
  requestData(chunk: Buffer, end: boolean): boolean;
  /** The client's request trailers (HTTP/2). */
  requestTrailers(list: HeaderList): void;
  /** The response may flow again (after write() said false). */
  resumeUpstream(): void;
  /** The client went away, or reset the stream. */
  canceled(): void;
}

export interface Downstream {
  readonly isH2: boolean;
  readonly hasBody: boolean;
  /** Response headers are out. */
  readonly started: boolean;
  /** The request for an HTTP/2 upstream: pseudo-headers first, the route's edits applied. */
  h2Request(edits: readonly HeaderEdits[]): HeaderList;
  /** The request's headers for an HTTP/1.1 upstream. */
  h1Request(edits: readonly HeaderEdits[]): Headers;
  /** The response head: an HTTP/2 list, :status first; no hop-by-hop header. */
  respond(status: number, head: HeaderList, endStream: boolean): void;
  /** false: wait for hooks.resumeUpstream(). */
  write(chunk: Buffer, endStream: boolean): boolean;
  /** The response's end, with trailers if any. */
  end(trailers: HeaderList | undefined): void;
  /** Ends the response abnormally (after it started). */
  reset(timeout: boolean): void;
  /** The proxy's own answer (nothing was sent yet). */
  replyLocal(status: number, grpc: boolean, grpcStatus: number, reason: string): void;
  /** The exchange takes the request's body and the response's backpressure from now on. */
  attach(hooks: ExchangeHooks): void;
  /** Body bytes held (requestData said false) are passed on: take more. */
  resumeBody(): void;
}

/** What an HTTP/2 request's header list says, checked as RFC 9113 §8.3 asks. */
export interface H2RequestHead {
  method: string;
  path: string | undefined;
  contentType: string | undefined;
  /** -1: none */
  contentLength: number;
  /** The list has an Expect header (answered here, not forwarded). */
  expect: boolean;
}

const PSEUDO_REQUEST = new Set([':method', ':scheme', ':authority', ':path']);
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** Reads and checks a request's header list; a string names what makes it malformed. */
export function readH2Request(list: readonly string[]): H2RequestHead | string {
  let method: string | undefined;
  let path: string | undefined;
  let scheme = false;
  let contentType: string | undefined;
  let contentLength = -1;
  let expect = false;
  let regular = false;
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular) return `pseudo-header ${name} after regular headers`;
      if (!PSEUDO_REQUEST.has(name)) return `pseudo-header ${name} in a request`;
      if (name === ':method') {
        if (method !== undefined) return 'two :method';
        if (badToken(value)) return `:method ${JSON.stringify(value)}: not a token`;
        method = value;
      } else if (name === ':path') {
        if (path !== undefined) return 'two :path';
        if (value !== '' && badTarget(value)) return ':path with a space or a control character';
        path = value;
      } else if (name === ':scheme') {
        if (scheme) return 'two :scheme';
        if (badToken(value)) return `:scheme ${JSON.stringify(value)}`;
        scheme = true;
      } else if (value !== '' && badTarget(value)) return ':authority with a space or a control character';
      continue;
    }
    regular = true;
    if (badName(name)) return nameError(name);
    if (badValue(value)) return `header ${name}: a value with CR, LF, NUL or surrounding whitespace`;
    switch (name) {
      case 'content-type':
        contentType = value;
        break;
      case 'content-length': {
        const n = /^\d{1,15}$/.test(value) ? Number(value) : -2;
        if (n < 0 || (contentLength >= 0 && n !== contentLength)) return `content-length ${value}`;
        contentLength = n;
        break;
      }
      case 'te':
        if (value !== 'trailers') return `te: ${value} (only "trailers" is allowed)`;
        break;
      case 'expect':
        expect = true;
        break;
      default:
        if (CONNECTION_SPECIFIC.has(name)) return `connection-specific header ${name}`;
    }
  }
  if (method === undefined) return 'no :method';
  if (method !== 'CONNECT' && (!scheme || path === undefined || path === '')) return 'no :scheme or :path';
  return { method, path, contentType, contentLength, expect };
}

/** Why a request's trailer list is malformed (RFC 9113 §8.1: no pseudo-header; §8.2: names in
 *  lower case, no connection-specific header), or undefined. */
export function malformedTrailers(list: readonly string[]): string | undefined {
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    if (name.charCodeAt(0) === 58 /* : */) return `pseudo-header ${name} in trailers`;
    if (badName(name)) return `trailer: ${nameError(name)}`;
    if (badValue(list[i + 1]!)) return `trailer ${name}: a value with CR, LF, NUL or surrounding whitespace`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific header ${name} in trailers`;
  }
  return undefined;
}

const dropExpect = (list: HeaderList): HeaderList => editList(list, [{ set: [], add: [], remove: ['expect'] }]);

export class H2Down implements Downstream, H2StreamHandler {
  readonly isH2 = true;
  readonly hasBody: boolean;
  started = false;
  private hooks: ExchangeHooks | undefined;
  /** Request body bytes received and not yet credited back to the client. */
  private held = 0;
  /** The proxy answered itself: the rest of the request body is dropped. */
  private discard = false;

  constructor(
    readonly stream: H2Stream,
    /** The request's header list as it arrived. */
    readonly list: HeaderList,
    readonly head: H2RequestHead,
  ) {
    stream.handler = this;
    this.hasBody = !stream.remoteClosed;
  }

  h2Request(edits: readonly HeaderEdits[]): HeaderList {
    // HTTP/2 to HTTP/2: the list goes on as it came (it was checked: nothing hop-by-hop).
    const list = this.head.expect ? dropExpect(this.list) : this.list;
    return edits.length ? editList(list, edits) : list;
  }

  h1Request(edits: readonly HeaderEdits[]): Headers {
    const src = this.list;
    const out: Headers = {};
    let authority: string | undefined;
    for (let i = 0; i < src.length; i += 2) {
      const k = src[i]!;
      if (k.charCodeAt(0) === 58) {
        if (k === ':authority') authority = src[i + 1];
        continue;
      }
      if (hopByHop(k, undefined) && k !== 'host') continue;
      const v = src[i + 1]!;
      const prev = out[k];
      // Cookie crumbs join with "; " (RFC 9113 §8.2.3), other repeated fields with ", ".
      out[k] =
        prev === undefined
          ? v
          : k === 'cookie'
            ? `${prev as string}; ${v}`
            : Array.isArray(prev)
              ? [...prev, v]
              : [prev, v];
    }
    if (authority !== undefined) out.host = authority;
    if (edits.length) applyHeaderEdits(out, edits);
    return out;
  }

  respond(_status: number, head: HeaderList, endStream: boolean): void {
    this.started = true;
    this.stream.respond(head, endStream);
  }

  write(chunk: Buffer, endStream: boolean): boolean {
    return this.stream.write(chunk, endStream);
  }

  end(trailers: HeaderList | undefined): void {
    if (this.stream.localClosed) return;
    if (trailers !== undefined && trailers.length) this.stream.trailers(trailers);
    else this.stream.write(EMPTY, true);
  }

  reset(timeout: boolean): void {
    this.stream.reset(timeout ? ErrorCode.CANCEL : ErrorCode.INTERNAL_ERROR);
  }

  replyLocal(status: number, grpc: boolean, grpcStatus: number, reason: string): void {
    if (this.started || this.stream.closed) return;
    this.started = true;
    if (grpc) {
      this.stream.respond(
        [
          ':status',
          '200',
          'content-type',
          'application/grpc',
          'grpc-status',
          String(grpcStatus),
          'grpc-message',
          grpcMessage(reason),
        ],
        true,
      );
    } else {
      // HEAD: the length of the body a GET would have had, and no body.
      const text = Buffer.from(`${reason}\n`);
      const head = this.head.method === 'HEAD';
      this.stream.respond(
        [':status', String(status), 'content-type', 'text/plain; charset=utf-8', 'content-length', String(text.length)],
        head,
      );
      if (!head) this.stream.write(text, true);
    }
    // The client may still be sending a body: it is taken and dropped (credited as it comes).
    this.discard = true;
    if (this.held) this.resumeBody();
  }

  attach(hooks: ExchangeHooks): void {
    this.hooks = hooks;
  }

  resumeBody(): void {
    const n = this.held;
    this.held = 0;
    if (n) this.stream.credit(n);
  }

  // ---- H2StreamHandler: the client's stream ----

  onHeaders(s: H2Stream, list: string[]): void {
    // Malformed trailers make the request malformed: not forwarded, reset (§8.1.1).
    const bad = malformedTrailers(list);
    if (bad !== undefined) return s.conn.streamError(s, ErrorCode.PROTOCOL_ERROR, bad);
    this.hooks?.requestTrailers(list);
  }

  onData(s: H2Stream, data: Buffer, endStream: boolean): void {
    const hooks = this.hooks;
    if (this.discard || hooks === undefined || hooks.requestData(data, endStream)) s.credit(data.length);
    else this.held += data.length;
  }

  onReset(): void {
    this.hooks?.canceled();
  }

  onDrain(): void {
    this.hooks?.resumeUpstream();
  }
}

export class H1Down implements Downstream {
  readonly isH2 = false;
  readonly hasBody: boolean;
  private hooks: ExchangeHooks | undefined;

  constructor(
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
  ) {
    const h = req.headers;
    this.hasBody =
      h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
  }

  get started(): boolean {
    return this.res.headersSent;
  }

  h2Request(edits: readonly HeaderEdits[]): HeaderList {
    const src = this.req.headers as Headers;
    const named = connectionNamed(src.connection);
    const out: HeaderList = [
      ':method',
      this.req.method ?? 'GET',
      ':scheme',
      'http',
      ':authority',
      this.req.headers.host ?? '',
      ':path',
      this.req.url ?? '/',
    ];
    const raw = this.req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase();
      if (hopByHop(k, named)) continue;
      out.push(k, raw[i + 1]!);
    }
    if (src.te !== undefined && /\btrailers\b/i.test(String(src.te))) out.push('te', 'trailers');
    return edits.length ? editList(out, edits) : out;
  }

  h1Request(edits: readonly HeaderEdits[]): Headers {
    const src = this.req.headers as Headers;
    const named = connectionNamed(src.connection);
    const out: Headers = {};
    for (const k in src) if (k === 'host' || !hopByHop(k, named)) out[k] = src[k];
    if (edits.length) applyHeaderEdits(out, edits);
    return out;
  }

  respond(status: number, head: HeaderList, endStream: boolean): void {
    const res = this.res;
    if (res.destroyed) return;
    const flat: string[] = [];
    for (let i = 0; i < head.length; i += 2) {
      const k = head[i]!;
      if (k.charCodeAt(0) === 58 || hopByHop(k, undefined)) continue;
      flat.push(k, head[i + 1]!);
    }
    res.writeHead(status, flat);
    if (endStream) res.end();
  }

  write(chunk: Buffer, endStream: boolean): boolean {
    const res = this.res;
    if (res.destroyed) return true;
    if (endStream) {
      res.end(chunk);
      return true;
    }
    if (res.write(chunk)) return true;
    res.once('drain', () => this.hooks?.resumeUpstream());
    return false;
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
      res.writeHead(200, {
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatus),
        'grpc-message': grpcMessage(reason),
        'content-length': 0,
      });
      res.end();
      return;
    }
    const body = this.req.method === 'HEAD' ? '' : `${reason}\n`;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  attach(hooks: ExchangeHooks): void {
    this.hooks = hooks;
    if (!this.hasBody) return;
    const req = this.req;
    req.on('data', (chunk: Buffer) => {
      if (!hooks.requestData(chunk, false)) req.pause();
    });
    req.once('end', () => hooks.requestData(EMPTY, true));
  }

  resumeBody(): void {
    this.req.resume();
  }
}

/** An HTTP/1.1 response's header object (undici's) as an HTTP/2 response head, hop-by-hop
 *  headers dropped. */
export function h1ResponseHead(status: number, headers: Headers): HeaderList {
  const named = connectionNamed(headers.connection);
  const out: HeaderList = [':status', String(status)];
  for (const k in headers) {
    if (hopByHop(k, named)) continue;
    const v = headers[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, v);
  }
  return out;
}
