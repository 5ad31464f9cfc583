// HPACK (src/proxy/h2/hpack.ts, huffman.ts): the RFC 7541 Appendix C examples, encoder/decoder
// round trips, malformed input, and interop with node's own HTTP/2 (nghttp2) in both directions.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { HpackDecoder, HpackEncoder, HpackError } from '../../src/proxy/h2/hpack.js';
import {
  HUFFMAN_CODES,
  HUFFMAN_LENGTHS,
  huffmanDecode,
  huffmanEncode,
  huffmanLength,
  huffmanMaxDecoded,
} from '../../src/proxy/h2/huffman.js';
import { seeded } from '../harness/seeded.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const BIG = 1 << 30; // a list size limit that does not get in the way

/** Decodes `block`, asserting the returned list size is what RFC 9113 §6.5.2 counts. */
function decode(d: HpackDecoder, block: Buffer, max = BIG): string[] {
  const out: string[] = [];
  const size = d.decode(block, out, max);
  assert.equal(size, listSize(out));
  return out;
}

function listSize(h: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < h.length; i += 2) n += h[i]!.length + h[i + 1]!.length + 32;
  return n;
}

function huff(s: string): Buffer {
  const b = Buffer.alloc(huffmanLength(s));
  assert.equal(huffmanEncode(s, b, 0), b.length);
  return b;
}

function unhuff(b: Buffer): string | null {
  const out = Buffer.alloc(huffmanMaxDecoded(b.length));
  const n = huffmanDecode(b, 0, b.length, out);
  return n < 0 ? null : out.toString('latin1', 0, n);
}

describe('Huffman code', () => {
  it('is the canonical, complete code of Appendix B', () => {
    assert.equal(HUFFMAN_CODES.length, 257);
    const bySize = [...Array(257).keys()].sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
    let code = 0;
    let kraft = 0;
    bySize.forEach((sym, i) => {
      if (i > 0) code = (code + 1) * 2 ** (HUFFMAN_LENGTHS[sym]! - HUFFMAN_LENGTHS[bySize[i - 1]!]!);
      assert.equal(HUFFMAN_CODES[sym], code, `code of ${sym}`);
      kraft += 2 ** (30 - HUFFMAN_LENGTHS[sym]!);
    });
    assert.equal(kraft, 2 ** 30);
    // Spot checks against the RFC text.
    assert.deepEqual([HUFFMAN_CODES[48], HUFFMAN_LENGTHS[48]], [0x0, 5]); // '0'
    assert.deepEqual([HUFFMAN_CODES[97], HUFFMAN_LENGTHS[97]], [0x3, 5]); // 'a'
    assert.deepEqual([HUFFMAN_CODES[256], HUFFMAN_LENGTHS[256]], [0x3fffffff, 30]); // EOS
  });

  it('encodes the strings of Appendix C.4 and C.6 as the RFC does', () => {
    for (const [s, h] of [
      ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
      ['no-cache', 'a8eb 1064 9cbf'],
      ['custom-key', '25a8 49e9 5ba9 7d7f'],
      ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
      ['302', '6402'],
      ['private', 'aec3 771a 4b'],
      ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
      ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
      ['', ''],
    ] as const) {
      assert.deepEqual(huff(s), hex(h), s);
      assert.equal(unhuff(hex(h)), s);
    }
  });

  it('round-trips every octet and random strings', () => {
    const all = String.fromCharCode(...Array(256).keys());
    assert.equal(unhuff(huff(all)), all);
    const rand = seeded(7);
    for (let i = 0; i < 2000; i++) {
      const s = String.fromCharCode(...Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)));
      assert.equal(unhuff(huff(s)), s);
    }
  });

  it('rejects EOS, padding over 7 bits, and padding that is not all ones', () => {
    assert.equal(unhuff(hex('ffffffff')), null, 'EOS (30 ones) inside');
    assert.equal(unhuff(hex('1fff')), null, "'a' then 11 bits of padding");
    assert.equal(unhuff(hex('ff')), null, '8 bits of padding alone');
    assert.equal(unhuff(hex('18')), null, "'a' then padding 000");
    assert.equal(unhuff(hex('1f')), 'a', "'a' then padding 111");
    assert.equal(unhuff(hex('fe')), null, "a 7-bit prefix of a code that is not EOS's");
  });
});

describe('HpackDecoder: RFC 7541 Appendix C', () => {
  it('C.2.1–C.2.4: single representations', () => {
    let d = new HpackDecoder();
    assert.deepEqual(decode(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), [
      'custom-key',
      'custom-header',
    ]);
    assert.deepEqual(decode(d, hex('be')), ['custom-key', 'custom-header'], 'C.2.1 added it to the table');

    d = new HpackDecoder();
    assert.deepEqual(decode(d, hex('040c 2f73 616d 706c 652f 7061 7468')), [':path', '/sample/path']);
    assert.throws(() => decode(d, hex('be')), HpackError, 'C.2.2 leaves the table empty');

    d = new HpackDecoder();
    assert.deepEqual(decode(d, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')), ['password', 'secret']);
    assert.throws(() => decode(d, hex('be')), HpackError, 'C.2.3 leaves the table empty');

    assert.deepEqual(decode(new HpackDecoder(), hex('82')), [':method', 'GET']);
  });

  const requests = [
    [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'],
    [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com', 'cache-control', 'no-cache'],
    [
      ':method',
      'GET',
      ':scheme',
      'https',
      ':path',
      '/index.html',
      ':authority',
      'www.example.com',
      'custom-key',
      'custom-value',
    ],
  ];
  const c3 = [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '8286 84be 5808 6e6f 2d63 6163 6865',
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
  ];
  const c4 = [
    '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
    '8286 84be 5886 a8eb 1064 9cbf',
    '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
  ];

  for (const [name, blocks] of [
    ['C.3 (requests)', c3],
    ['C.4 (requests, Huffman)', c4],
  ] as const) {
    it(`${name}: one decoder carries its table across the blocks`, () => {
      const d = new HpackDecoder();
      blocks.forEach((b, i) => assert.deepEqual(decode(d, hex(b)), requests[i]));
      // The table is now [62] custom-key: custom-value, [63] cache-control: no-cache,
      // [64] :authority: www.example.com (164 octets).
      assert.deepEqual(decode(d, hex('bebf c0')), [
        'custom-key',
        'custom-value',
        'cache-control',
        'no-cache',
        ':authority',
        'www.example.com',
      ]);
      assert.throws(() => decode(d, hex('c1')), HpackError);
    });
  }

  const responses = [
    [
      ':status',
      '302',
      'cache-control',
      'private',
      'date',
      'Mon, 21 Oct 2013 20:13:21 GMT',
      'location',
      'https://www.example.com',
    ],
    [
      ':status',
      '307',
      'cache-control',
      'private',
      'date',
      'Mon, 21 Oct 2013 20:13:21 GMT',
      'location',
      'https://www.example.com',
    ],
    [
      ':status',
      '200',
      'cache-control',
      'private',
      'date',
      'Mon, 21 Oct 2013 20:13:22 GMT',
      'location',
      'https://www.example.com',
      'content-encoding',
      'gzip',
      'set-cookie',
      'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
    ],
  ];
  const c5 = [
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
     3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
    '4803 3330 37c1 c0bf',
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970
     7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61
     6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
  ];
  const c6 = [
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad
     1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
    '4883 640e ffc1 c0bf',
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2
     e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
  ];

  for (const [name, blocks] of [
    ['C.5 (responses)', c5],
    ['C.6 (responses, Huffman)', c6],
  ] as const) {
    it(`${name}: a 256-octet table, with evictions`, () => {
      const d = new HpackDecoder(256);
      blocks.forEach((b, i) => assert.deepEqual(decode(d, hex(b)), responses[i]));
      // C.5.3 leaves [62] set-cookie (98), [63] content-encoding: gzip (52), [64] date (65):
      // 215 octets, everything older evicted.
      assert.deepEqual(decode(d, hex('bebf c0')), [
        'set-cookie',
        responses[2]![11],
        'content-encoding',
        'gzip',
        'date',
        'Mon, 21 Oct 2013 20:13:22 GMT',
      ]);
      assert.throws(() => decode(d, hex('c1')), HpackError);
      // 215 + 42 > 256: adding :status: 307 evicts exactly the date entry (the sizes add up).
      assert.deepEqual(decode(d, hex('4803 3330 37')), [':status', '307']);
      assert.deepEqual(decode(d, hex('bebf c0')), [
        ':status',
        '307',
        'set-cookie',
        responses[2]![11],
        'content-encoding',
        'gzip',
      ]);
      assert.throws(() => decode(d, hex('c1')), HpackError);
    });
  }

  it('C.3 and C.4 come out of the encoder byte for byte (without and with Huffman)', () => {
    for (const [huffman, blocks] of [
      [false, c3],
      [true, c4],
    ] as const) {
      const e = new HpackEncoder({ huffman });
      requests.forEach((h, i) => assert.deepEqual(e.encode(h), hex(blocks[i]!), `huffman ${huffman}, block ${i}`));
    }
  });
});

describe('HpackDecoder: malformed input', () => {
  const cases: [string, string, RegExp][] = [
    ['index 0', '80', /index 0/],
    ['dynamic index past an empty table', 'be', /past the table/],
    ['literal whose name index is past the table', '7e 0161', /past the table/],
    ['literal without indexing, name index past the table', '0f2f 0161', /past the table/],
    ['integer above 2^31', 'ffff ffff ff0f', /overflow/],
    ['integer with 6 continuation octets', 'ff80 8080 8080 00', /too long/],
    ['integer cut off by the block end', 'ff80', /integer past the end/],
    ['string past the end', '4005 6162', /string past the end/],
    ['name string missing', '40', /string past the end/],
    ['value string missing', '4001 61', /string past the end/],
    ['Huffman name containing EOS', '0084 ffff ffff 00', /Huffman/],
    ['Huffman padding over 7 bits', '0082 1fff 00', /Huffman/],
    ['Huffman padding not all ones', '0081 1800', /Huffman/],
    ['table size update above the limit (4097)', '3fe2 1f', /above 4096/],
    ['table size update after a field', '8220', /after a header field/],
  ];
  for (const [what, block, message] of cases) {
    it(`throws HpackError: ${what}`, () => {
      assert.throws(
        () => new HpackDecoder().decode(hex(block), [], BIG),
        (err: unknown) => {
          assert.ok(err instanceof HpackError, String(err));
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  it('accepts size updates up to the limit at the block start, and 5 continuation octets', () => {
    const d = new HpackDecoder();
    assert.deepEqual(decode(d, hex('3fe1 1f 20 3fe1 1f 82')), [':method', 'GET'], 'size updates (4096, 0, 4096) first');
    assert.deepEqual(
      decode(d, hex('3f81 8080 8000 82')),
      [':method', 'GET'],
      'an integer (32) with 5 continuation octets',
    );
  });

  it('enforces maxListSize, before a long list is built', () => {
    const block = hex('828684'); // 3 fields: 42 + 43 + 38 = 123 octets
    assert.equal(new HpackDecoder().decode(block, [], 123), 123);
    assert.throws(() => new HpackDecoder().decode(block, [], 122), /too large/);

    // One 3037-octet entry, then a block referencing it 1000 times in 1000 octets.
    const d = new HpackDecoder();
    assert.deepEqual(decode(d, new HpackEncoder().encode(['x-big', 'v'.repeat(3000)])), ['x-big', 'v'.repeat(3000)]);
    assert.equal(d.decode(hex('bebe'), [], BIG), 2 * 3037, 'it is in the table');
    const out: string[] = [];
    assert.throws(() => d.decode(Buffer.alloc(1000, 0xbe), out, 16384), /too large/);
    assert.equal(out.length, 2 * 5, 'stopped at the field that crossed the limit');

    // A literal whose name alone is over the limit fails before its value is read.
    assert.throws(
      () => new HpackDecoder().decode(Buffer.concat([hex('0064'), Buffer.alloc(100, 0x61), hex('7f')]), [], 100),
      /too large/,
    );
  });

  it('throws nothing but HpackError on random and mutated input', () => {
    const rand = seeded(99);
    const e = new HpackEncoder({ huffman: true });
    const valid = e.encode(['x-one', 'a value', ':path', '/x', 'cookie', 'c'.repeat(30), 'x-one', 'a value']);
    for (let i = 0; i < 20000; i++) {
      let b: Buffer;
      if (i & 1) {
        b = Buffer.from(valid);
        for (let k = 0; k < 3; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      } else {
        b = Buffer.from(Array.from({ length: Math.floor(rand() * 24) }, () => Math.floor(rand() * 256)));
      }
      try {
        new HpackDecoder(rand() < 0.5 ? 4096 : 64).decode(b, [], 1 << 16);
      } catch (err) {
        if (!(err instanceof HpackError)) assert.fail(`${b.toString('hex')}: ${String(err)}`);
      }
    }
  });
});

describe('HpackDecoder: input forms', () => {
  it('takes a Uint8Array at an offset, and appends to `out`', () => {
    const bytes = new Uint8Array([0xff, 0xff, 0x82, 0x84, 0xff]);
    const out = ['keep', 'me'];
    assert.equal(new HpackDecoder().decode(bytes.subarray(2, 4), out, BIG), 42 + 38);
    assert.deepEqual(out, ['keep', 'me', ':method', 'GET', ':path', '/']);
  });
});

describe('HpackEncoder', () => {
  const firstByte = (h: string[], e = new HpackEncoder()) => e.encode(h)[0]!;

  it('chooses representations: static, dynamic, never indexed, not indexed', () => {
    const e = new HpackEncoder();
    assert.deepEqual(e.encode([':method', 'GET', ':path', '/', ':status', '200']), hex('82 84 88'));
    // user-agent: indexed incrementally with the static name 58, then one octet.
    assert.equal(firstByte(['user-agent', 'weft/1'], e), 0x40 | 58);
    assert.deepEqual(e.encode(['user-agent', 'weft/1']), hex('be'));
    // A new name: literal name; then the name is referred to by its dynamic index.
    assert.deepEqual(e.encode(['x-a', '1']), hex('40 0378 2d61 0131'));
    assert.deepEqual(e.encode(['x-a', '2']), hex('7e 0132'), 'name from [62]; the entry goes in as [62]');
    assert.deepEqual(e.encode(['x-a', '1', 'user-agent', 'weft/1']), hex('bf c0'));

    const never = (name: string, value: string) => assert.equal(firstByte([name, value]) & 0xf0, 0x10, name);
    never('authorization', 'Bearer x');
    never('proxy-authorization', 'Basic x');
    never('set-cookie', 'a=b');
    never('cookie', 'short=1');
    assert.equal(firstByte(['cookie', 'session=0123456789abcdef']), 0x40 | 32, 'cookies from 20 octets are indexed');
    for (const [name, value] of [
      [':path', '/api'],
      [':status', '299'],
      ['content-length', '12'],
      ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['x-request-id', 'abc'],
    ] as const) {
      assert.equal(firstByte([name, value]) & 0xf0, 0, name);
    }
    // Over 3/4 of the table: not indexed, the table is left alone.
    const e2 = new HpackEncoder();
    assert.equal(firstByte(['x-big', 'b'.repeat(3100)], e2) & 0xf0, 0);
    assert.equal(firstByte(['cookie', 'b'.repeat(3100)], e2) & 0xf0, 0);
    assert.equal(firstByte(['x-big', 'b'.repeat(3000)], e2), 0x40);
  });

  it('emits table size updates: the minimum since the last block, then the final size', () => {
    const e = new HpackEncoder();
    e.setMaxTableSize(8192); // above the 4096 the encoder uses: nothing to say
    assert.deepEqual(e.encode([':method', 'GET']), hex('82'));
    e.setMaxTableSize(256);
    assert.deepEqual(e.encode([':method', 'GET']), hex('3fe101 82'));
    assert.deepEqual(e.encode([':method', 'GET']), hex('82'), 'once');
    e.setMaxTableSize(0);
    e.setMaxTableSize(1000);
    assert.deepEqual(e.encode([':method', 'GET']), hex('20 3fc907 82'), '0 then 1000');
    e.setMaxTableSize(0);
    e.setMaxTableSize(1000);
    assert.deepEqual(
      e.encode([':method', 'GET']),
      hex('20 3fc907 82'),
      'back at 1000, but the peer may have evicted at 0',
    );
    e.setMaxTableSize(1000);
    assert.deepEqual(e.encode([':method', 'GET']), hex('82'), 'no change');

    // A shrink evicts: the peer's decoder must agree on what is left.
    const d = new HpackDecoder();
    const e2 = new HpackEncoder();
    decode(d, e2.encode(['x-a', 'a'.repeat(100), 'x-b', 'b'.repeat(100)]));
    e2.setMaxTableSize(200);
    const b = e2.encode(['x-b', 'b'.repeat(100), 'x-a', 'a'.repeat(100)]);
    assert.equal(b[3], 0xbe, 'x-b is still [62] after the update');
    assert.deepEqual(decode(d, b), ['x-b', 'b'.repeat(100), 'x-a', 'a'.repeat(100)]);
  });

  it('returns -1 when dst is too small, leaving its state as it was', () => {
    const h = ['x-a', '1', ':authority', 'example.com', 'user-agent', 'u'.repeat(40), 'x-a', '1'];
    const clean = new HpackEncoder();
    const e = new HpackEncoder();
    clean.setMaxTableSize(300);
    e.setMaxTableSize(300);
    for (let round = 0; round < 3; round++) {
      const want = clean.encode(h);
      for (let room = 0; room < want.length; room++)
        assert.equal(e.encodeInto(h, Buffer.alloc(room + 3), 3), -1, `room ${room}`);
      const dst = Buffer.alloc(want.length + 5);
      assert.equal(e.encodeInto(h, dst, 2), 2 + want.length);
      assert.deepEqual(dst.subarray(2, 2 + want.length), want, `round ${round}`);
    }
  });

  it('keeps every entry at its index while the tables grow from a few slots to a full 4,096 octets', () => {
    // Entries of 34 octets (one-letter name and value): 120 fit in 4,096, far past a new ring's 16.
    const e = new HpackEncoder();
    const d = new HpackDecoder();
    const dst = Buffer.alloc(16_384);
    const fields = Array.from({ length: 120 }, (_, i) => [`x`, String.fromCharCode(0x21 + i)] as const);
    for (const [name, value] of fields) {
      const out: string[] = [];
      d.decode(dst, out, 65_536, 0, e.encodeInto([name, value], dst, 0));
      assert.deepEqual(out, [name, value]);
    }
    // Every field again, in one block: each now an index into the dynamic table (1 octet or 2).
    const all = fields.flat();
    const end = e.encodeInto(all, dst, 0);
    assert.ok(end <= 2 * fields.length, `${end} octets: not all indexed`);
    const out: string[] = [];
    d.decode(dst, out, 65_536, 0, end);
    assert.deepEqual(out, all);
  });

  for (const huffman of [false, true]) {
    it(`round-trips random blocks through the decoder (huffman ${huffman})`, () => {
      const rand = seeded(huffman ? 2 : 1);
      const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
      const names = [
        ':method',
        ':path',
        ':authority',
        ':scheme',
        ':status',
        'user-agent',
        'accept',
        'cookie',
        'authorization',
        'set-cookie',
        'content-length',
        'date',
        'x-request-id',
        'content-type',
        'cache-control',
        'x-one',
        'x-two',
        'x-three',
        'proxy-authorization',
        'accept-encoding',
      ];
      const values = ['', 'GET', '/', '200', 'gzip, deflate', 'application/json', 'a', 'short', 'x'.repeat(25)];
      const randomString = (max: number) =>
        String.fromCharCode(...Array.from({ length: Math.floor(rand() * max) }, () => Math.floor(rand() * 256)));
      const e = new HpackEncoder({ huffman });
      const d = new HpackDecoder();
      let dst = Buffer.alloc(64);
      let failures = 0;
      for (let block = 0; block < 3000; block++) {
        if (rand() < 0.03) e.setMaxTableSize(pick([0, 50, 256, 1000, 4096, 100000]));
        if (rand() < 0.01) e.setMaxTableSize(pick([0, 300]));
        const h: string[] = [];
        for (let n = Math.floor(rand() * 12); n > 0; n--) {
          const r = rand();
          const name = r < 0.8 ? pick(names) : r < 0.95 ? `x-${Math.floor(rand() * 30)}` : randomString(20);
          const v = rand();
          h.push(
            name,
            v < 0.5
              ? pick(values)
              : v < 0.9
                ? `v${Math.floor(rand() * 20)}`
                : v < 0.98
                  ? randomString(200)
                  : randomString(5000),
          );
        }
        const offset = Math.floor(rand() * 4);
        let end: number;
        while ((end = e.encodeInto(h, dst, offset)) < 0) {
          failures++;
          dst = Buffer.alloc(dst.length * 2);
        }
        assert.deepEqual(decode(d, dst.subarray(offset, end)), h, `block ${block}`);
        if (dst.length > 256 && rand() < 0.2) dst = Buffer.alloc(64);
      }
      assert.ok(failures > 50, `${failures} blocks did not fit at first`);
    });
  }
});

// --- interop with node:http2 (nghttp2) over raw sockets on 127.0.0.1 ---------------------------

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0,
  HEADERS = 1,
  RST_STREAM = 3,
  SETTINGS = 4,
  GOAWAY = 7,
  CONTINUATION = 9;
const END_STREAM = 0x1,
  ACK = 0x1,
  END_HEADERS = 0x4,
  PADDED = 0x8,
  PRIORITY = 0x20;
const HEADER_TABLE_SIZE = 0x1;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

function settings(pairs: [number, number][]): Buffer {
  const b = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, v], i) => (b.writeUInt16BE(id, 6 * i), b.writeUInt32BE(v, 6 * i + 2)));
  return frame(SETTINGS, 0, 0, b);
}

function headerTableSize(payload: Buffer): number | undefined {
  let size: number | undefined;
  for (let i = 0; i + 6 <= payload.length; i += 6)
    if (payload.readUInt16BE(i) === HEADER_TABLE_SIZE) size = payload.readUInt32BE(i + 2);
  return size;
}

type FrameHandler = (type: number, flags: number, stream: number, payload: Buffer) => void;

/** Splits a byte stream into frames, after `skip` octets (the client preface, checked). */
function frameReader(onFrame: FrameHandler, skip = 0): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (skip > 0) {
      if (buf.length < skip) return;
      assert.deepEqual(buf.subarray(0, skip), PREFACE);
      buf = buf.subarray(skip);
      skip = 0;
    }
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      onFrame(buf[3]!, buf[4]!, buf.readUInt32BE(5) & 0x7fffffff, buf.subarray(9, 9 + len));
      buf = buf.subarray(9 + len);
    }
  };
}

/** `p`, or a rejection after `ms`: nothing in these tests may hang. */
async function deadline<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  );
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Request header lists that share most fields, so the dynamic table is used across them. */
function requestLists(n: number, seed: number): string[][] {
  const rand = seeded(seed);
  const word = (len: number) =>
    Array.from(
      { length: len },
      () => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.;=/'[Math.floor(rand() * 66)],
    ).join('');
  return Array.from({ length: n }, (_, i) => [
    ':method',
    i % 3 === 2 ? 'POST' : 'GET',
    ':scheme',
    'http',
    ':path',
    `/api/v1/items/${i}?q=${word(8)}`,
    ':authority',
    'svc.ns.svc.cluster.local',
    'user-agent',
    'weft-interop/1.0',
    'accept',
    'application/json',
    'authorization',
    `Bearer ${word(30)}`,
    'cookie',
    i % 2 ? 'a=1' : `session=${word(40)}`,
    'x-tenant',
    `tenant-${i % 3}`,
    'x-blob',
    `${word(i % 4 === 3 ? 300 : 20)}`, // large ones evict from a 256-octet table
    'x-latin1',
    'caf\u00e9 \u00ff\u0080',
  ]);
}

describe('interop: our encoder -> node:http2 server', () => {
  for (const [huffman, tableSize] of [
    [false, undefined],
    [true, undefined],
    [false, 256],
    [true, 256],
  ] as const) {
    it(`the server sees exactly the headers sent (huffman ${huffman}, server table ${tableSize ?? 'default'})`, async () => {
      const requests = requestLists(12, tableSize ?? 3);
      const server = http2.createServer(tableSize ? { settings: { headerTableSize: tableSize } } : {});
      const seen: string[][] = [];
      const done = deferred();
      server.on('stream', (stream, _headers, _flags, raw: string[]) => {
        seen[(stream.id! - 1) / 2] = raw;
        stream.respond({ ':status': 204 }, { endStream: true });
        if (seen.filter(Boolean).length === requests.length) done.resolve();
      });
      server.on('sessionError', done.reject);
      server.listen(0, '127.0.0.1');
      await deadline(once(server, 'listening'), 'listen');
      const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      try {
        sock.on('error', done.reject);
        const encoder = new HpackEncoder({ huffman });
        let sent = false;
        sock.on(
          'data',
          frameReader((type, flags, stream, payload) => {
            if (type === SETTINGS && !(flags & ACK)) {
              const size = headerTableSize(payload);
              if (size !== undefined) encoder.setMaxTableSize(size);
              sock.write(frame(SETTINGS, ACK, 0));
              if (sent) return;
              sent = true;
              // The blocks share the encoder's dynamic table, in stream order as HPACK needs.
              requests.forEach((h, i) =>
                sock.write(frame(HEADERS, END_STREAM | END_HEADERS, 2 * i + 1, encoder.encode(h))),
              );
            } else if (type === GOAWAY) {
              done.reject(new Error(`GOAWAY, error ${payload.readUInt32BE(4)}`));
            } else if (type === RST_STREAM) {
              done.reject(new Error(`RST_STREAM ${stream}, error ${payload.readUInt32BE(0)}`));
            }
          }),
        );
        sock.write(Buffer.concat([PREFACE, settings([])]));
        await deadline(done.promise, 'server streams');
        assert.deepEqual(seen, requests);
      } finally {
        sock.destroy();
        server.close();
      }
    });
  }
});

describe('interop: node:http2 client -> our decoder', () => {
  for (const tableSize of [4096, 256]) {
    it(`decodes the client's Huffman-coded, table-sharing blocks (our table ${tableSize})`, async () => {
      const decoder = new HpackDecoder(tableSize);
      const responder = new HpackEncoder({ huffman: true });
      const blocks: Buffer[] = [];
      const decoded = new Map<number, string[]>();
      const failed = deferred<never>();
      const server = net.createServer((sock) => {
        sock.on('error', failed.reject);
        sock.write(settings(tableSize === 4096 ? [] : [[HEADER_TABLE_SIZE, tableSize]]));
        let pending: Buffer[] = [];
        let flagsOfFirst = 0;
        const onFrame: FrameHandler = (type, flags, stream, payload) => {
          try {
            if (type === SETTINGS && !(flags & ACK)) {
              const size = headerTableSize(payload);
              if (size !== undefined) responder.setMaxTableSize(size);
              sock.write(frame(SETTINGS, ACK, 0));
              return;
            }
            if (type === HEADERS) {
              let start = 0;
              let end = payload.length;
              if (flags & PADDED) end -= payload[start++]!;
              if (flags & PRIORITY) start += 5;
              pending = [payload.subarray(start, end)];
              flagsOfFirst = flags;
            } else if (type === CONTINUATION) {
              pending.push(payload);
            } else {
              assert.notEqual(type, GOAWAY, 'the client sent GOAWAY');
              return;
            }
            if (!(flags & END_HEADERS)) return;
            const block = Buffer.concat(pending);
            blocks.push(block);
            decoded.set(stream, decode(decoder, block, 65536));
            // Answer with a block from our encoder (Huffman on), so nghttp2 decodes ours too.
            const response = [
              ':status',
              stream % 4 === 1 ? '200' : '299',
              'content-type',
              'application/json',
              'set-cookie',
              `id=${stream}`,
              'server',
              'weft',
              'x-echo',
              `stream ${stream}`,
            ];
            sock.write(frame(HEADERS, END_HEADERS | (flagsOfFirst & END_STREAM), stream, responder.encode(response)));
            if (!(flagsOfFirst & END_STREAM)) sock.write(frame(DATA, END_STREAM, stream));
          } catch (err) {
            failed.reject(err);
          }
        };
        sock.on('data', frameReader(onFrame, PREFACE.length));
      });
      server.listen(0, '127.0.0.1');
      await deadline(once(server, 'listening'), 'listen');
      const port = (server.address() as net.AddressInfo).port;
      const client = http2.connect(`http://127.0.0.1:${port}`, {
        settings: { headerTableSize: tableSize === 4096 ? 4096 : 512 },
      });
      try {
        client.on('error', failed.reject);
        await deadline(Promise.race([once(client, 'remoteSettings'), failed.promise]), 'client settings');
        // With :authority and request 0's x-varying these fill 228 octets of a table: they fit in 256.
        const common = { 'x-common': 'the same value on every request', 'user-agent': 'node-interop' };
        const sent: Record<string, string>[] = [];
        const answers: Promise<string[]>[] = [];
        for (let i = 0; i < 10; i++) {
          // Requests 0 and 1 differ only in :path; later ones grow.
          const h = {
            ':path': `/p/${i}${i > 1 ? `?x=${'z'.repeat(i * 40)}` : ''}`,
            ...common,
            'x-varying': i > 1 ? `value-${i}-${'q'.repeat(i * 15)}` : 'value',
          };
          sent.push({ ':method': 'GET', ':scheme': 'http', ':authority': `127.0.0.1:${port}`, ...h });
          const req = client.request(h, { endStream: true });
          const answer = deferred<string[]>();
          req.on('response', (_h, _f, raw: string[]) => answer.resolve(raw));
          req.on('error', answer.reject);
          req.resume();
          answers.push(answer.promise);
        }
        const raw = await deadline(Promise.race([Promise.all(answers), failed.promise]), 'responses');
        // Requests: what the client sent, field for field.
        for (const [i, expected] of sent.entries()) {
          const list = decoded.get(2 * i + 1)!;
          const fields = new Map<string, string>();
          for (let k = 0; k < list.length; k += 2) fields.set(list[k]!, list[k + 1]!);
          assert.equal(fields.size * 2, list.length, 'no repeated names');
          assert.deepEqual(Object.fromEntries(fields), expected, `request ${i}`);
        }
        // nghttp2 Huffman-coded the strings and referred to its table for repeated fields.
        assert.ok(!blocks[0]!.includes(Buffer.from(common['x-common'])), 'Huffman-coded');
        assert.ok(blocks[1]!.length < 16, `${blocks[1]!.length} octets, ${blocks[0]!.length} before`);
        if (tableSize !== 4096)
          assert.equal(blocks[0]![0]! & 0xe0, 0x20, 'the client first signalled the smaller table');
        // Responses: nghttp2 decoded our blocks.
        raw.forEach((r, i) => {
          const stream = 2 * i + 1;
          assert.deepEqual(r, [
            ':status',
            stream % 4 === 1 ? '200' : '299',
            'content-type',
            'application/json',
            'set-cookie',
            `id=${stream}`,
            'server',
            'weft',
            'x-echo',
            `stream ${stream}`,
          ]);
        });
      } finally {
        client.destroy();
        server.close();
      }
    });
  }
});
