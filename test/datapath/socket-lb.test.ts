// Socket-level service load balancing on the real kernel: real connections from a pod to a
// ClusterIP, balanced by bpf/sock.c as loaded and fed by the real weftd.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { apiStream } from '../../src/lib/unix-http.js';
import type { Flow } from '../../src/contract/flow.js';
import { AgentProcess } from '../harness/agent.js';
import { endpointSlice, service, type PortSpec } from '../harness/manifests.js';
import { probe, startBackend } from '../harness/pods.js';
import { World, type Pod } from '../harness/world.js';

const SVC4 = '10.96.0.10';
const SVC6 = 'fd00:10:96::10';
const PORTS: PortSpec[] = [
  { name: 'tcp', port: 80, protocol: 'TCP', targetPort: 8080 },
  { name: 'udp', port: 53, protocol: 'UDP', targetPort: 5353 },
];
const SLICE_PORTS: PortSpec[] = [
  { name: 'tcp', port: 8080, protocol: 'TCP' },
  { name: 'udp', port: 5353, protocol: 'UDP' },
];

let world: World;
let agent: AgentProcess;
let client: Pod;
let backends: Pod[];

function webManifests(ready: Pod[], svcName = 'web'): object[] {
  return [
    service(svcName, [SVC4, SVC6], PORTS),
    endpointSlice(
      svcName,
      4,
      ready.map((p) => ({ ip: p.ipv4 })),
      SLICE_PORTS,
    ),
    endpointSlice(
      svcName,
      6,
      ready.map((p) => ({ ip: p.ipv6 })),
      SLICE_PORTS,
    ),
  ];
}

const frontendBackends = (svcs: ReturnType<AgentProcess['kernelServices']>, ip: string, port: number) =>
  svcs
    .find((s) => s.frontend.ip === ip && s.frontend.port === port)
    ?.backends.map((b) => b.ip)
    .sort();

before(async () => {
  world = World.create();
  client = world.addPod('client');
  backends = ['backend-1', 'backend-2', 'backend-3'].map((n) => world.addPod(n));
  await Promise.all(backends.map((p) => startBackend(world, p, { tcp: [8080], udp: [5353] })));
  agent = new AgentProcess(world);
  agent.writeManifest('web.yaml', webManifests(backends));
  await agent.start();
  await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 3, 'web with 3 backends');
});

after(async () => {
  await agent?.stop();
  await world?.dispose();
});

const names = () => backends.map((b) => b.name).sort();

describe('a ClusterIP is balanced over its ready backends', () => {
  for (const [family, ip] of [
    ['IPv4', SVC4],
    ['IPv6', SVC6],
  ] as const) {
    const shown = family === 'IPv4' ? `${ip}` : `[${ip}]`;
    for (const [proto, port] of [
      ['tcp', 80],
      ['udp', 53],
      ['udp-connected', 53],
    ] as const) {
      it(`${proto} over ${family}: every backend answers, the socket only ever sees the service`, async () => {
        const r = await probe(world, client, ip, port, proto, 60);
        assert.deepEqual(r.errors, {}, `no attempt may fail: ${JSON.stringify(r)}`);
        assert.deepEqual(
          Object.keys(r.answers).sort(),
          names(),
          `all three backends answer: ${JSON.stringify(r.answers)}`,
        );
        // 60 uniform picks over 3: fewer than 5 for one backend has probability < 1e-5.
        for (const [name, n] of Object.entries(r.answers)) assert.ok(n >= 5, `${name} got a fair share (${n}/60)`);
        assert.deepEqual(Object.keys(r.peers), [`${shown}:${port}`], 'getpeername/recvfrom show the service address');
      });
    }
  }

  it('an IPv6 socket to an IPv4-mapped ClusterIP is balanced as the IPv4 service', async () => {
    const r = await probe(world, client, `::ffff:${SVC4}`, 80, 'tcp', 30);
    assert.deepEqual(r.errors, {});
    assert.deepEqual(Object.keys(r.answers).sort(), names());
    assert.deepEqual(Object.keys(r.peers), [`[::ffff:${SVC4}]:80`]);
    const u = await probe(world, client, `::ffff:${SVC4}`, 53, 'udp', 30);
    assert.deepEqual(u.errors, {});
    assert.deepEqual(Object.keys(u.peers), [`[::ffff:${SVC4}]:53`]);
  });

  it('a pod IP that is not a service is left alone', async () => {
    const r = await probe(world, client, backends[0]!.ipv4, 8080, 'tcp', 3);
    assert.deepEqual(r.answers, { 'backend-1': 3 });
    assert.deepEqual(Object.keys(r.peers), [`${backends[0]!.ipv4}:8080`]);
  });
});

describe('backends change', () => {
  it('a service with no ready backend refuses at once, on TCP and UDP', async () => {
    agent.writeManifest('empty.yaml', [
      service('empty', ['10.96.0.20', 'fd00:10:96::20'], PORTS),
      endpointSlice('empty', 4, [{ ip: backends[0]!.ipv4, ready: false }], SLICE_PORTS),
    ]);
    await agent.waitForKernel((s) => frontendBackends(s, '10.96.0.20', 80)?.length === 0, 'empty service');
    for (const [ip, proto, port] of [
      ['10.96.0.20', 'tcp', 80],
      ['fd00:10:96::20', 'tcp', 80],
      ['10.96.0.20', 'udp', 53],
      ['10.96.0.20', 'udp-connected', 53],
    ] as const) {
      const r = await probe(world, client, ip, port, proto, 5);
      assert.deepEqual(
        r.errors,
        { ECONNREFUSED: 5 },
        `${proto} to ${ip} is refused, not timed out: ${JSON.stringify(r)}`,
      );
    }
    agent.removeManifest('empty.yaml');
    await agent.waitForKernel((s) => frontendBackends(s, '10.96.0.20', 80) === undefined, 'empty service removed');
  });

  it('removing a backend stops new connections to it; adding one gives it traffic', async () => {
    const [b1, b2, b3] = backends as [Pod, Pod, Pod];
    agent.writeManifest('web.yaml', webManifests([b1, b3]));
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 2, 'web with 2 backends');
    let r = await probe(world, client, SVC4, 80, 'tcp', 40);
    assert.deepEqual(
      Object.keys(r.answers).sort(),
      [b1.name, b3.name],
      `only remaining backends answer: ${JSON.stringify(r.answers)}`,
    );
    assert.deepEqual(r.errors, {});

    agent.writeManifest('web.yaml', webManifests([b1, b2, b3]));
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 3, 'web with 3 backends again');
    r = await probe(world, client, SVC4, 80, 'tcp', 60);
    assert.ok((r.answers[b2.name] ?? 0) > 0, `the re-added backend gets traffic: ${JSON.stringify(r.answers)}`);
  });

  it('an endpoint that is not ready gets no new connections', async () => {
    const [b1, b2, b3] = backends as [Pod, Pod, Pod];
    agent.writeManifest('web.yaml', [
      service('web', [SVC4, SVC6], PORTS),
      endpointSlice('web', 4, [{ ip: b1.ipv4 }, { ip: b2.ipv4, ready: false }, { ip: b3.ipv4 }], SLICE_PORTS),
      endpointSlice(
        'web',
        6,
        backends.map((p) => ({ ip: p.ipv6 })),
        SLICE_PORTS,
      ),
    ]);
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 2, 'web v4 without backend-2');
    const r = await probe(world, client, SVC4, 80, 'tcp', 40);
    assert.equal(r.answers[b2.name], undefined, `backend-2 is not ready: ${JSON.stringify(r.answers)}`);
    agent.writeManifest('web.yaml', webManifests(backends));
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 3, 'web restored');
  });
});

describe('bad input', () => {
  it('a malformed manifest is reported by file, object and field; the last good state stays', async () => {
    const before = agent.kernelServices();
    const from = agent.log.length;
    agent.writeManifest('web.yaml', [
      service('web', [SVC4, SVC6], [{ name: 'tcp', port: 70000, protocol: 'TCP' }]),
      endpointSlice('web', 4, [{ ip: backends[0]!.ipv4 }], SLICE_PORTS),
    ]);
    const line = await agent.waitForLog(/level=error msg="invalid manifest[^\n]*/, 5000, from);
    assert.match(line, /file=web\.yaml/);
    assert.match(line, /object=Service\/default\/web/);
    assert.match(line, /field=spec\.ports\[0\]\.port/);
    // The valid slice in the same file did apply: web v4 now has one backend.
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 1, 'the valid slice applied');
    // The invalid Service kept its last good version: both its ports are still there.
    assert.ok(frontendBackends(agent.kernelServices(), SVC4, 53), 'the UDP port of the last good Service stays');

    const from2 = agent.log.length;
    agent.writeManifest('web.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: web\n  spec: [unclosed');
    await agent.waitForLog(/level=error msg="invalid manifest[^\n]*file=web\.yaml/, 5000, from2);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      agent.kernelServices().map((s) => s.frontend),
      before.map((s) => s.frontend),
      'an unparsable file keeps all its objects',
    );
    const r = await probe(world, client, SVC4, 80, 'tcp', 3);
    assert.deepEqual(r.errors, {}, 'the service still answers');

    agent.writeManifest('web.yaml', webManifests(backends));
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 3, 'fixed file applies');
  });
});

describe('agent restarts', () => {
  it('SIGKILL while clients connect fails no connection; a restart adopts, then reconciles', async () => {
    const running = probe(world, client, SVC4, 80, 'tcp', 400);
    await new Promise((r) => setTimeout(r, 150));
    await agent.stop('SIGKILL');
    // The manifests change while no agent runs.
    agent.writeManifest('web.yaml', webManifests([backends[0]!, backends[1]!]));
    const r = await running;
    assert.deepEqual(r.errors, {}, `no connection failed: ${JSON.stringify(r)}`);
    assert.equal(
      Object.values(r.answers).reduce((a, b) => a + b, 0),
      400,
    );
    assert.equal(
      frontendBackends(agent.kernelServices(), SVC4, 80)?.length,
      3,
      'the kernel kept its state without the agent',
    );

    const from = agent.log.length;
    await agent.start();
    assert.match(agent.log.slice(from), /msg="program ready" program=sock_connect4 action=replaced/);
    await agent.waitForKernel((s) => frontendBackends(s, SVC4, 80)?.length === 2, 'the restarted agent reconciles');
    const after = await probe(world, client, SVC4, 80, 'tcp', 30);
    assert.equal(after.answers[backends[2]!.name], undefined);
    assert.deepEqual(after.errors, {});
  });

  it('SIGTERM leaves the datapath working', async () => {
    assert.equal(await agent.stop('SIGTERM'), 0);
    const r = await probe(world, client, SVC6, 80, 'tcp', 10);
    assert.deepEqual(r.errors, {});
    await agent.start();
  });
});

describe('translation events', () => {
  // The agent's observer is the ring buffer's one reader: the events are read back as flows.
  async function sockFlows(since: Date): Promise<Flow[]> {
    const flows: Flow[] = [];
    await apiStream(agent.socket, `/v1/flows?type=sock&since=${since.toISOString()}`, (item) => {
      const flow = (item as { flow?: Flow }).flow;
      if (flow) flows.push(flow);
    });
    return flows;
  }

  it('each connect to a service is reported with the service and the backend; unconnected datagrams are not, by default', async () => {
    const since = new Date();
    const r = await probe(world, client, SVC4, 80, 'tcp', 5);
    assert.deepEqual(r.errors, {});
    const u = await probe(world, client, SVC6, 53, 'udp', 5);
    assert.deepEqual(u.errors, {});
    const backendIps = backends.map((b) => b.ipv4);
    let seen: Flow[] = [];
    for (let i = 0; i < 100 && seen.length < 5; i++) {
      await new Promise((res) => setTimeout(res, 20));
      seen = await sockFlows(since);
    }
    await new Promise((res) => setTimeout(res, 200));
    seen = await sockFlows(since);
    assert.equal(seen.length, 5, `one event per connect: ${JSON.stringify(seen)}`);
    for (const f of seen) {
      assert.deepEqual(
        [f.verdict, f.service, f.l4.protocol, f.destination.port],
        ['TRANSLATED', 'default/web', 'TCP', 8080],
      );
      assert.ok(backendIps.includes(f.destination.ip), `backend ${f.destination.ip}`);
      assert.match(f.summary, /^connect 10\.96\.0\.10:80 → /);
    }
  });
});
