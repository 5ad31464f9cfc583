// The HTTP/2 connection's stream table (open addressing, backward-shift deletion): the same
// answers as a Map under random opens and closes, including ids that collide in the table,
// probe runs that wrap around its end, and growth.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamTable } from '../../src/proxy/h2/stream-table.js';
import { seeded } from '../harness/seeded.js';

interface S {
  id: number;
}

function check(t: StreamTable<S>, m: Map<number, S>, probe: number[]): void {
  assert.equal(t.size, m.size);
  for (const id of probe) assert.equal(t.get(id), m.get(id), `stream ${id}`);
  assert.deepEqual(
    t
      .values()
      .map((s) => s.id)
      .sort((a, b) => a - b),
    [...m.keys()].sort((a, b) => a - b),
  );
}

describe('StreamTable', () => {
  it('finds, adds and deletes like a Map over 20,000 random operations', () => {
    const random = seeded(7);
    const t = new StreamTable<S>(8);
    const m = new Map<number, S>();
    let next = 1;
    const ids: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      if (m.size === 0 || random() < 0.55) {
        // New streams mostly in order; some jump ahead so that ids collide modulo the table.
        next += random() < 0.1 ? 2 * Math.floor(random() * 64) + 2 : 2;
        const s = { id: next };
        t.add(s);
        m.set(s.id, s);
        ids.push(s.id);
      } else {
        const id = ids[Math.floor(random() * ids.length)]!;
        assert.equal(t.delete(id), m.delete(id), `delete ${id}`);
      }
      if (i % 97 === 0) check(t, m, ids.slice(-200));
    }
    check(t, m, ids);
  });

  it('keeps a long-lived stream findable while later ids collide with it and close', () => {
    const t = new StreamTable<S>(8);
    const old = { id: 1 };
    t.add(old);
    // Ids 1 + 16k share the first slot of a 16-slot table: one probe run through them all.
    for (let k = 1; k <= 6; k++) t.add({ id: 1 + 16 * k });
    for (let k = 1; k <= 6; k += 2) assert.equal(t.delete(1 + 16 * k), true);
    assert.equal(t.get(1), old);
    for (const k of [2, 4, 6]) assert.equal(t.get(1 + 16 * k)?.id, 1 + 16 * k);
    assert.equal(t.get(1 + 16), undefined);
    assert.equal(t.delete(1 + 16), false);
    assert.equal(t.size, 4);
  });

  it('wraps probe runs around the end of the table', () => {
    const t = new StreamTable<S>(16); // 16 slots (it grows at the 8th stream): home = id >>> 1 & 15
    // Homes 15, 15, 15, 14, 14: the run goes 15 → 0 → 1 → (14) → 2, across the end.
    for (const id of [31, 63, 95, 29, 61]) t.add({ id });
    assert.equal(t.delete(31), true); // 63, 95 and 61 each shift back one slot
    for (const id of [63, 95, 29, 61]) assert.equal(t.get(id)?.id, id);
    assert.equal(t.delete(29), true);
    for (const id of [63, 95, 61]) assert.equal(t.get(id)?.id, id);
    assert.equal(t.get(31), undefined);
    assert.equal(t.size, 3);
  });
});
