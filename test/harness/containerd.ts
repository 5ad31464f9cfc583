// A real container runtime for tests: Debian's containerd, run by hand in a world's node
// namespace with its own root, state and socket (CRI off), and `ctr run --cni` as the CNI
// client. ctr reads CNI configuration from /etc/cni/net.d (first file in name order) and
// plugins from /opt/cni/bin, which are host-wide: what this harness puts there (and any
// directory it had to create) is recorded with the world, which removes it.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cgroup2Root } from '../../src/datapath/pins.js';
import type { RunResult, World } from './world.js';

const CNI_CONF_DIR = '/etc/cni/net.d';
const CNI_BIN_DIR = '/opt/cni/bin';
const BUSYBOX_APPLETS = ['sh', 'ip', 'ping', 'nc', 'sleep', 'cat', 'echo', 'wget', 'hostname', 'true'];

export class Containerd {
  readonly socket: string;
  readonly rootfs: string;
  /** The containerd namespace of this world's containers; ctr calls CNI with container ids
   *  "<namespace>-<id>". */
  readonly namespace: string;
  private proc: ChildProcess | undefined;

  private constructor(
    readonly world: World,
    readonly dir: string,
  ) {
    this.socket = path.join(dir, 'containerd.sock');
    this.rootfs = path.join(dir, 'rootfs');
    this.namespace = `weft-${world.id}`;
  }

  static async start(world: World): Promise<Containerd> {
    const c = new Containerd(world, path.join(world.stateDir, 'containerd'));
    // containerd makes /run/containerd (shim sockets, fifos) even when its state lives
    // elsewhere; only this world's containerd writes there.
    if (!fs.existsSync('/run/containerd')) world.adoptPath('/run/containerd', { recursive: true });
    try {
      c.makeRootfs();
      const config = path.join(c.dir, 'config.toml');
      fs.writeFileSync(
        config,
        [
          'version = 2',
          `root = "${c.dir}/root"`,
          `state = "${c.dir}/state"`,
          'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
          '[grpc]',
          `  address = "${c.socket}"`,
          '',
        ].join('\n'),
      );
      let log = '';
      c.proc = world.spawn('node', ['containerd', '--config', config]);
      c.proc.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
      const deadline = Date.now() + 15_000;
      while (!fs.existsSync(c.socket)) {
        if (Date.now() > deadline || c.proc.exitCode !== null) throw new Error(`containerd did not start:\n${log}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** A busybox root filesystem shared by every container (ctr run --rootfs uses it in place). */
  private makeRootfs(): void {
    for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'tmp'])
      fs.mkdirSync(path.join(this.rootfs, d), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(this.rootfs, 'bin/busybox'));
    fs.chmodSync(path.join(this.rootfs, 'bin/busybox'), 0o755);
    for (const a of BUSYBOX_APPLETS) fs.symlinkSync('busybox', path.join(this.rootfs, 'bin', a));
  }

  /** Installs a CNI network: the conflist (named to sort first) and plugin binaries. */
  installCni(conflist: object, plugins: Record<string, string>): void {
    for (const dir of [CNI_CONF_DIR, CNI_BIN_DIR]) this.mkdirRecorded(dir);
    const conf = path.join(CNI_CONF_DIR, `00-weft-test-${this.world.id}.conflist`);
    fs.writeFileSync(conf, JSON.stringify(conflist));
    this.world.adoptPath(conf);
    for (const [name, from] of Object.entries(plugins)) {
      const to = path.join(CNI_BIN_DIR, name);
      if (fs.existsSync(to))
        throw new Error(`${to} exists already: not overwriting a CNI plugin this test did not install`);
      fs.copyFileSync(from, to);
      fs.chmodSync(to, 0o755);
      this.world.adoptPath(to);
    }
  }

  private mkdirRecorded(dir: string): void {
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(d);
      this.world.adoptPath(d);
    }
  }

  private ctrArgs(id: string, script: string, extra: string[] = []): string[] {
    // Containers go in a child of the world's cgroup, so the world's socket programs see them.
    const cgroup = path.join('/', path.relative(cgroup2Root(), this.world.cgroupDir), id);
    // runc keeps container state under /run/containerd/runc unless told otherwise: a world of
    // its own, so that no run ever sees another's (or a killed run's) containers.
    return [
      'ctr',
      '-a',
      this.socket,
      '-n',
      this.namespace,
      'run',
      '--rm',
      '--cni',
      '--cgroup',
      cgroup,
      '--runc-root',
      path.join(this.dir, 'runc'),
      ...extra,
      '--rootfs',
      this.rootfs,
      id,
      '/bin/sh',
      '-c',
      script,
    ];
  }

  /** Runs a container to completion (bounded by timeoutMs). */
  run(id: string, script: string, timeoutMs = 30_000): Promise<RunResult> {
    return this.world.run('node', this.ctrArgs(id, script), { timeoutMs });
  }

  /** Starts a long-running container; it is killed by stop() if still running. */
  start(id: string, script: string): ChildProcess {
    return this.world.spawn('node', this.ctrArgs(id, script));
  }

  /** Kills a running container's task; ctr --rm then deletes it and calls CNI DEL. */
  async kill(id: string): Promise<void> {
    await this.world.run(
      'node',
      ['ctr', '-a', this.socket, '-n', this.namespace, 'task', 'kill', '-s', 'SIGKILL', id],
      { timeoutMs: 10_000 },
    );
  }

  async stop(): Promise<void> {
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc!.once('exit', r));
      this.proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
  }
}
