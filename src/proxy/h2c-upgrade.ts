// HTTP/2 by upgrade from HTTP/1.1 (RFC 7540 §3.2; RFC 9113 dropped it, but curl --http2 and
// some clients still ask): "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c".
//
// The proxy answers 101, waits for the client's connection preface (the magic and its first
// SETTINGS frame), and starts its HTTP/2 connection with those bytes followed by a HEADERS
// frame it writes itself on stream 1 (END_STREAM: the request carries no body) that holds the
// upgraded request, HPACK-encoded as literals without indexing (no dynamic table entry, so the
// connection's decoder state stays the client's). The connection then sees an ordinary stream
// 1 and answers it there, as the client expects (its stream 1 is half-closed (local) already).
// The HTTP2-Settings header is not applied: the client sends the same settings in its preface,
// which the connection reads before stream 1.
//
// Only requests without a body are upgraded (a body would have to be read whole first); one
// with a body, or without HTTP2-Settings, is served over HTTP/1.1 as RFC 7540 allows.
import type http from 'node:http';

import { PREFACE } from './h2/frames.js';

/** Headers of the upgraded request that do not go into the HTTP/2 request. */
const DROP = new Set([
  'connection',
  'upgrade',
  'http2-settings',
  'host',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
]);

/** Whether to answer an "Upgrade: h2c" request with 101 (else it is served over HTTP/1.1). */
export function wantsH2cUpgrade(req: http.IncomingMessage): boolean {
  const h = req.headers;
  if (typeof h.upgrade !== 'string' || h.upgrade.trim().toLowerCase() !== 'h2c') return false;
  if (typeof h['http2-settings'] !== 'string') return false;
  if (h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0'))
    return false;
  return req.method !== 'CONNECT';
}

export const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n';

function hpackInt(out: number[], value: number, prefixBits: number, first: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  value -= max;
  while (value >= 128) {
    out.push((value & 127) | 128);
    value >>>= 7;
  }
  out.push(value);
}

function hpackString(out: number[], s: string): void {
  const b = Buffer.from(s, 'latin1');
  hpackInt(out, b.length, 7, 0); // no Huffman
  for (const x of b) out.push(x);
}

/** The upgraded request's header block: literals without indexing, new names (RFC 7541 §6.2.2). */
export function headerBlock(req: http.IncomingMessage): Buffer {
  const out: number[] = [];
  const field = (name: string, value: string) => {
    out.push(0);
    hpackString(out, name);
    hpackString(out, value);
  };
  field(':method', req.method ?? 'GET');
  field(':scheme', 'http');
  field(':authority', req.headers.host ?? '');
  field(':path', req.url ?? '/');
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (DROP.has(name)) continue;
    field(name, raw[i + 1]!);
  }
  return Buffer.from(out);
}

/** HEADERS (+ CONTINUATION) frames of stream 1, END_STREAM and END_HEADERS set. */
export function stream1Frames(block: Buffer, maxFrame = 16384): Buffer {
  const frames: Buffer[] = [];
  for (let off = 0, first = true; first || off < block.length; first = false) {
    const len = Math.min(maxFrame, block.length - off);
    const last = off + len >= block.length;
    const h = Buffer.alloc(9);
    h.writeUIntBE(len, 0, 3);
    h[3] = first ? 0x1 : 0x9; // HEADERS, CONTINUATION
    h[4] = (first ? 0x1 : 0) | (last ? 0x4 : 0); // END_STREAM (HEADERS only), END_HEADERS
    h.writeUInt32BE(1, 5);
    frames.push(h, block.subarray(off, off + len));
    off += len;
  }
  return Buffer.concat(frames);
}

/** How many bytes the client's preface takes in `buf` (magic + its first frame, a SETTINGS):
 *  0 while incomplete, -1 when it is not a preface. */
export function prefaceLength(buf: Buffer): number {
  const n = Math.min(buf.length, PREFACE.length);
  if (!buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return -1;
  if (buf.length < PREFACE.length + 9) return 0;
  const len = buf.readUIntBE(PREFACE.length, 3);
  if (buf[PREFACE.length + 3] !== 0x4) return -1;
  const total = PREFACE.length + 9 + len;
  return buf.length >= total ? total : 0;
}
