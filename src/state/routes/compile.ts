// The store's HTTPRoutes and GRPCRoutes (validated and normalized as the sources read them:
// ./validate.ts) + Services → for each routed Service port, its rules and its matches in the
// order the spec gives them precedence: the route table the proxy runs. Pure; the output is
// snapshot data (src/contract/proxy-snapshot.ts, built by ./snapshot.ts).
//
// Attachment (the mesh profile): a parentRef with group "" and kind Service attaches the
// route to that Service: to the port named by sectionName and/or numbered by port, or to all
// its TCP ports when neither is set. Parents of other kinds are for gateways: ignored here.
// A route in the Service's namespace is a producer route: it applies to every client. A route
// in another namespace is a consumer route (GAMMA): it applies only to the clients of its own
// namespace, and those clients get their namespace's consumer routes instead of the producer
// routes. A port with consumer routes only sends every other client to its own endpoints, as
// if it had no route. A consumer route may name its parent Service as a backend (the usual
// case: the route refines how its namespace calls that Service) without a ReferenceGrant.
// On one Service port, HTTPRoutes and GRPCRoutes are never merged: the kind of the oldest
// route attached there (a producer route before any consumer route) wins the port, and routes
// of the other kind are ignored with a note, as the spec resolves the same conflict on a
// Gateway listener.
//
// Precedence, HTTPRoute (Gateway API v1, HTTPRouteRule.matches): across every match of every
// rule of every route attached to the port, first
//   1. an Exact path;
//   2. then a RegularExpression path (implementation-specific: placed before prefixes, as
//      Envoy Gateway, Contour and NGINX do, because PathPrefix "/" is every rule's default and
//      a catch-all would otherwise hide every regex; regex lengths are not compared);
//   3. then a PathPrefix, the longest first (a trailing "/" does not count);
//   then, on ties: a method match first; more header matches first; more query parameter
//   matches first; the oldest route (creationTimestamp; a route without one comes after those
//   with one); the route's "namespace/name" alphabetically; the rule's order in its route;
//   the match's order in its rule.
// Precedence, GRPCRoute (GRPCRouteRule.matches): an Exact method match first, the longest
// service first, then the longest method; then a RegularExpression method match (lengths not
// compared); then matches with no method; on ties: more header matches first; then the same
// route, rule and match order as above. A rule without matches matches every request.
//
// Backends: each backendRef with a weight above 0 becomes a weighted choice. A Service in
// another namespace than the route's needs a ReferenceGrant in that namespace (from the
// route's kind and namespace, to core Services: all of them or that one by name), except a
// consumer route's parent Service. One that cannot be resolved (not a core Service, in another
// namespace without a grant, a Service or port that does not exist, a headless or
// ExternalName Service) keeps its share of the weight and answers 500, as the spec requires.
import type {
  BackendChoiceConfig,
  BackendProtocol,
  GrpcMatchConfig,
  HeaderEdits,
  HttpMatchConfig,
  RuleConfig,
  ServicePortConfig,
} from '../../contract/proxy-snapshot.js';
import { canonicalIp } from '../../lib/ip.js';
import type { GRPCRoute, HTTPRoute, ReferenceGrant, Service, ServicePort } from '../resources.js';
import type { BackendRef, HeaderModifier, ParentRef, RouteFilter } from './spec.js';
import { parseDuration } from './validate.js';

/** A route as the store holds it. */
export type Route = HTTPRoute | GRPCRoute;

/** What the route table needs of the backends: each key, and what it speaks. */
export interface BackendNeed {
  key: string;
  protocol: BackendProtocol;
}

export interface CompiledRoutes {
  /** Each routed Service port, by service then port. */
  services: ServicePortConfig[];
  /** Every backend the snapshot must carry endpoints for, by key. */
  backends: BackendNeed[];
  /** What was ignored or cannot route, each naming the route: worth a log line. */
  notes: string[];
}

const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const routeName = (r: Route) => `${r.metadata.namespace}/${r.metadata.name}`;
const routeLabel = (r: Route) => `${r.kind} ${routeName(r)}`;
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The spec's tie-break between routes: oldest first, then "namespace/name". */
export function compareRoutes(a: Route, b: Route): number {
  const ta = a.metadata.creationTimestamp === undefined ? NaN : Date.parse(a.metadata.creationTimestamp);
  const tb = b.metadata.creationTimestamp === undefined ? NaN : Date.parse(b.metadata.creationTimestamp);
  if (Number.isFinite(ta) !== Number.isFinite(tb)) return Number.isFinite(ta) ? -1 : 1;
  if (Number.isFinite(ta) && ta !== tb) return ta - tb;
  return compare(routeName(a), routeName(b)) || compare(a.kind, b.kind);
}

const isHeadless = (svc: Service) => (svc.spec.clusterIPs ?? []).every((ip) => ip === 'None' || ip === '');
const clusterIPs = (svc: Service) =>
  (svc.spec.clusterIPs ?? []).filter((ip) => ip !== 'None' && ip !== '').map(canonicalIp);

function selectedPorts(svc: Service, ref: ParentRef): ServicePort[] {
  return svc.spec.ports.filter(
    (p) =>
      p.protocol === 'TCP' &&
      (ref.sectionName === undefined || p.name === ref.sectionName) &&
      (ref.port === undefined || p.port === ref.port),
  );
}

function headerEdits(m: HeaderModifier): HeaderEdits {
  return {
    set: m.set.map((h) => ({ name: h.name.toLowerCase(), value: h.value })),
    add: m.add.map((h) => ({ name: h.name.toLowerCase(), value: h.value })),
    remove: m.remove.map((n) => n.toLowerCase()),
  };
}

function filterEdits(filters: readonly RouteFilter[]): { requestHeaders?: HeaderEdits; responseHeaders?: HeaderEdits } {
  const out: { requestHeaders?: HeaderEdits; responseHeaders?: HeaderEdits } = {};
  for (const f of filters) {
    if (f.type === 'RequestHeaderModifier') out.requestHeaders = headerEdits(f.requestHeaderModifier);
    else out.responseHeaders = headerEdits(f.responseHeaderModifier);
  }
  return out;
}

/** Compiles routes once they are attached: holds the Services and collects notes and backends. */
class Compiler {
  readonly notes: string[] = [];
  readonly backends = new Map<string, BackendProtocol>();

  constructor(
    private readonly services: Map<string, Service>,
    private readonly grants: readonly ReferenceGrant[],
  ) {}

  /** Whether a ReferenceGrant in `ns` lets routes of this kind and namespace name Service `name` there. */
  granted(route: Route, ns: string, name: string): boolean {
    return this.grants.some(
      (g) =>
        g.metadata.namespace === ns &&
        g.spec.from.some(
          (f) => f.group === GATEWAY_GROUP && f.kind === route.kind && f.namespace === route.metadata.namespace,
        ) &&
        g.spec.to.some((t) => t.group === '' && t.kind === 'Service' && (t.name === undefined || t.name === name)),
    );
  }

  needBackend(key: string, protocol: BackendProtocol): void {
    if (this.backends.get(key) !== 'h2c') this.backends.set(key, protocol);
  }

  /** Where a backendRef sends requests, or why it cannot. */
  resolve(route: Route, ref: BackendRef): { backend: string } | { invalid: string } {
    const ns = ref.namespace ?? route.metadata.namespace;
    const target = `${ns}/${ref.name}`;
    if (ref.group !== '' || ref.kind !== 'Service')
      return { invalid: `${ref.group || 'core'}/${ref.kind} backends are not supported (only Services)` };
    const parent = route.spec.parentRefs.some(
      (p) =>
        p.group === '' &&
        p.kind === 'Service' &&
        p.name === ref.name &&
        (p.namespace ?? route.metadata.namespace) === ns,
    );
    if (ns !== route.metadata.namespace && !parent && !this.granted(route, ns, ref.name)) {
      return {
        invalid: `Service ${target} is in another namespace, and no ReferenceGrant there lets ${route.kind}s of ${route.metadata.namespace} refer to it`,
      };
    }
    const svc = this.services.get(target);
    if (!svc) return { invalid: `Service ${target} not found` };
    if (svc.spec.type === 'ExternalName')
      return { invalid: `Service ${target} is an ExternalName Service: not supported as a backend` };
    if (isHeadless(svc)) return { invalid: `Service ${target} is headless: not supported as a backend yet` };
    if (!svc.spec.ports.some((p) => p.port === ref.port && p.protocol === 'TCP'))
      return { invalid: `Service ${target} has no TCP port ${ref.port}` };
    return { backend: `${target}:${ref.port}` };
  }

  rule(route: Route, index: number): RuleConfig {
    const rule = route.spec.rules[index]!;
    const at = `spec.rules[${index}]`;
    const backends = rule.backendRefs.flatMap((ref, k): BackendChoiceConfig[] => {
      if (ref.weight === 0) return [];
      const target = this.resolve(route, ref);
      if ('invalid' in target)
        this.notes.push(
          `${routeLabel(route)}: ${at}.backendRefs[${k}]: ${target.invalid}; its share of requests gets 500`,
        );
      else this.needBackend(target.backend, route.kind === 'GRPCRoute' ? 'h2c' : 'unknown');
      return [{ weight: ref.weight, ...target, ...filterEdits(ref.filters) }];
    });
    if (backends.length === 0)
      this.notes.push(`${routeLabel(route)}: ${at}: no backend with a weight above 0; requests it matches get 500`);
    const timeouts = 'timeouts' in rule ? rule.timeouts : undefined;
    const request = timeouts?.request === undefined ? undefined : parseDuration(timeouts.request);
    const backendRequest = timeouts?.backendRequest === undefined ? undefined : parseDuration(timeouts.backendRequest);
    return {
      route: routeName(route),
      rule: index,
      ...(rule.name !== undefined && { name: rule.name }),
      backends,
      ...filterEdits(rule.filters),
      ...(request !== undefined && { requestTimeoutMs: request }),
      ...(backendRequest !== undefined && { backendRequestTimeoutMs: backendRequest }),
    };
  }
}

type Key = number[];
const compareKeys = (a: Key, b: Key): number => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
};

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

function httpMatches(route: HTTPRoute, order: number, ruleBase: number): { key: Key; match: HttpMatchConfig }[] {
  return route.spec.rules.flatMap((rule, i) =>
    rule.matches.map((m, j) => {
      // A prefix matches path elements: "/foo/" and "/foo" are the same prefix.
      const value =
        m.path.type === 'PathPrefix' && m.path.value !== '/' ? m.path.value.replace(/\/$/, '') : m.path.value;
      const length = m.path.type === 'RegularExpression' ? 0 : value.length;
      const match: HttpMatchConfig = {
        rule: ruleBase + i,
        path: { type: m.path.type, value },
        ...(m.method !== undefined && { method: m.method }),
        headers: m.headers.map((h) => ({ name: h.name.toLowerCase(), type: h.type, value: h.value })),
        queryParams: m.queryParams.map((q) => ({ name: q.name, type: q.type, value: q.value })),
      };
      return {
        key: [PATH_RANK[m.path.type], -length, m.method ? 0 : 1, -m.headers.length, -m.queryParams.length, order, i, j],
        match,
      };
    }),
  );
}

function grpcMatches(route: GRPCRoute, order: number, ruleBase: number): { key: Key; match: GrpcMatchConfig }[] {
  return route.spec.rules.flatMap((rule, i) => {
    const matches = rule.matches.length ? rule.matches : [{ headers: [] }];
    return matches.map((m, j) => {
      const method = 'method' in m ? m.method : undefined;
      const rank = !method ? 2 : method.type === 'Exact' ? 0 : 1;
      const exact = method?.type === 'Exact';
      const match: GrpcMatchConfig = {
        rule: ruleBase + i,
        ...(method && {
          method: {
            type: method.type,
            ...(method.service && { service: method.service }),
            ...(method.method && { method: method.method }),
          },
        }),
        headers: m.headers.map((h) => ({ name: h.name.toLowerCase(), type: h.type, value: h.value })),
      };
      const key = [
        rank,
        exact ? -(method.service?.length ?? 0) : 0,
        exact ? -(method.method?.length ?? 0) : 0,
        -m.headers.length,
        order,
        i,
        j,
      ];
      return { key, match };
    });
  });
}

interface Attachment {
  svc: Service;
  port: ServicePort;
  /** Producer routes, and consumer routes by their namespace; each in route order. */
  routes: Route[];
  consumers: Map<string, Route[]>;
}

/** The route table of every routed Service port. */
export function compileRoutes(
  routes: Iterable<Route>,
  services: Iterable<Service>,
  grants: Iterable<ReferenceGrant> = [],
): CompiledRoutes {
  const byName = new Map<string, Service>();
  for (const s of services) byName.set(`${s.metadata.namespace}/${s.metadata.name}`, s);
  const compiler = new Compiler(byName, [...grants]);
  const notes = compiler.notes;
  const ordered = [...routes].sort(compareRoutes);

  // Which routes attach to which Service port, in route order.
  const attached = new Map<string, Attachment>();
  for (const route of ordered) {
    const ports = new Set<string>();
    route.spec.parentRefs.forEach((ref, i) => {
      if (ref.group !== '' || ref.kind !== 'Service') return; // a Gateway's route: not the mesh's
      const at = `${routeLabel(route)}: spec.parentRefs[${i}]`;
      const ns = ref.namespace ?? route.metadata.namespace;
      const target = `${ns}/${ref.name}`;
      const svc = byName.get(target);
      if (!svc) return notes.push(`${at}: Service ${target} not found`);
      if (svc.spec.type === 'ExternalName' || isHeadless(svc))
        return notes.push(`${at}: Service ${target} has no cluster IP to route`);
      const selected = selectedPorts(svc, ref);
      if (selected.length === 0) {
        const which = [
          ref.sectionName !== undefined && `named ${ref.sectionName}`,
          ref.port !== undefined && `numbered ${ref.port}`,
        ]
          .filter(Boolean)
          .join(' and ');
        return notes.push(`${at}: Service ${target} has no TCP port${which ? ` ${which}` : ''}`);
      }
      for (const p of selected) {
        const key = `${target}:${p.port}`;
        if (ports.has(key)) continue; // two refs to the same port attach once
        ports.add(key);
        const a: Attachment = attached.get(key) ?? { svc, port: p, routes: [], consumers: new Map() };
        if (ns === route.metadata.namespace) a.routes.push(route);
        else a.consumers.set(route.metadata.namespace, [...(a.consumers.get(route.metadata.namespace) ?? []), route]);
        attached.set(key, a);
      }
    });
  }

  const out: ServicePortConfig[] = [];
  const destinations = new Map<string, string>();
  const keys = [...attached.keys()].sort(compare);
  for (const key of keys) {
    const { svc, port, routes: producers, consumers } = attached.get(key)!;
    const namespaces = [...consumers.keys()].sort(compare);
    const all = [...producers, ...namespaces.flatMap((n) => consumers.get(n)!)];
    const first = producers[0] ?? [...all].sort(compareRoutes)[0]!;
    const kind = first.kind;
    for (const r of all)
      if (r.kind !== kind)
        notes.push(
          `${routeLabel(r)}: Service port ${key} is already routed by ${kind} ${routeName(first)}; HTTPRoutes and GRPCRoutes do not share a port, ignored`,
        );
    const accepted = producers.filter((r) => r.kind === kind);
    const service = `${svc.metadata.namespace}/${svc.metadata.name}`;
    // Two Services cannot share an address (the service table keeps the first): nor can two routed ports.
    const addresses = clusterIPs(svc).filter((ip) => {
      const holder = destinations.get(`${ip} ${port.port}`);
      if (holder !== undefined)
        notes.push(`Service ${service}: ${ip} port ${port.port} is already Service ${holder}'s; not routed there`);
      else destinations.set(`${ip} ${port.port}`, service);
      return holder === undefined;
    });
    const rules: RuleConfig[] = [];
    const base = {
      service,
      port: port.port,
      portName: port.name ?? '',
      addresses,
      rules,
      ...(accepted.length === 0 && { fallback: 'forward' as const }),
    };
    compiler.needBackend(key, kind === 'GRPCRoute' ? 'h2c' : 'unknown');
    /** One table: the routes' rules appended to the port's, their matches in precedence order. */
    const table = <M>(
      routes: Route[],
      matchesOf: (r: Route, order: number, ruleBase: number) => { key: Key; match: M }[],
    ): M[] =>
      routes
        .filter((r) => r.kind === kind)
        .flatMap((r, order) => {
          const ruleBase = rules.length;
          r.spec.rules.forEach((_, i) => rules.push(compiler.rule(r, i)));
          return matchesOf(r, order, ruleBase);
        })
        .sort((a, b) => compareKeys(a.key, b.key))
        .map((e) => e.match);
    const consumerTables = <M>(matchesOf: (r: Route, order: number, ruleBase: number) => { key: Key; match: M }[]) => {
      const tables = namespaces
        .map((namespace) => ({ namespace, matches: table(consumers.get(namespace)!, matchesOf) }))
        .filter((t) => t.matches.length > 0);
      return tables.length ? { consumers: tables } : {};
    };
    if (kind === 'HTTPRoute') {
      const of = (r: Route, order: number, ruleBase: number) => httpMatches(r as HTTPRoute, order, ruleBase);
      out.push({ ...base, protocol: 'http', matches: table(accepted, of), ...consumerTables(of) });
    } else {
      const of = (r: Route, order: number, ruleBase: number) => grpcMatches(r as GRPCRoute, order, ruleBase);
      out.push({ ...base, protocol: 'grpc', matches: table(accepted, of), ...consumerTables(of) });
    }
  }
  const backends = [...compiler.backends]
    .map(([key, protocol]) => ({ key, protocol }))
    .sort((a, b) => compare(a.key, b.key));
  return { services: out, backends, notes: [...new Set(notes)].sort() };
}
