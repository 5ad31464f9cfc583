// HPACK (RFC 7541) for the proxy's HTTP/2 connections: one decoder and one encoder per
// connection, run for every header block in both directions, so both sides are written to
// allocate nothing per field beyond the strings a decoded list must hold.
import { huffmanDecode, huffmanEncode, huffmanLength, huffmanMaxDecoded } from './huffman.js';

/** Malformed input: the connection answers with GOAWAY COMPRESSION_ERROR and is not used again,
 *  so the decoder's state after a throw does not matter. */
export class HpackError extends Error {
  override name = 'HpackError';
}

// Node's Buffer has these (what toString('latin1') and write(.., 'latin1') end in) without the
// encoding dispatch; @types/node does not declare them.
interface Latin1Buffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length: number): number;
}

// prettier-ignore
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''],
  ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''],
  ['content-length', ''], ['content-location', ''], ['content-range', ''], ['content-type', ''],
  ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''],
  ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
  ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''],
  ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''],
  ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''],
  ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_LEN = STATIC_TABLE.length; // 61
// 1-based, like HPACK indexes, so a lookup is one bounds test and one load.
const STATIC_NAMES = ['', ...STATIC_TABLE.map((e) => e[0])];
const STATIC_VALUES = ['', ...STATIC_TABLE.map((e) => e[1])];

const ENTRY_OVERHEAD = 32; // §4.1

/** Bytes of `v` as an HPACK integer after a prefix whose all-ones value is `mask` (§5.1). */
function intLength(v: number, mask: number): number {
  if (v < mask) return 1;
  let n = 2;
  for (v -= mask; v >= 128; v >>>= 7) n++;
  return n;
}

/** Writes `v` as an HPACK integer with the prefix bits `first` and prefix `mask` (§5.1). */
function writeInt(dst: Buffer, o: number, first: number, mask: number, v: number): number {
  if (v < mask) {
    dst[o] = first | v;
    return o + 1;
  }
  dst[o++] = first | mask;
  for (v -= mask; v >= 128; v >>>= 7) dst[o++] = (v & 0x7f) | 0x80;
  dst[o] = v;
  return o + 1;
}

/** A new ring's slots: most connections' tables hold a few entries, and a full-size ring (128
 *  slots each for names and values, both sides) was 4 KB of every idle connection. */
const RING_START = 16;

/** A dynamic table's entries as a ring by insertion number: entry k (from 0) is at k & mask,
 *  so an insert or eviction moves no other entry. Entries are >= 32 octets, so the ring never
 *  holds more than the table's size / 32; it starts at RING_START slots and doubles when full. */
abstract class EntryRing {
  protected names = new Array<string>(RING_START).fill('');
  protected values = new Array<string>(RING_START).fill('');
  protected mask = RING_START - 1;
  /** Entries inserted so far, and of them still in the table (the newest `count`). */
  protected inserted = 0;
  protected count = 0;

  /** Before an insert: a slot for the next entry, the ring doubled if every slot is taken. */
  protected nextSlot(): number {
    if (this.count === this.names.length) {
      const oldMask = this.mask;
      const mask = this.names.length * 2 - 1;
      const names = new Array<string>(mask + 1).fill('');
      const values = new Array<string>(mask + 1).fill('');
      for (let k = this.inserted - this.count; k < this.inserted; k++) {
        names[k & mask] = this.names[k & oldMask]!;
        values[k & mask] = this.values[k & oldMask]!;
      }
      this.names = names;
      this.values = values;
      this.mask = mask;
    }
    return this.inserted & this.mask;
  }
}

/** Where Huffman strings are decoded, then copied out as strings: one for the process, as
 *  decoding never yields. */
let huffmanScratch = Buffer.allocUnsafe(256) as Latin1Buffer;

export class HpackDecoder extends EntryRing {
  private readonly limit: number;
  private maxSize: number;
  private size = 0;
  private pos = 0; // where the integer or string just read ended

  constructor(maxTableSize = 4096) {
    super();
    this.limit = maxTableSize;
    this.maxSize = maxTableSize;
  }

  /** `start`, `stop`: the block's bounds in `block` (a frame's payload read in place). */
  decode(block: Buffer | Uint8Array, out: string[], maxListSize: number, start = 0, stop = block.length): number {
    const buf = (
      Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength)
    ) as Latin1Buffer;
    const end = stop;
    let pos = start;
    let listSize = 0;
    let fields = false;
    while (pos < end) {
      const b = buf[pos]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed field (§6.1): the table's own strings, no copy.
        const index = this.int(buf, pos, end, 0x7f);
        pos = this.pos;
        if (index <= STATIC_LEN) {
          if (index === 0) throw new HpackError('index 0');
          name = STATIC_NAMES[index]!;
          value = STATIC_VALUES[index]!;
        } else {
          const slot = this.slot(index);
          name = this.names[slot]!;
          value = this.values[slot]!;
        }
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3). After a field it is an error (§4.2): the encoder
        // must signal a change before the first field of a block.
        if (fields) throw new HpackError('table size update after a header field');
        const n = this.int(buf, pos, end, 0x1f);
        pos = this.pos;
        if (n > this.limit) throw new HpackError(`table size update to ${n} above ${this.limit}`);
        this.maxSize = n;
        this.evictTo(n);
        continue;
      } else {
        // Literal (§6.2): with incremental indexing 01xxxxxx, without 0000xxxx, never indexed
        // 0001xxxx; name given by index, or as a string if the index is 0.
        const indexing = (b & 0x40) !== 0;
        const index = this.int(buf, pos, end, indexing ? 0x3f : 0x0f);
        pos = this.pos;
        if (index === 0) {
          name = this.string(buf, pos, end);
          pos = this.pos;
        } else if (index <= STATIC_LEN) {
          name = STATIC_NAMES[index]!;
        } else {
          name = this.names[this.slot(index)]!;
        }
        // Before reading a value that may be long: a name alone can already be over the limit.
        if (listSize + name.length + ENTRY_OVERHEAD > maxListSize) throw new HpackError('header list too large');
        value = this.string(buf, pos, end);
        pos = this.pos;
        // The name was taken before the insert evicts anything, as §4.4 asks.
        if (indexing) this.insert(name, value);
      }
      fields = true;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      // Per field, so a block of one-octet references to a large entry stops at the limit.
      if (listSize > maxListSize) throw new HpackError('header list too large');
      out.push(name, value);
    }
    return listSize;
  }

  /** Slot in the ring of dynamic index `index` (> 61). */
  private slot(index: number): number {
    const age = index - STATIC_LEN - 1; // 0 = the newest entry
    if (age >= this.count) throw new HpackError(`index ${index} past the table`);
    return (this.inserted - 1 - age) & this.mask;
  }

  /** Reads an integer (§5.1) at buf[pos] with prefix `mask`; leaves the end in this.pos. */
  private int(buf: Buffer, pos: number, end: number, mask: number): number {
    let v = buf[pos++]! & mask;
    if (v === mask) {
      // Float arithmetic, so 35 bits of continuation cannot wrap before the range test.
      let m = 1;
      let c: number;
      let n = 0;
      do {
        if (pos >= end) throw new HpackError('integer past the end of the block');
        if (++n > 5) throw new HpackError('integer too long');
        c = buf[pos++]!;
        v += (c & 0x7f) * m;
        m *= 128;
      } while (c & 0x80);
      if (v > 0x80000000) throw new HpackError('integer overflow');
    }
    this.pos = pos;
    return v;
  }

  /** Reads a string literal (§5.2) at buf[pos]; leaves the end in this.pos. */
  private string(buf: Latin1Buffer, pos: number, end: number): string {
    if (pos >= end) throw new HpackError('string past the end of the block');
    const huffman = buf[pos]! & 0x80;
    const len = this.int(buf, pos, end, 0x7f);
    const start = this.pos;
    if (len > end - start) throw new HpackError('string past the end of the block');
    this.pos = start + len;
    if (!huffman) return buf.latin1Slice(start, start + len);
    const room = huffmanMaxDecoded(len);
    if (huffmanScratch.length < room)
      huffmanScratch = Buffer.allocUnsafe(Math.max(room, huffmanScratch.length * 2)) as Latin1Buffer;
    const n = huffmanDecode(buf, start, start + len, huffmanScratch);
    if (n < 0) throw new HpackError('invalid Huffman string');
    return huffmanScratch.latin1Slice(0, n);
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (§4.4).
    this.evictTo(Math.max(0, this.maxSize - size));
    if (size > this.maxSize) return;
    const slot = this.nextSlot();
    this.names[slot] = name;
    this.values[slot] = value;
    this.inserted++;
    this.count++;
    this.size += size;
  }

  private evictTo(max: number): void {
    while (this.size > max) {
      const slot = (this.inserted - this.count) & this.mask;
      this.size -= this.names[slot]!.length + this.values[slot]!.length + ENTRY_OVERHEAD;
      // Drop the strings, so an evicted large value can be collected.
      this.names[slot] = this.values[slot] = '';
      this.count--;
    }
  }
}

// How the encoder represents a field whose (name, value) is not already in a table.
const INDEX = 0; // literal with incremental indexing
const NO_INDEX = 1; // literal without indexing: values that rarely repeat would only churn the table
const NEVER = 2; // literal never indexed (§7.1.3): credentials an intermediary must not index either
const COOKIE = 3; // NEVER below 20 octets (guessable, the CRIME concern), INDEX from there, as nghttp2

// Name -> its first static index | policy << 8: one map lookup per field answers both.
const NAME_INFO = new Map<string, number>();
// Static index of a name -> (value -> index of that exact static entry).
const STATIC_PAIRS: Map<string, number>[] = [];
for (let i = 1; i <= STATIC_LEN; i++) {
  const [name, value] = STATIC_TABLE[i - 1]!;
  if (!NAME_INFO.has(name)) NAME_INFO.set(name, i);
  (STATIC_PAIRS[NAME_INFO.get(name)!] ??= new Map()).set(value, i);
}
// prettier-ignore
for (const [names, policy] of [
  [
    // Per request or per resource: new values nearly every time.
    [':path', 'content-length', 'date', 'age', 'etag', 'last-modified', 'if-modified-since', 'if-none-match',
     'location', 'expires', 'x-request-id', 'traceparent', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid',
     'x-amzn-trace-id'],
    NO_INDEX,
  ],
  [[':status'], NO_INDEX], // the common ones are static entries, looked up first
  [['authorization', 'proxy-authorization', 'set-cookie'], NEVER],
  [['cookie'], COOKIE],
] as const) {
  for (const name of names) NAME_INFO.set(name, (NAME_INFO.get(name) ?? 0) | (policy << 8));
}
// The peer's SETTINGS_HEADER_TABLE_SIZE is only a ceiling: a larger table costs memory on every
// connection for little gain, so the encoder never uses more than the protocol's default.
const ENCODER_MAX_TABLE = 4096;

/** The dynamic entries of one name: the newest one's insertion number (for a name reference)
 *  and, per value, the newest insertion number of that exact field. */
interface DynName {
  newest: number;
  values: Map<string, number>;
}

export class HpackEncoder extends EntryRing {
  private readonly huffman: boolean;
  private maxSize = 4096;
  private size = 0;
  // The dynamic table: the ring plus maps from name and value to insertion numbers, so a
  // field's index is 62 + (newest number - its number).
  private readonly dyn = new Map<string, DynName>();
  // Entries a block inserts wait here until the whole block has fitted into `dst`, so that a
  // block that does not fit leaves the table as it was. Until then they are counted for
  // indexes and evictions but not looked up (a field repeated within one block is sent again).
  private readonly pendingNames: string[] = [];
  private readonly pendingValues: string[] = [];
  private pending = 0;
  // A size update owed to the peer: the lowest size since the last block, then the final one.
  private updateMin = -1;
  private updateFinal = 0;
  private scratch: Buffer | undefined; // for encode()

  constructor(options: { huffman?: boolean } = {}) {
    super();
    this.huffman = options.huffman ?? false;
  }

  setMaxTableSize(n: number): void {
    const size = Math.min(n, ENCODER_MAX_TABLE);
    if (this.updateMin < 0) {
      if (size === this.maxSize) return;
      this.updateMin = size;
    } else {
      this.updateMin = Math.min(this.updateMin, size);
    }
    this.updateFinal = size;
  }

  encodeInto(headers: readonly string[], dst: Buffer, offset: number): number {
    if (headers.length & 1) throw new RangeError('headers must be name, value pairs');
    const end = dst.length;
    let o = offset;
    // The table as this block leaves it: its size limit, its size, and the insertion number of
    // its oldest entry (those before are evicted; numbers from this.inserted on are pending).
    let maxSize = this.maxSize;
    let size = this.size;
    let oldest = this.inserted - this.count;
    if (this.updateMin >= 0) {
      // §4.2: if the size went down and back up since the last block, the peer's decoder must
      // see the minimum first (nghttp2 insists), because it may already have evicted to it.
      const min = this.updateMin;
      const final = this.updateFinal;
      if (o + (min < final ? intLength(min, 0x1f) : 0) + intLength(final, 0x1f) > end) return -1;
      if (min < final) o = writeInt(dst, o, 0x20, 0x1f, min);
      o = writeInt(dst, o, 0x20, 0x1f, final);
      for (; size > min; oldest++) size -= this.entrySize(oldest);
      maxSize = final;
    }
    this.pending = 0;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      const info = NAME_INFO.get(name) ?? 0;
      const staticIndex = info & 0xff;
      let policy = info >>> 8;
      if (staticIndex !== 0 && policy !== NEVER) {
        const full = STATIC_PAIRS[staticIndex]!.get(value);
        if (full !== undefined) {
          if (o >= end) return -1;
          dst[o++] = 0x80 | full;
          continue;
        }
      }
      const entrySize = name.length + value.length + ENTRY_OVERHEAD;
      if (policy === COOKIE) policy = value.length < 20 ? NEVER : INDEX;
      // Above 3/4 of the table an entry would flush most of what is worth keeping.
      if (policy === INDEX && entrySize * 4 > maxSize * 3) policy = NO_INDEX;

      const newest = this.inserted + this.pending - 1;
      let nameIndex = staticIndex;
      const d = this.dyn.get(name);
      if (d !== undefined) {
        // Only INDEX fields are ever inserted, so a NEVER field cannot match here.
        const at = d.values.get(value);
        if (at !== undefined && at >= oldest) {
          const index = STATIC_LEN + 1 + newest - at;
          if (o + intLength(index, 0x7f) > end) return -1;
          o = writeInt(dst, o, 0x80, 0x7f, index);
          continue;
        }
        if (nameIndex === 0 && d.newest >= oldest) nameIndex = STATIC_LEN + 1 + newest - d.newest;
      }

      const first = policy === INDEX ? 0x40 : policy === NEVER ? 0x10 : 0;
      const mask = policy === INDEX ? 0x3f : 0x0f;
      if (nameIndex !== 0) {
        if (o + intLength(nameIndex, mask) > end) return -1;
        o = writeInt(dst, o, first, mask, nameIndex);
      } else {
        if (o >= end) return -1;
        dst[o++] = first;
        if ((o = this.string(name, dst, o)) < 0) return -1;
      }
      if ((o = this.string(value, dst, o)) < 0) return -1;

      if (policy === INDEX) {
        this.pendingNames[this.pending] = name;
        this.pendingValues[this.pending] = value;
        this.pending++;
        for (size += entrySize; size > maxSize; oldest++) size -= this.entrySize(oldest);
      }
    }
    this.commit();
    return o;
  }

  encode(headers: readonly string[]): Buffer {
    let scratch = (this.scratch ??= Buffer.allocUnsafe(1024));
    let n: number;
    while ((n = this.encodeInto(headers, scratch, 0)) < 0)
      scratch = this.scratch = Buffer.allocUnsafe(scratch.length * 2);
    return Buffer.from(scratch.subarray(0, n));
  }

  /** Writes a string literal (§5.2), Huffman-coded when enabled and shorter; -1 if no room. */
  private string(s: string, dst: Buffer, o: number): number {
    const len = s.length;
    if (this.huffman) {
      const hlen = huffmanLength(s);
      if (hlen < len) {
        if (o + intLength(hlen, 0x7f) + hlen > dst.length) return -1;
        return huffmanEncode(s, dst, writeInt(dst, o, 0x80, 0x7f, hlen));
      }
    }
    if (o + intLength(len, 0x7f) + len > dst.length) return -1;
    o = writeInt(dst, o, 0, 0x7f, len);
    // A JS loop beats the call into C++ for the short strings most header fields are.
    if (len <= 16) {
      for (let i = 0; i < len; i++) dst[o + i] = s.charCodeAt(i);
    } else {
      (dst as Latin1Buffer).latin1Write(s, o, len);
    }
    return o + len;
  }

  /** Size of the entry with insertion number `k`, committed or pending. */
  private entrySize(k: number): number {
    if (k >= this.inserted) {
      const p = k - this.inserted;
      return this.pendingNames[p]!.length + this.pendingValues[p]!.length + ENTRY_OVERHEAD;
    }
    const slot = k & this.mask;
    return this.names[slot]!.length + this.values[slot]!.length + ENTRY_OVERHEAD;
  }

  /** The block fitted: apply its size update and inserts, in the order the peer's decoder will. */
  private commit(): void {
    if (this.updateMin >= 0) {
      this.evictTo(Math.min(this.updateMin, this.updateFinal));
      this.maxSize = this.updateFinal;
      this.updateMin = -1;
    }
    for (let p = 0; p < this.pending; p++) {
      const name = this.pendingNames[p]!;
      const value = this.pendingValues[p]!;
      const size = name.length + value.length + ENTRY_OVERHEAD;
      this.evictTo(this.maxSize - size); // >= 0: only entries up to 3/4 of the table are added
      const slot = this.nextSlot();
      const k = this.inserted++;
      this.names[slot] = name;
      this.values[slot] = value;
      this.count++;
      this.size += size;
      const d = this.dyn.get(name);
      if (d === undefined) this.dyn.set(name, { newest: k, values: new Map([[value, k]]) });
      else {
        d.newest = k;
        d.values.set(value, k);
      }
      this.pendingNames[p] = this.pendingValues[p] = '';
    }
    this.pending = 0;
  }

  private evictTo(max: number): void {
    while (this.size > max) {
      const k = this.inserted - this.count;
      const slot = k & this.mask;
      const name = this.names[slot]!;
      const value = this.values[slot]!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
      this.count--;
      this.names[slot] = this.values[slot] = '';
      const d = this.dyn.get(name)!;
      // Entries go oldest first: if this was the name's newest, it was its last.
      if (d.newest === k) this.dyn.delete(name);
      else if (d.values.get(value) === k) d.values.delete(value);
    }
  }
}
