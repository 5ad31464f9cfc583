// Workloads in a world's pods: backends that answer their name, and probes that call them.
import path from 'node:path';
import type { World, Pod } from './world.js';
import { REPO } from './agent.js';

const FIXTURES = path.join(REPO, 'build/js/test/fixtures');

export interface ProbeResult {
  answers: Record<string, number>;
  peers: Record<string, number>;
  errors: Record<string, number>;
  maxMs: number;
}

/** Starts the backend fixture in a pod and waits until it listens. */
export async function startBackend(
  world: World,
  pod: Pod,
  ports: { tcp?: number[]; udp?: number[]; http?: number[] },
): Promise<void> {
  const args = ['--name', pod.name];
  for (const p of ports.tcp ?? []) args.push('--tcp', String(p));
  for (const p of ports.udp ?? []) args.push('--udp', String(p));
  for (const p of ports.http ?? []) args.push('--http', String(p));
  const child = world.spawn(pod, [process.execPath, path.join(FIXTURES, 'backend.js'), ...args]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`backend in ${pod.name} did not start: ${out}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`backend in ${pod.name} exited ${code}: ${out}`)));
  });
}

export type ProbeProto = 'tcp' | 'udp' | 'udp-connected';

/** Runs the probe fixture from a pod, inside the world's cgroup so the socket programs apply. */
export async function probe(
  world: World,
  from: Pod,
  ip: string,
  port: number,
  proto: ProbeProto = 'tcp',
  count = 30,
): Promise<ProbeResult> {
  const r = await world.run(
    from,
    [
      process.execPath,
      path.join(FIXTURES, 'probe.js'),
      '--ip',
      ip,
      '--port',
      String(port),
      '--proto',
      proto,
      '--count',
      String(count),
    ],
    { inCgroup: true, timeoutMs: 60_000 },
  );
  if (r.code !== 0) throw new Error(`probe failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ProbeResult;
}

/** Starts a probe without waiting, for tests that act while connections are being made. */
export function probeInBackground(
  world: World,
  from: Pod,
  ip: string,
  port: number,
  proto: ProbeProto,
  count: number,
): Promise<ProbeResult> {
  return probe(world, from, ip, port, proto, count);
}
