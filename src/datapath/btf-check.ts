// The codecs against the BTF of the objects they read and write: every struct's size and every
// member's offset and size, and every enum's values, as the compiled object declares them. weftd
// checks each object when it loads it, before anything reaches the kernel, and refuses to run
// when they disagree (a header changed, the codecs did not, or the reverse): the error names the
// struct and the member. test/datapath/btf-layout.test.ts runs the same comparison on BTF read
// by bpftool, and checks the map declarations besides.
import type { FieldLayout, StructCodec } from './codec.js';
import { ALL_ENUMS, ENDPOINT_CODECS, eventHdr, sockXlateEvent, type EnumCodec } from './endpoint-codecs.js';
import { ALL_CODECS } from './lb-codecs.js';

// ---- what the check reads of an object's BTF (libbpf.ts reads it through libbpf; the test
// through bpftool) ----

export interface BtfMemberLayout {
  name: string;
  bitsOffset: number;
  /** 0 unless the member is a bitfield. */
  bitfieldSize: number;
  /** Bytes, typedefs, modifiers and arrays resolved. */
  size: number;
}

export interface BtfStructLayout {
  name: string;
  size: number;
  members: BtfMemberLayout[];
}

export interface BtfEnumLayout {
  name: string;
  size: number;
  values: { name: string; value: number }[];
}

export interface BtfLayouts {
  /** The named struct (or union), if the object's BTF has one. */
  structLayout(name: string): BtfStructLayout | undefined;
  /** The named enum (32 or 64 bits), if the object's BTF has one. */
  enumLayout(name: string): BtfEnumLayout | undefined;
}

// ---- the comparison ----

/** Every way the codec disagrees with the struct in BTF, one line each; [] when they agree. */
export function compareCodec(
  btf: BtfLayouts,
  codec: { cName: string; size: number; fields: Readonly<Record<string, FieldLayout>> },
): string[] {
  const s = btf.structLayout(codec.cName);
  if (!s) {
    const why = 'the codec names a struct the C headers do not define, or no program uses it';
    return [`struct ${codec.cName}: not in the object's BTF (${why})`];
  }
  const problems: string[] = [];
  if (s.size !== codec.size) problems.push(`struct ${codec.cName}: BTF size ${s.size}, codec size ${codec.size}`);
  const inBtf = new Map(s.members.map((m) => [m.name, m]));
  for (const [name, m] of inBtf) {
    const at = `${codec.cName}.${name}`;
    const offset = m.bitsOffset / 8;
    const c = codec.fields[name];
    if (!c) problems.push(`${at}: in BTF (offset ${offset} size ${m.size}), missing from the codec`);
    else if (m.bitfieldSize > 0 || m.bitsOffset % 8 !== 0) {
      problems.push(`${at}: a bitfield in BTF; codecs describe whole bytes only`);
    } else if (offset !== c.offset || m.size !== c.size) {
      problems.push(`${at}: BTF offset ${offset} size ${m.size}, codec offset ${c.offset} size ${c.size}`);
    }
  }
  for (const [name, c] of Object.entries(codec.fields)) {
    if (inBtf.has(name)) continue;
    const at = `${codec.cName}.${name}`;
    problems.push(`${at}: in the codec (offset ${c.offset} size ${c.size}), not a member of the struct in BTF`);
  }
  return problems;
}

/** Every way an enum's TypeScript table disagrees with the enum in BTF; [] when they agree. */
export function compareEnum(btf: BtfLayouts, e: Pick<EnumCodec<string>, 'cName' | 'size' | 'members'>): string[] {
  const t = btf.enumLayout(e.cName);
  if (!t) return [`enum ${e.cName}: not in the object's BTF`];
  const problems: string[] = [];
  if (t.size !== e.size) problems.push(`enum ${e.cName}: BTF size ${t.size}, codec size ${e.size}`);
  const inBtf = new Map(t.values.map((v) => [v.name, v.value]));
  for (const [name, val] of inBtf) {
    const m = e.members.find((x) => x.cName === name);
    if (!m) problems.push(`${e.cName}.${name}: in BTF (${val}), missing from the codec`);
    else if (m.value !== val) problems.push(`${e.cName}.${name}: BTF value ${val}, codec value ${m.value}`);
  }
  for (const m of e.members) {
    if (!inBtf.has(m.cName)) problems.push(`${e.cName}.${m.cName}: in the codec (${m.value}), not in BTF`);
  }
  return problems;
}

// ---- which codecs each object must agree with ----

export interface ObjectCodecs {
  readonly codecs: readonly StructCodec<unknown>[];
  readonly enums: readonly EnumCodec<string>[];
}

/** bpf/sock.c: the load balancer's maps, and the events its socket programs send. */
export const SOCK_OBJECT_CODECS: ObjectCodecs = {
  codecs: [...ALL_CODECS, eventHdr, sockXlateEvent] as StructCodec<unknown>[],
  enums: [],
};

/** bpf/lxc.c: the endpoint, conntrack, policy and event maps and records, and their enums. */
export const LXC_OBJECT_CODECS: ObjectCodecs = { codecs: ENDPOINT_CODECS, enums: ALL_ENUMS };

/** Every disagreement between an object's BTF and the codecs that read its maps and events. */
export function codecProblems(btf: BtfLayouts, want: ObjectCodecs): string[] {
  return [...want.codecs.flatMap((c) => compareCodec(btf, c)), ...want.enums.flatMap((e) => compareEnum(btf, e))];
}

export class CodecMismatchError extends Error {
  constructor(
    readonly object: string,
    readonly problems: readonly string[],
  ) {
    super(`${object} does not match weftd's codecs (bpf/include and src/datapath disagree): ${problems.join('; ')}`);
    this.name = 'CodecMismatchError';
  }
}

/** Throws a CodecMismatchError, naming each struct and member, unless the object's BTF and the
 *  codecs agree. */
export function checkCodecs(btf: BtfLayouts, want: ObjectCodecs, object: string): void {
  const problems = codecProblems(btf, want);
  if (problems.length > 0) throw new CodecMismatchError(object, problems);
}
