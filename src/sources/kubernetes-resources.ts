// What the Kubernetes source watches. One table, read by the source (which informers to run),
// by the deploy/ test (the ClusterRole must grant list and watch on exactly these) and by the
// test API server (which resources it serves).

export interface WatchedResource {
  kind: string;
  /** API group; '' is the core group. */
  group: string;
  version: string;
  /** The resource's URL name. */
  plural: string;
  namespaced: boolean;
  /** Set for resources served only when their CRD is installed: the CRD's metadata.name. */
  crd?: string;
  /** Without it the agent cannot program the datapath: it is not ready until it has listed these. */
  required: boolean;
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export const WATCHED_RESOURCES: readonly WatchedResource[] = [
  { kind: 'Service', group: '', version: 'v1', plural: 'services', namespaced: true, required: true },
  {
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    namespaced: true,
    required: true,
  },
  { kind: 'Pod', group: '', version: 'v1', plural: 'pods', namespaced: true, required: true },
  { kind: 'Namespace', group: '', version: 'v1', plural: 'namespaces', namespaced: false, required: true },
  { kind: 'Node', group: '', version: 'v1', plural: 'nodes', namespaced: false, required: true },
  {
    kind: 'NetworkPolicy',
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'networkpolicies',
    namespaced: true,
    required: true,
  },
  {
    kind: 'HTTPRoute',
    group: GATEWAY_GROUP,
    version: 'v1',
    plural: 'httproutes',
    namespaced: true,
    crd: `httproutes.${GATEWAY_GROUP}`,
    required: false,
  },
  {
    kind: 'GRPCRoute',
    group: GATEWAY_GROUP,
    version: 'v1',
    plural: 'grpcroutes',
    namespaced: true,
    crd: `grpcroutes.${GATEWAY_GROUP}`,
    required: false,
  },
  // v1beta1: the version every standard-channel release serves.
  {
    kind: 'ReferenceGrant',
    group: GATEWAY_GROUP,
    version: 'v1beta1',
    plural: 'referencegrants',
    namespaced: true,
    crd: `referencegrants.${GATEWAY_GROUP}`,
    required: false,
  },
];

/** CRDs are watched (by name) only to learn when an optional resource appears or goes. */
export const CRD_RESOURCE: WatchedResource = {
  kind: 'CustomResourceDefinition',
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  namespaced: false,
  required: false,
};

export const apiVersionOf = (r: WatchedResource) => (r.group ? `${r.group}/${r.version}` : r.version);

/** The cluster-wide collection URL: /api/v1/services, /apis/discovery.k8s.io/v1/endpointslices. */
export const collectionPath = (r: WatchedResource) =>
  `${r.group ? `/apis/${r.group}` : '/api'}/${r.version}/${r.plural}`;
