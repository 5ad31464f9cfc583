// Builders for the Kubernetes objects tests write into the manifests directory.
export interface PortSpec {
  name?: string;
  port: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  targetPort?: number | string;
}

export function service(name: string, clusterIPs: string[], ports: PortSpec[], namespace = 'default'): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: {
      type: 'ClusterIP',
      clusterIP: clusterIPs[0],
      clusterIPs,
      ipFamilies: clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      ports: ports.map((p) => ({ protocol: 'TCP', targetPort: p.port, ...p })),
    },
  };
}

export interface EndpointSpec {
  ip: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export function endpointSlice(
  svcName: string,
  family: 4 | 6,
  endpoints: EndpointSpec[],
  ports: PortSpec[],
  opts: { namespace?: string; suffix?: string } = {},
): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${svcName}-${opts.suffix ?? `v${family}`}`,
      namespace: opts.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': svcName },
    },
    addressType: `IPv${family}`,
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ready: e.ready ?? true,
        ...(e.serving !== undefined && { serving: e.serving }),
        ...(e.terminating !== undefined && { terminating: e.terminating }),
      },
    })),
  };
}
