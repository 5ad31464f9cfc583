// The pod-facing TC programs of bpf/lxc.c on the real kernel: real packets between pods of a
// world, with the programs attached as the agent will attach them.
//
// Attaching: an ifindex names a device in the network namespace of whoever adds the clsact
// filter, and the pods' host-side veths live in the world's node namespace. So attach and detach
// run where the agent will run them, in the node namespace: test/fixtures/endpoint-ctl.js,
// started there with nsenter --net (bpffs stays visible), one process per call that exits
// afterwards, which also shows that the attachment outlives its creator; the filters are read
// back there too (endpoint-ctl links). Everything else (maps, pins, the ring buffer) does not
// depend on the namespace and is read from this process.
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, beforeEach, describe, it } from 'node:test';
import { encode } from '../../src/datapath/codec.js';
import { EndpointDatapath, type EndpointDatapathInfo } from '../../src/datapath/endpoint-datapath.js';
import {
  TRACE_F_NEW,
  TRACE_F_REPLY,
  endpointInfo,
  eventsConfigValue,
  ifindexKey,
  pktTraceEvent,
  type CtEntry,
  type CtKey,
  type EventHeader,
} from '../../src/datapath/endpoint-codecs.js';
import {
  openEvents,
  readConntrack,
  readEndpoints,
  readEventsLost,
  type EndpointLink,
  type EventReader,
} from '../../src/datapath/endpoint-reader.js';
import { LXC_TC_HANDLE, LXC_TC_PRIORITY } from '../../src/datapath/endpoint-datapath.js';
import { BpfObject, RawMap, progTestRun, type ProgramHandle } from '../../src/datapath/libbpf.js';
import { lxcLinkDir, pinLayout } from '../../src/datapath/pins.js';
import { defaultObjectDir } from '../../src/datapath/programs.js';
import { REPO } from '../harness/agent.js';
import { World, type Pod } from '../harness/world.js';
import { ACK, FIN, PASS, RST, SHOT, SYN, eth, icmp, ipv4, ipv6, tcp, udp } from '../harness/packets.js';

const FIXTURES = path.join(REPO, 'build/js/test/fixtures');
const TRAFFIC = path.join(FIXTURES, 'lxc-traffic.js');
const CTL = path.join(FIXTURES, 'endpoint-ctl.js');
const TCP_PORT = 7000;
const UDP_PORT = 7001;
const ID_A = 101;
const ID_B = 102;
const ID_C = 103;
// Extra addresses on pods' eth0, not theirs as far as Weft knows.
const SPOOF_A = { 4: '10.244.0.200', 6: 'fd00:10:244::c8' } as const;
const SPOOF_C = { 4: '10.244.0.201', 6: 'fd00:10:244::c9' } as const;

let world: World;
let a: Pod;
let b: Pod;
let c: Pod;
let server: Proc;
let dp: EndpointDatapath;
let reader: EventReader;
const events: EventHeader[] = [];
const otherEvents: EventHeader[] = [];
/** Each event's record as the ring buffer held it (trace and policy events add to the header). */
const rawOf = new WeakMap<EventHeader, Buffer>();

// ---- helpers ----

/** A process in a pod whose stdout lines are kept, and that can be told things on stdin. */
class Proc {
  readonly lines: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr?.on('data', (d: Buffer) => this.lines.push(`stderr: ${d.toString().trim()}`));
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** The first line since `from` that matches. */
  async waitFor(re: RegExp, from = 0, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const l of this.lines.slice(from)) {
        const m = l.match(re);
        if (m) return m;
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no line matching ${re} within ${timeoutMs} ms: ${JSON.stringify(this.lines.slice(from))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

function spawnProc(where: Pod, args: string[]): Proc {
  return new Proc(world.spawn(where, [process.execPath, TRAFFIC, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
}

async function traffic(from: Pod, args: string[]): Promise<{ sent: number; received: number; id?: number }> {
  const r = await world.run(from, [process.execPath, TRAFFIC, ...args], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `lxc-traffic ${args.join(' ')} in ${from.name}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as { sent: number; received: number; id?: number };
}

/** Runs endpoint-ctl in the node namespace, as the agent runs; returns the attached ifindexes. */
async function ctl(command: 'attach' | 'detach', ...args: string[]): Promise<number[]> {
  const r = await world.run('node', [process.execPath, CTL, '--bpf-root', world.bpfRoot, command, ...args], {
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, `endpoint-ctl ${command} ${args.join(' ')}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { attached: number[] }).attached;
}

/** The endpoints' TC filters, read in the node namespace (where their devices are). */
async function nodeLinks(): Promise<EndpointLink[]> {
  const r = await world.run('node', [process.execPath, CTL, '--bpf-root', world.bpfRoot, 'links'], {
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, `endpoint-ctl links: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { links: EndpointLink[] }).links;
}

const ifindexOf = (pod: Pod): number =>
  (
    JSON.parse(
      execFileSync('ip', ['-n', world.nodeNetns, '-j', 'link', 'show', 'dev', pod.hostVeth], { encoding: 'utf8' }),
    ) as { ifindex: number }[]
  )[0]!.ifindex;

const infoOf = (pod: Pod, endpointId: number): EndpointDatapathInfo => ({
  endpointId,
  ifindex: ifindexOf(pod),
  ipv4: pod.ipv4,
  ipv6: pod.ipv6,
  ifname: pod.hostVeth,
});

const attachPods = (...eps: [Pod, number][]) => ctl('attach', ...eps.map(([p, id]) => JSON.stringify(infoOf(p, id))));

const ipOf = (pod: Pod, family: 4 | 6) => (family === 4 ? pod.ipv4 : pod.ipv6);

/** How many filters the pod's host-side veth has on each clsact hook (tc's view). */
function tcFilters(pod: Pod): { ingress: number; egress: number } {
  const count = (hook: string) =>
    (
      JSON.parse(
        execFileSync('tc', ['-n', world.nodeNetns, '-j', 'filter', 'show', 'dev', pod.hostVeth, hook], {
          encoding: 'utf8',
        }) || '[]',
      ) as { options?: unknown }[]
    ).filter((f) => f.options !== undefined).length;
  return { ingress: count('ingress'), egress: count('egress') };
}

function ip(netns: string, ...args: string[]): string {
  return execFileSync('ip', ['-n', netns, ...args], { encoding: 'utf8' });
}

/** The conntrack entry of one endpoint's side of a connection. */
function ctFind(match: Partial<CtKey>): { key: CtKey; entry: CtEntry }[] {
  return readConntrack(world.bpfRoot).filter(({ key }) =>
    Object.entries(match).every(([k, v]) => key[k as keyof CtKey] === v),
  );
}

function ctOne(match: Partial<CtKey>): CtEntry {
  const found = ctFind(match);
  assert.equal(
    found.length,
    1,
    `one conntrack entry for ${JSON.stringify(match)}: ${JSON.stringify(found, (_k, v) => (typeof v === 'bigint' ? `${v}` : v))}`,
  );
  return found[0]!.entry;
}

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Drop events read since the last call (trace and policy events go to `otherEvents`). Left
 *  out: neighbour solicitations from a's extra IPv6 address. The kernel sends one from the
 *  source of the packet that needs the neighbour, so resolving the gateway for a spoofed
 *  packet is spoofed too, and dropped as such; whether that happens depends on the neighbour
 *  cache's state at the time, so tests do not count them. */
function takeEvents(): EventHeader[] {
  reader.consume();
  const all = events.splice(0);
  otherEvents.push(...all.filter((e) => e.type !== 'drop'));
  return all.filter(
    (e) =>
      e.type === 'drop' &&
      !(e.reason === 'spoofed-source' && e.proto === 58 && e.saddr === SPOOF_A[6] && e.sport === 0),
  );
}

/** Trace and policy events read since the last call. */
function takeOtherEvents(): EventHeader[] {
  takeEvents();
  return otherEvents.splice(0);
}

// ---- the world ----

before(async () => {
  world = World.create();
  a = world.addPod('a');
  b = world.addPod('b');
  c = world.addPod('c'); // stays without programs until the detach tests: the control
  server = spawnProc(b, ['serve', '--tcp', String(TCP_PORT), '--udp', String(UDP_PORT)]);
  await server.waitFor(/^ready$/);
  assert.deepEqual(
    await attachPods([a, ID_A], [b, ID_B]),
    [ifindexOf(a), ifindexOf(b)].sort((x, y) => x - y),
  );
  // For reading maps and counters: loading the object here attaches nothing.
  dp = EndpointDatapath.open({ bpfRoot: world.bpfRoot });
  reader = openEvents(world.bpfRoot, (ev, raw) => {
    events.push(ev);
    rawOf.set(ev, Buffer.from(raw));
  });
});

after(async () => {
  reader?.close();
  dp?.close();
  await world?.dispose();
});

describe('attaching', () => {
  it('puts a clsact filter on each hook of each veth, and writes the endpoint entries', async () => {
    const links = await nodeLinks();
    for (const pod of [a, b]) {
      const ifindex = ifindexOf(pod);
      const mine = links.filter((l) => l.ifindex === ifindex);
      assert.deepEqual(
        mine.map((l) => [l.hook, l.handle, l.priority, l.error]),
        [
          ['egress', LXC_TC_HANDLE, LXC_TC_PRIORITY, undefined],
          ['ingress', LXC_TC_HANDLE, LXC_TC_PRIORITY, undefined],
        ],
      );
      assert.ok(mine.every((l) => l.progId! > 0));
      // Nothing pinned for them: the filters live with the devices.
      assert.deepEqual(tcFilters(pod), { ingress: 1, egress: 1 });
    }
    assert.deepEqual(
      dp.attachedIfindexes(),
      [ifindexOf(a), ifindexOf(b)].sort((x, y) => x - y),
    );
    assert.deepEqual(
      readEndpoints(world.bpfRoot),
      [
        { ifindex: ifindexOf(a), endpointId: ID_A, flags: 0, ipv4: a.ipv4, ipv6: a.ipv6 },
        { ifindex: ifindexOf(b), endpointId: ID_B, flags: 0, ipv4: b.ipv4, ipv6: b.ipv6 },
      ].sort((x, y) => x.ifindex - y.ifindex),
    );
  });

  it('refuses bad input, naming the field, and changes nothing', async () => {
    const before = JSON.stringify(readEndpoints(world.bpfRoot));
    const linksBefore = JSON.stringify(await nodeLinks());
    const good = infoOf(c, ID_C);
    assert.throws(
      () => dp.attach({ ...good, endpointId: 0 }),
      /endpoint 0: endpointId must be an integer from 1 to 4294967295/,
    );
    assert.throws(
      () => dp.attach({ ...good, ipv4: '10.244.0.999' }),
      /endpoint 103: ipv4 "10.244.0.999" is not an IPv4 address/,
    );
    assert.throws(() => dp.attach({ ...good, ipv6: c.ipv4 }), {
      message: `endpoint 103: ipv6 "${c.ipv4}" is not an IPv6 address`,
    });
    assert.throws(() => dp.attach({ endpointId: ID_C, ifindex: good.ifindex }), /needs an ipv4 or an ipv6 address/);
    // This process is in the host's namespace, where c's ifindex is some other device or none:
    // with the name given, attach refuses rather than attach to the wrong device.
    assert.throws(
      () => dp.attach(good),
      new RegExp(`ifindex ${good.ifindex} is .*, not ${c.hostVeth}, in this network namespace`),
    );
    assert.equal(JSON.stringify(readEndpoints(world.bpfRoot)), before);
    assert.equal(JSON.stringify(await nodeLinks()), linksBefore);
  });

  it('a failed attach leaves nothing behind: no entry, no filter', async () => {
    const before = JSON.stringify(readEndpoints(world.bpfRoot));
    const linksBefore = JSON.stringify(await nodeLinks());
    const bogus = { endpointId: 999, ifindex: 99999, ipv4: '10.244.9.1' };
    const r = await world.run('node', [
      process.execPath,
      CTL,
      '--bpf-root',
      world.bpfRoot,
      'attach',
      JSON.stringify(bogus),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /attach lxc_from_pod to ifindex 99999 \(tc ingress\): ENODEV/);
    assert.equal(JSON.stringify(readEndpoints(world.bpfRoot)), before);
    assert.equal(JSON.stringify(await nodeLinks()), linksBefore);
  });

  it('is idempotent: attaching again keeps the filters, one per hook', async () => {
    const links = JSON.stringify((await nodeLinks()).map((l) => [l.ifindex, l.hook, l.handle, l.priority, l.error]));
    await attachPods([a, ID_A], [b, ID_B]);
    assert.equal(
      JSON.stringify((await nodeLinks()).map((l) => [l.ifindex, l.hook, l.handle, l.priority, l.error])),
      links,
    );
    for (const pod of [a, b]) assert.deepEqual(tcFilters(pod), { ingress: 1, egress: 1 });
  });
});

describe('traffic between two pods', () => {
  let start: { a: ReturnType<EndpointDatapath['counters']>; b: ReturnType<EndpointDatapath['counters']> };
  before(() => {
    start = { a: dp.counters(ID_A), b: dp.counters(ID_B) };
    takeEvents();
  });

  for (const family of [4, 6] as const) {
    it(`TCP over IPv${family}: works, and conntrack follows it from both pods' sides through established, closing, closed`, async () => {
      const holder = spawnProc(a, ['hold', '--ip', ipOf(b, family), '--port', String(TCP_PORT)]);
      const [, , port] = await holder.waitFor(/^connected (\S+) (\d+)$/);
      const clientPort = Number(port);
      holder.send('ping');
      await holder.waitFor(/^pong$/);
      const aSide = {
        family,
        proto: 6,
        epAddr: ipOf(a, family),
        peerAddr: ipOf(b, family),
        epPort: clientPort,
        peerPort: TCP_PORT,
      };
      const bSide = {
        family,
        proto: 6,
        epAddr: ipOf(b, family),
        peerAddr: ipOf(a, family),
        epPort: TCP_PORT,
        peerPort: clientPort,
      };
      const ea = ctOne(aSide);
      const eb = ctOne(bSide);
      assert.deepEqual([ea.state, ea.origin, ea.endpointId], ['established', 'egress', ID_A], 'a opened it');
      assert.deepEqual(
        [eb.state, eb.origin, eb.endpointId],
        ['established', 'ingress', ID_B],
        'it was opened towards b',
      );
      // SYN, ACK, "ping" one way; SYN-ACK, "ping" back (ACKs may be delayed or merged).
      for (const e of [ea, eb]) {
        assert.ok(e.packetsOrig >= 3n && e.packetsReply >= 2n, `packets both ways: ${e.packetsOrig}/${e.packetsReply}`);
        assert.ok(e.bytesOrig > 0n && e.bytesReply > 0n);
        assert.equal(e.tcpFlagsOrig & 0x12, 0x12, 'SYN and ACK seen from the opener');
        assert.equal(e.tcpFlagsReply & 0x12, 0x12, 'SYN-ACK seen in reply');
        assert.ok(e.lastSeenNs >= e.createdNs);
      }

      const from = server.lines.length;
      holder.send('half-close');
      await server.waitFor(/^tcp-end /, from);
      assert.equal(ctOne(aSide).state, 'closing', 'FIN one way');
      assert.equal(ctOne(bSide).state, 'closing');

      server.send('close-all');
      await holder.waitFor(/^closed$/);
      assert.equal(ctOne(aSide).state, 'closed', 'FIN both ways');
      assert.equal(ctOne(bSide).state, 'closed');
    });

    it(`UDP over IPv${family}: works, and the reply marks the flow established`, async () => {
      const r = await traffic(a, ['udp', '--ip', ipOf(b, family), '--port', String(UDP_PORT), '--count', '3']);
      assert.deepEqual(r, { sent: 3, received: 3 });
      const [flow] = ctFind({
        family,
        proto: 17,
        epAddr: ipOf(a, family),
        peerAddr: ipOf(b, family),
        peerPort: UDP_PORT,
      })
        .filter((f) => f.entry.createdNs > 0n)
        .sort((x, y) => Number(y.entry.createdNs - x.entry.createdNs));
      assert.ok(flow);
      assert.deepEqual(
        [flow.entry.state, flow.entry.origin, flow.entry.packetsOrig, flow.entry.packetsReply],
        ['established', 'egress', 3n, 3n],
      );
      const bSide = ctOne({ family, proto: 17, epAddr: ipOf(b, family), epPort: UDP_PORT, peerPort: flow.key.epPort });
      assert.deepEqual(
        [bSide.state, bSide.origin, bSide.endpointId, bSide.packetsOrig, bSide.packetsReply],
        ['established', 'ingress', ID_B, 3n, 3n],
      );
    });

    it(`ICMP${family === 6 ? 'v6' : ''} echo: works, tracked by its identifier`, async () => {
      const r = await traffic(a, ['ping', '--ip', ipOf(b, family), '--count', '3']);
      assert.equal(r.received, 3, JSON.stringify(r));
      const proto = family === 4 ? 1 : 58;
      const e = ctOne({
        family,
        proto,
        epAddr: ipOf(a, family),
        peerAddr: ipOf(b, family),
        epPort: r.id!,
        peerPort: r.id!,
      });
      assert.deepEqual(
        [e.state, e.origin, e.endpointId, e.packetsOrig, e.packetsReply],
        ['established', 'egress', ID_A, 3n, 3n],
      );
      const eb = ctOne({ family, proto, epAddr: ipOf(b, family), peerAddr: ipOf(a, family), epPort: r.id! });
      assert.deepEqual([eb.origin, eb.endpointId, eb.packetsOrig, eb.packetsReply], ['ingress', ID_B, 3n, 3n]);
    });
  }

  it('counted both ways for both pods, with nothing dropped', () => {
    const now = { a: dp.counters(ID_A), b: dp.counters(ID_B) };
    for (const pod of ['a', 'b'] as const) {
      for (const dir of ['ingress', 'egress'] as const) {
        const was = start[pod][dir];
        const is = now[pod][dir];
        // Per family and way: TCP at least 4 (handshake, data, FINs), UDP 3, ICMP 3.
        assert.ok(is.packets - was.packets >= 20n, `${pod} ${dir} packets ${was.packets} → ${is.packets}`);
        assert.ok(is.bytes - was.bytes > 20n * 40n, `${pod} ${dir} bytes ${was.bytes} → ${is.bytes}`);
        assert.equal(is.drops, was.drops, `${pod} ${dir} drops`);
      }
    }
    assert.deepEqual(takeEvents(), [], 'no drop events');
  });
});

describe('anti-spoofing', () => {
  before(() => {
    for (const [pod, addrs] of [
      [a, SPOOF_A],
      [c, SPOOF_C],
    ] as const) {
      ip(pod.netns, 'addr', 'add', `${addrs[4]}/32`, 'dev', 'eth0');
      ip(pod.netns, '-6', 'addr', 'add', `${addrs[6]}/128`, 'dev', 'eth0', 'nodad');
    }
  });
  beforeEach(() => takeEvents());

  for (const family of [4, 6] as const) {
    it(`a pod without programs can send from another address over IPv${family} (the kernel alone does not stop it)`, async () => {
      const from = server.lines.length;
      await traffic(c, [
        'udp',
        '--ip',
        ipOf(b, family),
        '--port',
        String(UDP_PORT),
        '--bind',
        SPOOF_C[family],
        '--count',
        '1',
      ]);
      await server.waitFor(new RegExp(`^udp ${SPOOF_C[family]} `), from);
    });

    it(`UDP over IPv${family} from an address not the pod's is dropped, counted, and reported with its reason`, async () => {
      const before = dp.counters(ID_A).egress;
      const from = server.lines.length;
      const r = await traffic(a, [
        'udp',
        '--ip',
        ipOf(b, family),
        '--port',
        String(UDP_PORT),
        '--bind',
        SPOOF_A[family],
        '--count',
        '3',
        '--timeout-ms',
        '300',
      ]);
      assert.deepEqual(r, { sent: 3, received: 0 });
      assert.deepEqual(
        server.lines.slice(from).filter((l) => l.includes(SPOOF_A[family])),
        [],
        'nothing arrived at b',
      );
      const drops = takeEvents();
      assert.equal(
        drops.length,
        3,
        JSON.stringify(drops, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)),
      );
      // (Neighbour solicitations for the spoofed packets, if any, are dropped and counted too.)
      assert.ok(dp.counters(ID_A).egress.drops - before.drops >= 3n, 'three drops counted');
      for (const ev of drops) {
        assert.deepEqual(
          {
            type: ev.type,
            reason: ev.reason,
            endpointId: ev.endpointId,
            ifindex: ev.ifindex,
            direction: ev.direction,
            family: ev.family,
            saddr: ev.saddr,
            daddr: ev.daddr,
            proto: ev.proto,
            dport: ev.dport,
          },
          {
            type: 'drop',
            reason: 'spoofed-source',
            endpointId: ID_A,
            ifindex: ifindexOf(a),
            direction: 'egress',
            family,
            saddr: SPOOF_A[family],
            daddr: ipOf(b, family),
            proto: 17,
            dport: UDP_PORT,
          },
        );
        assert.ok(ev.sport > 0 && ev.pktLen > 0 && ev.timeNs > 0n);
      }
    });
  }

  it("ICMP echo from an address not the pod's is dropped too; the pod's own traffic still flows", async () => {
    const r = await traffic(a, ['ping', '--ip', b.ipv4, '--bind', SPOOF_A[4], '--count', '1', '--timeout-ms', '300']);
    assert.equal(r.received, 0);
    const [ev, ...rest] = takeEvents();
    assert.deepEqual(rest, []);
    assert.deepEqual([ev?.reason, ev?.proto, ev?.saddr, ev?.sport], ['spoofed-source', 1, SPOOF_A[4], r.id]);
    assert.equal((await traffic(a, ['ping', '--ip', b.ipv4, '--count', '1'])).received, 1);
    assert.deepEqual(
      (await traffic(a, ['udp', '--ip', b.ipv6, '--port', String(UDP_PORT), '--count', '1'])).received,
      1,
    );
  });

  it('a frame that is not IPv4, IPv6 or ARP is dropped as unsupported', async () => {
    const before = dp.counters(ID_A).egress.drops;
    await traffic(a, ['frame', '--ethertype', '0x88b5']);
    const [ev, ...rest] = takeEvents();
    assert.deepEqual(rest, []);
    assert.deepEqual(
      [ev?.reason, ev?.ethertype, ev?.family, ev?.endpointId, ev?.direction],
      ['unsupported-l3', 0x88b5, undefined, ID_A, 'egress'],
    );
    assert.equal(dp.counters(ID_A).egress.drops, before + 1n);
  });

  it('a truncated IPv4 or IPv6 header from a pod is dropped as malformed', async () => {
    for (const [ethertype, family] of [
      [0x0800, 4],
      [0x86dd, 6],
    ] as const) {
      await traffic(a, ['frame', '--ethertype', String(ethertype), '--length', String(14 + 10)]);
      const [ev, ...rest] = takeEvents();
      assert.deepEqual(rest, []);
      assert.deepEqual(
        [ev?.reason, ev?.ethertype, ev?.pktLen, ev?.endpointId],
        ['malformed', ethertype, 24, ID_A],
        `IPv${family}`,
      );
    }
  });

  it('no event was lost', () => {
    assert.equal(readEventsLost(world.bpfRoot), 0n);
  });
});

describe('ARP and IPv6 neighbour discovery', () => {
  it('a pod resolves its gateway and the node resolves the pod, with empty neighbour caches', async () => {
    takeEvents();
    const dropsBefore = dp.counters(ID_A).egress.drops;
    ip(a.netns, 'neigh', 'flush', 'all');
    ip(a.netns, '-6', 'neigh', 'flush', 'all');
    ip(world.nodeNetns, 'neigh', 'flush', 'dev', a.hostVeth);
    ip(world.nodeNetns, '-6', 'neigh', 'flush', 'dev', a.hostVeth);
    assert.equal((await traffic(a, ['ping', '--ip', b.ipv4, '--count', '1'])).received, 1);
    assert.equal((await traffic(a, ['ping', '--ip', b.ipv6, '--count', '1'])).received, 1);
    const neigh = JSON.parse(ip(a.netns, '-j', 'neigh', 'show', 'dev', 'eth0')) as { dst: string; lladdr?: string }[];
    for (const gw of ['169.254.1.1', 'fe80::1'])
      assert.ok(neigh.find((n) => n.dst === gw)?.lladdr, `${gw} resolved: ${JSON.stringify(neigh)}`);
    const nodeNeigh = JSON.parse(ip(world.nodeNetns, '-j', 'neigh', 'show', 'dev', a.hostVeth)) as {
      dst: string;
      lladdr?: string;
    }[];
    for (const addr of [a.ipv4, a.ipv6])
      assert.ok(nodeNeigh.find((n) => n.dst === addr)?.lladdr, `node resolved ${addr}: ${JSON.stringify(nodeNeigh)}`);
    assert.equal(dp.counters(ID_A).egress.drops, dropsBefore);
    assert.deepEqual(takeEvents(), []);
  });

  it('duplicate address detection and MLD from link-local and unspecified sources pass; other link-local traffic does not', async () => {
    takeEvents();
    // A new address sends a DAD probe (from ::) and an MLD report for its solicited-node group
    // (behind a hop-by-hop header); the pod's link-local address is the source of the rest.
    ip(a.netns, '-6', 'addr', 'add', 'fe80::abcd/64', 'dev', 'eth0');
    await waitUntil(
      () => !ip(a.netns, '-6', 'addr', 'show', 'dev', 'eth0').includes('tentative'),
      'DAD to finish',
      10_000,
    );
    assert.deepEqual(takeEvents(), [], 'no drops');
    // An echo request to the gateway's link-local address is not neighbour discovery.
    const r = await traffic(a, [
      'ping',
      '--ip',
      'fe80::1',
      '--bind',
      'fe80::abcd',
      '--count',
      '1',
      '--timeout-ms',
      '300',
    ]);
    assert.equal(r.received, 0);
    assert.deepEqual(
      takeEvents().map((e) => [e.reason, e.saddr, e.daddr]),
      [['spoofed-source', 'fe80::abcd', 'fe80::1']],
    );
    ip(a.netns, '-6', 'addr', 'del', 'fe80::abcd/64', 'dev', 'eth0');
  });
});

describe('an agent restart re-attaches: programs are swapped in place', () => {
  it('a new process attaching the same endpoints swaps the programs in the same filters; a connection carries on', async () => {
    const holder = spawnProc(a, ['hold', '--ip', b.ipv4, '--port', String(TCP_PORT)]);
    const [, , port] = await holder.waitFor(/^connected (\S+) (\d+)$/);
    holder.send('ping');
    await holder.waitFor(/^pong$/);
    const key = {
      family: 4 as const,
      proto: 6,
      epAddr: a.ipv4,
      peerAddr: b.ipv4,
      epPort: Number(port),
      peerPort: TCP_PORT,
    };
    const ctBefore = ctOne(key);
    const linksBefore = await nodeLinks();

    await attachPods([a, ID_A], [b, ID_B]);

    const linksAfter = await nodeLinks();
    const id = (l: EndpointLink) => [l.ifindex, l.hook, l.handle, l.priority, l.error];
    assert.deepEqual(linksAfter.map(id), linksBefore.map(id), 'the same filters');
    for (const [i, l] of linksAfter.entries())
      assert.notEqual(l.progId, linksBefore[i]!.progId, `${l.ifindex} ${l.hook}: a new program`);
    for (const pod of [a, b]) assert.deepEqual(tcFilters(pod), { ingress: 1, egress: 1 }, 'replaced, not added');

    const mark = holder.lines.length;
    holder.send('ping');
    await holder.waitFor(/^pong$/, mark);
    const ctAfter = ctOne(key);
    assert.equal(ctAfter.createdNs, ctBefore.createdNs, 'the same conntrack entry (the map was reused)');
    assert.equal(ctAfter.state, 'established');
    assert.ok(ctAfter.packetsOrig > ctBefore.packetsOrig && ctAfter.packetsReply > ctBefore.packetsReply);

    takeEvents();
    const r = await traffic(a, [
      'udp',
      '--ip',
      b.ipv4,
      '--port',
      String(UDP_PORT),
      '--bind',
      SPOOF_A[4],
      '--count',
      '1',
      '--timeout-ms',
      '300',
    ]);
    assert.equal(r.received, 0, 'the new programs still drop spoofed packets');
    assert.deepEqual(
      takeEvents().map((e) => e.reason),
      ['spoofed-source'],
    );

    holder.send('half-close');
    server.send('close-all');
    await holder.waitFor(/^closed$/);
  });
});

describe('a veth attached again under another endpoint id', () => {
  it("takes the new id; the old endpoint's conntrack entries and counters go", async () => {
    assert.ok(ctFind({ epAddr: b.ipv4 }).some((f) => f.entry.endpointId === ID_B));
    assert.ok(dp.counters(ID_B).ingress.packets > 0n);
    const ID_B2 = 112;
    await attachPods([b, ID_B2]);
    assert.equal(readEndpoints(world.bpfRoot).find((e) => e.ifindex === ifindexOf(b))?.endpointId, ID_B2);
    assert.deepEqual(
      ctFind({ epAddr: b.ipv4 }).filter((f) => f.entry.endpointId === ID_B),
      [],
    );
    assert.deepEqual(dp.counters(ID_B).ingress, { packets: 0n, bytes: 0n, drops: 0n });
    assert.equal((await traffic(a, ['ping', '--ip', b.ipv4, '--count', '1'])).received, 1);
    assert.ok(dp.counters(ID_B2).ingress.packets > 0n);
    await attachPods([b, ID_B]);
  });
});

describe('detaching', () => {
  it('a veth that is gone: its filters went with it, and detach cleans up', async () => {
    const ic = ifindexOf(c);
    assert.deepEqual(
      await attachPods([c, ID_C]),
      [ifindexOf(a), ifindexOf(b), ic].sort((x, y) => x - y),
    );
    assert.equal((await traffic(c, ['ping', '--ip', b.ipv4, '--count', '1'])).received, 1);
    ip(world.nodeNetns, 'link', 'del', c.hostVeth);
    const defunct = (await nodeLinks()).filter((l) => l.ifindex === ic);
    assert.deepEqual(
      defunct.map((l) => [l.progId, l.error]),
      [0, 0].map(() => [undefined, 'no such device in this network namespace']),
      'no program once the device is gone',
    );
    await ctl('detach', String(ic));
    assert.deepEqual(
      (await nodeLinks()).filter((l) => l.ifindex === ic),
      [],
    );
    assert.equal(
      readEndpoints(world.bpfRoot).find((e) => e.ifindex === ic),
      undefined,
    );
    assert.deepEqual(ctFind({ epAddr: c.ipv4 }), [], 'its conntrack entries are gone');
    assert.deepEqual(dp.counters(ID_C), {
      ingress: { packets: 0n, bytes: 0n, drops: 0n },
      egress: { packets: 0n, bytes: 0n, drops: 0n },
    });
  });

  it('removes filters, entry, conntrack and counters; the veth passes traffic unfiltered again; idempotent', async () => {
    const ia = ifindexOf(a);
    assert.ok(ctFind({ epAddr: a.ipv4 }).length > 0);
    assert.deepEqual(await ctl('detach', String(ia)), [ifindexOf(b)]);
    assert.deepEqual(
      (await nodeLinks()).filter((l) => l.ifindex === ia),
      [],
    );
    assert.deepEqual(tcFilters(a), { ingress: 0, egress: 0 }, 'the filters are gone from the device');
    assert.deepEqual(dp.attachedIfindexes(), [ifindexOf(b)]);
    assert.equal(
      readEndpoints(world.bpfRoot).find((e) => e.ifindex === ia),
      undefined,
    );
    assert.deepEqual(
      ctFind({ epAddr: a.ipv4 }).filter((f) => f.entry.endpointId === ID_A),
      [],
    );
    assert.deepEqual(dp.counters(ID_A).egress, { packets: 0n, bytes: 0n, drops: 0n });

    // Nothing checks a's source any more; b's programs still see what reaches b.
    const from = server.lines.length;
    await traffic(a, [
      'udp',
      '--ip',
      b.ipv4,
      '--port',
      String(UDP_PORT),
      '--bind',
      SPOOF_A[4],
      '--count',
      '1',
      '--timeout-ms',
      '300',
    ]);
    await server.waitFor(new RegExp(`^udp ${SPOOF_A[4]} `), from);
    assert.equal((await traffic(a, ['ping', '--ip', b.ipv4, '--count', '1'])).received, 1);

    assert.deepEqual(await ctl('detach', String(ia)), [ifindexOf(b)], 'detaching again is fine');
    assert.deepEqual(await ctl('detach', String(ifindexOf(b))), []);
    assert.deepEqual(readEndpoints(world.bpfRoot), []);
    assert.deepEqual(await nodeLinks(), []);
    assert.deepEqual(tcFilters(b), { ingress: 0, egress: 0 });
    assert.equal(fs.existsSync(lxcLinkDir(pinLayout(world.bpfRoot))), false, 'nothing pinned for endpoints');
  });
});

// ---- the parser and the conntrack state machine, packet by packet ----

describe('packet by packet (BPF_PROG_TEST_RUN on the loaded programs)', () => {
  // A test run sees the packet on the loopback device of this process's namespace: ifindex 1,
  // which nothing attaches to. It gets an endpoint entry of its own.
  const EP = { endpointId: 900, ipv4: '10.244.9.9', ipv6: 'fd00:10:244::909' };
  const PEER4 = '10.244.9.10';
  const PEER6 = 'fd00:10:244::90a';
  let obj: BpfObject;
  let fromPod: ProgramHandle;
  let toPod: ProgramHandle;
  let endpoints: RawMap;

  before(() => {
    obj = BpfObject.load(path.join(defaultObjectDir(), 'lxc.o'), { mapPinDir: pinLayout(world.bpfRoot).maps });
    fromPod = obj.programs().find((p) => p.name === 'lxc_from_pod')!;
    toPod = obj.programs().find((p) => p.name === 'lxc_to_pod')!;
    endpoints = RawMap.openPinned(path.join(pinLayout(world.bpfRoot).maps, 'lxc_endpoints'));
    endpoints.update(ifindexKey(1), encode(endpointInfo, { ...EP, flags: 0 }));
  });
  after(() => {
    dp?.detach(1); // the entry, its conntrack entries and counters
    endpoints?.close();
    obj?.close();
  });
  beforeEach(() => takeEvents());

  const run = (prog: ProgramHandle, pkt: Buffer) => progTestRun(prog.fd, pkt, prog.name).retval;

  function expectDrop(prog: ProgramHandle, pkt: Buffer, reason: string, what: string): EventHeader {
    assert.equal(run(prog, pkt), SHOT, `${what}: dropped`);
    const evs = takeEvents();
    assert.deepEqual(
      evs.map((e) => e.reason),
      [reason],
      `${what}: one ${reason} event`,
    );
    return evs[0]!;
  }

  it("IPv4 and IPv6 from the endpoint's own addresses pass; ARP passes", () => {
    assert.equal(run(fromPod, ipv4(EP.ipv4, PEER4, 17, udp(1000, 53))), PASS);
    assert.equal(run(fromPod, ipv6(EP.ipv6, PEER6, 17, udp(1000, 53))), PASS);
    assert.equal(run(fromPod, eth(0x0806, Buffer.alloc(28))), PASS);
    assert.deepEqual(takeEvents(), []);
  });

  it('spoofed sources are dropped, and so are link-local ones unless they do neighbour discovery', () => {
    const ev = expectDrop(fromPod, ipv4('10.244.9.99', PEER4, 17, udp(1000, 53)), 'spoofed-source', 'IPv4');
    assert.deepEqual(
      [ev.endpointId, ev.ifindex, ev.direction, ev.saddr, ev.daddr, ev.sport, ev.dport],
      [900, 1, 'egress', '10.244.9.99', PEER4, 1000, 53],
    );
    expectDrop(fromPod, ipv6('fd00:10:244::999', PEER6, 17, udp(1000, 53)), 'spoofed-source', 'IPv6');
    expectDrop(fromPod, ipv6('fe80::1234', 'fe80::1', 58, icmp(128, 7)), 'spoofed-source', 'echo from link-local');
    expectDrop(
      fromPod,
      ipv6('fd00:10:244::999', 'ff02::1:ff00:1', 58, icmp(135)),
      'spoofed-source',
      'NS from a foreign global address',
    );
    assert.equal(run(fromPod, ipv6('::', 'ff02::1:ff00:1', 58, icmp(135))), PASS, 'DAD probe from ::');
    assert.equal(run(fromPod, ipv6('fe80::1234', 'ff02::2', 58, icmp(133))), PASS, 'router solicitation');
    assert.equal(
      run(fromPod, ipv6('fe80::1234', 'ff02::16', 58, icmp(143), [0])),
      PASS,
      'MLDv2 report behind hop-by-hop',
    );
    assert.equal(run(fromPod, ipv6(EP.ipv6, 'fe80::1', 58, icmp(135))), PASS, 'NS from the own address');
    assert.deepEqual(takeEvents(), []);
  });

  it('a foreign or tagged ethertype is dropped from the pod, passed to it', () => {
    assert.equal(expectDrop(fromPod, eth(0x88b5, Buffer.alloc(46)), 'unsupported-l3', '0x88b5').ethertype, 0x88b5);
    expectDrop(
      fromPod,
      eth(0x8100, Buffer.concat([Buffer.from([0, 5, 0x08, 0x00]), ipv4(EP.ipv4, PEER4, 17, udp(1, 2)).subarray(14)])),
      'unsupported-l3',
      '802.1Q in the frame',
    );
    assert.equal(run(toPod, eth(0x88b5, Buffer.alloc(46))), PASS);
  });

  // (A test run refuses packets shorter than their IP header: the real-traffic test above sends
  // one through the veth.)
  it('truncated and inconsistent headers are dropped as malformed, both ways', () => {
    expectDrop(
      fromPod,
      ipv4(EP.ipv4, PEER4, 6, tcp(1000, 80, SYN)).subarray(0, 14 + 20 + 8),
      'malformed',
      'eight bytes of a TCP header',
    );
    expectDrop(
      fromPod,
      ipv4(EP.ipv4, PEER4, 17, udp(1, 2)).subarray(0, 14 + 20 + 2),
      'malformed',
      'half the UDP ports',
    );
    expectDrop(
      fromPod,
      ipv4(EP.ipv4, PEER4, 1, icmp(8, 1)).subarray(0, 14 + 20 + 4),
      'malformed',
      'an ICMP header without its id',
    );
    expectDrop(fromPod, ipv4(EP.ipv4, PEER4, 17, udp(1, 2), { ihl: 4 }), 'malformed', 'IHL 4');
    expectDrop(
      fromPod,
      ipv6(EP.ipv6, PEER6, 17, udp(1, 2), [0]).subarray(0, 14 + 40 + 1),
      'malformed',
      'an IPv6 extension header cut short',
    );
    expectDrop(
      fromPod,
      ipv6(EP.ipv6, PEER6, 17, udp(1, 2), [0, 60, 60, 60, 60]),
      'malformed',
      'five extension headers',
    );
    assert.equal(run(fromPod, ipv6(EP.ipv6, PEER6, 17, udp(1, 2), [0, 60, 60, 60])), PASS, 'four are fine');
    const ev = expectDrop(
      toPod,
      ipv4(PEER4, EP.ipv4, 6, tcp(80, 1000, ACK)).subarray(0, 14 + 20 + 13),
      'malformed',
      'to the pod',
    );
    assert.equal(ev.direction, 'ingress');
  });

  it('a non-first fragment passes untracked', () => {
    const before = readConntrack(world.bpfRoot).length;
    assert.equal(run(fromPod, ipv4(EP.ipv4, PEER4, 17, Buffer.alloc(8, 0xee), { fragOffset: 100 })), PASS);
    assert.equal(run(fromPod, ipv6(EP.ipv6, PEER6, 17, Buffer.alloc(8, 0xee), [44])), PASS, 'first IPv6 fragment');
    assert.equal(readConntrack(world.bpfRoot).length, before + 1, 'only the first fragment (offset 0) opens a flow');
  });

  it('TCP: SYN, SYN-ACK, ACK, FIN, FIN; a RST closes; a new SYN on a closed flow starts over', () => {
    const key = { family: 4 as const, proto: 6, epAddr: EP.ipv4, peerAddr: PEER4, epPort: 40000, peerPort: 80 };
    const out = (flags: number) => run(fromPod, ipv4(EP.ipv4, PEER4, 6, tcp(40000, 80, flags)));
    const back = (flags: number) => run(toPod, ipv4(PEER4, EP.ipv4, 6, tcp(80, 40000, flags)));
    const state = () => ctOne(key).state;
    assert.equal(out(SYN), PASS);
    assert.equal(state(), 'syn-sent');
    back(SYN | ACK);
    assert.equal(state(), 'syn-recv');
    out(ACK);
    assert.equal(state(), 'established');
    back(ACK);
    out(FIN | ACK);
    assert.equal(state(), 'closing');
    back(ACK);
    assert.equal(state(), 'closing');
    back(FIN | ACK);
    assert.equal(state(), 'closed');
    const closed = ctOne(key);
    assert.deepEqual([closed.origin, closed.packetsOrig, closed.packetsReply], ['egress', 3n, 4n]);
    out(SYN);
    const reopened = ctOne(key);
    assert.deepEqual([reopened.state, reopened.packetsOrig, reopened.packetsReply], ['syn-sent', 1n, 0n]);
    assert.ok(reopened.createdNs > closed.createdNs, 'a new entry');
    back(RST);
    assert.equal(state(), 'closed');
  });

  it('TCP picked up mid-stream counts as established; a RST alone opens nothing', () => {
    run(toPod, ipv4(PEER4, EP.ipv4, 6, tcp(5555, 8080, ACK)));
    const e = ctOne({ family: 4, proto: 6, epAddr: EP.ipv4, epPort: 8080, peerPort: 5555 });
    assert.deepEqual([e.state, e.origin], ['established', 'ingress']);
    assert.equal(run(fromPod, ipv4(EP.ipv4, PEER4, 6, tcp(6666, 80, RST))), PASS);
    assert.deepEqual(ctFind({ family: 4, proto: 6, epAddr: EP.ipv4, epPort: 6666 }), []);
  });

  it('reports new connections by default, and every packet (replies marked) when told to', () => {
    const config = RawMap.openPinned(path.join(pinLayout(world.bpfRoot).maps, 'events_config'));
    const setLevel = (traceLevel: 'new-and-drops' | 'every-packet') =>
      config.update(Buffer.alloc(4), encode(eventsConfigValue, { traceLevel }));
    const traces = () =>
      takeOtherEvents()
        .filter((e) => e.type === 'trace')
        .map((e) => {
          const t = pktTraceEvent.decode(rawOf.get(e)!);
          return [e.direction, e.saddr, e.dport, t.ctFlags];
        });
    try {
      takeOtherEvents();
      assert.equal(run(fromPod, ipv4(EP.ipv4, PEER4, 17, udp(41000, 5353))), PASS);
      assert.equal(run(toPod, ipv4(PEER4, EP.ipv4, 17, udp(5353, 41000))), PASS);
      assert.equal(run(fromPod, ipv4(EP.ipv4, PEER4, 17, udp(41000, 5353))), PASS);
      assert.deepEqual(traces(), [['egress', EP.ipv4, 5353, TRACE_F_NEW]], 'by default: the new connection only');
      setLevel('every-packet');
      assert.equal(run(toPod, ipv4(PEER4, EP.ipv4, 17, udp(5353, 41000))), PASS);
      assert.equal(run(fromPod, ipv4(EP.ipv4, PEER4, 17, udp(41000, 5353))), PASS);
      assert.deepEqual(
        traces(),
        [
          ['ingress', PEER4, 41000, TRACE_F_REPLY],
          ['egress', EP.ipv4, 5353, 0],
        ],
        'every packet, the reply marked',
      );
    } finally {
      setLevel('new-and-drops');
      config.close();
    }
  });

  it('an interface without an endpoint entry drops everything, both ways, under endpoint 0', () => {
    const before = dp.counters(0);
    endpoints.delete(ifindexKey(1));
    try {
      const ev = expectDrop(fromPod, ipv4(EP.ipv4, PEER4, 17, udp(1, 2)), 'unknown-endpoint', 'from the pod');
      assert.deepEqual([ev.endpointId, ev.ifindex, ev.saddr], [0, 1, EP.ipv4]);
      expectDrop(toPod, eth(0x0806, Buffer.alloc(28)), 'unknown-endpoint', 'ARP to the pod');
    } finally {
      endpoints.update(ifindexKey(1), encode(endpointInfo, { ...EP, flags: 0 }));
    }
    const after = dp.counters(0);
    assert.equal(after.egress.drops - before.egress.drops, 1n);
    assert.equal(after.ingress.drops - before.ingress.drops, 1n);
  });
});
