// Codecs for the policy maps declared in bpf/include/policy.h: ipcache (address prefix →
// identities) and policy (endpoint, peer, direction, protocol, port → allow). Both are LPM
// tries: a key's prefixlen says how many bits of what follows it are matched.
import { addr, be16, pad, struct, u32, u8, type Coding, type StructCodec } from './codec.js';

/** Bits of a policy key always matched whole: endpoint_id, identity, direction. */
export const POLICY_PREFIX_FIXED = 72;
/** Bits of an ipcache key before the address: family and padding. */
const IPCACHE_PREFIX_FIXED = 32;

export const ENDPOINT_F_INGRESS_ISOLATED = 1;
export const ENDPOINT_F_EGRESS_ISOLATED = 2;

export interface IpcacheKey {
  /** Canonical CIDR: 10.244.0.5/32, ::/0. */
  prefix: string;
}

export const ipcacheKey = struct(
  'ipcache_key',
  24,
  {
    prefixlen: u32(0),
    family: u8(4),
    pad: pad(5, 3),
    addr: addr(8),
  },
  (f, size): Coding<IpcacheKey> => ({
    encodeInto(v, buf, off) {
      const slash = v.prefix.lastIndexOf('/');
      const ip = v.prefix.slice(0, slash);
      const family = ip.includes(':') ? 6 : 4;
      buf.fill(0, off, off + size);
      f.prefixlen.write(buf, off, IPCACHE_PREFIX_FIXED + Number(v.prefix.slice(slash + 1)));
      f.family.write(buf, off, family);
      f.addr.write(buf, off, ip, family);
    },
    decode(buf, off = 0) {
      const family = f.family.read(buf, off) === 6 ? 6 : 4;
      return { prefix: `${f.addr.read(buf, off, family)}/${f.prefixlen.read(buf, off) - IPCACHE_PREFIX_FIXED}` };
    },
  }),
);

export interface IpcacheValue {
  identity: number;
  cidrIdentity: number;
}

export const ipcacheValue = struct(
  'ipcache_value',
  8,
  {
    identity: u32(0),
    cidr_identity: u32(4),
  },
  (f): Coding<IpcacheValue> => ({
    encodeInto(v, buf, off) {
      f.identity.write(buf, off, v.identity >>> 0);
      f.cidr_identity.write(buf, off, v.cidrIdentity >>> 0);
    },
    decode(buf, off = 0) {
      return { identity: f.identity.read(buf, off), cidrIdentity: f.cidr_identity.read(buf, off) };
    },
  }),
);

export interface PolicyKey {
  endpointId: number;
  identity: number;
  /** 0: egress, 1: ingress (enum weft_dir). */
  direction: 0 | 1;
  /** 0: every protocol and port. */
  proto: number;
  port: number;
  /** How many high bits of the port are matched (0 with proto 0). */
  portBits: number;
}

export const policyKey = struct(
  'policy_key',
  16,
  {
    prefixlen: u32(0),
    endpoint_id: u32(4),
    identity: u32(8),
    direction: u8(12),
    proto: u8(13),
    dport: be16(14),
  },
  (f): Coding<PolicyKey> => ({
    encodeInto(v, buf, off) {
      const prefixlen = v.proto === 0 ? POLICY_PREFIX_FIXED : POLICY_PREFIX_FIXED + 8 + v.portBits;
      f.prefixlen.write(buf, off, prefixlen);
      f.endpoint_id.write(buf, off, v.endpointId >>> 0);
      f.identity.write(buf, off, v.identity >>> 0);
      f.direction.write(buf, off, v.direction);
      f.proto.write(buf, off, v.proto);
      f.dport.write(buf, off, v.proto === 0 ? 0 : v.port);
    },
    decode(buf, off = 0) {
      const prefixlen = f.prefixlen.read(buf, off);
      return {
        endpointId: f.endpoint_id.read(buf, off),
        identity: f.identity.read(buf, off),
        direction: f.direction.read(buf, off) === 1 ? 1 : 0,
        proto: prefixlen > POLICY_PREFIX_FIXED ? f.proto.read(buf, off) : 0,
        port: f.dport.read(buf, off),
        portBits: Math.max(0, prefixlen - POLICY_PREFIX_FIXED - 8),
      };
    },
  }),
);

export interface PolicyValue {
  ruleId: number;
}

export const policyValue = struct(
  'policy_value',
  4,
  {
    rule_id: u32(0),
  },
  (f): Coding<PolicyValue> => ({
    encodeInto(v, buf, off) {
      f.rule_id.write(buf, off, v.ruleId >>> 0);
    },
    decode(buf, off = 0) {
      return { ruleId: f.rule_id.read(buf, off) };
    },
  }),
);

export const POLICY_CODECS: readonly StructCodec<unknown>[] = [
  ipcacheKey,
  ipcacheValue,
  policyKey,
  policyValue,
] as StructCodec<unknown>[];
