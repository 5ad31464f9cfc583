// weft-proxy run beside weftd rather than by it (`--proxy external`, as the DaemonSet's second
// container does): the agent finds it on its admin socket, gives it the routes, and when the
// proxy is replaced (a container restart) waits for the new one and gives it the routes again.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentStatus } from '../../src/contract/agent-api.js';
import { AgentProcess, REPO } from '../harness/agent.js';
import { addCniPod, Sandboxes, type Sandbox } from '../harness/cni.js';
import { World } from '../harness/world.js';

const FIXTURES = path.join(REPO, 'build/js/test/fixtures');
const WEFT_PROXY = path.join(REPO, 'bin/weft-proxy');
const NS = 'ext';
const PORT = 8080;
const VIP = '10.96.9.1';
const VIP_B = '10.96.9.2';

let world: World;
let agent: AgentProcess;
let client: Sandbox;
let proxy: ChildProcess | undefined;

function startProxy(): ChildProcess {
  return world.spawn('node', [
    WEFT_PROXY,
    '--admin-socket',
    path.join(agent.stateDir, 'proxy.sock'),
    '--metrics-address',
    '127.0.0.1:0',
    '--log-level',
    'warn',
  ]);
}

/** Who answers 10 requests to the routed Service on one connection. */
async function answers(): Promise<Record<string, number>> {
  const r = await world.run(
    client.where,
    [
      process.execPath,
      path.join(FIXTURES, 'http-client.js'),
      '--url',
      `http://${VIP}/`,
      '--count',
      '10',
      '--timeout-ms',
      '2000',
    ],
    { inCgroup: true, timeoutMs: 30_000 },
  );
  return (JSON.parse(r.stdout) as { answers: Record<string, number> }).answers;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what} within 20 s\nagent log:\n${agent.log.slice(-3000)}`);
}

before(async () => {
  world = World.create();
  const boxes = new Sandboxes(world);
  agent = new AgentProcess(world, { where: 'node', extraArgs: ['--pod-cidr', '10.244.0.0/24', '--proxy', 'external'] });
  await agent.start();
  client = boxes.add();
  const podBoxes = [boxes.add(), boxes.add()];
  await addCniPod(world, agent.socket, NS, 'client', client);
  const ips: string[] = [];
  for (const [i, box] of podBoxes.entries()) {
    const name = `web-${i + 1}`;
    ips.push((await addCniPod(world, agent.socket, NS, name, box)).ipv4);
    const child = world.spawn(
      box.where,
      [process.execPath, path.join(FIXTURES, 'backend.js'), '--name', name, '--http', String(PORT)],
      { inCgroup: true },
    );
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()).includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`backend ${name} exited ${code}: ${out}`)));
    });
  }
  const svc = (name: string, ip: string, addrs: string[]) => [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: NS, name },
      spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, targetPort: PORT }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: NS, name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
      endpoints: addrs.map((a) => ({ addresses: [a], conditions: { ready: true } })),
    },
  ];
  agent.writeManifest('services.yaml', [...svc('web', VIP, ips), ...svc('web-2', VIP_B, [ips[1]!])]);
  // Everything to web-2: through the proxy, web-1 never answers.
  agent.writeManifest('route.yaml', [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { namespace: NS, name: 'all-to-2' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
        rules: [{ backendRefs: [{ name: 'web-2', port: 80 }] }],
      },
    },
  ]);
  proxy = startProxy();
});

after(async () => {
  proxy?.kill('SIGKILL');
  await agent?.stop();
  await world?.dispose();
});

describe('weft-proxy beside weftd (--proxy external)', () => {
  it('the agent finds the proxy on its socket and routes through it', async () => {
    // Redirected only once the proxy holds the route (before that, the kernel balances: a
    // connection could reach web-2 by chance).
    await agent.waitForKernel(
      (s) => s.some((k) => k.frontend.ip === VIP && k.backends.length === 1 && k.backends[0]!.ip === '169.254.42.1'),
      'web sent to the proxy',
      20_000,
    );
    assert.deepEqual(await answers(), { 'web-2': 10 });
    const p = (await agent.get<AgentStatus>('/v1/status')).proxy;
    assert.ok(p && !p.managed && p.running && p.version > 0, JSON.stringify(p));
  });

  it('a replaced proxy gets the routes again: the agent waits for it, then sends the snapshot', async () => {
    const before = (await agent.get<AgentStatus>('/v1/status')).proxy!;
    proxy!.kill('SIGKILL');
    await until('the agent noticing the proxy is gone', async () =>
      (await agent.get<AgentStatus>('/v1/status')).proxy?.running === false ? true : undefined,
    );
    proxy = startProxy();
    const back = await until('the new proxy holding the routes', async () => {
      const p = (await agent.get<AgentStatus>('/v1/status')).proxy;
      return p?.running && p.version > 0 ? p : undefined;
    });
    assert.equal(back.restarts, before.restarts + 1);
    // The kernel kept sending web to the proxy's listener all along; the new proxy has it.
    assert.deepEqual(await answers(), { 'web-2': 10 });
    assert.deepEqual(await answers(), { 'web-2': 10 });
  });
});
