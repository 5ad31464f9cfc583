// The NetworkPolicy reference model (test/harness/policy-reference.ts) against small cases whose
// answers follow from the Kubernetes documentation alone: the oracle must be right before the
// e2e truth tables can trust it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  allowed,
  buildModel,
  cidrContains,
  decide,
  isolation,
  matchesSelector,
  withPolicies,
  type ContainerPort,
  type Model,
  type NetworkPolicy,
} from '../harness/policy-reference.js';

const ports = (http: number): ContainerPort[] => [
  { name: 'http', containerPort: http },
  { name: 'dns', containerPort: 53, protocol: 'UDP' },
];

// x/a and y/a name port 80 "http"; y/c names port 81 "http".
const cluster: Model = buildModel({
  namespaces: { x: { team: 'blue' }, y: { team: 'red' }, z: {} },
  pods: [
    { namespace: 'x', name: 'a', labels: { pod: 'a', tier: 'front' }, ips: ['10.0.0.1', 'fd00::1'], ports: ports(80) },
    { namespace: 'x', name: 'b', labels: { pod: 'b' }, ips: ['10.0.0.2', 'fd00::2'], ports: ports(80) },
    { namespace: 'y', name: 'a', labels: { pod: 'a', tier: 'back' }, ips: ['10.0.1.1', 'fd00::1:1'], ports: ports(80) },
    { namespace: 'y', name: 'c', labels: { pod: 'c' }, ips: ['10.0.1.3', 'fd00::1:3'], ports: ports(81) },
    { namespace: 'z', name: 'a', labels: { pod: 'a' }, ips: ['10.0.2.1', 'fd00::2:1'], ports: ports(80) },
  ],
  policies: [],
});

const xa = { namespace: 'x', name: 'a' };
const xb = { namespace: 'x', name: 'b' };
const ya = { namespace: 'y', name: 'a' };
const yc = { namespace: 'y', name: 'c' };
const za = { namespace: 'z', name: 'a' };

function np(namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec };
}

const only = (...policies: NetworkPolicy[]) => withPolicies(cluster, policies);
const tcp = (m: Model, from: typeof xa, to: typeof xa, port = 80) => allowed(m, from, to, port, 'TCP');

describe('policy reference model', () => {
  it('allows everything when no policy exists', () => {
    for (const from of [xa, xb, ya, yc, za])
      for (const to of [xa, xb, ya, yc, za]) if (from !== to) assert.ok(tcp(cluster, from, to));
  });

  it('a default-deny ingress policy isolates its namespace for ingress only', () => {
    const m = only(np('x', 'deny', { podSelector: {} }));
    assert.equal(tcp(m, ya, xa), false);
    assert.equal(tcp(m, xb, xa), false, 'the same namespace too');
    assert.equal(tcp(m, xa, ya), true, 'egress stays open');
    assert.equal(tcp(m, ya, za), true, 'other namespaces stay open');
    assert.deepEqual(decide(m, ya, xa, 80, 'TCP').ingress, { isolated: true, allowed: false, allowedBy: [] });
  });

  it('isolates only the pods the policy selects, in its own namespace', () => {
    const m = only(np('x', 'deny-a', { podSelector: { matchLabels: { pod: 'a' } } }));
    assert.equal(tcp(m, ya, xa), false);
    assert.equal(tcp(m, ya, xb), true);
    assert.deepEqual(
      [isolation(m, xa), isolation(m, xb), isolation(m, ya)],
      [
        { ingress: true, egress: false },
        { ingress: false, egress: false },
        { ingress: false, egress: false },
      ],
    );
  });

  it('podSelector alone means pods of the policy namespace; namespaceSelector alone means whole namespaces', () => {
    let m = only(
      np('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    );
    assert.equal(tcp(m, xb, xa), true);
    m = only(
      np('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }] }],
      }),
    );
    assert.equal(tcp(m, ya, xa), false, 'y/a has the label but lives in another namespace');
    m = only(
      np('x', 'p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'red' } } }] }] }),
    );
    assert.deepEqual([tcp(m, ya, xa), tcp(m, yc, xa), tcp(m, za, xa), tcp(m, xb, xa)], [true, true, false, false]);
  });

  it('both selectors in one peer are ANDed; as two peers they are ORed', () => {
    const and = only(
      np('x', 'p', {
        podSelector: {},
        ingress: [
          {
            from: [{ namespaceSelector: { matchLabels: { team: 'red' } }, podSelector: { matchLabels: { pod: 'c' } } }],
          },
        ],
      }),
    );
    assert.deepEqual([tcp(and, yc, xa), tcp(and, ya, xa), tcp(and, za, xa)], [true, false, false]);
    const or = only(
      np('x', 'p', {
        podSelector: {},
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { team: 'red' } } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
          },
        ],
      }),
    );
    assert.deepEqual([tcp(or, yc, xa), tcp(or, ya, xa), tcp(or, xb, xa), tcp(or, za, xa)], [true, true, true, false]);
  });

  it('matchExpressions: In, NotIn (true when the key is missing), Exists, DoesNotExist, ANDed with matchLabels', () => {
    const labels = { pod: 'a', tier: 'front' };
    const expr = (operator: string, values?: string[]) => ({
      matchExpressions: [{ key: 'tier', operator, ...(values && { values }) }],
    });
    assert.equal(matchesSelector(labels, expr('In', ['front', 'back'])), true);
    assert.equal(matchesSelector({ pod: 'b' }, expr('In', ['front'])), false);
    assert.equal(matchesSelector(labels, expr('NotIn', ['front'])), false);
    assert.equal(matchesSelector({ pod: 'b' }, expr('NotIn', ['front'])), true);
    assert.equal(matchesSelector(labels, expr('Exists')), true);
    assert.equal(matchesSelector({ pod: 'b' }, expr('DoesNotExist')), true);
    assert.equal(matchesSelector(labels, { matchLabels: { pod: 'b' }, ...expr('Exists') }), false);
    assert.equal(matchesSelector(labels, {}), true);
    assert.throws(() => matchesSelector(labels, expr('Equals', ['front'])), /operator/);
  });

  it('namespaces carry kubernetes.io/metadata.name', () => {
    const m = only(
      np('x', 'p', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }],
      }),
    );
    assert.deepEqual([tcp(m, za, xa), tcp(m, ya, xa)], [true, false]);
  });

  it('policyTypes: egress rules imply Egress; [Egress] ignores ingress rules; [Ingress, Egress] with no egress rules denies all egress', () => {
    let m = only(
      np('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'red' } } }] }],
      }),
    );
    assert.deepEqual(
      [tcp(m, xa, ya), tcp(m, xa, za), tcp(m, ya, xa)],
      [true, false, false],
      'egress limited, and ingress isolated by default',
    );
    m = only(
      np('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'none' } } }] }],
      }),
    );
    assert.deepEqual([tcp(m, ya, xa), tcp(m, xa, ya)], [true, false]);
    m = only(
      np('x', 'p', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{}] }),
    );
    assert.deepEqual([tcp(m, ya, xa), tcp(m, xa, ya), tcp(m, xa, xb)], [true, false, false]);
  });

  it('policies add up: a pod accepts what any selecting policy allows, and needs both ends to allow', () => {
    const fromB = np('x', 'from-b', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    const fromZ = np('x', 'from-z', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }],
    });
    const m = only(fromB, fromZ);
    assert.deepEqual([tcp(m, xb, xa), tcp(m, za, xa), tcp(m, ya, xa)], [true, true, false]);
    assert.deepEqual(decide(m, za, xa, 80, 'TCP').ingress.allowedBy, ['x/from-z']);
    const zEgress = np('z', 'no-egress', { podSelector: {}, policyTypes: ['Egress'] });
    assert.equal(tcp(only(fromB, fromZ, zEgress), za, xa), false, 'ingress allows, egress does not');
  });

  it('an empty rule ({}) allows every peer on every port', () => {
    const m = only(np('x', 'deny', { podSelector: {} }), np('x', 'all', { podSelector: {}, ingress: [{}] }));
    assert.deepEqual([tcp(m, ya, xa, 81), allowed(m, za, xa, 53, 'UDP')], [true, true]);
  });

  it('ipBlock: cidr minus except, matched by the address of the family in use', () => {
    const m = only(
      np('x', 'p', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.3/32'] } }] }],
      }),
    );
    assert.deepEqual([tcp(m, ya, xa), tcp(m, yc, xa), tcp(m, za, xa)], [true, false, true]);
    assert.equal(allowed(m, ya, xa, 80, 'TCP', 6), false, 'an IPv4 block matches no IPv6 address');
    const m6 = only(
      np('x', 'p', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: 'fd00::/96', except: ['fd00::1:3/128'] } }] }],
      }),
    );
    assert.deepEqual(
      [allowed(m6, ya, xa, 80, 'TCP', 6), allowed(m6, yc, xa, 80, 'TCP', 6), allowed(m6, ya, xa, 80, 'TCP', 4)],
      [true, false, false],
    );
  });

  it('named ports resolve against the destination: the selected pod for ingress, the peer for egress', () => {
    const ingress = only(np('y', 'p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }));
    assert.deepEqual(
      [tcp(ingress, xa, ya, 80), tcp(ingress, xa, ya, 81), tcp(ingress, xa, yc, 80), tcp(ingress, xa, yc, 81)],
      [true, false, false, true],
    );
    const egress = only(
      np('x', 'p', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'http' }] }],
      }),
    );
    assert.deepEqual([tcp(egress, xa, ya, 80), tcp(egress, xa, yc, 80), tcp(egress, xa, yc, 81)], [true, false, true]);
    const udp = only(np('y', 'p', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 'dns' }] }] }));
    assert.deepEqual([allowed(udp, xa, ya, 53, 'UDP'), allowed(udp, xa, ya, 53, 'TCP')], [true, false]);
    const wrongProto = only(
      np('y', 'p', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 'http' }] }] }),
    );
    assert.equal(allowed(wrongProto, xa, ya, 80, 'UDP'), false, '"http" names a TCP port');
  });

  it('ports: a number, a range with endPort, a protocol alone; TCP by default', () => {
    const rule = (p: object) => only(np('y', 'p', { podSelector: {}, ingress: [{ ports: [p] }] }));
    assert.deepEqual(
      [
        tcp(rule({ port: 80 }), xa, ya, 80),
        tcp(rule({ port: 80 }), xa, ya, 81),
        allowed(rule({ port: 80 }), xa, ya, 80, 'UDP'),
      ],
      [true, false, false],
    );
    const range = rule({ port: 80, endPort: 81 });
    assert.deepEqual(
      [tcp(range, xa, ya, 79), tcp(range, xa, ya, 80), tcp(range, xa, ya, 81), tcp(range, xa, ya, 82)],
      [false, true, true, false],
    );
    const udpOnly = rule({ protocol: 'UDP' });
    assert.deepEqual([allowed(udpOnly, xa, ya, 9999, 'UDP'), tcp(udpOnly, xa, ya, 80)], [true, false]);
  });

  it('cidrContains reads compressed IPv6 and never mixes families', () => {
    assert.equal(cidrContains('fd00:10:244::/64', 'fd00:10:244::a'), true);
    assert.equal(cidrContains('fd00:10:244::/64', 'fd00:10:245::a'), false);
    assert.equal(cidrContains('::/0', '10.0.0.1'), false);
    assert.equal(cidrContains('0.0.0.0/0', '10.0.0.1'), true);
    assert.equal(cidrContains('10.244.0.7/32', '10.244.0.7'), true);
    assert.equal(cidrContains('::ffff:0:0/96', '::ffff:10.0.0.1'), true);
  });
});
