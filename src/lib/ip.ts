// IP address helpers shared by the state compilers and the datapath codecs.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

/** Parses an IP address; returns undefined for anything that is not one. IPv4-mapped IPv6
 *  addresses stay IPv6, as Kubernetes treats them. */
export function parseIp(text: string): { family: Family; bytes: Uint8Array } | undefined {
  if (!ipaddr.isValid(text)) return undefined;
  // ipaddr accepts shorthand like "10.1" as IPv4; Kubernetes does not.
  if (!text.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(text)) return undefined;
  const addr = ipaddr.parse(text);
  return { family: addr.kind() === 'ipv4' ? 4 : 6, bytes: Uint8Array.from(addr.toByteArray()) };
}

export function ipFamily(text: string): Family | undefined {
  return parseIp(text)?.family;
}

/** Canonical text form of an address (lower case, shortest IPv6). */
export function canonicalIp(text: string): string {
  return ipaddr.parse(text).toString();
}

export function formatIp(bytes: Uint8Array, family: Family): string {
  return family === 4
    ? ipaddr.fromByteArray([...bytes.subarray(0, 4)]).toString()
    : ipaddr.fromByteArray([...bytes.subarray(0, 16)]).toString();
}

/** True for an IPv4 or IPv6 prefix in CIDR notation with no host bits set. */
export function isCidr(text: string): boolean {
  if (!ipaddr.isValidCIDR(text)) return false;
  const [addr, len] = ipaddr.parseCIDR(text);
  const base = addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  return base.toString() === addr.toString() && len >= 0;
}
