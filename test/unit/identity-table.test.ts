// The identity table works by difference: what each change touches, and, after any sequence
// of changes, the same ipcache and identities as a table built from scratch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IDENTITY_HOST, IDENTITY_UNRESOLVED, IDENTITY_WORLD } from '../../src/state/identities.js';
import { IdentityTable, type PolicyPod } from '../../src/state/identity-table.js';

const pod = (namespace: string, name: string, labels: Record<string, string>, ...ips: string[]): PolicyPod => ({
  namespace,
  name,
  labels,
  ips,
  ports: [],
});

describe('identity table changes', () => {
  it('a replica with labels another pod has: one ipcache entry, identities unchanged', () => {
    const t = new IdentityTable();
    t.setPod(pod('x', 'web-1', { app: 'web' }, '10.0.0.1'));
    const first = t.commit();
    assert.equal(first.identitiesChanged, true);
    t.setPod(pod('x', 'web-2', { app: 'web' }, '10.0.0.2'));
    const second = t.commit();
    assert.equal(second.identitiesChanged, false);
    assert.deepEqual(
      second.upserts.map(([p]) => p),
      ['10.0.0.2/32'],
    );
    assert.equal(second.upserts[0]![1].identity, t.identityOfPod('x', 'web-1'));
    t.deletePod('x', 'web-2');
    assert.deepEqual(t.commit(), { upserts: [], removes: ['10.0.0.2/32'], identitiesChanged: false });
    assert.deepEqual(t.commit(), { upserts: [], removes: [], identitiesChanged: false }, 'nothing left to do');
  });

  it("a namespace's labels change every identity of its pods", () => {
    const t = new IdentityTable();
    t.setPod(pod('x', 'a', { app: 'web' }, '10.0.0.1'));
    t.setPod(pod('y', 'b', { app: 'web' }, '10.0.1.1'));
    t.commit();
    const before = t.identityOfPod('x', 'a');
    t.setNamespace('x', { team: 'blue' });
    const c = t.commit();
    assert.equal(c.identitiesChanged, true);
    assert.notEqual(t.identityOfPod('x', 'a'), before);
    assert.deepEqual(
      c.upserts.map(([p]) => p),
      ['10.0.0.1/32'],
      "only x's pod moves",
    );
    assert.equal(t.identities.get(t.identityOfPod('x', 'a')!)!.namespaceLabels.team, 'blue');
  });

  it('an address claimed twice: the node, then a local endpoint, then the first pod by name', () => {
    const t = new IdentityTable();
    t.setPod(pod('x', 'b', { app: 'b' }, '10.0.0.1'));
    t.setPod(pod('x', 'a', { app: 'a' }, '10.0.0.1'));
    t.commit();
    assert.equal(t.ipcache.get('10.0.0.1/32')!.identity, t.identityOfPod('x', 'a'));
    t.setEndpoints([{ id: 7, namespace: 'x', name: 'ghost', ips: ['10.0.0.1'] }]);
    t.commit();
    assert.equal(
      t.ipcache.get('10.0.0.1/32')!.identity,
      IDENTITY_UNRESOLVED,
      'the local endpoint, whose pod is unknown',
    );
    t.setHostIps(['10.0.0.1']);
    t.commit();
    assert.equal(t.ipcache.get('10.0.0.1/32')!.identity, IDENTITY_HOST);
  });

  it('ipBlocks add their prefixes as world with a region; pods inside carry the region', () => {
    const t = new IdentityTable();
    t.setPod(pod('x', 'a', { app: 'a' }, '10.0.0.1'));
    t.setBlocks([{ cidr: '10.0.0.0/24', except: [] }]);
    t.commit();
    const region = t.ipcache.get('10.0.0.0/24')!;
    assert.equal(region.identity, IDENTITY_WORLD);
    assert.equal(t.ipcache.get('10.0.0.1/32')!.cidrIdentity, region.cidrIdentity);
    t.setBlocks([]);
    const c = t.commit();
    assert.ok(c.removes.includes('10.0.0.0/24'));
    assert.equal(t.ipcache.get('10.0.0.1/32')!.cidrIdentity, t.ipcache.get('0.0.0.0/0')!.cidrIdentity);
  });
});

describe('by difference equals from scratch', () => {
  it('ipBlocks added and removed again leave what a table that never had them holds', () => {
    const t = new IdentityTable();
    t.setPod(pod('x', 'a', { app: 'a' }, '10.0.0.1'));
    t.commit();
    const before = [...t.ipcache].sort();
    assert.ok(t.ipcache.has('0.0.0.0/0') && t.ipcache.has('::/0'), 'the defaults are there without blocks');
    t.setBlocks([{ cidr: '10.0.0.0/24', except: ['10.0.0.0/28'] }]);
    t.commit();
    t.setBlocks([]);
    t.commit();
    assert.deepEqual([...t.ipcache].sort(), before);
  });

  for (const start of [7, 11, 23, 42, 99])
    it(`after 300 random changes (seed ${start}) the ipcache and identities are those of a fresh table`, () => {
      let seed = start;
      const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
      const live = new Map<string, PolicyPod>();
      const nsLabels = new Map<string, Record<string, string>>();
      let blocks: { cidr: string; except: string[] }[] = [];
      let endpoints: { id: number; namespace: string; name: string; ips: string[] }[] = [];
      let host: string[] = [];
      const t = new IdentityTable();
      for (let step = 0; step < 300; step++) {
        const ns = `ns${rand(3)}`;
        const name = `p${rand(12)}`;
        switch (rand(7)) {
          case 0:
          case 1:
          case 2: {
            const p = pod(ns, name, { app: `a${rand(3)}` }, `10.0.${rand(2)}.${rand(20)}`);
            live.set(`${ns}/${name}`, p);
            t.setPod(p);
            break;
          }
          case 3:
            live.delete(`${ns}/${name}`);
            t.deletePod(ns, name);
            break;
          case 4: {
            const labels = rand(2) ? { team: `t${rand(2)}` } : undefined;
            if (labels) nsLabels.set(ns, labels);
            else nsLabels.delete(ns);
            t.setNamespace(ns, labels);
            break;
          }
          case 5:
            blocks = rand(2) ? [{ cidr: '10.0.0.0/23', except: [`10.0.${rand(2)}.0/28`] }] : [];
            t.setBlocks(blocks);
            break;
          default:
            endpoints = [{ id: 1 + rand(3), namespace: ns, name, ips: [`10.0.${rand(2)}.${rand(20)}`] }];
            host = rand(2) ? [`10.0.0.${rand(20)}`] : [];
            t.setEndpoints(endpoints);
            t.setHostIps(host);
        }
        if (rand(3) === 0) t.commit();
      }
      t.commit();
      const fresh = new IdentityTable();
      for (const [n, l] of nsLabels) fresh.setNamespace(n, l);
      for (const p of live.values()) fresh.setPod(p);
      fresh.setEndpoints(endpoints);
      fresh.setHostIps(host);
      fresh.setBlocks(blocks);
      fresh.commit();
      assert.deepEqual([...t.ipcache].sort(), [...fresh.ipcache].sort());
      assert.deepEqual([...t.identities.keys()].sort(), [...fresh.identities.keys()].sort());
    });
});
