// Gateway API v1 routes: HTTPRoute and GRPCRoute specs validated with the CRD's OpenAPI and CEL
// rules (and the upstream webhook's), defaults filled in, every problem named by field; and
// ReferenceGrants. Validated once, as a source reads them: the store holds the typed result
// (./spec.ts), which the route table (./compile.ts) compiles as it is. Validating a normalized
// spec again gives it back unchanged.
//
// Weft serves the mesh profile (a Service as parent) and implements the header-modifier filters
// only. A route that asks for something Weft cannot do (another filter, retries, session
// persistence) is refused with a message saying so, rather than accepted and half-applied: the
// spec wants such rules not accepted, and a route that silently routes differently from what
// it says is worse than one refused with a log line.
import {
  HEADER_VALUE_FORBIDDEN,
  HTTP_METHODS,
  MAX_WEIGHT,
  UNMODIFIABLE_HEADERS,
  regexProblem,
} from '../../contract/proxy-snapshot.js';
import { Checker, DNS1123_LABEL, DNS1123_SUBDOMAIN, isObj, type Obj, type Validation } from '../../lib/checker.js';
import { checkMeta } from '../meta.js';
import type { GRPCRoute, HTTPRoute, ReferenceGrant } from '../resources.js';
import type {
  BackendRef,
  GRPCMethodMatch,
  GRPCRouteMatch,
  GRPCRouteRule,
  GRPCRouteSpec,
  HTTPHeader,
  HTTPPathMatch,
  HTTPRouteMatch,
  HTTPRouteRule,
  HTTPRouteSpec,
  HeaderModifier,
  NameValueMatch,
  ParentRef,
  RouteFilter,
  RouteKind,
  RouteTimeouts,
} from './spec.js';

export type RouteSpecResult = { ok: true; value: HTTPRouteSpec | GRPCRouteSpec } | { ok: false; errors: string[] };

// ---- the CRD's limits and patterns ----

const MAX_PARENT_REFS = 32;
const MAX_HOSTNAMES = 16;
const MAX_RULES = 16;
const MAX_HTTP_MATCHES = 64;
const MAX_GRPC_MATCHES = 8;
const MAX_TOTAL_MATCHES = 128;
const MAX_HEADER_MATCHES = 16;
const MAX_FILTERS = 16;
const MAX_BACKEND_REFS = 16;
const MAX_MODIFIER_ITEMS = 16;

const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SECTION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

const HTTP_FILTER_TYPES = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
  'ExtensionRef',
  'CORS',
  'ExternalAuth',
];
const GRPC_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef'];
// The union member each filter type carries its settings in.
const FILTER_FIELDS: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
};

/** Milliseconds of a Gateway API duration ("1h", "10s", "500ms", "1m30s"), or undefined. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms;
}

const HEADER_NAME_OPTS = {
  required: true,
  min: 1,
  max: 256,
  pattern: HEADER_NAME,
  what: "a header name (letters, digits and !#$%&'*+-.^_`|~)",
};

// ---- common parts ----

function checkParentRefs(c: Checker, v: unknown, path: string): ParentRef[] {
  const indexed = c.array(v, path, { max: MAX_PARENT_REFS }).flatMap((p, i): { ref: ParentRef; i: number }[] => {
    const at = `${path}[${i}]`;
    const o = c.object(p, at);
    if (!o) return [];
    const group =
      c.text(o.group, `${at}.group`, { max: 253, pattern: GROUP, what: 'an API group ("" for core)' }) ??
      'gateway.networking.k8s.io';
    const kind = c.text(o.kind, `${at}.kind`, { min: 1, max: 63, pattern: KIND, what: 'a kind' }) ?? 'Gateway';
    const namespace = c.text(o.namespace, `${at}.namespace`, {
      min: 1,
      max: 63,
      pattern: NAMESPACE,
      what: 'a namespace (an RFC 1123 label)',
    });
    const name = c.text(o.name, `${at}.name`, { required: true, min: 1, max: 253 });
    const sectionName = c.text(o.sectionName, `${at}.sectionName`, {
      min: 1,
      max: 253,
      pattern: SECTION_NAME,
      what: 'a section name (an RFC 1123 subdomain)',
    });
    const port = c.port(o.port, `${at}.port`);
    if (name === undefined) return [];
    return [
      {
        ref: {
          group,
          kind,
          ...(namespace !== undefined && { namespace }),
          name,
          ...(sectionName !== undefined && { sectionName }),
          ...(port !== undefined && { port }),
        },
        i,
      },
    ];
  });
  // The CRD's distinctness rule: refs to one parent must set the same optional fields, to
  // different values.
  const byParent = new Map<string, { ref: ParentRef; i: number }[]>();
  for (const { ref, i } of indexed) {
    const key = `${ref.group}\0${ref.kind}\0${ref.namespace ?? ''}\0${ref.name}`;
    const same = byParent.get(key) ?? [];
    const first = same[0]?.ref;
    if (
      first &&
      ((first.sectionName === undefined) !== (ref.sectionName === undefined) ||
        (first.port === undefined) !== (ref.port === undefined))
    ) {
      c.fail(
        `${path}[${i}]`,
        `sectionName or port must be specified when parentRefs includes 2 or more references to the same parent (as ${path}[${same[0]!.i}] does)`,
      );
    } else if (same.some((s) => s.ref.sectionName === ref.sectionName && s.ref.port === ref.port)) {
      c.fail(
        `${path}[${i}]`,
        'sectionName or port must be unique when parentRefs includes 2 or more references to the same parent',
      );
    }
    same.push({ ref, i });
    byParent.set(key, same);
  }
  return indexed.map((x) => x.ref);
}

function checkHostnames(c: Checker, v: unknown, path: string): string[] {
  return c.array(v, path, { max: MAX_HOSTNAMES }).flatMap((h, i) => {
    const s = c.text(h, `${path}[${i}]`, {
      required: true,
      min: 1,
      max: 253,
      pattern: HOSTNAME,
      what: 'a hostname (RFC 1123, optionally starting with "*.")',
    });
    return s === undefined ? [] : [s];
  });
}

/** Header or query parameter matches; names compared case-insensitively for headers. */
function checkValueMatches(
  c: Checker,
  v: unknown,
  path: string,
  what: 'header' | 'query parameter',
  maxValue: number,
): NameValueMatch[] {
  const seen = new Map<string, number>();
  return c.array(v, path, { max: MAX_HEADER_MATCHES }).flatMap((m, i): NameValueMatch[] => {
    const at = `${path}[${i}]`;
    const o = c.object(m, at);
    if (!o) return [];
    const type = c.oneOf(o.type, `${at}.type`, ['Exact', 'RegularExpression'] as const, 'Exact');
    const name = c.text(o.name, `${at}.name`, HEADER_NAME_OPTS);
    const value = c.text(o.value, `${at}.value`, { required: true, min: 1, max: maxValue });
    if (value !== undefined && type === 'RegularExpression' && regexProblem(value))
      c.fail(`${at}.value`, regexProblem(value)!);
    if (value !== undefined && what === 'header' && HEADER_VALUE_FORBIDDEN.test(value))
      c.fail(`${at}.value`, 'must not contain control characters');
    if (name === undefined || value === undefined) return [];
    // Header names are case-insensitive, query parameter names are not (the upstream webhook's rule).
    const key = what === 'header' ? name.toLowerCase() : name;
    const first = seen.get(key);
    if (first !== undefined)
      return (
        c.fail(
          `${at}.name`,
          `${JSON.stringify(name)} is already matched by ${path}[${first}]; each ${what} at most once`,
        ),
        []
      );
    seen.set(key, i);
    return type === undefined ? [] : [{ type, name, value }];
  });
}

function checkHeaderModifier(c: Checker, v: unknown, path: string): HeaderModifier {
  const o = c.object(v, path) ?? {};
  // Only one action per header name (case-insensitive), across set, add and remove.
  const actions = new Map<string, string>();
  const claim = (name: string, at: string): boolean => {
    const lower = name.toLowerCase();
    if (UNMODIFIABLE_HEADERS.has(lower))
      return (
        c.fail(at, `${JSON.stringify(name)} is a connection-level header the proxy manages; it cannot be modified`),
        false
      );
    const first = actions.get(lower);
    if (first !== undefined)
      return (
        c.fail(
          at,
          `${JSON.stringify(name)} already has an action in this filter (${first}); one action per header name`,
        ),
        false
      );
    actions.set(lower, at.slice(path.length + 1));
    return true;
  };
  const headers = (field: 'set' | 'add'): HTTPHeader[] =>
    c.array(o[field], `${path}.${field}`, { max: MAX_MODIFIER_ITEMS }).flatMap((h, i): HTTPHeader[] => {
      const at = `${path}.${field}[${i}]`;
      const ho = c.object(h, at);
      if (!ho) return [];
      const name = c.text(ho.name, `${at}.name`, HEADER_NAME_OPTS);
      const value = c.text(ho.value, `${at}.value`, { required: true, min: 1, max: 4096 });
      if (value !== undefined && HEADER_VALUE_FORBIDDEN.test(value))
        return (c.fail(`${at}.value`, 'must not contain control characters'), []);
      if (name === undefined || value === undefined || !claim(name, `${at}.name`)) return [];
      return [{ name, value }];
    });
  const set = headers('set');
  const add = headers('add');
  const remove = c.array(o.remove, `${path}.remove`, { max: MAX_MODIFIER_ITEMS }).flatMap((n, i) => {
    const at = `${path}.remove[${i}]`;
    const name = c.text(n, at, HEADER_NAME_OPTS);
    return name !== undefined && claim(name, at) ? [name] : [];
  });
  return { set, add, remove };
}

function checkFilters(c: Checker, v: unknown, path: string, kind: RouteKind): RouteFilter[] {
  const known = kind === 'HTTPRoute' ? HTTP_FILTER_TYPES : GRPC_FILTER_TYPES;
  const seen = new Set<string>();
  return c.array(v, path, { max: MAX_FILTERS }).flatMap((f, i): RouteFilter[] => {
    const at = `${path}[${i}]`;
    const o = c.object(f, at);
    if (!o) return [];
    const type = c.string(o.type, `${at}.type`, { required: true });
    if (type === undefined) return [];
    if (!known.includes(type))
      return (c.fail(`${at}.type`, `${JSON.stringify(type)} is not one of ${known.join(', ')}`), []);
    if (type !== 'RequestHeaderModifier' && type !== 'ResponseHeaderModifier') {
      return (
        c.fail(
          `${at}.type`,
          `${type} filters are not supported by Weft (only RequestHeaderModifier and ResponseHeaderModifier); ` +
            'the route is refused rather than applied without it',
        ),
        []
      );
    }
    // The union: the settings of the named type, and no other type's.
    for (const [other, field] of Object.entries(FILTER_FIELDS)) {
      if (other !== type && o[field] !== undefined && o[field] !== null)
        c.fail(`${at}.${field}`, `must not be set when type is ${type}`);
    }
    const field = FILTER_FIELDS[type]!;
    if (o[field] === undefined || o[field] === null)
      return (c.fail(`${at}.${field}`, `required when type is ${type}`), []);
    if (seen.has(type)) return (c.fail(`${at}.type`, `${type} filter cannot be repeated`), []);
    seen.add(type);
    const modifier = checkHeaderModifier(c, o[field], `${at}.${field}`);
    return [
      type === 'RequestHeaderModifier'
        ? { type, requestHeaderModifier: modifier }
        : { type, responseHeaderModifier: modifier },
    ];
  });
}

function checkBackendRefs(c: Checker, v: unknown, path: string, kind: RouteKind): BackendRef[] {
  return c.array(v, path, { max: MAX_BACKEND_REFS }).flatMap((b, i): BackendRef[] => {
    const at = `${path}[${i}]`;
    const o = c.object(b, at);
    if (!o) return [];
    const group =
      c.text(o.group, `${at}.group`, { max: 253, pattern: GROUP, what: 'an API group ("" for core)' }) ?? '';
    const refKind = c.text(o.kind, `${at}.kind`, { min: 1, max: 63, pattern: KIND, what: 'a kind' }) ?? 'Service';
    const name = c.text(o.name, `${at}.name`, { required: true, min: 1, max: 253 });
    const namespace = c.text(o.namespace, `${at}.namespace`, {
      min: 1,
      max: 63,
      pattern: NAMESPACE,
      what: 'a namespace (an RFC 1123 label)',
    });
    const port = c.port(o.port, `${at}.port`);
    if (port === undefined && group === '' && refKind === 'Service' && (o.port === undefined || o.port === null)) {
      c.fail(`${at}.port`, "required for a Service backend (the Service's port, not its target port)");
    }
    const weight = c.integer(o.weight, `${at}.weight`, 0, MAX_WEIGHT) ?? 1;
    const filters = checkFilters(c, o.filters, `${at}.filters`, kind);
    if (name === undefined) return [];
    return [
      {
        group,
        kind: refKind,
        name,
        ...(namespace !== undefined && { namespace }),
        ...(port !== undefined && { port }),
        weight,
        filters,
      },
    ];
  });
}

function checkRuleName(c: Checker, v: unknown, path: string, names: Map<string, string>): string | undefined {
  const name = c.text(v, path, {
    min: 1,
    max: 253,
    pattern: SECTION_NAME,
    what: 'a rule name (an RFC 1123 subdomain)',
  });
  if (name === undefined) return undefined;
  const first = names.get(name);
  if (first !== undefined)
    c.fail(path, `${JSON.stringify(name)} is also the name of ${first}; rule names must be unique within the route`);
  else names.set(name, path.slice(0, -'.name'.length));
  return name;
}

/** Fields a rule may carry that Weft does not implement: refused, not ignored. */
function refuseUnsupported(c: Checker, o: Record<string, unknown>, at: string, fields: readonly string[]): void {
  for (const f of fields)
    if (o[f] !== undefined && o[f] !== null)
      c.fail(`${at}.${f}`, 'not supported by Weft yet; the route is refused rather than applied without it');
}

function checkTotalMatches(c: Checker, rules: { matches: unknown[] }[], path: string): void {
  const total = rules.reduce((n, r) => n + r.matches.length, 0);
  if (total > MAX_TOTAL_MATCHES) c.fail(path, `at most ${MAX_TOTAL_MATCHES} matches across all rules, got ${total}`);
}

// ---- HTTPRoute ----

function checkPathMatch(c: Checker, v: unknown, path: string): HTTPPathMatch {
  if (v === undefined || v === null) return { type: 'PathPrefix', value: '/' };
  const o = c.object(v, path) ?? {};
  const type = c.oneOf(o.type, `${path}.type`, ['Exact', 'PathPrefix', 'RegularExpression'] as const, 'PathPrefix');
  const value = c.text(o.value, `${path}.value`, { max: 1024 }) ?? '/';
  const at = `${path}.value`;
  if (type === 'RegularExpression') {
    if (regexProblem(value)) c.fail(at, regexProblem(value)!);
  } else if (!value.startsWith('/')) c.fail(at, `${JSON.stringify(value)} must be an absolute path, starting with "/"`);
  else {
    for (const seq of ['//', '/./', '/../', '%2f', '%2F', '#'])
      if (value.includes(seq)) c.fail(at, `${JSON.stringify(value)} must not contain ${JSON.stringify(seq)}`);
    for (const end of ['/..', '/.'])
      if (value.endsWith(end)) c.fail(at, `${JSON.stringify(value)} must not end with ${JSON.stringify(end)}`);
    if (!PATH_CHARS.test(value))
      c.fail(
        at,
        `${JSON.stringify(value)} must only contain path characters (letters, digits, -._~!$&'()*+,;=:@/ and %XX escapes)`,
      );
  }
  // An unknown type is an error already.
  return { type: type ?? 'PathPrefix', value };
}

function checkHTTPMatches(c: Checker, v: unknown, path: string): HTTPRouteMatch[] {
  const given = c.array(v, path, { max: MAX_HTTP_MATCHES });
  const matches = given.flatMap((m, i): HTTPRouteMatch[] => {
    const at = `${path}[${i}]`;
    const o = c.object(m, at);
    if (!o) return [];
    const pathMatch = checkPathMatch(c, o.path, `${at}.path`);
    const headers = checkValueMatches(c, o.headers, `${at}.headers`, 'header', 4096);
    const queryParams = checkValueMatches(c, o.queryParams, `${at}.queryParams`, 'query parameter', 1024);
    const method =
      o.method === undefined || o.method === null ? undefined : c.oneOf(o.method, `${at}.method`, HTTP_METHODS, 'GET');
    return [{ path: pathMatch, headers, queryParams, ...(method !== undefined && { method }) }];
  });
  // No matches is one PathPrefix "/" match (the CRD's default): every request.
  return given.length > 0 ? matches : [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }];
}

function checkTimeouts(c: Checker, v: unknown, path: string): RouteTimeouts | undefined {
  if (v === undefined || v === null) return undefined;
  const o = c.object(v, path);
  if (!o) return undefined;
  const duration = (field: 'request' | 'backendRequest'): [string, number] | undefined => {
    const s = c.string(o[field], `${path}.${field}`);
    if (s === undefined) return undefined;
    const ms = parseDuration(s);
    if (ms === undefined)
      return (
        c.fail(
          `${path}.${field}`,
          `${JSON.stringify(s)} is not a duration (1 to 4 of a number of at most 5 digits and h, m, s or ms: "10s", "500ms", "1m30s")`,
        ),
        undefined
      );
    return [s, ms];
  };
  const request = duration('request');
  const backendRequest = duration('backendRequest');
  if (request && backendRequest && request[1] !== 0 && backendRequest[1] > request[1]) {
    c.fail(`${path}.backendRequest`, `${backendRequest[0]} is longer than the request timeout ${request[0]}`);
  }
  return { ...(request && { request: request[0] }), ...(backendRequest && { backendRequest: backendRequest[0] }) };
}

export function checkHTTPRouteSpec(c: Checker, v: unknown, path = 'spec'): HTTPRouteSpec {
  const o = c.object(v, path) ?? {};
  const parentRefs = checkParentRefs(c, o.parentRefs, `${path}.parentRefs`);
  const hostnames = checkHostnames(c, o.hostnames, `${path}.hostnames`);
  const names = new Map<string, string>();
  // An absent rules list is the CRD's default: one rule matching every request (and, with no
  // backends, answering 500).
  const rawRules =
    o.rules === undefined || o.rules === null ? [{}] : c.array(o.rules, `${path}.rules`, { max: MAX_RULES });
  const rules = rawRules.flatMap((r, i): HTTPRouteRule[] => {
    const at = `${path}.rules[${i}]`;
    const ro = c.object(r, at);
    if (!ro) return [];
    const name = checkRuleName(c, ro.name, `${at}.name`, names);
    const matches = checkHTTPMatches(c, ro.matches, `${at}.matches`);
    const filters = checkFilters(c, ro.filters, `${at}.filters`, 'HTTPRoute');
    const backendRefs = checkBackendRefs(c, ro.backendRefs, `${at}.backendRefs`, 'HTTPRoute');
    const timeouts = checkTimeouts(c, ro.timeouts, `${at}.timeouts`);
    refuseUnsupported(c, ro, at, ['retry', 'sessionPersistence']);
    return [{ ...(name !== undefined && { name }), matches, filters, backendRefs, ...(timeouts && { timeouts }) }];
  });
  checkTotalMatches(c, rules, `${path}.rules`);
  return { parentRefs, hostnames, rules };
}

// ---- GRPCRoute ----

function checkGRPCMethod(c: Checker, v: unknown, path: string): GRPCMethodMatch | undefined {
  if (v === undefined || v === null) return undefined;
  const o = c.object(v, path);
  if (!o) return undefined;
  const type = c.oneOf(o.type, `${path}.type`, ['Exact', 'RegularExpression'] as const, 'Exact');
  // Empty and omitted both mean "any".
  const part = (field: 'service' | 'method', exact: RegExp, what: string): string | undefined => {
    const s = c.text(o[field], `${path}.${field}`, { max: 1024 });
    if (!s) return undefined;
    if (type === 'Exact' && !exact.test(s))
      return (c.fail(`${path}.${field}`, `${JSON.stringify(s)} is not ${what}`), undefined);
    if (type === 'RegularExpression' && regexProblem(s))
      return (c.fail(`${path}.${field}`, regexProblem(s)!), undefined);
    return s;
  };
  const service = part('service', GRPC_SERVICE, 'a gRPC service name (like "pkg.v1.Service")');
  const method = part('method', GRPC_METHOD, 'a gRPC method name (letters, digits and _)');
  if (!o.service && !o.method) c.fail(path, "one or both of 'service' or 'method' must be specified");
  return type === undefined
    ? undefined
    : { type, ...(service !== undefined && { service }), ...(method !== undefined && { method }) };
}

export function checkGRPCRouteSpec(c: Checker, v: unknown, path = 'spec'): GRPCRouteSpec {
  const o = c.object(v, path) ?? {};
  const parentRefs = checkParentRefs(c, o.parentRefs, `${path}.parentRefs`);
  const hostnames = checkHostnames(c, o.hostnames, `${path}.hostnames`);
  const names = new Map<string, string>();
  const rules = c.array(o.rules, `${path}.rules`, { max: MAX_RULES }).flatMap((r, i): GRPCRouteRule[] => {
    const at = `${path}.rules[${i}]`;
    const ro = c.object(r, at);
    if (!ro) return [];
    const name = checkRuleName(c, ro.name, `${at}.name`, names);
    const matches = c
      .array(ro.matches, `${at}.matches`, { max: MAX_GRPC_MATCHES })
      .flatMap((m, j): GRPCRouteMatch[] => {
        const mat = `${at}.matches[${j}]`;
        const mo = c.object(m, mat);
        if (!mo) return [];
        const method = checkGRPCMethod(c, mo.method, `${mat}.method`);
        const headers = checkValueMatches(c, mo.headers, `${mat}.headers`, 'header', 4096);
        return [{ ...(method && { method }), headers }];
      });
    const filters = checkFilters(c, ro.filters, `${at}.filters`, 'GRPCRoute');
    const backendRefs = checkBackendRefs(c, ro.backendRefs, `${at}.backendRefs`, 'GRPCRoute');
    refuseUnsupported(c, ro, at, ['sessionPersistence']);
    return [{ ...(name !== undefined && { name }), matches, filters, backendRefs }];
  });
  checkTotalMatches(c, rules, `${path}.rules`);
  return { parentRefs, hostnames, rules };
}

/** A route's spec, normalized; errors name the field from `spec`. */
export function validateRouteSpec(kind: RouteKind, raw: unknown): RouteSpecResult {
  const c = new Checker();
  const value = kind === 'HTTPRoute' ? checkHTTPRouteSpec(c, raw) : checkGRPCRouteSpec(c, raw);
  return c.errors.length ? { ok: false, errors: c.errors } : { ok: true, value };
}

// ---- the objects ----

const ROUTE_API_VERSION = 'gateway.networking.k8s.io/v1' as const;

function validateRouteOf<K extends RouteKind, S>(raw: Obj, kind: K, checkSpec: (c: Checker, v: unknown) => S) {
  const c = new Checker();
  // Kept: the older route wins precedence ties (./compile.ts).
  const metadata = checkMeta(c, raw, DNS1123_SUBDOMAIN, { creationTimestamp: true });
  const spec = isObj(raw.spec) ? checkSpec(c, raw.spec) : (c.fail('spec', 'required'), undefined);
  if (c.errors.length || spec === undefined) return { ok: false as const, errors: c.errors };
  return { ok: true as const, value: { apiVersion: ROUTE_API_VERSION, kind, metadata, spec } };
}

/** An HTTPRoute as the store holds it: metadata checked, spec validated and normalized. */
export function validateHTTPRoute(raw: Obj): Validation<HTTPRoute> {
  return validateRouteOf(raw, 'HTTPRoute', checkHTTPRouteSpec);
}

/** A GRPCRoute as the store holds it: metadata checked, spec validated and normalized. */
export function validateGRPCRoute(raw: Obj): Validation<GRPCRoute> {
  return validateRouteOf(raw, 'GRPCRoute', checkGRPCRouteSpec);
}

/** ReferenceGrant (Gateway API): 1 to 16 `from` entries (group, kind, namespace) and 1 to 16
 *  `to` entries (group, kind, optional name), as the CRD's schema bounds them. */
export function validateReferenceGrant(raw: Obj): Validation<ReferenceGrant> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1123_SUBDOMAIN);
  const spec = isObj(raw.spec) ? raw.spec : (c.fail('spec', 'required'), {});
  const entries = (field: 'from' | 'to') => {
    const list = c.array(spec[field], `spec.${field}`, { required: true });
    if (list.length < 1 || list.length > 16) c.fail(`spec.${field}`, `${list.length} entries: want 1 to 16`);
    return list.flatMap((e, i): { group: string; kind: string; namespace?: string; name?: string }[] => {
      const at = `spec.${field}[${i}]`;
      if (!isObj(e)) return (c.fail(at, 'not an object'), []);
      const group = c.string(e.group, `${at}.group`, { required: true });
      const kind = c.string(e.kind, `${at}.kind`, { required: true });
      if (kind === '') c.fail(`${at}.kind`, 'empty');
      if (field === 'from') {
        const namespace = c.string(e.namespace, `${at}.namespace`, { required: true });
        if (namespace !== undefined && !DNS1123_LABEL.re.test(namespace))
          c.fail(`${at}.namespace`, `${JSON.stringify(namespace)} is not a namespace name`);
        return group === undefined || kind === undefined || namespace === undefined ? [] : [{ group, kind, namespace }];
      }
      const name = c.string(e.name, `${at}.name`);
      if (name === '') c.fail(`${at}.name`, 'empty (leave it out to grant every object of the kind)');
      return group === undefined || kind === undefined ? [] : [{ group, kind, ...(name !== undefined && { name }) }];
    });
  };
  const from = entries('from') as ReferenceGrant['spec']['from'];
  const to = entries('to') as ReferenceGrant['spec']['to'];
  if (c.errors.length) return { ok: false, errors: c.errors };
  return {
    ok: true,
    value: {
      apiVersion: raw.apiVersion as ReferenceGrant['apiVersion'],
      kind: 'ReferenceGrant',
      metadata,
      spec: { from, to },
    },
  };
}
