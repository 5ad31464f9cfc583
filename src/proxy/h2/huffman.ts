// The HPACK Huffman code (RFC 7541 Appendix B): an encoder, and a decoder driven by a table of
// 4-bit transitions built once at module load (the nghttp2 approach). Decoding is the hot side:
// almost every HTTP/2 client Huffman-codes its header strings, so the decoder does two array
// loads per input byte and never branches on the data except at the end of the string.

// Code and bit length of every symbol, 0..255 and 256 = EOS, exactly as Appendix B lists them.
// The code is canonical (codes of one length are consecutive, ordered by symbol); the unit
// test checks that, and that the code is complete, which is what makes a one-time table of the
// code tree sound.
// prettier-ignore
export const HUFFMAN_CODES: readonly number[] = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, // 0
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, // 8
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, // 16
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, // 24
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, // 32
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, // 40
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, // 48
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, // 56
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, // 64
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, // 72
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, // 80
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, // 88
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, // 96
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, // 104
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, // 112
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, // 120
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, // 128
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, // 136
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, // 144
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, // 152
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, // 160
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, // 168
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, // 176
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, // 184
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, // 192
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, // 200
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, // 208
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, // 216
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, // 224
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, // 232
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, // 240
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee, // 248
  0x3fffffff, // 256
];
// prettier-ignore
export const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240
  30, // 256
];

const CODE = Uint32Array.from(HUFFMAN_CODES);
const LEN = Uint8Array.from(HUFFMAN_LENGTHS);

/** Octets the latin1 byte string `s` takes Huffman-coded. */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += LEN[s.charCodeAt(i) & 0xff]!;
  return (bits + 7) >>> 3;
}

/** Writes `s` Huffman-coded at dst[offset]; the caller has made room for huffmanLength(s)
 *  octets. Returns the offset after it. */
export function huffmanEncode(s: string, dst: Uint8Array, offset: number): number {
  // `acc` holds the `n` < 8 bits not yet written. Appending at most 24 bits at a time keeps it
  // within 32 bits, so codes longer than that (only control and some high octets) go in two steps.
  let acc = 0;
  let n = 0;
  let o = offset;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let code = CODE[sym]!;
    let len = LEN[sym]!;
    if (len > 24) {
      acc = (acc << (len - 16)) | (code >>> 16);
      n += len - 16;
      while (n >= 8) dst[o++] = acc >>> (n -= 8);
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    n += len;
    while (n >= 8) dst[o++] = acc >>> (n -= 8);
    acc &= (1 << n) - 1;
  }
  // Pad with the most significant bits of EOS (all ones), as §5.2 requires.
  if (n > 0) dst[o++] = (acc << (8 - n)) | (0xff >>> n);
  return o;
}

// The decoder walks the code tree 4 bits at a time. A state is an internal node of the tree
// (256 of them, 0 = the root) or DEAD, entered when EOS is decoded: a string containing EOS is
// an error (§5.2), and making that a trap state instead of a flag saves a test per nibble.
// Entry = next state << 4 (so the next lookup is a mask and an OR) | the octet emitted on the
// way << 16 | EMIT | ACCEPT when the next state may end a string: the root, or a node reached
// from it by at most 7 one-bits, i.e. a valid padding.
const DEAD = 256;
const STATE = 0x1ff0;
const EMIT = 1 << 24;
const ACCEPT = 1 << 25;
const TRANSITIONS = buildTransitions();

function buildTransitions(): Uint32Array {
  // kids[2 * node + bit]: an internal node (> 0; the root is nobody's child) or ~symbol for a leaf.
  const kids = new Int32Array(512);
  let nodes = 1;
  for (let sym = 0; sym <= 256; sym++) {
    const code = CODE[sym]!;
    let node = 0;
    for (let i = LEN[sym]! - 1; i > 0; i--) {
      const k = 2 * node + ((code >>> i) & 1);
      if (kids[k] === 0) kids[k] = nodes++;
      node = kids[k]!;
    }
    kids[2 * node + (code & 1)] = ~sym;
  }
  const accepting = new Uint8Array(DEAD + 1);
  for (let node = 0, depth = 0; depth <= 7; depth++, node = kids[2 * node + 1]!) accepting[node] = 1;

  const table = new Uint32Array((DEAD + 1) * 16).fill(DEAD << 4);
  for (let state = 0; state < DEAD; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0 && node !== DEAD; bit--) {
        const k = kids[2 * node + ((nibble >>> bit) & 1)]!;
        if (k > 0) node = k;
        else if (~k === 256) node = DEAD;
        else {
          entry = EMIT | (~k << 16); // codes are >= 5 bits: at most one octet per nibble
          node = 0;
        }
      }
      table[state * 16 + nibble] = node === DEAD ? DEAD << 4 : entry | (node << 4) | (accepting[node] ? ACCEPT : 0);
    }
  }
  return table;
}

/** Room `huffmanDecode` needs in its output for `n` encoded octets (codes are >= 5 bits long;
 *  the decoder also stores, and then ignores, one octet past the end). */
export function huffmanMaxDecoded(n: number): number {
  return ((n * 8) / 5 + 1) | 0;
}

/** Decodes src[start, end) into dst from index 0. Returns the number of octets decoded, or -1
 *  when the string is invalid: it contains EOS, or its padding is over 7 bits or not all ones. */
export function huffmanDecode(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  const t = TRANSITIONS;
  let e = ACCEPT; // the root: an empty string is valid
  let n = 0;
  for (let i = start; i < end; i++) {
    const b = src[i]!;
    // Branch-free emit: always store the octet, advance only if there was one.
    e = t[(e & STATE) | (b >>> 4)]!;
    dst[n] = e >>> 16;
    n += (e >>> 24) & 1;
    e = t[(e & STATE) | (b & 15)]!;
    dst[n] = e >>> 16;
    n += (e >>> 24) & 1;
  }
  return e & ACCEPT ? n : -1;
}
