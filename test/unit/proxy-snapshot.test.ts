// The snapshot weftd sends weft-proxy: built from the route table and the Services'
// frontends, validated in full before the proxy swaps it in, refused by field otherwise.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptSnapshot, validateSnapshot, type ProxySnapshot } from '../../src/contract/proxy-snapshot.js';
import { ProxyRouter } from '../../src/proxy/route-match.js';
import type { EndpointSlice, Service } from '../../src/state/resources.js';
import { compileRoutes, type Route } from '../../src/state/routes/compile.js';
import { buildSnapshot } from '../../src/state/routes/snapshot.js';
import { validateHTTPRoute } from '../../src/state/routes/validate.js';
import { compileServices } from '../../src/state/services.js';

function service(name: string, clusterIPs: string[], ports: { name: string; port: number }[]): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'demo' },
    spec: { clusterIPs, ports: ports.map((p) => ({ ...p, protocol: 'TCP' as const })) },
  };
}

function slice(
  svc: string,
  family: 'IPv4' | 'IPv6',
  port: { name: string; port: number },
  endpoints: [string, boolean][],
): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-${family}`, namespace: 'demo', labels: { 'kubernetes.io/service-name': svc } },
    addressType: family,
    ports: [{ name: port.name, port: port.port, protocol: 'TCP' }],
    endpoints: endpoints.map(([ip, ready]) => ({ addresses: [ip], conditions: { ready } })),
  };
}

const services = [
  service('web', ['10.96.0.10', 'fd00::10'], [{ name: 'http', port: 80 }]),
  service('web-v1', ['10.96.0.11'], [{ name: 'http', port: 80 }]),
  service('web-v2', ['10.96.0.12'], [{ name: 'http', port: 80 }]),
];
const slices = [
  slice('web', 'IPv4', { name: 'http', port: 8080 }, [
    ['10.244.0.2', true],
    ['10.244.0.3', true],
  ]),
  slice('web', 'IPv6', { name: 'http', port: 8080 }, [['fd00:244::2', true]]),
  slice('web-v1', 'IPv4', { name: 'http', port: 8080 }, [
    ['10.244.0.5', true],
    ['10.244.0.4', true],
    ['10.244.0.9', false],
  ]),
];

function route(spec: unknown): Route {
  const v = validateHTTPRoute({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { namespace: 'demo', name: 'web-split' },
    spec,
  });
  assert.ok(v.ok, JSON.stringify(v));
  return v.value;
}

const canary = route({
  parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
  rules: [
    { matches: [{ headers: [{ name: 'X-Canary', value: 'true' }] }], backendRefs: [{ name: 'web-v2', port: 80 }] },
    {
      matches: [{ path: { type: 'RegularExpression', value: '/api/v[0-9]+' } }],
      filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'X-Api', value: '1' }] } }],
      backendRefs: [
        { name: 'web-v1', port: 80, weight: 90 },
        { name: 'web-v2', port: 80, weight: 10 },
      ],
      timeouts: { request: '10s', backendRequest: '2s' },
    },
  ],
});

function built(version = 1): ProxySnapshot {
  const table = compileRoutes([canary], services);
  return buildSnapshot({
    version,
    services: table.services,
    backends: table.backends,
    frontends: compileServices(services, slices).frontends,
  });
}

/** A deep copy to break. */
const copy = (): Record<string, any> => JSON.parse(JSON.stringify(built()));

function refused(raw: unknown, field: string, msg: RegExp): void {
  const v = validateSnapshot(raw);
  assert.equal(v.ok, false, `expected ${field} to be refused`);
  const errors = (v as { errors: string[] }).errors;
  assert.ok(
    errors.some((e) => e.startsWith(`${field}: `) && msg.test(e)),
    `want ${field} ~ ${msg}, got ${JSON.stringify(errors)}`,
  );
  assert.equal((v as { error: string }).error, errors.join('; '));
}

describe('buildSnapshot', () => {
  it('carries every routed port and the ready endpoints of every backend, target ports resolved, both families', () => {
    const s = built();
    assert.equal(s.version, 1);
    assert.equal(s.balancer, 'peak-ewma');
    assert.deepEqual(s.backends, {
      'demo/web-v1:80': {
        protocol: 'unknown',
        endpoints: [
          { ip: '10.244.0.4', port: 8080 },
          { ip: '10.244.0.5', port: 8080 },
        ],
      },
      'demo/web-v2:80': { protocol: 'unknown', endpoints: [] },
      // The routed port itself, for connections that are not HTTP.
      'demo/web:80': {
        protocol: 'unknown',
        endpoints: [
          { ip: '10.244.0.2', port: 8080 },
          { ip: '10.244.0.3', port: 8080 },
          { ip: 'fd00:244::2', port: 8080 },
        ],
      },
    });
    assert.deepEqual(
      s.services.map((p) => [p.service, p.port, p.protocol, p.addresses]),
      [['demo/web', 80, 'http', ['10.96.0.10', 'fd00::10']]],
    );
  });

  it('is valid, survives JSON, and the proxy routes with it', () => {
    const s = built();
    const v = validateSnapshot(JSON.parse(JSON.stringify(s)));
    assert.ok(v.ok, JSON.stringify(v));
    assert.deepEqual(v.value, s);
    const table = ProxyRouter.fromSnapshot(v.value);
    const web = table.forDestination('fd00::10', 80)!;
    const d = web.route({ method: 'GET', path: '/api/v2', headers: {} }, () => 0.95);
    assert.ok(d.kind === 'forward');
    assert.deepEqual(
      [d.backend, d.requestTimeoutMs, d.backendRequestTimeoutMs, d.responseHeaders],
      ['demo/web-v2:80', 10_000, 2000, [{ set: [{ name: 'x-api', value: '1' }], add: [], remove: [] }]],
    );
    const c = web.route({ method: 'GET', path: '/', headers: { 'x-canary': 'true' } });
    assert.equal(c.kind === 'forward' && c.backend, 'demo/web-v2:80');
    // A regex path outranks a PathPrefix "/" with a header.
    const r = web.route({ method: 'GET', path: '/api/v2', headers: { 'x-canary': 'true' } }, () => 0);
    assert.equal(r.kind === 'forward' && r.backend, 'demo/web-v1:80');
  });
});

describe('validateSnapshot refuses by field', () => {
  it('the envelope', () => {
    assert.deepEqual(validateSnapshot(null), {
      ok: false,
      error: '(snapshot): must be an object',
      errors: ['(snapshot): must be an object'],
    });
    for (const version of [0, -1, 1.5, '2', undefined]) refused({ ...copy(), version }, 'version', /not an integer/);
    refused({ ...copy(), balancer: 'random' }, 'balancer', /not one of peak-ewma, round-robin, least-request/);
    refused({ ...copy(), services: {} }, 'services', /must be a list/);
    refused({ ...copy(), backends: [] }, 'backends', /must be an object/);
  });

  it('service ports', () => {
    const s = copy();
    s.services[0].protocol = 'tcp';
    refused(s, 'services[0].protocol', /not one of http, grpc/);
    const n = copy();
    n.services[0].service = 'web';
    refused(n, 'services[0].service', /namespace\/name/);
    const a = copy();
    a.services[0].addresses.push('10.96.0');
    refused(a, 'services[0].addresses[2]', /not an IP address/);
    const d = copy();
    d.services.push({ ...d.services[0], portName: 'again' });
    refused(d, 'services[1]', /demo\/web:80 is also services\[0\]/);
    const dest = copy();
    dest.services.push({ ...dest.services[0], service: 'demo/other', addresses: ['fd00:0::10'] });
    refused(dest, 'services[1].addresses', /fd00::10 port 80 is also services\[0\]'s/);
  });

  it('matches', () => {
    const r = copy();
    r.services[0].matches[0].rule = 7;
    refused(r, 'services[0].matches[0].rule', /not an integer in 0\.\.1/);
    const re = copy();
    re.services[0].matches.find((m: any) => m.path.type === 'RegularExpression').path.value = '/api/(';
    refused(re, 'services[0].matches[0].path.value', /not a valid regular expression/);
    const p = copy();
    p.services[0].matches[1].path = { type: 'PathPrefix', value: '/api/' };
    refused(p, 'services[0].matches[1].path.value', /no trailing/);
    const h = copy();
    h.services[0].matches[1].headers[0].name = 'X-Canary';
    refused(h, 'services[0].matches[1].headers[0].name', /lower-case header name/);
    const m = copy();
    m.services[0].matches[0].method = 'get';
    refused(m, 'services[0].matches[0].method', /not one of GET/);
    const g = copy();
    g.services[0].protocol = 'grpc';
    g.services[0].matches = [{ rule: 0, method: { type: 'Exact' }, headers: [] }];
    refused(g, 'services[0].matches[0].method', /needs a service, a method or both/);
  });

  it('consumer tables and the fallback', () => {
    const ok = copy();
    ok.services[0].consumers = [{ namespace: 'shop', matches: [ok.services[0].matches[0]] }];
    ok.services[0].fallback = 'forward';
    const v = validateSnapshot(ok);
    assert.ok(v.ok, JSON.stringify(v));
    assert.deepEqual(
      v.value.services[0]!.consumers?.map((c) => c.namespace),
      ['shop'],
    );
    const ns = copy();
    ns.services[0].consumers = [{ namespace: 'Shop', matches: [] }];
    refused(ns, 'services[0].consumers[0].namespace', /a namespace name/);
    const twice = copy();
    twice.services[0].consumers = [
      { namespace: 'shop', matches: [] },
      { namespace: 'shop', matches: [] },
    ];
    refused(twice, 'services[0].consumers[1].namespace', /listed twice/);
    const rule = copy();
    rule.services[0].consumers = [{ namespace: 'shop', matches: [{ ...rule.services[0].matches[0], rule: 9 }] }];
    refused(rule, 'services[0].consumers[0].matches[0].rule', /not an integer in 0\.\.1/);
    const fb = copy();
    fb.services[0].fallback = 'drop';
    refused(fb, 'services[0].fallback', /not one of forward/);
    const gone = copy();
    gone.services[0].fallback = 'forward';
    delete gone.backends['demo/web:80'];
    refused(gone, 'services[0].fallback', /demo\/web:80 is not in backends/);
  });

  it('rules and backends', () => {
    const missing = copy();
    missing.services[0].rules[0].backends[0].backend = 'demo/nope:80';
    refused(missing, 'services[0].rules[0].backends[0].backend', /"demo\/nope:80" is not in backends/);
    const both = copy();
    both.services[0].rules[0].backends[0].invalid = 'why';
    refused(both, 'services[0].rules[0].backends[0]', /exactly one of backend and invalid/);
    const w = copy();
    w.services[0].rules[1].backends[1].weight = 0;
    refused(w, 'services[0].rules[1].backends[1].weight', /1\.\.1000000/);
    const t = copy();
    t.services[0].rules[1].backendRequestTimeoutMs = 20_000;
    refused(t, 'services[0].rules[1].backendRequestTimeoutMs', /longer than requestTimeoutMs 10000/);
    const e = copy();
    e.services[0].rules[1].responseHeaders.set.push({ name: 'transfer-encoding', value: 'chunked' });
    refused(e, 'services[0].rules[1].responseHeaders.set[1].name', /connection-level header/);
    const v = copy();
    v.services[0].rules[1].responseHeaders.set[0].value = 'a\nb';
    refused(v, 'services[0].rules[1].responseHeaders.set[0].value', /control characters/);
    const dup = copy();
    dup.services[0].rules[1].responseHeaders.remove = ['x-api'];
    refused(dup, 'services[0].rules[1].responseHeaders.remove[0]', /more than one action/);
  });

  it('the endpoints', () => {
    const k = copy();
    k.backends['demo/web-v3'] = { protocol: 'unknown', endpoints: [] };
    refused(k, 'backends["demo/web-v3"]', /namespace\/name:port/);
    const p = copy();
    p.backends['demo/web-v1:80'].protocol = 'h3';
    refused(p, 'backends["demo/web-v1:80"].protocol', /not one of http1, h2c, unknown/);
    const ip = copy();
    ip.backends['demo/web-v1:80'].endpoints[0].ip = '10.244.0';
    refused(ip, 'backends["demo/web-v1:80"].endpoints[0].ip', /not an IP address/);
    const dup = copy();
    dup.backends['demo/web:80'].endpoints.push({ ip: 'fd00:244:0::2', port: 8080 });
    refused(dup, 'backends["demo/web:80"].endpoints[3]', /fd00:244::2 port 8080 is listed twice/);
    const port = copy();
    port.backends['demo/web:80'].endpoints[0].port = 0;
    refused(port, 'backends["demo/web:80"].endpoints[0].port', /not a port number/);
  });
});

describe('acceptSnapshot', () => {
  it('takes a newer valid snapshot; keeps the running one for an invalid or an older one', () => {
    const running = built(5);
    const newer = acceptSnapshot(running, built(6));
    assert.ok(newer.ok);
    assert.equal(newer.value.version, 6);
    assert.deepEqual(acceptSnapshot(running, built(5)), {
      ok: false,
      error: "version: 5 is not newer than the running snapshot's 5",
      errors: ["version: 5 is not newer than the running snapshot's 5"],
    });
    const broken = { ...copy(), version: 7, balancer: 'fastest' };
    const v = acceptSnapshot(running, broken);
    assert.equal(v.ok, false);
    assert.match((v as { error: string }).error, /^balancer: /);
    assert.ok(acceptSnapshot(undefined, built(1)).ok, 'the first snapshot needs only be valid');
  });
});
