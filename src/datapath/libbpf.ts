// FFI binding to the system's libbpf (Debian's libbpf.so.1) through koffi. Only the calls Weft
// uses are declared; wrappers turn libbpf's negative-errno returns into thrown errors that name
// the operation and, for program loads, carry the verifier log.
import koffi, { type LibraryHandle } from 'koffi';
import fs from 'node:fs';
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import type { BtfEnumLayout, BtfLayouts, BtfStructLayout } from './btf-check.js';

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

type Ptr = bigint | null;

const PrintFn = koffi.proto('int weft_libbpf_print_fn(int level, const char *fmt, void *args)');

/** A C function of `library`, by its prototype, with the TypeScript signature the calls below
 *  give it: koffi types every foreign call `any`, so the two are written side by side here. */
function cfunc<F extends (...args: never[]) => unknown>(
  library: LibraryHandle,
  prototype: string,
): (...args: Parameters<F>) => ReturnType<F> {
  return library.func(prototype);
}

const fns = {
  set_print: cfunc<(fn: unknown) => unknown>(lib, 'void *libbpf_set_print(void *fn)'),
  strerror: cfunc<(err: number, buf: Buffer, size: number) => number>(
    lib,
    'int libbpf_strerror(int err, _Out_ uint8_t *buf, size_t size)',
  ),
  object_open_file: cfunc<(path: string, opts: null) => Ptr>(
    lib,
    'void *bpf_object__open_file(const char *path, void *opts)',
  ),
  object_load: cfunc<(obj: Ptr) => number>(lib, 'int bpf_object__load(void *obj)'),
  object_close: cfunc<(obj: bigint) => void>(lib, 'void bpf_object__close(void *obj)'),
  object_next_map: cfunc<(obj: Ptr, map: Ptr) => Ptr>(lib, 'void *bpf_object__next_map(void *obj, void *map)'),
  object_next_program: cfunc<(obj: Ptr, prog: Ptr) => Ptr>(
    lib,
    'void *bpf_object__next_program(void *obj, void *prog)',
  ),
  object_btf: cfunc<(obj: Ptr) => Ptr>(lib, 'void *bpf_object__btf(void *obj)'),
  btf_find_by_name_kind: cfunc<(btf: bigint, name: string, kind: number) => number>(
    lib,
    'int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)',
  ),
  btf_type_by_id: cfunc<(btf: bigint, id: number) => Ptr>(lib, 'void *btf__type_by_id(void *btf, uint32_t id)'),
  btf_name_by_offset: cfunc<(btf: bigint, offset: number) => string | null>(
    lib,
    'const char *btf__name_by_offset(void *btf, uint32_t offset)',
  ),
  btf_resolve_size: cfunc<(btf: bigint, id: number) => number | bigint>(
    lib,
    'int64_t btf__resolve_size(void *btf, uint32_t id)',
  ),
  map_name: cfunc<(map: bigint) => string>(lib, 'const char *bpf_map__name(void *map)'),
  map_fd: cfunc<(map: bigint) => number>(lib, 'int bpf_map__fd(void *map)'),
  map_set_pin_path: cfunc<(map: bigint, path: string) => number>(
    lib,
    'int bpf_map__set_pin_path(void *map, const char *path)',
  ),
  map_type: cfunc<(map: bigint) => number>(lib, 'int bpf_map__type(void *map)'),
  map_key_size: cfunc<(map: bigint) => number>(lib, 'uint32_t bpf_map__key_size(void *map)'),
  map_value_size: cfunc<(map: bigint) => number>(lib, 'uint32_t bpf_map__value_size(void *map)'),
  map_max_entries: cfunc<(map: bigint) => number>(lib, 'uint32_t bpf_map__max_entries(void *map)'),
  program_name: cfunc<(prog: bigint) => string>(lib, 'const char *bpf_program__name(void *prog)'),
  program_fd: cfunc<(prog: bigint) => number>(lib, 'int bpf_program__fd(void *prog)'),
  program_attach_cgroup: cfunc<(prog: bigint, cgroupFd: number) => Ptr>(
    lib,
    'void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)',
  ),
  link_pin: cfunc<(link: bigint, path: string) => number>(lib, 'int bpf_link__pin(void *link, const char *path)'),
  link_destroy: cfunc<(link: bigint) => number>(lib, 'int bpf_link__destroy(void *link)'),
  link_update: cfunc<(linkFd: number, newProgFd: number, opts: null) => number>(
    lib,
    'int bpf_link_update(int link_fd, int new_prog_fd, void *opts)',
  ),
  obj_get: cfunc<(path: string) => number>(lib, 'int bpf_obj_get(const char *path)'),
  obj_get_info_by_fd: cfunc<(fd: number, info: Buffer, len: number[]) => number>(
    lib,
    'int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)',
  ),
  map_lookup_elem: cfunc<(fd: number, key: Buffer, value: Buffer) => number>(
    lib,
    'int bpf_map_lookup_elem(int fd, const uint8_t *key, _Out_ uint8_t *value)',
  ),
  map_update_elem: cfunc<(fd: number, key: Buffer, value: Buffer, flags: bigint) => number>(
    lib,
    'int bpf_map_update_elem(int fd, const uint8_t *key, const uint8_t *value, uint64_t flags)',
  ),
  map_delete_elem: cfunc<(fd: number, key: Buffer) => number>(
    lib,
    'int bpf_map_delete_elem(int fd, const uint8_t *key)',
  ),
  map_get_next_key: cfunc<(fd: number, key: Buffer | null, next: Buffer) => number>(
    lib,
    'int bpf_map_get_next_key(int fd, const uint8_t *key, _Out_ uint8_t *next)',
  ),
  map_update_batch: cfunc<(fd: number, keys: Buffer, values: Buffer, count: number[], opts: Buffer) => number>(
    lib,
    'int bpf_map_update_batch(int fd, const uint8_t *keys, const uint8_t *values, _Inout_ uint32_t *count, const uint8_t *opts)',
  ),
  map_delete_batch: cfunc<(fd: number, keys: Buffer, count: number[], opts: Buffer) => number>(
    lib,
    'int bpf_map_delete_batch(int fd, const uint8_t *keys, _Inout_ uint32_t *count, const uint8_t *opts)',
  ),
  map_lookup_batch: cfunc<
    (
      fd: number,
      inBatch: Buffer | null,
      outBatch: Buffer,
      keys: Buffer,
      values: Buffer,
      count: number[],
      opts: Buffer,
    ) => number
  >(
    lib,
    'int bpf_map_lookup_batch(int fd, const uint8_t *in_batch, _Out_ uint8_t *out_batch, ' +
      '_Out_ uint8_t *keys, _Out_ uint8_t *values, _Inout_ uint32_t *count, const uint8_t *opts)',
  ),
  link_detach: cfunc<(linkFd: number) => number>(lib, 'int bpf_link_detach(int link_fd)'),
  tc_hook_create: cfunc<(hook: Buffer) => number>(lib, 'int bpf_tc_hook_create(const uint8_t *hook)'),
  tc_attach: cfunc<(hook: Buffer, opts: Buffer) => number>(
    lib,
    'int bpf_tc_attach(const uint8_t *hook, _Inout_ uint8_t *opts)',
  ),
  tc_detach: cfunc<(hook: Buffer, opts: Buffer) => number>(
    lib,
    'int bpf_tc_detach(const uint8_t *hook, const uint8_t *opts)',
  ),
  tc_query: cfunc<(hook: Buffer, opts: Buffer) => number>(
    lib,
    'int bpf_tc_query(const uint8_t *hook, _Inout_ uint8_t *opts)',
  ),
  prog_get_fd_by_id: cfunc<(id: number) => number>(lib, 'int bpf_prog_get_fd_by_id(uint32_t id)'),
  prog_test_run_opts: cfunc<(progFd: number, opts: Buffer) => number>(
    lib,
    'int bpf_prog_test_run_opts(int prog_fd, _Inout_ uint8_t *opts)',
  ),
  num_possible_cpus: cfunc<() => number>(lib, 'int libbpf_num_possible_cpus(void)'),
  if_indextoname: cfunc<(ifindex: number, name: Buffer) => string | null>(
    libc,
    'char *if_indextoname(unsigned int ifindex, _Out_ uint8_t *name)',
  ),
  if_nametoindex: cfunc<(name: string) => number>(libc, 'unsigned int if_nametoindex(const char *name)'),
  vsnprintf: cfunc<(buf: Buffer, size: number, fmt: string, args: unknown) => number>(
    libc,
    'int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *args)',
  ),
  open: cfunc<(path: string, flags: number) => number>(libc, 'int open(const char *path, int flags)'),
  close: cfunc<(fd: number) => number>(libc, 'int close(int fd)'),
};

const O_RDONLY = 0;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;

export const BPF_ANY = 0n;

/** An error from libbpf or the bpf() syscall, with the errno and any libbpf log lines. */
export class BpfError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly log: string = '',
  ) {
    super(`${op}: ${errnoName(errno)}${log ? `\n${log}` : ''}`);
    this.name = 'BpfError';
  }
}

function errnoName(errno: number): string {
  const buf = Buffer.alloc(256);
  fns.strerror(-errno, buf, buf.length);
  const text = buf.toString('utf8', 0, buf.indexOf(0));
  const code = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0];
  return code ? `${code} (${text})` : text;
}

function check(op: string, ret: number): number {
  if (ret < 0) throw new BpfError(op, -ret);
  return ret;
}

function checkPtr(op: string, ptr: Ptr): bigint {
  if (!ptr) throw new BpfError(op, koffi.errno() || 22, drainLog());
  return ptr;
}

// libbpf reports through one global print callback. Warnings are kept while an operation runs
// so that a failure can say why: the verifier's log of a rejected program arrives as one.
const LIBBPF_WARN = 0;
let logLines: string[] = [];
const printBuf = Buffer.alloc(64 * 1024);
// libbpf's print callback is process-wide, and koffi runs a callback on the thread that
// registered it: registered from a worker (the observer's ring thread, which loads this
// module too), every libbpf message of the main thread would wait on that worker's blocked
// thread, for ever. So only the main thread takes libbpf's messages.
if (isMainThread) {
  const printCb = koffi.register((level: number, fmt: string, args: unknown) => {
    if (level > LIBBPF_WARN) return 0;
    const n = fns.vsnprintf(printBuf, printBuf.length, fmt, args);
    if (n > 0) logLines.push(printBuf.toString('utf8', 0, Math.min(n, printBuf.length - 1)));
    if (logLines.length > 2000) logLines.splice(0, logLines.length - 2000);
    return 0;
  }, koffi.pointer(PrintFn));
  fns.set_print(printCb);
}

function drainLog(): string {
  const text = logLines.join('').trimEnd();
  logLines = [];
  return text;
}

export function closeFd(fd: number): void {
  if (fd >= 0) fns.close(fd);
}

/** Opens a directory (a cgroup) read-only, as attach calls want it. */
export function openDirectory(path: string): number {
  const fd = fns.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw new BpfError(`open ${path}`, koffi.errno());
  return fd;
}

export interface ProgramHandle {
  readonly name: string;
  readonly fd: number;
  readonly ptr: bigint;
}

export interface MapHandle {
  readonly name: string;
  readonly fd: number;
}

/** A BPF object file, opened and loaded, with its maps pinned under pinDir (reusing maps that
 *  are already pinned there, so an agent restart keeps the kernel's state). */
/** Removes the pin of a map whose definition is not the object's (see BpfObject.load). */
function removeChangedPin(map: bigint, pin: string): void {
  let fd = -1;
  try {
    fd = fns.obj_get(pin);
    if (fd < 0) return; // nothing pinned yet
    const have = mapInfo(fd);
    const want = {
      type: fns.map_type(map),
      keySize: fns.map_key_size(map),
      valueSize: fns.map_value_size(map),
      maxEntries: fns.map_max_entries(map),
    };
    if (
      have.type !== want.type ||
      have.keySize !== want.keySize ||
      have.valueSize !== want.valueSize ||
      have.maxEntries !== want.maxEntries
    )
      fs.rmSync(pin);
  } finally {
    if (fd >= 0) fns.close(fd);
  }
}

export class BpfObject {
  private constructor(
    private ptr: bigint | null,
    readonly path: string,
  ) {}

  /** Opens an object without loading it: its BTF can be read, nothing reaches the kernel. */
  static open(path: string): BpfObject {
    drainLog();
    return new BpfObject(checkPtr(`open BPF object ${path}`, fns.object_open_file(path, null)), path);
  }

  /** Opens and loads an object. `verify` sees it first, before anything reaches the kernel: a
   *  throw there fails the load. With mapPinDir, its maps are pinned there, reusing pins of the
   *  same name. A pinned map whose definition differs (type, sizes, max entries) makes the load
   *  fail, unless it is one of `replaceChanged`: maps without state worth keeping (an events
   *  ring), whose old pin is then removed and a new map pinned in its place. */
  static load(
    path: string,
    opts: { mapPinDir?: string; replaceChanged?: readonly string[]; verify?: (obj: BpfObject) => void } = {},
  ): BpfObject {
    const obj = BpfObject.open(path);
    try {
      opts.verify?.(obj);
      if (opts.mapPinDir) {
        for (const map of obj.mapPointers()) {
          const name = fns.map_name(map);
          if (name.startsWith('.')) continue; // .rodata/.bss are private to the object
          const pin = `${opts.mapPinDir}/${name}`;
          if (opts.replaceChanged?.includes(name)) removeChangedPin(map, pin);
          check(`set pin path of map ${name}`, fns.map_set_pin_path(map, pin));
        }
      }
      const ret = fns.object_load(obj.ptr);
      if (ret < 0) throw new BpfError(`load BPF object ${path}`, -ret, drainLog());
      drainLog();
      return obj;
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  private *mapPointers(): Generator<bigint> {
    let map: Ptr = null;
    while ((map = fns.object_next_map(this.ptr, map))) yield map;
  }

  maps(): MapHandle[] {
    return [...this.mapPointers()].map((m) => ({ name: fns.map_name(m), fd: fns.map_fd(m) }));
  }

  map(name: string): MapHandle {
    const found = this.maps().find((m) => m.name === name);
    if (!found) throw new Error(`map ${name} not found in ${this.path}`);
    return found;
  }

  programs(): ProgramHandle[] {
    const out: ProgramHandle[] = [];
    let prog: Ptr = null;
    while ((prog = fns.object_next_program(this.ptr, prog))) {
      out.push({ name: fns.program_name(prog), fd: fns.program_fd(prog), ptr: prog });
    }
    return out;
  }

  /** The object's BTF, as libbpf parsed it; valid until the object is closed. */
  btf(): BtfLayouts {
    const btf = fns.object_btf(this.ptr);
    if (!btf) throw new Error(`${this.path} has no BTF (build it with clang -g)`);
    return new LibbpfBtf(btf);
  }

  /** Frees the object. Pinned maps and links stay in the kernel. */
  close(): void {
    if (this.ptr) fns.object_close(this.ptr);
    this.ptr = null;
  }
}

// ---- BTF, read in place (linux/btf.h): struct btf_type is name_off, info (vlen in bits 0-15,
// kind in 24-28, kind_flag in 31), then size or type; a struct's members follow it as
// struct btf_member (name_off, type, offset: with kind_flag, bitfield size << 24 | bit offset),
// an enum's values as struct btf_enum (name_off, val) or btf_enum64 (name_off, lo32, hi32). ----

const BTF_KIND_STRUCT = 4;
const BTF_KIND_UNION = 5;
const BTF_KIND_ENUM = 6;
const BTF_KIND_ENUM64 = 19;

class LibbpfBtf implements BtfLayouts {
  constructor(private readonly btf: bigint) {}

  private find(name: string, kinds: readonly number[]): { info: number; size: number; ptr: bigint } | undefined {
    for (const kind of kinds) {
      const id = fns.btf_find_by_name_kind(this.btf, name, kind);
      if (id < 0) continue;
      const ptr = checkPtr(`BTF type ${id} (${name})`, fns.btf_type_by_id(this.btf, id));
      const [, info, size] = koffi.decode(ptr, 'uint32_t', 3) as Uint32Array;
      return { info: info!, size: size!, ptr };
    }
    return undefined;
  }

  private name(offset: number): string {
    return fns.btf_name_by_offset(this.btf, offset) ?? '';
  }

  structLayout(name: string): BtfStructLayout | undefined {
    const t = this.find(name, [BTF_KIND_STRUCT, BTF_KIND_UNION]);
    if (!t) return undefined;
    const vlen = t.info & 0xffff;
    const kindFlag = t.info >>> 31;
    const words = koffi.decode(t.ptr, 'uint32_t', 3 + 3 * vlen) as Uint32Array;
    const members = [];
    for (let i = 0; i < vlen; i++) {
      const [nameOff, type, offset] = [words[3 + 3 * i]!, words[4 + 3 * i]!, words[5 + 3 * i]!];
      const member = this.name(nameOff);
      const size = Number(fns.btf_resolve_size(this.btf, type));
      if (size < 0) throw new BpfError(`BTF size of ${name}.${member}`, -size);
      const bitsOffset = kindFlag ? offset & 0xffffff : offset;
      members.push({ name: member, bitsOffset, bitfieldSize: kindFlag ? offset >>> 24 : 0, size });
    }
    return { name, size: t.size, members };
  }

  enumLayout(name: string): BtfEnumLayout | undefined {
    const t = this.find(name, [BTF_KIND_ENUM, BTF_KIND_ENUM64]);
    if (!t) return undefined;
    const vlen = t.info & 0xffff;
    const signed = t.info >>> 31 === 1;
    const kind = (t.info >>> 24) & 0x1f;
    const stride = kind === BTF_KIND_ENUM64 ? 3 : 2;
    const words = koffi.decode(t.ptr, 'uint32_t', 3 + stride * vlen) as Uint32Array;
    const values = [];
    for (let i = 0; i < vlen; i++) {
      const at = 3 + stride * i;
      const lo = words[at + 1]!;
      let value: number;
      if (stride === 2) value = signed ? lo | 0 : lo;
      else {
        const v = (BigInt(words[at + 2]!) << 32n) | BigInt(lo);
        value = Number(signed ? BigInt.asIntN(64, v) : v);
      }
      values.push({ name: this.name(words[at]!), value });
    }
    return { name, size: t.size, values };
  }
}

/** Attaches a cgroup program as a multi-attach link and pins the link, so the attachment
 *  outlives the process. */
export function attachCgroupPinned(prog: ProgramHandle, cgroupFd: number, pinPath: string): void {
  drainLog();
  const link = checkPtr(`attach ${prog.name} to cgroup`, fns.program_attach_cgroup(prog.ptr, cgroupFd));
  try {
    check(`pin link ${pinPath}`, fns.link_pin(link, pinPath));
  } finally {
    // Closes our fd; the pin keeps the link (and the attachment) alive.
    fns.link_destroy(link);
  }
}

/** Atomically replaces the program behind a pinned link. */
export function updateLink(linkFd: number, progFd: number, what: string): void {
  check(`replace program of link ${what}`, fns.link_update(linkFd, progFd, null));
}

/** bpf_obj_get_info_by_fd into a buffer of `size` bytes: the caller reads its layout. */
function objInfo(fd: number, size: number, what: string): Buffer {
  const buf = Buffer.alloc(size);
  check(what, fns.obj_get_info_by_fd(fd, buf, [buf.length]));
  return buf;
}

export function objGet(path: string): number {
  const fd = fns.obj_get(path);
  if (fd < 0) throw new BpfError(`open pinned object ${path}`, -fd);
  return fd;
}

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const buf = objInfo(fd, 96, 'get map info');
  const nameBytes = buf.subarray(24, 40);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    keySize: buf.readUInt32LE(8),
    valueSize: buf.readUInt32LE(12),
    maxEntries: buf.readUInt32LE(16),
    name: nameBytes.toString('utf8', 0, Math.max(0, nameBytes.indexOf(0))),
  };
}

export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** For cgroup links: the cgroup's id (the inode number of its directory). */
  cgroupId: bigint;
  attachType: number;
}

/** struct bpf_link_info: a common head (type, id, prog_id), then a union whose layout
 *  depends on the link's type; linkInfo and tcxLinkInfo read the two Weft uses. */
function readLinkInfo(fd: number): { buf: Buffer; head: { type: number; id: number; progId: number } } {
  const buf = objInfo(fd, 64, 'get link info');
  return { buf, head: { type: buf.readUInt32LE(0), id: buf.readUInt32LE(4), progId: buf.readUInt32LE(8) } };
}

/** A cgroup link's info. */
export function linkInfo(fd: number): LinkInfo {
  const { buf, head } = readLinkInfo(fd);
  return { ...head, cgroupId: buf.readBigUInt64LE(16), attachType: buf.readUInt32LE(24) };
}

function batchOpts(): Buffer {
  const opts = Buffer.alloc(24);
  opts.writeBigUInt64LE(24n, 0); // sz
  return opts;
}

/** Raw, byte-level operations on one map. Typed access lives in TypedMap (maps.ts). */
export class RawMap {
  constructor(
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly name: string,
  ) {}

  static openPinned(path: string): RawMap {
    const fd = objGet(path);
    const info = mapInfo(fd);
    return new RawMap(fd, info.keySize, info.valueSize, info.name);
  }

  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueSize);
    const ret = fns.map_lookup_elem(this.fd, key, value);
    if (ret === -os.constants.errno.ENOENT) return undefined;
    check(`lookup in map ${this.name}`, ret);
    return value;
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    check(`update map ${this.name}`, fns.map_update_elem(this.fd, key, value, flags));
  }

  /** Returns false when the key was not there. */
  delete(key: Buffer): boolean {
    const ret = fns.map_delete_elem(this.fd, key);
    if (ret === -os.constants.errno.ENOENT) return false;
    check(`delete from map ${this.name}`, ret);
    return true;
  }

  /** Writes many entries with one syscall per chunk. keys and values are concatenated. */
  updateBatch(keys: Buffer, values: Buffer): void {
    const n = keys.length / this.keySize;
    if (n === 0) return;
    const count = [n];
    check(`batch update map ${this.name}`, fns.map_update_batch(this.fd, keys, values, count, batchOpts()));
  }

  deleteBatch(keys: Buffer): void {
    const n = keys.length / this.keySize;
    if (n === 0) return;
    const count = [n];
    const ret = fns.map_delete_batch(this.fd, keys, count, batchOpts());
    if (ret === -os.constants.errno.ENOENT) {
      // Some key was already gone (an LRU eviction, say): delete the rest one by one.
      for (let off = 0; off < keys.length; off += this.keySize) this.delete(keys.subarray(off, off + this.keySize));
      return;
    }
    check(`batch delete from map ${this.name}`, ret);
  }

  /** Every entry, read in chunks with BPF_MAP_LOOKUP_BATCH. */
  *entries(chunk = 4096): Generator<[Buffer, Buffer]> {
    const { ENOENT, ENOSPC } = os.constants.errno;
    let inTok: Buffer | null = null;
    const outTok = Buffer.alloc(Math.max(8, this.keySize));
    for (;;) {
      const keys = Buffer.alloc(chunk * this.keySize);
      const values = Buffer.alloc(chunk * this.valueSize);
      const count = [chunk];
      const ret = fns.map_lookup_batch(this.fd, inTok, outTok, keys, values, count, batchOpts());
      if (ret < 0 && ret !== -ENOENT) {
        if (ret === -ENOSPC && chunk < 1 << 20) {
          chunk *= 4; // one hash bucket holds more than a chunk: retry bigger
          continue;
        }
        check(`read map ${this.name}`, ret);
      }
      const got = count[0] ?? 0;
      // Views into this chunk's buffers: each chunk gets new ones, so they stay valid.
      for (let i = 0; i < got; i++) {
        yield [
          keys.subarray(i * this.keySize, (i + 1) * this.keySize),
          values.subarray(i * this.valueSize, (i + 1) * this.valueSize),
        ];
      }
      if (ret === -ENOENT) return;
      inTok = Buffer.from(outTok);
    }
  }

  close(): void {
    closeFd(this.fd);
  }
}

// ---- TCX links (an older agent's, taken down at start), programs by id, per-CPU maps, test runs ----

/** Detaches a link's program from its hook, whoever else still holds the link. */
export function detachLink(linkFd: number, what: string): void {
  check(`detach link ${what}`, fns.link_detach(linkFd));
}

/** The kernel's id of a loaded program. */
export function progId(progFd: number): number {
  return objInfo(progFd, 16, 'get program info').readUInt32LE(4);
}

/** An fd for a loaded program, by id; the caller closes it. */
export function progFdById(id: number): number {
  const fd = fns.prog_get_fd_by_id(id);
  if (fd < 0) throw new BpfError(`open program id ${id}`, -fd);
  return fd;
}

export interface TcxLinkInfo {
  type: number;
  id: number;
  progId: number;
  /** The device's ifindex; 0 once the device is gone (the link is then defunct). */
  ifindex: number;
  attachType: number;
}

/** A TCX link's info. */
export function tcxLinkInfo(fd: number): TcxLinkInfo {
  const { buf, head } = readLinkInfo(fd);
  return { ...head, ifindex: buf.readUInt32LE(16), attachType: buf.readUInt32LE(20) };
}

// ---- TC programs as clsact filters (cls_bpf, direct action) ----
//
// A filter is named by its device, hook, handle and priority; it lives as long as the device
// (or until removed), without any fd or pin holding it. Adding or replacing one costs a netlink
// round trip (well under a millisecond), where creating or detaching a TCX link waits for an RCU
// grace period.

export const BPF_TC_INGRESS = 1;
export const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;

export interface TcFilter {
  ifindex: number;
  /** BPF_TC_INGRESS or BPF_TC_EGRESS. */
  attachPoint: number;
  handle: number;
  priority: number;
}

/** struct bpf_tc_hook (24 bytes): sz, ifindex, attach_point, parent. */
function tcHook(ifindex: number, attachPoint: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(attachPoint, 12);
  return b;
}

/** struct bpf_tc_opts (32 bytes): sz, prog_fd, flags, prog_id, handle, priority. */
function tcOpts(f: TcFilter, progFd = 0, flags = 0): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(flags, 12);
  b.writeUInt32LE(f.handle, 20);
  b.writeUInt32LE(f.priority, 24);
  return b;
}

const { EEXIST, ENOENT, ENODEV, EINVAL } = os.constants.errno;

/** Adds the clsact qdisc to a device of the calling thread's network namespace, unless it has
 *  one already. */
export function tcHookCreate(ifindex: number, what: string): void {
  const ret = fns.tc_hook_create(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS));
  drainLog();
  if (ret < 0 && ret !== -EEXIST) throw new BpfError(what, -ret);
}

/** Puts a program in a clsact filter (direct action), atomically replacing the program of the
 *  filter there with the same handle and priority, if any. The clsact qdisc must exist. */
export function tcAttach(f: TcFilter, progFd: number, what: string): void {
  drainLog();
  const ret = fns.tc_attach(tcHook(f.ifindex, f.attachPoint), tcOpts(f, progFd, BPF_TC_F_REPLACE));
  const log = drainLog();
  if (ret < 0) throw new BpfError(what, -ret, log);
}

/** Removes a clsact filter. Returns false when there was none (or no such device). */
export function tcDetach(f: TcFilter, what: string): boolean {
  const ret = fns.tc_detach(tcHook(f.ifindex, f.attachPoint), tcOpts(f));
  const log = drainLog();
  if (ret === -ENOENT || ret === -ENODEV || ret === -EINVAL) return false;
  if (ret < 0) throw new BpfError(what, -ret, log);
  return true;
}

/** The id of the program in a clsact filter, or undefined when there is no such filter (or no
 *  clsact qdisc, or no such device). */
export function tcQuery(f: TcFilter, what: string): number | undefined {
  const opts = tcOpts(f);
  const ret = fns.tc_query(tcHook(f.ifindex, f.attachPoint), opts);
  const log = drainLog();
  if (ret === -ENOENT || ret === -ENODEV || ret === -EINVAL) return undefined;
  if (ret < 0) throw new BpfError(what, -ret, log);
  return opts.readUInt32LE(16);
}

/** The ifindex of an interface in the calling process's network namespace (sysfs may show
 *  another namespace's devices: it follows the mount, not the process). */
export function interfaceIndex(name: string): number | undefined {
  const ifindex = fns.if_nametoindex(name);
  return ifindex > 0 ? ifindex : undefined;
}

/** The name of a network interface of the calling thread's network namespace, if it exists. */
export function interfaceName(ifindex: number): string | undefined {
  const buf = Buffer.alloc(16);
  if (!fns.if_indextoname(ifindex, buf)) return undefined;
  return buf.toString('utf8', 0, buf.indexOf(0));
}

let cpuCount: number | undefined;

/** The number of possible CPUs: how many slots a per-CPU map value has. */
export function possibleCpus(): number {
  cpuCount ??= check('count possible CPUs', fns.num_possible_cpus());
  return cpuCount;
}

const PERCPU_MAP_TYPES = new Set([
  5 /* PERCPU_HASH */, 6 /* PERCPU_ARRAY */, 10 /* LRU_PERCPU_HASH */, 21 /* PERCPU_CGROUP_STORAGE */,
]);

export function isPerCpuMapType(type: number): boolean {
  return PERCPU_MAP_TYPES.has(type);
}

/** Bytes of one CPU's slot in a per-CPU value: the value size rounded up to 8. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

/** Opens a pinned map for RawMap's byte-level operations with value buffers sized as the kernel
 *  fills them: for a per-CPU map one 8-byte-aligned slot per possible CPU. (RawMap.openPinned
 *  sizes a value for one CPU, which is right for every other map type; for a per-CPU map the
 *  kernel would write past its buffers.) */
export function openPinnedMap(pinPath: string): RawMap {
  const fd = objGet(pinPath);
  try {
    const info = mapInfo(fd);
    const valueSize = isPerCpuMapType(info.type) ? perCpuStride(info.valueSize) * possibleCpus() : info.valueSize;
    return new RawMap(fd, info.keySize, valueSize, info.name);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

/** Splits a per-CPU value (as openPinnedMap's lookups return it) into one view per CPU. */
export function perCpuSlots(value: Buffer, valueSize: number): Buffer[] {
  const stride = perCpuStride(valueSize);
  const out: Buffer[] = [];
  for (let off = 0; off + valueSize <= value.length; off += stride) out.push(value.subarray(off, off + valueSize));
  return out;
}

export interface TestRunResult {
  /** The program's return code. */
  retval: number;
  /** The packet as the program left it. */
  dataOut: Buffer;
}

/** Runs a program on a packet with BPF_PROG_TEST_RUN, `repeat` times in the kernel (once by
 *  default). For a TC program the packet starts with its Ethernet header (at least 14 bytes),
 *  and the program sees it on the loopback device of the calling thread's network namespace
 *  (skb->ifindex 1). */
export function progTestRun(progFd: number, data: Buffer, what: string, repeat = 1): TestRunResult {
  const dataIn = Buffer.alloc(data.length);
  data.copy(dataIn);
  const dataOut = Buffer.alloc(data.length + 512);
  // struct bpf_test_run_opts (libbpf 1.1): sz, data_in, data_out, data_size_in, data_size_out,
  // ctx_in, ctx_out, ctx_size_in, ctx_size_out, retval, repeat, duration, flags, cpu, batch_size.
  const opts = Buffer.alloc(80);
  opts.writeBigUInt64LE(80n, 0);
  opts.writeBigUInt64LE(koffi.address(dataIn), 8);
  opts.writeBigUInt64LE(koffi.address(dataOut), 16);
  opts.writeUInt32LE(dataIn.length, 24);
  opts.writeUInt32LE(dataOut.length, 28);
  opts.writeInt32LE(repeat, 60);
  check(`test run ${what}`, fns.prog_test_run_opts(progFd, opts));
  return { retval: opts.readUInt32LE(56), dataOut: dataOut.subarray(0, opts.readUInt32LE(28)) };
}
