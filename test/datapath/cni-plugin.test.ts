// The CNI plugin (build/bin/weft-cni) invoked as a container runtime invokes it (CNI_* in the
// environment, the network configuration on stdin) from the node's network namespace, against
// the real weftd, on the real kernel: every verb of CNI spec 1.1 and every error path.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { AgentStatus, EndpointRecord } from '../../src/contract/agent-api.js';
import { GATEWAY4, GATEWAY6, HOST_VETH_MAC, hostIfName } from '../../src/contract/cni.js';
import { cni, ipIn, ipJson, Sandboxes, sysctlIn, type CniOutcome, type Sandbox } from '../harness/cni.js';
import { AgentProcess } from '../harness/agent.js';
import { probe, startBackend } from '../harness/pods.js';
import { World } from '../harness/world.js';

const PODS4 = '10.244.0.0/24';
const PODS6 = 'fd00:10:244::/64';
const SMALL = '10.244.1.0/30'; // two usable addresses: .1 and .2

// Results are checked field by field; their types come from the JSON itself. The agent's answers
// are typed by its API's contract (src/contract/agent-api.ts).
type Json = any;

interface Attachment {
  box: Sandbox;
  id: string;
  ifName: string;
  result: Json;
  hostIf: string;
  ipv4?: string;
  ipv6?: string;
}

let world: World;
let agent: AgentProcess;
let small: AgentProcess;
let boxes: Sandboxes;
let hostForwarding: string;

function conf(socket = agent.socket, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion: '1.1.0', name: 'weft', type: 'weft-cni', agentSocket: socket, mtu: 1500, ...extra };
}

let seq = 0;
const newId = () => `cnitest${++seq}-${world.id}`;

function addCall(
  box: Sandbox,
  opts: { id?: string; ifName?: string; socket?: string; config?: object; args?: string } = {},
) {
  return {
    command: 'ADD',
    containerId: opts.id ?? newId(),
    netns: box.path,
    ifName: opts.ifName ?? 'eth0',
    args: opts.args ?? `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${box.name}`,
    config: opts.config ?? conf(opts.socket),
  };
}

function assertOk(r: CniOutcome, what: string): void {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
}

/** ADD that must succeed; returns what it set up. */
async function add(box: Sandbox, opts: Parameters<typeof addCall>[1] = {}): Promise<Attachment> {
  const call = addCall(box, opts);
  const r = await cni(world, call);
  assertOk(r, `ADD ${call.containerId}`);
  const result = r.json as Json;
  const addr = (family: string) =>
    (result.ips as Json[])
      .map((i) => String(i.address).replace(/\/\d+$/, ''))
      .find((ip) => (family === '6') === ip.includes(':'));
  return {
    box,
    id: call.containerId,
    ifName: call.ifName,
    result,
    hostIf: hostIfName(call.containerId, call.ifName),
    ipv4: addr('4'),
    ipv6: addr('6'),
  };
}

function delCall(a: Pick<Attachment, 'id' | 'ifName' | 'box'>, opts: { netns?: string | null; socket?: string } = {}) {
  return {
    command: 'DEL',
    containerId: a.id,
    ifName: a.ifName,
    ...(opts.netns !== null && { netns: opts.netns ?? a.box.path }),
    config: conf(opts.socket),
  };
}

function checkCall(a: Attachment, config?: object) {
  return {
    command: 'CHECK',
    containerId: a.id,
    netns: a.box.path,
    ifName: a.ifName,
    config: config ?? conf(agent.socket, { prevResult: a.result }),
  };
}

const hostLinks = () => ipJson<Json[]>(world.nodeNetns, 'link', 'show').map((l) => l.ifname as string);
const endpoints = (on = agent) => on.get<EndpointRecord[]>('/v1/endpoints');
const poolUsed = async (cidr: string, on = agent) => {
  const pool = (await on.get<AgentStatus>('/v1/status')).podCidrs.find((p) => p.cidr === cidr);
  assert.ok(pool, `weft status has the pod CIDR ${cidr}`);
  return pool.used;
};

function errorOf(r: CniOutcome): { code: number; msg: string; details?: string; cniVersion: string } {
  assert.equal(r.code, 1, `expected an error result, got exit ${r.code}: ${r.stdout}${r.stderr}`);
  assert.ok(r.json, `the error result is JSON: ${r.stdout}`);
  const e = r.json as Json;
  assert.equal(typeof e.code, 'number');
  assert.equal(typeof e.msg, 'string');
  return e;
}

before(async () => {
  hostForwarding = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
  world = World.create();
  boxes = new Sandboxes(world);
  agent = new AgentProcess(world, { where: 'node', name: 'main', extraArgs: ['--pod-cidr', `${PODS4},${PODS6}`] });
  small = new AgentProcess(world, { where: 'node', name: 'small', extraArgs: ['--pod-cidr', SMALL] });
  await Promise.all([agent.start(), small.start()]);
});

after(async () => {
  await agent?.stop();
  await small?.stop();
  await world?.dispose();
});

describe('VERSION', () => {
  it('prints the spec versions the plugin speaks, with no configuration needed', async () => {
    const r = await cni(world, { command: 'VERSION' });
    assertOk(r, 'VERSION');
    assert.deepEqual(r.json, { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });
});

describe('ADD', () => {
  let a: Attachment;
  let b: Attachment;

  before(async () => {
    a = await add(boxes.add());
    b = await add(boxes.add());
  });

  it('gives the pod CNI_IFNAME, up, with the MTU and the allocated /32 and /128', () => {
    const [link] = ipJson<Json[]>(a.box.name, 'addr', 'show', 'eth0');
    assert.ok((link.flags as string[]).includes('UP'), `eth0 is up: ${link.flags}`);
    assert.equal(link.mtu, 1500);
    const global = (link.addr_info as Json[])
      .filter((i) => i.scope === 'global')
      .map((i) => `${i.local}/${i.prefixlen}`)
      .sort();
    assert.deepEqual(global, [`${a.ipv4}/32`, `${a.ipv6}/128`].sort());
    assert.match(a.ipv4!, /^10\.244\.0\.\d+$/);
    assert.match(a.ipv6!, /^fd00:10:244::[0-9a-f]+$/);
    assert.notEqual(a.ipv4, b.ipv4);
    assert.notEqual(a.ipv6, b.ipv6);
    const [lo] = ipJson<Json[]>(a.box.name, 'link', 'show', 'lo');
    assert.ok((lo.flags as string[]).includes('UP'), 'lo is up');
  });

  it('routes the pod through link-local gateways, and the node back to the pod', () => {
    const r4 = ipJson<Json[]>(a.box.name, 'route', 'show');
    assert.ok(
      r4.some((r) => r.dst === 'default' && r.gateway === GATEWAY4 && r.dev === 'eth0'),
      JSON.stringify(r4),
    );
    assert.ok(
      r4.some((r) => r.dst === GATEWAY4 && r.dev === 'eth0' && r.scope === 'link'),
      JSON.stringify(r4),
    );
    const r6 = ipJson<Json[]>(a.box.name, '-6', 'route', 'show');
    assert.ok(
      r6.some((r) => r.dst === 'default' && r.gateway === GATEWAY6 && r.dev === 'eth0'),
      JSON.stringify(r6),
    );
    const n4 = ipJson<Json[]>(world.nodeNetns, 'route', 'show');
    assert.ok(
      n4.some((r) => r.dst === a.ipv4 && r.dev === a.hostIf && r.scope === 'link'),
      JSON.stringify(n4),
    );
    const n6 = ipJson<Json[]>(world.nodeNetns, '-6', 'route', 'show');
    assert.ok(
      n6.some((r) => r.dst === a.ipv6 && r.dev === a.hostIf),
      JSON.stringify(n6),
    );
  });

  it('names the host veth from the container id, MAC ee:ee:ee:ee:ee:ee, proxy ARP and forwarding on it alone', () => {
    const [host] = ipJson<Json[]>(world.nodeNetns, 'link', 'show', a.hostIf);
    assert.equal(host.address, HOST_VETH_MAC);
    assert.equal(host.mtu, 1500);
    assert.ok((host.flags as string[]).includes('UP'));
    assert.equal(sysctlIn(world.nodeNetns, `net.ipv4.conf.${a.hostIf}.proxy_arp`), '1');
    assert.equal(sysctlIn(world.nodeNetns, `net.ipv4.conf.${a.hostIf}.forwarding`), '1');
    assert.equal(sysctlIn(world.nodeNetns, `net.ipv6.conf.${a.hostIf}.forwarding`), '1');
    assert.equal(
      fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8'),
      hostForwarding,
      "the machine's own ip_forward is untouched",
    );
  });

  it('prints a spec 1.1 result: the config version, both interfaces, ips pointing at the sandbox interface', () => {
    const r = a.result;
    assert.equal(r.cniVersion, '1.1.0');
    const ifaces = r.interfaces as Json[];
    const pod = ifaces.findIndex((i) => i.name === 'eth0');
    assert.ok(pod >= 0, JSON.stringify(ifaces));
    assert.equal(ifaces[pod].sandbox, a.box.path);
    const [link] = ipJson<Json[]>(a.box.name, 'link', 'show', 'eth0');
    assert.equal(ifaces[pod].mac, link.address);
    const host = ifaces.find((i) => i.name === a.hostIf);
    assert.ok(host, `the host veth ${a.hostIf} is listed: ${JSON.stringify(ifaces)}`);
    assert.ok(!host.sandbox, 'the host interface has no sandbox');
    assert.equal(host.mac, HOST_VETH_MAC);
    const ips = r.ips as Json[];
    assert.equal(ips.length, 2);
    for (const ip of ips) {
      assert.equal(ip.interface, pod, 'ips[].interface indexes the sandbox interface');
      assert.ok(!('version' in ip), '1.x results have no ips[].version');
      assert.equal(ip.gateway, String(ip.address).includes(':') ? GATEWAY6 : GATEWAY4);
    }
    assert.deepEqual((r.routes as Json[]).map((x) => x.dst).sort(), ['0.0.0.0/0', '::/0']);
  });

  it('tells the agent the pod from CNI_ARGS', async () => {
    const ep = (await endpoints()).find((e) => e.containerId === a.id);
    assert.ok(ep, 'the agent has the endpoint');
    assert.equal(ep.podNamespace, 'default');
    assert.equal(ep.podName, a.box.name);
    assert.equal(ep.hostIfName, a.hostIf);
  });

  it('two pods reach each other over IPv4 and IPv6', async () => {
    await startBackend(world, b.box.where, { tcp: [8080] });
    for (const ip of [b.ipv4!, b.ipv6!]) {
      const r = await probe(world, a.box.where, ip, 8080, 'tcp', 3);
      assert.deepEqual(r.errors, {}, `${ip}: ${JSON.stringify(r)}`);
      assert.deepEqual(r.answers, { [b.box.name]: 3 });
    }
  });

  it('ADD again for the same container and interface: the same addresses, a fresh veth, one endpoint', async () => {
    const again = await add(a.box, { id: a.id });
    assert.equal(again.ipv4, a.ipv4);
    assert.equal(again.ipv6, a.ipv6);
    assert.equal(hostLinks().filter((l) => l === a.hostIf).length, 1);
    assert.equal((await endpoints()).filter((e) => e.containerId === a.id).length, 1);
    const r = await probe(world, a.box.where, b.ipv4!, 8080, 'tcp', 2);
    assert.deepEqual(r.answers, { [b.box.name]: 2 }, JSON.stringify(r));
    a = again;
  });

  it("in a chain: keeps the previous plugin's result (prevResult) and appends its own", async () => {
    const box = boxes.add();
    const prevResult = {
      cniVersion: '1.1.0',
      interfaces: [{ name: 'dummy0', sandbox: box.path }],
      ips: [],
      dns: { nameservers: ['10.96.0.10'] },
    };
    const c = await add(box, { config: conf(agent.socket, { prevResult }) });
    const ifaces = c.result.interfaces as Json[];
    assert.equal(ifaces[0].name, 'dummy0');
    const pod = ifaces.findIndex((i) => i.name === 'eth0');
    assert.ok(pod > 0);
    for (const ip of c.result.ips as Json[]) assert.equal(ip.interface, pod);
    assert.deepEqual(c.result.dns, { nameservers: ['10.96.0.10'] });
    assertOk(await cni(world, delCall(c)), 'DEL');
  });

  it('answers a 0.4.0 configuration with a 0.4.0 result', async () => {
    const box = boxes.add();
    const c = await add(box, { config: conf(agent.socket, { cniVersion: '0.4.0' }) });
    assert.equal(c.result.cniVersion, '0.4.0');
    assert.deepEqual((c.result.ips as Json[]).map((i) => i.version).sort(), ['4', '6']);
    assertOk(await cni(world, { ...delCall(c), config: conf(agent.socket, { cniVersion: '0.4.0' }) }), 'DEL');
  });

  describe('CHECK', () => {
    it('passes on a healthy pod and prints nothing', async () => {
      const r = await cni(world, checkCall(a));
      assertOk(r, 'CHECK');
      assert.equal(r.stdout, '');
    });

    it('fails naming the address when one is missing from the pod', async () => {
      ipIn(a.box.name, 'addr', 'del', `${a.ipv4}/32`, 'dev', 'eth0');
      try {
        const e = errorOf(await cni(world, checkCall(a)));
        assert.ok(e.code >= 100, `a plugin-specific code: ${e.code}`);
        assert.match(e.msg, new RegExp(`${a.ipv4!.replaceAll('.', '\\.')}/32 is missing on eth0`));
      } finally {
        ipIn(a.box.name, 'addr', 'add', `${a.ipv4}/32`, 'dev', 'eth0');
      }
      assertOk(await cni(world, checkCall(a)), 'CHECK after the repair');
    });

    it('fails naming the host interface when it is gone', async () => {
      const e1 = await add(boxes.add());
      ipIn(world.nodeNetns, 'link', 'del', e1.hostIf);
      const e = errorOf(await cni(world, checkCall(e1)));
      assert.ok(e.code >= 100, `a plugin-specific code: ${e.code}`);
      assert.match(e.msg, new RegExp(e1.hostIf));
      assertOk(await cni(world, delCall(e1)), 'DEL of the broken pod');
    });

    it('fails naming the interface when it is down in the pod', async () => {
      const e1 = await add(boxes.add());
      ipIn(e1.box.name, 'link', 'set', 'eth0', 'down');
      const e = errorOf(await cni(world, checkCall(e1)));
      assert.ok(e.code >= 100);
      assert.match(e.msg, /eth0/);
      assertOk(await cni(world, delCall(e1)), 'DEL');
    });

    it('needs prevResult (7), and a cniVersion that has CHECK (1)', async () => {
      assert.equal(errorOf(await cni(world, checkCall(a, conf()))).code, 7);
      const old = errorOf(
        await cni(world, checkCall(a, conf(agent.socket, { cniVersion: '0.3.1', prevResult: a.result }))),
      );
      assert.equal(old.code, 1);
      assert.equal(old.cniVersion, '0.3.1');
    });
  });

  describe('GC', () => {
    it('releases the attachments not in cni.dev/valid-attachments and deletes their veths', async () => {
      const keep = await add(boxes.add());
      const drop = await add(boxes.add());
      const valid = (await endpoints())
        .filter((e) => e.containerId !== drop.id)
        .map((e) => ({ containerID: e.containerId, ifname: e.ifName }));
      const before4 = await poolUsed(PODS4);
      const r = await cni(world, { command: 'GC', config: conf(agent.socket, { 'cni.dev/valid-attachments': valid }) });
      assertOk(r, 'GC');
      assert.equal(r.stdout, '');
      const links = hostLinks();
      assert.ok(!links.includes(drop.hostIf), `${drop.hostIf} is deleted`);
      assert.ok(links.includes(keep.hostIf) && links.includes(a.hostIf), 'valid attachments keep their veths');
      const ids = (await endpoints()).map((e) => e.containerId);
      assert.ok(!ids.includes(drop.id) && ids.includes(keep.id) && ids.includes(a.id));
      assert.equal(await poolUsed(PODS4), before4 - 1, 'its address is released');
      const p = await probe(world, a.box.where, b.ipv6!, 8080, 'tcp', 2);
      assert.deepEqual(p.answers, { [b.box.name]: 2 }, 'valid pods keep working');
    });

    it('needs the valid list (7) and a 1.1 configuration (1)', async () => {
      const e = errorOf(await cni(world, { command: 'GC', config: conf() }));
      assert.equal(e.code, 7);
      assert.match(e.msg, /valid-attachments/);
      assert.equal(
        errorOf(
          await cni(world, {
            command: 'GC',
            config: conf(agent.socket, { cniVersion: '1.0.0', 'cni.dev/valid-attachments': [] }),
          }),
        ).code,
        1,
      );
    });
  });
});

describe('DEL', () => {
  it('removes the veth, the pod interface and the endpoint, releases the addresses, and can repeat', async () => {
    const d = await add(boxes.add());
    const used4 = await poolUsed(PODS4);
    const used6 = await poolUsed(PODS6);
    const r = await cni(world, delCall(d));
    assertOk(r, 'DEL');
    assert.equal(r.stdout, '');
    assert.ok(!hostLinks().includes(d.hostIf));
    assert.deepEqual(
      ipJson<Json[]>(d.box.name, 'link', 'show').map((l) => l.ifname),
      ['lo'],
    );
    assert.ok(!(await endpoints()).some((e) => e.containerId === d.id));
    assert.equal(await poolUsed(PODS4), used4 - 1);
    assert.equal(await poolUsed(PODS6), used6 - 1);
    assertOk(await cni(world, delCall(d)), 'DEL again');
    assertOk(await cni(world, delCall(d, { netns: null })), 'DEL without CNI_NETNS');
  });

  it('works without CNI_NETNS (as containerd calls it) and after the namespace is gone', async () => {
    const d1 = await add(boxes.add());
    const r1 = await cni(world, delCall(d1, { netns: null }));
    assertOk(r1, 'DEL without CNI_NETNS');
    assert.ok(!hostLinks().includes(d1.hostIf));
    const d2 = await add(boxes.add());
    boxes.remove(d2.box.name);
    assertOk(await cni(world, delCall(d2)), 'DEL with a removed namespace');
    assert.ok(!(await endpoints()).some((e) => e.containerId === d2.id));
  });

  it('succeeds for an attachment that never was', async () => {
    assertOk(await cni(world, delCall({ id: newId(), ifName: 'eth0', box: boxes.add() })), 'DEL');
  });
});

describe('STATUS', () => {
  it('succeeds silently while the agent serves', async () => {
    const r = await cni(world, { command: 'STATUS', config: conf() });
    assertOk(r, 'STATUS');
    assert.equal(r.stdout, '');
  });

  it('is 50 (plugin not available), naming the socket, without an agent', async () => {
    const sock = `${world.stateDir}/no-agent/weft.sock`;
    const e = errorOf(await cni(world, { command: 'STATUS', config: conf(sock) }));
    assert.equal(e.code, 50);
    assert.ok(e.msg.includes(sock), e.msg);
  });
});

describe('errors', () => {
  const nothingLeft = async (box: Sandbox, id: string, ifName = 'eth0') => {
    assert.ok(!hostLinks().includes(hostIfName(id, ifName)), 'no host veth is left');
    assert.ok(!(await endpoints()).some((e) => e.containerId === id), 'no endpoint is left');
    assert.ok(!ipJson<Json[]>(box.name, 'link', 'show').some((l) => l.ifname === ifName), `no ${ifName} in the pod`);
  };

  it('invalid JSON on stdin is 6', async () => {
    const box = boxes.add();
    for (const text of ['{"cniVersion": "1.1.0", "name": "weft"', 'not json', '{"cniVersion": "1.1.0"} {}', '']) {
      const call = { ...addCall(box), config: text };
      const e = errorOf(await cni(world, call));
      assert.equal(e.code, 6, `${JSON.stringify(text)}: ${e.msg}`);
      await nothingLeft(box, call.containerId);
    }
  });

  it('an invalid network configuration is 7, from the plugin or from the agent, and leaves nothing', async () => {
    const box = boxes.add();
    const noName = { cniVersion: '1.1.0', type: 'weft-cni', agentSocket: agent.socket };
    const e1 = errorOf(await cni(world, { ...addCall(box), config: noName }));
    assert.equal(e1.code, 7);
    assert.match(e1.msg, /"name"/);
    const call = addCall(box, { config: conf(agent.socket, { mtu: 'big' }) });
    const e2 = errorOf(await cni(world, call));
    assert.equal(e2.code, 7);
    assert.match(e2.msg, /mtu/);
    await nothingLeft(box, call.containerId);
  });

  it('an unsupported cniVersion is 1, echoed', async () => {
    const e = errorOf(await cni(world, addCall(boxes.add(), { config: conf(agent.socket, { cniVersion: '2.0.0' }) })));
    assert.equal(e.code, 1);
    assert.equal(e.cniVersion, '2.0.0');
  });

  it('a missing or unknown CNI variable is 4, naming it', async () => {
    const box = boxes.add();
    const cases: [object, string][] = [
      [{ ...addCall(box), omit: ['CNI_NETNS'] }, 'CNI_NETNS'],
      [{ ...addCall(box), omit: ['CNI_CONTAINERID'] }, 'CNI_CONTAINERID'],
      [{ ...addCall(box), omit: ['CNI_IFNAME'] }, 'CNI_IFNAME'],
      [{ ...addCall(box), ifName: 'eth0/1' }, 'CNI_IFNAME'],
      [{ ...addCall(box), containerId: '-x' }, 'CNI_CONTAINERID'],
      [{ ...addCall(box), command: 'FROB' }, 'CNI_COMMAND'],
      [{ ...addCall(box), omit: ['CNI_COMMAND'] }, 'CNI_COMMAND'],
    ];
    for (const [call, name] of cases) {
      const e = errorOf(await cni(world, call as Parameters<typeof cni>[1]));
      assert.equal(e.code, 4, `${name}: ${e.msg}`);
      assert.ok(e.msg.includes(name), `${name}: ${e.msg}`);
    }
  });

  it('a namespace that is gone at ADD is 3, naming it, and allocates nothing', async () => {
    const box = boxes.add();
    boxes.remove(box.name);
    const used = await poolUsed(PODS4);
    const call = addCall(box);
    const e = errorOf(await cni(world, call));
    assert.equal(e.code, 3);
    assert.ok(e.msg.includes(box.path), e.msg);
    assert.equal(await poolUsed(PODS4), used);
    assert.ok(!hostLinks().includes(hostIfName(call.containerId, 'eth0')));
  });

  it('an interface name taken in the pod fails, naming it, and is rolled back', async () => {
    const box = boxes.add();
    ipIn(box.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0peer');
    const used = await poolUsed(PODS4);
    const call = addCall(box);
    const e = errorOf(await cni(world, call));
    assert.ok(e.code >= 100, `${e.code}`);
    assert.match(e.msg, /eth0 already exists/);
    assert.ok(!hostLinks().includes(hostIfName(call.containerId, 'eth0')), 'no host veth is left');
    assert.ok(!(await endpoints()).some((x) => x.containerId === call.containerId), 'the endpoint is released');
    assert.equal(await poolUsed(PODS4), used);
  });

  describe('a small pool (10.244.1.0/30, IPv4 only)', () => {
    let s1: Attachment;
    let s2: Attachment;

    it('gives IPv4 only: no IPv6 address or default route in the pod', async () => {
      s1 = await add(boxes.add(), { socket: small.socket });
      s2 = await add(boxes.add(), { socket: small.socket });
      assert.deepEqual([s1.ipv4, s2.ipv4].sort(), ['10.244.1.1', '10.244.1.2']);
      assert.equal(s1.ipv6, undefined);
      const r6 = ipJson<Json[]>(s1.box.name, '-6', 'route', 'show');
      assert.ok(!r6.some((r) => r.dst === 'default'), JSON.stringify(r6));
    });

    it("exhausted: the agent's code, a message naming the pool, nothing left behind", async () => {
      const box = boxes.add();
      const call = addCall(box, { socket: small.socket });
      const e = errorOf(await cni(world, call));
      assert.ok(e.code >= 100, `a plugin-specific code: ${e.code}`);
      assert.match(e.msg, /10\.244\.1\.0\/30/);
      assert.match(e.msg, /exhausted/);
      assert.ok(!hostLinks().includes(hostIfName(call.containerId, 'eth0')));
      assert.ok(!ipJson<Json[]>(box.name, 'link', 'show').some((l) => l.ifname === 'eth0'));
    });

    it('DEL releases an address: the next ADD gets it', async () => {
      assertOk(await cni(world, delCall(s1, { socket: small.socket })), 'DEL');
      const s3 = await add(boxes.add(), { socket: small.socket });
      assert.equal(s3.ipv4, s1.ipv4);
      s1 = s3;
    });

    it('with the agent stopped: ADD and DEL are 11 (try again later) naming the socket, DEL still removes the veth, STATUS is 50', async () => {
      await small.stop();
      const add1 = errorOf(await cni(world, addCall(boxes.add(), { socket: small.socket })));
      assert.equal(add1.code, 11);
      assert.ok(add1.msg.includes(small.socket), add1.msg);
      assert.ok(hostLinks().includes(s2.hostIf));
      const del = errorOf(await cni(world, delCall(s2, { socket: small.socket })));
      assert.equal(del.code, 11);
      assert.ok(del.msg.includes(small.socket), del.msg);
      assert.ok(!hostLinks().includes(s2.hostIf), 'the veth is deleted by its derived name');
      const st = errorOf(await cni(world, { command: 'STATUS', config: conf(small.socket) }));
      assert.equal(st.code, 50);
      assert.ok(st.msg.includes(small.socket), st.msg);
      const gc = errorOf(
        await cni(world, { command: 'GC', config: conf(small.socket, { 'cni.dev/valid-attachments': [] }) }),
      );
      assert.equal(gc.code, 11);
    });
  });
});
