// The observer under load, in a running agent: the kernel produces drop events as fast as
// BPF_PROG_TEST_RUN can run the pod program (a few million a second, far faster than real
// traffic here), and every one of them must be either read by the observer or reported lost,
// in `weft status` and in /metrics alike. Nothing is lost silently.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentStatus, ObserverStatus } from '../../src/contract/agent-api.js';
import { BpfObject, closeFd, mapInfo, objGet, progTestRun, type ProgramHandle } from '../../src/datapath/libbpf.js';
import { pinLayout } from '../../src/datapath/pins.js';
import { defaultObjectDir } from '../../src/datapath/programs.js';
import { EVENTS_RING_BYTES } from '../../src/datapath/endpoint-codecs.js';
import type { FlowStreamItem } from '../../src/contract/flow.js';
import { apiStream } from '../../src/lib/unix-http.js';
import { AgentProcess } from '../harness/agent.js';
import { parsePrometheusText, sampleValue, type Exposition } from '../harness/prom-text.js';
import { World } from '../harness/world.js';

/** Events per test: several times what the kernel's ring (8 MiB) holds, about 116,000 drop
 *  events. */
const EVENTS = 2_000_000;
const CHUNK = 50_000;

const oldRing = () => path.join(pinLayout(agent.bpfRoot).maps, 'events');

let world: World;
let agent: AgentProcess;
let obj: BpfObject;
let fromPod: ProgramHandle;

async function observer(): Promise<ObserverStatus> {
  const s = await agent.get<AgentStatus>('/v1/status');
  return s.observer ?? assert.fail('the agent reports no observer');
}

const accounted = (o: ObserverStatus) => o.flowsTotal + o.lost.kernel + o.lost.decode;

async function metrics(): Promise<Exposition> {
  return parsePrometheusText(await agent.metrics());
}

/** Runs the pod program `n` times on a packet from an interface no endpoint owns (the test's
 *  loopback): each run drops it with reason unknown-endpoint and sends one drop event. */
function produce(n: number): void {
  const pkt = Buffer.alloc(64);
  pkt.writeUInt16BE(0x0800, 12);
  for (let done = 0; done < n; done += CHUNK) progTestRun(fromPod.fd, pkt, fromPod.name, Math.min(CHUNK, n - done));
}

/** Polls until the observer has accounted for `want` events, and a little longer, to see that
 *  no more arrive than were produced. */
async function settle(want: number): Promise<ObserverStatus> {
  const deadline = Date.now() + 15_000;
  let o = await observer();
  while (accounted(o) < want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    o = await observer();
  }
  await new Promise((r) => setTimeout(r, 200));
  return observer();
}

before(async () => {
  world = World.create();
  agent = new AgentProcess(world, { where: 'host', extraArgs: ['--flow-buffer-size', '4096'] });
  // An events ring as an older agent pinned it, 1 MiB: the agent replaces it (it holds no
  // state), where a map with state of another shape would stop it.
  fs.mkdirSync(pinLayout(agent.bpfRoot).maps, { recursive: true });
  execFileSync('bpftool', [
    'map',
    'create',
    oldRing(),
    'type',
    'ringbuf',
    'key',
    '0',
    'value',
    '0',
    'entries',
    String(1 << 20),
    'name',
    'events',
  ]);
  await agent.start();
  // The pod program, sharing the agent's pinned maps: its events go to the agent's ring.
  obj = BpfObject.load(path.join(defaultObjectDir(), 'lxc.o'), { mapPinDir: pinLayout(agent.bpfRoot).maps });
  fromPod = obj.programs().find((p) => p.name === 'lxc_from_pod') ?? assert.fail('no lxc_from_pod in lxc.o');
});

after(async () => {
  obj?.close();
  await agent?.stop();
  await world?.dispose();
});

describe('the observer under load', () => {
  it('replaced the smaller events ring an older agent had pinned', () => {
    const fd = objGet(oldRing());
    try {
      assert.equal(mapInfo(fd).maxEntries, EVENTS_RING_BYTES);
    } finally {
      closeFd(fd);
    }
  });

  it('accounts for every event the kernel produced: read by the observer or counted lost', async () => {
    const before = await observer();
    const metricsBefore = await metrics();
    produce(EVENTS);
    const o = await settle(accounted(before) + EVENTS);
    const read = o.flowsTotal - before.flowsTotal;
    const lostKernel = o.lost.kernel - before.lost.kernel;
    const lostDecode = o.lost.decode - before.lost.decode;
    assert.equal(
      read + lostKernel + lostDecode,
      EVENTS,
      `produced ${EVENTS}, read ${read}, lost in the kernel ${lostKernel}, undecodable ${lostDecode}`,
    );
    assert.equal(lostDecode, 0, 'every record the kernel wrote is one the observer can read');
    assert.ok(read > 0, 'the observer read events');
    // The flow ring holds the newest ones, up to its capacity.
    assert.deepEqual(o.flowRing, { flows: 4096, capacity: 4096 });
    assert.equal(o.kernelRing.sizeBytes, EVENTS_RING_BYTES);

    // /metrics tells the same story.
    const m = await metrics();
    const delta = (name: string, labels: Record<string, string>) =>
      sampleValue(m, name, labels) - sampleValue(metricsBefore, name, labels);
    assert.equal(delta('weft_flows_processed_total', { type: 'drop', verdict: 'DROPPED' }), read);
    assert.equal(delta('weft_drops_total', { reason: 'unknown-endpoint', direction: 'egress' }), read);
    assert.equal(sampleValue(m, 'weft_flows_lost_total', { stage: 'kernel' }), o.lost.kernel);
    assert.equal(sampleValue(m, 'weft_flows_lost_total', { stage: 'decode' }), o.lost.decode);
    assert.equal(sampleValue(m, 'weft_flow_buffer_flows'), 4096);
    assert.equal(sampleValue(m, 'weft_observer_up'), 1);
  });

  it('a follower that falls behind is told how many flows it lost; what it was not told of reached it', async () => {
    let received = 0;
    let lost = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const ac = new AbortController();
    const before = await observer();
    // The follower stops reading after its first flow, as a stuck `weft observe -f` would.
    const following = apiStream(
      agent.socket,
      '/v1/flows?follow=1&type=drop',
      async (item) => {
        const it = item as FlowStreamItem;
        if ('lost' in it) lost += it.lost.count;
        else if (++received === 1) await gate;
      },
      { signal: ac.signal },
    );
    await new Promise((r) => setTimeout(r, 200));
    produce(1);
    for (let i = 0; i < 100 && received === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(received, 1, 'the follower got the first flow');
    produce(200_000); // fifty times the flow ring
    const o = await settle(accounted(before) + 200_001);
    const read = o.flowsTotal - before.flowsTotal;
    release();
    for (let i = 0; i < 250 && received + lost < read; i++) await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await following;
    assert.ok(lost > 0, 'the follower fell behind the ring');
    assert.equal(
      received + lost,
      read,
      `read by the observer ${read}; the follower received ${received} and was told of ${lost} lost`,
    );
    assert.ok((await observer()).lost.follow >= lost, 'weft status counts what followers lost');
  });
});

describe('/metrics', () => {
  it('parses as Prometheus text, with every family of the README', async () => {
    const m = await metrics();
    for (const [family, type] of Object.entries({
      weft_flows_processed_total: 'counter',
      weft_drops_total: 'counter',
      weft_flows_lost_total: 'counter',
      weft_flow_buffer_flows: 'gauge',
      weft_flow_buffer_capacity: 'gauge',
      weft_observer_up: 'gauge',
      weft_bpf_map_entries: 'gauge',
      weft_bpf_map_max_entries: 'gauge',
      weft_bpf_ringbuf_size_bytes: 'gauge',
      weft_agent_sync_lag_seconds: 'gauge',
      weft_agent_ready: 'gauge',
      weft_lb_frontends: 'gauge',
      weft_datapath_sync_duration_seconds: 'histogram',
    })) {
      // prom-client declares counters without their _total suffix.
      const declared = m.types.get(family) ?? m.types.get(family.replace(/_total$/, ''));
      assert.equal(declared, type, `${family} is a ${type}`);
    }
    assert.equal(sampleValue(m, 'weft_bpf_ringbuf_size_bytes', { map: 'events' }), EVENTS_RING_BYTES);
    assert.equal(
      m.samples.filter((x) => x.name === 'weft_bpf_map_max_entries' && x.labels['map'] === 'events').length,
      0,
      'no bytes among entries',
    );
    assert.ok(sampleValue(m, 'weft_bpf_map_max_entries', { map: 'lb_services' }) > 0);
    assert.equal(sampleValue(m, 'weft_agent_ready'), 1);
    assert.equal(sampleValue(m, 'weft_agent_sync_lag_seconds'), 0);
  });
});
