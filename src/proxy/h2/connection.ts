// weft-proxy's own HTTP/2 connection (RFC 9113), server and client side alike.
//
// Why not node:http2: its per-stream machinery (a Duplex per stream, header objects, nghttp2's
// callbacks into JS for every frame) costs 80–100 µs of CPU per proxied request on each side,
// and under bursty arrivals that becomes queueing latency (issue 7's bench). A proxy needs much
// less: it relays frames. Here a stream is a plain object with a handler; headers are flat
// [name, value, ...] lists straight out of HPACK; DATA payloads are views of the bytes read,
// handed on without copying; everything a connection writes during one turn of the event
// loop goes out in one write (setImmediate), so a burst of requests costs one syscall each way.
//
// Flow control is credit-based end to end: received DATA is credited back to the peer (by
// WINDOW_UPDATE) only when its consumer says it has passed the bytes on (credit()), so a slow
// reader on one side holds the writer on the other side back by the windows alone, and the
// proxy never buffers more than the windows it advertised. Updates are batched: sent once half
// a window is owed. A connection shared by many clients' streams (upstream) credits its
// connection window on receipt instead (creditConnectionOnReceipt), so that one client's
// unread streams cannot take the window every other stream needs; their stream windows still
// bound what is held.
//
// Limits against hostile peers (RFC 9113 §10.5, and the attacks found since):
// concurrent streams (REFUSED_STREAM past ours), header blocks (CONTINUATION floods: bytes and
// fragments bounded; a header list past the limit is refused by the server's request check, one
// past HPACK_LIST_LIMIT kills the connection, as the table can no longer be trusted), resets
// (the "rapid reset" attack: a token bucket of peer resets, and of stream errors the peer
// caused, "MadeYouReset"; empty → GOAWAY ENHANCE_YOUR_CALM),
// control frames that ask for an answer (PING, SETTINGS) while the peer does not read them
// (output backlog past MAX_CONTROL_BACKLOG → ENHANCE_YOUR_CALM), DATA for a peer that grants
// windows but does not read (it waits while the socket's backlog is past WRITE_HIGH_WATER),
// DATA waiting for windows a peer never opens (past maxQueuedBytes the stream is reset),
// frame sizes, window overflows, and a closed connection's backlog for a peer that reads none
// of it (closeSocket).
// What a connection holds for its peer is its bufferedBytes (weft_proxy_buffered_bytes).
import type net from 'node:net';
import { HpackDecoder, HpackEncoder, HpackError } from './hpack.js';
import type { QueueBudget, QueueHolder } from './queue-budget.js';
import { StreamTable } from './stream-table.js';
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  ErrorCode,
  errorName,
  Flag,
  FRAME_HEADER,
  FrameType,
  H2ConnectionError,
  MAX_FRAME_LIMIT,
  MAX_WINDOW,
  PREFACE,
  Setting,
} from './frames.js';

export interface H2Settings {
  maxConcurrentStreams: number;
  initialWindowSize: number;
  /** The connection's receive window (sent as a WINDOW_UPDATE of stream 0 at start). */
  connectionWindowSize: number;
  /** Credit the connection window for DATA as it is received, not when its stream's owner
   *  passed it on; only the stream windows hold the peer back. For a connection whose streams
   *  belong to different clients (the proxy's upstream connections): otherwise a few streams
   *  whose clients do not read hold the whole connection window, and every other stream on the
   *  connection stalls with them. What is held is then bounded by the stream windows. */
  creditConnectionOnReceipt?: boolean;
  maxHeaderListSize: number;
  /** DATA bytes the connection may hold for a peer that does not open its windows; past it
   *  the stream that would add more is reset (ENHANCE_YOUR_CALM). Unset: no limit. */
  maxQueuedBytes?: number;
  /** The process's budget of queued DATA, shared by its connections (see queue-budget.ts). */
  queueBudget?: QueueBudget;
}

/** What a stream's owner hears. Buffers are views of the bytes read: valid as long as kept. */
export interface H2StreamHandler {
  /** A header block on the stream: the response (client side; 1xx first if any), or trailers. */
  onHeaders(s: H2Stream, headers: string[], endStream: boolean): void;
  /** A DATA payload (possibly empty when it only carries END_STREAM). The owner must credit()
   *  its length once it has passed it on. */
  onData(s: H2Stream, data: Buffer, endStream: boolean): void;
  /** The stream ended abnormally: reset by the peer, or the connection is gone. No more events. */
  onReset(s: H2Stream, code: number, why: string, cause?: Error): void;
  /** What sendData queued (the peer's window was closed) is all sent now. */
  onDrain(s: H2Stream): void;
}

export interface H2ConnectionEvents {
  /** Server side: a new stream and its request header list. The owner sets s.handler. */
  onStream?(s: H2Stream, headers: string[], endStream: boolean): void;
  /** The peer's first SETTINGS arrived. */
  onReady?(): void;
  /** The peer sent GOAWAY: streams above lastStreamId were not processed (already reset). */
  onGoaway?(lastStreamId: number, code: number): void;
  /** The connection is closed (err: why, if not a clean close). Streams were reset before. */
  onClose(err: Error | undefined): void;
  /** A stream owner's callback threw (the stream was reset with INTERNAL_ERROR): for the log. */
  onOwnerError?(err: Error, stream: number): void;
}

export class H2Stream {
  handler: H2StreamHandler | undefined;
  sendWindow: number;
  /** What the peer may still send on the stream (our window for it). */
  recvWindow: number;
  /** Bytes received and not yet credited back by the owner... */
  private owed = 0;
  /** ...and credited but not yet told to the peer. */
  unacked = 0;
  localClosed = false;
  remoteClosed = false;
  closed = false;
  /** Data waiting for the peer's window, then END_STREAM or trailers. */
  queue: Buffer[] | undefined;
  queueEnd = false;
  queueTrailers: string[] | undefined;
  queuedBytes = 0;
  /** Server side: the request's declared content-length (-1: none), and DATA bytes so far. */
  expectedLength = -1;
  receivedLength = 0;
  /** Server side: the request header list's size (RFC 9113 §6.5.2). */
  headerListSize = 0;

  constructor(
    readonly id: number,
    readonly conn: H2Connection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** The owner passed `n` received bytes on: the peer may send that many more. */
  credit(n: number): void {
    this.conn.credit(this, n);
  }

  respond(headers: readonly string[], endStream: boolean): void {
    this.conn.sendHeaders(this, headers, endStream);
  }

  /** true: written now; false: queued behind the peer's window (onDrain follows). */
  write(data: Buffer, endStream: boolean): boolean {
    return this.conn.sendData(this, data, endStream);
  }

  /** Ends the stream with trailers, after any queued data. */
  trailers(headers: readonly string[]): void {
    this.conn.sendTrailers(this, headers);
  }

  reset(code: number): void {
    this.conn.resetStream(this, code);
  }

  /** @internal */
  addOwed(n: number): void {
    this.owed += n;
  }
  /** @internal */
  takeOwed(n: number): number {
    const c = Math.min(n, this.owed);
    this.owed -= c;
    return c;
  }
}

const EMPTY = Buffer.alloc(0);
/** Output slab: frames are written into it and it is handed to the socket by regions. */
const SLAB = 16 * 1024;
/** DATA payloads at least this long are written as their own buffer rather than copied. */
const COPY_LIMIT = 4096;
/** A header block (HEADERS + CONTINUATION) may not exceed this many bytes or fragments. */
const MAX_BLOCK_BYTES = 64 * 1024;
const MAX_BLOCK_FRAGMENTS = 64;
/** A decoded header list past this kills the connection (HPACK stops half way). */
const HPACK_LIST_LIMIT = 256 * 1024;
/** Peer resets of open streams: bucket size, and refill per second. */
const RESET_BURST = 1000;
const RESET_RATE = 200;
/** Bytes handed to the socket and not yet taken by the kernel past which DATA waits, as if the
 *  peer's window were closed: a peer may grant huge windows and not read, and what the proxy
 *  holds for it must stay bounded (the sender's credit is held back meanwhile). */
const WRITE_HIGH_WATER = 1 << 20;
/** Bytes written and unread by the peer past which answering its PINGs/SETTINGS stops. */
const MAX_CONTROL_BACKLOG = 4 << 20;
/** Closing: how long a peer has to take some of what is still written for it. */
const CLOSE_LINGER_MS = 5000;

// Output slabs of connections with nothing in flight, for the next connection that writes: an
// idle connection holds none (10,000 idle connections would hold 160 MB of them).
const NO_SLAB = Buffer.alloc(0);
const freeSlabs: Buffer[] = [];
const MAX_FREE_SLABS = 64;

// Connections with output waiting, flushed together after this turn of the event loop.
const dirty: H2Connection[] = [];
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  for (let i = 0; i < dirty.length; i++) dirty[i]!.flush();
  dirty.length = 0;
}

export class H2Connection implements QueueHolder {
  readonly streams = new StreamTable<H2Stream>();
  /** Ours: the next stream id (client), the last the peer opened (server). */
  private nextId: number;
  lastPeerStream = 0;
  /** The peer's settings as they apply to what we send. */
  peerMaxStreams = 100;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME;
  private sendWindow = DEFAULT_WINDOW;
  /** Connection-level receive accounting. */
  private recvWindow: number;
  private recvUnacked = 0;
  /** Streams with queued data, waiting for window. */
  private readonly blocked = new Set<H2Stream>();
  ready = false;
  goawaySent = false;
  goawayReceived = false;
  /** The peer's GOAWAY: streams above it were not processed. */
  peerLastStream = MAX_WINDOW;
  closed = false;
  private draining = false;
  /** DATA bytes waiting in the streams' queues for the peer's windows. */
  queuedBytes = 0;
  /** Streams this side reset (a peer may count them against us: see upstream.ts). */
  resetsSent = 0;

  /** What this connection holds for a peer slower than its sender: DATA waiting for the peer's
   *  windows, and bytes the socket has not handed to the kernel yet. */
  get bufferedBytes(): number {
    return this.queuedBytes + this.socket.writableLength;
  }

  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();

  // Input
  private inBuf: Buffer = EMPTY;
  private prefaceLeft: number;
  private block: Buffer[] | undefined;
  private blockStream = 0;
  private blockFlags = 0;
  private blockBytes = 0;

  // Output
  private out: Buffer = NO_SLAB;
  private outStart = 0;
  private outPos = 0;
  private chunks: Buffer[] | undefined;
  private queued = false;

  private resetTokens = RESET_BURST;
  private resetRefill = performance.now();

  constructor(
    readonly socket: net.Socket,
    readonly role: 'server' | 'client',
    readonly settings: H2Settings,
    readonly events: H2ConnectionEvents,
    /** Server: bytes already read from the socket (the preface, at least in part). */
    initial?: Buffer,
  ) {
    this.nextId = role === 'client' ? 1 : 2;
    this.prefaceLeft = role === 'server' ? PREFACE.length : 0;
    this.recvWindow = settings.connectionWindowSize;
    this.decoder = new HpackDecoder();
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy(undefined));
    socket.on('end', () => this.destroy(this.streams.size ? new Error('the peer closed the connection') : undefined));
    socket.on('drain', () => {
      for (const s of [...this.blocked]) this.pump(s);
    });
    if (role === 'client') this.put(PREFACE);
    this.writeSettings();
    if (settings.connectionWindowSize > DEFAULT_WINDOW)
      this.writeWindowUpdate(0, settings.connectionWindowSize - DEFAULT_WINDOW);
    if (initial?.length) this.onBytes(initial);
  }

  // ---- the API ----

  /** Streams open now. */
  get active(): number {
    return this.streams.size;
  }

  /** Client: whether a new stream may be opened. */
  get canRequest(): boolean {
    return (
      !this.closed &&
      !this.goawayReceived &&
      !this.draining &&
      this.streams.size < this.peerMaxStreams &&
      this.nextId < MAX_WINDOW
    );
  }

  /** Client: opens a stream with its request headers. */
  request(headers: readonly string[], endStream: boolean, handler: H2StreamHandler): H2Stream {
    const s = new H2Stream(this.nextId, this, this.peerInitialWindow, this.settings.initialWindowSize);
    this.nextId += 2;
    s.handler = handler;
    this.streams.add(s);
    this.sendHeaders(s, headers, endStream);
    return s;
  }

  sendHeaders(s: H2Stream, headers: readonly string[], endStream: boolean): void {
    if (s.closed || s.localClosed || this.closed) return;
    this.writeHeaders(s.id, headers, endStream);
    if (endStream) this.localEnd(s);
  }

  sendData(s: H2Stream, data: Buffer, endStream: boolean): boolean {
    if (s.closed || s.localClosed || this.closed) return true;
    if (s.queue !== undefined) {
      if (data.length) this.enqueue(s, data);
      if (endStream) s.queueEnd = true;
      return this.withinBudget(s);
    }
    const n = data.length;
    const room = Math.min(s.sendWindow, this.sendWindow);
    if (n <= room && n <= this.peerMaxFrame && this.socket.writableLength < WRITE_HIGH_WATER) {
      s.sendWindow -= n;
      this.sendWindow -= n;
      this.writeData(s.id, data, endStream);
      if (endStream) this.localEnd(s);
      return true;
    }
    s.queue = [];
    if (n) this.enqueue(s, data);
    s.queueEnd = endStream;
    this.pump(s, false);
    if (s.queue === undefined) return true;
    this.blocked.add(s);
    return this.withinBudget(s);
  }

  private enqueue(s: H2Stream, data: Buffer): void {
    s.queue!.push(data);
    this.addQueued(s, data.length);
  }

  /** Every change of queued bytes: the stream's, the connection's, the process's. */
  private addQueued(s: H2Stream, n: number): void {
    s.queuedBytes += n;
    const was = this.queuedBytes;
    this.queuedBytes = was + n;
    const budget = this.settings.queueBudget;
    if (budget === undefined) return;
    budget.bytes += n;
    if (this.queuedBytes === 0) budget.holders.delete(this);
    else if (was === 0) budget.holders.add(this);
  }

  /** For the process's budget: resets the stream with the most queued. */
  shedLargest(): boolean {
    if (this.closed) return false;
    let top: H2Stream | undefined;
    for (const s of this.blocked) if (s.queuedBytes > (top?.queuedBytes ?? 0)) top = s;
    if (top === undefined) return false;
    this.shed(top, `the proxy holds too much for slow peers; this stream's peer had ${top.queuedBytes} bytes waiting`);
    return true;
  }

  private shed(s: H2Stream, why: string): void {
    this.resetStream(s, ErrorCode.ENHANCE_YOUR_CALM);
    this.tellReset(s, ErrorCode.ENHANCE_YOUR_CALM, why);
  }

  /** false: the stream's data waits for the peer (onDrain follows). Past the connection's
   *  budget of waiting bytes (maxQueuedBytes) the stream is reset instead: a peer that opens
   *  many streams and reads none of them must not make the proxy hold each stream's worth of
   *  its upstream's bytes. Past the process's budget the largest holders' streams are reset,
   *  maybe this one. Reset, the owner hears onReset and the write counts as done (true). */
  private withinBudget(s: H2Stream): boolean {
    const { maxQueuedBytes: max, queueBudget: budget } = this.settings;
    if (max !== undefined && this.queuedBytes > max) {
      if (budget !== undefined) budget.shed.connection++;
      this.shed(s, `the peer reads too slowly: ${this.queuedBytes} bytes wait for it`);
      return true;
    }
    if (budget === undefined || !budget.over) return false;
    budget.relieve();
    return s.closed;
  }

  sendTrailers(s: H2Stream, headers: readonly string[]): void {
    if (s.closed || s.localClosed || this.closed) return;
    if (s.queue !== undefined) {
      s.queueTrailers = headers.slice();
      return;
    }
    this.sendHeaders(s, headers, true);
  }

  resetStream(s: H2Stream, code: number): void {
    if (s.closed || this.closed) return;
    this.resetsSent++;
    this.writeFrame(4, FrameType.RST_STREAM, 0, s.id);
    this.u32(code);
    this.close(s);
  }

  credit(s: H2Stream, n: number): void {
    n = s.takeOwed(n);
    if (n === 0 || this.closed) return;
    if (!this.settings.creditConnectionOnReceipt) this.creditConnection(n);
    if (s.closed || s.remoteClosed) return;
    s.unacked += n;
    if (s.unacked >= this.settings.initialWindowSize >>> 1) {
      this.writeWindowUpdate(s.id, s.unacked);
      s.recvWindow += s.unacked;
      s.unacked = 0;
    }
  }

  /** Takes no new streams; closes once those in flight are done. */
  drain(): void {
    if (this.closed || this.draining) return;
    this.draining = true;
    if (this.role === 'server') this.goaway(ErrorCode.NO_ERROR, '');
    if (this.streams.size === 0) this.end();
  }

  /** GOAWAY with an error: streams in flight are reset, the connection closes. */
  fail(code: number, message: string): void {
    if (this.closed) return;
    this.goaway(code, message);
    this.flush();
    this.destroy(new H2ConnectionError(code, message));
  }

  destroy(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    // Out of the process's budget first: the owners told below may write elsewhere and relieve it.
    if (this.queuedBytes) {
      const budget = this.settings.queueBudget;
      if (budget !== undefined) {
        budget.bytes -= this.queuedBytes;
        budget.holders.delete(this);
      }
      this.queuedBytes = 0;
    }
    const why = err?.message ?? 'the connection closed';
    for (const s of this.streams.values()) {
      s.closed = true;
      this.tellReset(s, err instanceof H2ConnectionError ? err.h2code : ErrorCode.CANCEL, why, err);
    }
    this.streams.clear();
    this.blocked.clear();
    if (!this.socket.destroyed) this.closeSocket();
    this.events.onClose(err);
  }

  /** What is written goes before the FIN (a GOAWAY, the last responses), for a peer that takes
   *  it. Nothing more is read: a peer that keeps sending fills its own buffers. A peer that does
   *  not read would keep the socket and its backlog forever: past MAX_CONTROL_BACKLOG it is not
   *  waited for, and otherwise the backlog must shrink every CLOSE_LINGER_MS. */
  private closeSocket(): void {
    const socket = this.socket;
    socket.pause();
    if (socket.writableLength > MAX_CONTROL_BACKLOG) {
      socket.destroy();
      return;
    }
    socket.end();
    socket.destroySoon();
    let left = socket.writableLength;
    const linger = (): void => {
      if (socket.destroyed) return;
      if (socket.writableLength >= left) socket.destroy();
      else {
        left = socket.writableLength;
        setTimeout(linger, CLOSE_LINGER_MS).unref();
      }
    };
    if (!socket.destroyed) setTimeout(linger, CLOSE_LINGER_MS).unref();
  }

  /** A stream's owner hears that it is reset. What it throws is logged: the other streams are
   *  told too, and the connection goes on. */
  private tellReset(s: H2Stream, code: number, why: string, cause?: Error): void {
    try {
      s.handler?.onReset(s, code, why, cause);
    } catch (err) {
      this.events.onOwnerError?.(err as Error, s.id);
    }
  }

  /** A stream owner's callback threw something other than a protocol error (a bug, or a peer's
   *  data the owner could not take): that stream fails with INTERNAL_ERROR, and the connection,
   *  its other streams and the process go on. Protocol errors go on up: they fail the connection. */
  private ownerThrew(s: H2Stream, err: unknown): void {
    if (err instanceof H2ConnectionError || err instanceof HpackError) throw err;
    this.events.onOwnerError?.(err as Error, s.id);
    if (s.closed || this.closed) return;
    this.resetStream(s, ErrorCode.INTERNAL_ERROR);
    this.tellReset(s, ErrorCode.INTERNAL_ERROR, `internal error: ${(err as Error).message}`);
  }

  // ---- input ----

  private onBytes(chunk: Buffer): void {
    if (this.closed) return;
    const buf = this.inBuf.length ? Buffer.concat([this.inBuf, chunk]) : chunk;
    let off = 0;
    try {
      if (this.prefaceLeft > 0) {
        const start = PREFACE.length - this.prefaceLeft;
        const n = Math.min(this.prefaceLeft, buf.length);
        if (buf.compare(PREFACE, start, start + n, 0, n) !== 0)
          throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'not an HTTP/2 connection preface');
        this.prefaceLeft -= n;
        off = n;
      }
      while (buf.length - off >= FRAME_HEADER && !this.closed) {
        const len = (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
        if (len > DEFAULT_MAX_FRAME)
          throw new H2ConnectionError(
            ErrorCode.FRAME_SIZE_ERROR,
            `a frame of ${len} bytes (at most ${DEFAULT_MAX_FRAME})`,
          );
        if (buf.length - off < FRAME_HEADER + len) break;
        const type = buf[off + 3]!;
        const flags = buf[off + 4]!;
        const id = buf.readUInt32BE(off + 5) & MAX_WINDOW;
        const start = off + FRAME_HEADER;
        off = start + len;
        // A header block is decoded where it was read (no view of it made per request).
        if (type === FrameType.HEADERS && this.block === undefined && this.ready)
          this.onHeadersFrame(flags, id, buf, start, off);
        else this.onFrame(type, flags, id, buf.subarray(start, off));
      }
    } catch (err) {
      if (err instanceof H2ConnectionError) return this.fail(err.h2code, err.message);
      if (err instanceof HpackError) return this.fail(ErrorCode.COMPRESSION_ERROR, `HPACK: ${err.message}`);
      throw err;
    }
    this.inBuf = off === buf.length ? EMPTY : buf.subarray(off);
    // A partial frame kept across reads must not pin a large read buffer for long.
    if (this.inBuf.length && this.inBuf.buffer.byteLength > 4 * this.inBuf.length + 16384)
      this.inBuf = Buffer.from(this.inBuf);
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.block !== undefined && (type !== FrameType.CONTINUATION || id !== this.blockStream)) {
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a header block interrupted by another frame');
    }
    if (!this.ready && type !== FrameType.SETTINGS)
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the first frame is not SETTINGS');
    switch (type) {
      case FrameType.DATA:
        return this.onDataFrame(flags, id, p);
      case FrameType.HEADERS:
        return this.onHeadersFrame(flags, id, p, 0, p.length);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, id, p);
      case FrameType.RST_STREAM:
        return this.onRstStream(id, p);
      case FrameType.SETTINGS:
        return this.onSettings(flags, id, p);
      case FrameType.PING:
        return this.onPing(flags, id, p);
      case FrameType.GOAWAY:
        return this.onGoaway(id, p);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(id, p);
      case FrameType.PRIORITY:
        if (id === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (p.length !== 5)
          throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY of a length other than 5');
        return;
      case FrameType.PUSH_PROMISE:
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE (push is disabled)');
      default:
        return; // unknown frame types are ignored (§4.1)
    }
  }

  /** A padded (PADDED) frame's content within buf[start, end): after the pad length byte,
   *  before the pad. */
  private unpadded(buf: Buffer, start: number, end: number, what: string): [number, number] {
    if (end - start < 1)
      throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `a padded ${what} frame without its pad length`);
    const pad = buf[start]!;
    if (pad >= end - start)
      throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} padding longer than the frame`);
    return [start + 1, end - pad];
  }

  private onDataFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    const len = p.length;
    if (len > this.recvWindow)
      throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= len;
    const s = this.streams.get(id);
    const data = flags & Flag.PADDED ? p.subarray(...this.unpadded(p, 0, p.length, 'DATA')) : p;
    // Padding is the connection's own business: credited at once.
    const padding = len - data.length;
    if (s === undefined || s.remoteClosed) {
      if (s === undefined && !this.known(id))
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      // A stream already closed (reset by us, or done): what was in flight is dropped.
      this.creditConnection(len);
      if (s !== undefined) this.streamError(s, ErrorCode.STREAM_CLOSED, 'DATA after the end of the stream');
      return;
    }
    if (len > s.recvWindow) {
      this.creditConnection(len);
      return this.streamError(s, ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the stream window');
    }
    s.recvWindow -= len;
    if (padding) this.creditConnection(padding);
    const end = (flags & Flag.END_STREAM) !== 0;
    if (s.expectedLength >= 0) {
      s.receivedLength += data.length;
      if (s.receivedLength > s.expectedLength || (end && s.receivedLength !== s.expectedLength)) {
        this.creditConnection(data.length);
        return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'the body does not match its content-length');
      }
    }
    s.addOwed(data.length);
    if (this.settings.creditConnectionOnReceipt) this.creditConnection(data.length);
    if (end) s.remoteClosed = true;
    try {
      s.handler?.onData(s, data, end);
    } catch (err) {
      return this.ownerThrew(s, err);
    }
    if (end) this.maybeClosed(s);
  }

  /** Whether a stream id was ever opened (it is closed now if it is not in the map). */
  private known(id: number): boolean {
    const peers = this.role === 'server' ? (id & 1) === 1 : (id & 1) === 0;
    return peers ? id <= this.lastPeerStream : id < this.nextId;
  }

  private creditConnection(n: number): void {
    this.recvUnacked += n;
    if (this.recvUnacked >= this.settings.connectionWindowSize >>> 1) {
      this.writeWindowUpdate(0, this.recvUnacked);
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
  }

  /** A HEADERS frame whose payload is buf[start, end). */
  private onHeadersFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    if (flags & Flag.PADDED) [start, end] = this.unpadded(buf, start, end, 'HEADERS');
    if (flags & Flag.PRIORITY) {
      if (end - start < 5)
        throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      if ((buf.readUInt32BE(start) & MAX_WINDOW) === id)
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `stream ${id} depends on itself`);
      start += 5;
    }
    this.blockStream = id;
    this.blockFlags = flags;
    if (flags & Flag.END_HEADERS) return this.onHeaderBlock(buf, start, end);
    this.block = [buf.subarray(start, end)];
    this.blockBytes = end - start;
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    const block = this.block;
    if (block === undefined) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    this.blockBytes += p.length;
    block.push(p);
    if (this.blockBytes > MAX_BLOCK_BYTES || block.length > MAX_BLOCK_FRAGMENTS) {
      throw new H2ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        `a header block of more than ${MAX_BLOCK_BYTES} bytes or ${MAX_BLOCK_FRAGMENTS} frames`,
      );
    }
    if (!(flags & Flag.END_HEADERS)) return;
    this.block = undefined;
    const whole = Buffer.concat(block);
    this.onHeaderBlock(whole, 0, whole.length);
  }

  private onHeaderBlock(block: Buffer, start: number, stop: number): void {
    const id = this.blockStream;
    const end = (this.blockFlags & Flag.END_STREAM) !== 0;
    const list: string[] = [];
    // Decoded whatever becomes of the stream: the table must follow every block.
    const size = this.decoder.decode(block, list, HPACK_LIST_LIMIT, start, stop);
    const s = this.streams.get(id);
    if (s !== undefined) {
      if (s.remoteClosed) return this.streamError(s, ErrorCode.STREAM_CLOSED, 'HEADERS after the end of the stream');
      if (this.role === 'server' && !end)
        return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'trailers without END_STREAM');
      // Trailers end the body too: it must have its content-length (§8.1.1).
      if (s.expectedLength >= 0 && s.receivedLength !== s.expectedLength)
        return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'the body does not match its content-length');
      if (end) s.remoteClosed = true;
      try {
        s.handler?.onHeaders(s, list, end);
      } catch (err) {
        return this.ownerThrew(s, err);
      }
      if (end) this.maybeClosed(s);
      return;
    }
    if (this.role === 'client') {
      if ((id & 1) === 0)
        throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on server-initiated stream ${id}`);
      if (id >= this.nextId) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on idle stream ${id}`);
      return; // a stream we reset: the response is dropped
    }
    if ((id & 1) === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on even stream ${id}`);
    if (id <= this.lastPeerStream) {
      // A closed stream: trailers of a request we answered and reset, or a reused id.
      this.writeFrame(4, FrameType.RST_STREAM, 0, id);
      this.u32(ErrorCode.STREAM_CLOSED);
      return;
    }
    this.lastPeerStream = id;
    if (this.goawaySent || this.draining) return;
    if (this.streams.size >= this.settings.maxConcurrentStreams) {
      this.writeFrame(4, FrameType.RST_STREAM, 0, id);
      this.u32(ErrorCode.REFUSED_STREAM);
      return;
    }
    const ns = new H2Stream(id, this, this.peerInitialWindow, this.settings.initialWindowSize);
    ns.remoteClosed = end;
    ns.headerListSize = size;
    this.streams.add(ns);
    try {
      this.events.onStream?.(ns, list, end);
    } catch (err) {
      return this.ownerThrew(ns, err);
    }
    if (ns.handler === undefined && !ns.closed) this.resetStream(ns, ErrorCode.REFUSED_STREAM);
  }

  private onRstStream(id: number, p: Buffer): void {
    if (id === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (p.length !== 4) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM of a length other than 4');
    const s = this.streams.get(id);
    if (s === undefined) {
      if (!this.known(id)) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
      return;
    }
    const code = p.readUInt32BE(0);
    this.peerCausedReset();
    this.close(s);
    this.tellReset(s, code, `the peer reset the stream (${errorName(code)})`);
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (p.length !== 0) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (p.length % 6 !== 0)
      throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS of a length not a multiple of 6');
    for (let i = 0; i < p.length; i += 6) {
      const key = p.readUInt16BE(i);
      const value = p.readUInt32BE(i + 2);
      switch (key) {
        case Setting.HEADER_TABLE_SIZE:
          this.encoder.setMaxTableSize(Math.min(value, 4096));
          break;
        case Setting.ENABLE_PUSH:
          if (value > 1 || (this.role === 'client' && value !== 0))
            throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.peerMaxStreams = value;
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW)
            throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW)
              throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window past 2^31-1');
          }
          if (delta > 0) for (const s of this.blocked) this.pump(s);
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME || value > MAX_FRAME_LIMIT)
            throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
          this.peerMaxFrame = value;
          break;
        default:
          break; // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored
      }
    }
    if (this.socket.writableLength > MAX_CONTROL_BACKLOG)
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'SETTINGS while not reading our answers');
    this.writeFrame(0, FrameType.SETTINGS, Flag.ACK, 0);
    if (!this.ready) {
      this.ready = true;
      this.events.onReady?.();
    }
  }

  private onPing(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (p.length !== 8) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING of a length other than 8');
    if (flags & Flag.ACK) return;
    if (this.socket.writableLength > MAX_CONTROL_BACKLOG)
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'PINGs while not reading our answers');
    this.writeFrame(8, FrameType.PING, Flag.ACK, 0);
    this.putBytes(p);
  }

  private onGoaway(id: number, p: Buffer): void {
    if (id !== 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (p.length < 8) throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY shorter than 8 bytes');
    const last = p.readUInt32BE(0) & MAX_WINDOW;
    const code = p.readUInt32BE(4);
    this.goawayReceived = true;
    this.peerLastStream = Math.min(this.peerLastStream, last);
    // Our streams the peer will not process: refused, so they may be retried elsewhere.
    const mine = this.role === 'client' ? 1 : 0;
    for (const s of this.streams.values()) {
      if ((s.id & 1) === mine && s.id > last) {
        this.forget(s);
        this.tellReset(
          s,
          ErrorCode.REFUSED_STREAM,
          `the peer is going away (${errorName(code)}) without processing it`,
        );
      }
    }
    this.events.onGoaway?.(last, code);
    if (this.streams.size === 0) this.end();
  }

  private onWindowUpdate(id: number, p: Buffer): void {
    if (p.length !== 4)
      throw new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of a length other than 4');
    const inc = p.readUInt32BE(0) & MAX_WINDOW;
    if (id === 0) {
      if (inc === 0) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW)
        throw new H2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'the connection window past 2^31-1');
      for (const s of this.blocked) {
        this.pump(s);
        if (this.sendWindow <= 0) break;
      }
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (!this.known(id)) throw new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
    if (inc === 0) return this.streamError(s, ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW)
      return this.streamError(s, ErrorCode.FLOW_CONTROL_ERROR, 'the stream window past 2^31-1');
    if (s.queue !== undefined) this.pump(s);
  }

  /** A stream error (§5.4.2) the peer caused: the stream is reset, its owner told. It costs
   *  the peer a reset token like its own RST_STREAM: a peer that makes us reset streams (bad
   *  WINDOW_UPDATEs, bodies at odds with their content-length, malformed trailers: the
   *  "MadeYouReset" variant of rapid reset, CVE-2025-8671) is stopped the same way. Called
   *  while a frame of the peer is handled (the owner's onHeaders, onData included): past the
   *  budget it throws, and the connection fails with ENHANCE_YOUR_CALM. */
  streamError(s: H2Stream, code: number, why: string): void {
    this.peerCausedReset();
    this.resetStream(s, code);
    this.tellReset(s, code, why);
  }

  /** Takes a token from the bucket of streams reset because of the peer; empty → GOAWAY
   *  ENHANCE_YOUR_CALM (the "rapid reset" attack, CVE-2023-44487, and its variants). */
  private peerCausedReset(): void {
    const now = performance.now();
    this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetRefill) / 1000) * RESET_RATE);
    this.resetRefill = now;
    if (--this.resetTokens < 0)
      throw new H2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many streams reset by or because of the peer');
  }

  // ---- stream lifecycle ----

  private localEnd(s: H2Stream): void {
    s.localClosed = true;
    this.maybeClosed(s);
  }

  private maybeClosed(s: H2Stream): void {
    if (s.localClosed && s.remoteClosed) this.close(s);
  }

  private close(s: H2Stream): void {
    if (s.closed) return;
    this.forget(s);
    if (this.streams.size === 0 && (this.draining || this.goawayReceived)) this.end();
  }

  private forget(s: H2Stream): void {
    s.closed = true;
    this.streams.delete(s.id);
    if (s.queue !== undefined) {
      s.queue = undefined;
      this.addQueued(s, -s.queuedBytes);
      this.blocked.delete(s);
    }
    // What its owner never passed on still counts against the connection's window.
    const owed = s.takeOwed(Infinity);
    if (owed && !this.settings.creditConnectionOnReceipt) this.creditConnection(owed);
  }

  /** Sends what the windows allow of a stream's queue, then its end (an empty END_STREAM, or
   *  the trailers), then tells the owner (notify) that it may write again. */
  private pump(s: H2Stream, notify = true): void {
    const q = s.queue;
    if (q === undefined || s.closed) return;
    while (q.length) {
      const room = Math.min(s.sendWindow, this.sendWindow, this.peerMaxFrame);
      if (room <= 0 || this.socket.writableLength >= WRITE_HIGH_WATER) return;
      const head = q[0]!;
      const n = Math.min(room, head.length);
      if (n === head.length) q.shift();
      else q[0] = head.subarray(n);
      this.addQueued(s, -n);
      s.sendWindow -= n;
      this.sendWindow -= n;
      this.writeData(s.id, n === head.length ? head : head.subarray(0, n), false);
    }
    s.queue = undefined;
    this.blocked.delete(s);
    if (s.queueTrailers !== undefined) {
      const t = s.queueTrailers;
      s.queueTrailers = undefined;
      this.sendHeaders(s, t, true);
    } else if (s.queueEnd) {
      this.writeData(s.id, EMPTY, true);
      this.localEnd(s);
    }
    if (notify) {
      try {
        s.handler?.onDrain(s);
      } catch (err) {
        // Not within a frame of the peer's (a socket's drain, a WINDOW_UPDATE): nothing above to fail the connection.
        if (err instanceof H2ConnectionError) this.fail(err.h2code, err.message);
        else this.ownerThrew(s, err);
      }
    }
  }

  private end(): void {
    if (this.closed) return;
    if (this.role === 'client' && !this.goawaySent) this.goaway(ErrorCode.NO_ERROR, '');
    this.flush();
    this.destroy(undefined);
  }

  private goaway(code: number, message: string): void {
    if (this.goawaySent) return;
    this.goawaySent = true;
    const debug = message ? Buffer.from(message.slice(0, 256), 'utf8') : EMPTY;
    this.writeFrame(8 + debug.length, FrameType.GOAWAY, 0, 0);
    this.u32(this.lastPeerStream);
    this.u32(code);
    if (debug.length) this.putBytes(debug);
  }

  // ---- output ----

  private writeSettings(): void {
    const st = this.settings;
    const entries: [number, number][] = [
      [Setting.MAX_CONCURRENT_STREAMS, st.maxConcurrentStreams],
      [Setting.INITIAL_WINDOW_SIZE, st.initialWindowSize],
      [Setting.MAX_HEADER_LIST_SIZE, st.maxHeaderListSize],
      [Setting.ENABLE_PUSH, 0],
    ];
    this.writeFrame(entries.length * 6, FrameType.SETTINGS, 0, 0);
    for (const [k, v] of entries) {
      this.reserve(6);
      this.out.writeUInt16BE(k, this.outPos);
      this.out.writeUInt32BE(v, this.outPos + 2);
      this.outPos += 6;
    }
  }

  private writeWindowUpdate(id: number, inc: number): void {
    this.writeFrame(4, FrameType.WINDOW_UPDATE, 0, id);
    this.u32(inc);
  }

  private writeHeaders(id: number, headers: readonly string[], endStream: boolean): void {
    const flags = endStream ? Flag.END_STREAM : 0;
    for (;;) {
      this.reserve(FRAME_HEADER + 256);
      const start = this.outPos;
      const end = this.encoder.encodeInto(headers, this.out, start + FRAME_HEADER);
      if (end < 0) {
        this.grow(Math.max(SLAB, 2 * (this.out.length - this.outPos)));
        continue;
      }
      const len = end - start - FRAME_HEADER;
      if (len <= this.peerMaxFrame) {
        this.frameHeaderAt(start, len, FrameType.HEADERS, flags | Flag.END_HEADERS, id);
        this.outPos = end;
        this.scheduleFlush();
        return;
      }
      // Larger than a frame: HEADERS then CONTINUATIONs.
      const block = Buffer.from(this.out.subarray(start + FRAME_HEADER, end));
      for (let off = 0; off < block.length;) {
        const n = Math.min(this.peerMaxFrame, block.length - off);
        const last = off + n === block.length;
        const type = off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
        this.writeFrame(n, type, (off === 0 ? flags : 0) | (last ? Flag.END_HEADERS : 0), id);
        this.putBytes(block.subarray(off, off + n));
        off += n;
      }
      return;
    }
  }

  private writeData(id: number, data: Buffer, endStream: boolean): void {
    this.writeFrame(data.length, FrameType.DATA, endStream ? Flag.END_STREAM : 0, id);
    if (data.length >= COPY_LIMIT) this.putChunk(data);
    else if (data.length) this.putBytes(data);
  }

  private frameHeaderAt(at: number, len: number, type: number, flags: number, id: number): void {
    const o = this.out;
    o[at] = len >>> 16;
    o[at + 1] = (len >>> 8) & 0xff;
    o[at + 2] = len & 0xff;
    o[at + 3] = type;
    o[at + 4] = flags;
    o.writeUInt32BE(id, at + 5);
  }

  private writeFrame(len: number, type: number, flags: number, id: number): void {
    this.reserve(FRAME_HEADER);
    this.frameHeaderAt(this.outPos, len, type, flags, id);
    this.outPos += FRAME_HEADER;
    this.scheduleFlush();
  }

  private u32(v: number): void {
    this.reserve(4);
    this.out.writeUInt32BE(v >>> 0, this.outPos);
    this.outPos += 4;
  }

  private put(b: Buffer): void {
    this.putBytes(b);
    this.scheduleFlush();
  }

  private putBytes(b: Buffer): void {
    if (b.length > SLAB / 4) return this.putChunk(b);
    this.reserve(b.length);
    b.copy(this.out, this.outPos);
    this.outPos += b.length;
  }

  /** A buffer written as it is, after what the slab holds so far. */
  private putChunk(b: Buffer): void {
    this.spill();
    (this.chunks ??= []).push(b);
    this.scheduleFlush();
  }

  /** Moves the slab's pending region to the chunk list. */
  private spill(): void {
    if (this.outPos > this.outStart) {
      (this.chunks ??= []).push(this.out.subarray(this.outStart, this.outPos));
      this.outStart = this.outPos;
    }
  }

  private reserve(n: number): void {
    if (this.out.length - this.outPos < n) this.grow(n);
  }

  private grow(n: number): void {
    this.spill();
    this.out = (n <= SLAB && freeSlabs.pop()) || Buffer.allocUnsafeSlow(Math.max(SLAB, n));
    this.outStart = this.outPos = 0;
  }

  /** A connection with nothing in flight gives its slab back once the socket has taken all of
   *  it (nothing written still points into it). */
  private releaseSlab(): void {
    if (this.streams.size !== 0 || this.socket.writableLength !== 0 || this.out === NO_SLAB) return;
    if (this.out.length === SLAB && freeSlabs.length < MAX_FREE_SLABS) freeSlabs.push(this.out);
    this.out = NO_SLAB;
    this.outStart = this.outPos = 0;
  }

  private scheduleFlush(): void {
    if (this.queued) return;
    this.queued = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Hands everything written so far to the socket. */
  flush(): void {
    this.queued = false;
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      this.chunks = undefined;
      this.outStart = this.outPos;
      return;
    }
    const chunks = this.chunks;
    if (chunks === undefined) {
      if (this.outPos === this.outStart) return;
      socket.write(this.out.subarray(this.outStart, this.outPos));
      this.outStart = this.outPos;
    } else {
      this.spill();
      this.chunks = undefined;
      socket.cork();
      for (const c of chunks) socket.write(c);
      socket.uncork();
    }
    this.releaseSlab();
  }
}
