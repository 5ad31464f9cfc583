// Pods on Weft's network, created by a real container runtime: containerd's `ctr run --cni`
// calls build/bin/weft-cni, which sets the pod up with the real weftd.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apiRequest } from '../../src/lib/unix-http.js';
import type { EndpointRecord } from '../../src/contract/agent-api.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AgentProcess, REPO, WEFT } from '../harness/agent.js';
import { Containerd } from '../harness/containerd.js';
import { endpointSlice, service } from '../harness/manifests.js';
import { World } from '../harness/world.js';

const SVC = '10.96.0.50';
const exec = promisify(execFile);
let world: World;
let agent: AgentProcess;
let ctrd: Containerd;
const running = new Map<string, ChildProcess>();

const endpoints = () => apiRequest<EndpointRecord[]>(agent.socket, 'GET', '/v1/endpoints');
const ipOf = (e: EndpointRecord, family: 4 | 6) => e.ips.find((i) => i.family === family)!.address;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nagent log:\n${agent.log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a container answering its name on TCP 8080, and returns its endpoint once ready. */
async function startBackend(id: string): Promise<EndpointRecord> {
  running.set(id, ctrd.start(id, `exec nc -ll -p 8080 -e echo ${id}`));
  return waitFor(`${id}'s endpoint`, async () =>
    (await endpoints()).find((e) => e.containerId === `${ctrd.namespace}-${id}` && e.state === 'ready'),
  );
}

before(async () => {
  world = World.create();
  agent = new AgentProcess(world, { where: 'node', extraArgs: ['--pod-cidr', '10.244.7.0/24,fd00:10:244:7::/64'] });
  await agent.start();
  ctrd = await Containerd.start(world);
  ctrd.installCni(
    // As deploy/cni/10-weft.conflist: containerd 1.6's libcni reads 1.0.0 results, newer
    // runtimes pick 1.1.0 from cniVersions.
    {
      cniVersion: '1.0.0',
      cniVersions: ['1.0.0', '1.1.0'],
      name: 'weft',
      plugins: [{ type: 'weft-cni', agentSocket: agent.socket, mtu: 1500 }],
    },
    { 'weft-cni': path.join(REPO, 'build/bin/weft-cni') },
  );
});

after(async () => {
  for (const id of running.keys()) await ctrd?.kill(id).catch(() => {});
  await ctrd?.stop();
  await agent?.stop();
  await world?.dispose();
});

describe("containerd runs pods on Weft's network", () => {
  let b1: EndpointRecord;
  let b2: EndpointRecord;

  it("containers get their addresses from the node's pod CIDRs and reach each other", async () => {
    b1 = await startBackend('backend-1');
    b2 = await startBackend('backend-2');
    for (const e of [b1, b2]) {
      assert.match(ipOf(e, 4), /^10\.244\.7\.\d+$/);
      assert.match(ipOf(e, 6), /^fd00:10:244:7::/);
    }
    const r = await ctrd.run(
      'client-1',
      `ip -o addr show eth0; ping -c1 -W2 ${ipOf(b1, 4)} >/dev/null && echo ping4-ok; ping -6 -c1 -W2 ${ipOf(b2, 6)} >/dev/null && echo ping6-ok; nc -w 2 ${ipOf(b2, 4)} 8080 </dev/null`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /inet 10\.244\.7\.\d+\/32/);
    assert.match(r.stdout, /ping4-ok/);
    assert.match(r.stdout, /ping6-ok/);
    assert.match(r.stdout, /backend-2/);
  });

  it("a ClusterIP reaches the containers through Weft's socket load balancing", async () => {
    agent.writeManifest('svc.yaml', [
      service('echo', [SVC], [{ name: 'tcp', port: 80, targetPort: 8080 }]),
      endpointSlice('echo', 4, [{ ip: ipOf(b1, 4) }, { ip: ipOf(b2, 4) }], [{ name: 'tcp', port: 8080 }]),
    ]);
    await agent.waitForKernel(
      (s) => s.some((x) => x.frontend.ip === SVC && x.backends.length === 2),
      'the echo service',
    );
    const r = await ctrd.run('client-2', `for i in $(seq 1 24); do nc -w 2 ${SVC} 80 </dev/null; done`);
    assert.equal(r.code, 0, r.stderr);
    const answers = r.stdout.trim().split('\n');
    assert.equal(answers.length, 24, r.stdout);
    // 24 picks between two: all one way has probability 2^-23.
    assert.deepEqual([...new Set(answers)].sort(), ['backend-1', 'backend-2']);
  });

  it('an agent restart keeps the endpoints and their traffic, and hands out no address twice', async () => {
    const before = await endpoints();
    const used = new Set(before.flatMap((e) => e.ips.map((i) => i.address)));
    await agent.stop('SIGKILL');
    await agent.start();
    assert.match(agent.log, /msg="endpoints restored" endpoints=2 attached=2/);
    assert.deepEqual(await endpoints(), before);
    const r = await ctrd.run(
      'client-3',
      `ip -o -4 addr show eth0; nc -w 2 ${ipOf(b1, 4)} 8080 </dev/null; nc -w 2 ${SVC} 80 </dev/null`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /backend-1\n(backend-1|backend-2)/);
    const mine = r.stdout.match(/inet (10\.244\.7\.\d+)\//)?.[1];
    assert.ok(mine && !used.has(mine), `the new pod's ${mine} is not one in use`);
    // The CLI shows the same endpoints.
    const list = await exec(WEFT, ['--state-dir', agent.stateDir, 'endpoint', 'list', '-o', 'json']);
    assert.deepEqual((JSON.parse(list.stdout) as EndpointRecord[]).map((e) => e.containerId).sort(), [
      `${ctrd.namespace}-backend-1`,
      `${ctrd.namespace}-backend-2`,
    ]);
  });

  it('removing containers releases their endpoints and addresses', async () => {
    for (const id of ['backend-1', 'backend-2']) {
      const ctr = running.get(id)!;
      const exited =
        ctr.exitCode !== null || ctr.signalCode !== null ? Promise.resolve() : new Promise((r) => ctr.once('exit', r));
      await ctrd.kill(id);
      await Promise.race([
        exited,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`ctr for ${id} did not exit`)), 15_000)),
      ]);
      running.delete(id);
    }
    const left = await waitFor('endpoints to go', async () => ((await endpoints()).length === 0 ? [] : undefined));
    assert.deepEqual(left, []);
    const status = await apiRequest<{ podCidrs: { used: number }[] }>(agent.socket, 'GET', '/v1/status');
    assert.deepEqual(
      status.podCidrs.map((p) => p.used),
      [0, 0],
    );
  });

  it('weft uninstall takes the programs off running pods', async () => {
    const ep = await startBackend('backend-3');
    const filters = async () =>
      JSON.parse(
        (await world.run('node', ['tc', '-j', 'filter', 'show', 'dev', ep.hostIfName, 'ingress'])).stdout || '[]',
      ) as unknown[];
    assert.ok((await filters()).length > 0, 'the running pod has its ingress program');
    await agent.stop();
    // In the agent's namespace, where the pod interfaces' numbers mean what the maps say.
    const r = await world.run('node', [
      WEFT,
      '--bpf-root',
      agent.bpfRoot,
      '--state-dir',
      agent.stateDir,
      'uninstall',
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { detachedInterfaces: number[] }).detachedInterfaces, [ep.hostIfIndex]);
    assert.deepEqual(await filters(), []);
  });
});
