// make run / make stop: a small virtual cluster in network namespaces (a node, three backend
// pods serving HTTP, a client pod), weftd fed from examples/demo, and calls to the service.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_BPF_ROOT } from '../../src/datapath/pins.js';
import { DEFAULT_STATE_DIR } from '../../src/agent/config.js';
import { apiRequest } from '../../src/agent/api.js';
import { REPO, WEFTD } from '../harness/agent.js';
import { startBackend } from '../harness/pods.js';
import { World } from '../harness/world.js';

const RUN = path.join(REPO, '.run');
const MANIFESTS = path.join(RUN, 'manifests');
const SOCKET = path.join(DEFAULT_STATE_DIR, 'weft.sock');
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

async function call(world: World | undefined, count: number): Promise<void> {
  for (const [family, ip] of [['IPv4', SERVICE.v4], ['IPv6', `[${SERVICE.v6}]`]] as const) {
    const script = `for (let i = 0; i < ${count}; i++) { const r = await fetch('http://${ip}/'); console.log('GET http://${ip}/ -> ' + (await r.text()).trim()); }`;
    const argv = [process.execPath, '--input-type=module', '-e', script];
    const r = world
      ? await world.run(world.pods.get('client')!, argv, { inCgroup: true, timeoutMs: 20_000 })
      : await runInKeptClient(argv);
    info(`${family}:`);
    for (const line of (r.stdout + r.stderr).trim().split('\n')) info(`  ${line}`);
    if (r.code !== 0) throw new Error(`calling the service over ${family} failed`);
  }
}

/** `make run` is over; calls come from a fresh process put in the demo's cgroup and client pod. */
async function runInKeptClient(argv: string[]) {
  const { spawnSync } = await import('node:child_process');
  const cg = fs.readFileSync('/run/weft-test/demo.json', 'utf8');
  const { cgroup } = JSON.parse(cg) as { cgroup: string };
  const r = spawnSync('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec nsenter --net=/run/netns/wdemo-client "$@"`, 'sh', ...argv], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function start(): Promise<void> {
  if (fs.existsSync('/run/weft-test/demo.json')) {
    info('A demo is already running; `make stop` first to start over. Calling it:');
    await call(undefined, 3);
    return;
  }
  if (await agentRunning()) throw new Error(`a weftd already serves ${SOCKET}; the demo will not take over a real installation`);
  if (fs.existsSync(DEFAULT_BPF_ROOT)) throw new Error(`${DEFAULT_BPF_ROOT} already holds pins (run \`weft uninstall\` if they are stale)`);

  step('Creating the virtual cluster: namespaces for a node and four pods');
  const world = World.create({ name: 'demo', keep: true, bpfRoot: DEFAULT_BPF_ROOT });
  try {
    const pods = ['backend-1', 'backend-2', 'backend-3', 'client'].map((n) => world.addPod(n));
    for (const p of pods) info(`pod ${p.name.padEnd(10)} netns ${p.netns.padEnd(15)} ${p.ipv4.padEnd(11)} ${p.ipv6}`);
    info(`node namespace ${world.nodeNetns}; socket programs attach to cgroup ${world.cgroupDir}`);

    step('Starting the backends: an HTTP server in each backend pod that answers its pod name');
    await Promise.all(pods.slice(0, 3).map((p) => startBackend(world, p, { http: [8080] })));
    for (const p of pods.slice(0, 3)) info(`${p.name} listens on :8080`);

    step('Starting weftd with the example manifests (examples/demo -> .run/manifests)');
    fs.rmSync(MANIFESTS, { recursive: true, force: true });
    fs.mkdirSync(MANIFESTS, { recursive: true });
    fs.cpSync(path.join(REPO, 'examples/demo'), MANIFESTS, { recursive: true });
    const logFd = fs.openSync(path.join(RUN, 'weftd.log'), 'w');
    const agent = world.spawn('host', [WEFTD, '--source', `dir:${MANIFESTS}`, '--cgroup', world.cgroupDir, '--node-name', 'demo-node'], {
      stdio: ['ignore', logFd, logFd],
      detached: true,
    });
    agent.unref();
    world.adopt(agent.pid!);
    const deadline = Date.now() + 20_000;
    while (!(await agentRunning())) {
      if (Date.now() > deadline || agent.exitCode !== null) throw new Error(`weftd did not start; see .run/weftd.log:\n${fs.readFileSync(path.join(RUN, 'weftd.log'), 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    info(`weftd pid ${agent.pid}, log .run/weftd.log, API ${SOCKET}`);

    step(`Calling the service web.demo (${SERVICE.v4} and ${SERVICE.v6}, port 80) from the client pod`);
    await call(world, 4);
    world.release();
  } catch (err) {
    World.removeKept('demo');
    throw err;
  }

  process.stdout.write(`
The demo cluster is running.
  Watch it:        npx weft service list      (the kernel's maps)
                   npx weft status
  Call it again:   make run
  Change it:       edit .run/manifests/web.yaml (drop an endpoint, add a service) and run
                   npx weft service list; weftd applies changes as the file is saved
  Agent log:       .run/weftd.log
  Stop and clean:  make stop
(With the project's Node first on PATH: export PATH="$PWD/.tools/node/bin:$PATH")
`);
}

async function stop(): Promise<void> {
  const removed = World.removeKept('demo');
  // The agent leaves its pins on purpose; the demo is over, so remove them too.
  const { removeAllPins } = await import('../../src/datapath/programs.js');
  if (fs.existsSync(DEFAULT_BPF_ROOT)) removeAllPins(DEFAULT_BPF_ROOT);
  fs.rmSync(MANIFESTS, { recursive: true, force: true });
  process.stdout.write(removed ? `Demo stopped: agent, pods, namespaces, cgroup and pins removed.\n` : 'No demo was running.\n');
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
