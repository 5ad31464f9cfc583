// The L7 path end to end: pods made by the CNI plugin, Services, an HTTPRoute, the kernel
// sending the routed Service's connections to weft-proxy (run by weftd), and the proxy routing
// and balancing each request. Read back the way a user would: what the client saw, what
// `weft observe` shows, what `weft status` says.
//
//   namespace mesh: client; web-v1-a, web-v1-b (app=web, version=v1); web-v2 (app=web,
//   version=v2). Services: web (all three), web-v1, web-v2 (the route's backends), and plain
//   (the v1 pods, no route: it must never touch the proxy).
//   HTTPRoute web-split on web:80: x-canary: yes → web-v2; path Exact /only-v2 → web-v2;
//   everything else 90/10 web-v1/web-v2. Two more HTTPRoutes on web:80 with the same match
//   (/age), decided by their age (one test).
//   namespace shop: cart, a client with a consumer route of its own for web, and a
//   ReferenceGrant in mesh for it (one test).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { AgentStatus } from '../../src/contract/agent-api.js';
import type { Flow } from '../../src/contract/flow.js';
import { AgentProcess, REPO, WEFT } from '../harness/agent.js';
import { addCniPod, Sandboxes, type Sandbox } from '../harness/cni.js';
import { World } from '../harness/world.js';

const exec = promisify(execFile);
const FIXTURES = path.join(REPO, 'build/js/test/fixtures');
const NS = 'mesh';
const PORT = 8080;
const VIPS = { web: '10.96.8.1', 'web-v1': '10.96.8.2', 'web-v2': '10.96.8.3', plain: '10.96.8.9' } as const;
const PROXY4 = '169.254.42.1';

interface TestPod {
  name: string;
  labels: Record<string, string>;
  box: Sandbox;
  ip: string;
}

let world: World;
let agent: AgentProcess;
let client: TestPod;
let cart: TestPod;
let v1: TestPod[];
let v2: TestPod;

async function addPod(name: string, labels: Record<string, string>, box: Sandbox): Promise<TestPod> {
  return { name, labels, box, ip: (await addCniPod(world, agent.socket, NS, name, box)).ipv4 };
}

function service(name: keyof typeof VIPS, pods: TestPod[]): object[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: NS, name },
      spec: {
        clusterIP: VIPS[name],
        clusterIPs: [VIPS[name]],
        ports: [{ name: 'http', port: 80, targetPort: PORT, protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: NS, name: `${name}-1`, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: PORT, protocol: 'TCP' }],
      endpoints: pods.map((p) => ({ addresses: [p.ip], conditions: { ready: true } })),
    },
  ];
}

const ROUTE = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { namespace: NS, name: 'web-split' },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
    rules: [
      { matches: [{ headers: [{ name: 'x-canary', value: 'yes' }] }], backendRefs: [{ name: 'web-v2', port: 80 }] },
      { matches: [{ path: { type: 'Exact', value: '/only-v2' } }], backendRefs: [{ name: 'web-v2', port: 80 }] },
      {
        backendRefs: [
          { name: 'web-v1', port: 80, weight: 90 },
          { name: 'web-v2', port: 80, weight: 10 },
        ],
      },
    ],
  },
};

interface ClientResult {
  answers: Record<string, number>;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  peer?: string;
}

async function request(
  url: string,
  opts: { count?: number; headers?: string[]; h2?: boolean; concurrency?: number; from?: TestPod } = {},
): Promise<ClientResult> {
  const argv = [
    process.execPath,
    path.join(FIXTURES, 'http-client.js'),
    '--url',
    url,
    '--count',
    String(opts.count ?? 10),
    ...(opts.h2 ? ['--h2', '--concurrency', String(opts.concurrency ?? 1)] : []),
    ...(opts.headers ?? []).flatMap((h) => ['--header', h]),
  ];
  const r = await world.run((opts.from ?? client).box.where, argv, { inCgroup: true, timeoutMs: 60_000 });
  assert.equal(r.code, 0, `http-client ${url}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClientResult;
}

const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
const v1Answers = (r: ClientResult) => v1.reduce((n, p) => n + (r.answers[p.name] ?? 0), 0);

async function status(): Promise<AgentStatus> {
  return agent.get<AgentStatus>('/v1/status');
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what} within ${timeoutMs} ms (last: ${String(last)})\nagent log:\n${agent.log.slice(-4000)}`);
}

async function observe(...args: string[]): Promise<Flow[]> {
  const { stdout } = await exec(WEFT, ['observe', '--state-dir', agent.stateDir, '-o', 'json', ...args], {
    timeout: 15_000,
  });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Flow);
}

before(async () => {
  world = World.create();
  const boxes = new Sandboxes(world);
  agent = new AgentProcess(world, { where: 'node', proxy: true, extraArgs: ['--pod-cidr', '10.244.0.0/24'] });
  await agent.start();
  [client, ...v1] = await Promise.all([
    addPod('client', { app: 'client' }, boxes.add()),
    addPod('web-v1-a', { app: 'web', version: 'v1' }, boxes.add()),
    addPod('web-v1-b', { app: 'web', version: 'v1' }, boxes.add()),
  ]);
  v2 = await addPod('web-v2', { app: 'web', version: 'v2' }, boxes.add());
  const cartBox = boxes.add();
  cart = {
    name: 'cart',
    labels: { app: 'cart' },
    box: cartBox,
    ip: (await addCniPod(world, agent.socket, 'shop', 'cart', cartBox)).ipv4,
  };
  for (const p of [...v1, v2]) {
    const child = world.spawn(
      p.box.where,
      [process.execPath, path.join(FIXTURES, 'backend.js'), '--name', p.name, '--http', String(PORT)],
      { inCgroup: true },
    );
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()).includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`backend ${p.name} exited ${code}: ${out}`)));
    });
  }
  agent.writeManifest(
    'pods.yaml',
    [client, ...v1, v2]
      .map((p) => ({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: NS, name: p.name, labels: p.labels },
        spec: { nodeName: 'test-node', containers: [{ name: 'app', image: 'weft-test/backend' }] },
        status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
      }))
      .concat([
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { namespace: 'shop', name: cart.name, labels: cart.labels },
          spec: { nodeName: 'test-node', containers: [{ name: 'app', image: 'weft-test/backend' }] },
          status: { phase: 'Running', podIP: cart.ip, podIPs: [{ ip: cart.ip }] },
        },
      ]),
  );
  agent.writeManifest('services.yaml', [
    ...service('web', [...v1, v2]),
    ...service('web-v1', v1),
    ...service('web-v2', [v2]),
    ...service('plain', v1),
  ]);
  agent.writeManifest('route.yaml', [ROUTE]);
  // Routed once the proxy holds the route and the kernel sends web's connections to it.
  await agent.waitForKernel(
    (s) => s.some((k) => k.frontend.ip === VIPS.web && k.backends.length === 1 && k.backends[0]!.ip === PROXY4),
    'web redirected to the proxy',
    20_000,
  );
});

after(async () => {
  await agent?.stop();
  await world?.dispose();
});

describe('HTTPRoute through weft-proxy', () => {
  it('the application still sees the Service as its peer', async () => {
    const r = await request(`http://${VIPS.web}/`, { count: 1 });
    assert.deepEqual(r.errors, {});
    assert.equal(r.peer, `${VIPS.web}:80`);
  });

  it('a 90/10 split holds over 2,000 requests on one kept connection', async () => {
    const r = await request(`http://${VIPS.web}/`, { count: 2000 });
    assert.deepEqual(r.errors, {});
    assert.equal(r.statuses['200'], 2000, JSON.stringify(r.statuses));
    // Binomial(2000, 0.1): sd 13.4; ±4 sd.
    const canary = r.answers[v2.name] ?? 0;
    assert.ok(canary >= 146 && canary <= 254, `web-v2 got ${canary} of 2000 (want 200 ± 54)`);
    assert.equal(v1Answers(r) + canary, 2000);
  });

  it('a header match sends every request to the canary', async () => {
    const r = await request(`http://${VIPS.web}/`, { count: 50, headers: ['x-canary: yes'] });
    assert.deepEqual(r.answers, { [v2.name]: 50 });
  });

  it('an Exact path wins over the catch-all prefix; a longer path is not Exact', async () => {
    const exact = await request(`http://${VIPS.web}/only-v2`, { count: 50 });
    assert.deepEqual(exact.answers, { [v2.name]: 50 });
    const longer = await request(`http://${VIPS.web}/only-v2/more`, { count: 200 });
    assert.ok(v1Answers(longer) > 100, JSON.stringify(longer.answers));
  });

  it('two routes with the same match: the older one (metadata.creationTimestamp) decides, not the name', async () => {
    // "a-newer" comes first by name (the tie-break without timestamps) and in the file.
    const ageRoute = (name: string, backend: string, creationTimestamp: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { namespace: NS, name, creationTimestamp },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
        rules: [
          { matches: [{ path: { type: 'PathPrefix', value: '/age' } }], backendRefs: [{ name: backend, port: 80 }] },
        ],
      },
    });
    const all = (backend: string) => async () => {
      const r = await request(`http://${VIPS.web}/age`, { count: 20 });
      return r.answers[backend] === 20 ? r : undefined;
    };
    agent.writeManifest('age.yaml', [
      ageRoute('a-newer', 'web-v1', '2024-05-01T12:00:01Z'),
      ageRoute('z-older', 'web-v2', '2024-05-01T12:00:00Z'),
    ]);
    await waitFor("every /age request to web-v2, the older route's backend", all(v2.name));
    assert.deepEqual((await request(`http://${VIPS.web}/age/x`, { count: 50 })).answers, { [v2.name]: 50 });
    // The same two routes, their ages swapped: now the other one decides.
    agent.writeManifest('age.yaml', [
      ageRoute('a-newer', 'web-v1', '2024-05-01T12:00:00Z'),
      ageRoute('z-older', 'web-v2', '2024-05-01T12:00:01Z'),
    ]);
    const swapped = await waitFor("every /age request to web-v1, now the older route's backend", async () => {
      const r = await request(`http://${VIPS.web}/age`, { count: 50 });
      return v1Answers(r) === 50 ? r : undefined;
    });
    assert.equal(swapped.answers[v2.name], undefined);
    agent.removeManifest('age.yaml');
    await waitFor("/age back on web-split's 90/10", async () => {
      const r = await request(`http://${VIPS.web}/age`, { count: 100 });
      return (r.answers[v2.name] ?? 0) > 0 && v1Answers(r) > 0 ? r : undefined;
    });
  });

  it("a long-lived HTTP/2 client's requests spread over every backend (no hotspot on the one connection)", async () => {
    // As a gRPC channel does: one session, requests multiplexed on it (20 in flight).
    const r = await request(`http://${VIPS.web}/`, { count: 600, h2: true, concurrency: 20 });
    assert.deepEqual(r.errors, {});
    assert.equal(r.statuses['200'], 600);
    for (const p of [...v1, v2]) assert.ok((r.answers[p.name] ?? 0) >= 20, `${p.name}: ${JSON.stringify(r.answers)}`);
  });

  it('a Service without routes never touches the proxy', async () => {
    const r = await request(`http://${VIPS.plain}/`, { count: 20 });
    assert.equal(v1Answers(r), 20);
    const flows = await observe('--type', 'sock', '--last', '1000');
    const plain = flows.filter((f) => f.service === `${NS}/plain`);
    const web = flows.filter((f) => f.service === `${NS}/web`);
    assert.ok(
      plain.length > 0 && plain.every((f) => f.verdict === 'TRANSLATED' && v1.some((p) => p.ip === f.destination.ip)),
      JSON.stringify(plain),
    );
    assert.ok(
      web.length > 0 && web.every((f) => f.verdict === 'REDIRECTED' && f.destination.ip === PROXY4),
      JSON.stringify(web),
    );
  });

  it('every request is an L7 flow: weft observe --protocol http shows method, path, status and the backend', async () => {
    await request(`http://${VIPS.web}/only-v2`, { count: 3 });
    const flows = await waitFor('L7 flows for /only-v2', async () => {
      const fs = await observe('--protocol', 'http', '--http-path', '^/only-v2$', '--last', '3');
      return fs.length === 3 ? fs : undefined;
    });
    for (const f of flows) {
      assert.equal(f.type, 'l7');
      assert.equal(f.verdict, 'FORWARDED');
      assert.equal(f.service, `${NS}/web`);
      assert.deepEqual([f.l7?.method, f.l7?.path, f.l7?.status], ['GET', '/only-v2', 200]);
      assert.equal(f.destination.ip, v2.ip);
      assert.equal(f.destination.pod, v2.name);
      assert.equal(f.source.ip, client.ip);
      assert.equal(f.source.pod, client.name);
    }
    const errors = await observe('--protocol', 'http', '--http-status', '5+', '--last', '100');
    assert.deepEqual(errors, [], 'no 5xx so far');
  });

  it('malformed HTTP gets a 400 and leaves the proxy serving', async () => {
    const r = await world.run(
      client.box.where,
      [
        process.execPath,
        '-e',
        `
      const s = require('node:net').connect(80, '${VIPS.web}', () => s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nBad Header\\r\\n\\r\\n'));
      let out = ''; s.on('data', (d) => out += d); s.on('close', () => { console.log(out.split('\\r\\n')[0]); }); s.on('error', (e) => console.log('error ' + e.code));
      setTimeout(() => s.destroy(), 5000).unref();`,
      ],
      { inCgroup: true, timeoutMs: 15_000 },
    );
    assert.match(r.stdout.trim(), /^HTTP\/1\.1 400/);
    const after = await request(`http://${VIPS.web}/`, { count: 5 });
    assert.equal(after.statuses['200'], 5);
  });

  it('a broken route is refused naming its field, and the routing in force stays', async () => {
    const from = agent.log.length;
    const broken = structuredClone(ROUTE);
    (broken.spec.rules[1]!.matches![0] as { path: { type: string; value: string } }).path = {
      type: 'RegularExpression',
      value: '/only-v2(',
    };
    agent.writeManifest('route.yaml', [broken]);
    const line = await agent.waitForLog(
      /route\.yaml.*HTTPRoute.*spec\.rules\[1\]\.matches\[0\]\.path\.value.*/,
      10_000,
      from,
    );
    assert.match(line, /regular expression|regex/i);
    const r = await request(`http://${VIPS.web}/only-v2`, { count: 20 });
    assert.deepEqual(r.answers, { [v2.name]: 20 }, 'the last good route still routes /only-v2 to the canary');
    agent.writeManifest('route.yaml', [ROUTE]);
  });

  it('weft-proxy killed under load: the agent reports it, restarts it, and new connections succeed again', async () => {
    const before = (await status()).proxy;
    assert.ok(before?.running && before.pid, JSON.stringify(before));
    // A client busy on one HTTP/2 session while the proxy dies: it sees errors, not a hang.
    const load = request(`http://${VIPS.web}/`, { count: 100_000, h2: true, concurrency: 10 });
    await new Promise((r) => setTimeout(r, 300));
    process.kill(before.pid, 'SIGKILL');
    const during = await load;
    assert.ok(total(during.answers) > 0, 'requests were served before the kill');
    assert.ok(total(during.errors) > 0 || total(during.answers) < 100_000, 'the kill cut the session short');
    const back = await waitFor('the proxy back with the routes', async () => {
      const p = (await status()).proxy;
      return p?.running && p.pid !== before.pid && p.version > 0 ? p : undefined;
    });
    assert.equal(back.restarts, before.restarts + 1);
    const r = await waitFor('a request through the restarted proxy', async () => {
      const x = await request(`http://${VIPS.web}/`, { count: 20, headers: ['x-canary: yes'] });
      return x.answers[v2.name] === 20 ? x : undefined;
    });
    assert.equal(r.statuses['200'], 20);
  });

  it("a consumer route (GAMMA) routes its namespace's clients instead of the producer's route; others keep the producer's; a ReferenceGrant opens another Service", async () => {
    // shop's own route for web: /shop-only to web's pods; nothing else (its clients get a 404
    // for what it does not match, such as the producer's /only-v2).
    agent.writeManifest('consumer-route.yaml', [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { namespace: 'shop', name: 'cart-calls-web' },
        spec: {
          parentRefs: [{ group: '', kind: 'Service', name: 'web', namespace: NS, port: 80 }],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/shop-only' } }],
              backendRefs: [{ name: 'web', namespace: NS, port: 80 }],
            },
          ],
        },
      },
    ]);
    // In force once cart's /only-v2, which the producer's route sends to web-v2, finds no route.
    await waitFor('the consumer route in force', async () =>
      (await request(`http://${VIPS.web}/only-v2`, { count: 1, from: cart })).statuses['404'] === 1 ? true : undefined,
    );
    assert.deepEqual((await request(`http://${VIPS.web}/only-v2`, { count: 3, from: cart })).statuses, { 404: 3 });
    const fromCart = await request(`http://${VIPS.web}/shop-only`, { count: 30, from: cart });
    assert.equal(fromCart.statuses['200'], 30);
    assert.ok(
      [...v1, v2].filter((p) => (fromCart.answers[p.name] ?? 0) > 0).length >= 2,
      `web's pods answer cart: ${JSON.stringify(fromCart.answers)}`,
    );
    // The mesh namespace's client still gets the producer's route.
    const fromClient = await request(`http://${VIPS.web}/only-v2`, { count: 5 });
    assert.deepEqual([fromClient.statuses, fromClient.answers], [{ 200: 5 }, { 'web-v2': 5 }]);
    // Another Service of the mesh namespace (not the parent) needs a ReferenceGrant there:
    // without one cart's /canary gets a 500, with one it reaches web-v2.
    agent.writeManifest('consumer-route.yaml', [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { namespace: 'shop', name: 'cart-calls-web' },
        spec: {
          parentRefs: [{ group: '', kind: 'Service', name: 'web', namespace: NS, port: 80 }],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/shop-only' } }],
              backendRefs: [{ name: 'web', namespace: NS, port: 80 }],
            },
            {
              matches: [{ path: { type: 'PathPrefix', value: '/canary' } }],
              backendRefs: [{ name: 'web-v2', namespace: NS, port: 80 }],
            },
          ],
        },
      },
    ]);
    await waitFor("cart's /canary refused for want of a grant", async () =>
      (await request(`http://${VIPS.web}/canary`, { count: 1, from: cart })).statuses['500'] === 1 ? true : undefined,
    );
    agent.writeManifest('grant.yaml', [
      {
        apiVersion: 'gateway.networking.k8s.io/v1beta1',
        kind: 'ReferenceGrant',
        metadata: { namespace: NS, name: 'shop-routes-to-web-v2' },
        spec: {
          from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' }],
          to: [{ group: '', kind: 'Service', name: 'web-v2' }],
        },
      },
    ]);
    await waitFor("cart's /canary granted", async () => {
      const r = await request(`http://${VIPS.web}/canary`, { count: 5, from: cart });
      return r.statuses['200'] === 5 && r.answers['web-v2'] === 5 ? true : undefined;
    });
    agent.removeManifest('grant.yaml');
    agent.removeManifest('consumer-route.yaml');
    await waitFor('the consumer route gone', async () =>
      (await request(`http://${VIPS.web}/only-v2`, { count: 1, from: cart })).statuses['200'] === 1 ? true : undefined,
    );
  });

  it('removing the route takes the Service out of the proxy: its connections go to the pods again', async () => {
    agent.removeManifest('route.yaml');
    await agent.waitForKernel(
      (s) => s.some((k) => k.frontend.ip === VIPS.web && k.backends.length === 3),
      'web back to its three pods',
      20_000,
    );
    // One connection each: the kernel balances connections, and the canary header means nothing.
    const answers: Record<string, number> = {};
    for (let i = 0; i < 12; i++) {
      const r = await request(`http://${VIPS.web}/`, { count: 1, headers: ['x-canary: yes'] });
      for (const [k, n] of Object.entries(r.answers)) answers[k] = (answers[k] ?? 0) + n;
    }
    assert.equal(total(answers), 12);
    assert.ok(
      v1.some((p) => (answers[p.name] ?? 0) > 0),
      `no route: the pods answer, not only the canary: ${JSON.stringify(answers)}`,
    );
    agent.writeManifest('route.yaml', [ROUTE]);
    await agent.waitForKernel(
      (s) => s.some((k) => k.frontend.ip === VIPS.web && k.backends[0]?.ip === PROXY4),
      'web redirected again',
      20_000,
    );
  });

  it('a NetworkPolicy isolating a backend keeps the routed Service in the kernel (fail closed) until it goes', async () => {
    // The proxy's connections come from the node, which every pod admits: through the proxy the
    // canary's policy would not hold, so the Service is not routed while it is isolated.
    agent.writeManifest('policy.yaml', [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { namespace: NS, name: 'canary-from-client' },
        spec: {
          podSelector: { matchLabels: { version: 'v2' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }],
        },
      },
    ]);
    await agent.waitForKernel(
      (s) => s.some((k) => k.frontend.ip === VIPS.web && k.backends.length === 3),
      'web back in the kernel, to its pods',
      20_000,
    );
    const p = (await status()).proxy;
    assert.ok(
      p?.notes.some(
        (n) => n.includes(`Service ${NS}/web port 80`) && n.includes(v2.ip) && n.includes('isolated by NetworkPolicy'),
      ),
      JSON.stringify(p),
    );
    agent.removeManifest('policy.yaml');
    await agent.waitForKernel(
      (s) => s.some((k) => k.frontend.ip === VIPS.web && k.backends[0]?.ip === PROXY4),
      'web routed again',
      20_000,
    );
  });
});
