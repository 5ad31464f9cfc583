// The process's budget of queued HTTP/2 DATA (src/proxy/h2/queue-budget.ts): who pays when it
// is passed. Connections are stand-ins holding streams of given sizes; the proxy's own
// connections are tested against it in test/proxy/h2-peers.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueBudget, type QueueHolder } from '../../src/proxy/h2/queue-budget.js';

class Holder implements QueueHolder {
  readonly reset: number[] = [];
  constructor(
    readonly name: string,
    private readonly budget: QueueBudget,
    readonly streams: number[],
    private readonly canShed = true,
  ) {
    budget.bytes += this.queuedBytes;
    if (this.queuedBytes) budget.holders.add(this);
  }
  get queuedBytes(): number {
    return this.streams.reduce((a, b) => a + b, 0);
  }
  shedLargest(): boolean {
    if (!this.canShed || !this.streams.length) return false;
    const i = this.streams.indexOf(Math.max(...this.streams));
    const [n] = this.streams.splice(i, 1);
    this.reset.push(n!);
    this.budget.bytes -= n!;
    if (!this.streams.length) this.budget.holders.delete(this);
    return true;
  }
}

describe('QueueBudget', () => {
  it('does nothing while the process is within its budget', () => {
    const b = new QueueBudget(100);
    const h = new Holder('a', b, [60, 40]);
    assert.equal(b.over, false);
    b.relieve();
    assert.deepEqual([h.reset, b.bytes, b.shed.process], [[], 100, 0]);
  });

  it('resets the largest holder’s largest streams first, down to 7/8 of the budget', () => {
    const b = new QueueBudget(800);
    const modest = new Holder('modest', b, [50]);
    const hoarder = new Holder('hoarder', b, [100, 300, 200]);
    const other = new Holder('other', b, [250, 250]);
    assert.equal(b.bytes, 1150);
    assert.equal(b.over, true);
    b.relieve();
    // 1150: the hoarder (600) loses its 300 → 850; the other (500) is now the largest and loses
    // 250 → 600, at most 700 (7/8 of 800): done.
    assert.deepEqual(hoarder.reset, [300]);
    assert.deepEqual(other.reset, [250]);
    assert.deepEqual(modest.reset, []);
    assert.deepEqual([b.bytes, b.shed.process], [600, 2]);
  });

  it('stops when the largest holder cannot shed, instead of spinning', () => {
    const b = new QueueBudget(100);
    const stuck = new Holder('stuck', b, [500], false);
    new Holder('small', b, [10]);
    b.relieve();
    assert.deepEqual([stuck.reset, b.bytes], [[], 510]);
  });

  it('refuses a budget that is not positive', () => {
    for (const limit of [0, -1, NaN]) assert.throws(() => new QueueBudget(limit), /positive/);
  });
});
