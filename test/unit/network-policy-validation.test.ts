// NetworkPolicy validation: the normalized form the compiler reads, the API server's defaults,
// and every refusal named by field. Label selectors are checked and matched here too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateResource } from '../../src/state/validate.js';
import { matchesSelector } from '../../src/state/selectors.js';
import type { NetworkPolicySpec } from '../../src/state/resources.js';

const policy = (spec: unknown) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'p', namespace: 'prod' },
  spec,
});

function ok(spec: unknown): NetworkPolicySpec {
  const r = validateResource(policy(spec));
  assert.equal(r.ok, true, JSON.stringify(r));
  return (r as { value: { spec: NetworkPolicySpec } }).value.spec;
}

function rejects(spec: unknown, field: string, msg: RegExp): void {
  const r = validateResource(policy(spec));
  assert.equal(r.ok, false, `expected ${field} to be refused`);
  const errors = (r as { errors: string[] }).errors;
  assert.ok(
    errors.some((e) => e.startsWith(`${field}: `) && msg.test(e)),
    `want ${field} ~ ${msg}, got ${JSON.stringify(errors)}`,
  );
}

describe('NetworkPolicy: normalized form', () => {
  it('defaults policyTypes as the API server does: Ingress, plus Egress when there are egress rules', () => {
    assert.deepEqual(ok({ podSelector: {} }).policyTypes, ['Ingress']);
    assert.deepEqual(ok({ podSelector: {}, egress: [{}] }).policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(ok({ podSelector: {}, policyTypes: ['Egress'] }).policyTypes, ['Egress']);
  });

  it('reads an empty or missing peer list and port list as "every peer" and "every port"', () => {
    const spec = ok({ podSelector: {}, ingress: [{}, { from: [], ports: [] }] });
    assert.deepEqual(spec.ingress, [{}, {}]);
    assert.deepEqual(spec.egress, []);
  });

  it('keeps both selectors of one peer together, defaults the protocol to TCP, and canonicalizes CIDRs', () => {
    const spec = ok({
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [
        {
          from: [
            {
              podSelector: { matchLabels: { role: 'client' } },
              namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] },
            },
            { ipBlock: { cidr: '10.1.2.3/16', except: ['10.1.7.0/24'] } },
          ],
          ports: [
            { port: 80 },
            { protocol: 'UDP', port: 'dns' },
            { protocol: 'SCTP', port: 1000, endPort: 2000 },
            { protocol: 'UDP' },
          ],
        },
      ],
    });
    assert.deepEqual(spec.ingress[0]!.peers, [
      {
        kind: 'pods',
        podSelector: { matchLabels: { role: 'client' } },
        namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] },
      },
      { kind: 'ipBlock', ipBlock: { cidr: '10.1.0.0/16', except: ['10.1.7.0/24'] } },
    ]);
    assert.deepEqual(spec.ingress[0]!.ports, [
      { protocol: 'TCP', port: 80 },
      { protocol: 'UDP', port: 'dns' },
      { protocol: 'SCTP', port: 1000, endPort: 2000 },
      { protocol: 'UDP' },
    ]);
  });
});

describe('NetworkPolicy: refusals name the field', () => {
  it('a selector operator that does not exist, and values that do not fit the operator', () => {
    rejects(
      { podSelector: { matchExpressions: [{ key: 'app', operator: 'Equals', values: ['x'] }] } },
      'spec.podSelector.matchExpressions[0].operator',
      /not a valid operator/,
    );
    rejects(
      { podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: [] }] } },
      'spec.podSelector.matchExpressions[0].values',
      /non-empty/,
    );
    rejects(
      { podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['x'] }] } },
      'spec.podSelector.matchExpressions[0].values',
      /must be empty/,
    );
    rejects(
      { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'bad key!': 'x' } } }] }] },
      'spec.ingress[0].from[0].namespaceSelector.matchLabels["bad key!"]',
      /not a label key/,
    );
  });

  it('a port name longer than 15 characters, and endPort misuse', () => {
    rejects(
      { podSelector: {}, ingress: [{ ports: [{ port: 'a-very-long-port-name' }] }] },
      'spec.ingress[0].ports[0].port',
      /15|port name/,
    );
    rejects(
      { podSelector: {}, egress: [{ ports: [{ port: 'http', endPort: 90 }] }] },
      'spec.egress[0].ports[0].endPort',
      /numeric port/,
    );
    rejects(
      { podSelector: {}, egress: [{ ports: [{ port: 100, endPort: 90 }] }] },
      'spec.egress[0].ports[0].endPort',
      /below port 100/,
    );
    rejects({ podSelector: {}, egress: [{ ports: [{ port: 70000 }] }] }, 'spec.egress[0].ports[0].port', /port/);
    rejects(
      { podSelector: {}, egress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] },
      'spec.egress[0].ports[0].protocol',
      /unknown protocol/,
    );
  });

  it('an ipBlock that is not a CIDR, or whose exception is not strictly inside it', () => {
    rejects(
      { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.300/8' } }] }] },
      'spec.ingress[0].from[0].ipBlock.cidr',
      /not a CIDR/,
    );
    rejects(
      { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[0]',
      /not strictly inside/,
    );
    rejects(
      { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[0]',
      /not strictly inside/,
    );
    rejects(
      { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] },
      'spec.ingress[0].from[0]',
      /cannot be combined/,
    );
  });

  it('a missing podSelector, an empty peer, and an unknown policy type', () => {
    rejects({ ingress: [] }, 'spec.podSelector', /required/);
    rejects({ podSelector: {}, ingress: [{ from: [{}] }] }, 'spec.ingress[0].from[0]', /must set/);
    rejects({ podSelector: {}, policyTypes: ['Inbound'] }, 'spec.policyTypes[0]', /not Ingress or Egress/);
  });
});

describe('label selectors match as apimachinery does', () => {
  const labels = { app: 'web', tier: 'front' };
  it('matchLabels and every operator, all requirements and-ed', () => {
    assert.equal(matchesSelector({}, labels), true, 'the empty selector selects everything');
    assert.equal(matchesSelector({ matchLabels: { app: 'web' } }, labels), true);
    assert.equal(matchesSelector({ matchLabels: { app: 'db' } }, labels), false);
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] }, labels),
      true,
    );
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] }, labels),
      false,
    );
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }, labels),
      false,
    );
    assert.equal(
      matchesSelector({ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, labels),
      true,
      'NotIn matches an absent key',
    );
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels), true);
    assert.equal(matchesSelector({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels), false);
    assert.equal(
      matchesSelector(
        { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['back'] }] },
        labels,
      ),
      false,
    );
  });
});
