// placeBackends (src/datapath/lb-writer.ts): the slot assignment that makes an endpoint change
// rewrite one slot, not the whole service. Pure; no maps involved.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { placeBackends } from '../../src/datapath/lb-writer.js';
import type { L4Addr } from '../../src/state/services.js';
import { seeded } from '../harness/seeded.js';

const b = (n: number, port = 8080): L4Addr => ({ ip: `10.0.0.${n}`, port, family: 4 });
const text = (xs: readonly L4Addr[]) => xs.map((x) => `${x.ip}:${x.port}`);
const sortedText = (xs: readonly L4Addr[]) => text(xs).sort();

function assertPermutation(out: readonly L4Addr[], desired: readonly L4Addr[]): void {
  assert.equal(out.length, desired.length, 'one slot per desired backend');
  assert.ok(
    out.every((x) => x !== undefined),
    `no empty slot: ${JSON.stringify(out)}`,
  );
  assert.deepEqual(sortedText(out), sortedText(desired), 'every desired backend exactly once');
}

describe('placeBackends', () => {
  it('with nothing current, the backends fill the slots in the order given', () => {
    assert.deepEqual(placeBackends([], [b(1), b(2), b(3)]), [b(1), b(2), b(3)]);
  });

  it('with nothing desired, nothing is placed', () => {
    assert.deepEqual(placeBackends([b(1), b(2)], []), []);
  });

  it('unchanged backends stay exactly where they are', () => {
    const current = [b(3), b(1), b(2)];
    assert.deepEqual(placeBackends(current, [b(1), b(2), b(3)]), current);
  });

  it("backends that stay keep their slot; a removed one's slot goes to the newcomer", () => {
    const current = [b(1), b(2), b(3), b(4)];
    const out = placeBackends(current, [b(1), b(3), b(4), b(9)]);
    assert.deepEqual(text(out), text([b(1), b(9), b(3), b(4)]));
  });

  it('several removals are filled by newcomers, lowest slot first, in desired order', () => {
    const current = [b(1), b(2), b(3), b(4), b(5)];
    const out = placeBackends(current, [b(7), b(1), b(3), b(5), b(6)]);
    assert.deepEqual(text(out), text([b(1), b(7), b(3), b(6), b(5)]));
  });

  it('growing keeps every current slot and appends the newcomers', () => {
    const current = [b(2), b(1)];
    const out = placeBackends(current, [b(1), b(2), b(3), b(4)]);
    assert.deepEqual(text(out), text([b(2), b(1), b(3), b(4)]));
  });

  it('shrinking keeps survivors in slots within the new count; survivors beyond it move into the holes', () => {
    const current = [b(1), b(2), b(3), b(4), b(5)];
    const out = placeBackends(current, [b(5), b(1), b(2)]);
    // b1 and b2 were in slots 1 and 2, still within the count of 3: they stay. b5 was in slot 5,
    // beyond the new count: it takes the free slot 3.
    assert.deepEqual(text(out), text([b(1), b(2), b(5)]));
  });

  it('shrinking by removing the front: the kept tail moves down, nothing is lost', () => {
    const current = [b(1), b(2), b(3), b(4)];
    const out = placeBackends(current, [b(3), b(4)]);
    assertPermutation(out, [b(3), b(4)]);
  });

  it('a backend is identified by address and port: a port change is a new backend', () => {
    const current = [b(1, 80), b(2, 80)];
    const out = placeBackends(current, [b(2, 80), b(1, 8080)]);
    assert.deepEqual(text(out), text([b(1, 8080), b(2, 80)]));
  });

  it('IPv6 backends are placed the same way', () => {
    const v6 = (n: number): L4Addr => ({ ip: `fd00::${n}`, port: 80, family: 6 });
    assert.deepEqual(text(placeBackends([v6(1), v6(2), v6(3)], [v6(3), v6(4), v6(1)])), text([v6(1), v6(4), v6(3)]));
  });

  it('returns the desired objects and does not modify its inputs', () => {
    const current = Object.freeze([b(1), b(2)]);
    const desired = Object.freeze([b(2), b(3)]);
    const out = placeBackends(current, desired);
    assert.ok(
      out.every((x) => desired.includes(x)),
      'slots hold the desired entries themselves',
    );
    assert.deepEqual(text(current), text([b(1), b(2)]));
    assert.deepEqual(text(desired), text([b(2), b(3)]));
  });

  it('properties over random changes: permutation of desired, survivors keep in-range slots, idempotent', () => {
    const draw = seeded(12345);
    const rand = (n: number): number => Math.floor(draw() * n);
    const pickSet = (max: number): L4Addr[] => {
      const n = rand(max + 1);
      const chosen = new Set<number>();
      while (chosen.size < n) chosen.add(rand(40) + 1);
      return [...chosen].map((x) => b(x));
    };
    for (let round = 0; round < 500; round++) {
      const current = pickSet(20);
      const desired = pickSet(20);
      const out = placeBackends(current, desired);
      const ctx = `round ${round}: current ${text(current)} desired ${text(desired)} → ${text(out)}`;
      assertPermutation(out, desired);
      const wanted = new Set(text(desired));
      current.forEach((c, i) => {
        const key = `${c.ip}:${c.port}`;
        if (wanted.has(key) && i < desired.length)
          assert.equal(`${out[i]?.ip}:${out[i]?.port}`, key, `survivor ${key} left slot ${i + 1}; ${ctx}`);
      });
      // Slots that change are exactly those whose old backend left or lies beyond the count.
      const changed = out.filter((x, i) => text([x])[0] !== (current[i] ? text([current[i]])[0] : undefined)).length;
      const newcomers = desired.filter(
        (d) => !current.slice(0, desired.length).some((c) => c.ip === d.ip && c.port === d.port),
      ).length;
      assert.equal(changed, newcomers, `minimal rewrites; ${ctx}`);
      assert.deepEqual(placeBackends(out, desired), out, `idempotent; ${ctx}`);
    }
  });
});
