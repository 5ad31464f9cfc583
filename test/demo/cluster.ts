// make run / make stop: a small virtual cluster in network namespaces (a node, seven pods made
// by the CNI plugin: three web backends, a frontend client, a batch pod and two versions of a
// shop), weftd fed from examples/demo, calls to the service, the network policy that refuses
// the batch pod, a routed service split 90/10 by weft-proxy, and the flows the agent's observer
// saw of all that (weft observe).
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_BPF_ROOT } from '../../src/datapath/pins.js';
import { DEFAULT_STATE_DIR, apiSocketPath } from '../../src/contract/agent-api.js';
import { apiRequest } from '../../src/lib/unix-http.js';
import { readKernelServices } from '../../src/datapath/lb-reader.js';
import { REPO, WEFT, WEFTD } from '../harness/agent.js';
import { cni } from '../harness/cni.js';
import { startBackend } from '../harness/pods.js';
import { World, type Pod } from '../harness/world.js';

const RUN = path.join(REPO, '.run');
const MANIFESTS = path.join(RUN, 'manifests');
const SOCKET = apiSocketPath(DEFAULT_STATE_DIR);
const SERVICE = { v4: '10.96.0.10', v6: 'fd00:10:96::10' };

const step = (s: string) => process.stdout.write(`\n==> ${s}\n`);
const info = (s: string) => process.stdout.write(`    ${s}\n`);

async function agentRunning(): Promise<boolean> {
  try {
    await apiRequest(SOCKET, 'GET', '/healthz', undefined, 1000);
    return true;
  } catch {
    return false;
  }
}

const NAMESPACE = 'demo';
const POD_CIDRS = ['10.244.0.0/24', 'fd00:10:244::/64'];
/** The demo's pods and their labels: the backends serve web.demo; the policy lets only the
 *  frontend in. */
const PODS: { name: string; labels: Record<string, string> }[] = [
  { name: 'backend-1', labels: { app: 'web' } },
  { name: 'backend-2', labels: { app: 'web' } },
  { name: 'backend-3', labels: { app: 'web' } },
  { name: 'client', labels: { role: 'frontend' } },
  { name: 'batch', labels: { role: 'batch' } },
  { name: 'shop-v1', labels: { app: 'shop', version: 'v1' } },
  { name: 'shop-v2', labels: { app: 'shop', version: 'v2' } },
];
const SHOP = '10.96.0.20';
const HTTP_PORT = 8080;

interface DemoPod extends Pod {
  labels: Record<string, string>;
}

/** GETs the service `count` times per family from a pod; a refused or dropped call prints
 *  what happened instead of an answer. Resolves false when any call failed. The script exits
 *  when its calls are done: fetch's abort leaves a connect that the policy drops pending until
 *  undici's own 10 s connect timeout, and its SYN retransmissions would go on filling the flows. */
async function call(
  world: World | undefined,
  from: string,
  count: number,
  opts: { expectDenied?: boolean } = {},
): Promise<boolean> {
  let ok = true;
  for (const [family, ip] of [
    ['IPv4', SERVICE.v4],
    ['IPv6', `[${SERVICE.v6}]`],
  ] as const) {
    const script = `for (let i = 0; i < ${count}; i++) { try { const r = await fetch('http://${ip}/', { signal: AbortSignal.timeout(1500) }); console.log('GET http://${ip}/ -> ' + (await r.text()).trim()); } catch (e) { console.log('GET http://${ip}/ -> ' + (e.name === 'TimeoutError' ? 'no answer within 1.5 s' : e.cause?.code ?? e.message)); process.exitCode = 1; } } process.exit();`;
    const argv = [process.execPath, '--input-type=module', '-e', script];
    const r = world
      ? await world.run({ name: from, netns: `wdemo-${from}`, ipv4: '', ipv6: '', hostVeth: '' }, argv, {
          inCgroup: true,
          timeoutMs: 30_000,
        })
      : await runInKeptPod(from, argv);
    info(`${family}:`);
    for (const line of (r.stdout + r.stderr).trim().split('\n')) info(`  ${line}`);
    if (r.code !== 0) ok = false;
    if (r.code !== 0 && !opts.expectDenied) throw new Error(`calling the service over ${family} from ${from} failed`);
  }
  return ok;
}

/** `make run` is over; calls come from a fresh process put in the demo's cgroup and pod. */
async function runInKeptPod(pod: string, argv: string[]) {
  const { spawnSync } = await import('node:child_process');
  const cg = fs.readFileSync('/run/weft-test/demo.json', 'utf8');
  const { cgroup } = JSON.parse(cg) as { cgroup: string };
  const r = spawnSync(
    'sh',
    ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec nsenter --net=/run/netns/wdemo-${pod} "$@"`, 'sh', ...argv],
    { encoding: 'utf8', timeout: 30_000 },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** ADD through the real CNI plugin, as a container runtime would call it. */
async function addPod(world: World, name: string, labels: Record<string, string>): Promise<DemoPod> {
  const netns = world.addNetns(name);
  const r = await cni(world, {
    command: 'ADD',
    containerId: `demo-${name}`,
    netns,
    ifName: 'eth0',
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${NAMESPACE};K8S_POD_NAME=${name}`,
    config: { cniVersion: '1.1.0', name: 'weft', type: 'weft-cni', agentSocket: SOCKET, mtu: 1500 },
  });
  if (r.code !== 0) throw new Error(`CNI ADD for ${name} failed: ${r.stdout}${r.stderr}`);
  const ips = ((r.json?.ips ?? []) as { address: string }[]).map((i) => i.address.replace(/\/\d+$/, ''));
  return {
    name,
    netns: path.basename(netns),
    ipv4: ips.find((i) => !i.includes(':')) ?? '',
    ipv6: ips.find((i) => i.includes(':')) ?? '',
    hostVeth: '',
    labels,
  };
}

const podManifest = (p: { name: string; labels: Record<string, string> }) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace: NAMESPACE, name: p.name, labels: p.labels },
  spec: {
    containers: [
      { name: 'app', ...(p.labels.app === 'web' && { ports: [{ name: 'http', containerPort: HTTP_PORT }] }) },
    ],
  },
});

const slices = (backends: DemoPod[]) =>
  (['ipv4', 'ipv6'] as const).map((f) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: NAMESPACE,
      name: `web-${f === 'ipv4' ? 'v4' : 'v6'}`,
      labels: { 'kubernetes.io/service-name': 'web' },
    },
    addressType: f === 'ipv4' ? 'IPv4' : 'IPv6',
    ports: [{ name: 'http', port: HTTP_PORT, protocol: 'TCP' }],
    endpoints: backends.map((b) => ({ addresses: [b[f]], conditions: { ready: true } })),
  }));

/** The routed service's EndpointSlices: shop (both versions), shop-v1 and shop-v2. */
const shopSlices = (v1: DemoPod, v2: DemoPod) =>
  (
    [
      ['shop', [v1, v2]],
      ['shop-v1', [v1]],
      ['shop-v2', [v2]],
    ] as const
  ).map(([svc, pods]) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: NAMESPACE, name: `${svc}-v4`, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: HTTP_PORT, protocol: 'TCP' }],
    endpoints: pods.map((b) => ({ addresses: [b.ipv4], conditions: { ready: true } })),
  }));

/** GETs shop.demo `count` times from the client on one kept connection (so the spread is the
 *  proxy's, per request, not the kernel's, per connection) and prints who answered. */
async function callShop(world: World | undefined, count: number, header?: string): Promise<void> {
  const script = `import http from 'node:http'; const agent = new http.Agent({ keepAlive: true, maxSockets: 1 }); const seen = {};
    for (let i = 0; i < ${count}; i++) { const body = await new Promise((ok, fail) => http.get('http://${SHOP}/', { agent, headers: ${JSON.stringify(header ? { 'x-canary': header } : {})} }, (r) => { let b = ''; r.on('data', (d) => b += d).on('end', () => ok(r.statusCode + ' ' + b.trim())); }).on('error', fail)); seen[body] = (seen[body] ?? 0) + 1; }
    for (const [k, n] of Object.entries(seen).sort()) console.log(String(n).padStart(4) + ' x ' + k); process.exit();`;
  const argv = [process.execPath, '--input-type=module', '-e', script];
  const r = world
    ? await world.run({ name: 'client', netns: 'wdemo-client', ipv4: '', ipv6: '', hostVeth: '' }, argv, {
        inCgroup: true,
        timeoutMs: 60_000,
      })
    : await runInKeptPod('client', argv);
  info(
    `$ ${count} x GET http://${SHOP}/ on one connection${header ? ` with x-canary: ${header}` : ''} (status, answering pod):`,
  );
  // Not trim(): the counts are right-aligned.
  for (const line of (r.stdout + r.stderr).trimEnd().split('\n')) if (line.trim()) info(`  ${line}`);
  if (r.code !== 0) throw new Error('calling shop.demo failed');
}

/** Until the kernel sends shop.demo's connections to the node proxy (weftd does so once the
 *  proxy holds the route). */
async function waitForRoute(): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const shop = readKernelServices(DEFAULT_BPF_ROOT).find((s) => s.frontend.ip === SHOP);
    if (shop?.backends.length === 1 && shop.backends[0]!.ip === '169.254.42.1') return;
    if (Date.now() > deadline)
      throw new Error(`shop.demo was never sent to the proxy: ${JSON.stringify(shop)}; see .run/weftd.log`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const yamlDocs = (objs: object[]) => objs.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';

async function explain(from: string): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync(
    WEFT,
    ['explain', '--from', `${NAMESPACE}/${from}`, '--to', `${NAMESPACE}/backend-1`, '--port', String(HTTP_PORT)],
    { encoding: 'utf8' },
  );
  info(`$ weft explain --from ${NAMESPACE}/${from} --to ${NAMESPACE}/backend-1 --port ${HTTP_PORT}`);
  for (const line of out.trimEnd().split('\n')) info(`  ${line}`);
}

/** Prints `weft observe ARGS` as a user would see it: the flows the agent's observer holds. */
async function observe(args: string[]): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync(WEFT, ['observe', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  info(`$ weft observe ${args.join(' ')}`);
  for (const line of out.trimEnd().split('\n')) info(`  ${line}`);
}

async function start(): Promise<void> {
  if (fs.existsSync('/run/weft-test/demo.json')) {
    info('A demo is already running; `make stop` first to start over. Calling it from the client pod:');
    await call(undefined, 'client', 3);
    info('and from the batch pod, which the policy refuses:');
    await call(undefined, 'batch', 1, { expectDenied: true });
    info('and shop.demo, through weft-proxy (90/10):');
    await callShop(undefined, 20);
    info('The flows of these calls: npx weft observe --last 30 (or run npx weft observe -f in another');
    info('terminal first, and make run again)');
    return;
  }
  if (await agentRunning())
    throw new Error(`a weftd already serves ${SOCKET}; the demo will not take over a real installation`);
  if (fs.existsSync(DEFAULT_BPF_ROOT))
    throw new Error(`${DEFAULT_BPF_ROOT} already holds pins (run \`weft uninstall\` if they are stale)`);

  step('Creating the virtual cluster: a node namespace that routes, nothing beyond it');
  const world = World.create({ name: 'demo', keep: true, bpfRoot: DEFAULT_BPF_ROOT });
  try {
    info(`node namespace ${world.nodeNetns}; socket programs attach to cgroup ${world.cgroupDir}`);

    step('Starting weftd in the node namespace with the example manifests (examples/demo -> .run/manifests)');
    fs.rmSync(MANIFESTS, { recursive: true, force: true });
    fs.mkdirSync(MANIFESTS, { recursive: true });
    fs.cpSync(path.join(REPO, 'examples/demo'), MANIFESTS, { recursive: true });
    // Pod objects first, as the API has them before the kubelet calls the CNI plugin.
    fs.writeFileSync(path.join(MANIFESTS, 'pods.yaml'), yamlDocs(PODS.map(podManifest)));
    fs.rmSync(path.join(DEFAULT_STATE_DIR, 'endpoints.json'), { force: true }); // a previous demo's addresses
    const logFd = fs.openSync(path.join(RUN, 'weftd.log'), 'w');
    const agent = world.spawn(
      'node',
      [
        WEFTD,
        '--source',
        `dir:${MANIFESTS}`,
        '--cgroup',
        world.cgroupDir,
        '--node-name',
        'demo-node',
        ...POD_CIDRS.flatMap((c) => ['--pod-cidr', c]),
      ],
      {
        stdio: ['ignore', logFd, logFd],
        detached: true,
      },
    );
    agent.unref();
    world.adopt(agent.pid!);
    const deadline = Date.now() + 20_000;
    while (!(await agentRunning())) {
      if (Date.now() > deadline || agent.exitCode !== null)
        throw new Error(
          `weftd did not start; see .run/weftd.log:\n${fs.readFileSync(path.join(RUN, 'weftd.log'), 'utf8')}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
    info(`weftd pid ${agent.pid}, log .run/weftd.log, API ${SOCKET}`);

    step('Creating seven pods through the CNI plugin (weft-cni ADD, as a container runtime calls it)');
    const pods: DemoPod[] = [];
    for (const p of PODS) pods.push(await addPod(world, p.name, p.labels));
    for (const p of pods)
      info(
        `pod ${NAMESPACE}/${p.name.padEnd(10)} ${p.ipv4.padEnd(11)} ${p.ipv6.padEnd(16)} ${Object.entries(p.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')}`,
      );

    step(`Starting the backends: an HTTP server on :${HTTP_PORT} in each web pod that answers its pod name`);
    const backends = pods.filter((p) => p.labels.app === 'web');
    const shop = pods.filter((p) => p.labels.app === 'shop');
    await Promise.all([...backends, ...shop].map((p) => startBackend(world, p, { http: [HTTP_PORT] })));
    fs.writeFileSync(path.join(MANIFESTS, 'endpoints.yaml'), yamlDocs(slices(backends)));
    fs.writeFileSync(path.join(MANIFESTS, 'shop-endpoints.yaml'), yamlDocs(shopSlices(shop[0]!, shop[1]!)));
    info("their addresses are the service's EndpointSlices: .run/manifests/endpoints.yaml");

    step(`Calling the service web.demo (${SERVICE.v4} and ${SERVICE.v6}, port 80) from the client pod (role=frontend)`);
    await waitForService();
    await call(world, 'client', 4);

    step('Calling it from the batch pod (role=batch): NetworkPolicy demo/web-from-frontend lets only frontends in');
    if (await call(world, 'batch', 1, { expectDenied: true }))
      throw new Error('the batch pod got through: the policy is not enforced');
    await explain('client');
    await explain('batch');

    step("What the datapath saw: weft observe reads the flows the agent's observer keeps");
    // The socket hook's translation (sock), each pod interface's new connection (from-endpoint
    // at the client's veth, to-endpoint at the backend's), the policy verdicts and the drops.
    await observe(['--last', '16']);
    await observe(['--verdict', 'DROPPED']);
    await observe(['--type', 'sock']);

    step(
      `Calling shop.demo (${SHOP}), which has an HTTPRoute: the kernel sends it to weft-proxy, which splits requests 90/10`,
    );
    await waitForRoute();
    await callShop(world, 40);
    await callShop(world, 5, 'always');
    await observe(['--protocol', 'http', '--last', '8']);
    world.release();
  } catch (err) {
    World.removeKept('demo');
    throw err;
  }

  process.stdout.write(`
The demo cluster is running.
  Watch it:        npx weft service list      (the kernel's maps)
                   npx weft status
                   npx weft explain --from demo/batch --to demo/backend-2 --port 8080
  Watch flows:     npx weft observe -f        (live until Ctrl-C; make run in another
                                               terminal calls the service again)
                   npx weft observe --pod demo/batch --verdict DROPPED
                   npx weft observe --to-pod demo/backend-1 -o json
                   npx weft observe --protocol http -f    (shop.demo's requests, through
                                               weft-proxy)
  Metrics:         nsenter --net=/run/netns/${world.nodeNetns} curl -s 127.0.0.1:9962/metrics
                   (weftd runs in the node namespace; weft-proxy's are on 127.0.0.1:9964)
  Call it again:   make run
  Change it:       edit .run/manifests/endpoints.yaml (drop an endpoint) or delete
                   .run/manifests/policy.yaml (the batch pod gets through), or change the
                   weights in .run/manifests/shop.yaml; weftd applies changes as the file
                   is saved
  Agent log:       .run/weftd.log
  Stop and clean:  make stop
(With the project's Node first on PATH: export PATH="$PWD/.tools/node/bin:$PATH")
`);
}

/** Until the service's backends are in the kernel (weftd applies endpoints.yaml as it appears). */
async function waitForService(): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const svcs = readKernelServices(DEFAULT_BPF_ROOT);
    if (svcs.filter((s) => s.backends.length === 3).length === 2) return;
    if (Date.now() > deadline)
      throw new Error(`the service's backends never reached the kernel: ${JSON.stringify(svcs)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(): Promise<void> {
  const removed = World.removeKept('demo');
  // The agent leaves its pins on purpose; the demo is over, so remove them too.
  const { removeAllPins } = await import('../../src/datapath/programs.js');
  if (fs.existsSync(DEFAULT_BPF_ROOT)) removeAllPins(DEFAULT_BPF_ROOT);
  fs.rmSync(MANIFESTS, { recursive: true, force: true });
  fs.rmSync(path.join(DEFAULT_STATE_DIR, 'endpoints.json'), { force: true });
  process.stdout.write(
    removed ? `Demo stopped: agent, pods, namespaces, cgroup and pins removed.\n` : 'No demo was running.\n',
  );
}

const cmd = process.argv[2];
try {
  if (cmd === 'start') await start();
  else if (cmd === 'stop') await stop();
  else throw new Error('usage: cluster.js start|stop');
} catch (err) {
  process.stderr.write(`\nmake run: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
