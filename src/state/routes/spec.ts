// The Gateway API routes as the store holds them: HTTPRoute and GRPCRoute specs validated and
// normalized (./validate.ts), defaults filled in. Types only.
import type { HTTPMethod, PathMatchType, ValueMatchType } from '../../contract/proxy-snapshot.js';

export interface ParentRef {
  /** "" is the core group (a Service parent); defaults to gateway.networking.k8s.io. */
  group: string;
  /** Defaults to Gateway. */
  kind: string;
  /** Unset: the route's own namespace. */
  namespace?: string;
  name: string;
  /** For a Service: the port name. */
  sectionName?: string;
  /** For a Service: the port number. */
  port?: number;
}

export interface HTTPPathMatch {
  type: PathMatchType;
  value: string;
}

/** A header or query parameter match. */
export interface NameValueMatch {
  type: ValueMatchType;
  name: string;
  value: string;
}

export interface HTTPRouteMatch {
  path: HTTPPathMatch;
  headers: NameValueMatch[];
  queryParams: NameValueMatch[];
  method?: HTTPMethod;
}

export interface HTTPHeader {
  name: string;
  value: string;
}

export interface HeaderModifier {
  set: HTTPHeader[];
  add: HTTPHeader[];
  remove: string[];
}

export type RouteFilter =
  | { type: 'RequestHeaderModifier'; requestHeaderModifier: HeaderModifier }
  | { type: 'ResponseHeaderModifier'; responseHeaderModifier: HeaderModifier };

export interface BackendRef {
  /** "" (core) by default. */
  group: string;
  /** Service by default. */
  kind: string;
  name: string;
  /** Unset: the route's own namespace. */
  namespace?: string;
  /** The Service's port (not its target port); required for a Service. */
  port?: number;
  /** 0..1,000,000, 1 by default; 0 sends nothing. */
  weight: number;
  /** Applied only to requests sent to this backend, after the rule's. */
  filters: RouteFilter[];
}

/** Gateway API durations (GEP-2257), as written; "0s" disables the timeout. */
export interface RouteTimeouts {
  request?: string;
  backendRequest?: string;
}

export interface HTTPRouteRule {
  name?: string;
  /** Never empty: no matches means one PathPrefix "/" match. */
  matches: HTTPRouteMatch[];
  filters: RouteFilter[];
  backendRefs: BackendRef[];
  timeouts?: RouteTimeouts;
}

export interface HTTPRouteSpec {
  parentRefs: ParentRef[];
  /** Validated, not used: a mesh route applies to its Service whatever the Host header says. */
  hostnames: string[];
  rules: HTTPRouteRule[];
}

export interface GRPCMethodMatch {
  type: ValueMatchType;
  /** Unset: any service. At least one of service and method is set. */
  service?: string;
  /** Unset: any method. */
  method?: string;
}

export interface GRPCRouteMatch {
  /** Unset: any service and method. */
  method?: GRPCMethodMatch;
  headers: NameValueMatch[];
}

export interface GRPCRouteRule {
  name?: string;
  /** Empty: every request. */
  matches: GRPCRouteMatch[];
  filters: RouteFilter[];
  backendRefs: BackendRef[];
}

export interface GRPCRouteSpec {
  parentRefs: ParentRef[];
  hostnames: string[];
  rules: GRPCRouteRule[];
}

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';
