// The Kubernetes resources Weft reads, in their upstream shapes (only the fields Weft uses).
// Every source produces these after validation; nothing downstream knows where they came from.
import type { Protocol } from '../lib/checker.js';
import type { GRPCRouteSpec, HTTPRouteSpec } from './routes/spec.js';

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
  /** RFC 3339. Kept where a compiler reads it: on Gateway API routes (the older route wins
   *  precedence ties). */
  creationTimestamp?: string;
}

export type IpFamilyName = 'IPv4' | 'IPv6';

export interface ServicePort {
  name?: string;
  port: number;
  protocol: Protocol;
  targetPort?: number | string;
}

export interface Service {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: ObjectMeta;
  spec: {
    type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: IpFamilyName[];
    ports: ServicePort[];
    selector?: Record<string, string>;
  };
}

export interface EndpointConditions {
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export interface Endpoint {
  addresses: string[];
  conditions?: EndpointConditions;
  nodeName?: string;
  targetRef?: { kind?: string; namespace?: string; name?: string };
}

export interface EndpointPort {
  name?: string;
  port?: number;
  protocol?: Protocol;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface EndpointSlice {
  apiVersion: 'discovery.k8s.io/v1';
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  ports?: EndpointPort[];
  endpoints: Endpoint[];
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol: Protocol;
}

/** A Pod: its labels make its identity, its container ports resolve named ports. */
export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMeta;
  spec: {
    nodeName?: string;
    hostNetwork?: boolean;
    containers: { name: string; ports?: ContainerPort[] }[];
  };
  status?: {
    phase?: string;
    podIPs?: { ip: string }[];
  };
}

/** Cluster-scoped objects have metadata.namespace ''. */
export interface Namespace {
  apiVersion: 'v1';
  kind: 'Namespace';
  metadata: ObjectMeta;
}

export interface Node {
  apiVersion: 'v1';
  kind: 'Node';
  metadata: ObjectMeta;
  spec: { podCIDRs?: string[] };
}

/** metav1.LabelSelector (checked and matched by src/state/selectors.ts). */
export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

// ---- networking.k8s.io/v1 NetworkPolicy, validated and normalized (src/state/validate-policy.ts) ----

export interface IPBlock {
  cidr: string;
  except: string[];
}

/** One peer: pods (by namespace and pod selectors) or an IP block. */
export type PolicyPeer =
  | { kind: 'pods'; podSelector?: LabelSelector; namespaceSelector?: LabelSelector }
  | { kind: 'ipBlock'; ipBlock: IPBlock };

export interface PolicyPort {
  protocol: Protocol;
  /** A number, a named container port, or undefined for every port. */
  port?: number | string;
  endPort?: number;
}

export interface PolicyRule {
  /** undefined: every peer. [] cannot be told apart from undefined in the API: every peer too. */
  peers?: PolicyPeer[];
  /** undefined: every port. */
  ports?: PolicyPort[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes: PolicyType[];
  ingress: PolicyRule[];
  egress: PolicyRule[];
}

export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: ObjectMeta;
  spec: NetworkPolicySpec;
}

/** Gateway API routes: validated and normalized (src/state/routes/validate.ts), defaults
 *  filled in; the route table (src/state/routes/compile.ts) compiles them as they are. */
export interface HTTPRoute {
  apiVersion: 'gateway.networking.k8s.io/v1';
  kind: 'HTTPRoute';
  metadata: ObjectMeta;
  spec: HTTPRouteSpec;
}

export interface GRPCRoute {
  apiVersion: 'gateway.networking.k8s.io/v1';
  kind: 'GRPCRoute';
  metadata: ObjectMeta;
  spec: GRPCRouteSpec;
}

/** A Gateway API ReferenceGrant: objects of the `from` kinds in the `from` namespaces may
 *  refer to the `to` objects of this grant's namespace (all of a kind, or one by name). */
export interface ReferenceGrant {
  apiVersion: 'gateway.networking.k8s.io/v1beta1' | 'gateway.networking.k8s.io/v1';
  kind: 'ReferenceGrant';
  metadata: ObjectMeta;
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

export type Resource =
  Service | EndpointSlice | Pod | Namespace | Node | NetworkPolicy | HTTPRoute | GRPCRoute | ReferenceGrant;
export type ResourceKind = Resource['kind'];

/** kind/namespace/name: the identity of a resource across versions. */
export function resourceKey(r: { kind: string; metadata: { namespace?: string; name: string } }): string {
  return `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`;
}
