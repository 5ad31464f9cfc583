// weft-proxy under bad input and change: malformed HTTP, broken snapshots, a listener that
// cannot be bound, snapshots swapped under a live connection, connections that are not HTTP
// (TCP passthrough), SIGTERM with a request in flight.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ListenerConfig, ProxySnapshot } from '../../src/contract/proxy-snapshot.js';
import type { Flow } from '../../src/contract/flow.js';
import {
  Cleanup,
  buildTestSnapshot,
  eventually,
  followFlows,
  freePort,
  freePortOn,
  h1Request,
  h2Backend,
  h2Connect,
  h2Request,
  httpRoute,
  rawExchange,
  startProxy,
  tcpEchoBackend,
  type Closable,
  type ProxyProcess,
} from '../fixtures/proxy-harness.js';
import { parsePrometheusText, sampleValue } from '../harness/prom-text.js';

const WEB = ['127.0.0.1', '127.0.0.2'];
const LINES = ['127.0.0.6', '127.0.0.7'];
const cleanup = new Cleanup();
let proxy: ProxyProcess;
let webPort: number;
let linesPort: number;
let webBackends: Closable[] = [];

/** The web Service's routes; `tag` is set as a response header, to tell snapshots apart. */
function snapshot(version: number, listeners: ListenerConfig[], tag = `v${version}`): ProxySnapshot {
  return buildTestSnapshot({
    version,
    services: [
      { name: 'web', clusterIP: '10.96.0.10', port: 80, targetPort: webPort, endpoints: WEB },
      { name: 'lines', clusterIP: '10.96.0.30', port: 7000, targetPort: linesPort, endpoints: LINES },
    ],
    routes: [
      httpRoute('web', {
        parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
            filters: [
              { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-snapshot', value: tag }] } },
            ],
            backendRefs: [{ name: 'web', port: 80 }],
          },
        ],
      }),
      // A route makes the line protocol's Service an L7 one: its port gets a listener, and
      // whatever on it is not HTTP passes through to its own endpoints.
      httpRoute('lines', {
        parentRefs: [{ group: '', kind: 'Service', name: 'lines' }],
        rules: [{ backendRefs: [{ name: 'lines', port: 7000 }] }],
      }),
    ],
    listeners,
  });
}

let webListen: number;
let linesListen: number;
let base: ListenerConfig[];

before(async () => {
  webPort = await freePortOn(WEB);
  linesPort = await freePortOn(LINES);
  webBackends = [];
  for (const [i, ip] of WEB.entries()) webBackends.push(await h2Backend(cleanup, `web-${i + 1}`, ip, webPort));
  for (const [i, ip] of LINES.entries()) await tcpEchoBackend(cleanup, `lines-${i + 1}`, ip, linesPort);
  proxy = await startProxy(cleanup);
  webListen = await freePort();
  linesListen = await freePort();
  base = [
    { address: '127.0.0.1', port: webListen, service: 'demo/web', servicePort: 80 },
    { address: '127.0.0.1', port: linesListen, service: 'demo/lines', servicePort: 7000 },
  ];
  assert.deepEqual(await proxy.get('/v1/snapshot'), { version: 0 });
  assert.deepEqual(await proxy.put(snapshot(1, base)), { version: 1 });
});

after(() => cleanup.run());

/** The admin API's error message (the 400's {error}). */
async function refused(p: Promise<unknown>, want: RegExp, what?: string): Promise<void> {
  await assert.rejects(p, (err: Error) => (assert.match(err.message, want, what), true));
}

/** The version the proxy runs, and whether the web route answers with that snapshot's tag. */
async function serving(session: ReturnType<typeof h2Connect>, tag: string): Promise<void> {
  const a = await h2Request(session, { ':path': '/api/check' });
  assert.deepEqual([a.status, a.headers['x-snapshot']], [200, tag]);
}

describe('weft-proxy robustness', () => {
  it('answers malformed HTTP with 400, closes that connection, and serves on', async () => {
    const bad = await rawExchange(webListen, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n');
    assert.match(bad, /^HTTP\/1\.1 400 Bad Request\r\n/);
    const worse = await rawExchange(webListen, 'GET /\x00 HTTP/1.1\r\n\r\n');
    assert.match(worse, /^HTTP\/1\.1 400 /);
    const huge = await rawExchange(webListen, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assert.match(huge, /^HTTP\/1\.1 431 /);
    // A broken HTTP/2 connection: the preface, then a frame that is not a SETTINGS frame.
    await rawExchange(
      webListen,
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.from([0, 0, 4, 0xff, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
      ]),
      2000,
    );
    const session = h2Connect(cleanup, webListen);
    await serving(session, 'v1');
    assert.equal((await h1Request(webListen, { path: '/api/ok' })).status, 200);
    session.close();
  });

  it('refuses a broken snapshot naming the field, and the last good routing stays', async () => {
    const session = h2Connect(cleanup, webListen);
    const cases: [string, (s: any) => void, RegExp][] = [
      [
        'bad regex',
        (s) => (s.services[0].matches[0].path = { type: 'RegularExpression', value: '/api/(' }),
        /^services\[0\]\.matches\[0\]\.path\.value: .*not a valid regular expression/,
      ],
      [
        'unknown backend',
        (s) => (s.services[0].rules[0].backends[0].backend = 'demo/nope:80'),
        /^services\[\d\]\.rules\[0\]\.backends\[0\]\.backend: "demo\/nope:80" is not in backends/,
      ],
      [
        'listener of no service',
        (s) => (s.listeners[0].servicePort = 81),
        /^listeners\[0\]\.servicePort: demo\/web:81 is not in services/,
      ],
      [
        'listener twice',
        (s) => s.listeners.push({ ...s.listeners[0] }),
        /^listeners\[2\]: 127\.0\.0\.1 port \d+ is also listeners\[0\]'s/,
      ],
      [
        'workload key',
        (s) => (s.workloads['10.0.0'] = { identity: 1, labels: [] }),
        /^workloads\["10\.0\.0"\]: the key is not an IP address/,
      ],
    ];
    for (const [what, breakIt, want] of cases) {
      const s = JSON.parse(JSON.stringify(snapshot(2, base, 'broken')));
      breakIt(s);
      await refused(proxy.put(s), want, what);
      assert.deepEqual(await proxy.get('/v1/snapshot'), { version: 1 });
      await serving(session, 'v1');
    }
    await refused(proxy.put(snapshot(1, base, 'same')), /^version: 1 is not newer than the running snapshot's 1$/);
    await refused(proxy.put({ version: 9 }), /services: required/);
    const m = parsePrometheusText(await proxy.metrics());
    assert.equal(sampleValue(m, 'weft_proxy_snapshot_rejected_total'), cases.length + 2);
    assert.equal(sampleValue(m, 'weft_proxy_snapshot_version'), 1);
    session.close();
  });

  it('refuses a snapshot whose listener cannot be bound, and changes nothing of it', async () => {
    const taken = net.createServer();
    const takenPort = await freePort();
    await new Promise<void>((r) => taken.listen(takenPort, '127.0.0.1', () => r()));
    cleanup.add(() => new Promise((r) => taken.close(r)));
    const extra = await freePort();
    const listeners = [
      ...base,
      { address: '127.0.0.1', port: extra, service: 'demo/web', servicePort: 80 },
      { address: '127.0.0.1', port: takenPort, service: 'demo/web', servicePort: 80 },
    ];
    await refused(
      proxy.put(snapshot(2, listeners)),
      new RegExp(`^listeners\\[3\\]: cannot listen on 127\\.0\\.0\\.1 port ${takenPort}: .*EADDRINUSE`),
    );
    assert.deepEqual(await proxy.get('/v1/snapshot'), { version: 1 });
    // The listener that could be bound for it was closed again.
    await assert.rejects(rawExchange(extra, 'x'), /ECONNREFUSED/);
    const session = h2Connect(cleanup, webListen);
    await serving(session, 'v1');
    session.close();
  });

  it('swaps snapshots under a live connection: the next request sees the new routing', async () => {
    const session = h2Connect(cleanup, webListen);
    await serving(session, 'v1');
    assert.deepEqual(await proxy.put(snapshot(3, base)), { version: 3 });
    await serving(session, 'v3');
    // A listener added, then the old one removed: new connections go to the new one only.
    const moved = await freePort();
    const next = [{ ...base[0]!, port: moved }, base[1]!];
    await proxy.put(snapshot(4, [...base, next[0]!]));
    const s2 = h2Connect(cleanup, moved);
    await serving(s2, 'v4');
    await proxy.put(snapshot(5, next));
    await serving(s2, 'v5');
    await assert.rejects(rawExchange(webListen, 'x'), /ECONNREFUSED/);
    await proxy.put(snapshot(6, base));
    await serving(h2Connect(cleanup, webListen), 'v6');
    session.close();
    s2.close();
  });

  it("passes connections that are not HTTP through to the Service port's endpoints, each one a flow", async () => {
    const flows = followFlows(proxy.adminSocket);
    cleanup.add(() => flows.stop());
    await flows.ready;
    const seen = new Set<string>();
    const exchanged: [number, number][] = [];
    for (let i = 0; i < 10; i++) {
      const out = await new Promise<string>((resolve, reject) => {
        const s = net.connect(linesListen, '127.0.0.1');
        let got = '';
        s.setEncoding('utf8').on('data', (d: string) => {
          got += d;
          if (got.split('\n').length > 2) s.end();
        });
        s.on('close', () => resolve(got));
        s.on('error', reject);
        s.write(`hello ${i}\nworld\n`);
      });
      const m = /^(lines-\d): hello (\d+)\n\1: world\n$/.exec(out);
      assert.ok(m, JSON.stringify(out));
      assert.equal(m[2], String(i));
      seen.add(m[1]!);
      exchanged.push([`hello ${i}\nworld\n`.length, out.length]);
    }
    assert.ok(seen.size >= 1);
    const m = parsePrometheusText(await proxy.metrics());
    assert.ok(sampleValue(m, 'weft_proxy_connections_total', { protocol: 'tcp' }) >= 10);
    const passed = () =>
      (flows.lines as { flow: Flow }[]).map((l) => l.flow).filter((f) => f.observation_point === 'proxy');
    await eventually(() => passed().length === 10, 'a flow for each connection passed through');
    for (const [i, f] of passed().entries()) {
      assert.deepEqual(
        [f.type, f.verdict, f.service, f.l4.protocol, f.is_reply],
        ['trace', 'FORWARDED', 'demo/lines', 'TCP', false],
      );
      assert.ok(LINES.includes(f.destination.ip) && f.destination.port === linesPort, JSON.stringify(f.destination));
      assert.equal(f.source.ip, '127.0.0.1');
      const [sent, received] = exchanged[i]!;
      assert.match(
        f.summary,
        new RegExp(`^not HTTP, passed through: ${sent} bytes sent, ${received} received in [\\d.]+ms$`),
      );
    }
  });

  it('on SIGTERM, stops accepting, finishes the request in flight and exits 0', async () => {
    const session = h2Connect(cleanup, webListen);
    const before = webBackends.reduce((n, b) => n + b.received!, 0);
    const inFlight = h2Request(session, { ':path': '/api/delay/700' });
    await eventually(() => webBackends.reduce((n, b) => n + b.received!, 0) > before, 'the request to reach a backend');
    proxy.child.kill('SIGTERM');
    await eventually(
      async () =>
        await rawExchange(webListen, 'x', 500).then(
          () => false,
          () => true,
        ),
      'the listener to close',
    );
    const answer = await inFlight;
    assert.equal(answer.status, 200);
    assert.equal(await proxy.exited, 0);
    assert.match(proxy.logs, /msg="weft-proxy stopped"/);
  });
});
