// Local-mode manifests for weftd (`--source dir:PATH`): v1 Service and discovery.k8s.io/v1
// EndpointSlice objects, written as multi-document YAML, one file per 1000 services.
// Pure text generation apart from writeManifests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeService } from './kube-proxy-rules.js';

export interface ManifestService extends KubeService {
  /** The container port the service's port maps to (spec.ports[].targetPort). */
  targetPort: number;
}

const PROTO: Record<string, string> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' };

/** One Service and one EndpointSlice (all endpoints ready), as YAML documents. */
export function serviceYaml(s: ManifestService): string {
  const proto = PROTO[s.proto] ?? 'TCP';
  const portName = s.portName || 'port';
  const eps = s.endpoints.map((e) => `- addresses: ["${e.ip}"]\n  conditions: {ready: true}\n`).join('');
  const epPort = s.endpoints[0]?.port ?? s.targetPort;
  return (
    `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${s.name}\n  namespace: ${s.namespace}\n` +
    `spec:\n  type: ClusterIP\n  clusterIP: ${s.clusterIP}\n  clusterIPs: ["${s.clusterIP}"]\n` +
    `  ipFamilies: [IPv4]\n  ports:\n  - name: ${portName}\n    port: ${s.port}\n` +
    `    protocol: ${proto}\n    targetPort: ${s.targetPort}\n` +
    `---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n` +
    `  name: ${s.name}-slice\n  namespace: ${s.namespace}\n` +
    `  labels:\n    kubernetes.io/service-name: ${s.name}\n` +
    `addressType: IPv4\nports:\n- name: ${portName}\n  port: ${epPort}\n  protocol: ${proto}\n` +
    `endpoints:\n${eps || '[]\n'}`
  );
}

/** Files (name → multi-document YAML), perFile services each. */
export function manifestFiles(services: ManifestService[], perFile = 1000): Map<string, string> {
  const files = new Map<string, string>();
  for (let i = 0; i < services.length; i += perFile) {
    const chunk = services.slice(i, i + perFile);
    const name = `services-${String(i / perFile).padStart(4, '0')}.yaml`;
    files.set(name, chunk.map(serviceYaml).join('---\n'));
  }
  return files;
}

/** Writes the manifests into dir (created if needed). */
export function writeManifests(dir: string, services: ManifestService[], perFile = 1000): number {
  mkdirSync(dir, { recursive: true });
  const files = manifestFiles(services, perFile);
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return files.size;
}
