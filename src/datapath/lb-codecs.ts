// Codecs for the service load-balancing maps declared in bpf/include/lb.h. Frontends and their
// backends are state's (src/state/services.ts); here they become the C structs (a protocol's
// name its IP protocol number).
import {
  addr,
  be16,
  nested,
  pad,
  struct,
  u16,
  u32,
  u64,
  u8,
  wrapping,
  type Coding,
  type StructCodec,
} from './codec.js';
import type { Family } from '../lib/ip.js';
import type { L4Addr, L4Proto, ServiceKey } from '../state/services.js';

const PROTO_NUMBER: Record<L4Proto, number> = { TCP: 6, UDP: 17 };
const PROTO_NAME: Record<number, L4Proto> = { 6: 'TCP', 17: 'UDP' };

function protoName(n: number): L4Proto {
  const name = PROTO_NAME[n];
  if (!name) throw new Error(`unknown IP protocol number ${n}`);
  return name;
}

/** bpf/include/lb.h LB_SERVICE_F_L7: the frontend's backend is the node proxy's listener. */
export const LB_SERVICE_F_L7 = 1;

/** struct weft_l4addr: ip is a struct weft_addr (IPv4 in its first four bytes). */
export const weftL4Addr = struct(
  'weft_l4addr',
  20,
  {
    ip: addr(0),
    port: be16(16),
    family: u8(18),
    pad: pad(19, 1),
  },
  (f): Coding<L4Addr> => ({
    encodeInto(v, buf, off) {
      f.ip.write(buf, off, v.ip, v.family);
      f.port.write(buf, off, v.port);
      f.family.write(buf, off, v.family);
    },
    decode(buf, off = 0) {
      const family = f.family.read(buf, off) as Family;
      return { ip: f.ip.read(buf, off, family), port: f.port.read(buf, off), family };
    },
  }),
);

export const lbServiceKey = struct(
  'lb_service_key',
  20,
  {
    ip: addr(0),
    port: be16(16),
    proto: u8(18),
    family: u8(19),
  },
  (f): Coding<ServiceKey> => ({
    encodeInto(v, buf, off) {
      f.ip.write(buf, off, v.ip, v.family);
      f.port.write(buf, off, v.port);
      f.proto.write(buf, off, PROTO_NUMBER[v.proto]);
      f.family.write(buf, off, v.family);
    },
    decode(buf, off = 0) {
      const family = f.family.read(buf, off) as Family;
      const proto = protoName(f.proto.read(buf, off));
      return { ip: f.ip.read(buf, off, family), port: f.port.read(buf, off), proto, family };
    },
  }),
);

export interface ServiceValue {
  serviceId: number;
  backendCount: number;
  flags: number;
}

export const lbServiceValue = struct(
  'lb_service_value',
  8,
  {
    service_id: u32(0),
    backend_count: u16(4),
    flags: u16(6),
  },
  (f): Coding<ServiceValue> => ({
    encodeInto(v, buf, off) {
      f.service_id.write(buf, off, v.serviceId);
      f.backend_count.write(buf, off, v.backendCount);
      f.flags.write(buf, off, v.flags);
    },
    decode(buf, off = 0) {
      return {
        serviceId: f.service_id.read(buf, off),
        backendCount: f.backend_count.read(buf, off),
        flags: f.flags.read(buf, off),
      };
    },
  }),
);

export interface BackendKey {
  serviceId: number;
  slot: number;
}

export const lbBackendKey = struct(
  'lb_backend_key',
  8,
  {
    service_id: u32(0),
    slot: u32(4),
  },
  (f): Coding<BackendKey> => ({
    encodeInto(v, buf, off) {
      f.service_id.write(buf, off, v.serviceId);
      f.slot.write(buf, off, v.slot);
    },
    decode(buf, off = 0) {
      return { serviceId: f.service_id.read(buf, off), slot: f.slot.read(buf, off) };
    },
  }),
);

export const lbBackendValue = wrapping('lb_backend_value', 'addr', weftL4Addr);

export interface RevNatKey {
  cookie: bigint;
  backend: L4Addr;
}

export const lbRevNatKey = struct(
  'lb_revnat_key',
  32,
  {
    cookie: u64(0),
    backend: nested(8, weftL4Addr),
    pad: pad(28, 4),
  },
  (f): Coding<RevNatKey> => ({
    encodeInto(v, buf, off) {
      f.cookie.write(buf, off, v.cookie);
      f.backend.write(buf, off, v.backend);
    },
    decode(buf, off = 0) {
      return { cookie: f.cookie.read(buf, off), backend: f.backend.read(buf, off) };
    },
  }),
);

export const lbRevNatValue = wrapping('lb_revnat_value', 'service', weftL4Addr);

/** Every codec with the map that uses it, for the BTF check and for readers of the maps. */
export const LB_MAPS = {
  lb_services: { key: lbServiceKey, value: lbServiceValue },
  lb_backends: { key: lbBackendKey, value: lbBackendValue },
  lb_revnat: { key: lbRevNatKey, value: lbRevNatValue },
} as const;

export const ALL_CODECS: readonly StructCodec<unknown>[] = [
  weftL4Addr,
  lbServiceKey,
  lbServiceValue,
  lbBackendKey,
  lbBackendValue,
  lbRevNatKey,
  lbRevNatValue,
] as StructCodec<unknown>[];
