// Per-request routing in weft-proxy: the first match of a Service port's table (already in
// precedence order, src/state/routes/compile.ts) picks the rule, a weighted draw picks one of
// its backends, and the answer is a decision the proxy acts on: forward (to which backend, with
// which header edits and timeouts) or respond (404: nothing matched; 500: the rule's backend
// cannot be resolved).
//
// Cost per request, by design (no timing assertions; the proxy's benchmark measures it):
// - everything that can be is done once per snapshot: regexes compiled (anchored: a regex
//   matches the whole path or value), prefix values normalized, header names lower-cased,
//   cumulative weights summed, and every possible decision built and frozen, so routing
//   returns a shared object and allocates nothing for it;
// - the scan stops at the first match; each match tests its cheapest condition first (method,
//   then path, then headers, then query parameters);
// - the path is split from its query string only when it has one; the query string is parsed
//   (once) only when a candidate match has query conditions, and a gRPC path is split into
//   service and method (once) only when a candidate has a method condition;
// - a rule with one backend draws no random number.
//
// Regexes are JavaScript's (ECMAScript) syntax, tested against the whole value. They come
// from route authors and run on every request: keep them simple (a backtracking engine has no
// guard against a pathological pattern).
import type {
  GrpcMatchConfig,
  HeaderEdits,
  HttpMatchConfig,
  ProxySnapshot,
  RuleConfig,
  ServicePortConfig,
  ValueMatchConfig,
} from '../contract/proxy-snapshot.js';
import { canonicalIp } from '../lib/ip.js';
import { listGet } from './header-list.js';

export interface RouteRequest {
  method: string;
  /** The request target: path and query string (HTTP/2 :path, HTTP/1.1 req.url). */
  path: string;
  /** Names in lower case: a node-style object (HTTP/1.1), or an HTTP/2 header list. */
  headers: Readonly<Record<string, string | string[] | undefined>> | readonly string[];
}

/** A number in [0, 1): Math.random, or a seeded source in tests. */
export type Random = () => number;

export interface ForwardDecision {
  readonly kind: 'forward';
  /** "namespace/name:port" of the routed Service port. */
  readonly service: string;
  /** "namespace/name" of the route, the rule's index and name: for telemetry. */
  readonly route: string;
  readonly rule: number;
  readonly ruleName: string | undefined;
  /** "namespace/name:port": the backend whose endpoints to balance over (503 if it has none). */
  readonly backend: string;
  /** To apply in order: the rule's edits, then the backendRef's. */
  readonly requestHeaders: readonly HeaderEdits[];
  readonly responseHeaders: readonly HeaderEdits[];
  /** Unset: the proxy's default. 0: none. */
  readonly requestTimeoutMs: number | undefined;
  readonly backendRequestTimeoutMs: number | undefined;
}

export interface RespondDecision {
  readonly kind: 'respond';
  readonly service: string;
  /** 404 when no rule matches; 500 when the matched rule's drawn backend is invalid. */
  readonly status: 404 | 500;
  /** For gRPC requests (HTTP 200 with this grpc-status): 12 UNIMPLEMENTED, 14 UNAVAILABLE. */
  readonly grpcStatus: 12 | 14;
  readonly reason: string;
  readonly route: string | undefined;
  readonly rule: number | undefined;
}

export type RouteDecision = ForwardDecision | RespondDecision;

interface CompiledRule {
  readonly decisions: readonly RouteDecision[];
  /** cumulative[i]: the sum of the weights of decisions 0..i. */
  readonly cumulative: Float64Array;
  readonly total: number;
}

/** One value condition, ready to test. */
interface ValueTest {
  readonly name: string;
  readonly exact: string | undefined;
  readonly regex: RegExp | undefined;
}

const anchored = (source: string) => new RegExp(`^(?:${source})$`);

function valueTests(ms: readonly ValueMatchConfig[]): ValueTest[] {
  return ms.map((m) => ({
    name: m.name,
    exact: m.type === 'Exact' ? m.value : undefined,
    regex: m.type === 'RegularExpression' ? anchored(m.value) : undefined,
  }));
}

const passes = (t: ValueTest, value: string | undefined): boolean =>
  value !== undefined && (t.regex ? t.regex.test(value) : value === t.exact);

/** A header's value; repeated headers are joined with ", " as node:http joins them, so that
 *  HTTP/1.1 and HTTP/2 requests match alike. HTTP/2 has :authority where HTTP/1.1 has Host. */
function headerValue(headers: RouteRequest['headers'], name: string): string | undefined {
  if (isList(headers)) return listGet(headers, name === 'host' && headers.includes(':authority') ? ':authority' : name);
  let v = headers[name];
  if (v === undefined && name === 'host') v = headers[':authority'];
  return v === undefined || typeof v === 'string' ? v : v.join(', ');
}

const isList = (h: RouteRequest['headers']): h is readonly string[] => Array.isArray(h);

function headersPass(tests: readonly ValueTest[], headers: RouteRequest['headers']): boolean {
  for (let i = 0; i < tests.length; i++) if (!passes(tests[i]!, headerValue(headers, tests[i]!.name))) return false;
  return true;
}

function decode(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  const spaced = s.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced; // a malformed escape matches as written
  }
}

/** Query parameters, form-decoded; a repeated parameter keeps its first value (as the spec recommends). */
export function parseQuery(query: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decode(eq < 0 ? part : part.slice(0, eq));
    if (!params.has(name)) params.set(name, eq < 0 ? '' : decode(part.slice(eq + 1)));
  }
  return params;
}

function compileRules(service: string, rules: readonly RuleConfig[]): CompiledRule[] {
  return rules.map((r) => {
    const decisions = r.backends.map((b): RouteDecision => {
      if (b.backend === undefined) {
        return Object.freeze({
          kind: 'respond',
          service,
          status: 500,
          grpcStatus: 14,
          reason: b.invalid ?? 'invalid backend',
          route: r.route,
          rule: r.rule,
        });
      }
      return Object.freeze({
        kind: 'forward',
        service,
        route: r.route,
        rule: r.rule,
        ruleName: r.name,
        backend: b.backend,
        requestHeaders: Object.freeze(
          [r.requestHeaders, b.requestHeaders].filter((e): e is HeaderEdits => e !== undefined),
        ),
        responseHeaders: Object.freeze(
          [r.responseHeaders, b.responseHeaders].filter((e): e is HeaderEdits => e !== undefined),
        ),
        requestTimeoutMs: r.requestTimeoutMs,
        backendRequestTimeoutMs: r.backendRequestTimeoutMs,
      });
    });
    const cumulative = new Float64Array(r.backends.length);
    let total = 0;
    r.backends.forEach((b, i) => (cumulative[i] = total += b.weight));
    if (decisions.length === 0) {
      decisions.push(
        Object.freeze({
          kind: 'respond',
          service,
          status: 500,
          grpcStatus: 14,
          reason: 'the rule has no backend with a weight above 0',
          route: r.route,
          rule: r.rule,
        }),
      );
    }
    return { decisions, cumulative, total };
  });
}

/** A backend by weight: weight w of a total W is drawn w/W of the time. */
function draw(rule: CompiledRule, random: Random): RouteDecision {
  const d = rule.decisions;
  if (d.length === 1) return d[0]!;
  const r = random() * rule.total;
  for (let i = 0; i < d.length - 1; i++) if (r < rule.cumulative[i]!) return d[i]!;
  return d[d.length - 1]!;
}

/** The routing of one Service port. */
export interface ServiceRouter {
  readonly service: string;
  readonly port: number;
  readonly protocol: 'http' | 'grpc';
  /** The routing a client of this namespace gets: its consumer routes' when it has some. */
  forClient(namespace: string | undefined): ServiceRouter;
  route(req: RouteRequest, random?: Random): RouteDecision;
}

/** One table of matches over a port's compiled rules: the producer routes' or one namespace's
 *  consumer routes'. */
abstract class MatchTable {
  /** Namespace → its consumer routes' table; set on the producer table only. */
  consumers: Map<string, ServiceRouter> | undefined;

  constructor(
    readonly service: string,
    readonly port: number,
    /** What a request no match takes gets: a 404, or (a port with consumer routes only, for
     *  other clients) the Service port's own endpoints. */
    protected readonly otherwise: RouteDecision,
  ) {}

  forClient(namespace: string | undefined): ServiceRouter {
    const c = this.consumers;
    return (c !== undefined && namespace !== undefined && c.get(namespace)) || (this as unknown as ServiceRouter);
  }
}

const PATH_EXACT = 0;
const PATH_PREFIX = 1;
const PATH_REGEX = 2;
const PATH_ANY = 3;

interface HttpMatch {
  readonly rule: CompiledRule;
  readonly method: string | undefined;
  readonly pathKind: number;
  readonly pathValue: string;
  readonly pathRegex: RegExp | undefined;
  readonly headers: readonly ValueTest[];
  readonly query: readonly ValueTest[];
}

function pathPasses(m: HttpMatch, path: string): boolean {
  switch (m.pathKind) {
    case PATH_ANY:
      return true;
    case PATH_EXACT:
      return path === m.pathValue;
    case PATH_PREFIX:
      // Element by element: "/foo" matches "/foo" and "/foo/bar", not "/foobar".
      return (
        path.startsWith(m.pathValue) &&
        (path.length === m.pathValue.length || path.charCodeAt(m.pathValue.length) === 47)
      );
    default:
      return m.pathRegex!.test(path);
  }
}

class HttpRouter extends MatchTable implements ServiceRouter {
  readonly protocol = 'http' as const;
  private readonly matches: HttpMatch[];

  constructor(
    service: string,
    port: number,
    rules: readonly CompiledRule[],
    matches: readonly HttpMatchConfig[],
    otherwise: RouteDecision,
  ) {
    super(service, port, otherwise);
    this.matches = matches.map((m) => ({
      rule: rules[m.rule]!,
      method: m.method,
      pathKind:
        m.path.type === 'Exact'
          ? PATH_EXACT
          : m.path.type === 'RegularExpression'
            ? PATH_REGEX
            : m.path.value === '/'
              ? PATH_ANY
              : PATH_PREFIX,
      pathValue: m.path.value,
      pathRegex: m.path.type === 'RegularExpression' ? anchored(m.path.value) : undefined,
      headers: valueTests(m.headers),
      query: valueTests(m.queryParams),
    }));
  }

  route(req: RouteRequest, random: Random = Math.random): RouteDecision {
    const q = req.path.indexOf('?');
    const path = q < 0 ? req.path : req.path.slice(0, q);
    let params: Map<string, string> | undefined;
    for (let i = 0; i < this.matches.length; i++) {
      const m = this.matches[i]!;
      if (m.method !== undefined && m.method !== req.method) continue;
      if (!pathPasses(m, path)) continue;
      if (m.headers.length && !headersPass(m.headers, req.headers)) continue;
      if (m.query.length) {
        params ??= q < 0 ? new Map() : parseQuery(req.path.slice(q + 1));
        let ok = true;
        for (let k = 0; k < m.query.length && ok; k++) ok = passes(m.query[k]!, params.get(m.query[k]!.name));
        if (!ok) continue;
      }
      return draw(m.rule, random);
    }
    return this.otherwise;
  }
}

interface GrpcMatch {
  readonly rule: CompiledRule;
  readonly service: ValueTest | undefined;
  readonly method: ValueTest | undefined;
  readonly headers: readonly ValueTest[];
}

function grpcPart(type: 'Exact' | 'RegularExpression', value: string | undefined): ValueTest | undefined {
  if (value === undefined) return undefined;
  return {
    name: '',
    exact: type === 'Exact' ? value : undefined,
    regex: type === 'RegularExpression' ? anchored(value) : undefined,
  };
}

class GrpcRouter extends MatchTable implements ServiceRouter {
  readonly protocol = 'grpc' as const;
  private readonly matches: GrpcMatch[];

  constructor(
    service: string,
    port: number,
    rules: readonly CompiledRule[],
    matches: readonly GrpcMatchConfig[],
    otherwise: RouteDecision,
  ) {
    super(service, port, otherwise);
    this.matches = matches.map((m) => ({
      rule: rules[m.rule]!,
      service: m.method && grpcPart(m.method.type, m.method.service),
      method: m.method && grpcPart(m.method.type, m.method.method),
      headers: valueTests(m.headers),
    }));
  }

  route(req: RouteRequest, random: Random = Math.random): RouteDecision {
    // "/package.Service/Method", split once and only if a match asks.
    let split = false;
    let svc: string | undefined;
    let method: string | undefined;
    for (let i = 0; i < this.matches.length; i++) {
      const m = this.matches[i]!;
      if (m.service || m.method) {
        if (!split) {
          split = true;
          const p = req.path;
          const q = p.indexOf('?');
          const end = q < 0 ? p.length : q;
          const slash = p.indexOf('/', 1);
          if (p.charCodeAt(0) === 47 && slash > 1 && slash < end - 1 && p.indexOf('/', slash + 1) < 0) {
            svc = p.slice(1, slash);
            method = p.slice(slash + 1, end);
          }
        }
        if (m.service && !passes(m.service, svc)) continue;
        if (m.method && !passes(m.method, method)) continue;
      }
      if (m.headers.length && !headersPass(m.headers, req.headers)) continue;
      return draw(m.rule, random);
    }
    return this.otherwise;
  }
}

/** Builds the router of one Service port from its snapshot entry: the producer routes' table,
 *  and one table per namespace with consumer routes, over the same compiled rules. */
export function compileServiceRouter(config: ServicePortConfig): ServiceRouter {
  const name = `${config.service}:${config.port}`;
  const rules = compileRules(name, config.rules);
  const notFound: RespondDecision = Object.freeze({
    kind: 'respond',
    service: name,
    status: 404,
    grpcStatus: 12,
    reason: config.protocol === 'http' ? 'no route matches the request' : 'no route matches the gRPC method',
    route: undefined,
    rule: undefined,
  });
  const unrouted: ForwardDecision = Object.freeze({
    kind: 'forward',
    service: name,
    route: '',
    rule: 0,
    ruleName: undefined,
    backend: name,
    requestHeaders: Object.freeze([]),
    responseHeaders: Object.freeze([]),
    requestTimeoutMs: undefined,
    backendRequestTimeoutMs: undefined,
  });
  const otherwise = config.fallback === 'forward' ? unrouted : notFound;
  if (config.protocol === 'http') {
    const router = new HttpRouter(name, config.port, rules, config.matches, otherwise);
    if (config.consumers?.length)
      router.consumers = new Map(
        config.consumers.map((c) => [c.namespace, new HttpRouter(name, config.port, rules, c.matches, notFound)]),
      );
    return router;
  }
  const router = new GrpcRouter(name, config.port, rules, config.matches, otherwise);
  if (config.consumers?.length)
    router.consumers = new Map(
      config.consumers.map((c) => [c.namespace, new GrpcRouter(name, config.port, rules, c.matches, notFound)]),
    );
  return router;
}

/** Every routed Service port of a snapshot, found by name or by the original destination the
 *  kernel recorded. Built whole from a validated snapshot, then swapped in as one object. */
export class ProxyRouter {
  private readonly byService = new Map<string, ServiceRouter>();
  private readonly byDestination = new Map<string, ServiceRouter>();

  constructor(
    readonly version: number,
    services: readonly ServicePortConfig[],
  ) {
    for (const s of services) {
      const router = compileServiceRouter(s);
      this.byService.set(router.service, router);
      for (const a of s.addresses) this.byDestination.set(`${canonicalIp(a)} ${s.port}`, router);
    }
  }

  static fromSnapshot(s: ProxySnapshot): ProxyRouter {
    return new ProxyRouter(s.version, s.services);
  }

  /** By "namespace/name:port". */
  forService(service: string): ServiceRouter | undefined {
    return this.byService.get(service);
  }

  /** By the connection's original destination (a cluster IP and the Service port). */
  forDestination(ip: string, port: number): ServiceRouter | undefined {
    return this.byDestination.get(`${canonicalIp(ip)} ${port}`);
  }
}

/** Applies header edits to a node-style header object (lower-case names), in order. "add"
 *  appends a value (a header then holds a list, as repeated header lines do); "set" replaces. */
export function applyHeaderEdits(
  headers: Record<string, string | string[] | undefined>,
  edits: readonly HeaderEdits[],
): void {
  for (const e of edits) {
    for (const h of e.set) headers[h.name] = h.value;
    for (const h of e.add) {
      const v = headers[h.name];
      headers[h.name] = v === undefined ? h.value : typeof v === 'string' ? [v, h.value] : [...v, h.value];
    }
    for (const n of e.remove) delete headers[n];
  }
}
