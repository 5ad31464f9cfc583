// Weft in Kubernetes mode at scale: weftd watches the test API server (test/harness/
// kube-api-server.ts, the list/watch protocol over real HTTP) holding N Services with one
// EndpointSlice each. Measures the first list + sync, the agent's memory, and the time from
// an EndpointSlice update at the API server to the kernel map holding the new endpoint
// (polled straight from the pinned maps).
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { encode } from '../src/datapath/codec.js';
import { lbBackendKey, lbBackendValue, lbServiceKey, lbServiceValue } from '../src/datapath/lb-codecs.js';
import type { RawMap } from '../src/datapath/libbpf.js';
import { AgentProcess } from '../test/harness/agent.js';
import { TestApiServer } from '../test/harness/kube-api-server.js';
import type { World } from '../test/harness/world.js';
import { openLbMaps, timeChanges, type ApplyLatency } from './apply-latency.js';
import type { ManifestService } from './manifests.js';

export interface KubernetesResult {
  services: number;
  endpoints: number;
  /** weftd start → "weftd ready" (list of every resource, then the datapath sync). */
  readySeconds: number;
  /** VmRSS after the first sync, and after the changes (MB). */
  rssMb: number;
  rssAfterChangesMb: number;
  /** VmHWM: the peak resident set (MB). */
  peakRssMb: number;
  latency: ApplyLatency;
}

const NODE = 'test-node';

function serviceObject(s: ManifestService): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace },
    spec: {
      type: 'ClusterIP',
      clusterIP: s.clusterIP,
      clusterIPs: [s.clusterIP],
      ipFamilies: ['IPv4'],
      ports: [{ name: s.portName, port: s.port, protocol: 'TCP', targetPort: s.targetPort }],
    },
  };
}

function sliceObject(s: ManifestService, ips: string[]): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${s.name}-abcde`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.name } },
    addressType: 'IPv4',
    ports: [{ name: s.portName, port: s.targetPort, protocol: 'TCP' }],
    endpoints: ips.map((ip, i) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: `node-${i % 50}`,
      targetRef: { kind: 'Pod', namespace: s.namespace, name: `${s.name}-${i}` },
    })),
  };
}

/** Every backend IP of a frontend, from the kernel. */
function backendIps(maps: { services: RawMap; backends: RawMap }, s: ManifestService): string[] {
  const v = maps.services.lookup(encode(lbServiceKey, { ip: s.clusterIP, port: s.port, proto: 'TCP', family: 4 }));
  if (!v) return [];
  const { serviceId, backendCount } = lbServiceValue.decode(v);
  const out: string[] = [];
  for (let slot = 1; slot <= backendCount; slot++) {
    const b = maps.backends.lookup(encode(lbBackendKey, { serviceId, slot }));
    if (b) out.push(lbBackendValue.decode(b).ip);
  }
  return out;
}

function memoryMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

export async function measureKubernetes(opts: {
  world: World;
  services: ManifestService[];
  changes: number;
  log: (m: string) => void;
}): Promise<KubernetesResult> {
  const { world, services } = opts;
  const server = await TestApiServer.start();
  const kubeconfig = join(world.stateDir, 'bench-kubeconfig');
  let agent: AgentProcess | undefined;
  try {
    server.writeKubeconfig(kubeconfig);
    server.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, spec: { podCIDRs: ['10.244.0.0/24'] } });
    server.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: services[0]?.namespace ?? 'default' } });
    for (const s of services) {
      server.create(serviceObject(s));
      server.create(
        sliceObject(
          s,
          s.endpoints.map((e) => e.ip),
        ),
      );
    }
    opts.log(
      `bench: API server holds ${services.length} Services and EndpointSlices; starting weftd --source kubernetes`,
    );
    agent = new AgentProcess(world, { kubeconfig });
    const t0 = performance.now();
    await agent.start(180_000);
    const readySeconds = (performance.now() - t0) / 1000;
    const pid = agent.pid!;
    const atSync = memoryMb(pid);

    const maps = openLbMaps(agent.bpfRoot);
    let latency: ApplyLatency;
    try {
      // Each change replaces one endpoint of one Service (a pod rescheduled), round robin over
      // the Services; new backends from 10.172.0.1 on: map entries only, never contacted.
      latency = await timeChanges(
        `one endpoint of one EndpointSlice, ${services.length} Services present`,
        opts.changes,
        (k) => {
          const s = services[(k * 7919) % services.length]!;
          const fresh = `10.172.${k >> 8}.${k & 255}`;
          const ips = [fresh, ...s.endpoints.slice(1).map((e) => e.ip)];
          server.update(sliceObject(s, ips));
          return () => backendIps(maps, s).includes(fresh);
        },
      );
    } finally {
      maps.close();
    }
    const after = memoryMb(pid);
    return {
      services: services.length,
      endpoints: services.reduce((n, s) => n + s.endpoints.length, 0),
      readySeconds,
      rssMb: atSync.rss,
      rssAfterChangesMb: after.rss,
      peakRssMb: after.hwm,
      latency,
    };
  } finally {
    await agent?.stop();
    await server.close();
    rmSync(kubeconfig, { force: true });
  }
}
