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

// Fast paths for canonical dotted-quad IPv4 (no leading zeros): at 100,000 endpoints the
// general parser dominates a full sync.
const CANONICAL_V4 =
  /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Canonical text form of an address (lower case, shortest IPv6). */
export function canonicalIp(text: string): string {
  return CANONICAL_V4.test(text) ? text : ipaddr.parse(text).toString();
}

/** Writes an address's bytes (4 or 16) at buf[off]; throws unless it is of `family`. */
export function writeIpBytes(text: string, family: Family, buf: Uint8Array, off: number): void {
  if (family === 4) {
    const m = CANONICAL_V4.exec(text);
    if (m) {
      buf[off] = Number(m[1]);
      buf[off + 1] = Number(m[2]);
      buf[off + 2] = Number(m[3]);
      buf[off + 3] = Number(m[4]);
      return;
    }
  }
  const parsed = parseIp(text);
  if (!parsed || parsed.family !== family) throw new Error(`not an IPv${family} address: ${text}`);
  buf.set(parsed.bytes, off);
}

export function formatIp(bytes: Uint8Array, family: Family): string {
  return family === 4
    ? `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`
    : ipaddr.fromByteArray([...bytes.subarray(0, 16)]).toString();
}

/** True for an IPv4 or IPv6 prefix in CIDR notation with no host bits set. */
export function isCidr(text: string): boolean {
  if (!ipaddr.isValidCIDR(text)) return false;
  const [addr, len] = ipaddr.parseCIDR(text);
  const base =
    addr.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  return base.toString() === addr.toString() && len >= 0;
}
