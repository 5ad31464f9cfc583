// Policy in the kernel, packet by packet: policies compiled by src/state/policy-compiler.ts,
// written by PolicyWriter into the pinned ipcache and policy maps, and packets run through the
// loaded lxc programs with BPF_PROG_TEST_RUN. Every verdict is checked against what the
// compiler's own evaluate() (what `weft explain` uses) says, and against the spec's answer.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { encode } from '../../src/datapath/codec.js';
import {
  TRACE_F_NEW,
  endpointInfo,
  ifindexKey,
  pktTraceEvent,
  policyVerdictEvent,
  type EventHeader,
} from '../../src/datapath/endpoint-codecs.js';
import { openEvents, type EventReader } from '../../src/datapath/endpoint-reader.js';
import { BpfObject, RawMap, progTestRun, type ProgramHandle } from '../../src/datapath/libbpf.js';
import { ensurePinDirs } from '../../src/datapath/pins.js';
import { PolicyWriter } from '../../src/datapath/policy-writer.js';
import { defaultObjectDir } from '../../src/datapath/programs.js';
import { endpointFlags } from '../../src/agent/policy.js';
import {
  compilePolicy,
  evaluate,
  lookupIpcache,
  type CompiledPolicy,
  type PolicyInputs,
} from '../../src/state/policy-compiler.js';
import type { NetworkPolicy } from '../../src/state/resources.js';
import { validateResource } from '../../src/state/validate.js';
import { World } from '../harness/world.js';
import { ACK, PASS, SHOT, SYN, ipv4, ipv6, tcp, udp } from '../harness/packets.js';

const SERVER = { id: 900, ipv4: '10.244.9.9', ipv6: 'fd00:10:244::909' };
const CLIENT4 = '10.244.9.10'; // x/client
const CLIENT6 = 'fd00:10:244::90a';
const OTHER4 = '10.244.9.11'; // y/other: same labels as x/client, another namespace
const HOST4 = '10.0.0.1';

function policy(namespace: string, name: string, spec: object): NetworkPolicy {
  const r = validateResource({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace, name },
    spec,
  });
  assert.ok(r.ok === true, JSON.stringify(r));
  return r.value as NetworkPolicy;
}

const POLICIES = [
  policy('x', 'allow-clients', {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [
      {
        from: [{ podSelector: { matchLabels: { app: 'client' } } }],
        ports: [{ port: 'http' }, { protocol: 'UDP', port: 8000, endPort: 8003 }],
      },
    ],
  }),
  policy('x', 'allow-block', {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.128/25'] } }], ports: [{ port: 443 }] }],
  }),
  policy('x', 'egress-to-y', {
    podSelector: { matchLabels: { app: 'server' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'y' } } }] }],
  }),
];

const inputs = (policies: NetworkPolicy[]): PolicyInputs => ({
  policies,
  namespaces: new Map<string, Record<string, string>>([
    ['x', {}],
    ['y', { team: 'y' }],
  ]),
  pods: [
    {
      namespace: 'x',
      name: 'server',
      labels: { app: 'server' },
      ips: [SERVER.ipv4, SERVER.ipv6],
      ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }],
    },
    { namespace: 'x', name: 'client', labels: { app: 'client' }, ips: [CLIENT4, CLIENT6], ports: [] },
    { namespace: 'y', name: 'other', labels: { app: 'client' }, ips: [OTHER4], ports: [] },
  ],
  endpoints: [{ id: SERVER.id, namespace: 'x', name: 'server', ips: [SERVER.ipv4, SERVER.ipv6] }],
  hostIps: [HOST4],
});

let world: World;
let obj: BpfObject;
let fromPod: ProgramHandle;
let toPod: ProgramHandle;
let endpoints: RawMap;
let ipcache: RawMap;
let policyMap: RawMap;
let writer: PolicyWriter;
let reader: EventReader;
let compiled: CompiledPolicy;
const events: EventHeader[] = [];
const raws = new WeakMap<EventHeader, Buffer>();
let sport = 30000;

/** Compiles, writes, and sets the test endpoint's isolation as the agent would. */
function apply(policies: NetworkPolicy[]): void {
  compiled = compilePolicy(inputs(policies));
  writer.write({ ipcache: { all: compiled.ipcache }, endpoints: compiled.endpoints }, () => {
    endpoints.update(
      ifindexKey(1),
      encode(endpointInfo, {
        endpointId: SERVER.id,
        flags: endpointFlags(compiled.endpoints.get(SERVER.id)),
        ipv4: SERVER.ipv4,
        ipv6: SERVER.ipv6,
      }),
    );
  });
}

const run = (prog: ProgramHandle, pkt: Buffer) => progTestRun(prog.fd, pkt, prog.name).retval;
const takeEvents = () => (reader.consume(), events.splice(0));

/** A new connection towards the server (ingress) or from it (egress): the kernel's verdict,
 *  checked against evaluate()'s. */
function newConnection(direction: 'ingress' | 'egress', peer: string, proto: 6 | 17, port: number): boolean {
  const p = ++sport;
  const l4 = proto === 6 ? tcp(p, port, SYN) : udp(p, port);
  const v6 = peer.includes(':');
  const me = v6 ? SERVER.ipv6 : SERVER.ipv4;
  const mk = v6 ? ipv6 : ipv4;
  const verdict = direction === 'ingress' ? run(toPod, mk(peer, me, proto, l4)) : run(fromPod, mk(me, peer, proto, l4));
  assert.ok(verdict === PASS || verdict === SHOT);
  const explained = evaluate(
    compiled.endpoints.get(SERVER.id)!,
    direction,
    lookupIpcache(compiled.ipcache, peer),
    proto,
    port,
  ).allowed;
  assert.equal(
    verdict === PASS,
    explained,
    `${direction} ${peer} ${proto}/${port}: the kernel and evaluate() disagree`,
  );
  return verdict === PASS;
}

before(() => {
  world = World.create();
  const maps = ensurePinDirs(world.bpfRoot).maps;
  obj = BpfObject.load(path.join(defaultObjectDir(), 'lxc.o'), { mapPinDir: maps });
  fromPod = obj.programs().find((p) => p.name === 'lxc_from_pod')!;
  toPod = obj.programs().find((p) => p.name === 'lxc_to_pod')!;
  endpoints = RawMap.openPinned(path.join(maps, 'lxc_endpoints'));
  ipcache = RawMap.openPinned(path.join(maps, 'ipcache'));
  policyMap = RawMap.openPinned(path.join(maps, 'policy'));
  writer = new PolicyWriter(ipcache, policyMap);
  reader = openEvents(world.bpfRoot, (ev, raw) => {
    events.push(ev);
    raws.set(ev, Buffer.from(raw));
  });
  apply(POLICIES);
});

after(async () => {
  reader?.close();
  for (const m of [endpoints, ipcache, policyMap]) m?.close();
  obj?.close();
  await world?.dispose();
});

beforeEach(() => takeEvents());

describe('ingress, for a pod three policies select', () => {
  it("pods matching podSelector in the policy's namespace, on the named port (resolved to 80) only", () => {
    assert.equal(newConnection('ingress', CLIENT4, 6, 80), true);
    assert.equal(newConnection('ingress', CLIENT6, 6, 80), true, 'over IPv6 too');
    assert.equal(newConnection('ingress', CLIENT4, 6, 81), false);
    assert.equal(newConnection('ingress', CLIENT4, 17, 80), false, 'the named port is TCP');
  });

  it('a denied connection is dropped and reported as policy-denied, with the endpoint and direction, after a denied verdict', () => {
    assert.equal(newConnection('ingress', CLIENT4, 6, 22), false);
    const evs = takeEvents();
    assert.deepEqual(
      evs.map((e) => e.type),
      ['policy-verdict', 'drop'],
    );
    const verdict = policyVerdictEvent.decode(raws.get(evs[0]!)!);
    assert.deepEqual(
      { allowed: verdict.allowed, ruleId: verdict.ruleId, peer: verdict.peerIdentity },
      { allowed: false, ruleId: 0, peer: lookupIpcache(compiled.ipcache, CLIENT4).identity },
    );
    const drop = evs[1]!;
    assert.equal(drop.reason, 'policy-denied');
    assert.equal(drop.endpointId, SERVER.id);
    assert.equal(drop.direction, 'ingress');
    assert.equal(drop.dport, 22);
  });

  it('an allowed connection reports the rule that allowed it, then a new-connection trace', () => {
    assert.equal(newConnection('ingress', CLIENT4, 6, 80), true);
    const evs = takeEvents();
    assert.deepEqual(
      evs.map((e) => e.type),
      ['policy-verdict', 'trace'],
    );
    const verdict = policyVerdictEvent.decode(raws.get(evs[0]!)!);
    assert.equal(verdict.allowed, true);
    assert.deepEqual(compiled.rules.get(verdict.ruleId), {
      id: verdict.ruleId,
      policy: 'x/allow-clients',
      direction: 'ingress',
      rule: 'spec.ingress[0]',
    });
    assert.equal(pktTraceEvent.decode(raws.get(evs[1]!)!).ctFlags, TRACE_F_NEW);
  });

  it('the same labels in another namespace do not match a podSelector alone', () => {
    assert.equal(newConnection('ingress', OTHER4, 6, 80), false);
  });

  it('a port range allows every port of it and nothing beside it', () => {
    for (const port of [8000, 8001, 8002, 8003])
      assert.equal(newConnection('ingress', CLIENT4, 17, port), true, `UDP ${port}`);
    for (const port of [7999, 8004]) assert.equal(newConnection('ingress', CLIENT4, 17, port), false, `UDP ${port}`);
  });

  it('an ipBlock allows its addresses except the exception, on its port', () => {
    assert.equal(newConnection('ingress', '192.0.2.5', 6, 443), true);
    assert.equal(newConnection('ingress', '192.0.2.200', 6, 443), false, 'inside the except');
    assert.equal(newConnection('ingress', '198.51.100.7', 6, 443), false, 'outside the block');
    assert.equal(newConnection('ingress', '192.0.2.5', 6, 80), false, 'another port');
  });

  it("the pod's node may always connect", () => {
    assert.equal(newConnection('ingress', HOST4, 6, 12345), true);
  });
});

describe('egress and replies', () => {
  it('new connections only to what an egress rule allows; replies to allowed ingress pass', () => {
    assert.equal(newConnection('egress', OTHER4, 6, 5000), true, 'namespace y is allowed');
    assert.equal(newConnection('egress', CLIENT4, 6, 5000), false, 'namespace x is not');
    // An allowed connection in: its replies go out although egress to x/client is not allowed.
    const p = ++sport;
    assert.equal(run(toPod, ipv4(CLIENT4, SERVER.ipv4, 6, tcp(p, 80, SYN))), PASS);
    assert.equal(run(fromPod, ipv4(SERVER.ipv4, CLIENT4, 6, tcp(80, p, SYN | ACK))), PASS);
    assert.equal(run(toPod, ipv4(CLIENT4, SERVER.ipv4, 6, tcp(p, 80, ACK))), PASS);
  });
});

describe('changes', () => {
  it('a policy removed: new connections follow at once, an established one carries on', () => {
    const p = ++sport;
    assert.equal(run(toPod, ipv4(CLIENT4, SERVER.ipv4, 6, tcp(p, 80, SYN))), PASS);
    assert.equal(run(fromPod, ipv4(SERVER.ipv4, CLIENT4, 6, tcp(80, p, SYN | ACK))), PASS);
    apply(POLICIES.filter((x) => x.metadata.name !== 'allow-clients'));
    assert.equal(newConnection('ingress', CLIENT4, 6, 80), false, 'a new connection is denied');
    assert.equal(run(toPod, ipv4(CLIENT4, SERVER.ipv4, 6, tcp(p, 80, ACK))), PASS, 'the established one carries on');
    assert.equal(newConnection('ingress', '192.0.2.5', 6, 443), true, 'the other policies stay');
  });

  it('no policy selecting the pod: it is open both ways, and the maps hold nothing for it', () => {
    apply([]);
    assert.equal(newConnection('ingress', OTHER4, 6, 1), true);
    assert.equal(newConnection('egress', CLIENT4, 17, 9), true);
    assert.deepEqual(writer.size.entries, 0);
    apply(POLICIES);
    assert.equal(newConnection('ingress', OTHER4, 6, 1), false);
  });
});
