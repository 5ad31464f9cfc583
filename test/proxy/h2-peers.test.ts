// weft-proxy's own HTTP/2 (src/proxy/h2/) against hostile and unusual peers, over real sockets
// on loopback addresses, through a real proxy process: frames past SETTINGS_MAX_FRAME_SIZE,
// CONTINUATION floods, rapid reset (CVE-2023-44487) and streams the proxy is made to reset
// itself ("MadeYouReset", CVE-2025-8671), clients whose many cancels would make a backend close
// the shared upstream connection under others' requests, malformed requests and trailers (stream errors, the
// connection lives on), HPACK garbage, bad WINDOW_UPDATEs, PING, PING and SETTINGS floods from a
// client that reads no answer, a failed connection whose client reads nothing, flow control end to end (a
// tiny window; clients that stop reading, which must not stall others on the shared upstream
// connection), a large upload, the concurrent stream limit, request trailers, and backends that
// reset every stream or do not speak HTTP/2. Error codes are RFC 9113's, checked exactly. The
// hostile side is a raw client (test/fixtures/h2-raw.ts); after every hostile case a
// well-behaved node:http2 client, on a connection opened before and on a new one, is still
// served. Every wait has a timeout; raw connections are closed after each test.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ErrorCode, Flag, FrameType, Setting } from '../../src/proxy/h2/frames.js';
import { HpackDecoder, HpackEncoder } from '../../src/proxy/h2/hpack.js';
import { RawH2, frame, requestList } from '../fixtures/h2-raw.js';
import { parsePrometheusText, sampleValue } from '../harness/prom-text.js';
import {
  Cleanup,
  buildTestSnapshot,
  closeServer,
  eventually,
  freePort,
  h1Request,
  h2Connect,
  h2Request,
  httpRoute,
  startProxy,
  type ProxyProcess,
} from '../fixtures/proxy-harness.js';

const WEB = '127.0.0.1';
const RESETS = '127.0.0.2';
const GARBAGE = '127.0.0.3';
const LYING = '127.0.0.4';
const GOOD = '127.0.0.9';
const HOSTILE = '127.0.0.66';
const MiB = 1 << 20;
const TEST = { timeout: 15_000 };

const cleanup = new Cleanup();
let proxy: ProxyProcess;
let listen: number;
let web: TestBackend;
let resets: { streams: number };
let garbage: { accepted: number };
let good: http2.ClientHttp2Session;

// ---- backends ----

const patterns = new Map<number, Buffer>();
/** `n` deterministic pseudo-random bytes (xorshift32, fixed seed): a byte lost, repeated or
 *  moved anywhere shows. */
function pattern(n: number): Buffer {
  let b = patterns.get(n);
  if (b === undefined) {
    b = Buffer.allocUnsafe(n);
    let x = 0x2545f491;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    patterns.set(n, b);
  }
  return b;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Received {
  method: string;
  path: string;
  length: number;
  sha256: string;
  trailers: Record<string, string> | null;
}

interface TestBackend {
  /** Streams open now. */
  open: Set<http2.ServerHttp2Stream>;
  /** Paths of the streams open now. */
  openPaths(): string[];
  /** Uploads to /slow-upload are not read until this is called. */
  releaseUploads(): void;
}

/** GET /bytes?n=N answers N bytes of pattern(N); anything else is answered at the end of its
 *  request with what was received (a Received: length, sha256, trailers). */
async function patternBackend(host: string, port: number): Promise<TestBackend> {
  // The proxy's connection to it lives through the whole file, and node:http2 refuses new
  // streams (ENHANCE_YOUR_CALM) once its accounting of a session passes maxSessionMemory (10 MB
  // by default), which the canceled stalled downloads add to: not what is tested here.
  const server = http2.createServer({ maxSessionMemory: 1024 });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  const paths = new Map<http2.ServerHttp2Stream, string>();
  const held = new Set<http2.ServerHttp2Stream>();
  const b: TestBackend = {
    open: new Set(),
    openPaths: () => [...b.open].map((s) => paths.get(s)!),
    releaseUploads: () => {
      for (const s of held) s.resume();
      held.clear();
    },
  };
  server.on('stream', (stream, headers) => {
    const path = headers[':path'] ?? '';
    b.open.add(stream);
    paths.set(stream, path);
    stream.on('close', () => {
      b.open.delete(stream);
      paths.delete(stream);
    });
    stream.on('error', () => {});
    const url = new URL(path, 'http://backend');
    if (url.pathname === '/bytes') {
      // The request is read (node:http2 otherwise closes a stream whose request it never read
      // with RST_STREAM NO_ERROR once the response is handed over, which truncates a response
      // whose end still waits for window).
      stream.resume();
      const n = Number(url.searchParams.get('n'));
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': n });
      // Written as the stream takes it (node:http2 would otherwise buffer it all in the
      // session, and refuse new streams past its maxSessionMemory).
      const body = pattern(n);
      let off = 0;
      const pump = () => {
        while (off < n) {
          const chunk = body.subarray(off, off + 64 * 1024);
          off += chunk.length;
          if (off === n) return void stream.end(chunk);
          if (!stream.write(chunk)) return void stream.once('drain', pump);
        }
        stream.end();
      };
      pump();
      return;
    }
    if (url.pathname === '/slow-upload') {
      stream.pause();
      held.add(stream);
    }
    const hash = createHash('sha256');
    let length = 0;
    let trailers: Record<string, string> | null = null;
    stream.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    stream.on(
      'trailers',
      (t: http2.IncomingHttpHeaders) =>
        (trailers = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, String(v)]))),
    );
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(
        JSON.stringify({
          method: headers[':method']!,
          path,
          length,
          sha256: hash.digest('hex'),
          trailers,
        } satisfies Received),
      );
    });
  });
  await new Promise<void>((r, j) => server.once('error', j).listen(port, host, () => r()));
  cleanup.add(() => closeServer(server, sessions));
  return b;
}

/** Speaks HTTP/2 and resets every stream it is given (INTERNAL_ERROR). */
async function resettingBackend(host: string, port: number): Promise<{ streams: number }> {
  const r = { streams: 0 };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream) => {
    r.streams++;
    stream.on('error', () => {});
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  cleanup.add(() => closeServer(server, sessions));
  return r;
}

/** Accepts, writes something that is not HTTP/2 and keeps the connection open. */
async function garbageBackend(host: string, port: number): Promise<{ accepted: number }> {
  const socks = new Set<net.Socket>();
  const g = { accepted: 0 };
  const server = net.createServer((s) => {
    g.accepted++;
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    s.resume();
    s.write('SSH-2.0-OpenSSH_9.6 not HTTP/2 at all\r\n');
    s.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13, 0x37]));
  });
  await new Promise<void>((r, j) => server.once('error', j).listen(port, host, () => r()));
  cleanup.add(() => closeServer(server, socks));
  return g;
}

/** Header lists the lying backend answers with, by request path: each malformed as RFC 9113
 *  §8.2.1 says (a proxy must not pass them on: a CR LF in a value becomes a header of its own on
 *  an HTTP/1.1 hop). */
const LIES: Record<string, string[]> = {
  '/lying/crlf': [':status', '200', 'x-note', 'fine\r\nset-cookie: stolen=1'],
  '/lying/nul': [':status', '200', 'x-note', 'a\u0000b'],
  '/lying/space-name': [':status', '200', 'x note', '1'],
  '/lying/upper-name': [':status', '200', 'X-Note', '1'],
  '/lying/leading-space': [':status', '200', 'x-note', ' padded'],
  '/lying/request-pseudo': [':status', '200', ':path', '/elsewhere'],
};

/** An HTTP/2 server of raw frames that answers each request with the header list LIES names
 *  for its path (END_STREAM, no body). */
async function lyingBackend(host: string, port: number): Promise<void> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    let buf = Buffer.alloc(0);
    let preface = false;
    s.write(frame(FrameType.SETTINGS, 0, 0));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!preface) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        preface = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const [type, flags, id] = [buf[3]!, buf[4]!, buf.readUInt32BE(5) & 0x7fffffff];
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) s.write(frame(FrameType.SETTINGS, Flag.ACK, 0));
        if (type !== FrameType.HEADERS) continue;
        const list: string[] = [];
        decoder.decode(payload, list, 65_536);
        const path = list[list.indexOf(':path') + 1]!;
        const answer = LIES[path] ?? [':status', '404'];
        s.write(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, encoder.encode(answer)));
      }
    });
  });
  await new Promise<void>((r, j) => server.once('error', j).listen(port, host, () => r()));
  cleanup.add(() => closeServer(server, socks));
}

// ---- well-behaved clients ----

/** Rejects with `what` if `p` takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, j) => (timer = setTimeout(() => j(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A request of a node:http2 session, the body as bytes. */
function exchange(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let status = 0;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** The well-behaved client is served: on its long-lived connection, and on a new one. */
async function othersServed(): Promise<void> {
  const a = await within(
    h2Request(good, { ':path': '/echo?from=good' }),
    5000,
    "a request on the well-behaved client's connection",
  );
  assert.equal(a.status, 200);
  assert.equal((JSON.parse(a.body) as Received).path, '/echo?from=good');
  const fresh = h2Connect(cleanup, listen, GOOD);
  try {
    const b = await within(h2Request(fresh, { ':path': '/echo?from=fresh' }), 5000, 'a request on a new connection');
    assert.equal(b.status, 200);
  } finally {
    fresh.close();
  }
}

/** What the proxy holds for slow peers on one side, as its metrics say. */
async function bufferedBytes(side: 'downstream' | 'upstream'): Promise<number> {
  return sampleValue(parsePrometheusText(await proxy.metrics()), 'weft_proxy_buffered_bytes', { side });
}

/** Raw connections of the running test: closed after it, whatever its outcome. */
const live: RawH2[] = [];
/** A raw connection from the hostile address. */
async function hostile(opts: Parameters<typeof RawH2.connect>[2] = {}): Promise<RawH2> {
  const c = await RawH2.connect(cleanup, listen, { localAddress: HOSTILE, ...opts });
  live.push(c);
  return c;
}

before(async () => {
  const webPort = await freePort(WEB);
  const resetsPort = await freePort(RESETS);
  const garbagePort = await freePort(GARBAGE);
  const lyingPort = await freePort(LYING);
  web = await patternBackend(WEB, webPort);
  resets = await resettingBackend(RESETS, resetsPort);
  garbage = await garbageBackend(GARBAGE, garbagePort);
  await lyingBackend(LYING, lyingPort);
  proxy = await startProxy(cleanup);
  listen = await freePort();
  const snapshot = buildTestSnapshot({
    version: 1,
    services: [
      { name: 'web', clusterIP: '10.96.0.10', port: 80, targetPort: webPort, endpoints: [WEB] },
      { name: 'resets', clusterIP: '10.96.0.11', port: 80, targetPort: resetsPort, endpoints: [RESETS] },
      { name: 'garbage', clusterIP: '10.96.0.12', port: 80, targetPort: garbagePort, endpoints: [GARBAGE] },
      { name: 'lying', clusterIP: '10.96.0.13', port: 80, targetPort: lyingPort, endpoints: [LYING] },
    ],
    routes: [
      httpRoute('web', {
        parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
        rules: [
          {
            matches: [
              { path: { type: 'PathPrefix', value: '/resets' } },
              { path: { type: 'PathPrefix', value: '/weft.test.Echo' } },
            ],
            backendRefs: [{ name: 'resets', port: 80 }],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/garbage' } }],
            backendRefs: [{ name: 'garbage', port: 80 }],
          },
          { matches: [{ path: { type: 'PathPrefix', value: '/lying' } }], backendRefs: [{ name: 'lying', port: 80 }] },
          { backendRefs: [{ name: 'web', port: 80 }] },
        ],
      }),
    ],
    listeners: [{ address: '127.0.0.1', port: listen, service: 'demo/web', servicePort: 80 }],
  });
  // The garbage backend is declared h2c in the snapshot (as a GRPCRoute's backends are): the
  // proxy speaks HTTP/2 with prior knowledge to it, without probing what it speaks.
  snapshot.backends['demo/garbage:80']!.protocol = 'h2c';
  snapshot.backends['demo/lying:80']!.protocol = 'h2c';
  assert.deepEqual(await proxy.put(snapshot), { version: 1 });
  good = h2Connect(cleanup, listen, GOOD);
  await othersServed();
});

afterEach(() => {
  for (const c of live.splice(0)) c.destroy();
});

after(async () => {
  if (process.env.WEFT_TEST_PROXY_LOGS) process.stderr.write(proxy.logs);
  await cleanup.run();
});

describe('weft-proxy HTTP/2 against hostile and unusual peers', () => {
  it(
    'answers a frame longer than its SETTINGS_MAX_FRAME_SIZE (16,384) with GOAWAY FRAME_SIZE_ERROR and closes',
    TEST,
    async () => {
      const c = await hostile();
      // 16,384 bytes is the limit and fine.
      const ok = c.newStream();
      c.send(c.headersFrame(ok, requestList('/upload', 'POST')), c.dataFrame(ok, pattern(16_384), true));
      const r = await c.response(ok);
      assert.deepEqual([r.status, (JSON.parse(r.body.toString()) as Received).length], [200, 16_384]);
      // One byte more is a connection error.
      const big = c.newStream();
      c.send(c.headersFrame(big, requestList('/upload', 'POST')), c.dataFrame(big, pattern(16_385), true));
      const g = await c.goaway();
      assert.equal(g.code, ErrorCode.FRAME_SIZE_ERROR, g.debug);
      await c.waitClosed();
      assert.deepEqual(c.violations, []);
      await othersServed();
    },
  );

  it(
    'takes a header block of 64 CONTINUATION fragments and 64 KiB, and answers one past either with GOAWAY ENHANCE_YOUR_CALM',
    TEST,
    async () => {
      // 64 fragments (HEADERS and 63 CONTINUATIONs, all but one empty): a request like any other.
      const a = await hostile();
      const id = a.newStream();
      const frames = [a.headersFrame(id, requestList('/echo?fragments=64'), { endStream: true, endHeaders: false })];
      for (let i = 0; i < 62; i++) frames.push(a.continuationFrame(id, Buffer.alloc(0)));
      frames.push(a.continuationFrame(id, Buffer.alloc(0), true));
      a.send(...frames);
      assert.equal((await a.response(id)).status, 200);
      // A never-ending block of zero-length CONTINUATIONs: stopped at the 65th fragment.
      const flood = a.newStream();
      const zeros = [a.headersFrame(flood, requestList('/echo?flood'), { endStream: true, endHeaders: false })];
      for (let i = 0; i < 1000; i++) zeros.push(a.continuationFrame(flood, Buffer.alloc(0)));
      a.send(...zeros);
      const g = await a.goaway();
      assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM, g.debug);
      await a.waitClosed();

      // A block of exactly 64 KiB over 16 KiB fragments is read (the header list is too large for
      // the request: 431, and the connection lives on)...
      const b = await hostile();
      const base = requestList('/echo?bytes=64k');
      let pad = 65_000;
      const encodedLength = (n: number) => new HpackEncoder().encode([...base, 'x-pad', 'a'.repeat(n)]).length;
      while (encodedLength(pad) < 65_536) pad++;
      assert.equal(encodedLength(pad), 65_536);
      const block = b.encodeBlock([...base, 'x-pad', 'a'.repeat(pad)]);
      const big = b.newStream();
      b.send(
        frame(FrameType.HEADERS, Flag.END_STREAM, big, block.subarray(0, 16_384)),
        b.continuationFrame(big, block.subarray(16_384, 32_768)),
        b.continuationFrame(big, block.subarray(32_768, 49_152)),
        b.continuationFrame(big, block.subarray(49_152), true),
      );
      assert.equal((await b.response(big)).status, 431);
      assert.equal((await b.response(b.request(requestList('/echo?after=431')))).status, 200);
      // ...and one that goes on past 64 KiB (it never ends) is refused at the fragment that does.
      const endless = b.newStream();
      const kib16 = Buffer.alloc(16_384, 0x41);
      b.send(
        frame(FrameType.HEADERS, Flag.END_STREAM, endless, kib16),
        ...Array.from({ length: 4 }, () => b.continuationFrame(endless, kib16)),
      );
      const g2 = await b.goaway();
      assert.equal(g2.code, ErrorCode.ENHANCE_YOUR_CALM, g2.debug);
      await b.waitClosed();
      await othersServed();
    },
  );

  it(
    'lets a client reset a hundred streams and serves it on, but answers a rapid-reset flood with GOAWAY ENHANCE_YOUR_CALM after about 1,000',
    TEST,
    async () => {
      const pairs = (c: RawH2, n: number) => {
        const out: Buffer[] = [];
        for (let i = 0; i < n; i++) {
          // POST without END_STREAM: the stream stays open (forwarded, its backend waits for
          // the body) until the reset.
          const id = c.newStream();
          out.push(c.headersFrame(id, requestList('/reset-me', 'POST')), c.rstFrame(id, ErrorCode.CANCEL));
        }
        return Buffer.concat(out);
      };
      const modest = await hostile();
      modest.send(pairs(modest, 100));
      const r = await modest.response(modest.request(requestList('/echo?after=100-resets')));
      assert.equal(r.status, 200);
      assert.equal(
        modest.frames.some((f) => f.type === FrameType.GOAWAY),
        false,
      );
      modest.destroy();

      const flood = await hostile();
      flood.send(pairs(flood, 2000));
      const g = await flood.goaway();
      assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM, g.debug);
      // The streams it opened before it was stopped: the bucket's 1,000, plus what refilled.
      const opened = (g.lastStream + 1) / 2;
      assert.ok(opened > 1000 && opened < 1500, `GOAWAY after ${opened} streams`);
      await flood.waitClosed();
      await eventually(() => !web.openPaths().includes('/reset-me'), 'the reset streams to be gone from the backend');
      await othersServed();
    },
  );

  it(
    'answers a flood of streams it has to reset itself ("MadeYouReset", CVE-2025-8671) with GOAWAY ENHANCE_YOUR_CALM after about 1,000',
    TEST,
    async () => {
      // Each stream is opened (and forwarded), then made to fail by a WINDOW_UPDATE of 0, a
      // stream error: the proxy resets it, as the client's own RST_STREAM would have.
      const c = await hostile();
      const out: Buffer[] = [];
      for (let i = 0; i < 2000; i++) {
        const id = c.newStream();
        out.push(c.headersFrame(id, requestList('/made-you-reset', 'POST')), c.windowUpdateFrame(id, 0));
      }
      c.send(...out);
      const g = await c.goaway();
      assert.equal(g.code, ErrorCode.ENHANCE_YOUR_CALM, g.debug);
      const opened = (g.lastStream + 1) / 2;
      assert.ok(opened > 1000 && opened < 1500, `GOAWAY after ${opened} streams`);
      // Before it: each stream it opened was reset with the stream error's code.
      const resets = c.frames.filter((f) => f.type === FrameType.RST_STREAM);
      assert.ok(
        resets.length >= 1000 && resets.every((f) => f.payload.readUInt32BE(0) === ErrorCode.PROTOCOL_ERROR),
        `${resets.length} resets`,
      );
      await c.waitClosed();
      await eventually(
        () => !web.openPaths().includes('/made-you-reset'),
        'the reset streams to be gone from the backend',
      );
      await othersServed();
    },
  );

  it(
    'spreads the resets of clients that cancel a lot over upstream connections, so that the backend does not close one under a request in flight',
    TEST,
    async () => {
      // Each hostile connection stays under the proxy's own reset budget, but together they
      // would make the proxy reset 1,800 streams towards the backend, whose rapid-reset guard
      // (nghttp2: a burst of 1,000) would close the shared connection under the slow request.
      const slow = good.request({ ':method': 'POST', ':path': '/echo?slow' }, { endStream: false });
      const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
        let status = 0;
        let body = '';
        slow.on('response', (h) => (status = Number(h[':status'])));
        slow.setEncoding('utf8');
        slow.on('data', (c: string) => (body += c));
        slow.on('end', () => resolve({ status, body }));
        slow.on('error', reject);
      });
      slow.write('first half;');
      await eventually(() => web.openPaths().includes('/echo?slow'), 'the slow request to reach the backend');
      for (let k = 0; k < 2; k++) {
        const c = await hostile();
        const out: Buffer[] = [];
        for (let i = 0; i < 900; i++) {
          const id = c.newStream();
          out.push(c.headersFrame(id, requestList('/cancel-me', 'POST')), c.rstFrame(id, ErrorCode.CANCEL));
        }
        c.send(...out);
        const r = await c.response(c.request(requestList('/echo?after-cancels')));
        assert.equal(r.status, 200);
      }
      await eventually(
        () => !web.openPaths().includes('/cancel-me'),
        'the canceled streams to be gone from the backend',
      );
      slow.end('second half');
      const a = await within(answer, 5000, 'the slow request');
      assert.equal(a.status, 200);
      assert.deepEqual(
        [(JSON.parse(a.body) as Received).path, (JSON.parse(a.body) as Received).length],
        ['/echo?slow', 'first half;second half'.length],
      );
      await othersServed();
    },
  );

  it(
    'resets a malformed request with RST_STREAM PROTOCOL_ERROR and serves the next request on the same connection',
    TEST,
    async () => {
      const c = await hostile();
      const cases: [string, string[]][] = [
        ['an upper-case header name', requestList('/echo', 'GET', ['X-Upper', '1'])],
        ['a connection header', requestList('/echo', 'GET', ['connection', 'keep-alive'])],
        ['a transfer-encoding header', requestList('/echo', 'GET', ['transfer-encoding', 'chunked'])],
        ['te: gzip', requestList('/echo', 'GET', ['te', 'gzip'])],
        ['no :path', [':method', 'GET', ':scheme', 'http', ':authority', 'web']],
        [
          'a pseudo-header after a regular header',
          [':method', 'GET', ':scheme', 'http', 'x-early', '1', ':path', '/echo', ':authority', 'web'],
        ],
        ['a response pseudo-header', requestList('/echo', 'GET', [':status', '200'])],
        ['CR LF in a value', requestList('/echo', 'GET', ['x-note', 'a\r\nx-injected: 1'])],
        ['NUL in a value', requestList('/echo', 'GET', ['x-note', 'a\u0000b'])],
        ['a value with leading whitespace', requestList('/echo', 'GET', ['x-note', '\tpadded'])],
        ['a value with trailing whitespace', requestList('/echo', 'GET', ['x-note', 'padded '])],
        ['a space in a name', requestList('/echo', 'GET', ['x note', '1'])],
        ['a name past ASCII', requestList('/echo', 'GET', ['x-\u00e9', '1'])],
        ['an empty name', requestList('/echo', 'GET', ['', '1'])],
        [
          'CR LF in :path',
          [':method', 'GET', ':scheme', 'http', ':authority', 'web', ':path', '/echo\r\nx-injected: 1'],
        ],
        ['a space in :path', [':method', 'GET', ':scheme', 'http', ':authority', 'web', ':path', '/echo HTTP/1.1']],
        ['a space in :authority', [':method', 'GET', ':scheme', 'http', ':authority', 'web x', ':path', '/echo']],
        [
          'a :method that is not a token',
          [':method', 'GET /x', ':scheme', 'http', ':authority', 'web', ':path', '/echo'],
        ],
      ];
      for (const [what, list] of cases) {
        const id = c.request(list);
        assert.equal(await c.rst(id), ErrorCode.PROTOCOL_ERROR, what);
        const next = await c.response(c.request(requestList(`/echo?after=${encodeURIComponent(what)}`)));
        assert.equal(next.status, 200, what);
      }
      // A content-length the DATA disagrees with: more, or less, than declared.
      for (const [declared, sent] of [
        [10, 'hello'],
        [3, 'hello'],
      ] as const) {
        const id = c.request(requestList('/upload', 'POST', ['content-length', String(declared)]), { body: sent });
        assert.equal(await c.rst(id), ErrorCode.PROTOCOL_ERROR, `content-length ${declared} with ${sent.length} bytes`);
        const next = await c.response(
          c.request(requestList('/upload', 'POST', ['content-length', '5']), { body: 'right' }),
        );
        assert.deepEqual([next.status, (JSON.parse(next.body.toString()) as Received).length], [200, 5]);
      }
      // Malformed trailers, and a body that trailers end short of its content-length.
      for (const [what, extra, trailers] of [
        ['a pseudo-header in trailers', [], [':path', '/elsewhere']],
        ['an upper-case trailer name', [], ['X-Upper', '1']],
        ['a connection-specific trailer', [], ['transfer-encoding', 'chunked']],
        ['CR LF in a trailer value', [], ['x-t', 'a\r\nb']],
        ['content-length 10, 5 bytes, then trailers', ['content-length', '10'], ['x-t', '1']],
      ] as const) {
        const id = c.newStream();
        c.send(
          c.headersFrame(id, requestList('/upload', 'POST', [...extra])),
          c.dataFrame(id, 'hello'),
          c.headersFrame(id, [...trailers], { endStream: true }),
        );
        assert.equal(await c.rst(id), ErrorCode.PROTOCOL_ERROR, what);
      }
      const id = c.newStream();
      c.send(
        c.headersFrame(id, requestList('/upload', 'POST', ['content-length', '5'])),
        c.dataFrame(id, 'hello'),
        c.headersFrame(id, ['x-t', '1'], { endStream: true }),
      );
      const fine = await c.response(id);
      assert.deepEqual([fine.status, (JSON.parse(fine.body.toString()) as Received).trailers?.['x-t']], [200, '1']);
      assert.equal(
        c.frames.some((f) => f.type === FrameType.GOAWAY),
        false,
      );
      assert.deepEqual(c.violations, []);
      await othersServed();
    },
  );

  it('answers an HPACK block it cannot decode with GOAWAY COMPRESSION_ERROR', TEST, async () => {
    for (const [what, block] of [
      ['an index past the dynamic table', [0xbe]],
      ['index 0', [0x80]],
      ['a literal longer than the block', [0x00, 0x05, 0x61]],
    ] as const) {
      const c = await hostile();
      c.send(frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.from(block)));
      const g = await c.goaway();
      assert.equal(g.code, ErrorCode.COMPRESSION_ERROR, `${what}: ${g.debug}`);
      await c.waitClosed();
    }
    await othersServed();
  });

  it(
    'answers WINDOW_UPDATEs past 2^31-1 or of 0 as RFC 9113 §6.9 says: connection errors on stream 0, stream errors on a stream',
    TEST,
    async () => {
      const overflow = await hostile();
      overflow.send(overflow.windowUpdateFrame(0, 0x7fffffff));
      assert.equal((await overflow.goaway()).code, ErrorCode.FLOW_CONTROL_ERROR);
      await overflow.waitClosed();

      const zero = await hostile();
      zero.send(zero.windowUpdateFrame(0, 0));
      assert.equal((await zero.goaway()).code, ErrorCode.PROTOCOL_ERROR);
      await zero.waitClosed();

      const c = await hostile();
      const a = c.request(requestList('/hold', 'POST'), { endStream: false });
      c.send(c.windowUpdateFrame(a, 0x7fffffff));
      assert.equal(await c.rst(a), ErrorCode.FLOW_CONTROL_ERROR);
      const b = c.request(requestList('/hold', 'POST'), { endStream: false });
      c.send(c.windowUpdateFrame(b, 0));
      assert.equal(await c.rst(b), ErrorCode.PROTOCOL_ERROR);
      assert.equal((await c.response(c.request(requestList('/echo?after=window-updates')))).status, 200);
      assert.equal(
        c.frames.some((f) => f.type === FrameType.GOAWAY),
        false,
      );
      c.destroy();
      await othersServed();
    },
  );

  it('answers PING with PING ACK carrying the same 8 bytes', TEST, async () => {
    const c = await hostile();
    const one = Buffer.from('weft\x00\x01\x02\x03', 'latin1');
    const two = Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0, 0, 0, 7]);
    c.send(c.pingFrame(one), c.pingFrame(two));
    for (const data of [one, two]) {
      const f = await c.waitFor(
        (f) => f.type === FrameType.PING && f.payload.equals(data),
        `PING ACK ${data.toString('hex')}`,
      );
      assert.deepEqual([f.flags, f.stream], [Flag.ACK, 0]);
    }
    assert.equal(c.frames.filter((f) => f.type === FrameType.PING).length, 2);
    c.destroy();
  });

  for (const [what, control] of [
    ['PINGs', (c: RawH2) => c.pingFrame(Buffer.alloc(8))],
    ['SETTINGS', () => frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0))],
  ] as const) {
    it(
      `closes a connection that floods ${what} and reads none of the answers, holding little for it`,
      TEST,
      async () => {
        const c = await hostile();
        c.socket.pause();
        const batch = Buffer.concat(Array.from({ length: 10_000 }, () => control(c)));
        let sent = 0;
        let held = 0;
        // Until the proxy closes the connection: the kernel's buffers fill with the answers, then
        // the proxy's socket backlog, up to its bound (4 MiB). 256 MiB is far past that.
        while (!c.closed && sent < 256 * MiB) {
          if (!c.socket.write(batch)) await new Promise((r) => c.socket.once('drain', r).once('close', r));
          sent += batch.length;
          held = Math.max(held, await bufferedBytes('downstream'));
        }
        assert.ok(c.closed, `the connection still open after ${(sent / MiB).toFixed(0)} MiB of ${what}`);
        assert.ok(held <= 5 * MiB, `${(held / MiB).toFixed(1)} MiB held for the client`);
        await othersServed();
      },
    );
  }

  it(
    'sends a 1 MiB response byte-exact to a client with a 1,000-byte stream window, never past the windows it gave',
    TEST,
    async () => {
      const c = await hostile({ settings: [[Setting.INITIAL_WINDOW_SIZE, 1000]] });
      const id = c.request(requestList(`/bytes?n=${MiB}`));
      const r = await c.response(id, 12_000);
      assert.equal(r.status, 200);
      assert.equal(r.body.length, MiB);
      assert.ok(r.body.equals(pattern(MiB)), 'the body differs from what the backend sent');
      assert.deepEqual(c.violations, []);
      const sizes = c.frames.filter((f) => f.type === FrameType.DATA && f.stream === id).map((f) => f.payload.length);
      assert.ok(Math.max(...sizes) <= 1000, `a DATA frame of ${Math.max(...sizes)} bytes`);
      c.destroy();
      await othersServed();
    },
  );

  it(
    'keeps serving others while a client holds a large download and reads nothing, and frees it when that client goes',
    TEST,
    async () => {
      const stalled = await hostile({ autoWindow: false });
      const id = stalled.request(requestList(`/bytes?n=${16 * MiB}&stalled`));
      // It gets what its windows allow (65,535 bytes), and no more.
      await eventually(() => stalled.received.get(id) === 65_535, 'the stalled client to get its window full', 5000);
      await eventually(
        () => web.openPaths().some((p) => p.endsWith('&stalled')),
        'the stalled download at the backend',
        5000,
      );
      for (let i = 0; i < 3; i++) {
        const d = await within(
          exchange(good, { ':path': `/bytes?n=${MiB}` }),
          5000,
          'a 1 MiB download beside the stalled one',
        );
        assert.equal(d.status, 200);
        assert.ok(d.body.equals(pattern(MiB)));
      }
      await othersServed();
      assert.equal(stalled.received.get(id), 65_535);
      assert.deepEqual(stalled.violations, []);
      // The client goes: its download is canceled at the backend.
      stalled.destroy();
      await eventually(
        () => !web.openPaths().some((p) => p.endsWith('&stalled')),
        'the stalled download to be canceled at the backend',
        5000,
      );
      await othersServed();
    },
  );

  it('keeps serving others while one client holds twenty large downloads and reads nothing', TEST, async () => {
    // The downloads share the proxy's upstream connection to the backend with everyone else's
    // requests, and each may hold its stream window's worth (1 MiB) of the backend's bytes in
    // the proxy: twenty of them hold more than the connection's 16 MiB window.
    const stalled = await hostile({ autoWindow: false });
    for (let i = 0; i < 20; i++) stalled.request(requestList(`/bytes?n=${2 * MiB}&stalled-many=${i}`));
    await eventually(
      () => web.openPaths().filter((p) => p.includes('&stalled-many=')).length === 20,
      'the twenty downloads at the backend',
      5000,
    );
    const total = () => [...stalled.received.values()].reduce((a, b) => a + b, 0);
    await eventually(() => total() === 65_535, 'the stalled client to get its connection window full', 5000);
    const d = await within(
      exchange(good, { ':path': `/bytes?n=${MiB}` }),
      5000,
      'a 1 MiB download beside twenty stalled ones',
    );
    assert.equal(d.status, 200);
    assert.ok(d.body.equals(pattern(MiB)));
    await othersServed();
    assert.deepEqual(stalled.violations, []);
    stalled.destroy();
    await eventually(
      () => !web.openPaths().some((p) => p.includes('&stalled-many=')),
      'the stalled downloads to be canceled at the backend',
      5000,
    );
  });

  it(
    'holds little for a client that grants huge windows and reads nothing (its socket backs up; the backend is held back)',
    TEST,
    async () => {
      const rssAnonMb = () =>
        Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${proxy.child.pid}/status`, 'utf8'))![1]) / 1024;
      const greedy = await hostile({ autoWindow: false, settings: [[Setting.INITIAL_WINDOW_SIZE, 0x7fffffff]] });
      greedy.send(greedy.windowUpdateFrame(0, 0x7fffffff - 65_535));
      const before = rssAnonMb();
      for (let i = 0; i < 20; i++) greedy.request(requestList(`/bytes?n=${16 * MiB}&greedy=${i}`));
      await eventually(
        () => web.openPaths().filter((p) => p.includes('&greedy=')).length === 20,
        'the twenty downloads at the backend',
        5000,
      );
      greedy.socket.pause(); // from here it reads nothing: the kernel's buffers fill, then the proxy's
      // 320 MiB are asked for; without a bound the proxy would take them from the backend as fast
      // as loopback goes (the client's windows allow it) and keep them.
      let most = 0;
      let held = 0;
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 200));
        most = Math.max(most, rssAnonMb() - before);
        held = Math.max(held, await bufferedBytes('downstream'));
      }
      // The socket's backlog bound (1 MiB) and the budget of DATA waiting (16 MiB) hold it.
      assert.ok(held <= 17 * MiB, `${(held / MiB).toFixed(1)} MiB held for the client`);
      assert.ok(most < 64, `the proxy's own memory grew by ${most.toFixed(1)} MB`);
      await othersServed();
      greedy.destroy();
      await eventually(
        () => !web.openPaths().some((p) => p.includes('&greedy=')),
        'the greedy downloads to be canceled at the backend',
        5000,
      );
    },
  );

  it(
    'closes a connection it fails for a client that reads nothing once that client has taken nothing more for a while',
    TEST,
    async () => {
      const active = async () =>
        sampleValue(parsePrometheusText(await proxy.metrics()), 'weft_proxy_connections_active');
      const before = await active();
      const c = await hostile({ autoWindow: false, settings: [[Setting.INITIAL_WINDOW_SIZE, 0x7fffffff]] });
      c.send(c.windowUpdateFrame(0, 0x7fffffff - 65_535));
      c.request(requestList(`/bytes?n=${16 * MiB}&unread`));
      c.socket.pause();
      await eventually(async () => (await bufferedBytes('downstream')) >= MiB, 'the socket backlog to fill', 5000);
      // A connection error: the GOAWAY goes behind what the client does not read.
      c.send(frame(FrameType.PING, 0, 1, Buffer.alloc(8)));
      await eventually(
        async () => (await active()) <= before && (await bufferedBytes('downstream')) === 0,
        'the connection to be closed and its backlog freed',
        15_000,
      );
      await eventually(
        () => !web.openPaths().some((p) => p.endsWith('&unread')),
        'the download to be canceled at the backend',
        5000,
      );
      await othersServed();
    },
  );

  it(
    'resets streams past a budget for a client that opens many downloads and opens no window (ENHANCE_YOUR_CALM), and holds little for it',
    TEST,
    async () => {
      const c = await hostile({ autoWindow: false });
      // Each stream may bring an upstream stream window (256 KiB) of the backend's bytes into
      // the proxy before the client's closed windows hold it back: 200 of them would be 50 MiB.
      const ids: number[] = [];
      for (let i = 0; i < 200; i++) ids.push(c.request(requestList(`/bytes?n=${2 * MiB}&hoard=${i}`)));
      // 16 MiB of 256 KiB windows: about 64 streams keep theirs, the other ~136 are reset.
      const resets = () => c.frames.filter((f) => f.type === FrameType.RST_STREAM);
      await eventually(() => resets().length >= 120, 'the streams past the budget to be reset', 5000);
      assert.ok(resets().every((f) => f.payload.readUInt32BE(0) === ErrorCode.ENHANCE_YOUR_CALM));
      assert.ok(resets().length <= 150, `${resets().length} streams reset`);
      // What the proxy holds for it, as its metrics say (the bytes of the reset streams were
      // taken from the backend too, and are garbage the proxy's RSS shows until a GC runs).
      let held = 0;
      await eventually(async () => (held = await bufferedBytes('downstream')) >= 15 * MiB, 'the budget to fill', 5000);
      assert.ok(held <= 17 * MiB, `${(held / MiB).toFixed(1)} MiB held for the client`);
      await othersServed();
      c.destroy();
      await eventually(
        () => !web.openPaths().some((p) => p.includes('&hoard=')),
        'the downloads to be canceled at the backend',
        5000,
      );
    },
  );

  it(
    "keeps the process under its budget (64 MiB) against many hoarding connections, each under its own, by resetting the largest holders' streams; a modestly slow client keeps its stream",
    TEST,
    async () => {
      const shed = async () =>
        sampleValue(parsePrometheusText(await proxy.metrics()), 'weft_proxy_streams_shed_total', { budget: 'process' });
      const shedBefore = await shed();
      const modest = await hostile({ autoWindow: false });
      const slow = modest.request(requestList(`/bytes?n=${2 * MiB}&modest`));
      await eventually(() => modest.received.get(slow) === 65_535, 'the modest client to get its window full', 5000);
      // Seven connections of 56 downloads, each holding an upstream stream window (256 KiB):
      // 14 MiB each, under the connection's 16 MiB; 98 MiB in all.
      const hoarders: RawH2[] = [];
      for (let c = 0; c < 7; c++) {
        const h = await hostile({ autoWindow: false });
        hoarders.push(h);
        for (let i = 0; i < 56; i++) h.request(requestList(`/bytes?n=${2 * MiB}&hoard-many=${c}-${i}`));
      }
      const resets = () => hoarders.flatMap((h) => h.frames.filter((f) => f.type === FrameType.RST_STREAM));
      await eventually(
        async () => (await shed()) - shedBefore >= 100,
        'the process budget to reset the largest holders',
        10_000,
      );
      // Over 64 MiB, back to 56 (7/8 of it): about 42 MiB of 256 KiB streams, ~168.
      await eventually(() => resets().length >= 100, 'the hoarders to hear their resets', 5000);
      assert.ok(resets().every((f) => f.payload.readUInt32BE(0) === ErrorCode.ENHANCE_YOUR_CALM));
      const held = await bufferedBytes('downstream');
      assert.ok(held <= 65 * MiB, `${(held / MiB).toFixed(1)} MiB held for clients`);
      assert.ok(resets().length <= 250, `${resets().length} streams reset`);
      assert.ok(!modest.frames.some((f) => f.type === FrameType.RST_STREAM), "the modest client's stream was reset");
      await othersServed();
      for (const h of hoarders) h.destroy();
      await eventually(
        () => !web.openPaths().some((p) => p.includes('&hoard-many=')),
        'the hoarded downloads to be canceled at the backend',
        10_000,
      );
      // The modest client reads on, and gets every byte.
      modest.autoWindow = true;
      modest.send(modest.windowUpdateFrame(0, 65_535), modest.windowUpdateFrame(slow, 65_535));
      const r = await modest.response(slow, 10_000);
      assert.ok(r.body.equals(pattern(2 * MiB)), 'the modest download differs from what the backend sent');
    },
  );

  it(
    "holds a slow backend's upload back by the client's window, counts what it holds for the backend, and delivers it byte-exact",
    TEST,
    async () => {
      const body = pattern(2 * MiB);
      const upload = exchange(
        good,
        { ':method': 'POST', ':path': '/slow-upload', 'content-type': 'application/octet-stream' },
        body,
      );
      // The backend reads nothing: its window (64 KiB) fills, then what the proxy took of the
      // client's stream window (256 KiB) waits on the upstream stream, and the client is held back.
      let held = 0;
      await eventually(
        async () => (held = await bufferedBytes('upstream')) >= 128 * 1024,
        'the proxy to hold part of the upload for the backend',
        5000,
      );
      assert.ok(held <= 256 * 1024 + 16_384, `${held} bytes held for the backend`);
      web.releaseUploads();
      const r = await within(upload, 10_000, 'the upload once the backend reads');
      assert.equal(r.status, 200);
      const got = JSON.parse(r.body.toString()) as Received;
      assert.deepEqual([got.length, got.sha256], [body.length, sha256(body)]);
      await eventually(
        async () => (await bufferedBytes('upstream')) === 0,
        'nothing held for the backend any more',
        5000,
      );
    },
  );

  it('carries a 5 MiB request body byte-exact to the backend', TEST, async () => {
    const body = pattern(5 * MiB);
    const r = await within(
      exchange(good, { ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream' }, body),
      10_000,
      'a 5 MiB upload',
    );
    assert.equal(r.status, 200);
    const got = JSON.parse(r.body.toString()) as Received;
    assert.deepEqual([got.length, got.sha256], [body.length, sha256(body)]);
  });

  it(
    'refuses the streams past 1,000 concurrent ones on a connection with REFUSED_STREAM, and serves the first 1,000',
    TEST,
    async () => {
      const c = await hostile();
      const ids: number[] = [];
      const out: Buffer[] = [];
      for (let i = 0; i < 1010; i++) {
        const id = c.newStream();
        ids.push(id);
        // No END_STREAM: the backend answers when the body ends, so the streams stay open.
        out.push(c.headersFrame(id, requestList(`/hold?i=${i}`, 'POST')));
      }
      c.send(...out);
      for (const id of ids.slice(1000)) assert.equal(await c.rst(id), ErrorCode.REFUSED_STREAM, `stream ${id}`);
      await eventually(
        () => web.openPaths().filter((p) => p.startsWith('/hold?i=')).length === 1000,
        'the first 1,000 streams at the backend',
        5000,
      );
      const resets = c.frames.filter((f) => f.type === FrameType.RST_STREAM);
      assert.deepEqual(
        resets.map((f) => f.stream),
        ids.slice(1000),
      );
      // Others are served meanwhile.
      await othersServed();
      // The bodies end: each of the 1,000 is answered.
      c.send(...ids.slice(0, 1000).map((id) => c.dataFrame(id, '', true)));
      const answers = await Promise.all(ids.slice(0, 1000).map((id) => c.response(id, 10_000)));
      assert.deepEqual(
        answers.map((a) => [a.status, (JSON.parse(a.body.toString()) as Received).path]),
        ids.slice(0, 1000).map((_, i) => [200, `/hold?i=${i}`]),
      );
      // With them done, the connection takes new streams again.
      assert.equal((await c.response(c.request(requestList('/echo?after=1000')))).status, 200);
      assert.deepEqual(c.violations, []);
      c.destroy();
    },
  );

  it(
    'passes request trailers (HEADERS, DATA, trailing HEADERS with END_STREAM) to an HTTP/2 backend as trailers',
    TEST,
    async () => {
      const c = await hostile();
      const id = c.newStream();
      c.send(
        c.headersFrame(id, requestList('/trailers', 'POST', ['te', 'trailers', 'content-type', 'text/plain'])),
        c.dataFrame(id, 'hello '),
        c.dataFrame(id, 'trailers'),
        c.headersFrame(id, ['x-checksum', 'abc123', 'x-more', 'yes'], { endStream: true }),
      );
      const r = await c.response(id);
      assert.equal(r.status, 200);
      const got = JSON.parse(r.body.toString()) as Received;
      assert.deepEqual([got.length, got.sha256], [14, sha256('hello trailers')]);
      assert.deepEqual([got.trailers?.['x-checksum'], got.trailers?.['x-more']], ['abc123', 'yes']);
      c.destroy();
    },
  );

  it('answers 502 (gRPC: 14 UNAVAILABLE) when the backend resets every stream', TEST, async () => {
    assert.equal(
      (await within(h2Request(good, { ':path': '/resets/get' }), 5000, 'GET to the resetting backend')).status,
      502,
    );
    assert.equal(
      (
        await within(
          h2Request(good, { ':method': 'POST', ':path': '/resets/post' }, 'a body'),
          5000,
          'POST to the resetting backend',
        )
      ).status,
      502,
    );
    const g = await within(
      h2Request(good, { ':method': 'POST', ':path': '/resets/grpc', 'content-type': 'application/grpc' }, ''),
      5000,
      'gRPC to the resetting backend',
    );
    assert.deepEqual([g.status, g.headers['grpc-status']], [200, '14']);
    // A gRPC client sees UNAVAILABLE.
    const client = new grpc.Client(`127.0.0.1:${listen}`, grpc.credentials.createInsecure());
    cleanup.add(() => client.close());
    const code = await within(
      new Promise<number>((resolve) => {
        const id = (b: Buffer) => b;
        client.makeUnaryRequest('/weft.test.Echo/Unary', id, id, Buffer.from('hi'), (err) => resolve(err?.code ?? 0));
      }),
      5000,
      'a gRPC call to the resetting backend',
    );
    assert.equal(code, grpc.status.UNAVAILABLE);
    client.close();
    assert.ok(resets.streams >= 4, `the backend saw ${resets.streams} streams`);
    await othersServed();
  });

  it(
    'answers 502 for a response whose header fields are malformed (RFC 9113 §8.2.1, §8.3), to HTTP/2 and HTTP/1.1 clients, and passes none of it on',
    TEST,
    async () => {
      for (const path of Object.keys(LIES)) {
        const r = await within(exchange(good, { ':path': path }), 5000, path);
        assert.equal(r.status, 502, path);
        const h1 = await h1Request(listen, { path, localAddress: GOOD });
        assert.equal(h1.status, 502, `${path} (HTTP/1.1)`);
        assert.equal(h1.headers['set-cookie'], undefined);
        assert.equal(h1.headers['x-note'], undefined);
      }
      await othersServed();
    },
  );

  it('answers 502 or 503 at once when an h2c backend does not speak HTTP/2, and serves others', TEST, async () => {
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await within(h2Request(good, { ':path': `/garbage/${i}` }), 5000, 'a request to the garbage backend');
      assert.ok(r.status === 502 || r.status === 503, `status ${r.status}`);
      assert.ok(performance.now() - t0 < 2000, `took ${Math.round(performance.now() - t0)} ms`);
      assert.ok(garbage.accepted > i, 'the proxy connected to the garbage backend');
    }
    await othersServed();
  });
});
