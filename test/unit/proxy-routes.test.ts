// L7 routes: validation with the Gateway API's rules and defaults, the route table's
// attachment and precedence, and per-request matching.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpMatchConfig, ServicePortConfig } from '../../src/contract/proxy-snapshot.js';
import {
  applyHeaderEdits,
  compileServiceRouter,
  parseQuery,
  ProxyRouter,
  type RouteDecision,
  type RouteRequest,
} from '../../src/proxy/route-match.js';
import type { HTTPRoute, ReferenceGrant, Service } from '../../src/state/resources.js';
import { compileRoutes, type Route } from '../../src/state/routes/compile.js';
import type { GRPCRouteSpec, HTTPRouteSpec } from '../../src/state/routes/spec.js';
import { parseDuration, validateRouteSpec } from '../../src/state/routes/validate.js';
import { validateResource } from '../../src/state/validate.js';
import { seeded } from '../harness/seeded.js';

// ---- helpers ----

/** A decision in short: kind, route, and the backend (forward) or the status (respond). */
const pick = (d: RouteDecision) => (d.kind === 'forward' ? [d.kind, d.route, d.backend] : [d.kind, d.route, d.status]);

const parent = { group: '', kind: 'Service', name: 'web' };

function httpSpec(raw: unknown): HTTPRouteSpec {
  const v = validateRouteSpec('HTTPRoute', raw);
  assert.ok(v.ok, JSON.stringify(v));
  return v.value as HTTPRouteSpec;
}

function grpcSpec(raw: unknown): GRPCRouteSpec {
  const v = validateRouteSpec('GRPCRoute', raw);
  assert.ok(v.ok, JSON.stringify(v));
  return v.value as GRPCRouteSpec;
}

function refuses(kind: 'HTTPRoute' | 'GRPCRoute', raw: unknown, field: string, msg: RegExp): void {
  const v = validateRouteSpec(kind, raw);
  assert.equal(v.ok, false, `expected ${field} to be refused`);
  const errors = (v as { errors: string[] }).errors;
  assert.ok(
    errors.some((e) => e.startsWith(`${field}: `) && msg.test(e)),
    `want ${field} ~ ${msg}, got ${JSON.stringify(errors)}`,
  );
}

const rule = (r: Record<string, unknown>) => ({ parentRefs: [parent], rules: [r] });

function service(
  name: string,
  ports: { name?: string; port: number; protocol?: 'TCP' | 'UDP' }[],
  opts: { namespace?: string; clusterIPs?: string[]; type?: Service['spec']['type'] } = {},
): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace ?? 'default' },
    spec: {
      ...(opts.type && { type: opts.type }),
      clusterIPs: opts.clusterIPs ?? ['10.96.0.10'],
      ports: ports.map((p) => ({
        ...(p.name !== undefined && { name: p.name }),
        port: p.port,
        protocol: p.protocol ?? 'TCP',
      })),
    },
  };
}

const SERVICES = [
  service(
    'web',
    [
      { name: 'http', port: 80 },
      { name: 'admin', port: 9090 },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ],
    { clusterIPs: ['10.96.0.10', 'fd00::10'] },
  ),
  service('web-v1', [{ port: 80 }], { clusterIPs: ['10.96.0.11'] }),
  service('web-v2', [{ port: 80 }], { clusterIPs: ['10.96.0.12'] }),
  service('grpc', [{ name: 'grpc', port: 50051 }], { clusterIPs: ['10.96.0.20'] }),
  service('other', [{ port: 80 }], { namespace: 'other', clusterIPs: ['10.96.1.10'] }),
  service('headless', [{ port: 80 }], { clusterIPs: ['None'] }),
];

/** A route as the store holds it. */
const meta = (name: string, opts: { namespace?: string; created?: string }) => ({
  namespace: opts.namespace ?? 'default',
  name,
  ...(opts.created && { creationTimestamp: opts.created }),
});
const API_VERSION = 'gateway.networking.k8s.io/v1';

function http(name: string, spec: unknown, opts: { namespace?: string; created?: string } = {}): Route {
  return { apiVersion: API_VERSION, kind: 'HTTPRoute', metadata: meta(name, opts), spec: httpSpec(spec) };
}

function grpc(name: string, spec: unknown, opts: { namespace?: string; created?: string } = {}): Route {
  return { apiVersion: API_VERSION, kind: 'GRPCRoute', metadata: meta(name, opts), spec: grpcSpec(spec) };
}

function portOf(routes: Route[], key: string): ServicePortConfig {
  const out = compileRoutes(routes, SERVICES);
  const sp = out.services.find((s) => `${s.service}:${s.port}` === key);
  assert.ok(
    sp,
    `no ${key} in ${JSON.stringify(out.services.map((s) => `${s.service}:${s.port}`))}; notes ${JSON.stringify(out.notes)}`,
  );
  return sp;
}

/** What a match entry looks like, in short: "rule: path-type value [method] h=N q=N". */
function describeHttp(sp: ServicePortConfig): string[] {
  return (sp.matches as HttpMatchConfig[]).map((m) => {
    const r = sp.rules[m.rule]!;
    return `${r.route}#${r.rule} ${m.path.type} ${m.path.value}${m.method ? ` ${m.method}` : ''} h=${m.headers.length} q=${m.queryParams.length}`;
  });
}

const req = (path: string, headers: RouteRequest['headers'] = {}, method = 'GET'): RouteRequest => ({
  method,
  path,
  headers,
});

function forwardedTo(d: RouteDecision): string {
  return d.kind === 'forward' ? d.backend : `${d.status}`;
}

// ---- validation ----

describe('route validation: defaults', () => {
  it('fills in the CRD defaults: parent group and kind, PathPrefix "/", Exact, Service, weight 1', () => {
    const spec = httpSpec({
      parentRefs: [parent, { name: 'gw' }],
      rules: [
        {
          matches: [{ headers: [{ name: 'X-Canary', value: 'yes' }], path: { value: '/api' } }, {}],
          backendRefs: [{ name: 'web-v1', port: 80 }],
        },
      ],
    });
    assert.deepEqual(spec, {
      parentRefs: [
        { group: '', kind: 'Service', name: 'web' },
        { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' },
      ],
      hostnames: [],
      rules: [
        {
          matches: [
            {
              path: { type: 'PathPrefix', value: '/api' },
              headers: [{ type: 'Exact', name: 'X-Canary', value: 'yes' }],
              queryParams: [],
            },
            { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
          ],
          filters: [],
          backendRefs: [{ group: '', kind: 'Service', name: 'web-v1', port: 80, weight: 1, filters: [] }],
        },
      ],
    });
  });

  it('a rule without matches matches every request; a route without rules has the default rule; rules: [] has none', () => {
    assert.deepEqual(httpSpec(rule({})).rules[0]!.matches, [
      { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
    ]);
    assert.deepEqual(httpSpec(rule({ matches: [] })).rules[0]!.matches, [
      { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
    ]);
    assert.deepEqual(httpSpec({ parentRefs: [parent] }).rules, [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
        filters: [],
        backendRefs: [],
      },
    ]);
    assert.deepEqual(httpSpec({ parentRefs: [parent], rules: [] }).rules, []);
    assert.deepEqual(grpcSpec({ parentRefs: [parent] }).rules, []);
    assert.deepEqual(grpcSpec(rule({})).rules, [{ matches: [], filters: [], backendRefs: [] }]);
  });

  it('validating a normalized spec gives it back unchanged', () => {
    const raw = {
      parentRefs: [
        { ...parent, port: 80 },
        { ...parent, port: 9090 },
      ],
      hostnames: ['web.example.com', '*.example.com'],
      rules: [
        {
          name: 'canary',
          matches: [
            {
              path: { type: 'RegularExpression', value: '/api/v[0-9]+' },
              method: 'POST',
              queryParams: [{ name: 'debug', value: '1' }],
            },
          ],
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: {
                set: [{ name: 'X-A', value: '1' }],
                add: [{ name: 'X-B', value: '2' }],
                remove: ['X-C'],
              },
            },
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { add: [{ name: 'X-Served-By', value: 'weft' }] },
            },
          ],
          backendRefs: [
            { name: 'web-v1', port: 80, weight: 90 },
            {
              name: 'web-v2',
              port: 80,
              weight: 10,
              filters: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: { set: [{ name: 'X-Canary', value: 'true' }] },
                },
              ],
            },
          ],
          timeouts: { request: '10s', backendRequest: '2s' },
        },
      ],
    };
    const once = httpSpec(raw);
    assert.deepEqual(httpSpec(once), once);
    const g = grpcSpec({
      parentRefs: [parent],
      rules: [
        {
          matches: [{ method: { service: 'pkg.Echo', method: 'Say' }, headers: [{ name: 'x-v', value: '2' }] }],
          backendRefs: [{ name: 'grpc', port: 50051 }],
        },
      ],
    });
    assert.deepEqual(grpcSpec(g), g);
    assert.deepEqual(g.rules[0]!.matches[0], {
      method: { type: 'Exact', service: 'pkg.Echo', method: 'Say' },
      headers: [{ type: 'Exact', name: 'x-v', value: '2' }],
    });
  });

  it('parses Gateway API durations (GEP-2257)', () => {
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1s500ms'), 1500);
    assert.equal(parseDuration('0s'), 0);
    assert.equal(parseDuration('99999s'), 99_999_000);
    for (const bad of ['', '1.5s', '100000s', '1d', '-1s', '1s1s1s1s1s', '10', 's', '1 s'])
      assert.equal(parseDuration(bad), undefined, bad);
  });
});

describe('route validation: refusals name the field', () => {
  it('paths', () => {
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { value: 'api' } }] }),
      'spec.rules[0].matches[0].path.value',
      /absolute path/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { type: 'Exact', value: '/a//b' } }] }),
      'spec.rules[0].matches[0].path.value',
      /must not contain "\/\/"/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { value: '/a/..' } }] }),
      'spec.rules[0].matches[0].path.value',
      /must not end with/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { value: '/a%2Fb' } }] }),
      'spec.rules[0].matches[0].path.value',
      /%2F/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { value: '/a b' } }] }),
      'spec.rules[0].matches[0].path.value',
      /path characters/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { type: 'Prefix', value: '/' } }] }),
      'spec.rules[0].matches[0].path.type',
      /not one of Exact, PathPrefix, RegularExpression/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { type: 'RegularExpression', value: '/a(' } }] }),
      'spec.rules[0].matches[0].path.value',
      /not a valid regular expression/,
    );
    // Unbalanced: wrapped in a group it would read as valid.
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { type: 'RegularExpression', value: 'a)(b' } }] }),
      'spec.rules[0].matches[0].path.value',
      /not a valid regular expression/,
    );
    refuses(
      'HTTPRoute',
      rule({ matches: [{ path: { value: `/${'a'.repeat(1024)}` } }] }),
      'spec.rules[0].matches[0].path.value',
      /at most 1024/,
    );
  });

  it('headers, query parameters and methods', () => {
    const m = (match: unknown) => rule({ matches: [match] });
    refuses(
      'HTTPRoute',
      m({
        headers: [
          { name: 'X-A', value: '1' },
          { name: 'x-a', value: '2' },
        ],
      }),
      'spec.rules[0].matches[0].headers[1].name',
      /already matched by .*headers\[0\]/,
    );
    refuses(
      'HTTPRoute',
      m({ headers: [{ name: ':authority', value: 'x' }] }),
      'spec.rules[0].matches[0].headers[0].name',
      /not a header name/,
    );
    refuses(
      'HTTPRoute',
      m({ headers: [{ name: 'x-a', value: '' }] }),
      'spec.rules[0].matches[0].headers[0].value',
      /must not be empty/,
    );
    refuses('HTTPRoute', m({ headers: [{ name: 'x-a' }] }), 'spec.rules[0].matches[0].headers[0].value', /required/);
    refuses(
      'HTTPRoute',
      m({ headers: [{ name: 'x-a', value: 'v', type: 'Prefix' }] }),
      'spec.rules[0].matches[0].headers[0].type',
      /not one of Exact, RegularExpression/,
    );
    refuses(
      'HTTPRoute',
      m({ headers: [{ name: 'x-a', value: '[', type: 'RegularExpression' }] }),
      'spec.rules[0].matches[0].headers[0].value',
      /regular expression/,
    );
    refuses(
      'HTTPRoute',
      m({ headers: Array.from({ length: 17 }, (_, i) => ({ name: `x-${i}`, value: 'v' })) }),
      'spec.rules[0].matches[0].headers',
      /at most 16/,
    );
    // Query parameter names are case-sensitive: "a" and "A" are two parameters.
    assert.equal(
      httpSpec(
        m({
          queryParams: [
            { name: 'a', value: '1' },
            { name: 'A', value: '2' },
          ],
        }),
      ).rules[0]!.matches[0]!.queryParams.length,
      2,
    );
    refuses(
      'HTTPRoute',
      m({
        queryParams: [
          { name: 'a', value: '1' },
          { name: 'a', value: '2' },
        ],
      }),
      'spec.rules[0].matches[0].queryParams[1].name',
      /already matched/,
    );
    refuses('HTTPRoute', m({ method: 'get' }), 'spec.rules[0].matches[0].method', /not one of GET, HEAD/);
    refuses(
      'HTTPRoute',
      rule({ matches: Array.from({ length: 65 }, () => ({})) }),
      'spec.rules[0].matches',
      /at most 64/,
    );
  });

  it('filters: header modifiers only, each once, one action per header', () => {
    const f = (filter: unknown) => rule({ filters: [filter] });
    refuses(
      'HTTPRoute',
      f({ type: 'RequestRedirect', requestRedirect: { statusCode: 301 } }),
      'spec.rules[0].filters[0].type',
      /RequestRedirect filters are not supported by Weft/,
    );
    refuses(
      'HTTPRoute',
      f({ type: 'URLRewrite', urlRewrite: {} }),
      'spec.rules[0].filters[0].type',
      /not supported by Weft/,
    );
    refuses('HTTPRoute', f({ type: 'Rewrite' }), 'spec.rules[0].filters[0].type', /not one of RequestHeaderModifier/);
    refuses(
      'HTTPRoute',
      f({ type: 'RequestHeaderModifier' }),
      'spec.rules[0].filters[0].requestHeaderModifier',
      /required when type is RequestHeaderModifier/,
    );
    refuses(
      'HTTPRoute',
      f({ type: 'RequestHeaderModifier', requestHeaderModifier: {}, responseHeaderModifier: {} }),
      'spec.rules[0].filters[0].responseHeaderModifier',
      /must not be set/,
    );
    const twice = { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: '1' }] } };
    refuses('HTTPRoute', rule({ filters: [twice, twice] }), 'spec.rules[0].filters[1].type', /cannot be repeated/);
    const rhm = (m: unknown) => f({ type: 'RequestHeaderModifier', requestHeaderModifier: m });
    refuses(
      'HTTPRoute',
      rhm({ set: [{ name: 'X-A', value: '1' }], remove: ['x-a'] }),
      'spec.rules[0].filters[0].requestHeaderModifier.remove[0]',
      /already has an action in this filter \(set\[0\]\.name\)/,
    );
    refuses(
      'HTTPRoute',
      rhm({
        add: [
          { name: 'a', value: '1' },
          { name: 'A', value: '2' },
        ],
      }),
      'spec.rules[0].filters[0].requestHeaderModifier.add[1].name',
      /one action per header name/,
    );
    refuses(
      'HTTPRoute',
      rhm({ set: [{ name: 'Connection', value: 'close' }] }),
      'spec.rules[0].filters[0].requestHeaderModifier.set[0].name',
      /connection-level header/,
    );
    refuses(
      'HTTPRoute',
      rhm({ remove: ['Content-Length'] }),
      'spec.rules[0].filters[0].requestHeaderModifier.remove[0]',
      /connection-level header/,
    );
    refuses(
      'HTTPRoute',
      rhm({ set: [{ name: 'x-a', value: 'a\r\nx-injected: 1' }] }),
      'spec.rules[0].filters[0].requestHeaderModifier.set[0].value',
      /control characters/,
    );
    refuses(
      'HTTPRoute',
      rhm({ set: [{ name: 'x a', value: '1' }] }),
      'spec.rules[0].filters[0].requestHeaderModifier.set[0].name',
      /not a header name/,
    );
    // Backend filters follow the same rules.
    refuses(
      'HTTPRoute',
      rule({ backendRefs: [{ name: 'web-v1', port: 80, filters: [{ type: 'RequestMirror', requestMirror: {} }] }] }),
      'spec.rules[0].backendRefs[0].filters[0].type',
      /not supported by Weft/,
    );
  });

  it('backendRefs, timeouts, unsupported rule fields, limits', () => {
    refuses(
      'HTTPRoute',
      rule({ backendRefs: [{ name: 'web-v1' }] }),
      'spec.rules[0].backendRefs[0].port',
      /required for a Service backend/,
    );
    refuses(
      'HTTPRoute',
      rule({ backendRefs: [{ name: 'web-v1', port: 70000 }] }),
      'spec.rules[0].backendRefs[0].port',
      /not a port number/,
    );
    refuses(
      'HTTPRoute',
      rule({ backendRefs: [{ name: 'web-v1', port: 80, weight: 1_000_001 }] }),
      'spec.rules[0].backendRefs[0].weight',
      /0\.\.1000000/,
    );
    refuses(
      'HTTPRoute',
      rule({ backendRefs: [{ name: 'web-v1', port: 80, weight: -1 }] }),
      'spec.rules[0].backendRefs[0].weight',
      /0\.\.1000000/,
    );
    refuses('HTTPRoute', rule({ backendRefs: [{ port: 80 }] }), 'spec.rules[0].backendRefs[0].name', /required/);
    refuses(
      'HTTPRoute',
      rule({ backendRefs: [{ name: 'x', port: 80, namespace: 'Other' }] }),
      'spec.rules[0].backendRefs[0].namespace',
      /RFC 1123 label/,
    );
    // A backend of another kind needs no port: it is valid, and the table answers 500 for it.
    assert.equal(
      httpSpec(rule({ backendRefs: [{ group: 'multicluster.x-k8s.io', kind: 'ServiceImport', name: 'x' }] })).rules[0]!
        .backendRefs[0]!.kind,
      'ServiceImport',
    );
    refuses(
      'HTTPRoute',
      rule({ backendRefs: Array.from({ length: 17 }, () => ({ name: 'x', port: 80 })) }),
      'spec.rules[0].backendRefs',
      /at most 16/,
    );
    refuses(
      'HTTPRoute',
      rule({ timeouts: { request: '10 seconds' } }),
      'spec.rules[0].timeouts.request',
      /not a duration/,
    );
    refuses(
      'HTTPRoute',
      rule({ timeouts: { request: '1s', backendRequest: '2s' } }),
      'spec.rules[0].timeouts.backendRequest',
      /longer than the request timeout 1s/,
    );
    assert.deepEqual(httpSpec(rule({ timeouts: { request: '0s', backendRequest: '2s' } })).rules[0]!.timeouts, {
      request: '0s',
      backendRequest: '2s',
    });
    refuses('HTTPRoute', rule({ retry: { attempts: 3 } }), 'spec.rules[0].retry', /not supported by Weft/);
    refuses('HTTPRoute', rule({ sessionPersistence: {} }), 'spec.rules[0].sessionPersistence', /not supported by Weft/);
    refuses(
      'HTTPRoute',
      { parentRefs: [parent], rules: [{ name: 'a' }, { name: 'a' }] },
      'spec.rules[1].name',
      /also the name of spec\.rules\[0\]/,
    );
    refuses(
      'HTTPRoute',
      { parentRefs: [parent], rules: Array.from({ length: 17 }, () => ({})) },
      'spec.rules',
      /at most 16/,
    );
    refuses(
      'HTTPRoute',
      {
        parentRefs: [parent],
        rules: Array.from({ length: 3 }, () => ({ matches: Array.from({ length: 50 }, () => ({})) })),
      },
      'spec.rules',
      /at most 128 matches across all rules, got 150/,
    );
    refuses('HTTPRoute', { parentRefs: [parent], rules: 'all' }, 'spec.rules', /must be a list/);
  });

  it('parentRefs and hostnames', () => {
    refuses('HTTPRoute', { parentRefs: [{ ...parent, port: 0 }] }, 'spec.parentRefs[0].port', /not a port number/);
    refuses('HTTPRoute', { parentRefs: [{ group: '', kind: 'Service' }] }, 'spec.parentRefs[0].name', /required/);
    refuses('HTTPRoute', { parentRefs: [{ ...parent, kind: 'Ser/vice' }] }, 'spec.parentRefs[0].kind', /not a kind/);
    refuses(
      'HTTPRoute',
      { parentRefs: [{ ...parent, sectionName: 'HTTP' }] },
      'spec.parentRefs[0].sectionName',
      /section name/,
    );
    refuses(
      'HTTPRoute',
      { parentRefs: [parent, { ...parent, port: 80 }] },
      'spec.parentRefs[1]',
      /sectionName or port must be specified .* same parent/,
    );
    refuses(
      'HTTPRoute',
      {
        parentRefs: [
          { ...parent, port: 80 },
          { ...parent, port: 80 },
        ],
      },
      'spec.parentRefs[1]',
      /must be unique/,
    );
    refuses('HTTPRoute', { parentRefs: [parent, parent] }, 'spec.parentRefs[1]', /must be unique/);
    refuses(
      'HTTPRoute',
      { parentRefs: [{ group: '' }, parent, { ...parent, port: 80 }] },
      'spec.parentRefs[2]',
      /same parent \(as spec\.parentRefs\[1\] does\)/,
    );
    // The same name in another namespace is another parent.
    assert.equal(httpSpec({ parentRefs: [parent, { ...parent, namespace: 'other' }] }).parentRefs.length, 2);
    refuses(
      'HTTPRoute',
      { parentRefs: Array.from({ length: 33 }, (_, i) => ({ ...parent, port: i + 1 })) },
      'spec.parentRefs',
      /at most 32/,
    );
    refuses(
      'HTTPRoute',
      { parentRefs: [parent], hostnames: ['Web.example.com'] },
      'spec.hostnames[0]',
      /not a hostname/,
    );
    refuses(
      'HTTPRoute',
      { parentRefs: [parent], hostnames: ['a.*.example.com'] },
      'spec.hostnames[0]',
      /not a hostname/,
    );
  });

  it('GRPCRoute: method matches, limits and filters', () => {
    const m = (match: unknown) => rule({ matches: [match] });
    refuses(
      'GRPCRoute',
      m({ method: { type: 'Exact' } }),
      'spec.rules[0].matches[0].method',
      /one or both of 'service' or 'method'/,
    );
    refuses('GRPCRoute', m({ method: { service: '', method: '' } }), 'spec.rules[0].matches[0].method', /one or both/);
    refuses(
      'GRPCRoute',
      m({ method: { service: 'pkg/Echo' } }),
      'spec.rules[0].matches[0].method.service',
      /not a gRPC service name/,
    );
    refuses(
      'GRPCRoute',
      m({ method: { method: 'Say.Hi' } }),
      'spec.rules[0].matches[0].method.method',
      /not a gRPC method name/,
    );
    refuses(
      'GRPCRoute',
      m({ method: { type: 'RegularExpression', service: 'pkg\\.(' } }),
      'spec.rules[0].matches[0].method.service',
      /regular expression/,
    );
    refuses(
      'GRPCRoute',
      m({ method: { type: 'Prefix', service: 'pkg' } }),
      'spec.rules[0].matches[0].method.type',
      /not one of Exact, RegularExpression/,
    );
    refuses(
      'GRPCRoute',
      m({
        headers: [
          { name: 'x-v', value: '1' },
          { name: 'X-V', value: '2' },
        ],
      }),
      'spec.rules[0].matches[0].headers[1].name',
      /already matched/,
    );
    refuses(
      'GRPCRoute',
      rule({ matches: Array.from({ length: 9 }, () => ({})) }),
      'spec.rules[0].matches',
      /at most 8/,
    );
    refuses(
      'GRPCRoute',
      rule({ filters: [{ type: 'RequestMirror', requestMirror: {} }] }),
      'spec.rules[0].filters[0].type',
      /not supported by Weft/,
    );
    refuses(
      'GRPCRoute',
      rule({ filters: [{ type: 'URLRewrite', urlRewrite: {} }] }),
      'spec.rules[0].filters[0].type',
      /not one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef/,
    );
    // A regex may say what an exact name cannot.
    assert.equal(
      grpcSpec(m({ method: { type: 'RegularExpression', service: 'pkg\\..*' } })).rules[0]!.matches[0]!.method!.service,
      'pkg\\..*',
    );
  });

  it('reports every problem at once', () => {
    const v = validateRouteSpec(
      'HTTPRoute',
      rule({ matches: [{ path: { value: 'x' }, method: 'FETCH' }], backendRefs: [{ name: 'a' }] }),
    );
    assert.equal(v.ok, false);
    assert.deepEqual(
      (v as { errors: string[] }).errors.map((e) => e.split(':')[0]),
      ['spec.rules[0].matches[0].path.value', 'spec.rules[0].matches[0].method', 'spec.rules[0].backendRefs[0].port'],
    );
  });
});

describe('route validation in the store', () => {
  const route = (spec: unknown) => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'default' },
    spec,
  });

  it('a malformed route is refused by field, so the source keeps its last good version', () => {
    const r = validateResource(route(rule({ matches: [{ path: { type: 'Exact', value: 'no-slash' } }] })));
    assert.equal(r.ok, false);
    assert.deepEqual((r as { errors: string[] }).errors, [
      'spec.rules[0].matches[0].path.value: "no-slash" must be an absolute path, starting with "/"',
    ]);
    const g = validateResource({ ...route(rule({ matches: [{ method: {} }] })), kind: 'GRPCRoute' });
    assert.equal(g.ok, false);
    assert.match((g as { errors: string[] }).errors[0]!, /^spec\.rules\[0\]\.matches\[0\]\.method: one or both/);
  });

  it('a good route is stored normalized, and the route table compiles it as stored', () => {
    const r = validateResource(route(rule({ backendRefs: [{ name: 'web-v1', port: 80 }] })));
    assert.ok(r.ok === true);
    const stored = r.value as HTTPRoute;
    assert.deepEqual(stored.spec.rules, [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
        filters: [],
        backendRefs: [{ group: '', kind: 'Service', name: 'web-v1', port: 80, weight: 1, filters: [] }],
      },
    ]);
    // Validating the stored spec again gives it back unchanged: the store holds it normalized.
    assert.deepEqual(validateRouteSpec('HTTPRoute', stored.spec), { ok: true, value: stored.spec });
    const table = compileRoutes([stored], SERVICES);
    assert.deepEqual(
      table.services.map((s) => `${s.service}:${s.port}`),
      ['default/web:80', 'default/web:9090'],
    );
    assert.deepEqual(table.notes, []);
  });

  it('keeps metadata.creationTimestamp (RFC 3339); a malformed one is refused naming the field', () => {
    const at = (kind: string, creationTimestamp: unknown) =>
      validateResource({
        ...route(rule({})),
        kind,
        metadata: { name: 'web', namespace: 'default', creationTimestamp },
      });
    for (const kind of ['HTTPRoute', 'GRPCRoute']) {
      for (const ts of [
        '2024-05-01T12:00:00Z',
        '2024-05-01T12:00:00.123456Z',
        '2024-05-01T14:00:00+02:00',
        '2024-02-29T00:00:00z',
      ]) {
        const v = at(kind, ts);
        assert.ok(v.ok === true, JSON.stringify(v));
        assert.equal((v.value as HTTPRoute).metadata.creationTimestamp, ts);
      }
      // null, as `kubectl create --dry-run=client -o yaml` writes it: none.
      const none = at(kind, null);
      assert.ok(none.ok === true && !('creationTimestamp' in none.value.metadata), JSON.stringify(none));
      for (const bad of [
        'yesterday',
        '2024-05-01',
        '2024-05-01 12:00:00Z',
        '2023-02-29T00:00:00Z',
        '2024-05-01T24:00:00Z',
        '2024-05-01T12:00:60Z',
        '2024-05-01T12:00:00+24:00',
      ]) {
        assert.deepEqual(
          at(kind, bad),
          {
            ok: false,
            errors: [
              `metadata.creationTimestamp: ${JSON.stringify(bad)} is not an RFC 3339 timestamp (like "2024-05-01T12:00:00Z")`,
            ],
          },
          bad,
        );
      }
      assert.deepEqual(at(kind, 1714564800), {
        ok: false,
        errors: ['metadata.creationTimestamp: must be a string, got 1714564800'],
      });
    }
  });

  it('other kinds do not keep creationTimestamp (their compilers never read it)', () => {
    const v = validateResource({
      ...SERVICES[1],
      metadata: { name: 'web-v1', namespace: 'default', creationTimestamp: '2024-05-01T12:00:00Z' },
    });
    assert.ok(v.ok === true);
    assert.deepEqual(v.value.metadata, { name: 'web-v1', namespace: 'default' });
  });
});

// ---- the route table ----

describe('route table: attachment', () => {
  it('a parentRef without port attaches to every TCP port; port and sectionName select one', () => {
    const all = compileRoutes([http('r', { parentRefs: [parent] })], SERVICES);
    assert.deepEqual(
      all.services.map((s) => `${s.service}:${s.port}/${s.portName}`),
      ['default/web:80/http', 'default/web:9090/admin'],
    );
    assert.deepEqual(all.services[0]!.addresses, ['10.96.0.10', 'fd00::10']);
    const byPort = compileRoutes([http('r', { parentRefs: [{ ...parent, port: 9090 }] })], SERVICES);
    assert.deepEqual(
      byPort.services.map((s) => s.port),
      [9090],
    );
    const byName = compileRoutes([http('r', { parentRefs: [{ ...parent, sectionName: 'http' }] })], SERVICES);
    assert.deepEqual(
      byName.services.map((s) => s.port),
      [80],
    );
    const both = compileRoutes([http('r', { parentRefs: [{ ...parent, sectionName: 'http', port: 9090 }] })], SERVICES);
    assert.deepEqual(both.services, []);
    assert.deepEqual(both.notes, [
      'HTTPRoute default/r: spec.parentRefs[0]: Service default/web has no TCP port named http and numbered 9090',
    ]);
  });

  it("gateway parents are not the mesh's; missing and headless Services are noted", () => {
    const out = compileRoutes(
      [
        http('gw', { parentRefs: [{ name: 'gateway' }] }),
        http('missing', { parentRefs: [{ ...parent, name: 'nope' }] }),
        http('headless', { parentRefs: [{ ...parent, name: 'headless' }] }),
        http('udp', { parentRefs: [{ ...parent, port: 53 }] }),
      ],
      SERVICES,
    );
    assert.deepEqual(out.services, []);
    assert.deepEqual(out.notes, [
      'HTTPRoute default/headless: spec.parentRefs[0]: Service default/headless has no cluster IP to route',
      'HTTPRoute default/missing: spec.parentRefs[0]: Service default/nope not found',
      'HTTPRoute default/udp: spec.parentRefs[0]: Service default/web has no TCP port numbered 53',
    ]);
  });

  it('a consumer route (another namespace than its Service) gets a table of its own for its namespace', () => {
    // The producer splits web; the namespace "shop" has a route of its own that only edits a
    // header, naming the parent Service itself as its backend (no ReferenceGrant needed).
    const producer = http('split', {
      parentRefs: [{ ...parent, port: 80 }],
      rules: [{ backendRefs: [{ name: 'web-v1', port: 80 }] }],
    });
    const consumer = http(
      'shop-calls-web',
      {
        parentRefs: [{ ...parent, namespace: 'default', port: 80 }],
        rules: [
          {
            filters: [
              {
                type: 'ResponseHeaderModifier',
                responseHeaderModifier: { set: [{ name: 'X-Consumer', value: 'shop' }] },
              },
            ],
            backendRefs: [{ name: 'web', namespace: 'default', port: 80 }],
          },
        ],
      },
      { namespace: 'shop' },
    );
    const out = compileRoutes([producer, consumer], SERVICES);
    assert.deepEqual(out.notes, []);
    const sp = out.services.find((s) => s.service === 'default/web' && s.port === 80)!;
    assert.equal(sp.fallback, undefined);
    assert.deepEqual(
      sp.rules.map((r) => [r.route, r.backends.map((b) => b.backend ?? b.invalid)]),
      [
        ['default/split', ['default/web-v1:80']],
        ['shop/shop-calls-web', ['default/web:80']],
      ],
    );
    assert.deepEqual(
      (sp.matches as HttpMatchConfig[]).map((m) => sp.rules[m.rule]!.route),
      ['default/split'],
    );
    assert.deepEqual(
      sp.consumers?.map((c) => [c.namespace, (c.matches as HttpMatchConfig[]).map((m) => sp.rules[m.rule]!.route)]),
      [['shop', ['shop/shop-calls-web']]],
    );
    // Routed per client: shop's clients get their route, everyone else the producer's.
    const router = compileServiceRouter(sp);
    const req = { method: 'GET', path: '/', headers: {} };
    const via = (ns: string | undefined) =>
      router.forClient(ns).route(req) as Extract<RouteDecision, { kind: 'forward' }>;
    assert.deepEqual(
      [via('shop').route, via('shop').backend, via('shop').responseHeaders],
      [
        'shop/shop-calls-web',
        'default/web:80',
        [{ set: [{ name: 'x-consumer', value: 'shop' }], add: [], remove: [] }],
      ],
    );
    for (const ns of ['default', 'elsewhere', undefined])
      assert.deepEqual([via(ns).route, via(ns).backend], ['default/split', 'default/web-v1:80'], String(ns));
  });

  it('a port with consumer routes only: other clients go to its own endpoints; a consumer request no route matches gets a 404', () => {
    const consumer = http(
      'only',
      {
        parentRefs: [{ ...parent, namespace: 'default', port: 80 }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
            backendRefs: [{ name: 'web', namespace: 'default', port: 80 }],
          },
        ],
      },
      { namespace: 'shop' },
    );
    const sp = portOf([consumer], 'default/web:80');
    assert.equal(sp.fallback, 'forward');
    assert.deepEqual(sp.matches, []);
    const router = compileServiceRouter(sp);
    const get = (path: string) => ({ method: 'GET', path, headers: {} });
    assert.deepEqual(pick(router.forClient('other').route(get('/anything'))), ['forward', '', 'default/web:80']);
    assert.deepEqual(pick(router.forClient(undefined).route(get('/api/x'))), ['forward', '', 'default/web:80']);
    assert.deepEqual(pick(router.forClient('shop').route(get('/api/x'))), ['forward', 'shop/only', 'default/web:80']);
    assert.deepEqual(pick(router.forClient('shop').route(get('/other'))), ['respond', undefined, 404]);
  });

  it('a consumer route may name its parent Service as a backend, not another Service of that namespace', () => {
    const consumer = http(
      'c',
      {
        parentRefs: [{ ...parent, namespace: 'default', port: 80 }],
        rules: [{ backendRefs: [{ name: 'web-v2', namespace: 'default', port: 80 }] }],
      },
      { namespace: 'shop' },
    );
    const out = compileRoutes([consumer], SERVICES);
    assert.deepEqual(out.notes, [
      'HTTPRoute shop/c: spec.rules[0].backendRefs[0]: Service default/web-v2 is in another namespace, and no ReferenceGrant there lets HTTPRoutes of shop refer to it; its share of requests gets 500',
    ]);
  });

  it("consumer routes of the other kind than the port's are ignored with a note", () => {
    const producer = http('h', {
      parentRefs: [{ ...parent, port: 80 }],
      rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
    });
    const consumer = grpc('g', { parentRefs: [{ ...parent, namespace: 'default', port: 80 }] }, { namespace: 'shop' });
    const out = compileRoutes([producer, consumer], SERVICES);
    const sp = out.services.find((s) => s.service === 'default/web' && s.port === 80)!;
    assert.equal(sp.protocol, 'http');
    assert.equal(sp.consumers, undefined);
    assert.deepEqual(out.notes, [
      'GRPCRoute shop/g: Service port default/web:80 is already routed by HTTPRoute default/h; HTTPRoutes and GRPCRoutes do not share a port, ignored',
    ]);
  });

  it("HTTPRoutes and GRPCRoutes never share a port: the oldest route's kind wins it", () => {
    const out = compileRoutes(
      [
        http('h', { parentRefs: [{ ...parent, port: 80 }] }, { created: '2024-02-01T00:00:00Z' }),
        grpc('g', { parentRefs: [{ ...parent, port: 80 }] }, { created: '2024-01-01T00:00:00Z' }),
      ],
      SERVICES,
    );
    assert.deepEqual(
      out.services.map((s) => s.protocol),
      ['grpc'],
    );
    assert.deepEqual(out.notes, [
      'HTTPRoute default/h: Service port default/web:80 is already routed by GRPCRoute default/g; HTTPRoutes and GRPCRoutes do not share a port, ignored',
    ]);
  });

  it("a ReferenceGrant in the backend's namespace lets routes name its Services: from the route's kind and namespace, to all Services or one by name", () => {
    const grant = (name: string, from: { kind: string; namespace: string }, to: { name?: string }): ReferenceGrant => {
      const v = validateResource({
        apiVersion: 'gateway.networking.k8s.io/v1beta1',
        kind: 'ReferenceGrant',
        metadata: { namespace: 'other', name },
        spec: { from: [{ group: 'gateway.networking.k8s.io', ...from }], to: [{ group: '', kind: 'Service', ...to }] },
      });
      assert.ok(v.ok === true, JSON.stringify(v));
      return v.value as ReferenceGrant;
    };
    const r = http('r', {
      parentRefs: [{ ...parent, port: 80 }],
      rules: [{ backendRefs: [{ name: 'other', namespace: 'other', port: 80 }] }],
    });
    const backendsWith = (...grants: ReferenceGrant[]) =>
      compileRoutes([r], SERVICES, grants).services[0]!.rules[0]!.backends;
    const refused = [
      {
        weight: 1,
        invalid:
          'Service other/other is in another namespace, and no ReferenceGrant there lets HTTPRoutes of default refer to it',
      },
    ];
    const granted = [{ weight: 1, backend: 'other/other:80' }];
    assert.deepEqual(backendsWith(), refused);
    assert.deepEqual(backendsWith(grant('all', { kind: 'HTTPRoute', namespace: 'default' }, {})), granted);
    assert.deepEqual(
      backendsWith(grant('one', { kind: 'HTTPRoute', namespace: 'default' }, { name: 'other' })),
      granted,
    );
    assert.deepEqual(
      backendsWith(grant('another', { kind: 'HTTPRoute', namespace: 'default' }, { name: 'not-this' })),
      refused,
    );
    assert.deepEqual(backendsWith(grant('grpc-only', { kind: 'GRPCRoute', namespace: 'default' }, {})), refused);
    assert.deepEqual(backendsWith(grant('elsewhere', { kind: 'HTTPRoute', namespace: 'shop' }, {})), refused);
    // A grant in another namespace than the backend's grants nothing there.
    const misplaced = {
      ...grant('all', { kind: 'HTTPRoute', namespace: 'default' }, {}),
      metadata: { namespace: 'default', name: 'all' },
    };
    assert.deepEqual(backendsWith(misplaced), refused);
  });

  it('ReferenceGrant manifests are validated naming the field', () => {
    const base = {
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { namespace: 'other', name: 'g' },
    };
    const errors = (spec: unknown) => {
      const v = validateResource({ ...base, spec });
      return v.ok === false ? v.errors : [];
    };
    assert.deepEqual(errors({ from: [], to: [{ group: '', kind: 'Service' }] }), [
      'spec.from: 0 entries: want 1 to 16',
    ]);
    assert.ok(
      errors({
        from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'Not_A_Namespace' }],
        to: [{ group: '', kind: 'Service' }],
      }).some((e) => e.startsWith('spec.from[0].namespace: ')),
    );
    assert.ok(
      errors({
        from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'default' }],
        to: [{ group: '', kind: 'Service', name: '' }],
      }).some((e) => e.startsWith('spec.to[0].name: ')),
    );
    assert.ok(
      errors({ from: [{ kind: 'HTTPRoute', namespace: 'default' }], to: [{ group: '', kind: 'Service' }] }).some((e) =>
        e.startsWith('spec.from[0].group: required'),
      ),
    );
    assert.ok(errors(undefined).some((e) => e.startsWith('spec: required')));
  });

  it('resolves backends: weights, weight 0 left out, invalid refs keep their share and answer 500', () => {
    const out = compileRoutes(
      [
        http('r', {
          parentRefs: [{ ...parent, port: 80 }],
          rules: [
            {
              backendRefs: [
                { name: 'web-v1', port: 80, weight: 90 },
                { name: 'web-v2', port: 80, weight: 0 },
                { name: 'other', namespace: 'other', port: 80, weight: 5 },
                { name: 'nope', port: 80, weight: 5 },
                { name: 'web-v2', port: 8080, weight: 5 },
                { group: 'multicluster.x-k8s.io', kind: 'ServiceImport', name: 'x', weight: 5 },
              ],
            },
            { backendRefs: [{ name: 'web-v1', port: 80, weight: 0 }] },
          ],
        }),
      ],
      SERVICES,
    );
    const [sp] = out.services;
    assert.deepEqual(sp!.rules[0]!.backends, [
      { weight: 90, backend: 'default/web-v1:80' },
      {
        weight: 5,
        invalid:
          'Service other/other is in another namespace, and no ReferenceGrant there lets HTTPRoutes of default refer to it',
      },
      { weight: 5, invalid: 'Service default/nope not found' },
      { weight: 5, invalid: 'Service default/web-v2 has no TCP port 8080' },
      { weight: 5, invalid: 'multicluster.x-k8s.io/ServiceImport backends are not supported (only Services)' },
    ]);
    assert.deepEqual(sp!.rules[1]!.backends, []);
    // The parent port itself is a backend too: for connections that are not HTTP.
    assert.deepEqual(out.backends, [
      { key: 'default/web-v1:80', protocol: 'unknown' },
      { key: 'default/web:80', protocol: 'unknown' },
    ]);
    assert.equal(out.notes.length, 5);
    assert.ok(
      out.notes.includes(
        'HTTPRoute default/r: spec.rules[1]: no backend with a weight above 0; requests it matches get 500',
      ),
    );
  });

  it('compiles filters to lower-case header edits and timeouts to milliseconds', () => {
    const sp = portOf(
      [
        http('r', {
          parentRefs: [{ ...parent, port: 80 }],
          rules: [
            {
              name: 'main',
              filters: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: { set: [{ name: 'X-A', value: 'A' }], remove: ['X-Drop'] },
                },
                {
                  type: 'ResponseHeaderModifier',
                  responseHeaderModifier: { add: [{ name: 'X-Served-By', value: 'weft' }] },
                },
              ],
              backendRefs: [
                {
                  name: 'web-v1',
                  port: 80,
                  filters: [
                    {
                      type: 'RequestHeaderModifier',
                      requestHeaderModifier: { add: [{ name: 'X-Backend', value: 'v1' }] },
                    },
                  ],
                },
              ],
              timeouts: { request: '1m', backendRequest: '1500ms' },
            },
          ],
        }),
      ],
      'default/web:80',
    );
    assert.deepEqual(sp.rules[0], {
      route: 'default/r',
      rule: 0,
      name: 'main',
      backends: [
        {
          weight: 1,
          backend: 'default/web-v1:80',
          requestHeaders: { set: [], add: [{ name: 'x-backend', value: 'v1' }], remove: [] },
        },
      ],
      requestHeaders: { set: [{ name: 'x-a', value: 'A' }], add: [], remove: ['x-drop'] },
      responseHeaders: { set: [], add: [{ name: 'x-served-by', value: 'weft' }], remove: [] },
      requestTimeoutMs: 60_000,
      backendRequestTimeoutMs: 1500,
    });
  });
});

describe('route table: precedence', () => {
  const p = { parentRefs: [{ ...parent, port: 80 }] };

  it('HTTPRoute: Exact, then RegularExpression, then the longest PathPrefix; then method, headers, query parameters', () => {
    const sp = portOf(
      [
        http('r', {
          ...p,
          rules: [
            { matches: [{}] },
            { matches: [{ path: { value: '/api' } }] },
            { matches: [{ path: { value: '/api' }, headers: [{ name: 'a', value: '1' }] }] },
            {
              matches: [
                {
                  path: { value: '/api' },
                  queryParams: [
                    { name: 'q', value: '1' },
                    { name: 'r', value: '1' },
                  ],
                },
              ],
            },
            {
              matches: [
                {
                  path: { value: '/api' },
                  headers: [
                    { name: 'a', value: '1' },
                    { name: 'b', value: '1' },
                  ],
                },
              ],
            },
            { matches: [{ path: { value: '/api' }, method: 'GET' }] },
            { matches: [{ path: { type: 'RegularExpression', value: '/api/v[0-9]+/.*' } }] },
            { matches: [{ path: { type: 'Exact', value: '/api/v1' } }] },
            { matches: [{ path: { value: '/api/v1/' } }] },
            {
              matches: [
                {
                  path: { value: '/api' },
                  headers: [{ name: 'a', value: '1' }],
                  queryParams: [{ name: 'q', value: '1' }],
                },
              ],
            },
          ],
        }),
      ],
      'default/web:80',
    );
    assert.deepEqual(describeHttp(sp), [
      'default/r#7 Exact /api/v1 h=0 q=0',
      'default/r#6 RegularExpression /api/v[0-9]+/.* h=0 q=0',
      'default/r#8 PathPrefix /api/v1 h=0 q=0', // the trailing "/" is not part of the prefix
      'default/r#5 PathPrefix /api GET h=0 q=0',
      'default/r#4 PathPrefix /api h=2 q=0',
      'default/r#9 PathPrefix /api h=1 q=1',
      'default/r#2 PathPrefix /api h=1 q=0',
      'default/r#3 PathPrefix /api h=0 q=2',
      'default/r#1 PathPrefix /api h=0 q=0',
      'default/r#0 PathPrefix / h=0 q=0',
    ]);
  });

  it('two routes with the same match on one Service: the older decides where requests go, whatever the names', () => {
    // As a source hands them over: raw objects, validated into the store's typed routes.
    const stored = (name: string, creationTimestamp: string, backend: string): HTTPRoute => {
      const v = validateResource({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name, namespace: 'default', creationTimestamp },
        spec: {
          parentRefs: [{ ...parent, port: 80 }],
          rules: [{ matches: [{ path: { value: '/api' } }], backendRefs: [{ name: backend, port: 80 }] }],
        },
      });
      assert.ok(v.ok === true, JSON.stringify(v));
      return v.value as HTTPRoute;
    };
    const decides = (routes: Route[]) =>
      forwardedTo(compileServiceRouter(portOf(routes, 'default/web:80')).route(req('/api/x')));
    const older = stored('z-older', '2024-01-01T00:00:00Z', 'web-v1');
    const newer = stored('a-newer', '2024-01-01T00:00:01Z', 'web-v2');
    assert.equal(decides([older, newer]), 'default/web-v1:80');
    assert.equal(decides([newer, older]), 'default/web-v1:80', 'the order the store lists them in does not matter');
    // The same two names with their ages swapped: the other route decides.
    assert.equal(
      decides([
        stored('z-older', '2024-01-01T00:00:01Z', 'web-v1'),
        stored('a-newer', '2024-01-01T00:00:00Z', 'web-v2'),
      ]),
      'default/web-v2:80',
    );
    // Without timestamps, the names decide ("namespace/name" in order).
    assert.equal(decides([http('z-older', older.spec), http('a-newer', newer.spec)]), 'default/web-v2:80');
  });

  it('ties go to the oldest route, then namespace/name, then rule order, then match order', () => {
    const same = {
      ...p,
      rules: [
        { matches: [{ path: { value: '/x' } }] },
        { matches: [{ path: { value: '/x' } }, { path: { value: '/y' } }] },
      ],
    };
    const sp = portOf(
      [
        http('b-newest', same, { created: '2024-03-01T00:00:00Z' }),
        http('z-oldest', same, { created: '2024-01-01T00:00:00Z' }),
        http('a-no-timestamp', same),
        http('a-middle', same, { created: '2024-02-01T00:00:00Z' }),
        http('b-middle', same, { created: '2024-02-01T00:00:00Z' }),
      ],
      'default/web:80',
    );
    assert.deepEqual(
      describeHttp(sp).filter((d) => d.includes('/x')),
      [
        'default/z-oldest#0 PathPrefix /x h=0 q=0',
        'default/z-oldest#1 PathPrefix /x h=0 q=0',
        'default/a-middle#0 PathPrefix /x h=0 q=0',
        'default/a-middle#1 PathPrefix /x h=0 q=0',
        'default/b-middle#0 PathPrefix /x h=0 q=0',
        'default/b-middle#1 PathPrefix /x h=0 q=0',
        'default/b-newest#0 PathPrefix /x h=0 q=0',
        'default/b-newest#1 PathPrefix /x h=0 q=0',
        'default/a-no-timestamp#0 PathPrefix /x h=0 q=0',
        'default/a-no-timestamp#1 PathPrefix /x h=0 q=0',
      ],
    );
  });

  it('GRPCRoute: exact service and method by length, then regex, then no method; then headers', () => {
    const sp = portOf(
      [
        grpc('g', {
          parentRefs: [{ ...parent, name: 'grpc' }],
          rules: [
            { matches: [] },
            { matches: [{ headers: [{ name: 'x-v', value: '2' }] }] },
            { matches: [{ method: { type: 'RegularExpression', service: 'pkg\\..*' } }] },
            { matches: [{ method: { method: 'Say' } }] },
            { matches: [{ method: { service: 'pkg.Echo' } }] },
            { matches: [{ method: { service: 'pkg.EchoLonger' } }] },
            { matches: [{ method: { service: 'pkg.Echo', method: 'Say' } }] },
            { matches: [{ method: { service: 'pkg.Echo', method: 'Say' }, headers: [{ name: 'x-v', value: '2' }] }] },
          ],
        }),
      ],
      'default/grpc:50051',
    );
    assert.equal(sp.protocol, 'grpc');
    assert.deepEqual(
      sp.matches.map((m) => m.rule),
      [5, 7, 6, 4, 3, 2, 1, 0],
    );
  });
});

// ---- matching ----

function router(spec: unknown, key = 'default/web:80', kind: 'HTTPRoute' | 'GRPCRoute' = 'HTTPRoute') {
  const route = kind === 'HTTPRoute' ? http('r', spec) : grpc('r', spec);
  return compileServiceRouter(portOf([route], key));
}

describe('route matching: HTTP', () => {
  const p = { parentRefs: [{ ...parent, port: 80 }] };
  const to = (name: string) => [{ name, port: 80 }];

  it('an Exact path wins over a prefix, a longer prefix over a shorter one; prefixes match whole path elements', () => {
    const r = router({
      ...p,
      rules: [
        { matches: [{ path: { value: '/' } }], backendRefs: to('web') },
        { matches: [{ path: { value: '/api/' } }], backendRefs: to('web-v1') },
        { matches: [{ path: { type: 'Exact', value: '/api/v2' } }], backendRefs: to('web-v2') },
      ],
    });
    const go = (path: string) => forwardedTo(r.route(req(path)));
    assert.equal(go('/api/v2'), 'default/web-v2:80');
    assert.equal(go('/api/v2?x=1'), 'default/web-v2:80', 'the query string is not part of the path');
    assert.equal(go('/api/v2/'), 'default/web-v1:80');
    assert.equal(go('/api'), 'default/web-v1:80');
    assert.equal(go('/api/'), 'default/web-v1:80');
    assert.equal(go('/api/v1/x'), 'default/web-v1:80');
    assert.equal(go('/apis'), 'default/web:80');
    assert.equal(go('/'), 'default/web:80');
  });

  it('no match is a 404 (gRPC: UNIMPLEMENTED), the same shared decision every time', () => {
    const r = router({ ...p, rules: [{ matches: [{ path: { value: '/api' } }], backendRefs: to('web-v1') }] });
    const d = r.route(req('/other'));
    assert.deepEqual(
      { ...d },
      {
        kind: 'respond',
        service: 'default/web:80',
        status: 404,
        grpcStatus: 12,
        reason: 'no route matches the request',
        route: undefined,
        rule: undefined,
      },
    );
    assert.equal(r.route(req('/else')), d);
  });

  it('a regex path is matched whole, after Exact and before prefixes', () => {
    const r = router({
      ...p,
      rules: [
        { backendRefs: to('web') },
        { matches: [{ path: { type: 'RegularExpression', value: '/users/[0-9]+' } }], backendRefs: to('web-v2') },
      ],
    });
    assert.equal(forwardedTo(r.route(req('/users/42'))), 'default/web-v2:80');
    assert.equal(forwardedTo(r.route(req('/users/42/posts'))), 'default/web:80');
    assert.equal(forwardedTo(r.route(req('/x/users/42'))), 'default/web:80');
  });

  it('a header match sends the canary its requests: names case-insensitive, repeated values joined', () => {
    const r = router({
      ...p,
      rules: [
        { backendRefs: to('web-v1') },
        { matches: [{ headers: [{ name: 'X-Canary', value: 'true' }] }], backendRefs: to('web-v2') },
        {
          matches: [{ headers: [{ name: 'X-Env', type: 'RegularExpression', value: 'stag(e|ing)' }] }],
          backendRefs: to('web-v2'),
        },
        {
          matches: [{ path: { value: '/multi' }, headers: [{ name: 'accept', value: 'a, b' }] }],
          backendRefs: to('web-v2'),
        },
        {
          matches: [{ path: { value: '/host' }, headers: [{ name: 'Host', value: 'web.example' }] }],
          backendRefs: to('web-v2'),
        },
      ],
    });
    assert.equal(forwardedTo(r.route(req('/', { 'x-canary': 'true' }))), 'default/web-v2:80');
    assert.equal(
      forwardedTo(r.route(req('/', { 'x-canary': 'TRUE' }))),
      'default/web-v1:80',
      'values are case-sensitive',
    );
    assert.equal(forwardedTo(r.route(req('/', {}))), 'default/web-v1:80');
    assert.equal(forwardedTo(r.route(req('/', { 'x-env': 'staging' }))), 'default/web-v2:80');
    assert.equal(
      forwardedTo(r.route(req('/', { 'x-env': 'staging-2' }))),
      'default/web-v1:80',
      'a regex matches the whole value',
    );
    assert.equal(forwardedTo(r.route(req('/multi', { accept: ['a', 'b'] }))), 'default/web-v2:80');
    assert.equal(
      forwardedTo(r.route(req('/host', { ':authority': 'web.example' }))),
      'default/web-v2:80',
      'HTTP/2 :authority is the Host header',
    );
    assert.equal(forwardedTo(r.route(req('/host', { host: 'web.example' }))), 'default/web-v2:80');
  });

  it('method and query parameter matches', () => {
    const r = router({
      ...p,
      rules: [
        { backendRefs: to('web') },
        { matches: [{ method: 'POST' }], backendRefs: to('web-v1') },
        { matches: [{ queryParams: [{ name: 'v', value: 'two words' }] }], backendRefs: to('web-v2') },
        {
          matches: [{ queryParams: [{ name: 'id', type: 'RegularExpression', value: '[0-9]+' }] }],
          backendRefs: to('web-v2'),
        },
      ],
    });
    assert.equal(forwardedTo(r.route(req('/', {}, 'POST'))), 'default/web-v1:80');
    assert.equal(forwardedTo(r.route(req('/', {}, 'GET'))), 'default/web:80');
    assert.equal(forwardedTo(r.route(req('/?v=two+words'))), 'default/web-v2:80');
    assert.equal(forwardedTo(r.route(req('/?v=two%20words&v=other'))), 'default/web-v2:80', 'the first value counts');
    assert.equal(forwardedTo(r.route(req('/?v=other&v=two+words'))), 'default/web:80');
    assert.equal(forwardedTo(r.route(req('/?id=42'))), 'default/web-v2:80');
    assert.equal(forwardedTo(r.route(req('/?id=4x2'))), 'default/web:80');
    assert.equal(forwardedTo(r.route(req('/?ID=42'))), 'default/web:80', 'parameter names are case-sensitive');
    assert.deepEqual(
      [...parseQuery('a=1&b&a=2&c=%zz&&d=x%3Dy')],
      [
        ['a', '1'],
        ['b', ''],
        ['c', '%zz'],
        ['d', 'x=y'],
      ],
    );
  });

  it('weighted backends: a 90/10 split by the random draw; weight 0 never; every decision shared', () => {
    const r = router({
      ...p,
      rules: [
        {
          backendRefs: [
            { name: 'web-v1', port: 80, weight: 90 },
            { name: 'web', port: 80, weight: 0 },
            { name: 'web-v2', port: 80, weight: 10 },
          ],
        },
      ],
    });
    const at = (x: number) => forwardedTo(r.route(req('/'), () => x));
    assert.deepEqual([0, 0.5, 0.8999, 0.9, 0.9999].map(at), [
      'default/web-v1:80',
      'default/web-v1:80',
      'default/web-v1:80',
      'default/web-v2:80',
      'default/web-v2:80',
    ]);
    const random = seeded(7);
    const counts = new Map<string, number>();
    let first: RouteDecision | undefined;
    for (let i = 0; i < 10_000; i++) {
      const d = r.route(req('/'), random);
      if (forwardedTo(d) === 'default/web-v2:80') first ??= d;
      assert.ok(d === first || forwardedTo(d) !== 'default/web-v2:80', 'the decision for one backend is one object');
      counts.set(forwardedTo(d), (counts.get(forwardedTo(d)) ?? 0) + 1);
    }
    assert.equal(counts.get('default/web:80'), undefined);
    const share = counts.get('default/web-v2:80')! / 10_000;
    assert.ok(Math.abs(share - 0.1) < 0.01, `canary share ${share}`);
  });

  it('a rule with no backend, or whose drawn backend is invalid, answers 500 with the reason', () => {
    const r = router({
      ...p,
      rules: [
        { matches: [{ path: { value: '/none' } }], backendRefs: [{ name: 'web-v1', port: 80, weight: 0 }] },
        {
          matches: [{ path: { value: '/half' } }],
          backendRefs: [
            { name: 'web-v1', port: 80 },
            { name: 'nope', port: 80 },
          ],
        },
      ],
    });
    const none = r.route(req('/none'));
    assert.equal(none.kind, 'respond');
    assert.deepEqual(
      [none.kind === 'respond' && none.status, none.kind === 'respond' && none.grpcStatus, none.route, none.rule],
      [500, 14, 'default/r', 0],
    );
    assert.equal(forwardedTo(r.route(req('/half'), () => 0.25)), 'default/web-v1:80');
    const bad = r.route(req('/half'), () => 0.75);
    assert.equal(bad.kind === 'respond' && `${bad.status} ${bad.reason}`, '500 Service default/nope not found');
  });

  it('a forward decision carries the header edits (rule then backend) and the timeouts', () => {
    const r = router({
      ...p,
      rules: [
        {
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: {
                set: [{ name: 'X-Route', value: 'r' }],
                add: [{ name: 'Via', value: 'weft' }],
                remove: ['X-Secret'],
              },
            },
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { set: [{ name: 'Cache-Control', value: 'no-store' }] },
            },
          ],
          backendRefs: [
            {
              name: 'web-v2',
              port: 80,
              filters: [
                {
                  type: 'RequestHeaderModifier',
                  requestHeaderModifier: { set: [{ name: 'X-Route', value: 'canary' }] },
                },
              ],
            },
          ],
          timeouts: { request: '5s' },
        },
      ],
    });
    const d = r.route(req('/'));
    assert.ok(d.kind === 'forward');
    assert.deepEqual(
      [d.route, d.rule, d.ruleName, d.requestTimeoutMs, d.backendRequestTimeoutMs],
      ['default/r', 0, undefined, 5000, undefined],
    );
    const headers: Record<string, string | string[] | undefined> = { 'x-secret': 's', via: '1.1 edge', accept: '*/*' };
    applyHeaderEdits(headers, d.requestHeaders);
    assert.deepEqual(headers, { 'x-route': 'canary', via: ['1.1 edge', 'weft'], accept: '*/*' });
    const response: Record<string, string | string[] | undefined> = {
      'cache-control': 'max-age=60',
      'set-cookie': ['a=1'],
    };
    applyHeaderEdits(response, d.responseHeaders);
    assert.deepEqual(response, { 'cache-control': 'no-store', 'set-cookie': ['a=1'] });
    applyHeaderEdits(response, [{ set: [], add: [{ name: 'set-cookie', value: 'b=2' }], remove: [] }]);
    assert.deepEqual(response['set-cookie'], ['a=1', 'b=2']);
  });
});

describe('route matching: gRPC', () => {
  const r = () =>
    router(
      {
        parentRefs: [{ ...parent, name: 'grpc' }],
        rules: [
          { backendRefs: [{ name: 'web', port: 80 }] },
          {
            matches: [{ method: { service: 'pkg.Echo', method: 'Say' } }],
            backendRefs: [{ name: 'web-v1', port: 80 }],
          },
          {
            matches: [{ method: { service: 'pkg.Echo' }, headers: [{ name: 'x-canary', value: '1' }] }],
            backendRefs: [{ name: 'web-v2', port: 80 }],
          },
          {
            matches: [{ method: { type: 'RegularExpression', method: 'Stream.*' } }],
            backendRefs: [{ name: 'web-v2', port: 80 }],
          },
        ],
      },
      'default/grpc:50051',
      'GRPCRoute',
    );

  it('matches service and method from the path, exact before regex before catch-all', () => {
    const g = r();
    assert.equal(g.protocol, 'grpc');
    const go = (path: string, headers = {}) => forwardedTo(g.route(req(path, headers, 'POST')));
    assert.equal(go('/pkg.Echo/Say'), 'default/web-v1:80');
    assert.equal(go('/pkg.Echo/Shout'), 'default/web:80');
    assert.equal(go('/pkg.Echo/Shout', { 'x-canary': '1' }), 'default/web-v2:80');
    assert.equal(go('/other.Svc/StreamAll'), 'default/web-v2:80');
    assert.equal(go('/other.Svc/AStream'), 'default/web:80');
    assert.equal(go('/not-grpc'), 'default/web:80', 'a path that is no gRPC method matches only method-less rules');
    assert.equal(go('/pkg.Echo/Say/extra'), 'default/web:80');
  });

  it('with no catch-all, an unknown method answers UNIMPLEMENTED', () => {
    const g = router(
      {
        parentRefs: [{ ...parent, name: 'grpc' }],
        rules: [{ matches: [{ method: { service: 'pkg.Echo' } }], backendRefs: [{ name: 'web', port: 80 }] }],
      },
      'default/grpc:50051',
      'GRPCRoute',
    );
    const d = g.route(req('/pkg.Other/Say'));
    assert.ok(d.kind === 'respond');
    assert.deepEqual([d.status, d.grpcStatus], [404, 12]);
  });
});

describe('ProxyRouter', () => {
  it('finds a Service port by name and by original destination, IPv6 in any spelling', () => {
    const out = compileRoutes(
      [http('r', { parentRefs: [{ ...parent, port: 80 }], rules: [{ backendRefs: [{ name: 'web-v1', port: 80 }] }] })],
      SERVICES,
    );
    const table = new ProxyRouter(1, out.services);
    assert.equal(table.forService('default/web:80')?.protocol, 'http');
    assert.equal(table.forDestination('10.96.0.10', 80), table.forService('default/web:80'));
    assert.equal(table.forDestination('fd00:0::0010', 80), table.forService('default/web:80'));
    assert.equal(table.forDestination('10.96.0.10', 9090), undefined);
    assert.equal(table.forService('default/web:9090'), undefined);
  });
});
