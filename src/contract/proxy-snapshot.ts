// The configuration weftd sends weft-proxy: one versioned, self-contained snapshot of every
// L7 Service port, its routes (already compiled and ordered by precedence) and the ready
// endpoints of every backend they name. Plain JSON (regexes travel as source text), so it
// crosses the unix socket as is. The proxy validates a snapshot fully before it builds
// anything from it, builds its matchers and balancers aside, then swaps one reference: a
// request sees the old snapshot or the new one, never a mix, and an invalid snapshot changes
// nothing. It also names the sockets the proxy listens on (each bound to one Service port) and
// the workloads behind the addresses the proxy sees, for its flows and metrics.
import { Checker, isObj } from '../lib/checker.js';
import { canonicalIp, parseIp } from '../lib/ip.js';

// ---- the vocabulary routes and snapshots share ----

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export type ValueMatchType = 'Exact' | 'RegularExpression';
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
export type HTTPMethod = (typeof HTTP_METHODS)[number];
/** The largest backend weight (Gateway API: 0..1,000,000; a snapshot carries 1.. only). */
export const MAX_WEIGHT = 1_000_000;
// Control characters (tab aside) in a header value would let a route split or smuggle headers,
// and make Node refuse to send the request at all.
export const HEADER_VALUE_FORBIDDEN = /[\x00-\x08\x0a-\x1f\x7f]/;
// Headers the proxy owns per connection: HTTP/2 forbids them outright, and a route changing
// them would break the framing of every request it touches.
export const UNMODIFIABLE_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'content-length',
]);

/** Why `source` cannot be a route regex (JavaScript syntax, matched against the whole value), or undefined. */
export function regexProblem(source: string): string | undefined {
  try {
    // Alone first: wrapped, an unbalanced "a)(b" would read as a valid group.
    new RegExp(source);
    new RegExp(`^(?:${source})$`);
    return undefined;
  } catch (err) {
    return `${JSON.stringify(source)} is not a valid regular expression: ${(err as Error).message}`;
  }
}

// ---- the snapshot ----

export type BalancerAlgorithm = 'peak-ewma' | 'round-robin' | 'least-request';
export const BALANCER_ALGORITHMS: readonly BalancerAlgorithm[] = ['peak-ewma', 'round-robin', 'least-request'];

/** Header changes of one filter; names in lower case. A name has at most one action. */
export interface HeaderEdits {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

/** A header (name in lower case) or query parameter (name as is) condition. */
export interface ValueMatchConfig {
  name: string;
  type: ValueMatchType;
  value: string;
}

export interface HttpMatchConfig {
  /** Index into the port's rules. */
  rule: number;
  /** PathPrefix values carry no trailing "/" (but "/" itself stays "/"). */
  path: { type: PathMatchType; value: string };
  method?: string;
  headers: ValueMatchConfig[];
  queryParams: ValueMatchConfig[];
}

export interface GrpcMatchConfig {
  rule: number;
  /** Unset: any service and method. */
  method?: { type: ValueMatchType; service?: string; method?: string };
  headers: ValueMatchConfig[];
}

/** One weighted choice of a rule. Exactly one of backend and invalid is set. */
export interface BackendChoiceConfig {
  /** 1..1,000,000 (weight-0 refs are left out: they never get a request). */
  weight: number;
  /** "namespace/name:port" of a Service port: a key of ProxySnapshot.backends. */
  backend?: string;
  /** Why this share of requests gets a 500 (gRPC: UNAVAILABLE): the ref could not be resolved. */
  invalid?: string;
  /** The backendRef's own filters, applied after the rule's. */
  requestHeaders?: HeaderEdits;
  responseHeaders?: HeaderEdits;
}

export interface RuleConfig {
  /** "namespace/name" of the route, for telemetry and logs. */
  route: string;
  /** The rule's index in its route. */
  rule: number;
  name?: string;
  /** Empty: every request the rule matches gets a 500 (gRPC: UNAVAILABLE). */
  backends: BackendChoiceConfig[];
  requestHeaders?: HeaderEdits;
  responseHeaders?: HeaderEdits;
  /** Unset: the proxy's default. 0: no timeout. */
  requestTimeoutMs?: number;
  backendRequestTimeoutMs?: number;
}

interface ServicePortBase {
  /** "namespace/name" */
  service: string;
  port: number;
  portName: string;
  /** The Service's cluster IPs: with `port`, the original destinations the kernel records. */
  addresses: string[];
  /** Every rule of the port: the producer routes' and the consumer routes'. */
  rules: RuleConfig[];
  /** Set when only consumer routes attach to the port: the requests of other clients go to the
   *  Service port's own endpoints (key "service:port" in backends), as if it had no route. */
  fallback?: 'forward';
}

/** The matches of one namespace's consumer routes (GAMMA: routes in another namespace than
 *  their parent Service): its clients' requests are matched against these, not the port's
 *  own (the producer routes'), and get a 404 when none matches. */
export interface ConsumerMatches<M> {
  namespace: string;
  matches: M[];
}

export interface HttpServicePort extends ServicePortBase {
  protocol: 'http';
  /** In precedence order: the first that matches a request decides its rule. */
  matches: HttpMatchConfig[];
  consumers?: ConsumerMatches<HttpMatchConfig>[];
}

export interface GrpcServicePort extends ServicePortBase {
  protocol: 'grpc';
  matches: GrpcMatchConfig[];
  consumers?: ConsumerMatches<GrpcMatchConfig>[];
}

export type ServicePortConfig = HttpServicePort | GrpcServicePort;

/** What a backend speaks: h2c for gRPC backends; "unknown" leaves it to the proxy. */
export type BackendProtocol = 'http1' | 'h2c' | 'unknown';
export const BACKEND_PROTOCOLS: readonly BackendProtocol[] = ['http1', 'h2c', 'unknown'];

export interface BackendEndpoint {
  ip: string;
  /** The endpoint's port (the resolved target port). */
  port: number;
}

export interface BackendConfig {
  protocol: BackendProtocol;
  /** Ready endpoints (serving-terminating ones when none is ready), sorted. Empty: 503. */
  endpoints: BackendEndpoint[];
}

/** A socket the proxy listens on. weftd's kernel program sends the connections of one Service
 *  port to its listener (one listener port per Service port, on an IPv4 and/or an IPv6 proxy
 *  address), so a connection accepted there belongs to that Service port. */
export interface ListenerConfig {
  /** An IP address of the node (canonical form). */
  address: string;
  port: number;
  /** "namespace/name" of the Service... */
  service: string;
  /** ...and its port: together, one of `services` (its routes), and the backend key
   *  "namespace/name:port" of its own endpoints (for TCP passthrough). */
  servicePort: number;
}

/** Who holds an address (a pod), for flows and metrics labels. */
export interface WorkloadConfig {
  namespace?: string;
  pod?: string;
  /** The security identity (src/state/identities.ts); 0 when not known. */
  identity: number;
  /** "key=value" (or "reserved:..."), as flows print them, sorted. */
  labels: string[];
}

export interface ProxySnapshot {
  /** Strictly increasing over the proxy's life; weftd seeds it from the clock, so a restarted
   *  weftd is still ahead of what it sent before. */
  version: number;
  balancer: BalancerAlgorithm;
  services: ServicePortConfig[];
  /** "namespace/name:port" → endpoints. Holds every backend a rule names, and every routed
   *  Service port itself (for connections that turn out not to be HTTP: TCP passthrough). */
  backends: Record<string, BackendConfig>;
  /** The sockets to listen on; (address, port) unique; each names a port of `services`. */
  listeners: ListenerConfig[];
  /** Canonical IP → the workload behind it: the pods of the node (clients) and the endpoints
   *  of the backends. An address not here is shown without a workload ("unknown"). */
  workloads: Record<string, WorkloadConfig>;
}

export type SnapshotValidation = { ok: true; value: ProxySnapshot } | { ok: false; error: string; errors: string[] };

// ---- validation ----

const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const SERVICE_NAME = new RegExp(`^${LABEL}/${LABEL}$`);
const NAMESPACE = new RegExp(`^${LABEL}$`);
const OBJECT_NAME = new RegExp(`^${LABEL}/${LABEL}(\\.${LABEL})*$`);
const BACKEND_KEY = new RegExp(`^${LABEL}/${LABEL}:(?<port>[0-9]{1,5})$`);
const LOWER_HEADER_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;
// Far beyond any sane timeout, and well inside what setTimeout accepts.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

function checkRegex(c: Checker, source: string, path: string): void {
  const problem = regexProblem(source);
  if (problem) c.fail(path, problem);
}

function checkHeaderEdits(c: Checker, v: unknown, path: string): HeaderEdits | undefined {
  if (v === undefined) return undefined;
  const o = c.object(v, path) ?? {};
  const names = new Set<string>();
  const name = (n: unknown, at: string): string | undefined => {
    const s = c.text(n, at, { required: true, pattern: LOWER_HEADER_NAME, what: 'a lower-case header name' });
    if (s === undefined) return undefined;
    if (UNMODIFIABLE_HEADERS.has(s))
      return (c.fail(at, `${JSON.stringify(s)} is a connection-level header; it cannot be modified`), undefined);
    if (names.has(s)) return (c.fail(at, `${JSON.stringify(s)} has more than one action`), undefined);
    names.add(s);
    return s;
  };
  const pairs = (field: 'set' | 'add') =>
    c.array(o[field], `${path}.${field}`, { required: true }).flatMap((h, i) => {
      const at = `${path}.${field}[${i}]`;
      const ho = c.object(h, at) ?? {};
      const n = name(ho.name, `${at}.name`);
      const value = c.text(ho.value, `${at}.value`, { required: true });
      if (value !== undefined && HEADER_VALUE_FORBIDDEN.test(value))
        return (c.fail(`${at}.value`, 'must not contain control characters'), []);
      return n === undefined || value === undefined ? [] : [{ name: n, value }];
    });
  const set = pairs('set');
  const add = pairs('add');
  const remove = c.array(o.remove, `${path}.remove`, { required: true }).flatMap((n, i) => {
    const s = name(n, `${path}.remove[${i}]`);
    return s === undefined ? [] : [s];
  });
  return { set, add, remove };
}

function checkValueMatches(c: Checker, v: unknown, path: string, lowerCase: boolean): ValueMatchConfig[] {
  return c.array(v, path, { required: true }).flatMap((m, i) => {
    const at = `${path}[${i}]`;
    const o = c.object(m, at) ?? {};
    const name = c.text(o.name, `${at}.name`, {
      required: true,
      pattern: lowerCase ? LOWER_HEADER_NAME : /^.+$/,
      what: lowerCase ? 'a lower-case header name' : 'a parameter name',
    });
    const type = c.oneOf(o.type, `${at}.type`, ['Exact', 'RegularExpression'] as const);
    const value = c.text(o.value, `${at}.value`, { required: true });
    if (value !== undefined && type === 'RegularExpression') checkRegex(c, value, `${at}.value`);
    return name === undefined || type === undefined || value === undefined ? [] : [{ name, type, value }];
  });
}

function checkHttpMatch(c: Checker, o: Record<string, unknown>, at: string, rule: number): HttpMatchConfig | undefined {
  const p = c.object(o.path, `${at}.path`) ?? {};
  const type = c.oneOf(p.type, `${at}.path.type`, ['Exact', 'PathPrefix', 'RegularExpression'] as const);
  const value = c.text(p.value, `${at}.path.value`, { required: true });
  if (value !== undefined && type === 'RegularExpression') checkRegex(c, value, `${at}.path.value`);
  else if (value !== undefined && !value.startsWith('/'))
    c.fail(`${at}.path.value`, `${JSON.stringify(value)} must start with "/"`);
  else if (value !== undefined && type === 'PathPrefix' && value !== '/' && value.endsWith('/'))
    c.fail(`${at}.path.value`, `${JSON.stringify(value)}: a prefix carries no trailing "/"`);
  const method = o.method === undefined ? undefined : c.oneOf(o.method, `${at}.method`, HTTP_METHODS);
  const headers = checkValueMatches(c, o.headers, `${at}.headers`, true);
  const queryParams = checkValueMatches(c, o.queryParams, `${at}.queryParams`, false);
  if (type === undefined || value === undefined) return undefined;
  return { rule, path: { type, value }, ...(method !== undefined && { method }), headers, queryParams };
}

function checkGrpcMatch(c: Checker, o: Record<string, unknown>, at: string, rule: number): GrpcMatchConfig | undefined {
  let method: GrpcMatchConfig['method'];
  if (o.method !== undefined) {
    const m = c.object(o.method, `${at}.method`) ?? {};
    const type = c.oneOf(m.type, `${at}.method.type`, ['Exact', 'RegularExpression'] as const);
    const part = (field: 'service' | 'method') => {
      if (m[field] === undefined) return undefined;
      const s = c.text(m[field], `${at}.method.${field}`, {
        required: true,
        pattern: /^.+$/,
        what: 'a non-empty string',
      });
      if (s !== undefined && type === 'RegularExpression') checkRegex(c, s, `${at}.method.${field}`);
      return s;
    };
    const service = part('service');
    const name = part('method');
    if (m.service === undefined && m.method === undefined) c.fail(`${at}.method`, 'needs a service, a method or both');
    if (type !== undefined)
      method = { type, ...(service !== undefined && { service }), ...(name !== undefined && { method: name }) };
  }
  const headers = checkValueMatches(c, o.headers, `${at}.headers`, true);
  return { rule, ...(method && { method }), headers };
}

function checkRule(c: Checker, v: unknown, at: string, backends: Record<string, unknown>): RuleConfig {
  const o = c.object(v, at) ?? {};
  const route =
    c.text(o.route, `${at}.route`, { required: true, pattern: OBJECT_NAME, what: 'a "namespace/name"' }) ?? '';
  const rule = c.integer(o.rule, `${at}.rule`, 0, 1000, { required: true }) ?? 0;
  const name = o.name === undefined ? undefined : c.string(o.name, `${at}.name`);
  const choices = c.array(o.backends, `${at}.backends`, { required: true }).map((b, k): BackendChoiceConfig => {
    const bat = `${at}.backends[${k}]`;
    const bo = c.object(b, bat) ?? {};
    const weight = c.integer(bo.weight, `${bat}.weight`, 1, MAX_WEIGHT, { required: true }) ?? 1;
    if ((bo.backend === undefined) === (bo.invalid === undefined))
      c.fail(bat, 'needs exactly one of backend and invalid');
    const backend =
      bo.backend === undefined
        ? undefined
        : c.text(bo.backend, `${bat}.backend`, {
            required: true,
            pattern: BACKEND_KEY,
            what: 'a "namespace/name:port"',
          });
    if (backend !== undefined && !Object.hasOwn(backends, backend))
      c.fail(`${bat}.backend`, `${JSON.stringify(backend)} is not in backends`);
    const invalid =
      bo.invalid === undefined
        ? undefined
        : c.text(bo.invalid, `${bat}.invalid`, { required: true, pattern: /^.+$/s, what: 'a reason' });
    const requestHeaders = checkHeaderEdits(c, bo.requestHeaders, `${bat}.requestHeaders`);
    const responseHeaders = checkHeaderEdits(c, bo.responseHeaders, `${bat}.responseHeaders`);
    return {
      weight,
      ...(backend !== undefined && { backend }),
      ...(invalid !== undefined && { invalid }),
      ...(requestHeaders && { requestHeaders }),
      ...(responseHeaders && { responseHeaders }),
    };
  });
  const requestHeaders = checkHeaderEdits(c, o.requestHeaders, `${at}.requestHeaders`);
  const responseHeaders = checkHeaderEdits(c, o.responseHeaders, `${at}.responseHeaders`);
  const requestTimeoutMs =
    o.requestTimeoutMs === undefined
      ? undefined
      : c.integer(o.requestTimeoutMs, `${at}.requestTimeoutMs`, 0, MAX_TIMEOUT_MS, { required: true });
  const backendRequestTimeoutMs =
    o.backendRequestTimeoutMs === undefined
      ? undefined
      : c.integer(o.backendRequestTimeoutMs, `${at}.backendRequestTimeoutMs`, 0, MAX_TIMEOUT_MS, { required: true });
  if (
    requestTimeoutMs &&
    backendRequestTimeoutMs !== undefined &&
    (backendRequestTimeoutMs === 0 || backendRequestTimeoutMs > requestTimeoutMs)
  ) {
    c.fail(
      `${at}.backendRequestTimeoutMs`,
      `${backendRequestTimeoutMs} is longer than requestTimeoutMs ${requestTimeoutMs}`,
    );
  }
  return {
    route,
    rule,
    ...(name !== undefined && { name }),
    backends: choices,
    ...(requestHeaders && { requestHeaders }),
    ...(responseHeaders && { responseHeaders }),
    ...(requestTimeoutMs !== undefined && { requestTimeoutMs }),
    ...(backendRequestTimeoutMs !== undefined && { backendRequestTimeoutMs }),
  };
}

function checkServicePort(
  c: Checker,
  v: unknown,
  at: string,
  backends: Record<string, unknown>,
): ServicePortConfig | undefined {
  const o = c.object(v, at) ?? {};
  const service = c.text(o.service, `${at}.service`, {
    required: true,
    pattern: SERVICE_NAME,
    what: 'a "namespace/name"',
  });
  const port = c.port(o.port, `${at}.port`, { required: true });
  const portName = c.string(o.portName, `${at}.portName`, { required: true });
  const protocol = c.oneOf(o.protocol, `${at}.protocol`, ['http', 'grpc'] as const);
  const addresses = c.array(o.addresses, `${at}.addresses`, { required: true }).flatMap((a, i) => {
    const fam = c.ip(a, `${at}.addresses[${i}]`);
    return fam === undefined ? [] : [canonicalIp(a as string)];
  });
  const rules = c
    .array(o.rules, `${at}.rules`, { required: true })
    .map((r, i) => checkRule(c, r, `${at}.rules[${i}]`, backends));
  const checkMatches = (v: unknown, mat: string) =>
    c.array(v, mat, { required: true }).flatMap((m, i) => {
      const mi = `${mat}[${i}]`;
      const mo = c.object(m, mi) ?? {};
      const rule = rules.length
        ? c.integer(mo.rule, `${mi}.rule`, 0, rules.length - 1, { required: true })
        : (c.fail(`${mi}.rule`, 'there are no rules to name'), undefined);
      if (rule === undefined || protocol === undefined) return [];
      const match = protocol === 'http' ? checkHttpMatch(c, mo, mi, rule) : checkGrpcMatch(c, mo, mi, rule);
      return match ? [match] : [];
    });
  const matches = checkMatches(o.matches, `${at}.matches`);
  const seen = new Set<string>();
  const consumers =
    o.consumers === undefined
      ? undefined
      : c.array(o.consumers, `${at}.consumers`).flatMap((v, i) => {
          const cat = `${at}.consumers[${i}]`;
          const co = c.object(v, cat) ?? {};
          const namespace = c.text(co.namespace, `${cat}.namespace`, {
            required: true,
            pattern: NAMESPACE,
            what: 'a namespace name',
          });
          if (namespace !== undefined && seen.has(namespace))
            c.fail(`${cat}.namespace`, `${namespace} is listed twice`);
          if (namespace !== undefined) seen.add(namespace);
          const cm = checkMatches(co.matches, `${cat}.matches`);
          return namespace === undefined ? [] : [{ namespace, matches: cm }];
        });
  const fallback = o.fallback === undefined ? undefined : c.oneOf(o.fallback, `${at}.fallback`, ['forward'] as const);
  if (
    fallback !== undefined &&
    service !== undefined &&
    port !== undefined &&
    !Object.hasOwn(backends, `${service}:${port}`)
  ) {
    c.fail(`${at}.fallback`, `the Service port ${service}:${port} is not in backends`);
  }
  if (service === undefined || port === undefined || portName === undefined || protocol === undefined) return undefined;
  const base = { service, port, portName, addresses, rules, ...(fallback !== undefined && { fallback }) };
  return protocol === 'http'
    ? {
        ...base,
        protocol,
        matches: matches as HttpMatchConfig[],
        ...(consumers && { consumers: consumers as ConsumerMatches<HttpMatchConfig>[] }),
      }
    : {
        ...base,
        protocol,
        matches: matches as GrpcMatchConfig[],
        ...(consumers && { consumers: consumers as ConsumerMatches<GrpcMatchConfig>[] }),
      };
}

function checkBackends(c: Checker, v: unknown): Record<string, BackendConfig> {
  const o = c.object(v, 'backends') ?? {};
  const out: Record<string, BackendConfig> = {};
  for (const [key, b] of Object.entries(o)) {
    const at = `backends[${JSON.stringify(key)}]`;
    const m = BACKEND_KEY.exec(key);
    if (!m || Number(m.groups!.port) < 1 || Number(m.groups!.port) > 65535) {
      c.fail(at, 'the key is not a "namespace/name:port"');
      continue;
    }
    const bo = c.object(b, at) ?? {};
    const protocol = c.oneOf(bo.protocol, `${at}.protocol`, BACKEND_PROTOCOLS);
    const seen = new Set<string>();
    const endpoints = c.array(bo.endpoints, `${at}.endpoints`, { required: true }).flatMap((e, i) => {
      const eat = `${at}.endpoints[${i}]`;
      const eo = c.object(e, eat) ?? {};
      const ip =
        typeof eo.ip === 'string' && parseIp(eo.ip) ? canonicalIp(eo.ip) : (c.ip(eo.ip, `${eat}.ip`), undefined);
      const port = c.port(eo.port, `${eat}.port`, { required: true });
      if (ip === undefined || port === undefined) return [];
      if (seen.has(`${ip} ${port}`)) return (c.fail(eat, `${ip} port ${port} is listed twice`), []);
      seen.add(`${ip} ${port}`);
      return [{ ip, port }];
    });
    if (protocol !== undefined) out[key] = { protocol, endpoints };
  }
  return out;
}

function checkListeners(c: Checker, v: unknown, services: readonly ServicePortConfig[]): ListenerConfig[] {
  const ports = new Set(services.map((s) => `${s.service}:${s.port}`));
  const sockets = new Map<string, number>();
  return c.array(v, 'listeners', { required: true }).flatMap((l, i) => {
    const at = `listeners[${i}]`;
    const o = c.object(l, at) ?? {};
    const family = c.ip(o.address, `${at}.address`);
    const port = c.port(o.port, `${at}.port`, { required: true });
    const service = c.text(o.service, `${at}.service`, {
      required: true,
      pattern: SERVICE_NAME,
      what: 'a "namespace/name"',
    });
    const servicePort = c.port(o.servicePort, `${at}.servicePort`, { required: true });
    if (family === undefined || port === undefined || service === undefined || servicePort === undefined) return [];
    const address = canonicalIp(o.address as string);
    if (!ports.has(`${service}:${servicePort}`))
      c.fail(`${at}.servicePort`, `${service}:${servicePort} is not in services`);
    const socket = `${address} ${port}`;
    const first = sockets.get(socket);
    if (first !== undefined) c.fail(at, `${address} port ${port} is also listeners[${first}]'s`);
    else sockets.set(socket, i);
    return [{ address, port, service, servicePort }];
  });
}

const MAX_IDENTITY = 2 ** 32 - 1;

function checkWorkloads(c: Checker, v: unknown): Record<string, WorkloadConfig> {
  const o = c.object(v, 'workloads') ?? {};
  const out: Record<string, WorkloadConfig> = {};
  for (const [key, w] of Object.entries(o)) {
    const at = `workloads[${JSON.stringify(key)}]`;
    if (!parseIp(key)) {
      c.fail(at, 'the key is not an IP address');
      continue;
    }
    const ip = canonicalIp(key);
    if (Object.hasOwn(out, ip)) {
      c.fail(at, `${ip} is listed twice`);
      continue;
    }
    const wo = c.object(w, at) ?? {};
    const namespace =
      wo.namespace === undefined
        ? undefined
        : c.text(wo.namespace, `${at}.namespace`, {
            required: true,
            pattern: new RegExp(`^${LABEL}$`),
            what: 'a namespace name',
          });
    const pod =
      wo.pod === undefined
        ? undefined
        : c.text(wo.pod, `${at}.pod`, {
            required: true,
            pattern: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
            what: 'a pod name',
          });
    const identity = c.integer(wo.identity, `${at}.identity`, 0, MAX_IDENTITY, { required: true });
    const labels = c.array(wo.labels, `${at}.labels`, { required: true }).flatMap((l, k) => {
      const s = c.text(l, `${at}.labels[${k}]`, {
        required: true,
        pattern: /^\S+$/,
        what: 'a label ("key=value", or "reserved:..."), without spaces',
      });
      return s === undefined ? [] : [s];
    });
    if (identity === undefined) continue;
    out[ip] = { ...(namespace !== undefined && { namespace }), ...(pod !== undefined && { pod }), identity, labels };
  }
  return out;
}

/** A snapshot checked in full: every field, every cross-reference, every regex. */
export function validateSnapshot(raw: unknown): SnapshotValidation {
  const c = new Checker();
  if (!isObj(raw))
    return { ok: false, error: '(snapshot): must be an object', errors: ['(snapshot): must be an object'] };
  const version = c.integer(raw.version, 'version', 1, Number.MAX_SAFE_INTEGER, { required: true });
  const balancer = raw.balancer === undefined ? 'peak-ewma' : c.oneOf(raw.balancer, 'balancer', BALANCER_ALGORITHMS);
  const rawBackends = isObj(raw.backends) ? raw.backends : {};
  const backends = checkBackends(c, raw.backends);
  const services = c.array(raw.services, 'services', { required: true }).flatMap((s, i) => {
    const sp = checkServicePort(c, s, `services[${i}]`, rawBackends);
    return sp ? [sp] : [];
  });
  // One service port per name and per destination: the proxy must find exactly one.
  const names = new Map<string, number>();
  const destinations = new Map<string, number>();
  services.forEach((s, i) => {
    const name = `${s.service}:${s.port}`;
    if (names.has(name)) c.fail(`services[${i}]`, `${name} is also services[${names.get(name)}]`);
    names.set(name, i);
    for (const a of s.addresses) {
      const dest = `${a} ${s.port}`;
      const first = destinations.get(dest);
      if (first !== undefined && first !== i)
        c.fail(`services[${i}].addresses`, `${a} port ${s.port} is also services[${first}]'s`);
      destinations.set(dest, i);
    }
  });
  const listeners = checkListeners(c, raw.listeners, services);
  const workloads = checkWorkloads(c, raw.workloads);
  if (c.errors.length || version === undefined || balancer === undefined) {
    const errors = c.errors.length ? c.errors : ['(snapshot): invalid'];
    return { ok: false, error: errors.join('; '), errors };
  }
  return { ok: true, value: { version, balancer, services, backends, listeners, workloads } };
}

/** The next snapshot to run, or why the running one stays: invalid, or not newer. */
export function acceptSnapshot(running: ProxySnapshot | undefined, raw: unknown): SnapshotValidation {
  const v = validateSnapshot(raw);
  if (v.ok && running && v.value.version <= running.version) {
    const error = `version: ${v.value.version} is not newer than the running snapshot's ${running.version}`;
    return { ok: false, error, errors: [error] };
  }
  return v;
}
