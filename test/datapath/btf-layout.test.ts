// The contract: map layouts are declared once, in bpf/include/*.h; the TypeScript codecs of
// src/datapath/lb-codecs.ts and endpoint-codecs.ts are checked against the compiled objects'
// BTF, so neither side can drift unnoticed. Two readers of the BTF, one comparison
// (src/datapath/btf-check.ts): bpftool's (here, independent of weftd's code) and libbpf's
// (what weftd checks each object with when it loads it). Needs build/bpf/sock.o and lxc.o
// (`make bpf`) and bpftool; the last part compiles objects from an edited header with clang and
// needs root (bpffs).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CodecMismatchError,
  LXC_OBJECT_CODECS,
  SOCK_OBJECT_CODECS,
  checkCodecs,
  codecProblems,
  compareCodec,
  compareEnum,
  type BtfEnumLayout,
  type BtfLayouts,
  type BtfStructLayout,
} from '../../src/datapath/btf-check.js';
import { be16, u8, type StructCodec } from '../../src/datapath/codec.js';
import {
  ALL_ENUMS,
  ENDPOINT_CODECS,
  ENDPOINT_MAPS,
  SHARED_EVENT_MAPS,
  type ScalarLayout,
} from '../../src/datapath/endpoint-codecs.js';
import { EndpointDatapath } from '../../src/datapath/endpoint-datapath.js';
import { ALL_CODECS, LB_MAPS, lbServiceKey } from '../../src/datapath/lb-codecs.js';
import { BpfObject } from '../../src/datapath/libbpf.js';
import { loadSocketPrograms } from '../../src/datapath/programs.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
// WEFT_BTF_OBJECT points the check at another object (e.g. one built from an edited header).
const OBJECT = path.resolve(REPO, process.env.WEFT_BTF_OBJECT ?? 'build/bpf/sock.o');
// The pod-facing programs' object (bpf/lxc.c); WEFT_BTF_LXC_OBJECT points at another build.
const LXC_OBJECT = path.resolve(REPO, process.env.WEFT_BTF_LXC_OBJECT ?? 'build/bpf/lxc.o');

// ---- BTF as `bpftool -j btf dump file X format raw` prints it ----

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  bitfield_size?: number;
}

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
  vars?: { type_id: number; offset: number; size: number }[];
  values?: { name: string; val: number }[];
}

export class Btf implements BtfLayouts {
  private readonly byId = new Map<number, BtfType>();

  constructor(types: BtfType[]) {
    for (const t of types) this.byId.set(t.id, t);
  }

  static fromObject(file: string): Btf {
    const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', file, 'format', 'raw'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    return new Btf((JSON.parse(out) as { types: BtfType[] }).types);
  }

  type(id: number): BtfType {
    const t = this.byId.get(id);
    if (!t) throw new Error(`BTF type id ${id} not found`);
    return t;
  }

  /** Follows typedef/const/volatile/restrict/type_tag chains to the type that has a layout. */
  resolve(id: number): BtfType {
    let t = this.type(id);
    for (let hops = 0; ['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(t.kind); hops++) {
      if (hops > 64) throw new Error(`BTF type id ${id}: modifier chain too long`);
      t = this.type(t.type_id ?? 0);
    }
    return t;
  }

  /** Size in bytes of a type, as it occupies a struct member. */
  sizeOf(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case 'INT':
      case 'FLOAT':
      case 'ENUM':
      case 'ENUM64':
      case 'STRUCT':
      case 'UNION':
        return t.size ?? 0;
      case 'PTR':
        return 8; // BPF is a 64-bit target
      case 'ARRAY':
        return this.sizeOf(t.type_id ?? 0) * (t.nr_elems ?? 0);
      default:
        throw new Error(`BTF type id ${id} (${t.kind} ${t.name}) has no size`);
    }
  }

  /** The named struct (or union), if the object has one. */
  struct(name: string): BtfType | undefined {
    for (const t of this.byId.values()) if ((t.kind === 'STRUCT' || t.kind === 'UNION') && t.name === name) return t;
    return undefined;
  }

  /** Maps declared in the `.maps` section: name → the key and value types their definitions point to. */
  maps(): Map<string, { key?: BtfType; value?: BtfType }> {
    const out = new Map<string, { key?: BtfType; value?: BtfType }>();
    const sec = [...this.byId.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps');
    for (const v of sec?.vars ?? []) {
      const variable = this.type(v.type_id);
      const def = this.resolve(variable.type_id ?? 0);
      const pointee = (member: string): BtfType | undefined => {
        const m = def.members?.find((x) => x.name === member);
        if (!m) return undefined;
        const ptr = this.resolve(m.type_id);
        return ptr.kind === 'PTR' ? this.resolve(ptr.type_id ?? 0) : undefined;
      };
      const key = pointee('key');
      const value = pointee('value');
      out.set(variable.name, { ...(key && { key }), ...(value && { value }) });
    }
    return out;
  }

  /** A map definition's integer settings: `__uint(type, X)` is a pointer to an array of X. */
  mapSettings(name: string): { type?: number; maxEntries?: number } | undefined {
    const sec = [...this.byId.values()].find((t) => t.kind === 'DATASEC' && t.name === '.maps');
    for (const v of sec?.vars ?? []) {
      const variable = this.type(v.type_id);
      if (variable.name !== name) continue;
      const def = this.resolve(variable.type_id ?? 0);
      const setting = (member: string): number | undefined => {
        const m = def.members?.find((x) => x.name === member);
        if (!m) return undefined;
        const ptr = this.resolve(m.type_id);
        const arr = ptr.kind === 'PTR' ? this.resolve(ptr.type_id ?? 0) : undefined;
        return arr?.kind === 'ARRAY' ? arr.nr_elems : undefined;
      };
      const type = setting('type');
      const maxEntries = setting('max_entries');
      return { ...(type !== undefined && { type }), ...(maxEntries !== undefined && { maxEntries }) };
    }
    return undefined;
  }

  /** The named enum, if the object has one. */
  enumType(name: string): BtfType | undefined {
    for (const t of this.byId.values()) if ((t.kind === 'ENUM' || t.kind === 'ENUM64') && t.name === name) return t;
    return undefined;
  }

  structLayout(name: string): BtfStructLayout | undefined {
    const s = this.struct(name);
    if (!s) return undefined;
    const members = (s.members ?? []).map((m) => ({
      name: m.name,
      bitsOffset: m.bits_offset,
      bitfieldSize: m.bitfield_size ?? 0,
      size: this.sizeOf(m.type_id),
    }));
    return { name, size: s.size ?? 0, members };
  }

  enumLayout(name: string): BtfEnumLayout | undefined {
    const t = this.enumType(name);
    return t && { name, size: t.size ?? 0, values: (t.values ?? []).map((v) => ({ name: v.name, value: v.val })) };
  }
}

// ---- the checks ----

function loadBtf(): Btf {
  assert.ok(fs.existsSync(OBJECT), `${OBJECT} is missing: run \`make bpf\` first`);
  return Btf.fromObject(OBJECT);
}

describe(`codec layouts agree with the BTF of ${path.relative(REPO, OBJECT)}`, () => {
  const btf = loadBtf();

  // What weftd checks sock.o against when it loads it: the lb codecs and sock.c's events.
  for (const codec of SOCK_OBJECT_CODECS.codecs) {
    it(`struct ${codec.cName}: size, member names, offsets and sizes`, () => {
      assert.deepEqual(compareCodec(btf, codec), [], `codec for ${codec.cName} disagrees with bpf/include`);
    });
  }

  it('every codec names a distinct struct', () => {
    const names = ALL_CODECS.map((c) => c.cName);
    assert.equal(new Set(names).size, names.length, names.join(', '));
  });

  it('codec fields do not overlap and stay inside the struct', () => {
    for (const codec of ALL_CODECS) {
      const fields = Object.entries(codec.fields).sort((a, b) => a[1].offset - b[1].offset);
      let end = 0;
      for (const [name, f] of fields) {
        assert.ok(
          f.offset >= end,
          `${codec.cName}.${name}: offset ${f.offset} overlaps the previous field (which ends at ${end})`,
        );
        end = f.offset + f.size;
      }
      assert.ok(end <= codec.size, `${codec.cName}: fields end at ${end}, past the size ${codec.size}`);
    }
  });

  for (const [mapName, { key, value }] of Object.entries(LB_MAPS)) {
    it(`map ${mapName}: declared in .maps with key struct ${key.cName} and value struct ${value.cName}`, () => {
      const m = btf.maps().get(mapName);
      assert.ok(
        m,
        `map ${mapName} is not in the object's .maps section (maps there: ${[...btf.maps().keys()].join(', ')})`,
      );
      assert.ok(m.key, `map ${mapName}: its definition has no __type(key, ...)`);
      assert.ok(m.value, `map ${mapName}: its definition has no __type(value, ...)`);
      assert.equal(m.key.name, key.cName, `map ${mapName}: BTF key is struct ${m.key.name}, LB_MAPS says ${key.cName}`);
      assert.equal(
        m.key.size,
        key.size,
        `map ${mapName}: BTF key size ${m.key.size}, codec ${key.cName} size ${key.size}`,
      );
      assert.equal(
        m.value.name,
        value.cName,
        `map ${mapName}: BTF value is struct ${m.value.name}, LB_MAPS says ${value.cName}`,
      );
      assert.equal(
        m.value.size,
        value.size,
        `map ${mapName}: BTF value size ${m.value.size}, codec ${value.cName} size ${value.size}`,
      );
    });
  }

  it('every lb_* map in the object has codecs in LB_MAPS', () => {
    const lbMaps = [...btf.maps().keys()].filter((n) => n.startsWith('lb_'));
    const missing = lbMaps.filter((n) => !(n in LB_MAPS));
    assert.deepEqual(missing, [], `maps in bpf/ without an entry in LB_MAPS: ${missing.join(', ')}`);
  });
});

describe(`endpoint codecs agree with the BTF of ${path.relative(REPO, LXC_OBJECT)}`, () => {
  assert.ok(fs.existsSync(LXC_OBJECT), `${LXC_OBJECT} is missing: run \`make bpf\` first`);
  const btf = Btf.fromObject(LXC_OBJECT);

  // What weftd checks lxc.o against when it loads it.
  for (const codec of LXC_OBJECT_CODECS.codecs) {
    it(`struct ${codec.cName}: size, member names, offsets and sizes`, () => {
      assert.deepEqual(compareCodec(btf, codec), [], `codec for ${codec.cName} disagrees with bpf/include`);
    });
  }

  for (const e of LXC_OBJECT_CODECS.enums) {
    it(`enum ${e.cName}: size, names and values`, () => {
      assert.deepEqual(compareEnum(btf, e), [], `the table for enum ${e.cName} disagrees with bpf/include`);
    });
  }

  it('codec fields do not overlap and stay inside the struct; codecs name distinct structs', () => {
    const names = ENDPOINT_CODECS.map((c) => c.cName);
    assert.equal(new Set(names).size, names.length, names.join(', '));
    for (const codec of ENDPOINT_CODECS) {
      const fields = Object.entries(codec.fields).sort((a, b) => a[1].offset - b[1].offset);
      let end = 0;
      for (const [name, f] of fields) {
        assert.ok(f.offset >= end, `${codec.cName}.${name}: offset ${f.offset} overlaps the previous field`);
        end = f.offset + f.size;
      }
      assert.equal(
        end,
        codec.size,
        `${codec.cName}: fields end at ${end}, the struct at ${codec.size} (declare the padding)`,
      );
    }
  });

  const describeLayout = (l: { cName: string; size: number } | ScalarLayout | undefined) =>
    l === undefined ? 'none' : 'scalar' in l ? `a ${l.scalar}-byte integer` : `struct ${l.cName} (${l.size} bytes)`;
  const describeBtf = (t: BtfType | undefined) =>
    t === undefined ? 'none' : t.kind === 'STRUCT' ? `struct ${t.name} (${t.size} bytes)` : `a ${t.size}-byte integer`;

  for (const [mapName, layout] of Object.entries(ENDPOINT_MAPS)) {
    it(`map ${mapName}: type ${layout.type}, ${layout.maxEntries} entries, key ${describeLayout(layout.key)}, value ${describeLayout(layout.value)}`, () => {
      const m = btf.maps().get(mapName);
      assert.ok(
        m,
        `map ${mapName} is not in the object's .maps section (maps there: ${[...btf.maps().keys()].join(', ')})`,
      );
      assert.deepEqual(
        btf.mapSettings(mapName),
        { type: layout.type, maxEntries: layout.maxEntries },
        `map ${mapName}: type and max_entries`,
      );
      for (const part of ['key', 'value'] as const) {
        const want = layout[part];
        const got = m[part];
        const same =
          want === undefined
            ? got === undefined
            : 'scalar' in want
              ? got?.kind === 'INT' && got.size === want.scalar
              : got?.kind === 'STRUCT' && got.name === want.cName && got.size === want.size;
        assert.ok(
          same,
          `map ${mapName}: BTF ${part} is ${describeBtf(got)}, ENDPOINT_MAPS says ${describeLayout(want)}`,
        );
      }
    });
  }

  it('every map in the object has its layout in ENDPOINT_MAPS', () => {
    const missing = [...btf.maps().keys()].filter((n) => !(n in ENDPOINT_MAPS));
    assert.deepEqual(missing, [], `maps in lxc.o without an entry in ENDPOINT_MAPS: ${missing.join(', ')}`);
  });

  it("no map name collides with sock.o's (both pin under the same maps/ directory) but the event maps both share, declared alike", () => {
    const sock = loadBtf();
    const sockMaps = [...sock.maps().keys()];
    const shared: readonly string[] = SHARED_EVENT_MAPS;
    assert.deepEqual(
      [...btf.maps().keys()].filter((n) => sockMaps.includes(n) && !shared.includes(n)),
      [],
    );
    for (const name of SHARED_EVENT_MAPS) {
      assert.deepEqual(
        sock.mapSettings(name),
        btf.mapSettings(name),
        `map ${name}: the same type and size in both objects`,
      );
      const [a, b] = [sock.maps().get(name), btf.maps().get(name)];
      assert.deepEqual(
        [a?.key?.size, a?.value?.size],
        [b?.key?.size, b?.value?.size],
        `map ${name}: the same key and value in both objects`,
      );
    }
  });

  it("moving any endpoint codec's field by one byte, or changing an enum value, is reported", () => {
    for (const codec of ENDPOINT_CODECS) {
      for (const [name, f] of Object.entries(codec.fields)) {
        const wrong = { ...codec, fields: { ...codec.fields, [name]: { offset: f.offset + 1, size: f.size } } };
        assert.ok(
          compareCodec(btf, wrong).some((p) => p.startsWith(`${codec.cName}.${name}: `)),
          `moving ${codec.cName}.${name} went unnoticed`,
        );
      }
    }
    for (const e of ALL_ENUMS) {
      const [first, ...rest] = e.members;
      const wrong = { ...e, members: [{ ...first!, value: first!.value + 100 }, ...rest] };
      assert.deepEqual(compareEnum(btf, wrong), [
        `${e.cName}.${first!.cName}: BTF value ${first!.value}, codec value ${first!.value + 100}`,
      ]);
    }
  });
});

describe('the layout check itself reports mismatches (so it cannot pass vacuously)', () => {
  // A hand-written BTF, as bpftool prints it, of
  //   struct demo_key { struct weft_addr ip; __be16 port; __u8 proto; __u8 family; };   (20 bytes)
  // so that these checks do not depend on what the headers currently say.
  const demo = new Btf([
    { id: 1, kind: 'INT', name: 'unsigned int', size: 4 },
    { id: 2, kind: 'TYPEDEF', name: '__u32', type_id: 1 },
    { id: 3, kind: 'TYPEDEF', name: '__be32', type_id: 2 },
    { id: 4, kind: 'ARRAY', name: '(anon)', type_id: 3, nr_elems: 4 },
    { id: 5, kind: 'STRUCT', name: 'weft_addr', size: 16, members: [{ name: 'addr', type_id: 4, bits_offset: 0 }] },
    { id: 6, kind: 'INT', name: 'unsigned short', size: 2 },
    { id: 7, kind: 'TYPEDEF', name: '__be16', type_id: 6 },
    { id: 8, kind: 'INT', name: 'unsigned char', size: 1 },
    { id: 9, kind: 'CONST', name: '(anon)', type_id: 8 },
    { id: 10, kind: 'TYPEDEF', name: '__u8', type_id: 9 },
    {
      id: 11,
      kind: 'STRUCT',
      name: 'demo_key',
      size: 20,
      members: [
        { name: 'ip', type_id: 5, bits_offset: 0 },
        { name: 'port', type_id: 7, bits_offset: 128 },
        { name: 'proto', type_id: 10, bits_offset: 144 },
        { name: 'family', type_id: 10, bits_offset: 152 },
      ],
    },
  ]);
  const right = {
    cName: 'demo_key',
    size: 20,
    fields: {
      ip: { offset: 0, size: 16 },
      port: { offset: 16, size: 2 },
      proto: { offset: 18, size: 1 },
      family: { offset: 19, size: 1 },
    },
  };

  it('the right layout passes', () => {
    assert.deepEqual(compareCodec(demo, right), []);
  });

  it('a field at the wrong offset', () => {
    const wrong = { ...right, fields: { ...right.fields, port: { offset: 18, size: 2 } } };
    assert.deepEqual(compareCodec(demo, wrong), ['demo_key.port: BTF offset 16 size 2, codec offset 18 size 2']);
  });

  it('a field of the wrong size', () => {
    const wrong = { ...right, fields: { ...right.fields, proto: { offset: 18, size: 2 } } };
    assert.deepEqual(compareCodec(demo, wrong), ['demo_key.proto: BTF offset 18 size 1, codec offset 18 size 2']);
  });

  it('the wrong struct size', () => {
    assert.deepEqual(compareCodec(demo, { ...right, size: 24 }), ['struct demo_key: BTF size 20, codec size 24']);
  });

  it('a member the codec does not declare, and a field the struct does not have', () => {
    const { family: _family, ...rest } = right.fields;
    const wrong = { ...right, fields: { ...rest, af: { offset: 19, size: 1 } } };
    assert.deepEqual(compareCodec(demo, wrong).sort(), [
      'demo_key.af: in the codec (offset 19 size 1), not a member of the struct in BTF',
      'demo_key.family: in BTF (offset 19 size 1), missing from the codec',
    ]);
  });

  it('a struct the object does not have', () => {
    const problems = compareCodec(demo, { ...right, cName: 'lb_no_such_struct' });
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^struct lb_no_such_struct: not in the object's BTF/);
  });

  it('member sizes resolve through typedef and const chains, arrays and nested structs', () => {
    assert.equal(demo.sizeOf(11), 20);
    assert.equal(demo.sizeOf(5), 16);
    assert.equal(demo.sizeOf(4), 16, 'array of 4 × __be32 → __u32 → unsigned int');
    assert.equal(demo.sizeOf(7), 2);
    assert.equal(demo.sizeOf(10), 1, '__u8 → const → unsigned char');
  });

  it("against the real object: moving any codec's field by one byte is reported, naming the struct and field", () => {
    const btf = loadBtf();
    for (const codec of ALL_CODECS) {
      for (const [name, f] of Object.entries(codec.fields)) {
        const wrong = { ...codec, fields: { ...codec.fields, [name]: { offset: f.offset + 1, size: f.size } } };
        const problems = compareCodec(btf, wrong);
        assert.ok(
          problems.some(
            (p) =>
              p.startsWith(`${codec.cName}.${name}: `) && p.includes(`codec offset ${f.offset + 1} size ${f.size}`),
          ),
          `moving ${codec.cName}.${name} went unnoticed: ${JSON.stringify(problems)}`,
        );
      }
    }
  });
});

describe("weftd's check at load: BTF read by libbpf, the same comparison, a refusal naming struct and member", () => {
  const objects = [
    { file: OBJECT, want: SOCK_OBJECT_CODECS },
    { file: LXC_OBJECT, want: LXC_OBJECT_CODECS },
  ];

  /** The object opened (not loaded: nothing reaches the kernel) for `fn`, then closed. */
  function withObject<T>(file: string, fn: (btf: BtfLayouts) => T): T {
    const obj = BpfObject.open(file);
    try {
      return fn(obj.btf());
    } finally {
      obj.close();
    }
  }

  for (const { file, want } of objects) {
    it(`${path.basename(file)}: libbpf reads every struct and enum the codecs name as bpftool does`, () => {
      const bpftool = Btf.fromObject(file);
      withObject(file, (libbpf) => {
        for (const c of want.codecs) {
          assert.deepEqual(libbpf.structLayout(c.cName), bpftool.structLayout(c.cName), `struct ${c.cName}`);
        }
        for (const e of want.enums) {
          assert.deepEqual(libbpf.enumLayout(e.cName), bpftool.enumLayout(e.cName), `enum ${e.cName}`);
        }
        assert.equal(libbpf.structLayout('no_such_struct'), undefined);
        assert.equal(libbpf.enumLayout('no_such_enum'), undefined);
      });
    });

    it(`${path.basename(file)}: the real codecs pass`, () => {
      withObject(file, (btf) => {
        assert.deepEqual(codecProblems(btf, want), []);
        checkCodecs(btf, want, file);
      });
    });
  }

  it('a codec that disagrees (a modified copy of lb_service_key) fails, naming the struct and each member', () => {
    const swapped = { ...lbServiceKey, fields: { ...lbServiceKey.fields, proto: u8(19), family: u8(18) } };
    const wrong = { codecs: [swapped as StructCodec<unknown>], enums: [] };
    withObject(OBJECT, (btf) => {
      assert.throws(
        () => checkCodecs(btf, wrong, 'sock.o'),
        (err: unknown) => {
          assert.ok(err instanceof CodecMismatchError);
          assert.deepEqual(err.problems, [
            'lb_service_key.proto: BTF offset 18 size 1, codec offset 19 size 1',
            'lb_service_key.family: BTF offset 19 size 1, codec offset 18 size 1',
          ]);
          assert.match(err.message, /^sock\.o does not match weftd's codecs .*lb_service_key\.proto: BTF offset 18/);
          return true;
        },
      );
    });
  });

  it('BpfObject.load runs the check before loading, and a failed check fails the load', () => {
    const moved = { ...lbServiceKey, fields: { ...lbServiceKey.fields, port: be16(17) } };
    const wrong = { codecs: [moved as StructCodec<unknown>], enums: [] };
    let loaded = false;
    assert.throws(
      () =>
        BpfObject.load(OBJECT, {
          verify: (o) => {
            checkCodecs(o.btf(), wrong, o.path);
            loaded = true;
          },
        }),
      /lb_service_key\.port: BTF offset 16 size 2, codec offset 17 size 2/,
    );
    assert.equal(loaded, false);
  });

  describe('objects built from an edited header (event_hdr: sport, dport swapped) are refused by the loaders', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-btf-'));
    const bpfRoot = `/sys/fs/bpf/weft-btf-check-${process.pid}`;
    after(() => {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.rmSync(bpfRoot, { recursive: true, force: true });
    });

    const build = (): string => {
      fs.cpSync(path.join(REPO, 'bpf'), path.join(tmp, 'bpf'), { recursive: true });
      const header = path.join(tmp, 'bpf/include/events.h');
      const text = fs.readFileSync(header, 'utf8');
      const edited = text.replace(/(\t__be16 sport;[^\n]*\n)(\t__be16 dport;\n)/, '$2$1');
      assert.notEqual(edited, text, 'events.h: struct event_hdr no longer has sport then dport: update this test');
      fs.writeFileSync(header, edited);
      const arch = process.arch === 'arm64' ? 'arm64' : 'x86';
      for (const name of ['sock', 'lxc']) {
        execFileSync('clang', [
          '-O2',
          '-g',
          '-Wall',
          '-Werror',
          '-target',
          'bpf',
          `-D__TARGET_ARCH_${arch}`,
          `-I${path.join(REPO, 'build/include')}`,
          `-I${path.join(tmp, 'bpf/include')}`,
          '-c',
          path.join(tmp, `bpf/${name}.c`),
          '-o',
          path.join(tmp, `${name}.o`),
        ]);
      }
      return tmp;
    };
    const objectDir = build();
    const refusal = (object: string) => (err: unknown) => {
      assert.ok(err instanceof CodecMismatchError, String(err));
      assert.equal(err.object, path.join(objectDir, object));
      assert.deepEqual(err.problems, [
        'event_hdr.dport: BTF offset 56 size 2, codec offset 58 size 2',
        'event_hdr.sport: BTF offset 58 size 2, codec offset 56 size 2',
      ]);
      return true;
    };

    it('sock.o: loadSocketPrograms refuses it before loading or attaching anything', () => {
      const load = () => loadSocketPrograms({ bpfRoot, cgroupDir: '/nonexistent-cgroup', objectDir });
      assert.throws(load, refusal('sock.o'));
      assert.deepEqual(fs.readdirSync(path.join(bpfRoot, 'maps')), [], 'no map was pinned');
    });

    it('lxc.o: EndpointDatapath.open refuses it before loading anything', () => {
      assert.throws(() => EndpointDatapath.open({ bpfRoot, objectDir }), refusal('lxc.o'));
      assert.deepEqual(fs.readdirSync(path.join(bpfRoot, 'maps')), [], 'no map was pinned');
    });
  });
});
