// `weft observe` against real traffic: pods made by the CNI plugin, a Service, a NetworkPolicy,
// and the flows the datapath reports for them, read back through the CLI as a user would.
//
//   namespace shop: client (app=client), server (app=server) behind Service shop/web
//                   (ClusterIP 10.96.7.7:80 → 8080); a policy lets only app=client reach the
//                   server on 8080
//   namespace lab:  intruder (app=intruder), refused by that policy
//
// Traffic: client → the Service (allowed, translated at connect), intruder → server (denied),
// and a datagram from the client with an address that is not its own (spoofed).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Flow } from '../../src/contract/flow.js';
import { AgentProcess, REPO, WEFT } from '../harness/agent.js';
import { addCniPod, ipIn, Sandboxes, type Sandbox } from '../harness/cni.js';
import { World } from '../harness/world.js';

const exec = promisify(execFile);
const FIXTURES = path.join(REPO, 'build/js/test/fixtures');
const VIP = '10.96.7.7';
const PORT = 8080;
const SPOOFED = '10.244.0.250';

interface TestPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  box: Sandbox;
  ip: string;
}

let world: World;
let agent: AgentProcess;
let client: TestPod;
let server: TestPod;
let intruder: TestPod;

async function addPod(namespace: string, name: string, labels: Record<string, string>, box: Sandbox): Promise<TestPod> {
  return { namespace, name, labels, box, ip: (await addCniPod(world, agent.socket, namespace, name, box)).ipv4 };
}

const podManifest = (p: TestPod) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: p.namespace, name: p.name, labels: p.labels },
  spec: {
    nodeName: 'test-node',
    containers: [
      { name: 'app', image: 'weft-test/backend', ports: [{ name: 'http', containerPort: PORT, protocol: 'TCP' }] },
    ],
  },
  status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
});

/** `weft observe ARGS -o json`: the flows, one JSON object a line. */
async function observe(...args: string[]): Promise<Flow[]> {
  const { stdout } = await exec(WEFT, ['observe', '--state-dir', agent.stateDir, '-o', 'json', ...args], {
    timeout: 15_000,
  });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Flow);
}

/** Polls `weft observe` until `pred` holds for the flows it returns (the observer reads the
 *  kernel's ring on its own thread, a moment after the packets). */
async function observeUntil(args: string[], pred: (flows: Flow[]) => boolean, what: string): Promise<Flow[]> {
  const deadline = Date.now() + 10_000;
  let flows: Flow[] = [];
  while (Date.now() < deadline) {
    flows = await observe(...args);
    if (pred(flows)) return flows;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(
    `${what}: not seen in weft observe ${args.join(' ')} within 10 s; got:\n${flows.map((f) => JSON.stringify(f)).join('\n')}`,
  );
}

async function connect(from: TestPod, ip: string, port: number, expect: 'ok' | 'refused'): Promise<void> {
  const r = await world.run(
    from.box.where,
    [
      process.execPath,
      path.join(FIXTURES, 'probe.js'),
      '--ip',
      ip,
      '--port',
      String(port),
      '--count',
      '2',
      '--timeout-ms',
      '1000',
    ],
    { inCgroup: true, timeoutMs: 15_000 },
  );
  const summary = JSON.parse(r.stdout) as { answers: Record<string, number>; errors: Record<string, number> };
  const ok = Object.values(summary.answers ?? {}).reduce((a, b) => a + b, 0);
  if (expect === 'ok') assert.equal(ok, 2, `${from.name} → ${ip}:${port}: ${r.stdout}`);
  else assert.equal(ok, 0, `${from.name} → ${ip}:${port} should be refused: ${r.stdout}`);
}

before(async () => {
  world = World.create();
  const boxes = new Sandboxes(world);
  agent = new AgentProcess(world, { where: 'node', extraArgs: ['--pod-cidr', '10.244.0.0/24'] });
  await agent.start();
  agent.writeManifest(
    'namespaces.yaml',
    ['shop', 'lab'].map((name) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { 'kubernetes.io/metadata.name': name } },
    })),
  );
  [client, server, intruder] = await Promise.all([
    addPod('shop', 'client', { app: 'client' }, boxes.add()),
    addPod('shop', 'server', { app: 'server' }, boxes.add()),
    addPod('lab', 'intruder', { app: 'intruder' }, boxes.add()),
  ]);
  agent.writeManifest('pods.yaml', [client, server, intruder].map(podManifest));
  agent.writeManifest('web.yaml', [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: 'shop', name: 'web' },
      spec: {
        clusterIP: VIP,
        clusterIPs: [VIP],
        selector: { app: 'server' },
        ports: [{ name: 'http', port: 80, targetPort: PORT, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: 'shop', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
      endpoints: [{ addresses: [server.ip], conditions: { ready: true } }],
    },
  ]);
  agent.writeManifest('policy.yaml', [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { namespace: 'shop', name: 'web-from-client' },
      spec: {
        podSelector: { matchLabels: { app: 'server' } },
        ingress: [
          {
            from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'client' } } }],
            ports: [{ port: 'http' }],
          },
        ],
      },
    },
  ]);
  const backend = world.spawn(
    server.box.where,
    [process.execPath, path.join(FIXTURES, 'backend.js'), '--name', 'server', '--tcp', String(PORT)],
    { inCgroup: true },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    backend.stdout?.on('data', (d: Buffer) => (out += d.toString()).includes('ready') && resolve());
    backend.once('exit', (code) => reject(new Error(`backend exited ${code}: ${out}`)));
  });
  // The policy in force, every pod known by name.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const p = await agent.get<{
      policies: string[];
      endpoints: { pod: string | null; identity: number; ingress: string }[];
    }>('/v1/policy');
    if (
      p.policies.includes('shop/web-from-client') &&
      p.endpoints.filter((e) => e.identity >= 256).length === 3 &&
      p.endpoints.some((e) => e.pod === 'shop/server' && e.ingress === 'isolated')
    )
      break;
    if (Date.now() > deadline) assert.fail(`the policy is not in force: ${JSON.stringify(p)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await agent.waitForKernel(
    (s) => s.some((k) => k.frontend.ip === VIP && k.backends.length === 1),
    'the Service in the kernel',
  );

  await connect(client, VIP, 80, 'ok');
  await connect(intruder, server.ip, PORT, 'refused');
  // A datagram from an address the client holds but Weft did not give it.
  ipIn(client.box.name, 'addr', 'add', `${SPOOFED}/32`, 'dev', 'eth0');
  await world.run(
    client.box.where,
    [
      process.execPath,
      '-e',
      `const s = require('node:dgram').createSocket('udp4'); s.bind({ address: '${SPOOFED}' }, () => s.send('x', 9999, '${server.ip}', () => s.close()));`,
    ],
    { inCgroup: true, timeoutMs: 10_000 },
  );
});

after(async () => {
  await agent?.stop();
  await world?.dispose();
});

const ep = (p: TestPod) => ({ namespace: p.namespace, pod: p.name, ip: p.ip });
const sameEp = (e: Flow['source'], p: TestPod) => e.namespace === p.namespace && e.pod === p.name && e.ip === p.ip;

describe('weft observe on real traffic', () => {
  it('a connection to a Service: translated at connect, with the service named and the backend as destination', async () => {
    const flows = await observeUntil(
      ['--type', 'sock', '--last', '100'],
      (fs) => fs.some((f) => f.service === 'shop/web'),
      'the socket translation',
    );
    const f = flows.find((x) => x.service === 'shop/web')!;
    assert.equal(f.verdict, 'TRANSLATED');
    assert.equal(f.l4.protocol, 'TCP');
    assert.equal(f.observation_point, 'sock');
    // The socket's pod, found by its network namespace's cookie (the CNI plugin reports it).
    assert.deepEqual({ namespace: f.source.namespace, pod: f.source.pod, ip: f.source.ip }, ep(client));
    assert.ok(f.source.labels.includes('app=client'));
    assert.deepEqual(
      { ...ep(server), port: PORT, identity: f.destination.identity },
      {
        namespace: f.destination.namespace,
        pod: f.destination.pod,
        ip: f.destination.ip,
        port: f.destination.port,
        identity: f.destination.identity,
      },
    );
    assert.ok(f.destination.identity >= 256, 'the backend has its pod identity');
    assert.ok(f.destination.labels.includes('app=server'));
    assert.match(
      f.summary,
      new RegExp(`connect ${VIP.replaceAll('.', '\\.')}:80 → ${server.ip.replaceAll('.', '\\.')}:${PORT}`),
    );
  });

  it('the allowed connection: a policy verdict naming the policy and its rule, and a new-connection trace', async () => {
    const flows = await observeUntil(
      ['--from-pod', 'shop/client', '--to-port', String(PORT), '--last', '100'],
      (fs) => fs.some((f) => f.type === 'policy-verdict') && fs.some((f) => f.type === 'trace'),
      'the allowed connection',
    );
    const verdict = flows.find((f) => f.type === 'policy-verdict')!;
    assert.equal(verdict.verdict, 'FORWARDED');
    assert.deepEqual(verdict.policy, { name: 'shop/web-from-client', rule: 'spec.ingress[0]', direction: 'ingress' });
    assert.ok(sameEp(verdict.source, client) && sameEp(verdict.destination, server), JSON.stringify(verdict));
    assert.ok(verdict.source.labels.includes('app=client'));
    const trace = flows.find((f) => f.type === 'trace' && f.observation_point === 'from-pod')!;
    assert.equal(trace.verdict, 'FORWARDED');
    assert.equal(trace.is_reply, false);
    assert.deepEqual(trace.l4.tcp_flags, ['SYN']);
    assert.equal(trace.destination.port, PORT);
    assert.ok(sameEp(trace.source, client) && sameEp(trace.destination, server), JSON.stringify(trace));
  });

  it('the denied connection: DROPPED with reason policy-denied, from the intruder to the server', async () => {
    const flows = await observeUntil(
      ['--verdict', 'DROPPED', '--drop-reason', 'policy-denied', '--last', '100'],
      (fs) => fs.some((f) => f.type === 'drop'),
      'the policy drop',
    );
    for (const f of flows) {
      assert.equal(f.verdict, 'DROPPED');
      assert.equal(f.drop_reason, 'policy-denied');
      assert.ok(sameEp(f.source, intruder) && sameEp(f.destination, server), JSON.stringify(f));
      assert.equal(f.destination.port, PORT);
    }
    const verdict = flows.find((f) => f.type === 'policy-verdict');
    assert.deepEqual(verdict?.policy, { name: 'shop/web-from-client', rule: 'default deny', direction: 'ingress' });
  });

  it("the spoofed datagram: DROPPED with reason spoofed-source, at the client's interface", async () => {
    const flows = await observeUntil(
      ['--drop-reason', 'spoofed-source', '--last', '10'],
      (fs) => fs.length > 0,
      'the spoofed datagram',
    );
    const f = flows.at(-1)!;
    assert.equal(f.type, 'drop');
    assert.equal(f.source.ip, SPOOFED);
    assert.equal(f.destination.ip, server.ip);
    assert.equal(f.destination.port, 9999);
    assert.equal(f.l4.protocol, 'UDP');
    assert.equal(f.observation_point, 'from-pod');
  });

  it('filters select exactly what they say', async () => {
    const all = await observe('--last', '1000');
    assert.ok(all.length >= 6, `flows so far: ${all.length}`);
    const check = async (args: string[], pred: (f: Flow) => boolean) => {
      const got = await observe(...args, '--last', '1000');
      const want = all.filter(pred);
      // The same flows (more may have come since `all`: compare those both saw).
      const key = (f: Flow) => `${f.time} ${f.type}`;
      const seen = new Set(all.map(key));
      assert.deepEqual(got.filter((f) => seen.has(key(f))).map(key), want.map(key), `weft observe ${args.join(' ')}`);
      assert.ok(want.length > 0, `weft observe ${args.join(' ')} selects something`);
    };
    await check(['--namespace', 'lab'], (f) => f.source.namespace === 'lab' || f.destination.namespace === 'lab');
    await check(
      ['--to-pod', 'shop/server'],
      (f) => f.destination.namespace === 'shop' && f.destination.pod?.startsWith('server') === true,
    );
    await check(['--from-label', 'app=client'], (f) => f.source.labels.includes('app=client'));
    await check(
      ['--verdict', 'FORWARDED', '--protocol', 'tcp'],
      (f) => f.verdict === 'FORWARDED' && f.l4.protocol === 'TCP',
    );
    await check(['--type', 'drop'], (f) => f.type === 'drop');
    await check(['--ip', `${intruder.ip}/32`], (f) => f.source.ip === intruder.ip || f.destination.ip === intruder.ip);
    await check(['--port', '9999'], (f) => f.source.port === 9999 || f.destination.port === 9999);
  });

  it('compact output names pods and ports, one line a flow', async () => {
    const { stdout } = await exec(
      WEFT,
      ['observe', '--state-dir', agent.stateDir, '--drop-reason', 'policy-denied', '--type', 'drop', '--last', '1'],
      { timeout: 15_000 },
    );
    const lines = stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, stdout);
    assert.match(
      lines[0]!,
      new RegExp(
        `^\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}: lab/intruder:\\d+ → shop/server:${PORT} policy-denied DROPPED \\(TCP Flags: SYN\\)$`,
      ),
    );
  });

  it('--follow delivers new flows as they happen', async () => {
    const child = execFile(WEFT, [
      'observe',
      '--state-dir',
      agent.stateDir,
      '-o',
      'json',
      '-f',
      '--from-pod',
      'lab/intruder',
    ]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(out, '', 'no history without --last or --since');
      await connect(intruder, server.ip, PORT, 'refused');
      const deadline = Date.now() + 10_000;
      while (!out.includes('"policy-denied"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const flows = out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Flow);
      assert.ok(
        flows.some((f) => f.drop_reason === 'policy-denied' && sameEp(f.source, intruder)),
        out,
      );
      assert.ok(
        flows.every((f) => sameEp(f.source, intruder)),
        "only the intruder's flows",
      );
    } finally {
      child.kill('SIGINT');
    }
  });

  it('weft status shows the observer: flows counted, nothing lost', async () => {
    const { stdout } = await exec(WEFT, ['status', '--state-dir', agent.stateDir, '--bpf-root', agent.bpfRoot], {
      timeout: 15_000,
    }).catch((e: { stdout: string }) => e);
    assert.match(
      stdout,
      /^Flows: +[\d.]+\/s \([\d,]+ total\); kernel ring \d+% of 8 MiB; flow ring [\d,]+\/16,384; lost: kernel 0, decode 0, follow 0/m,
    );
  });
});
