// Codecs for the service load-balancing maps declared in bpf/include/lb.h. Frontends and their
// backends are state's (src/state/services.ts); here they become the C structs (a protocol's
// name its IP protocol number).
import type { StructCodec } from './codec.js';
import { formatIp, writeIpBytes, type Family } from '../lib/ip.js';
import type { L4Addr, L4Proto, ServiceKey } from '../state/services.js';

const PROTO_NUMBER: Record<L4Proto, number> = { TCP: 6, UDP: 17 };
const PROTO_NAME: Record<number, L4Proto> = { 6: 'TCP', 17: 'UDP' };

function protoName(n: number): L4Proto {
  const name = PROTO_NAME[n];
  if (!name) throw new Error(`unknown IP protocol number ${n}`);
  return name;
}

/** struct weft_addr: IPv4 in the first four bytes, IPv6 in all sixteen. */
const writeAddr = writeIpBytes;

/** bpf/include/lb.h LB_SERVICE_F_L7: the frontend's backend is the node proxy's listener. */
export const LB_SERVICE_F_L7 = 1;

export const weftL4Addr: StructCodec<L4Addr> = {
  cName: 'weft_l4addr',
  size: 20,
  fields: { ip: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, family: { offset: 18, size: 1 }, pad: { offset: 19, size: 1 } },
  encodeInto(v, buf, off) {
    writeAddr(v.ip, v.family, buf, off);
    buf.writeUInt16BE(v.port, off + 16);
    buf.writeUInt8(v.family, off + 18);
  },
  decode(buf, off = 0) {
    const family = buf.readUInt8(off + 18) as Family;
    return { ip: formatIp(buf.subarray(off, off + 16), family), port: buf.readUInt16BE(off + 16), family };
  },
};

export const lbServiceKey: StructCodec<ServiceKey> = {
  cName: 'lb_service_key',
  size: 20,
  fields: { ip: { offset: 0, size: 16 }, port: { offset: 16, size: 2 }, proto: { offset: 18, size: 1 }, family: { offset: 19, size: 1 } },
  encodeInto(v, buf, off) {
    writeAddr(v.ip, v.family, buf, off);
    buf.writeUInt16BE(v.port, off + 16);
    buf.writeUInt8(PROTO_NUMBER[v.proto], off + 18);
    buf.writeUInt8(v.family, off + 19);
  },
  decode(buf, off = 0) {
    const family = buf.readUInt8(off + 19) as Family;
    return {
      ip: formatIp(buf.subarray(off, off + 16), family),
      port: buf.readUInt16BE(off + 16),
      proto: protoName(buf.readUInt8(off + 18)),
      family,
    };
  },
};

export interface ServiceValue {
  serviceId: number;
  backendCount: number;
  flags: number;
}

export const lbServiceValue: StructCodec<ServiceValue> = {
  cName: 'lb_service_value',
  size: 8,
  fields: { service_id: { offset: 0, size: 4 }, backend_count: { offset: 4, size: 2 }, flags: { offset: 6, size: 2 } },
  encodeInto(v, buf, off) {
    buf.writeUInt32LE(v.serviceId, off);
    buf.writeUInt16LE(v.backendCount, off + 4);
    buf.writeUInt16LE(v.flags, off + 6);
  },
  decode(buf, off = 0) {
    return { serviceId: buf.readUInt32LE(off), backendCount: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6) };
  },
};

export interface BackendKey {
  serviceId: number;
  slot: number;
}

export const lbBackendKey: StructCodec<BackendKey> = {
  cName: 'lb_backend_key',
  size: 8,
  fields: { service_id: { offset: 0, size: 4 }, slot: { offset: 4, size: 4 } },
  encodeInto(v, buf, off) {
    buf.writeUInt32LE(v.serviceId, off);
    buf.writeUInt32LE(v.slot, off + 4);
  },
  decode(buf, off = 0) {
    return { serviceId: buf.readUInt32LE(off), slot: buf.readUInt32LE(off + 4) };
  },
};

export const lbBackendValue: StructCodec<L4Addr> = {
  cName: 'lb_backend_value',
  size: 20,
  fields: { addr: { offset: 0, size: 20 } },
  encodeInto: weftL4Addr.encodeInto,
  decode: weftL4Addr.decode,
};

export interface RevNatKey {
  cookie: bigint;
  backend: L4Addr;
}

export const lbRevNatKey: StructCodec<RevNatKey> = {
  cName: 'lb_revnat_key',
  size: 32,
  fields: { cookie: { offset: 0, size: 8 }, backend: { offset: 8, size: 20 }, pad: { offset: 28, size: 4 } },
  encodeInto(v, buf, off) {
    buf.writeBigUInt64LE(v.cookie, off);
    weftL4Addr.encodeInto(v.backend, buf, off + 8);
  },
  decode(buf, off = 0) {
    return { cookie: buf.readBigUInt64LE(off), backend: weftL4Addr.decode(buf, off + 8) };
  },
};

export const lbRevNatValue: StructCodec<L4Addr> = {
  cName: 'lb_revnat_value',
  size: 20,
  fields: { service: { offset: 0, size: 20 } },
  encodeInto: weftL4Addr.encodeInto,
  decode: weftL4Addr.decode,
};

/** Every codec with the map that uses it, for the BTF check and for readers of the maps. */
export const LB_MAPS = {
  lb_services: { key: lbServiceKey, value: lbServiceValue },
  lb_backends: { key: lbBackendKey, value: lbBackendValue },
  lb_revnat: { key: lbRevNatKey, value: lbRevNatValue },
} as const;

export const ALL_CODECS: readonly StructCodec<unknown>[] = [
  weftL4Addr, lbServiceKey, lbServiceValue, lbBackendKey, lbBackendValue, lbRevNatKey, lbRevNatValue,
] as StructCodec<unknown>[];
