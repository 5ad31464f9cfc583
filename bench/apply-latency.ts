// How long a manifest change takes to reach the kernel: from the atomic rename of an edited
// file to the moment lb_backends holds the new backend, polled straight from the pinned maps
// (two lookups a poll, so polling does not load the agent). Two kinds of edit, with the big
// sync's services present: a small file of its own, and one Service inside a file of 1,000.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode } from '../src/datapath/codec.js';
import { lbBackendKey, lbBackendValue, lbServiceKey, lbServiceValue } from '../src/datapath/lb-codecs.js';
import { RawMap } from '../src/datapath/libbpf.js';
import { pinLayout } from '../src/datapath/pins.js';
import { manifestFiles, serviceYaml, type ManifestService } from './manifests.js';

export interface ApplyLatency {
  edit: string;
  changes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const POLL_TIMEOUT_MS = 5000;

/** The IP in slot 1 of the frontend's backends, read from the kernel. */
export function firstBackend(services: RawMap, backends: RawMap, s: ManifestService): string | undefined {
  const v = services.lookup(encode(lbServiceKey, { ip: s.clusterIP, port: s.port, proto: 'TCP', family: 4 }));
  if (!v) return undefined;
  const { serviceId, backendCount } = lbServiceValue.decode(v);
  if (backendCount === 0) return undefined;
  const b = backends.lookup(encode(lbBackendKey, { serviceId, slot: 1 }));
  return b ? lbBackendValue.decode(b).ip : undefined;
}

/** Times `changes` edits: `apply(k)` makes edit k and returns the check that it is in the
 *  kernel, polled every millisecond. */
export async function timeChanges(
  edit: string,
  changes: number,
  apply: (k: number) => () => boolean,
): Promise<ApplyLatency> {
  const times: number[] = [];
  for (let k = 1; k <= changes; k++) {
    const t0 = performance.now();
    const landed = apply(k);
    while (!landed()) {
      if (performance.now() - t0 > POLL_TIMEOUT_MS)
        throw new Error(`${edit}: change ${k} not in the kernel after ${POLL_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 50)); // let the agent settle between edits
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { edit, changes, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: times[times.length - 1]! };
}

/** The pinned load-balancer maps, opened for polling. */
export function openLbMaps(bpfRoot: string): { services: RawMap; backends: RawMap; close(): void } {
  const pins = pinLayout(bpfRoot);
  const services = RawMap.openPinned(join(pins.maps, 'lb_services'));
  const backends = RawMap.openPinned(join(pins.maps, 'lb_backends'));
  return { services, backends, close: () => (services.close(), backends.close()) };
}

const writeAtomically = (dir: string, name: string, text: string) => {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
};

/** `services` are the ones already in `manifestsDir` (as manifestFiles lays them out). */
export async function measureApplyLatency(opts: {
  manifestsDir: string;
  bpfRoot: string;
  services: ManifestService[];
  changes: number;
}): Promise<ApplyLatency[]> {
  const maps = openLbMaps(opts.bpfRoot);
  // Backends from 10.171.0.1 on: map entries only, never contacted.
  const endpoint = (k: number) => [{ ip: `10.171.${k >> 8}.${k & 255}`, port: 8080 }];
  const landed = (s: ManifestService) => () => firstBackend(maps.services, maps.backends, s) === s.endpoints[0]!.ip;
  try {
    const probe: ManifestService = {
      namespace: 'apply',
      name: 'apply-probe',
      portName: 'http',
      clusterIP: '10.99.0.1',
      port: 80,
      proto: 'tcp',
      targetPort: 8080,
      endpoints: [],
    };
    const small = await timeChanges('a one-Service file', opts.changes, (k) => {
      const s = { ...probe, endpoints: endpoint(k) };
      writeAtomically(opts.manifestsDir, 'apply-probe.yaml', serviceYaml(s));
      return landed(s);
    });
    const all = [...opts.services];
    const [firstFile] = manifestFiles(all).keys();
    const big = await timeChanges('one Service in a file of 1,000', opts.changes, (k) => {
      all[0] = { ...all[0]!, endpoints: endpoint(1000 + k) };
      writeAtomically(opts.manifestsDir, firstFile!, manifestFiles(all.slice(0, 1000)).values().next().value!);
      return landed(all[0]);
    });
    return [small, big];
  } finally {
    maps.close();
  }
}
