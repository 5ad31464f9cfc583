// Address pools and the endpoint registry: IPAM as a restarted agent must see it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EndpointRegistry } from '../../src/agent/endpoints.js';
import { CniError } from '../../src/contract/cni.js';
import { createLogger } from '../../src/lib/log.js';
import { AddressPool } from '../../src/state/address-pool.js';

describe('AddressPool', () => {
  it('hands out IPv4 addresses in order, never the network or broadcast address', () => {
    const p = new AddressPool('10.244.1.0/30');
    assert.deepEqual([p.allocate(), p.allocate(), p.allocate()], ['10.244.1.1', '10.244.1.2', undefined]);
    assert.equal(p.capacity, 2n);
  });

  it('walks on past a released address, so it is the last to come back', () => {
    const p = new AddressPool('10.244.1.0/29'); // .1 to .6
    const got = Array.from({ length: 3 }, () => p.allocate());
    p.release(got[0]!);
    assert.deepEqual(
      [p.allocate(), p.allocate(), p.allocate(), p.allocate()],
      ['10.244.1.4', '10.244.1.5', '10.244.1.6', '10.244.1.1'],
    );
    assert.equal(p.allocate(), undefined);
  });

  it('IPv6: large prefixes, skipping the subnet-router anycast address', () => {
    const p = new AddressPool('fd00:10:244::/64');
    assert.equal(p.allocate(), 'fd00:10:244::1');
    assert.equal(p.capacity, (1n << 64n) - 1n);
  });

  it('claims only addresses inside the pool, and restores the search position', () => {
    const p = new AddressPool('10.244.1.0/24');
    assert.equal(p.claim('10.244.2.1'), false);
    assert.equal(p.claim('fd00::1'), false);
    assert.equal(p.claim('10.244.1.7'), true);
    p.next = '10.244.1.7';
    assert.equal(p.allocate(), '10.244.1.8', 'the claimed address is skipped');
  });
});

describe('EndpointRegistry', () => {
  let dir: string;
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  const CIDRS = ['10.244.1.0/29', 'fd00:10:244:1::/64'];
  const req = (id: string, pod = id) => ({
    containerId: id,
    ifName: 'eth0',
    netns: `/proc/1/ns/net`,
    podNamespace: 'default',
    podName: pod,
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-ipam-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('allocates one address of each family, idempotently per container and interface', () => {
    const reg = EndpointRegistry.load(dir, CIDRS, log);
    const a = reg.allocate(req('c1'));
    assert.deepEqual(
      a.ips.map((i) => `${i.address}/${i.prefixLength} via ${i.gateway}`),
      ['10.244.1.1/32 via 169.254.1.1', 'fd00:10:244:1::1/128 via fe80::ecee:eeff:feee:eeee'],
    );
    assert.equal(reg.allocate(req('c1')), a, 'a retried ADD gets the same endpoint');
    assert.match(a.hostIfName, /^wft[0-9a-f]{12}$/);
  });

  it('a restarted agent never hands out an address twice, and keeps the endpoints', () => {
    const reg = EndpointRegistry.load(dir, CIDRS, log);
    const a = reg.allocate(req('c1'));
    reg.markReady(a, { hostIfIndex: 7, hostMac: 'ee:ee:ee:ee:ee:ee', podMac: '02:00:00:00:00:01' });
    reg.allocate(req('c2'));
    reg.remove('c2', 'eth0');
    const again = EndpointRegistry.load(dir, CIDRS, log);
    assert.deepEqual(
      again.list().map((e) => [e.containerId, e.state, e.hostIfIndex]),
      [['c1', 'ready', 7]],
    );
    const c3 = again.allocate(req('c3'));
    assert.equal(c3.ips[0]!.address, '10.244.1.3', 'neither the live .1 nor the just-freed .2');
    assert.ok(c3.id > a.id);
  });

  it('an exhausted pool is a clear error, and no address of the other family leaks', () => {
    const reg = EndpointRegistry.load(dir, ['10.244.1.0/30', 'fd00:10:244:1::/64'], log);
    reg.allocate(req('c1'));
    reg.allocate(req('c2'));
    assert.throws(
      () => reg.allocate(req('c3')),
      (e: unknown) =>
        e instanceof CniError && e.cniCode === 100 && /address pool 10\.244\.1\.0\/30 exhausted/.test(e.message),
    );
    assert.deepEqual(
      reg.poolUsage().map((p) => p.used),
      [2, 2],
    );
  });

  it('no pod CIDR: try again later', () => {
    const reg = EndpointRegistry.load(dir, [], log);
    assert.throws(
      () => reg.allocate(req('c1')),
      (e: unknown) => e instanceof CniError && e.cniCode === 11,
    );
  });

  it('GC frees everything the runtime no longer lists', () => {
    const reg = EndpointRegistry.load(dir, CIDRS, log);
    for (const id of ['c1', 'c2', 'c3']) reg.allocate(req(id));
    const gone = reg.gc([{ containerID: 'c2', ifname: 'eth0' }]);
    assert.deepEqual(
      gone.map((g) => g.containerId),
      ['c1', 'c3'],
    );
    assert.deepEqual(
      EndpointRegistry.load(dir, CIDRS, log)
        .list()
        .map((e) => e.containerId),
      ['c2'],
    );
  });

  it('unreadable state stops the agent rather than risk handing out used addresses', () => {
    fs.writeFileSync(path.join(dir, 'endpoints.json'), '{not json');
    assert.throws(() => EndpointRegistry.load(dir, CIDRS, log), /cannot read endpoint state .*endpoints\.json/);
  });

  it('a failed write leaves memory as it was', () => {
    const reg = EndpointRegistry.load(dir, CIDRS, log);
    reg.allocate(req('c1'));
    fs.rmSync(dir, { recursive: true });
    assert.throws(
      () => reg.allocate(req('c2')),
      (e: unknown) => e instanceof CniError && e.cniCode === 5,
    );
    assert.deepEqual(
      reg.list().map((e) => e.containerId),
      ['c1'],
    );
    assert.equal(reg.poolUsage()[0]!.used, 1);
  });
});
