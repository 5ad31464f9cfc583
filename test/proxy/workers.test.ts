// weft-proxy --workers 2: two worker processes share each listener (SO_REUSEPORT); the primary
// applies snapshots to both (or to neither), aggregates their metrics and flows, and restarts a
// worker that dies, giving it the running snapshot.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Flow } from '../../src/contract/flow.js';
import {
  Cleanup,
  buildTestSnapshot,
  eventually,
  followFlows,
  freePort,
  freePortOn,
  h2Backend,
  h2Connect,
  h2Request,
  httpRoute,
  startProxy,
  type ProxyProcess,
} from '../fixtures/proxy-harness.js';
import { parsePrometheusText, sampleValue } from '../harness/prom-text.js';

const WEB = ['127.0.0.1', '127.0.0.2'];
const cleanup = new Cleanup();
let proxy: ProxyProcess;
let listen: number;
let webPort: number;

const snapshot = (
  version: number,
  listeners: { address: string; port: number; service: string; servicePort: number }[],
) =>
  buildTestSnapshot({
    version,
    services: [{ name: 'web', clusterIP: '10.96.0.10', port: 80, targetPort: webPort, endpoints: WEB }],
    routes: [
      httpRoute('web', {
        parentRefs: [{ group: '', kind: 'Service', name: 'web' }],
        rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
      }),
    ],
    listeners,
  });

/** The worker processes' pids (children of the primary). */
function workers(): number[] {
  const pid = proxy.child.pid!;
  return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** Requests over `n` fresh connections (the kernel spreads connections, not requests). */
async function requestsOverConnections(n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = h2Connect(cleanup, listen);
    statuses.push((await h2Request(s, { ':path': `/c${i}` })).status);
    s.close();
  }
  return statuses;
}

before(async () => {
  webPort = await freePortOn(WEB);
  for (const [i, ip] of WEB.entries()) await h2Backend(cleanup, `web-${i + 1}`, ip, webPort);
  proxy = await startProxy(cleanup, { workers: 2 });
  listen = await freePort();
  await proxy.put(snapshot(1, [{ address: '127.0.0.1', port: listen, service: 'demo/web', servicePort: 80 }]));
});

after(() => cleanup.run());

describe('weft-proxy --workers 2', () => {
  it('serves from both workers, and aggregates their metrics and flows', async () => {
    assert.equal(workers().length, 2);
    const flows = followFlows(proxy.adminSocket);
    cleanup.add(() => flows.stop());
    await flows.ready;
    const statuses = await requestsOverConnections(40);
    assert.deepEqual(new Set(statuses), new Set([200]));
    await eventually(() => flows.lines.length >= 40, '40 flows from the workers');
    assert.ok((flows.lines as { flow: Flow }[]).every((l) => l.flow.type === 'l7' && l.flow.l7?.status === 200));
    const m = parsePrometheusText(await proxy.metrics());
    const total = m.samples.filter((s) => s.name === 'weft_http_requests_total').reduce((n, s) => n + s.value, 0);
    assert.equal(total, 40);
    assert.equal(sampleValue(m, 'weft_proxy_workers'), 2);
    assert.equal(sampleValue(m, 'weft_proxy_snapshot_version'), 1);
    assert.equal(sampleValue(m, 'weft_proxy_connections_total', { protocol: 'h2' }), 40);
    flows.stop();
  });

  it('refuses a snapshot that one listener makes impossible, in every worker', async () => {
    const taken = net.createServer();
    const takenPort = await freePort();
    await new Promise<void>((r) => taken.listen(takenPort, '127.0.0.1', () => r()));
    cleanup.add(() => new Promise((r) => taken.close(r)));
    const extra = await freePort();
    await assert.rejects(
      proxy.put(
        snapshot(2, [
          { address: '127.0.0.1', port: listen, service: 'demo/web', servicePort: 80 },
          { address: '127.0.0.1', port: extra, service: 'demo/web', servicePort: 80 },
          { address: '127.0.0.1', port: takenPort, service: 'demo/web', servicePort: 80 },
        ]),
      ),
      (err: Error) => (
        assert.match(err.message, /^listeners\[2\]: cannot listen on 127\.0\.0\.1 port \d+: .*EADDRINUSE/),
        true
      ),
    );
    assert.deepEqual(await proxy.get('/v1/snapshot'), { version: 1 });
    // No worker kept the listener it could bind for the refused snapshot.
    await assert.rejects(
      new Promise((resolve, reject) => net.connect(extra, '127.0.0.1').on('connect', resolve).on('error', reject)),
      /ECONNREFUSED/,
    );
    assert.deepEqual(new Set(await requestsOverConnections(10)), new Set([200]));
  });

  it('restarts a worker that dies and gives it the running snapshot', async () => {
    const [victim] = workers();
    process.kill(victim!, 'SIGKILL');
    await eventually(() => !workers().includes(victim!) && workers().length === 2, 'a new worker');
    await eventually(
      async () => sampleValue(parsePrometheusText(await proxy.metrics()), 'weft_proxy_workers') === 2,
      'two workers running',
    );
    // The new worker listens too: every connection, whichever worker takes it, is served.
    await eventually(
      async () => (await requestsOverConnections(20)).every((s) => s === 200),
      'every connection served',
    );
    assert.match(proxy.logs, /msg="worker exited: restarting it"/);
  });
});
