// weftd --source kubernetes against the test API server (the list/watch protocol over real
// HTTP, test/harness/kube-api-server.ts), with the real @kubernetes/client-node in the agent,
// the real kernel and real connections from a pod to the ClusterIPs it programs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentStatus } from '../../src/contract/agent-api.js';
import { compileServices } from '../../src/state/services.js';
import type { EndpointSlice, Service } from '../../src/state/resources.js';
import { AgentProcess } from '../harness/agent.js';
import { TestApiServer } from '../harness/kube-api-server.js';
import { endpointSlice, service, type PortSpec } from '../harness/manifests.js';
import { probe, startBackend } from '../harness/pods.js';
import { World, type Pod } from '../harness/world.js';

const SVC4 = '10.96.0.10';
const PORTS: PortSpec[] = [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }];
const SLICE_PORTS: PortSpec[] = [{ name: 'http', port: 8080, protocol: 'TCP' }];
const NODE = 'test-node';

let world: World;
let server: TestApiServer;
let agent: AgentProcess;
let client: Pod;
let backends: Pod[];

const webSlice = (ready: Pod[], notReady: Pod[] = []) =>
  endpointSlice(
    'web',
    4,
    [...ready.map((p) => ({ ip: p.ipv4 })), ...notReady.map((p) => ({ ip: p.ipv4, ready: false }))],
    SLICE_PORTS,
  );
const backendsOf =
  (ip: string, port = 80) =>
  (svcs: ReturnType<AgentProcess['kernelServices']>) =>
    svcs
      .find((s) => s.frontend.ip === ip && s.frontend.port === port)
      ?.backends.map((b) => b.ip)
      .sort();
const status = () => agent.get<AgentStatus>('/v1/status');
const requestsFor = (plural: string, watch: boolean) =>
  server.requests.filter((r) => r.path.endsWith(`/${plural}`) && r.watch === watch);

async function until<T>(
  read: () => T | Promise<T>,
  ok: (v: T) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`never saw ${what}; last: ${JSON.stringify(last)}\nagent log:\n${agent.log.slice(-4000)}`);
}

before(async () => {
  world = World.create();
  client = world.addPod('client');
  backends = ['backend-1', 'backend-2', 'backend-3'].map((n) => world.addPod(n));
  await Promise.all(backends.map((p) => startBackend(world, p, { tcp: [8080] })));
  server = await TestApiServer.start({ token: 'weft-test-token' });
  const kubeconfig = path.join(world.stateDir, 'kubeconfig');
  server.writeKubeconfig(kubeconfig);
  server.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, spec: { podCIDRs: ['10.244.9.0/24'] } });
  server.create({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'default', labels: { 'kubernetes.io/metadata.name': 'default' } },
  });
  agent = new AgentProcess(world, { kubeconfig });
});

after(async () => {
  await agent?.stop();
  await server?.close();
  await world?.dispose();
});

describe('first sync', () => {
  it('until every resource is listed the agent is not ready, and says what it waits for', async () => {
    server.create(service('web', [SVC4], PORTS));
    server.create(webSlice(backends));
    server.failNext(1_000_000, 500); // until told otherwise
    await agent.start(20_000, /list\/watch failed; retrying/);
    const early = await status();
    assert.equal(early.synced, false);
    assert.match(early.waitingFor ?? '', /Kubernetes API/);
    assert.ok(
      early.informers!.some((i) => /HTTP 500/.test(i.lastError ?? '')),
      JSON.stringify(early.informers),
    );
    await assert.rejects(agent.get('/readyz'), /not ready: waiting for/);
    server.failNext(0);
    await agent.waitForLog(/msg="weftd ready"/, 20_000);
    const s = await status();
    assert.equal(s.synced, true);
    assert.deepEqual(await agent.get('/readyz'), { ready: true });
    assert.match(s.source, /^kubernetes \(http:\/\/127\.0\.0\.1:\d+\)$/);
    await agent.waitForKernel((k) => backendsOf(SVC4)(k)?.length === 3, 'web with 3 backends');
  });

  it('the node pod CIDRs come from its Node object, and follow it', async () => {
    assert.deepEqual(
      (await status()).podCidrs.map((p) => p.cidr),
      ['10.244.9.0/24'],
    );
    server.update({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE },
      spec: { podCIDRs: ['10.244.9.0/24', 'fd00:10:244:9::/64'] },
    });
    await until(status, (s) => s.podCidrs.length === 2, 'the IPv6 pod CIDR');
  });
});

describe('changes through the API', () => {
  it('services, slices and pods created, changed and deleted converge into the kernel', async () => {
    const r = await probe(world, client, SVC4, 80, 'tcp', 30);
    assert.deepEqual(Object.keys(r.answers).sort(), backends.map((b) => b.name).sort());
    assert.deepEqual(r.errors, {});

    server.update(webSlice(backends.slice(0, 2), [backends[2]!]));
    await agent.waitForKernel((k) => backendsOf(SVC4)(k)?.length === 2, 'the not-ready endpoint to go');
    const after = await probe(world, client, SVC4, 80, 'tcp', 20);
    assert.equal(after.answers[backends[2]!.name], undefined);

    server.create(service('api', ['10.96.0.11'], PORTS));
    server.create(endpointSlice('api', 4, [{ ip: backends[0]!.ipv4 }], SLICE_PORTS));
    await agent.waitForKernel((k) => backendsOf('10.96.0.11')(k)?.length === 1, 'the new api service');
    server.delete('v1', 'Service', 'default', 'api');
    await agent.waitForKernel((k) => backendsOf('10.96.0.11')(k) === undefined, 'the deleted api service to go');

    const pod = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', labels: { app: 'web' } },
      spec: { nodeName: NODE, containers: [{ name: 'app' }] },
    });
    const pods = () => status().then((s) => s.informers?.find((i) => i.resource === 'pods')?.objects);
    const before = (await pods()) ?? 0;
    server.create(pod('web-a'));
    server.create(pod('web-b'));
    await until(pods, (n) => n === before + 2, 'two pods in the agent');
    server.delete('v1', 'Pod', 'default', 'web-a');
    await until(pods, (n) => n === before + 1, 'the deleted pod to go');
  });

  it('an invalid object is named in status; its last good version stays in force until fixed', async () => {
    const bad = service(
      'web',
      [SVC4],
      [
        { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
        { name: 'http', port: 81, protocol: 'TCP' },
      ],
    );
    server.update(bad);
    const s = await until(
      status,
      (st) => st.problems.some((p) => p.object === 'Service/default/web'),
      'the problem to be reported',
    );
    assert.match(JSON.stringify(s.problems), /spec\.ports\[1\]\.name: duplicate port name/);
    assert.equal(backendsOf(SVC4)(agent.kernelServices())?.length, 2, 'the last good web stays');
    server.update(service('web', [SVC4], PORTS));
    await until(status, (st) => st.problems.length === 0, 'the problem to clear');

    // A new object that was never valid: reported, nothing applied, and forgotten with it.
    server.create(
      service(
        'broken',
        ['10.96.0.13'],
        [
          { name: 'http', port: 80, protocol: 'TCP' },
          { name: 'http', port: 81, protocol: 'TCP' },
        ],
      ),
    );
    await until(
      status,
      (st) => st.problems.some((p) => p.object === 'Service/default/broken'),
      'the broken service reported',
    );
    assert.equal(backendsOf('10.96.0.13')(agent.kernelServices()), undefined);
    server.delete('v1', 'Service', 'default', 'broken');
    await until(status, (st) => st.problems.length === 0, 'the deleted broken service to take its problem along');
  });
});

describe('the watch protocol', () => {
  it('a watch cut mid-event resumes from its resourceVersion: nothing lost, no re-list', async () => {
    const lists = requestsFor('endpointslices', false).length;
    const watches = requestsFor('endpointslices', true).length;
    server.update(webSlice(backends));
    assert.ok(server.disconnectWatches({ midEvent: true }) > 0);
    server.update(webSlice([backends[0]!]));
    await agent.waitForKernel((k) => backendsOf(SVC4)(k)?.length === 1, 'the change made while the watch was cut');
    await until(
      () => requestsFor('endpointslices', true).length,
      (n) => n > watches,
      'the watch to reopen',
    );
    const resumed = requestsFor('endpointslices', true).at(-1)!;
    assert.ok(
      Number(resumed.query.resourceVersion) > 0,
      `resumed from a resourceVersion: ${JSON.stringify(resumed.query)}`,
    );
    assert.equal(requestsFor('endpointslices', false).length, lists, 'no re-list');
  });

  it('410 Gone leads to a re-list that converges, deletions included', async () => {
    const lists = requestsFor('services', false).length;
    server.create(service('gone', ['10.96.0.12'], PORTS));
    server.create(endpointSlice('gone', 4, [{ ip: backends[1]!.ipv4 }], SLICE_PORTS));
    await agent.waitForKernel((k) => backendsOf('10.96.0.12')(k)?.length === 1, 'service gone to appear');
    // Cut, change and compact in one tick: the agent comes back with a resourceVersion the
    // server has forgotten.
    server.disconnectWatches();
    server.delete('v1', 'Service', 'default', 'gone');
    server.update(webSlice(backends));
    server.compact();
    await agent.waitForKernel(
      (k) => backendsOf('10.96.0.12')(k) === undefined && backendsOf(SVC4)(k)?.length === 3,
      'the re-listed state',
    );
    await until(
      () => requestsFor('services', false).length,
      (n) => n > lists,
      'a re-list of services',
    );
  });

  it('API errors back off and retry; the datapath keeps its state meanwhile', async () => {
    server.failNext(3, 503);
    server.disconnectWatches();
    server.update(webSlice(backends.slice(0, 2)));
    await agent.waitForKernel((k) => backendsOf(SVC4)(k)?.length === 2, 'the change after the errors');
    const s = await status();
    assert.ok(
      s.informers!.some((i) => i.errors > 0),
      'errors were counted',
    );
  });
});

describe('Gateway API routes', () => {
  const crd = 'httproutes.gateway.networking.k8s.io';
  const informer = (name: string) => status().then((s) => s.informers?.find((i) => i.resource === name));
  it('an absent CRD is not an error; once installed its routes are watched, once removed forgotten', async () => {
    assert.equal(await informer('httproutes'), undefined);
    assert.equal((await status()).synced, true);
    server.installCrd(crd);
    await until(
      () => informer('httproutes'),
      (i) => i?.synced === true,
      'the httproutes informer',
    );
    server.create({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web-canary', namespace: 'default' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [] },
    });
    await until(
      () => informer('httproutes'),
      (i) => i?.objects === 1,
      'the route in the agent',
    );
    server.removeCrd(crd);
    await until(
      () => informer('httproutes'),
      (i) => i === undefined,
      'the informer to stop',
    );
  });
});

describe('agent restarts', () => {
  it('a restart keeps services reachable throughout, and deletes nothing before its first sync', async () => {
    await agent.waitForKernel((k) => backendsOf(SVC4)(k)?.length === 2, 'web with 2 backends');
    const running = probe(world, client, SVC4, 80, 'tcp', 400);
    await new Promise((r) => setTimeout(r, 100));
    await agent.stop('SIGKILL');
    // While the agent is down the API changes, and then answers errors for a while.
    server.update(webSlice(backends));
    server.failNext(6, 500);
    await agent.start(20_000, /list\/watch failed; retrying/);
    assert.equal(backendsOf(SVC4)(agent.kernelServices())?.length, 2, 'the kernel kept its state until the first sync');
    await agent.waitForLog(/msg="weftd ready"/, 20_000);
    await agent.waitForKernel((k) => backendsOf(SVC4)(k)?.length === 3, 'the restarted agent reconciles');
    const r = await running;
    assert.deepEqual(r.errors, {}, `no connection failed: ${JSON.stringify(r)}`);
    assert.equal(
      Object.values(r.answers).reduce((a, b) => a + b, 0),
      400,
    );
  });
});

describe('churn', () => {
  it('1,000 services with endpoint changes, a watch cut and a 410 converge with no stale entry', async () => {
    // ClusterIPs 10.98.x.y, backends 10.170.x.y: map entries only, never contacted.
    const N = 1000;
    const model = new Map<number, string[]>();
    const ip = (base: string, i: number) => `${base}.${i >> 8}.${i & 255}`;
    const put = (i: number, eps: string[], create: boolean) => {
      if (create) server.create(service(`churn-${i}`, [ip('10.98', i)], PORTS, 'churn'));
      const slice = endpointSlice(
        `churn-${i}`,
        4,
        eps.map((e) => ({ ip: e })),
        SLICE_PORTS,
        { namespace: 'churn' },
      );
      if (create) server.create(slice);
      else server.update(slice);
      model.set(i, eps);
    };
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
    for (let i = 1; i <= N; i++) put(i, [ip('10.170', i)], true);
    for (let round = 0; round < 6; round++) {
      for (let op = 0; op < 300; op++) {
        const i = 1 + rand(N + 50);
        const known = model.has(i);
        if (!known) put(i, [ip('10.170', i)], true);
        else if (rand(10) === 0) {
          server.delete('v1', 'Service', 'churn', `churn-${i}`);
          server.delete('discovery.k8s.io/v1', 'EndpointSlice', 'churn', `churn-${i}-v4`);
          model.delete(i);
        } else {
          const eps = Array.from({ length: 1 + rand(4) }, (_, k) => ip(`10.${171 + k}`, 1 + rand(60000)));
          put(i, [...new Set(eps)], false);
        }
      }
      if (round === 2) server.disconnectWatches({ midEvent: true });
      if (round === 4) {
        server.disconnectWatches();
        server.compact();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // What the kernel must hold for the churn services, computed by the pure compiler from
    // what the API server holds (not from the agent).
    const inChurn = (o: { metadata: { namespace?: string } }) => o.metadata.namespace === 'churn';
    const svcs = server.list('v1', 'Service').filter(inChurn) as unknown as Service[];
    const slices = server.list('discovery.k8s.io/v1', 'EndpointSlice').filter(inChurn) as unknown as EndpointSlice[];
    const want = new Map(
      compileServices(svcs, slices).frontends.map((f) => [
        f.key.ip,
        f.backends
          .map((b) => b.ip)
          .sort()
          .join(','),
      ]),
    );
    assert.equal(want.size, model.size);
    for (const [i, eps] of model)
      assert.equal(want.get(ip('10.98', i)), [...eps].sort().join(','), `model and API server agree on churn-${i}`);
    const churnInKernel = (k: ReturnType<AgentProcess['kernelServices']>) =>
      new Map(
        k
          .filter((s) => s.frontend.ip.startsWith('10.98.'))
          .map((s) => [
            s.frontend.ip,
            s.backends
              .map((b) => b.ip)
              .sort()
              .join(','),
          ]),
      );
    const kernel = await agent.waitForKernel(
      (k) => {
        const got = churnInKernel(k);
        return got.size === want.size && [...want].every(([f, b]) => got.get(f) === b);
      },
      'the churned services',
      30_000,
    );
    assert.deepEqual([...churnInKernel(kernel)].sort(), [...want].sort());
  });
});

describe('network policy from the API', () => {
  // Pods of other nodes: their labels and addresses come from the API alone.
  const remotePod = (name: string, labels: Record<string, string>, ip: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: 'shop', name, labels },
    spec: { nodeName: 'other-node', containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: 'Running', podIPs: [{ ip }] },
  });
  const webPolicy = (ports: object[]) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'shop', name: 'web-from-frontend' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { role: 'frontend' } } }], ports }],
    },
  });
  const explain = (from: string, port: number) =>
    agent.get<{ verdict: string; policy: string | null; rule: string; direction: string }>(
      `/v1/explain?from=shop/${from}&to=shop/web-1&port=${port}&protocol=TCP`,
    );
  // Until the agent has seen the Pods (another informer than the policy's), explain says 404.
  const explainSoon = (from: string, port: number) =>
    explain(from, port).catch((err: Error) => ({ verdict: `error: ${err.message}` }));

  it('Pods, Namespaces and NetworkPolicies from the API give identities and verdicts; a bad policy is refused and the last good one stays', async () => {
    server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { team: 'shop' } } });
    server.create(remotePod('web-1', { app: 'web' }, '10.244.50.1'));
    server.create(remotePod('frontend-1', { role: 'frontend' }, '10.244.50.2'));
    server.create(remotePod('batch-1', { role: 'batch' }, '10.244.50.3'));
    server.create(webPolicy([{ port: 'http' }]));
    await until(
      () => agent.get<{ policies: string[] }>('/v1/policy'),
      (p) => p.policies.includes('shop/web-from-frontend'),
      'the policy in force',
    );
    await until(
      () => explainSoon('frontend-1', 8080),
      (e) => e.verdict === 'ALLOW',
      'frontend allowed',
    );
    const { verdict, policy, rule, direction } = await explain('frontend-1', 8080);
    assert.deepEqual(
      { verdict, policy, rule, direction },
      { verdict: 'ALLOW', policy: 'shop/web-from-frontend', rule: 'spec.ingress[0]', direction: 'ingress' },
    );
    await until(
      () => explainSoon('batch-1', 8080),
      (e) => e.verdict === 'DENY',
      'batch denied',
    );
    assert.equal((await explain('frontend-1', 9090)).verdict, 'DENY', 'the named port is 8080');

    // Labels change through the API: the verdict follows.
    server.update(remotePod('batch-1', { role: 'frontend' }, '10.244.50.3'));
    await until(
      () => explainSoon('batch-1', 8080),
      (e) => e.verdict === 'ALLOW',
      'a relabelled pod allowed',
    );

    // An invalid version is refused by field; the good one stays in force.
    server.update(webPolicy([{ port: 'a-port-name-too-long' }]));
    const s = await until(
      status,
      (x) => x.problems.some((p) => p.object === 'NetworkPolicy/shop/web-from-frontend'),
      'the problem reported',
    );
    assert.match(JSON.stringify(s.problems), /spec\.ingress\[0\]\.ports\[0\]\.port/);
    assert.equal((await explain('frontend-1', 8080)).verdict, 'ALLOW');
  });
});
