// weft-proxy routes and balances every request: a real proxy process, real backends on
// loopback addresses, a snapshot built from Services, EndpointSlices and an HTTPRoute the way
// weftd builds it. Statistical checks use stated tolerances (binomial, ±4 sd); nothing here
// depends on timing.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ProxySnapshot } from '../../src/contract/proxy-snapshot.js';
import { PREFACE } from '../../src/proxy/h2/frames.js';
import {
  Cleanup,
  buildTestSnapshot,
  eventually,
  followFlows,
  freePort,
  freePortOn,
  h1Backend,
  h1Request,
  h2Backend,
  h2Connect,
  h2Request,
  httpRoute,
  startProxy,
  type Echo,
  type ProxyProcess,
} from '../fixtures/proxy-harness.js';
import { parsePrometheusText, sampleValue } from '../harness/prom-text.js';
import type { Flow } from '../../src/contract/flow.js';

const CLIENT = '127.0.0.9';
/** A client in another namespace ("shop"), which has a consumer route for web. */
const SHOP_CLIENT = '127.0.0.10';
const WEB = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const CANARY = '127.0.0.5';

const cleanup = new Cleanup();
let proxy: ProxyProcess;
let port: number;
let snapshot: ProxySnapshot;

const route = httpRoute('web-routes', {
  parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
  rules: [
    {
      matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ name: 'x-canary', value: 'true' }] }],
      backendRefs: [{ name: 'web-v2', port: 80 }],
    },
    {
      matches: [{ path: { type: 'PathPrefix', value: '/split' } }],
      backendRefs: [
        { name: 'web', port: 80, weight: 90 },
        { name: 'web-v2', port: 80, weight: 10 },
      ],
    },
    {
      matches: [{ path: { type: 'Exact', value: '/exact/a' } }],
      filters: [
        { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-rule', value: 'exact' }] } },
      ],
      backendRefs: [{ name: 'web-v2', port: 80 }],
    },
    {
      matches: [{ path: { type: 'PathPrefix', value: '/exact' } }],
      filters: [
        { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-rule', value: 'prefix' }] } },
      ],
      backendRefs: [{ name: 'web', port: 80 }],
    },
    {
      matches: [{ path: { type: 'PathPrefix', value: '/timeout' } }],
      timeouts: { request: '300ms' },
      backendRefs: [{ name: 'web', port: 80 }],
    },
    { matches: [{ path: { type: 'PathPrefix', value: '/empty' } }], backendRefs: [{ name: 'empty', port: 80 }] },
    {
      matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
      filters: [
        {
          type: 'RequestHeaderModifier',
          requestHeaderModifier: { set: [{ name: 'x-added', value: 'yes' }], remove: ['x-drop'] },
        },
        { type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-resp', value: '1' }] } },
      ],
      backendRefs: [{ name: 'web', port: 80 }],
    },
  ],
});

/** GAMMA's consumer route: in the namespace "shop", for its clients only; it sends all of
 *  web's requests to web itself (no split, no canary) and marks the responses. */
const shopRoute = httpRoute(
  'shop-calls-web',
  {
    parentRefs: [{ group: '', kind: 'Service', name: 'web', namespace: 'demo', port: 80 }],
    rules: [
      {
        filters: [
          { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-consumer', value: 'shop' }] } },
        ],
        backendRefs: [{ name: 'web', namespace: 'demo', port: 80 }],
      },
    ],
  },
  'shop',
);

before(async () => {
  const webPort = await freePortOn(WEB);
  const canaryPort = await freePort(CANARY);
  for (const [i, ip] of WEB.entries()) await h2Backend(cleanup, `web-${i + 1}`, ip, webPort);
  await h1Backend(cleanup, 'canary', CANARY, canaryPort);
  proxy = await startProxy(cleanup);
  port = await freePort();
  snapshot = buildTestSnapshot({
    version: 1,
    services: [
      { name: 'web', clusterIP: '10.96.0.10', port: 80, targetPort: webPort, endpoints: WEB },
      { name: 'web-v2', clusterIP: '10.96.0.11', port: 80, targetPort: canaryPort, endpoints: [CANARY] },
      { name: 'empty', clusterIP: '10.96.0.12', port: 80, targetPort: 8080, endpoints: [] },
    ],
    routes: [route, shopRoute],
    listeners: [{ address: '127.0.0.1', port, service: 'demo/web', servicePort: 80 }],
    workloads: {
      [CLIENT]: { namespace: 'demo', pod: 'client', identity: 1001, labels: ['role=client'] },
      [SHOP_CLIENT]: { namespace: 'shop', pod: 'cart', identity: 1002, labels: ['app=cart'] },
      ...Object.fromEntries(
        WEB.map((ip, i) => [ip, { namespace: 'demo', pod: `web-${i + 1}`, identity: 2002, labels: ['app=web'] }]),
      ),
      [CANARY]: { namespace: 'demo', pod: 'canary', identity: 2003, labels: ['app=web', 'track=canary'] },
    },
  });
  assert.deepEqual(await proxy.put(snapshot), { version: 1 });
});

after(() => cleanup.run());

const backendOf = (a: { headers: Record<string, unknown> }) => String(a.headers['x-backend']);

describe('weft-proxy routing', () => {
  it("spreads the requests of one long-lived HTTP/2 connection over all three endpoints, with the route's header edits", async () => {
    const session = h2Connect(cleanup, port, CLIENT);
    const counts = new Map<string, number>();
    for (let batch = 0; batch < 30; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          h2Request(session, { ':path': '/api/items?x=1', 'x-drop': 'gone', 'x-keep': 'kept' }),
        ),
      );
      for (const a of answers) {
        assert.equal(a.status, 200);
        counts.set(backendOf(a), (counts.get(backendOf(a)) ?? 0) + 1);
      }
      if (batch === 0) {
        const echo = JSON.parse(answers[0]!.body) as Echo;
        assert.equal(echo.path, '/api/items?x=1');
        assert.equal(echo.headers['x-added'], 'yes');
        assert.equal(echo.headers['x-keep'], 'kept');
        assert.equal(echo.headers['x-drop'], undefined);
        assert.equal(answers[0]!.headers['x-resp'], '1');
      }
    }
    assert.deepEqual([...counts.keys()].sort(), ['web-1', 'web-2', 'web-3'], JSON.stringify([...counts]));
    session.close();
  });

  it('holds a 90/10 weighted split within ±4 standard deviations over 2,000 requests', async () => {
    const session = h2Connect(cleanup, port, CLIENT);
    const n = 2000;
    let canary = 0;
    for (let i = 0; i < n; i += 50) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => h2Request(session, { ':path': '/split' })));
      for (const a of answers) {
        assert.equal(a.status, 200);
        if (backendOf(a) === 'canary') canary++;
      }
    }
    // Binomial(2000, 0.1): mean 200, sd 13.4.
    const sd = Math.sqrt(n * 0.1 * 0.9);
    assert.ok(Math.abs(canary - n * 0.1) <= 4 * sd, `canary got ${canary} of ${n}, want 200 ± ${Math.round(4 * sd)}`);
    session.close();
  });

  it('sends requests with the canary header to the canary, others not', async () => {
    const session = h2Connect(cleanup, port, CLIENT);
    for (let i = 0; i < 20; i++) {
      const a = await h2Request(session, { ':path': '/x', 'x-canary': 'true' });
      assert.deepEqual([a.status, backendOf(a)], [200, 'canary']);
      // Only the header rule takes "/x": without the header, no route.
      const b = await h2Request(session, { ':path': '/x', 'x-canary': 'false' });
      assert.equal(b.status, 404);
      // A longer path prefix outranks the header match (the spec's precedence).
      const c = await h2Request(session, { ':path': '/api/x', 'x-canary': 'true' });
      assert.match(backendOf(c), /^web-\d$/);
    }
    session.close();
  });

  it('lets an Exact path win over a PathPrefix', async () => {
    const session = h2Connect(cleanup, port, CLIENT);
    const exact = await h2Request(session, { ':path': '/exact/a' });
    assert.deepEqual([exact.status, backendOf(exact), exact.headers['x-rule']], [200, 'canary', 'exact']);
    const prefix = await h2Request(session, { ':path': '/exact/b' });
    assert.equal(prefix.headers['x-rule'], 'prefix');
    assert.match(backendOf(prefix), /^web-\d$/);
    session.close();
  });

  it("routes the clients of a namespace with a consumer route by that route, and everyone else by the producer's (GAMMA)", async () => {
    const shop = h2Connect(cleanup, port, SHOP_CLIENT);
    const demo = h2Connect(cleanup, port, CLIENT);
    // The producer's canary rule does not apply to shop's clients: their route has no canary.
    for (let i = 0; i < 20; i++) {
      const a = await h2Request(shop, { ':path': '/items', 'x-canary': 'true' });
      assert.equal(a.status, 200);
      assert.equal(a.headers['x-consumer'], 'shop');
      assert.match(backendOf(a), /^web-\d$/);
    }
    const h1 = await h1Request(port, { path: '/exact/a', localAddress: SHOP_CLIENT });
    assert.deepEqual([h1.status, h1.headers['x-consumer'], h1.headers['x-rule']], [200, 'shop', undefined]);
    const d = await h2Request(demo, { ':path': '/items', 'x-canary': 'true' });
    assert.deepEqual([d.status, d.headers['x-consumer'], backendOf(d)], [200, undefined, 'canary']);
    const e = await h2Request(demo, { ':path': '/exact/a' });
    assert.deepEqual([e.headers['x-consumer'], e.headers['x-rule']], [undefined, 'exact']);
    shop.close();
    demo.close();
  });

  it("answers 404 when no route matches, 503 when the backend has no endpoint, 504 on the route's timeout", async () => {
    const session = h2Connect(cleanup, port, CLIENT);
    assert.equal((await h2Request(session, { ':path': '/nothing' })).status, 404);
    assert.equal((await h2Request(session, { ':path': '/empty/x' })).status, 503);
    assert.equal((await h2Request(session, { ':path': '/timeout/slow' })).status, 504);
    // The connection serves on.
    assert.equal((await h2Request(session, { ':path': '/api/after' })).status, 200);
    assert.equal((await h1Request(port, { path: '/nothing' })).status, 404);
    assert.equal((await h1Request(port, { path: '/empty' })).status, 503);
    session.close();
  });

  it('serves HTTP/1.1 clients, to HTTP/2 and HTTP/1.1 endpoints, bodies both ways, on kept-alive connections', async () => {
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.add(() => agent.destroy());
    for (let i = 0; i < 5; i++) {
      const a = await h1Request(port, {
        method: 'POST',
        path: '/api/post',
        headers: { 'content-type': 'text/plain', connection: 'keep-alive, x-hop', 'x-hop': 'no' },
        body: `hello ${i}`,
        agent,
      });
      assert.equal(a.status, 200);
      const echo = JSON.parse(a.body) as Echo;
      assert.match(echo.backend, /^web-\d$/);
      assert.deepEqual(
        [echo.method, echo.body, echo.headers['x-added'], echo.headers['x-hop'], echo.headers[':authority']],
        ['POST', `hello ${i}`, 'yes', undefined, `127.0.0.1:${port}`],
      );
      const c = await h1Request(port, {
        method: 'PUT',
        path: '/x',
        headers: { 'x-canary': 'true' },
        body: 'to canary',
        agent,
      });
      const ce = JSON.parse(c.body) as Echo;
      assert.deepEqual([ce.backend, ce.method, ce.body], ['canary', 'PUT', 'to canary']);
    }
  });

  it('upgrades HTTP/1.1 to HTTP/2 (Upgrade: h2c) and answers the upgraded request on stream 1', async () => {
    const frames = await new Promise<{ type: number; flags: number; stream: number; payload: Buffer }[]>(
      (resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        let switched = false;
        const got: { type: number; flags: number; stream: number; payload: Buffer }[] = [];
        const t = setTimeout(
          () => (
            s.destroy(),
            reject(new Error(`no complete answer: ${JSON.stringify(got.map((f) => [f.type, f.stream]))}`))
          ),
          10_000,
        );
        s.on('error', reject);
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (!switched) {
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            const head = buf.subarray(0, end).toString('latin1');
            if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head));
            switched = true;
            buf = buf.subarray(end + 4);
            // The client's preface: the magic and an empty SETTINGS frame.
            s.write(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
          }
          while (buf.length >= 9) {
            const len = buf.readUIntBE(0, 3);
            if (buf.length < 9 + len) break;
            const f = {
              type: buf[3]!,
              flags: buf[4]!,
              stream: buf.readUInt32BE(5) & 0x7fffffff,
              payload: buf.subarray(9, 9 + len),
            };
            got.push(f);
            buf = buf.subarray(9 + len);
            if (f.stream === 1 && f.flags & 1) {
              clearTimeout(t);
              s.destroy();
              resolve(got);
            }
          }
        });
        s.write(
          `GET /api/upgraded HTTP/1.1\r\nHost: web\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-Up: 1\r\n\r\n`,
        );
      },
    );
    assert.equal(frames[0]!.type, 4, "the server's first frame is SETTINGS");
    const headers = frames.find((f) => f.type === 1 && f.stream === 1);
    assert.ok(headers, 'a HEADERS frame on stream 1');
    const body = Buffer.concat(frames.filter((f) => f.type === 0 && f.stream === 1).map((f) => f.payload)).toString();
    const echo = JSON.parse(body) as Echo;
    assert.deepEqual(
      [echo.path, echo.headers['x-up'], echo.headers['x-added'], echo.headers[':authority']],
      ['/api/upgraded', '1', 'yes', 'web'],
    );
  });

  it('reports every request as an L7 flow on GET /v1/flows?follow=1', async () => {
    const flows = followFlows(proxy.adminSocket);
    cleanup.add(() => flows.stop());
    await flows.ready;
    const session = h2Connect(cleanup, port, CLIENT);
    await h2Request(session, { ':path': '/api/flow' });
    await h2Request(session, { ':path': '/nothing' });
    await h2Request(session, { ':path': '/empty/flow' });
    await h2Request(session, { ':path': '/timeout/slow' });
    await h2Request(session, { ':method': 'POST', ':path': '/api/flow', 'content-type': 'text/plain' }, 'x');
    await eventually(() => flows.lines.length >= 5, 'five flows');
    const got = (flows.lines as { flow: Flow }[]).map((l) => l.flow);
    const [ok, noRoute, noEndpoint, timeout, post] = got;
    assert.equal(ok!.type, 'l7');
    assert.equal(ok!.verdict, 'FORWARDED');
    assert.equal(ok!.service, 'demo/web');
    assert.equal(ok!.is_reply, false);
    assert.equal(ok!.l4.protocol, 'TCP');
    assert.deepEqual(
      [ok!.source.ip, ok!.source.namespace, ok!.source.pod, ok!.source.identity, ok!.source.labels],
      [CLIENT, 'demo', 'client', 1001, ['role=client']],
    );
    assert.ok(ok!.source.port! > 0);
    assert.ok(WEB.includes(ok!.destination.ip));
    assert.match(ok!.destination.pod!, /^web-\d$/);
    assert.deepEqual([ok!.l7!.type, ok!.l7!.method, ok!.l7!.path, ok!.l7!.status], ['http', 'GET', '/api/flow', 200]);
    assert.equal(typeof ok!.l7!.latency_ms, 'number');
    assert.match(ok!.summary, /^GET \/api\/flow => 200 [\d.]+ms$/);
    assert.match(ok!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    assert.deepEqual(
      [noRoute!.verdict, noRoute!.drop_reason, noRoute!.l7!.status, noRoute!.destination.ip, noRoute!.destination.port],
      ['DROPPED', 'no-route', 404, '10.96.0.10', 80],
    );
    assert.deepEqual(
      [noEndpoint!.verdict, noEndpoint!.drop_reason, noEndpoint!.l7!.status],
      ['DROPPED', 'no-endpoint', 503],
    );
    assert.deepEqual(
      [timeout!.verdict, timeout!.drop_reason, timeout!.l7!.status],
      ['DROPPED', 'upstream-timeout', 504],
    );
    assert.deepEqual([post!.l7!.method, post!.l7!.status, post!.verdict], ['POST', 200, 'FORWARDED']);
    flows.stop();
    session.close();
  });

  it('counts requests in weft_http_requests_total and the duration histogram', async () => {
    const session = h2Connect(cleanup, port, CLIENT);
    const before = parsePrometheusText(await proxy.metrics());
    const labels = {
      source_workload: 'demo/client',
      destination_workload: 'demo/canary',
      destination_service: 'demo/web-v2',
      route: 'demo/web-routes',
      status: '200',
      grpc_status: '',
    };
    const was = sampleValue(before, 'weft_http_requests_total', labels);
    for (let i = 0; i < 7; i++) await h2Request(session, { ':path': '/exact/a' });
    await h2Request(session, { ':path': '/nothing' });
    const e = parsePrometheusText(await proxy.metrics());
    assert.equal(e.types.get('weft_http_requests_total'), 'counter');
    assert.equal(e.types.get('weft_http_request_duration_seconds'), 'histogram');
    assert.equal(sampleValue(e, 'weft_http_requests_total', labels), was + 7);
    assert.ok(
      sampleValue(e, 'weft_http_requests_total', {
        source_workload: 'demo/client',
        route: '',
        status: '404',
        destination_workload: '',
      }) >= 1,
    );
    const { status: _s, grpc_status: _g, ...h } = labels;
    assert.ok(sampleValue(e, 'weft_http_request_duration_seconds_count', h) >= 7);
    assert.equal(
      sampleValue(e, 'weft_http_request_duration_seconds_bucket', { ...h, le: '+Inf' }),
      sampleValue(e, 'weft_http_request_duration_seconds_count', h),
    );
    assert.equal(sampleValue(e, 'weft_proxy_snapshot_version'), 1);
    assert.ok(sampleValue(e, 'weft_proxy_connections_active') >= 1);
    assert.ok(sampleValue(e, 'weft_proxy_connections_total', { protocol: 'h2' }) >= 1);
    assert.equal(sampleValue(e, 'weft_proxy_snapshot_rejected_total'), 0);
    session.close();
  });
});
