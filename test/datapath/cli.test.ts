// The command-line contracts of weftd and weft, run as users run them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { AgentProcess, WEFT, WEFTD } from '../harness/agent.js';
import { endpointSlice, service } from '../harness/manifests.js';
import { probe, startBackend } from '../harness/pods.js';
import { World, type Pod } from '../harness/world.js';

const exec = promisify(execFile);

async function runCmd(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(cmd, args, { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let world: World;
let agent: AgentProcess;
let client: Pod;

before(async () => {
  world = World.create();
  client = world.addPod('client');
  const backend = world.addPod('backend');
  await startBackend(world, backend, { tcp: [8080] });
  agent = new AgentProcess(world);
  agent.writeManifest('svc.yaml', [
    service('api', ['10.96.0.30'], [{ name: 'http', port: 80, targetPort: 8080 }], 'shop'),
    endpointSlice('api', 4, [{ ip: backend.ipv4 }], [{ name: 'http', port: 8080 }], { namespace: 'shop' }),
  ]);
  await agent.start();
  await agent.waitForKernel((s) => s.length === 1 && s[0]!.backends.length === 1, 'shop/api');
});

after(async () => {
  await agent?.stop();
  await world?.dispose();
});

describe('weftd command line', () => {
  it('--help documents every flag', async () => {
    const r = await runCmd(WEFTD, ['--help']);
    assert.equal(r.code, 0);
    for (const flag of [
      '--source dir:PATH',
      '--source kubernetes',
      '--bpf-root',
      '--cgroup',
      '--state-dir',
      '--node-name',
      '--pod-cidr',
      '--metrics-address',
    ]) {
      assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
    }
  });

  it('a missing or malformed --source is a usage error naming the flag', async () => {
    for (const args of [[], ['--source', 'file:/x']]) {
      const r = await runCmd(WEFTD, args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--source must be dir:PATH or kubernetes/);
    }
  });

  it('--source kubernetes without a usable kubeconfig fails before loading anything, naming what is missing', async () => {
    const base = [
      '--source',
      'kubernetes',
      '--bpf-root',
      `${world.bpfRoot}-k8s`,
      '--cgroup',
      world.cgroupDir,
      '--state-dir',
      `${world.stateDir}/k8s`,
    ];
    const env = { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' };
    let r = await runCmd(WEFTD, base, env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no kubeconfig: pass --kubeconfig FILE or set KUBECONFIG/);
    r = await runCmd(WEFTD, [...base, '--kubeconfig', '/nonexistent/kubeconfig'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--kubeconfig \/nonexistent\/kubeconfig: .*ENOENT/);
    assert.equal(fs.existsSync(`${world.bpfRoot}-k8s`), false);
  });

  it('a --cgroup that is not a cgroup v2 directory is refused before anything is loaded', async () => {
    const r = await runCmd(WEFTD, [
      '--source',
      `dir:${agent.manifestsDir}`,
      '--cgroup',
      '/tmp',
      '--bpf-root',
      `${world.bpfRoot}-bad`,
      '--state-dir',
      `${world.stateDir}/bad`,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--cgroup \/tmp is not a cgroup v2 directory/);
    assert.equal(fs.existsSync(`${world.bpfRoot}-bad`), false);
  });
});

describe('weft command line', () => {
  const env = () => ({ WEFT_STATE_DIR: agent.stateDir, WEFT_BPF_ROOT: world.bpfRoot });

  it('status reports the agent, the programs and the maps, found through the environment', async () => {
    const r = await runCmd(WEFT, ['status', '-o', 'json'], env());
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      healthy: boolean;
      agent: { synced: boolean; node: string };
      programs: { program: string; error?: string }[];
      maps: { map: string; entries: number }[];
    };
    assert.equal(s.healthy, true);
    assert.equal(s.agent.synced, true);
    assert.equal(s.agent.node, 'test-node');
    assert.equal(s.programs.length, 8);
    assert.ok(s.programs.every((p) => !p.error));
    assert.equal(s.maps.find((m) => m.map === 'lb_services')?.entries, 1);
    assert.equal(s.maps.find((m) => m.map === 'lb_backends')?.entries, 1);
  });

  it('service list shows the kernel maps with the names the agent knows, and flags beat the environment', async () => {
    const r = await runCmd(WEFT, ['--state-dir', agent.stateDir, '--bpf-root', world.bpfRoot, 'service', 'list'], {
      WEFT_BPF_ROOT: '/nonexistent',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /10\.96\.0\.30:80\s+TCP\s+shop\/api:http\s+10\.244\.0\.3:8080/);
  });

  it('status without an agent says it is unreachable and exits 1', async () => {
    const r = await runCmd(WEFT, ['status'], {
      WEFT_STATE_DIR: `${world.stateDir}/nowhere`,
      WEFT_BPF_ROOT: world.bpfRoot,
    });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Agent:\s+not reachable/);
    assert.match(r.stdout, /Programs:\s+8\/8 attached/);
    assert.match(r.stdout, /Pod TC:\s+programs on 0 pod interfaces/);
  });

  it('an unknown command or output format is a usage error', async () => {
    assert.equal((await runCmd(WEFT, ['frobnicate'])).code, 2);
    assert.match((await runCmd(WEFT, ['status', '-o', 'yaml'])).stderr, /-o yaml: want table or json/);
  });

  it('uninstall detaches every program and removes every pin: the ClusterIP is no longer translated', async () => {
    assert.deepEqual((await probe(world, client, '10.96.0.30', 80, 'tcp', 2)).errors, {});
    await agent.stop();
    const r = await runCmd(WEFT, ['uninstall', '-o', 'json'], env());
    assert.equal(r.code, 0, r.stderr);
    const removed = (JSON.parse(r.stdout) as { removed: string[] }).removed
      .map((p) => p.slice(world.bpfRoot.length + 1))
      .sort();
    for (const pin of [
      'links/sock_connect4',
      'links/sock_getpeername6',
      'maps/lb_services',
      'maps/lb_backends',
      'maps/lxc_endpoints',
      'maps/ct',
      'maps/events',
    ]) {
      assert.ok(removed.includes(pin), `${pin} removed: ${removed.join(', ')}`);
    }
    assert.equal(fs.existsSync(world.bpfRoot), false);
    // The pod has no route to the service CIDR: untranslated, the connect fails at once.
    const after = await probe(world, client, '10.96.0.30', 80, 'tcp', 2);
    assert.deepEqual(after.errors, { ENETUNREACH: 2 });
  });
});
