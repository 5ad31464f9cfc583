// Codecs for the policy maps declared in bpf/include/policy.h: ipcache (address prefix →
// identities) and policy (endpoint, peer, direction, protocol, port → allow). Both are LPM
// tries: a key's prefixlen says how many bits of what follows it are matched.
import type { StructCodec } from './codec.js';
import { formatIp, writeIpBytes } from '../lib/ip.js';

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

export const ipcacheKey: StructCodec<IpcacheKey> = {
  cName: 'ipcache_key',
  size: 24,
  fields: {
    prefixlen: { offset: 0, size: 4 },
    family: { offset: 4, size: 1 },
    pad: { offset: 5, size: 3 },
    addr: { offset: 8, size: 16 },
  },
  encodeInto(v, buf, off) {
    const slash = v.prefix.lastIndexOf('/');
    const ip = v.prefix.slice(0, slash);
    const family = ip.includes(':') ? 6 : 4;
    buf.fill(0, off, off + 24);
    buf.writeUInt32LE(IPCACHE_PREFIX_FIXED + Number(v.prefix.slice(slash + 1)), off);
    buf.writeUInt8(family, off + 4);
    writeIpBytes(ip, family, buf, off + 8);
  },
  decode(buf, off = 0) {
    const family = buf.readUInt8(off + 4) === 6 ? 6 : 4;
    const ip = formatIp(buf.subarray(off + 8, off + (family === 6 ? 24 : 12)), family);
    return { prefix: `${ip}/${buf.readUInt32LE(off) - IPCACHE_PREFIX_FIXED}` };
  },
};

export interface IpcacheValue {
  identity: number;
  cidrIdentity: number;
}

export const ipcacheValue: StructCodec<IpcacheValue> = {
  cName: 'ipcache_value',
  size: 8,
  fields: { identity: { offset: 0, size: 4 }, cidr_identity: { offset: 4, size: 4 } },
  encodeInto(v, buf, off) {
    buf.writeUInt32LE(v.identity >>> 0, off);
    buf.writeUInt32LE(v.cidrIdentity >>> 0, off + 4);
  },
  decode(buf, off = 0) {
    return { identity: buf.readUInt32LE(off), cidrIdentity: buf.readUInt32LE(off + 4) };
  },
};

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

export const policyKey: StructCodec<PolicyKey> = {
  cName: 'policy_key',
  size: 16,
  fields: {
    prefixlen: { offset: 0, size: 4 },
    endpoint_id: { offset: 4, size: 4 },
    identity: { offset: 8, size: 4 },
    direction: { offset: 12, size: 1 },
    proto: { offset: 13, size: 1 },
    dport: { offset: 14, size: 2 },
  },
  encodeInto(v, buf, off) {
    const prefixlen = v.proto === 0 ? POLICY_PREFIX_FIXED : POLICY_PREFIX_FIXED + 8 + v.portBits;
    buf.writeUInt32LE(prefixlen, off);
    buf.writeUInt32LE(v.endpointId >>> 0, off + 4);
    buf.writeUInt32LE(v.identity >>> 0, off + 8);
    buf.writeUInt8(v.direction, off + 12);
    buf.writeUInt8(v.proto, off + 13);
    buf.writeUInt16BE(v.proto === 0 ? 0 : v.port, off + 14);
  },
  decode(buf, off = 0) {
    const prefixlen = buf.readUInt32LE(off);
    return {
      endpointId: buf.readUInt32LE(off + 4),
      identity: buf.readUInt32LE(off + 8),
      direction: buf.readUInt8(off + 12) === 1 ? 1 : 0,
      proto: prefixlen > POLICY_PREFIX_FIXED ? buf.readUInt8(off + 13) : 0,
      port: buf.readUInt16BE(off + 14),
      portBits: Math.max(0, prefixlen - POLICY_PREFIX_FIXED - 8),
    };
  },
};

export interface PolicyValue {
  ruleId: number;
}

export const policyValue: StructCodec<PolicyValue> = {
  cName: 'policy_value',
  size: 4,
  fields: { rule_id: { offset: 0, size: 4 } },
  encodeInto(v, buf, off) {
    buf.writeUInt32LE(v.ruleId >>> 0, off);
  },
  decode(buf, off = 0) {
    return { ruleId: buf.readUInt32LE(off) };
  },
};

export const POLICY_CODECS: readonly StructCodec<unknown>[] = [ipcacheKey, ipcacheValue, policyKey, policyValue] as StructCodec<unknown>[];
