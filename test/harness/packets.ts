// Packets built byte by byte for BPF_PROG_TEST_RUN: Ethernet, IPv4 (options, fragments),
// IPv6 (extension headers), TCP, UDP, ICMP; and the TC verdicts the programs return.
import { encode } from '../../src/datapath/codec.js';
import { endpointInfo } from '../../src/datapath/endpoint-codecs.js';

export function mac(): Buffer {
  return Buffer.from([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
}

export function eth(ethertype: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  mac().copy(h, 0);
  h.writeUInt16BE(ethertype, 12);
  return Buffer.concat([h, payload]);
}

export function ipv4(
  src: string,
  dst: string,
  proto: number,
  l4: Buffer,
  opts: { ihl?: number; fragOffset?: number } = {},
): Buffer {
  const ihl = opts.ihl ?? 5;
  const h = Buffer.alloc(Math.max(ihl, 5) * 4);
  h.writeUInt8(0x40 | ihl, 0);
  h.writeUInt16BE(h.length + l4.length, 2);
  h.writeUInt16BE(opts.fragOffset ?? 0, 6);
  h.writeUInt8(64, 8);
  h.writeUInt8(proto, 9);
  src.split('.').forEach((o, i) => h.writeUInt8(Number(o), 12 + i));
  dst.split('.').forEach((o, i) => h.writeUInt8(Number(o), 16 + i));
  return eth(0x0800, Buffer.concat([h, l4]));
}

export function v6bytes(addr: string): Buffer {
  return encode(endpointInfo, { endpointId: 1, flags: 0, ipv6: addr }).subarray(24, 40);
}

/** IPv6 with extension headers given as [next-header value, 8-byte header] in order. */
export function ipv6(src: string, dst: string, proto: number, l4: Buffer, ext: number[] = []): Buffer {
  const exts = ext.map((type, i) => {
    const e = Buffer.alloc(8);
    e.writeUInt8(i + 1 < ext.length ? ext[i + 1]! : proto, 0);
    return e;
  });
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(exts.length * 8 + l4.length, 4);
  h.writeUInt8(ext.length ? ext[0]! : proto, 6);
  h.writeUInt8(64, 7);
  v6bytes(src).copy(h, 8);
  v6bytes(dst).copy(h, 24);
  return eth(0x86dd, Buffer.concat([h, ...exts, l4]));
}

export function tcp(sport: number, dport: number, flags: number): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt8(0x50, 12);
  t.writeUInt8(flags, 13);
  return t;
}

export function udp(sport: number, dport: number): Buffer {
  const u = Buffer.alloc(12);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(12, 4);
  return u;
}

export function icmp(type: number, id = 0): Buffer {
  const m = Buffer.alloc(24);
  m.writeUInt8(type, 0);
  m.writeUInt16BE(id, 4);
  return m;
}

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const ACK = 0x10;
export const PASS = 0;
export const SHOT = 2;
