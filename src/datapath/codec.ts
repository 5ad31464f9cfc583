// A struct codec: how one C struct of bpf/include is laid out, and how a TypeScript value maps
// onto it. The declared field offsets and sizes are checked against the compiled object's BTF
// by test/datapath/btf-layout.test.ts, so they cannot drift from the C headers unnoticed.

export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

export interface StructCodec<T> {
  /** The C struct's name, as in bpf/include. */
  readonly cName: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
  encodeInto(value: T, buf: Buffer, offset: number): void;
  decode(buf: Buffer, offset?: number): T;
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
