// Pods, Namespaces, Nodes and the spec-holding kinds: what is kept, and what is refused by field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateResource } from '../../src/state/validate.js';

function ok(raw: unknown) {
  const r = validateResource(raw);
  assert.equal(r.ok, true, JSON.stringify(r));
  return (r as { value: unknown }).value as Record<string, unknown> & {
    metadata: Record<string, unknown>;
    spec: Record<string, unknown>;
  };
}

function rejects(raw: unknown, field: string, msg: RegExp): void {
  const r = validateResource(raw);
  assert.equal(r.ok, false, `expected ${field} to be refused`);
  const errors = (r as { errors: string[] }).errors;
  assert.ok(
    errors.some((e) => e.startsWith(`${field}: `) && msg.test(e)),
    `want ${field} ~ ${msg}, got ${JSON.stringify(errors)}`,
  );
}

const pod = (spec: unknown, status?: unknown, metadata: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-0',
    namespace: 'prod',
    labels: { app: 'web' },
    uid: 'u-1',
    resourceVersion: '7',
    annotations: { big: 'x'.repeat(1000) },
    ...metadata,
  },
  spec,
  ...(status !== undefined && { status }),
});

describe('Pod', () => {
  it('keeps labels, node, container ports and pod IPs, and drops what Weft does not read', () => {
    const v = ok(
      pod(
        {
          nodeName: 'node-1',
          containers: [
            {
              name: 'app',
              image: 'nginx',
              ports: [
                { name: 'http', containerPort: 8080 },
                { containerPort: 53, protocol: 'UDP' },
              ],
            },
          ],
          volumes: [{ name: 'v' }],
        },
        {
          phase: 'Running',
          podIP: '10.244.1.5',
          podIPs: [{ ip: '10.244.1.5' }, { ip: 'fd00:10:244:1::5' }],
          conditions: [],
        },
      ),
    );
    assert.deepEqual(v, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-0', namespace: 'prod', labels: { app: 'web' }, resourceVersion: '7', uid: 'u-1' },
      spec: {
        nodeName: 'node-1',
        containers: [
          {
            name: 'app',
            ports: [
              { name: 'http', containerPort: 8080, protocol: 'TCP' },
              { containerPort: 53, protocol: 'UDP' },
            ],
          },
        ],
      },
      status: { phase: 'Running', podIPs: [{ ip: '10.244.1.5' }, { ip: 'fd00:10:244:1::5' }] },
    });
  });

  it('a pending pod without status or node is valid', () => {
    const v = ok(pod({ containers: [{ name: 'app' }] }));
    assert.deepEqual(v.status, { podIPs: [] });
  });

  it('refuses bad port names, port numbers and pod IPs by field', () => {
    rejects(
      pod({ containers: [{ name: 'app', ports: [{ name: 'a-very-long-port-name', containerPort: 80 }] }] }),
      'spec.containers[0].ports[0].name',
      /not a port name/,
    );
    rejects(
      pod({ containers: [{ name: 'app', ports: [{ name: '8080', containerPort: 80 }] }] }),
      'spec.containers[0].ports[0].name',
      /with a letter/,
    );
    rejects(
      pod({ containers: [{ name: 'app', ports: [{ containerPort: 70000 }] }] }),
      'spec.containers[0].ports[0].containerPort',
      /not a port number/,
    );
    rejects(
      pod({ containers: [{ name: 'app' }] }, { podIPs: [{ ip: '10.244.1' }] }),
      'status.podIPs[0].ip',
      /not an IP address/,
    );
    rejects(pod({ containers: [{}] }), 'spec.containers[0].name', /required/);
    rejects(pod(undefined), 'spec', /required/);
  });
});

describe('Namespace and Node', () => {
  it('cluster-scoped objects have namespace "" whatever the input says', () => {
    const ns = ok({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'prod', namespace: 'ignored', labels: { team: 'a' } },
    });
    assert.deepEqual(ns.metadata, { name: 'prod', namespace: '', labels: { team: 'a' } });
    const node = ok({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-1.example' },
      spec: { podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
    });
    assert.equal(node.metadata.namespace, '');
    assert.deepEqual(node.spec, { podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] });
  });

  it('a Node with only the legacy spec.podCIDR, or none yet, is read as such', () => {
    assert.deepEqual(
      ok({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: { podCIDR: '10.244.2.0/24' } }).spec,
      { podCIDRs: ['10.244.2.0/24'] },
    );
    assert.deepEqual(ok({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' } }).spec, { podCIDRs: [] });
  });

  it('refuses a Node pod CIDR that is not a CIDR and a Namespace name that is not a label', () => {
    rejects(
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: { podCIDRs: ['10.244.2.0'] } },
      'spec.podCIDRs[0]',
      /not a CIDR/,
    );
    rejects({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'Prod.x' } }, 'metadata.name', /RFC 1123 label/);
  });
});

describe('Gateway API routes', () => {
  it('are kept with their spec as given; a missing spec is refused', () => {
    const route = { parentRefs: [{ group: '', kind: 'Service', name: 'web' }], rules: [] };
    assert.equal(
      ok({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' }, spec: route }).kind,
      'HTTPRoute',
    );
    assert.equal(
      ok({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', metadata: { name: 'g' }, spec: route }).kind,
      'GRPCRoute',
    );
    rejects(
      { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' } },
      'spec',
      /required/,
    );
  });
});
