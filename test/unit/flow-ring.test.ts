// The observer's shared flow ring (src/observe/flow-ring.ts): sequence numbers, wrapping, and
// records overwritten before or while they are read.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlowRing, MAX_RECORD } from '../../src/observe/flow-ring.js';

const rec = (n: number, len = 64) => Buffer.alloc(len, n & 0xff);

function append(ring: FlowRing, records: Buffer[]): void {
  ring.begin(records.length);
  for (const r of records) ring.append(r, 0, r.length);
  ring.commit();
}

describe('FlowRing', () => {
  it('holds the newest `capacity` records by sequence number', () => {
    const ring = FlowRing.create(4);
    append(
      ring,
      [1, 2, 3].map((n) => rec(n)),
    );
    assert.deepEqual([ring.written(), ring.oldest()], [3, 0]);
    assert.deepEqual(ring.read(1), rec(2));
    append(
      ring,
      [4, 5, 6].map((n) => rec(n)),
    );
    assert.deepEqual([ring.written(), ring.oldest()], [6, 2]);
    assert.equal(ring.read(1), undefined, 'overwritten');
    assert.deepEqual(ring.read(2), rec(3));
    assert.deepEqual(ring.read(5), rec(6));
    assert.equal(ring.read(6), undefined, 'not written yet');
  });

  it('records keep their length; longer ones than a slot holds are cut', () => {
    const ring = FlowRing.create(2);
    append(ring, [rec(1, 10), rec(2, 300)]);
    assert.equal(ring.read(0)!.length, 10);
    assert.equal(ring.read(1)!.length, MAX_RECORD);
  });

  it('while a batch is being written, the slots it may reuse read as gone', () => {
    const ring = FlowRing.create(4);
    append(
      ring,
      [1, 2, 3, 4].map((n) => rec(n)),
    );
    ring.begin(2); // the writer is about to reuse the slots of records 0 and 1
    assert.equal(ring.read(0), undefined);
    assert.equal(ring.read(1), undefined);
    assert.deepEqual(ring.read(2), rec(3));
    ring.append(rec(5), 0, 64);
    ring.commit();
    assert.deepEqual(ring.read(4), rec(5));
    assert.deepEqual(ring.read(1), rec(2), 'one record written: record 1 is still there');
  });

  it("a second view of the same memory (the worker's) sees the same records", () => {
    const ring = FlowRing.create(8);
    const writer = FlowRing.attach(ring.shared);
    append(writer, [rec(9)]);
    assert.deepEqual(ring.read(0), rec(9));
    assert.throws(() => FlowRing.create(0), /capacity 0: want a positive integer/);
  });
});
