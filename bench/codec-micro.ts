// Struct codec micro benchmark: time per entry to encode and decode the load balancer's map
// entries (a sync of 100,000 backends encodes them all; weftd's adoption decodes them all) and
// to decode the ring buffer's event records (the observer decodes one per flow).
// Run after tsc: node build/js/bench/codec-micro.js
import { encodeMany, type StructCodec } from '../src/datapath/codec.js';
import { eventHdr, pktTraceEvent, sockXlateEvent, ctKey, ctEntry } from '../src/datapath/endpoint-codecs.js';
import { lbBackendKey, lbBackendValue, lbServiceKey, lbServiceValue } from '../src/datapath/lb-codecs.js';
import { policyKey } from '../src/datapath/policy-codecs.js';

const N = 100_000;
const ip4 = (a: number, i: number) => `${a}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

const ip6 = (i: number) => `fd00::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
const many = <T>(f: (i: number) => T): T[] => Array.from({ length: N }, (_, i) => f(i));

const svcKeys = many((i) => ({ ip: ip4(10, i), port: 80 + (i % 3), proto: i % 5 ? 'TCP' : 'UDP', family: 4 }) as const);
const svcVals = many((i) => ({ serviceId: i + 1, backendCount: 3, flags: i & 1 }));
const beKeys = many((i) => ({ serviceId: (i >> 2) + 1, slot: (i & 3) + 1 }));
// One backend in ten IPv6.
const beVals = many((i) => ({ ip: i % 10 ? ip4(11, i) : ip6(i), port: 8080, family: i % 10 ? 4 : 6 }) as const);
const polKeys = many((i) => ({
  endpointId: i & 1023,
  identity: i,
  direction: (i & 1) as 0 | 1,
  proto: 6,
  port: 8080,
  portBits: 16,
}));
const hdr = (i: number) =>
  ({
    timeNs: BigInt(i) * 1000n,
    type: 'trace',
    direction: 'egress',
    family: 4,
    ifindex: 7,
    endpointId: 12,
    pktLen: 60,
    saddr: ip4(10, i),
    daddr: ip4(11, i),
    sport: 40000 + (i & 1023),
    dport: 8080,
    proto: 6,
    tcpFlags: 2,
    ethertype: 0x0800,
  }) as const;
const traces = many((i) => ({ hdr: hdr(i), peerIdentity: 1234, ctFlags: 1 }));
const socks = many((i) => ({
  hdr: { ...hdr(i), type: 'sock' as const },
  svcAddr: ip4(12, i),
  svcPort: 80,
  isConnect: true,
  redirected: false,
  cgroupId: 5n,
  netnsCookie: 9n,
}));
const cts = many((i) => ({
  family: 4 as const,
  proto: 6,
  epAddr: ip4(10, i),
  peerAddr: ip4(11, i),
  epPort: 40000,
  peerPort: 8080,
}));
const ctes = many((i) => ({
  packetsOrig: 1n,
  bytesOrig: 60n,
  packetsReply: 1n,
  bytesReply: 60n,
  createdNs: BigInt(i),
  lastSeenNs: BigInt(i),
  endpointId: 12,
  origin: 'egress' as const,
  state: 'established' as const,
  tcpFlagsOrig: 18,
  tcpFlagsReply: 18,
}));

/** Best of `rounds` timings of `fn` (which handles N entries), in ns per entry. */
function time(rounds: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn(); // warm up (and let V8 optimise)
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / N);
  }
  return best;
}

let sink = 0;
function decodeAll<T>(codec: StructCodec<T>, buf: Buffer): void {
  for (let i = 0; i < N; i++) if (codec.decode(buf, i * codec.size)) sink++;
}

const results: [string, number][] = [];
const pair = <T>(what: string, codec: StructCodec<T>, values: readonly T[]) => {
  results.push([
    `encode ${what}`,
    time(10, () => {
      sink += encodeMany(codec, values).length;
    }),
  ]);
  const buf = encodeMany(codec, values);
  results.push([`decode ${what}`, time(10, () => decodeAll(codec, buf))]);
};

// The four entries of one service frontend's sync, together (what 100k lb entries cost).
const lbAll = () => {
  sink += encodeMany(lbServiceKey, svcKeys).length + encodeMany(lbServiceValue, svcVals).length;
  sink += encodeMany(lbBackendKey, beKeys).length + encodeMany(lbBackendValue, beVals).length;
};
results.push(['encode lb: service key+value, backend key+value', time(10, lbAll)]);
const lbBufs = [
  encodeMany(lbServiceKey, svcKeys),
  encodeMany(lbServiceValue, svcVals),
  encodeMany(lbBackendKey, beKeys),
  encodeMany(lbBackendValue, beVals),
] as const;
results.push([
  'decode lb: service key+value, backend key+value',
  time(10, () => {
    decodeAll(lbServiceKey, lbBufs[0]);
    decodeAll(lbServiceValue, lbBufs[1]);
    decodeAll(lbBackendKey, lbBufs[2]);
    decodeAll(lbBackendValue, lbBufs[3]);
  }),
]);
pair('lb_service_key', lbServiceKey, svcKeys);
pair('lb_backend_value', lbBackendValue, beVals);
pair('policy_key', policyKey, polKeys);
pair('ct_key', ctKey, cts);
pair('ct_entry', ctEntry, ctes);
pair('pkt_trace_event', pktTraceEvent, traces);
pair('sock_xlate_event', sockXlateEvent, socks);
const hdrs = encodeMany(pktTraceEvent, traces);
results.push([
  'decode event_hdr (of a trace record)',
  time(10, () => {
    for (let i = 0; i < N; i++) if (eventHdr.decode(hdrs, i * pktTraceEvent.size)) sink++;
  }),
]);

if (sink === 0) console.log('');
console.log(`Struct codecs, ${N.toLocaleString('en')} entries a round, best of 10 (node ${process.version}):`);
for (const [what, ns] of results) console.log(`  ${what.padEnd(52)} ${ns.toFixed(1).padStart(7)} ns/entry`);
