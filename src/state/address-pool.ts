// One pod CIDR's addresses: which are taken, and which to hand out next. Pure; the endpoint
// registry owns persistence. Allocation walks forward from where it last stopped (next-fit),
// so a released address is the last to come back: a late packet for a deleted pod does not
// reach its successor.
import ipaddr from 'ipaddr.js';
import type { Family } from '../lib/ip.js';

export class AddressPool {
  readonly family: Family;
  readonly prefixLength: number;
  private readonly base: bigint;
  private readonly size: bigint;
  private readonly first: bigint;
  private readonly last: bigint;
  private readonly taken = new Set<bigint>();
  private cursor: bigint;

  constructor(readonly cidr: string) {
    const [addr, len] = ipaddr.parseCIDR(cidr);
    this.family = addr.kind() === 'ipv4' ? 4 : 6;
    this.prefixLength = len;
    const bits = this.family === 4 ? 32 : 128;
    this.base = toBig(addr.toByteArray()) & ~((1n << BigInt(bits - len)) - 1n);
    this.size = 1n << BigInt(bits - len);
    // IPv4 keeps its network and broadcast addresses out of use where the prefix has them;
    // IPv6 keeps the subnet-router anycast address (offset 0).
    this.first = this.size > 2n ? 1n : 0n;
    this.last = this.family === 4 && this.size > 2n ? this.size - 2n : this.size - 1n;
    this.cursor = this.first;
  }

  contains(ip: string): boolean {
    const off = this.offsetOf(ip);
    return off !== undefined;
  }

  /** Marks an address as taken (restoring state); false if it is not in this pool. */
  claim(ip: string): boolean {
    const off = this.offsetOf(ip);
    if (off === undefined) return false;
    this.taken.add(off);
    return true;
  }

  release(ip: string): void {
    const off = this.offsetOf(ip);
    if (off !== undefined) this.taken.delete(off);
  }

  /** The next free address, or undefined when the pool is exhausted. */
  allocate(): string | undefined {
    const span = this.last - this.first + 1n;
    if (BigInt(this.taken.size) >= span) return undefined;
    // Bounded: at most taken.size + 1 steps find a free offset.
    for (let steps = 0n; steps <= BigInt(this.taken.size); steps++) {
      const off = this.cursor;
      this.cursor = off >= this.last ? this.first : off + 1n;
      if (!this.taken.has(off)) {
        this.taken.add(off);
        return this.format(off);
      }
    }
    return undefined;
  }

  get used(): number {
    return this.taken.size;
  }

  get capacity(): bigint {
    return this.last - this.first + 1n;
  }

  /** Where the next search starts, for persistence. */
  get next(): string {
    return this.format(this.cursor);
  }

  set next(ip: string) {
    const off = this.offsetOf(ip);
    if (off !== undefined && off >= this.first && off <= this.last) this.cursor = off;
  }

  private offsetOf(ip: string): bigint | undefined {
    if (!ipaddr.isValid(ip)) return undefined;
    const parsed = ipaddr.parse(ip);
    if ((parsed.kind() === 'ipv4' ? 4 : 6) !== this.family) return undefined;
    const off = toBig(parsed.toByteArray()) - this.base;
    return off >= this.first && off <= this.last ? off : undefined;
  }

  private format(off: bigint): string {
    const n = this.base + off;
    const bytes = this.family === 4 ? 4 : 16;
    const arr: number[] = [];
    for (let i = bytes - 1; i >= 0; i--) arr.push(Number((n >> BigInt(i * 8)) & 0xffn));
    return ipaddr.fromByteArray(arr).toString();
  }
}

function toBig(bytes: number[]): bigint {
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}
