// A struct codec: how one C struct of bpf/include is laid out, and how a TypeScript value maps
// onto it. A struct's layout is written once, as its table of fields (each with its offset and
// size, built by u8/u16/be16/u32/u64/addr/nested/pad below); encoding and decoding read and
// write through those fields, and the same table is what is checked against the compiled
// object's BTF (btf-check.ts: by weftd when it loads each object, and by
// test/datapath/btf-layout.test.ts), so no offset can drift from the C headers unnoticed.
//
// Encoding and decoding run per map entry (100,000 on a large sync) and per flow event: a field
// keeps its offset in its own closure, so a read or write costs what a literal offset would.
import { formatIp, writeIpBytes, type Family } from '../lib/ip.js';

export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

/** A field that reads and writes its value at its offset from the start of a struct (`base`). */
export interface Field<V> extends FieldLayout {
  read(buf: Buffer, base: number): V;
  write(buf: Buffer, base: number, value: V): void;
}

/** An IP address of 16 bytes (struct weft_addr, __be32[4], __u8[16]): an IPv4 address takes the
 *  first four, network order. */
export interface AddrField extends FieldLayout {
  read(buf: Buffer, base: number, family: Family): string;
  /** Writes 4 or 16 bytes; throws unless `ip` is of `family`. */
  write(buf: Buffer, base: number, ip: string, family: Family): void;
}

/** A struct member that is itself a struct of another codec. */
export interface NestedField<T> extends Field<T> {
  readonly codec: StructCodec<T>;
}

export type Fields = Readonly<Record<string, FieldLayout>>;

export const u8 = (offset: number): Field<number> => ({
  offset,
  size: 1,
  read: (buf, base) => buf.readUInt8(base + offset),
  write: (buf, base, v) => buf.writeUInt8(v, base + offset),
});

/** Host order (little-endian: BPF targets here are x86-64 and arm64). */
export const u16 = (offset: number): Field<number> => ({
  offset,
  size: 2,
  read: (buf, base) => buf.readUInt16LE(base + offset),
  write: (buf, base, v) => buf.writeUInt16LE(v, base + offset),
});

/** Network order (__be16: ports, ethertypes). */
export const be16 = (offset: number): Field<number> => ({
  offset,
  size: 2,
  read: (buf, base) => buf.readUInt16BE(base + offset),
  write: (buf, base, v) => buf.writeUInt16BE(v, base + offset),
});

/** Host order. Writing a value outside 0..2^32-1 throws (callers that hold signed identities
 *  write `v >>> 0`). */
export const u32 = (offset: number): Field<number> => ({
  offset,
  size: 4,
  read: (buf, base) => buf.readUInt32LE(base + offset),
  write: (buf, base, v) => buf.writeUInt32LE(v, base + offset),
});

/** Host order. */
export const u64 = (offset: number): Field<bigint> => ({
  offset,
  size: 8,
  read: (buf, base) => buf.readBigUInt64LE(base + offset),
  write: (buf, base, v) => buf.writeBigUInt64LE(v, base + offset),
});

export const addr = (offset: number): AddrField => ({
  offset,
  size: 16,
  read: (buf, base, family) => formatIp(buf.subarray(base + offset, base + offset + 16), family),
  write: (buf, base, ip, family) => writeIpBytes(ip, family, buf, base + offset),
});

export const nested = <T>(offset: number, codec: StructCodec<T>): NestedField<T> => ({
  offset,
  size: codec.size,
  codec,
  read: (buf, base) => codec.decode(buf, base + offset),
  write: (buf, base, v) => codec.encodeInto(v, buf, base + offset),
});

/** Bytes with no value of their own (padding, or a member the codec leaves zero). */
export const pad = (offset: number, size: number): FieldLayout => ({ offset, size });

/** How a struct's bytes become a value and back, at `offset` into a buffer. Neither uses `this`
 *  (`this: void`): struct() and wrapping() pass them on their own. */
export interface Coding<T> {
  encodeInto(this: void, value: T, buf: Buffer, offset: number): void;
  decode(this: void, buf: Buffer, offset?: number): T;
}

export interface StructCodec<T, F extends Fields = Fields> extends Coding<T> {
  /** The C struct's name, as in bpf/include. */
  readonly cName: string;
  readonly size: number;
  /** Every member of the C struct, padding included, by its C name. */
  readonly fields: F;
}

/** Declares a struct codec: its C name and size, its fields, and its coding, written in terms of
 *  those fields (and the size, for clearing the whole struct). Throws when two fields overlap or
 *  one lies past the struct's end. */
export function struct<T, F extends Fields>(
  cName: string,
  size: number,
  fields: F,
  coding: (f: F, size: number) => Coding<T>,
): StructCodec<T, F> {
  let end = 0;
  for (const [name, f] of Object.entries(fields).sort((a, b) => a[1].offset - b[1].offset)) {
    if (f.offset < end) throw new Error(`struct ${cName}: field ${name} at offset ${f.offset} overlaps the one before`);
    end = f.offset + f.size;
  }
  if (end > size) throw new Error(`struct ${cName}: fields end at ${end}, past its size ${size}`);
  const { encodeInto, decode } = coding(fields, size);
  return { cName, size, fields, encodeInto, decode };
}

/** A struct whose one member is a struct of another codec (at offset 0, as C puts it): coded as
 *  that struct, by the same functions. */
export function wrapping<T, M extends string>(
  cName: string,
  member: M,
  codec: StructCodec<T>,
): StructCodec<T, Record<M, NestedField<T>>> {
  const fields = { [member]: nested(0, codec) } as Record<M, NestedField<T>>;
  return struct(cName, codec.size, fields, () => ({ encodeInto: codec.encodeInto, decode: codec.decode }));
}

export function encode<T>(codec: StructCodec<T>, value: T): Buffer {
  const buf = Buffer.alloc(codec.size);
  codec.encodeInto(value, buf, 0);
  return buf;
}

/** Concatenates many values into one buffer, as batch operations want them. */
export function encodeMany<T>(codec: StructCodec<T>, values: readonly T[]): Buffer {
  const buf = Buffer.alloc(codec.size * values.length);
  values.forEach((v, i) => codec.encodeInto(v, buf, i * codec.size));
  return buf;
}
