// HPACK micro benchmark: time per header block of a typical 8-field request, encoded and
// decoded on a warm connection (dynamic table populated) and a cold one (first request).
// Run after tsc: node build/js/bench/hpack-micro.js
import { HpackDecoder, HpackEncoder } from '../src/proxy/h2/hpack.js';

const N = 1024; // distinct requests (their :path and x-request-id differ, as on a real connection)
const requests: string[][] = Array.from({ length: N }, (_, i) => [
  ':method',
  'GET',
  ':scheme',
  'https',
  ':path',
  `/api/v1/orders/${100000 + i * 7}?include=items`,
  ':authority',
  'orders.shop.svc.cluster.local',
  'user-agent',
  'grpc-node-js/1.14.7',
  'accept',
  'application/json',
  'accept-encoding',
  'gzip, deflate, br',
  'x-request-id',
  `${(0x10000000 + i * 7919).toString(16)}-4f1c-9b2a-${(i * 104729).toString(16).padStart(12, '0')}`,
]);

/** Best of `rounds` timings of `fn` (which does `per` blocks), in ns per block. */
function time(rounds: number, per: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn(); // warm up (and let V8 optimise)
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / per);
  }
  return best;
}

/** The blocks one connection's encoder produces for `requests`, in order. */
function blocks(huffman: boolean): Buffer[] {
  const e = new HpackEncoder({ huffman });
  return requests.map((h) => e.encode(h));
}

const dst = Buffer.allocUnsafe(16384);
const out: string[] = [];
const results: [string, number, number][] = [];

for (const huffman of [false, true]) {
  const tag = huffman ? 'Huffman' : 'raw';
  const e = new HpackEncoder({ huffman });
  let sink = 0;
  results.push([
    `encode, warm (${tag})`,
    time(20, N, () => {
      for (let i = 0; i < N; i++) sink += e.encodeInto(requests[i]!, dst, 0);
    }),
    0,
  ]);

  const bs = blocks(huffman);
  const size = bs.reduce((n, b) => n + b.length, 0) / N;
  results.push([
    `decode, warm (${tag})`,
    time(20, N, () => {
      // One connection's worth of blocks, in order, on a fresh decoder: only the first is cold.
      const d = new HpackDecoder();
      for (let i = 0; i < N; i++) {
        out.length = 0;
        sink += d.decode(bs[i]!, out, 65536);
      }
    }),
    size,
  ]);

  const first = bs[0]!;
  results.push([
    `decode, cold: first block, new decoder (${tag})`,
    time(20, N, () => {
      for (let i = 0; i < N; i++) {
        out.length = 0;
        sink += new HpackDecoder().decode(first, out, 65536);
      }
    }),
    first.length,
  ]);
  results.push([
    `encode, cold: first block, new encoder (${tag})`,
    time(20, N, () => {
      for (let i = 0; i < N; i++) sink += new HpackEncoder({ huffman }).encodeInto(requests[i]!, dst, 0);
    }),
    0,
  ]);
  if (sink === 0) console.log('');
}

console.log(`HPACK, one 8-field request header block (node ${process.version}):`);
for (const [what, ns, bytes] of results) {
  console.log(
    `  ${what.padEnd(48)} ${(ns / 1000).toFixed(3).padStart(7)} µs${bytes ? `   (${bytes.toFixed(1)} octets/block)` : ''}`,
  );
}
