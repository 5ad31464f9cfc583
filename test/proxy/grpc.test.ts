// gRPC through weft-proxy with @grpc/grpc-js on both sides: one long-lived client's calls
// balanced per request over every backend (what L4 balancing cannot do for gRPC), the four
// kinds of call with their messages, statuses and trailers intact, and the proxy's own
// answers in gRPC's terms.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Flow } from '../../src/contract/flow.js';
import {
  Cleanup,
  buildTestSnapshot,
  eventually,
  followFlows,
  freePort,
  freePortOn,
  grpcBackend,
  grpcRoute,
  startProxy,
  type ProxyProcess,
} from '../fixtures/proxy-harness.js';

const BACKENDS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
const cleanup = new Cleanup();
let proxy: ProxyProcess;
let client: grpc.Client;

const id = (b: Buffer) => b;

function unary(
  c: grpc.Client,
  path: string,
  text: string,
): Promise<{ err: grpc.ServiceError | null; value: string | undefined; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    let err: grpc.ServiceError | null = null;
    let value: string | undefined;
    const call = c.makeUnaryRequest(path, id, id, Buffer.from(text), (e, v) => {
      err = e;
      value = v?.toString();
    });
    call.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ err, value, status })));
  });
}

before(async () => {
  const port = await freePortOn(BACKENDS);
  for (const [i, ip] of BACKENDS.entries()) await grpcBackend(cleanup, `echo-${i + 1}`, ip, port);
  proxy = await startProxy(cleanup);
  const listen = await freePort();
  const route = grpcRoute('echo', {
    parentRefs: [{ group: '', kind: 'Service', name: 'echo' }],
    rules: [
      { matches: [{ method: { service: 'weft.test.Echo' } }], backendRefs: [{ name: 'echo', port: 50051 }] },
      { matches: [{ method: { service: 'weft.test.Empty' } }], backendRefs: [{ name: 'empty', port: 50051 }] },
    ],
  });
  const snapshot = buildTestSnapshot({
    version: 1,
    services: [
      { name: 'echo', clusterIP: '10.96.0.20', port: 50051, targetPort: port, endpoints: BACKENDS },
      { name: 'empty', clusterIP: '10.96.0.21', port: 50051, targetPort: port, endpoints: [] },
    ],
    routes: [route],
    listeners: [{ address: '127.0.0.1', port: listen, service: 'demo/echo', servicePort: 50051 }],
  });
  assert.equal(snapshot.backends['demo/echo:50051']!.protocol, 'h2c');
  await proxy.put(snapshot);
  client = new grpc.Client(`127.0.0.1:${listen}`, grpc.credentials.createInsecure());
  cleanup.add(() => client.close());
});

after(() => cleanup.run());

describe('gRPC through weft-proxy', () => {
  it("balances one long-lived client's unary calls over all three backends, trailers intact", async () => {
    const seen = new Map<string, number>();
    for (let batch = 0; batch < 20; batch++) {
      const calls = await Promise.all(
        Array.from({ length: 10 }, (_, i) => unary(client, '/weft.test.Echo/Unary', `m${batch}.${i}`)),
      );
      for (const [i, c] of calls.entries()) {
        assert.equal(c.err, null);
        assert.equal(c.status.code, grpc.status.OK);
        const [backend, msg] = c.value!.split(':');
        assert.equal(msg, `m${batch}.${i}`);
        assert.deepEqual(c.status.metadata.get('x-backend'), [backend], 'the trailer names the backend that answered');
        seen.set(backend!, (seen.get(backend!) ?? 0) + 1);
      }
    }
    assert.deepEqual([...seen.keys()].sort(), ['echo-1', 'echo-2', 'echo-3'], JSON.stringify([...seen]));
  });

  it('passes a server-streaming call through', async () => {
    const got: string[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      const call = client.makeServerStreamRequest('/weft.test.Echo/ServerStream', id, id, Buffer.from('25'));
      call.on('data', (b: Buffer) => got.push(b.toString()));
      call.on('status', resolve);
      call.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.OK ? undefined : reject(e)));
    });
    assert.equal(status.code, grpc.status.OK);
    assert.equal(got.length, 25);
    const backend = got[0]!.split(':')[0]!;
    assert.deepEqual(
      got,
      Array.from({ length: 25 }, (_, i) => `${backend}:${i}`),
    );
    assert.deepEqual(status.metadata.get('x-backend'), [backend]);
  });

  it('passes a client-streaming call through', async () => {
    const value = await new Promise<string>((resolve, reject) => {
      const call = client.makeClientStreamRequest('/weft.test.Echo/ClientStream', id, id, (err, v) =>
        err ? reject(err) : resolve(v!.toString()),
      );
      for (const m of ['a', 'b', 'c', 'd']) call.write(Buffer.from(m));
      call.end();
    });
    assert.match(value, /^echo-\d:a,b,c,d$/);
  });

  it('passes a bidirectional stream through, message by message', async () => {
    const call = client.makeBidiStreamRequest('/weft.test.Echo/Bidi', id, id);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    const next = () => new Promise<string>((resolve) => call.once('data', (b: Buffer) => resolve(b.toString())));
    let backend: string | undefined;
    for (let i = 0; i < 10; i++) {
      const answer = next();
      call.write(Buffer.from(`ping ${i}`));
      // Each answer comes back before the next message is sent: the stream is live both ways.
      const [b, text] = (await answer).split(':');
      backend ??= b;
      assert.deepEqual([b, text], [backend, `ping ${i}`]);
    }
    call.end();
    const s = await status;
    assert.equal(s.code, grpc.status.OK);
    assert.deepEqual(s.metadata.get('x-backend'), [backend!]);
  });

  it('passes error statuses and their details through', async () => {
    const c = await unary(client, '/weft.test.Echo/Unary', 'fail');
    assert.equal(c.status.code, grpc.status.FAILED_PRECONDITION);
    assert.match(c.status.details, /^echo-\d says no$/);
  });

  it('answers in gRPC terms when it cannot route: UNIMPLEMENTED, UNAVAILABLE', async () => {
    const none = await unary(client, '/weft.test.Other/Unary', 'x');
    assert.equal(none.status.code, grpc.status.UNIMPLEMENTED);
    assert.match(none.status.details, /no route/);
    const empty = await unary(client, '/weft.test.Empty/Unary', 'x');
    assert.equal(empty.status.code, grpc.status.UNAVAILABLE);
    assert.match(empty.status.details, /no endpoint/);
  });

  it('reports gRPC calls as L7 flows with their grpc-status', async () => {
    const flows = followFlows(proxy.adminSocket);
    cleanup.add(() => flows.stop());
    await flows.ready;
    await unary(client, '/weft.test.Echo/Unary', 'x');
    await unary(client, '/weft.test.Echo/Unary', 'fail');
    await unary(client, '/weft.test.Other/Unary', 'x');
    await eventually(() => flows.lines.length >= 3, 'three flows');
    const [ok, failed, none] = (flows.lines as { flow: Flow }[]).map((l) => l.flow);
    assert.deepEqual(
      [ok!.l7!.method, ok!.l7!.path, ok!.l7!.status, ok!.l7!.grpc_status, ok!.verdict],
      ['POST', '/weft.test.Echo/Unary', 200, 0, 'FORWARDED'],
    );
    assert.deepEqual([failed!.l7!.status, failed!.l7!.grpc_status, failed!.verdict], [200, 9, 'FORWARDED']);
    assert.deepEqual(
      [none!.l7!.status, none!.l7!.grpc_status, none!.verdict, none!.drop_reason],
      [200, 12, 'DROPPED', 'no-route'],
    );
    assert.match(ok!.summary, /^POST \/weft\.test\.Echo\/Unary => 200 grpc-status 0 /);
    flows.stop();
  });
});
