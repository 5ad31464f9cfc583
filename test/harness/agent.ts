// Runs the real weftd (bin/weftd) for a world, with a manifests directory the test writes to.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { apiSocketPath } from '../../src/contract/agent-api.js';
import { apiRequest } from '../../src/lib/unix-http.js';
import { readKernelServices, type KernelService } from '../../src/datapath/lb-reader.js';
import type { World } from './world.js';

export const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
export const WEFTD = path.join(REPO, 'bin/weftd');
export const WEFT = path.join(REPO, 'bin/weft');

export interface AgentOptions {
  /** Where weftd runs: the host namespace, or the world's node namespace (where pods' host
   *  veths are, as on a real node). */
  where?: 'host' | 'node';
  /** For a second agent in one world: its own state and manifests directories and a pin root
   *  nested in the world's (so the world still removes it). */
  name?: string;
  extraArgs?: string[];
  /** Watch a Kubernetes API server (`--source kubernetes --kubeconfig FILE`) instead of a
   *  manifests directory. */
  kubeconfig?: string;
  /** Run weft-proxy for routed Services (`--proxy managed`, in the node namespace only: it puts
   *  the proxy addresses on an interface of the agent's namespace). Off by default. */
  proxy?: boolean;
}

export class AgentProcess {
  log = '';
  private child: ChildProcess | undefined;
  readonly manifestsDir: string;
  readonly stateDir: string;
  readonly bpfRoot: string;

  constructor(
    readonly world: World,
    private readonly opts: AgentOptions = {},
  ) {
    if (opts.proxy && opts.where !== 'node')
      throw new Error("an agent with its proxy runs in the world's node namespace");
    const suffix = opts.name ? `-${opts.name}` : '';
    this.manifestsDir = path.join(world.stateDir, `manifests${suffix}`);
    this.stateDir = path.join(world.stateDir, `agent${suffix}`);
    this.bpfRoot = opts.name ? path.join(world.bpfRoot, opts.name) : world.bpfRoot;
    fs.mkdirSync(this.manifestsDir, { recursive: true });
  }

  get<T>(urlPath: string): Promise<T> {
    return apiRequest<T>(this.socket, 'GET', urlPath);
  }

  /** GET on the agent's Prometheus endpoint (the address it bound, from its ready line). */
  async metrics(): Promise<string> {
    const addr = /msg="weftd ready".* metrics=(\S+)/.exec(this.log)?.[1];
    if (!addr) throw new Error('the agent has not said where it serves metrics');
    const res = await fetch(`http://${addr}/metrics`);
    if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
    return res.text();
  }

  get socket(): string {
    return apiSocketPath(this.stateDir);
  }

  get args(): string[] {
    const source = this.opts.kubeconfig
      ? ['--source', 'kubernetes', '--kubeconfig', this.opts.kubeconfig]
      : ['--source', `dir:${this.manifestsDir}`];
    return [
      ...source,
      '--bpf-root',
      this.bpfRoot,
      '--cgroup',
      this.world.cgroupDir,
      '--state-dir',
      this.stateDir,
      '--metrics-address',
      '127.0.0.1:0',
      '--node-name',
      'test-node',
      ...(this.opts.proxy ? ['--proxy', 'managed', '--proxy-metrics-address', '127.0.0.1:0'] : ['--proxy', 'off']),
      ...(this.opts.extraArgs ?? []),
    ];
  }

  /** Starts weftd and resolves once it logs `until` (default: that it is ready). */
  async start(timeoutMs = 20_000, until = /msg="weftd ready"/): Promise<void> {
    const child = this.world.spawn(this.opts.where ?? 'host', [WEFTD, ...this.args]);
    this.child = child;
    const from = this.log.length;
    child.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    child.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    await this.waitForLog(until, timeoutMs, from);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Waits until a log line written after `from` matches. */
  async waitForLog(re: RegExp, timeoutMs = 10_000, from = 0): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = this.log.slice(from).match(re);
      if (m) return m[0];
      if (this.child && this.child.exitCode !== null)
        throw new Error(`weftd exited (${this.child.exitCode}):\n${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`weftd did not log ${re} within ${timeoutMs} ms:\n${this.log}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  /** Writes a manifest file atomically (as editors and config-management tools do). */
  writeManifest(file: string, objects: readonly object[] | string): void {
    const text = typeof objects === 'string' ? objects : objects.map((o) => JSON.stringify(o)).join('\n---\n');
    const tmp = path.join(this.manifestsDir, `.${file}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, path.join(this.manifestsDir, file));
  }

  removeManifest(file: string): void {
    fs.rmSync(path.join(this.manifestsDir, file), { force: true });
  }

  kernelServices(): KernelService[] {
    return readKernelServices(this.bpfRoot);
  }

  /** Polls the kernel maps until `pred` holds (bounded). */
  async waitForKernel(
    pred: (s: KernelService[]) => boolean,
    what: string,
    timeoutMs = 10_000,
  ): Promise<KernelService[]> {
    const deadline = Date.now() + timeoutMs;
    let last: KernelService[] = [];
    while (Date.now() < deadline) {
      last = this.kernelServices();
      if (pred(last)) return last;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`kernel maps never showed ${what}; last: ${JSON.stringify(last)}\nagent log:\n${this.log}`);
  }
}
