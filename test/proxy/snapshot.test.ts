// The snapshot's listeners and workloads (what weft-proxy listens on, and who is behind the
// addresses it sees): validated in full, refused by field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateSnapshot, type ProxySnapshot } from '../../src/contract/proxy-snapshot.js';
import { buildSnapshot } from '../../src/state/routes/snapshot.js';

function base(): ProxySnapshot {
  return buildSnapshot({
    version: 3,
    services: [
      {
        service: 'demo/web',
        port: 80,
        portName: 'http',
        protocol: 'http',
        addresses: ['10.96.0.10', 'fd00::10'],
        rules: [{ route: 'demo/web', rule: 0, backends: [{ weight: 1, backend: 'demo/web:80' }] }],
        matches: [{ rule: 0, path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
      },
    ],
    backends: [{ key: 'demo/web:80', protocol: 'unknown' }],
    frontends: [],
    listeners: [
      { address: '10.0.0.1', port: 15001, service: 'demo/web', servicePort: 80 },
      { address: 'fd00:0:0::1', port: 15001, service: 'demo/web', servicePort: 80 },
    ],
    workloads: {
      '10.244.0.5': { namespace: 'demo', pod: 'client', identity: 4242, labels: ['app=client'] },
      'fd00:10:244:0:0::5': { namespace: 'demo', pod: 'client', identity: 4242, labels: ['app=client'] },
      '10.0.0.1': { identity: 1, labels: ['reserved:host'] },
    },
  });
}

const copy = (): Record<string, any> => JSON.parse(JSON.stringify(base()));

function refused(raw: unknown, field: string, msg: RegExp): void {
  const v = validateSnapshot(raw);
  assert.equal(v.ok, false, `expected ${field} to be refused`);
  const errors = (v as { errors: string[] }).errors;
  assert.ok(
    errors.some((e) => e.startsWith(`${field}: `) && msg.test(e)),
    `want ${field} ~ ${msg}, got ${JSON.stringify(errors)}`,
  );
}

describe('snapshot listeners and workloads', () => {
  it('are carried, addresses in canonical form', () => {
    const v = validateSnapshot(copy());
    assert.ok(v.ok, JSON.stringify(v));
    assert.deepEqual(v.value.listeners, [
      { address: '10.0.0.1', port: 15001, service: 'demo/web', servicePort: 80 },
      { address: 'fd00::1', port: 15001, service: 'demo/web', servicePort: 80 },
    ]);
    assert.deepEqual(Object.keys(v.value.workloads).sort(), ['10.0.0.1', '10.244.0.5', 'fd00:10:244::5']);
    assert.deepEqual(v.value.workloads['10.0.0.1'], { identity: 1, labels: ['reserved:host'] });
    // Validating the result again gives it back.
    assert.deepEqual(validateSnapshot(JSON.parse(JSON.stringify(v.value))), v);
  });

  it('buildSnapshot gives none of either by default', () => {
    const s = buildSnapshot({ version: 1, services: [], backends: [], frontends: [] });
    assert.deepEqual([s.listeners, s.workloads], [[], {}]);
    assert.ok(validateSnapshot(s).ok);
  });

  it('refuses listeners by field', () => {
    refused({ ...copy(), listeners: undefined }, 'listeners', /required/);
    const a = copy();
    a.listeners[0].address = '10.0.0';
    refused(a, 'listeners[0].address', /not an IP address/);
    const p = copy();
    p.listeners[1].port = 0;
    refused(p, 'listeners[1].port', /not a port number/);
    const s = copy();
    s.listeners[0].service = 'web';
    refused(s, 'listeners[0].service', /namespace\/name/);
    const sp = copy();
    sp.listeners[0].servicePort = 8080;
    refused(sp, 'listeners[0].servicePort', /demo\/web:8080 is not in services/);
    const other = copy();
    other.listeners[0].service = 'demo/other';
    refused(other, 'listeners[0].servicePort', /demo\/other:80 is not in services/);
    const twice = copy();
    twice.listeners.push({ address: 'fd00::1', port: 15001, service: 'demo/web', servicePort: 80 });
    refused(twice, 'listeners[2]', /fd00::1 port 15001 is also listeners\[1\]'s/);
  });

  it('refuses workloads by field', () => {
    refused({ ...copy(), workloads: [] }, 'workloads', /must be an object/);
    const k = copy();
    k.workloads['10.244.0'] = { identity: 1, labels: [] };
    refused(k, 'workloads["10.244.0"]', /the key is not an IP address/);
    const dup = copy();
    dup.workloads['fd00:10:244::5'] = { identity: 1, labels: [] };
    refused(dup, 'workloads["fd00:10:244::5"]', /fd00:10:244::5 is listed twice/);
    const id = copy();
    id.workloads['10.244.0.5'].identity = -1;
    refused(id, 'workloads["10.244.0.5"].identity', /not an integer in 0\.\.4294967295/);
    const ns = copy();
    ns.workloads['10.244.0.5'].namespace = 'Demo';
    refused(ns, 'workloads["10.244.0.5"].namespace', /not a namespace name/);
    const pod = copy();
    pod.workloads['10.244.0.5'].pod = 'a pod';
    refused(pod, 'workloads["10.244.0.5"].pod', /not a pod name/);
    const l = copy();
    l.workloads['10.244.0.5'].labels = ['app=a b'];
    refused(l, 'workloads["10.244.0.5"].labels[0]', /without spaces/);
    const nl = copy();
    delete nl.workloads['10.244.0.5'].labels;
    refused(nl, 'workloads["10.244.0.5"].labels', /required/);
  });
});
