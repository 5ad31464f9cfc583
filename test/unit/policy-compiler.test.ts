// The policy compiler and its parts, as pure functions: identities, ipBlock regions, port
// ranges, and what each endpoint ends up isolated for and allowed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cidrRegions } from '../../src/state/cidr-regions.js';
import {
  IDENTITY_ANY,
  IDENTITY_F_CIDR,
  IDENTITY_HOST,
  IDENTITY_MIN_POD,
  IDENTITY_UNRESOLVED,
  IDENTITY_WORLD,
  assignIdentities,
  securityKey,
} from '../../src/state/identities.js';
import {
  compilePolicy,
  evaluate,
  lookupIpcache,
  portBlocks,
  type PolicyInputs,
} from '../../src/state/policy-compiler.js';
import type { PolicyPod } from '../../src/state/identity-table.js';
import type { NetworkPolicy } from '../../src/state/resources.js';
import { validateResource } from '../../src/state/validate.js';

function policy(namespace: string, name: string, spec: object): NetworkPolicy {
  const r = validateResource({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace, name },
    spec,
  });
  assert.ok(r.ok === true, JSON.stringify(r));
  return r.value as NetworkPolicy;
}

const pod = (
  namespace: string,
  name: string,
  labels: Record<string, string>,
  ip: string,
  ports: PolicyPod['ports'] = [],
): PolicyPod => ({ namespace, name, labels, ips: [ip], ports });

const PODS = [
  pod('x', 'a', { app: 'web' }, '10.0.0.1', [{ name: 'http', containerPort: 80, protocol: 'TCP' }]),
  pod('x', 'b', { app: 'db' }, '10.0.0.2', [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]),
  pod('y', 'c', { app: 'web' }, '10.0.1.1', [{ name: 'http', containerPort: 81, protocol: 'TCP' }]),
];

function compile(policies: NetworkPolicy[], extra: Partial<PolicyInputs> = {}) {
  return compilePolicy({
    policies,
    namespaces: new Map<string, Record<string, string>>([
      ['x', { env: 'prod' }],
      ['y', { env: 'dev' }],
    ]),
    pods: PODS,
    endpoints: PODS.map((p, i) => ({ id: i + 1, namespace: p.namespace, name: p.name, ips: p.ips })),
    hostIps: ['192.168.0.1'],
    ...extra,
  });
}

/** Would `from` (an endpoint id) reach `to` on proto/port: egress at one, ingress at the other. */
function allowed(c: ReturnType<typeof compile>, from: number, to: number, port: number, proto = 6): boolean {
  const ipOf = (id: number) => PODS[id - 1]!.ips[0]!;
  return (
    evaluate(c.endpoints.get(from)!, 'egress', lookupIpcache(c.ipcache, ipOf(to)), proto, port).allowed &&
    evaluate(c.endpoints.get(to)!, 'ingress', lookupIpcache(c.ipcache, ipOf(from)), proto, port).allowed
  );
}

describe('identities', () => {
  it('come from pod labels, namespace labels and the namespace name; the same set gives the same number', () => {
    const c = compile([]);
    const idA = c.endpoints.get(1)!.identity;
    const idC = c.endpoints.get(3)!.identity;
    assert.ok(idA >= IDENTITY_MIN_POD && idA < IDENTITY_F_CIDR);
    assert.notEqual(idA, idC, 'same pod labels, another namespace');
    assert.equal(compile([]).endpoints.get(1)!.identity, idA, 'deterministic');
    const key = securityKey({ namespace: 'x', pod: { b: '2', a: '1' }, namespaceLabels: { z: '' } });
    assert.equal(key, 'namespace=x\npod:a=1\npod:b=2\nns:z=');
  });

  it('colliding label sets: the first by text keeps the number, the next takes the next free one, in any input order', () => {
    const hash = () => 1000;
    const one = assignIdentities(['b', 'a', 'c'], hash);
    const two = assignIdentities(['c', 'a', 'b'], hash);
    assert.deepEqual([...one.ids].sort(), [
      ['a', 1000],
      ['b', 1001],
      ['c', 1002],
    ]);
    assert.deepEqual([...two.ids].sort(), [...one.ids].sort());
    assert.deepEqual(one.moved.sort(), ['b', 'c']);
  });

  it('a pod the agent has no labels for is unresolved; the node is host; other addresses are world', () => {
    const c = compile([], { endpoints: [{ id: 9, namespace: 'x', name: 'ghost', ips: ['10.0.0.9'] }] });
    assert.equal(c.endpoints.get(9)!.identity, IDENTITY_UNRESOLVED);
    assert.equal(lookupIpcache(c.ipcache, '10.0.0.9').identity, IDENTITY_UNRESOLVED);
    assert.equal(lookupIpcache(c.ipcache, '192.168.0.1').identity, IDENTITY_HOST);
    assert.equal(lookupIpcache(c.ipcache, '8.8.8.8').identity, IDENTITY_WORLD);
  });
});

describe('port ranges as prefix blocks', () => {
  it('cover the range exactly, with the fewest aligned blocks', () => {
    assert.deepEqual(portBlocks(80, 80), [[80, 16]]);
    assert.deepEqual(portBlocks(80, 81), [[80, 15]]);
    assert.deepEqual(portBlocks(79, 82), [
      [79, 16],
      [80, 15],
      [82, 16],
    ]);
    assert.deepEqual(portBlocks(0, 65535), [[0, 0]]);
    for (const [lo, hi] of [
      [1, 65535],
      [1000, 2000],
      [32768, 60999],
    ] as const) {
      const covered = portBlocks(lo, hi).reduce((n, [, bits]) => n + 2 ** (16 - bits), 0);
      assert.equal(covered, hi - lo + 1);
      assert.ok(portBlocks(lo, hi).length <= 30);
    }
  });
});

describe('ipBlock regions', () => {
  it('a region lies in the blocks that hold it and not their exceptions; pods in a block get its region', () => {
    const r = cidrRegions([
      { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] },
      { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] },
    ]);
    const inner = r.regionOf('10.0.0.1');
    assert.notEqual(inner, IDENTITY_ANY);
    assert.deepEqual(r.identitiesIn({ cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] }), [inner]);
    assert.equal(
      r.regionOf('10.0.1.1'),
      r.regionOf('10.200.0.1'),
      'the exception and the rest of 10/8 lie in no block',
    );
    assert.equal(r.regionOf('10.0.1.1'), IDENTITY_ANY);
    assert.deepEqual(r.identitiesIn({ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }), [r.regionOf('8.8.8.8')]);
    assert.equal(r.regionOf('fd00::1'), IDENTITY_ANY, 'another family');
  });
});

describe('ipBlock regions against the definition', () => {
  it("an address lies in a block's regions exactly when it is in the CIDR and in no exception (random blocks)", () => {
    let seed = 3;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const ipOf = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const num = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const holds = (cidr: string, ip: string) => {
      const [net, len] = cidr.split('/');
      const size = 2 ** (32 - Number(len));
      return Math.floor(num(ip) / size) === Math.floor(num(net!) / size);
    };
    for (let round = 0; round < 20; round++) {
      const blocks = Array.from({ length: 1 + rand(6) }, () => {
        const len = 12 + rand(8);
        const cidr = ipOf((rand(1 << 20) >> (32 - len)) << (32 - len)) + `/${len}`;
        const base = num(cidr.split('/')[0]!) - num('10.0.0.0');
        const except = Array.from({ length: rand(3) }, () => {
          const elen = len + 1 + rand(8);
          return `${ipOf(base + ((rand(1 << (32 - len)) >> (32 - elen)) << (32 - elen)))}/${elen}`;
        });
        return { cidr, except: [...new Set(except)] };
      });
      const r = cidrRegions(blocks);
      for (let i = 0; i < 200; i++) {
        const ip = ipOf(rand(1 << 20));
        for (const b of blocks) {
          const want = holds(b.cidr, ip) && !b.except.some((e) => holds(e, ip));
          assert.equal(
            r.identitiesIn(b).includes(r.regionOf(ip)),
            want,
            `${ip} in ${b.cidr} except ${b.except.join(',')}`,
          );
        }
      }
    }
  });
});

describe('compiled policy', () => {
  const denyAll = policy('x', 'deny-all', { podSelector: {} });

  it('isolates only the pods a policy selects, for the directions it names', () => {
    const c = compile([
      policy('x', 'web-only', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Egress'] }),
    ]);
    assert.deepEqual(c.endpoints.get(1)!.isolated, { ingress: false, egress: true });
    assert.deepEqual(c.endpoints.get(2)!.isolated, { ingress: false, egress: false });
    assert.deepEqual(c.endpoints.get(3)!.isolated, { ingress: false, egress: false }, 'another namespace');
    assert.equal(allowed(c, 1, 2, 80), false);
    assert.equal(allowed(c, 2, 1, 80), true);
  });

  it('allows the union of the policies selecting a pod, and its node always', () => {
    const c = compile([
      denyAll,
      policy('x', 'from-web', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 5432 }] }],
      }),
      policy('x', 'from-dev', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } } }] }],
      }),
    ]);
    assert.equal(allowed(c, 1, 2, 5432), true);
    assert.equal(allowed(c, 1, 2, 5433), false);
    assert.equal(allowed(c, 3, 2, 1), true, 'y is dev: every port');
    assert.equal(allowed(c, 2, 1, 80), false, 'x/a is isolated by deny-all');
    const host = evaluate(c.endpoints.get(1)!, 'ingress', lookupIpcache(c.ipcache, '192.168.0.1'), 6, 10250);
    assert.equal(host.allowed, true);
    assert.equal(c.rules.get(host.rule!)!.policy, null);
  });

  it('podSelector and namespaceSelector in one peer must both match; as two peers, either', () => {
    const and = compile([
      denyAll,
      policy('x', 'and', {
        podSelector: {},
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { app: 'web' } }, namespaceSelector: { matchLabels: { env: 'dev' } } },
            ],
          },
        ],
      }),
    ]);
    assert.equal(allowed(and, 3, 2, 1), true, 'y/c: web in dev');
    assert.equal(and.endpoints.get(1)!.isolated.ingress, true);
    const or = compile([
      denyAll,
      policy('x', 'or', {
        podSelector: {},
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { app: 'web' } } },
              { namespaceSelector: { matchLabels: { env: 'dev' } } },
            ],
          },
        ],
      }),
    ]);
    assert.equal(allowed(or, 1, 2, 1), true, 'x/a: web in x');
    assert.equal(allowed(or, 3, 2, 1), true, 'y/c: in dev');
  });

  it('named ports resolve per destination pod: ingress against the pod itself, egress per peer', () => {
    const c = compile([
      policy('x', 'in', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }),
      policy('x', 'out', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'http' }] }],
      }),
    ]);
    assert.equal(allowed(c, 3, 1, 80), true, 'x/a names 80 http');
    assert.equal(allowed(c, 3, 2, 8080), true, 'x/b names 8080 http');
    assert.equal(allowed(c, 3, 2, 80), false);
    assert.equal(allowed(c, 1, 3, 81), true, 'egress to y/c: its http is 81');
    assert.equal(allowed(c, 1, 3, 80), false);
  });

  it('a pod without labels is isolated by its namespace\'s policies and allowed nothing; as a peer it matches only "every peer"', () => {
    const ghost = { id: 9, namespace: 'x', name: 'ghost', ips: ['10.0.0.9'] };
    const c = compile(
      [
        policy('x', 'web', {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ from: [{ podSelector: {} }] }],
        }),
      ],
      {
        endpoints: [...PODS.map((p, i) => ({ id: i + 1, namespace: p.namespace, name: p.name, ips: p.ips })), ghost],
      },
    );
    assert.deepEqual(c.endpoints.get(9)!.isolated, { ingress: true, egress: false });
    assert.equal(c.endpoints.get(9)!.entries.size, 1, 'only its node');
    assert.equal(evaluate(c.endpoints.get(1)!, 'ingress', lookupIpcache(c.ipcache, '10.0.0.9'), 6, 80).allowed, false);
    assert.equal(evaluate(c.endpoints.get(1)!, 'ingress', lookupIpcache(c.ipcache, '10.0.0.2'), 6, 80).allowed, true);
  });

  it('ipBlock peers match pods by address, minus the exceptions', () => {
    const c = compile([
      policy('x', 'block', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.1.0/24'] } }] }],
      }),
    ]);
    assert.equal(allowed(c, 1, 2, 1), true, '10.0.0.1');
    assert.equal(allowed(c, 3, 2, 1), false, '10.0.1.1 is in the exception');
  });

  it('names the policy and rule behind every entry, with stable rule ids', () => {
    const p = policy('x', 'from-web', {
      podSelector: { matchLabels: { app: 'db' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
    });
    const c = compile([p]);
    const v = evaluate(c.endpoints.get(2)!, 'ingress', lookupIpcache(c.ipcache, '10.0.0.1'), 6, 80);
    assert.deepEqual(
      { ...c.rules.get(v.rule!)!, id: 0 },
      { id: 0, policy: 'x/from-web', direction: 'ingress', rule: 'spec.ingress[0]' },
    );
    assert.equal(compile([p]).rules.get(v.rule!)?.policy, 'x/from-web', 'the same id in another compile');
  });
});
