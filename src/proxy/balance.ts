// Per-request load balancing over one backend's ready endpoints. Three algorithms:
//
// - peak-ewma (the default): power of two choices over linkerd2-proxy's (tower's) Peak-EWMA
//   cost. Each endpoint keeps an estimate of its latency: a sample above the estimate
//   replaces it at once (peak-sensitive: a slowing endpoint is avoided immediately), a sample
//   below it is blended in with weight 1 - e^(-elapsed/decay) (decay 10 s), and between
//   samples the estimate decays toward 0 the same way, so an endpoint that was slow gets tried
//   again once it has been left alone a while. The cost is estimate × (pending + 1): latency
//   and queue length together. A new endpoint starts at a default estimate (30 ms). A failed
//   request counts as a sample of at least failurePenaltyMs, so that an endpoint failing fast
//   does not look fast and draw all the traffic (tower has no such rule; its failures are
//   whatever latency they took).
// - least-request: power of two choices over pending requests alone (Envoy's default).
// - round-robin: in turn.
//
// Power of two choices draws two distinct endpoints at random and takes the cheaper: close to
// the best choice, without the herding of always picking the global minimum, and O(1).
//
// Accounting: pick() an endpoint, start() it when the request is sent, done() it with the
// measured latency and the outcome. update() replaces the endpoint set and keeps the state of
// endpoints that stay (by key), so a routine EndpointSlice change does not reset what the
// balancer learned. Clock and random source are injectable, for deterministic tests.
import type { BalancerAlgorithm } from '../contract/proxy-snapshot.js';

/** Milliseconds, monotonic: performance.now by default. */
export type Clock = () => number;
/** A number in [0, 1). */
export type Random = () => number;

export interface BalancerOptions<E> {
  /** An endpoint's identity across updates ("ip port"). */
  key: (e: E) => string;
  random?: Random;
  clock?: Clock;
  /** peak-ewma: the decay time constant (ms). Default 10,000. */
  decayMs?: number;
  /** peak-ewma: the estimate of an endpoint with no sample yet (ms). Default 30. */
  defaultRttMs?: number;
  /** peak-ewma: a failed request counts as at least this latency (ms). Default 1,000. */
  failurePenaltyMs?: number;
}

/** One endpoint and what the balancer knows of it; pick() hands it out, start()/done() take it back. */
export class EndpointState<E> {
  /** Requests started and not done. */
  pending = 0;
  /** Requests done, and how many of them failed. */
  requests = 0;
  failures = 0;
  /** False once an update removed the endpoint (requests in flight may still finish). */
  active = true;

  constructor(
    public endpoint: E,
    readonly key: string,
    /** peak-ewma: the latency estimate (ms) as of `updatedAt`. */
    public rttMs: number,
    public updatedAt: number,
  ) {}
}

export interface Balancer<E> {
  readonly algorithm: BalancerAlgorithm;
  /** Endpoints to pick from. */
  readonly size: number;
  /** An endpoint for the next request; undefined when there is none (answer 503). */
  pick(): EndpointState<E> | undefined;
  /** The request was sent to this endpoint. */
  start(s: EndpointState<E>): void;
  /** Its response is complete (or it failed) after latencyMs. */
  done(s: EndpointState<E>, latencyMs: number, ok: boolean): void;
  /** A new set of endpoints; those with a known key keep their state. */
  update(endpoints: readonly E[]): void;
  /** The current endpoints and their state (for status and tests). */
  endpoints(): readonly EndpointState<E>[];
}

abstract class EndpointSet<E> implements Balancer<E> {
  abstract readonly algorithm: BalancerAlgorithm;
  protected states: EndpointState<E>[] = [];
  protected readonly key: (e: E) => string;
  protected readonly random: Random;
  protected readonly clock: Clock;
  protected readonly defaultRttMs: number;

  constructor(opts: BalancerOptions<E>) {
    this.key = opts.key;
    this.random = opts.random ?? Math.random;
    this.clock = opts.clock ?? (() => performance.now());
    this.defaultRttMs = opts.defaultRttMs ?? 30;
  }

  get size(): number {
    return this.states.length;
  }

  endpoints(): readonly EndpointState<E>[] {
    return this.states;
  }

  abstract pick(): EndpointState<E> | undefined;

  start(s: EndpointState<E>): void {
    s.pending++;
  }

  done(s: EndpointState<E>, latencyMs: number, ok: boolean): void {
    if (s.pending > 0) s.pending--;
    s.requests++;
    if (!ok) s.failures++;
    this.observe(s, latencyMs, ok);
  }

  /** What an algorithm learns from a finished request. */
  protected observe(_s: EndpointState<E>, _latencyMs: number, _ok: boolean): void {}

  update(endpoints: readonly E[]): void {
    const old = new Map(this.states.map((s) => [s.key, s]));
    const next: EndpointState<E>[] = [];
    const seen = new Set<string>();
    const now = this.clock();
    for (const e of endpoints) {
      const k = this.key(e);
      if (seen.has(k)) continue;
      seen.add(k);
      const s = old.get(k);
      if (s) {
        s.endpoint = e;
        old.delete(k);
        next.push(s);
      } else next.push(new EndpointState(e, k, this.defaultRttMs, now));
    }
    for (const gone of old.values()) gone.active = false;
    this.states = next;
    this.updated();
  }

  protected updated(): void {}

  /** Power of two choices: two distinct endpoints at random, and the better of them by
   *  prefers(); the one endpoint when there is one. */
  protected twoChoices(): EndpointState<E> | undefined {
    const n = this.states.length;
    if (n < 2) return this.states[0];
    const [i, j] = this.twoIndexes(n);
    const a = this.states[i]!;
    const b = this.states[j]!;
    return this.prefers(a, b) ? b : a;
  }

  /** Whether twoChoices() takes b over a. */
  protected prefers(_a: EndpointState<E>, _b: EndpointState<E>): boolean {
    return false;
  }

  /** Two distinct indexes at random (n ≥ 2). */
  protected twoIndexes(n: number): [number, number] {
    const i = Math.min(n - 1, Math.floor(this.random() * n));
    let j = Math.min(n - 2, Math.floor(this.random() * (n - 1)));
    if (j >= i) j++;
    return [i, j];
  }
}

class PeakEwmaBalancer<E> extends EndpointSet<E> {
  readonly algorithm = 'peak-ewma' as const;
  private readonly decayMs: number;
  private readonly failurePenaltyMs: number;

  constructor(opts: BalancerOptions<E>) {
    super(opts);
    this.decayMs = opts.decayMs ?? 10_000;
    this.failurePenaltyMs = opts.failurePenaltyMs ?? 1_000;
  }

  /** Folds a sample into the estimate, as tower's RttEstimate::update does. */
  private sample(s: EndpointState<E>, rttMs: number, now: number): number {
    if (rttMs > s.rttMs)
      s.rttMs = rttMs; // peak: worse news replaces the estimate at once
    else {
      const decay = Math.exp(-Math.max(0, now - s.updatedAt) / this.decayMs);
      s.rttMs = s.rttMs * decay + rttMs * (1 - decay);
    }
    s.updatedAt = Math.max(s.updatedAt, now);
    return s.rttMs;
  }

  /** estimate × (pending + 1), the estimate first decayed to now (a sample of 0). An endpoint
   *  that has never answered is estimated like the others that have (their mean, at most the
   *  default), not at the default: next to endpoints answering in a millisecond, a 30 ms default would keep a new
   *  endpoint out for the tens of seconds its estimate takes to decay (one client on one
   *  connection never raises the others' pending count to make room). */
  cost(s: EndpointState<E>, now = this.clock(), unmeasured = this.defaultRttMs): number {
    const estimate = s.requests === 0 && s.pending === 0 ? unmeasured : this.sample(s, 0, now);
    return estimate * (s.pending + 1);
  }

  /** What an endpoint that has not answered yet is taken to cost: the mean estimate of those
   *  that have, but no more than the default (next to slow endpoints, a new one is tried). */
  private measuredMean(now: number): number {
    let sum = 0;
    let n = 0;
    for (const s of this.states) {
      if (s.requests === 0) continue;
      sum += this.sample(s, 0, now);
      n++;
    }
    return n ? Math.min(this.defaultRttMs, sum / n) : this.defaultRttMs;
  }

  pick(): EndpointState<E> | undefined {
    return this.twoChoices();
  }

  protected override prefers(a: EndpointState<E>, b: EndpointState<E>): boolean {
    const now = this.clock();
    const unmeasured = a.requests === 0 || b.requests === 0 ? this.measuredMean(now) : this.defaultRttMs;
    return this.cost(b, now, unmeasured) < this.cost(a, now, unmeasured);
  }

  protected override observe(s: EndpointState<E>, latencyMs: number, ok: boolean): void {
    const rtt = ok ? latencyMs : Math.max(latencyMs, this.failurePenaltyMs);
    if (s.requests === 1) {
      // The first answer replaces the default outright: averaged in, a 30 ms default would
      // outweigh a 1 ms endpoint for as long as the decay takes.
      s.rttMs = rtt;
      s.updatedAt = this.clock();
      return;
    }
    this.sample(s, rtt, this.clock());
  }
}

class LeastRequestBalancer<E> extends EndpointSet<E> {
  readonly algorithm = 'least-request' as const;

  pick(): EndpointState<E> | undefined {
    return this.twoChoices();
  }

  protected override prefers(a: EndpointState<E>, b: EndpointState<E>): boolean {
    return b.pending < a.pending;
  }
}

class RoundRobinBalancer<E> extends EndpointSet<E> {
  readonly algorithm = 'round-robin' as const;
  private next = 0;

  constructor(opts: BalancerOptions<E>) {
    super(opts);
    // Start somewhere random, so that many proxies do not all begin on the same endpoint.
    this.next = Math.floor(this.random() * 1e9);
  }

  pick(): EndpointState<E> | undefined {
    const n = this.states.length;
    if (n === 0) return undefined;
    const s = this.states[this.next % n]!;
    this.next = (this.next + 1) % n;
    return s;
  }

  protected override updated(): void {
    if (this.states.length) this.next %= this.states.length;
  }
}

export function createBalancer<E>(algorithm: BalancerAlgorithm, opts: BalancerOptions<E>): Balancer<E> {
  switch (algorithm) {
    case 'peak-ewma':
      return new PeakEwmaBalancer(opts);
    case 'least-request':
      return new LeastRequestBalancer(opts);
    case 'round-robin':
      return new RoundRobinBalancer(opts);
  }
}
