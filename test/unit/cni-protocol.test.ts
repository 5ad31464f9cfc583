// The CNI contract between the plugin and weftd (src/contract/cni.ts): configuration, CNI_ARGS, names, results.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CniError, composeResult, fnv1a64, hostIfName, parseCniArgs, parseNetConf } from '../../src/contract/cni.js';

const conf = (extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: 'weft',
  type: 'weft-cni',
  ...extra,
});
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CniError);
    return [e.cniCode, e.message] as const;
  }
  assert.fail('expected a CniError');
};

describe('parseNetConf', () => {
  it('defaults the MTU and keeps agentSocket and valid-attachments', () => {
    const c = parseNetConf(
      conf({ agentSocket: '/run/w.sock', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }),
    );
    assert.equal(c.mtu, 1500);
    assert.equal(c.agentSocket, '/run/w.sock');
    assert.deepEqual(c.validAttachments, [{ containerID: 'a', ifname: 'eth0' }]);
  });

  it("names what is wrong, with the spec's codes", () => {
    assert.deepEqual(
      code(() => parseNetConf('x')),
      [6, 'network configuration is not a JSON object'],
    );
    assert.equal(code(() => parseNetConf({ name: 'w', type: 't' }))[0], 7);
    assert.match(code(() => parseNetConf(conf({ name: '' })))[1], /"name" must be a non-empty string/);
    assert.deepEqual(code(() => parseNetConf(conf({ cniVersion: '9.9.9' })))[0], 1);
    assert.match(
      code(() => parseNetConf(conf({ mtu: 100 })))[1],
      /"mtu" must be an integer from 576 to 65535, got 100/,
    );
    assert.equal(code(() => parseNetConf(conf({ 'cni.dev/valid-attachments': [{ id: 1 }] })))[0], 7);
  });
});

describe('CNI names and args', () => {
  it('parses CNI_ARGS', () => {
    assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=api-0;bad'), {
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: 'shop',
      K8S_POD_NAME: 'api-0',
    });
  });

  it('host interface names are deterministic FNV-1a-64 names that fit IFNAMSIZ', () => {
    // Published FNV-1a-64 test vectors; the plugin's C implementation must agree.
    assert.equal(fnv1a64(''), 0xcbf29ce484222325n);
    assert.equal(fnv1a64('a'), 0xaf63dc4c8601ec8cn);
    assert.equal(fnv1a64('foobar'), 0x85944171f73967e8n);
    assert.equal(hostIfName('abc', 'eth0'), `wft${fnv1a64('abc/eth0').toString(16).padStart(16, '0').slice(0, 12)}`);
    assert.notEqual(hostIfName('abc', 'eth0'), hostIfName('abc', 'eth1'));
    assert.match(hostIfName('x'.repeat(64), 'eth0'), /^wft[0-9a-f]{12}$/);
    assert.equal(hostIfName('a', '').length, 15);
  });
});

describe('composeResult', () => {
  const ips = [
    { family: 4 as const, address: '10.244.0.5', prefixLength: 32, gateway: '169.254.1.1' },
    { family: 6 as const, address: 'fd00::5', prefixLength: 128, gateway: 'fe80::ecee:eeff:feee:eeee' },
  ];
  const base = {
    hostIfName: 'wft0123456789ab',
    hostMac: 'ee:ee:ee:ee:ee:ee',
    podIfName: 'eth0',
    podMac: '02:00:00:00:00:05',
    netns: '/proc/42/ns/net',
    ips,
  };

  it('1.x: interfaces with the sandbox, ips on the pod interface, default routes', () => {
    const r = composeResult({ ...base, conf: parseNetConf(conf()) });
    assert.deepEqual(r, {
      cniVersion: '1.1.0',
      interfaces: [
        { name: 'wft0123456789ab', mac: 'ee:ee:ee:ee:ee:ee' },
        { name: 'eth0', mac: '02:00:00:00:00:05', sandbox: '/proc/42/ns/net' },
      ],
      ips: [
        { address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 1 },
        { address: 'fd00::5/128', gateway: 'fe80::ecee:eeff:feee:eeee', interface: 1 },
      ],
      routes: [
        { dst: '0.0.0.0/0', gw: '169.254.1.1' },
        { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' },
      ],
      dns: {},
    });
  });

  it('0.x results carry ips[].version; a prevResult is kept and indices follow it', () => {
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'x0' }],
      ips: [{ version: '4', address: '192.168.9.9/24', interface: 0 }],
      dns: { nameservers: ['10.96.0.10'] },
    };
    const r = composeResult({ ...base, conf: parseNetConf(conf({ cniVersion: '0.4.0', prevResult })) });
    assert.equal(r.interfaces?.length, 3);
    assert.deepEqual(r.ips?.[0], prevResult.ips[0]);
    assert.deepEqual(r.ips?.[1], { version: '4', address: '10.244.0.5/32', gateway: '169.254.1.1', interface: 2 });
    assert.deepEqual(r.dns, { nameservers: ['10.96.0.10'] });
  });
});
