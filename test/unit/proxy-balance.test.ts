// Per-request balancing: P2C over peak-EWMA, least-request and round robin, with an injected
// clock and random source so that every run is the same.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BalancerAlgorithm } from '../../src/contract/proxy-snapshot.js';
import { createBalancer, type Balancer, type BalancerOptions, type EndpointState } from '../../src/proxy/balance.js';
import { seeded } from '../harness/seeded.js';

interface Ep {
  ip: string;
  port: number;
}

const ep = (n: number): Ep => ({ ip: `10.0.0.${n}`, port: 8080 });

function setup(algorithm: BalancerAlgorithm, endpoints: Ep[], opts: Partial<BalancerOptions<Ep>> = {}) {
  let now = 0;
  const clock = { advance: (ms: number) => (now += ms) };
  const b = createBalancer<Ep>(algorithm, {
    key: (e) => `${e.ip} ${e.port}`,
    clock: () => now,
    random: seeded(1),
    ...opts,
  });
  b.update(endpoints);
  return { b, clock };
}

const ipOf = (s: EndpointState<Ep> | undefined) => s?.endpoint.ip;

function tally(b: Balancer<Ep>, n: number, each?: (s: EndpointState<Ep>) => void): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const s = b.pick()!;
    counts.set(s.endpoint.ip, (counts.get(s.endpoint.ip) ?? 0) + 1);
    each?.(s);
  }
  return counts;
}

describe('every algorithm', () => {
  for (const algorithm of ['peak-ewma', 'least-request', 'round-robin'] as const) {
    it(`${algorithm}: no endpoint, no pick; one endpoint, always it; accounting counts`, () => {
      const { b } = setup(algorithm, []);
      assert.equal(b.algorithm, algorithm);
      assert.equal(b.pick(), undefined);
      b.update([ep(1)]);
      assert.equal(b.size, 1);
      const s = b.pick()!;
      assert.equal(ipOf(s), '10.0.0.1');
      b.start(s);
      b.start(s);
      assert.equal(s.pending, 2);
      b.done(s, 5, true);
      b.done(s, 5, false);
      b.done(s, 5, true); // one done too many must not go negative
      assert.deepEqual([s.pending, s.requests, s.failures], [0, 3, 1]);
    });

    it(`${algorithm}: an update keeps the state of endpoints that stay, by key`, () => {
      const { b } = setup(algorithm, [ep(1), ep(2), ep(3)]);
      const [one, two, three] = b.endpoints();
      b.start(one!);
      b.done(two!, 100, true);
      const newOne = { ...ep(1) };
      b.update([newOne, ep(2), ep(4), ep(2)]);
      assert.deepEqual(
        b.endpoints().map((s) => s.key),
        ['10.0.0.1 8080', '10.0.0.2 8080', '10.0.0.4 8080'],
        'duplicates dropped',
      );
      assert.equal(b.endpoints()[0], one, 'the same state object');
      assert.equal(one!.endpoint, newOne, 'holding the new endpoint object');
      assert.equal(one!.pending, 1);
      assert.equal(b.endpoints()[1]!.requests, 1);
      assert.equal(three!.active, false, 'a removed endpoint is marked');
      b.done(three!, 10, true); // a request in flight to it may still finish
      for (let i = 0; i < 50; i++) assert.notEqual(ipOf(b.pick()), '10.0.0.3');
    });
  }
});

describe('round robin', () => {
  it('cycles through the endpoints in turn, evenly', () => {
    const { b } = setup('round-robin', [ep(1), ep(2), ep(3)]);
    const first = [1, 2, 3, 4, 5, 6].map(() => ipOf(b.pick()));
    assert.deepEqual(first.slice(3), first.slice(0, 3), 'the same order each round');
    assert.equal(new Set(first.slice(0, 3)).size, 3);
    assert.deepEqual([...tally(b, 300).values()], [100, 100, 100]);
  });

  it('goes on evenly after the set shrinks and grows', () => {
    const { b } = setup('round-robin', [ep(1), ep(2), ep(3), ep(4)]);
    b.pick();
    b.pick();
    b.pick();
    b.update([ep(1), ep(2)]);
    assert.deepEqual([...tally(b, 10).values()].sort(), [5, 5]);
    b.update([ep(1), ep(2), ep(5)]);
    assert.deepEqual([...tally(b, 30).values()], [10, 10, 10]);
  });
});

describe('least-request', () => {
  it('avoids a busy endpoint: P2C never takes the busier of two', () => {
    const { b } = setup('least-request', [ep(1), ep(2), ep(3)]);
    const busy = b.endpoints()[0]!;
    for (let i = 0; i < 5; i++) b.start(busy);
    const counts = tally(b, 1000);
    assert.equal(counts.get('10.0.0.1'), undefined);
    assert.ok(counts.get('10.0.0.2')! > 400 && counts.get('10.0.0.3')! > 400, JSON.stringify([...counts]));
  });

  it('spreads requests in flight across endpoints', () => {
    const { b } = setup('least-request', [ep(1), ep(2), ep(3), ep(4)]);
    for (let i = 0; i < 400; i++) b.start(b.pick()!); // none finishes
    const pending = b.endpoints().map((s) => s.pending);
    assert.ok(Math.max(...pending) - Math.min(...pending) <= 2, `pending ${pending}`);
  });

  it('two distinct endpoints are compared, whatever the random source says', () => {
    for (const r of [0, 0.5, 0.999999999]) {
      const { b } = setup('least-request', [ep(1), ep(2)], { random: () => r });
      const [one, two] = b.endpoints();
      b.start(one!);
      assert.equal(b.pick(), two, `random ${r}`);
      b.done(one!, 1, true);
      b.start(two!);
      assert.equal(b.pick(), one, `random ${r}`);
    }
  });
});

describe('peak-EWMA', () => {
  it('a new endpoint starts at the default estimate; a higher sample replaces it at once', () => {
    const { b, clock } = setup('peak-ewma', [ep(1)], { defaultRttMs: 30 });
    const s = b.endpoints()[0]!;
    assert.equal(s.rttMs, 30);
    clock.advance(1);
    b.done(s, 250, true);
    assert.equal(s.rttMs, 250, 'peak-sensitive');
  });

  it('the first answer replaces the default; a lower sample after it is blended in by the time elapsed (decay 10 s)', () => {
    const { b, clock } = setup('peak-ewma', [ep(1)], { defaultRttMs: 100 });
    const s = b.endpoints()[0]!;
    b.done(s, 100, true);
    assert.equal(s.rttMs, 100, 'the first answer is the estimate');
    const first = b.endpoints()[0]!;
    assert.equal(first, s);
    clock.advance(10_000);
    b.done(s, 10, true);
    const decay = Math.exp(-1);
    assert.ok(Math.abs(s.rttMs - (100 * decay + 10 * (1 - decay))) < 1e-9, `${s.rttMs}`);
    // Right after an update, a new lower sample barely moves it.
    const before = s.rttMs;
    clock.advance(1);
    b.done(s, 10, true);
    assert.ok(before - s.rttMs < 0.01);
  });

  it("an endpoint that has not answered yet is taken at the others' mean (no more than the default), so it gets tried", () => {
    const { b } = setup('peak-ewma', [ep(1), ep(2)], { defaultRttMs: 30 });
    const [known, fresh] = b.endpoints() as readonly [EndpointState<Ep>, EndpointState<Ep>];
    b.done(known, 1, true); // answers in 1 ms; the fresh one would cost 30 at the default
    let freshPicks = 0;
    for (let i = 0; i < 200; i++) if (b.pick() === fresh) freshPicks++;
    assert.ok(freshPicks > 50, `the fresh endpoint was picked ${freshPicks} times of 200 (a tie: about half)`);
  });

  it('an idle estimate decays toward 0, so a once-slow endpoint is tried again', () => {
    const { b, clock } = setup('peak-ewma', [ep(1), ep(2)]);
    const [slow, fast] = b.endpoints();
    b.done(slow!, 500, true);
    b.done(fast!, 10, true);
    assert.equal(b.pick(), fast);
    // 60 s with no news of the slow one while the fast one keeps answering in 10 ms.
    for (let t = 0; t < 60; t++) {
      clock.advance(1000);
      b.done(fast!, 10, true);
    }
    assert.ok(slow!.rttMs > 400, 'a read does not happen without a pick');
    b.pick(); // a pick decays both estimates to now
    assert.ok(slow!.rttMs < 500 * Math.exp(-5), `${slow!.rttMs}`);
    assert.equal(b.pick(), slow);
  });

  it('cost is latency × (pending + 1): equal latency, the less loaded one wins', () => {
    const { b } = setup('peak-ewma', [ep(1), ep(2)]);
    const [one, two] = b.endpoints();
    b.start(one!);
    b.start(one!);
    for (let i = 0; i < 20; i++) assert.equal(b.pick(), two);
  });

  it('a slow endpoint gets far fewer requests than under round robin', () => {
    const latency: Record<string, number> = { '10.0.0.1': 10, '10.0.0.2': 10, '10.0.0.3': 10, '10.0.0.4': 200 };
    const { b, clock } = setup('peak-ewma', [ep(1), ep(2), ep(3), ep(4)], { random: seeded(42) });
    // One request every millisecond, each finishing after its endpoint's latency.
    const inflight: { s: EndpointState<Ep>; at: number; ms: number }[] = [];
    const counts = new Map<string, number>();
    for (let t = 0; t < 4000; t++) {
      clock.advance(1);
      for (let i = inflight.length - 1; i >= 0; i--) {
        const f = inflight[i]!;
        if (f.at <= t) {
          b.done(f.s, f.ms, true);
          inflight.splice(i, 1);
        }
      }
      const s = b.pick()!;
      b.start(s);
      const ms = latency[s.endpoint.ip]!;
      inflight.push({ s, at: t + ms, ms });
      counts.set(s.endpoint.ip, (counts.get(s.endpoint.ip) ?? 0) + 1);
    }
    const slowShare = counts.get('10.0.0.4')! / 4000;
    assert.ok(slowShare < 0.05, `the slow endpoint got ${(slowShare * 100).toFixed(1)}% (round robin: 25%)`);
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3'])
      assert.ok(counts.get(ip)! > 1000, `${ip}: ${counts.get(ip)}`);
  });

  it('an endpoint that fails fast is penalized, not preferred', () => {
    const { b, clock } = setup('peak-ewma', [ep(1), ep(2), ep(3)], { random: seeded(3), failurePenaltyMs: 1000 });
    const counts = tally(b, 3000, (s) => {
      b.start(s);
      clock.advance(1);
      // 10.0.0.1 refuses in 1 ms; the others answer in 20 ms.
      if (s.endpoint.ip === '10.0.0.1') b.done(s, 1, false);
      else b.done(s, 20, true);
    });
    assert.ok(counts.get('10.0.0.1')! < 100, JSON.stringify([...counts]));
  });

  it('stats survive an update: a known-slow endpoint stays avoided', () => {
    const { b } = setup('peak-ewma', [ep(1), ep(2)]);
    b.done(b.endpoints()[0]!, 1000, true);
    b.update([ep(2), ep(1)]);
    const slow = b.endpoints().find((s) => s.endpoint.ip === '10.0.0.1')!;
    assert.equal(slow.rttMs, 1000);
    for (let i = 0; i < 20; i++) assert.equal(ipOf(b.pick()), '10.0.0.2');
  });
});
