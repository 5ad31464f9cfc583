// The flow API (GET /v1/flows, src/observe/flow-api.ts) over a real unix socket, against an
// in-memory FlowSource; and `weft observe` / `weft status`, run as a user runs them, against
// the same fake agent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HttpError, apiRequest, apiStream, serveApi } from '../../src/lib/unix-http.js';
import { filterToQuery, matches, parseFilter, type FlowFilter } from '../../src/observe/filter.js';
import { flowRoutes } from '../../src/observe/flow-api.js';
import type { Flow, FlowEndpoint, FlowStreamItem } from '../../src/contract/flow.js';
import type { FlowQuery, FlowSource, FlowSubscription } from '../../src/observe/flow-source.js';
import type { ObserverStatus } from '../../src/contract/agent-api.js';
import { formatCompact, formatTable } from '../../src/observe/format.js';
import { formatObserverStatus, observeRequest } from '../../src/cli/observe.js';
import { synFlow } from '../harness/flows.js';

// ---- a FlowSource as the observer's contract describes it ----

interface Follower {
  filter: FlowFilter;
  /** Sequence number of the next flow to look at. */
  cursor: number;
  paused: boolean;
  closed: boolean;
  deliver: (item: FlowStreamItem) => boolean;
}

/** A ring of `capacity` flows numbered by arrival; each follower reads it through a cursor, so
 *  one that stops (deliver returned false) loses what the ring overwrites meanwhile. */
class FakeFlowSource implements FlowSource {
  private readonly ring: Flow[] = [];
  /** Sequence number of the next flow pushed. */
  private next = 0;
  readonly followers = new Set<Follower>();
  queries: FlowQuery[] = [];
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];

  constructor(readonly capacity = 1024) {}

  private get oldest(): number {
    return Math.max(0, this.next - this.capacity);
  }

  private at(seq: number): Flow {
    return this.ring[seq % this.capacity]!;
  }

  push(...flows: Flow[]): void {
    for (const f of flows) {
      this.ring[this.next % this.capacity] = f;
      this.next++;
      for (const fl of this.followers) if (!fl.paused) this.pump(fl);
    }
  }

  /** What the observer would say after a kernel-side loss; for the CLI's stderr. */
  announceLost(count: number): void {
    for (const fl of this.followers) fl.deliver({ lost: { stage: 'follow', count } });
  }

  /** Sequence numbers of the matching flows in the ring, newest `last`. */
  private matching(q: FlowQuery): number[] {
    const out: number[] = [];
    for (let s = this.oldest; s < this.next; s++) if (matches(q.filter, this.at(s))) out.push(s);
    return q.last === undefined ? out : out.slice(Math.max(0, out.length - q.last));
  }

  query(q: FlowQuery): Flow[] {
    this.queries.push(q);
    return this.matching(q).map((s) => this.at(s));
  }

  follow(q: FlowQuery, deliver: (item: FlowStreamItem) => boolean): FlowSubscription & { resume(): void } {
    this.queries.push(q);
    // The history is the ring from the first flow of query(q) on: every matching flow after it is in it.
    const first = this.matching(q)[0];
    const fl: Follower = { filter: q.filter, cursor: first ?? this.next, paused: false, closed: false, deliver };
    this.followers.add(fl);
    this.pump(fl);
    this.changed();
    return {
      resume: () => {
        if (fl.closed) return;
        fl.paused = false;
        this.pump(fl);
      },
      close: () => {
        fl.closed = true;
        this.followers.delete(fl);
        this.changed();
      },
    };
  }

  private pump(fl: Follower): void {
    while (!fl.closed && !fl.paused && fl.cursor < this.next) {
      if (fl.cursor < this.oldest) {
        const count = this.oldest - fl.cursor;
        fl.cursor = this.oldest;
        fl.paused = !fl.deliver({ lost: { stage: 'follow', count } });
        continue;
      }
      const flow = this.at(fl.cursor++);
      if (matches(fl.filter, flow)) fl.paused = !fl.deliver({ flow });
    }
  }

  /** Resolves once pred() holds, checked whenever a follower comes or goes: no timing. */
  until(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  private changed(): void {
    this.waiters = this.waiters.filter((w) => (w.pred() ? (w.resolve(), false) : true));
  }
}

// ---- flows ----

const WEB: FlowEndpoint = {
  ip: '10.244.1.5',
  port: 34567,
  identity: 1001,
  namespace: 'default',
  pod: 'web-7c9f-x2k',
  labels: ['app=web'],
};
const API: FlowEndpoint = {
  ip: '10.244.2.9',
  port: 8080,
  identity: 1002,
  namespace: 'prod',
  pod: 'api-0',
  labels: ['app=api'],
};
const DB: FlowEndpoint = {
  ip: '10.244.3.7',
  port: 5432,
  identity: 1003,
  namespace: 'prod',
  pod: 'db-0',
  labels: ['app=db'],
};

/** The n-th flow: one second apart from 2024-12-04T12:00:00Z, numbered in its summary. */
function flow(n: number, over: Partial<Flow> = {}): Flow {
  return synFlow(WEB, API, {
    time: new Date(Date.UTC(2024, 11, 4, 12, 0, n)).toISOString().replace('Z', '000000Z'),
    summary: `#${n}`,
    ...over,
  });
}

const num = (f: Flow) => Number(f.summary.slice(1));

// ---- a fake agent ----

let dir: string;
let socket: string;
let server: http.Server | undefined;
let src: FakeFlowSource;
let requests: string[];
let status: Record<string, unknown>;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-flow-api-'));
  socket = path.join(dir, 'weft.sock');
});

after(async () => {
  await closeServer();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function closeServer(): Promise<void> {
  if (server) await new Promise((r) => server!.close(r));
  server = undefined;
}

/** A fresh agent for each test: its own ring, its own counters. */
async function startAgent(source: () => FlowSource = () => src): Promise<void> {
  await closeServer();
  src = new FakeFlowSource();
  requests = [];
  status = { pid: 1, node: 'n1', source: 'dir', synced: true, endpoints: 0, podCidrs: [], problems: [] };
  const routes = { ...flowRoutes(source), 'GET /v1/status': () => status };
  server = await serveApi(socket, routes);
  server.on('request', (req: http.IncomingMessage) => requests.push(req.url ?? ''));
}

async function get(urlPath: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: socket, path: urlPath, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

async function items(urlPath: string): Promise<FlowStreamItem[]> {
  const out: FlowStreamItem[] = [];
  await apiStream(socket, urlPath, (o) => void out.push(o as FlowStreamItem));
  return out;
}

const flowsOf = (xs: FlowStreamItem[]) => xs.map((x) => (assert.ok('flow' in x, JSON.stringify(x)), x.flow));

/** Follows `urlPath`, collecting items, until `stop` says so from inside onLine. */
function followUntil(
  urlPath: string,
  stop: (all: FlowStreamItem[]) => boolean,
): { done: Promise<FlowStreamItem[]>; ac: AbortController } {
  const ac = new AbortController();
  const all: FlowStreamItem[] = [];
  const done = apiStream(
    socket,
    urlPath,
    (o) => {
      all.push(o as FlowStreamItem);
      if (stop(all)) ac.abort();
    },
    { signal: ac.signal },
  ).then(() => all);
  return { done, ac };
}

// A broken stream shows as a wait that never ends: the timeouts turn it into a failure.
describe('GET /v1/flows', { timeout: 30_000 }, () => {
  beforeEach(() => startAgent());

  it('answers NDJSON: every flow of the ring without last, the newest N with last, oldest first', async () => {
    src.push(...Array.from({ length: 10 }, (_, i) => flow(i)));
    const all = await get('/v1/flows');
    assert.equal(all.status, 200);
    assert.equal(all.type, 'application/x-ndjson');
    const lines = all.body.split('\n');
    assert.equal(lines.pop(), '', 'every line ends in a newline');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l)),
      Array.from({ length: 10 }, (_, i) => ({ flow: flow(i) })),
    );

    assert.deepEqual(flowsOf(await items('/v1/flows?last=3')).map(num), [7, 8, 9]);
    assert.deepEqual(await items('/v1/flows?last=0'), []);
    assert.deepEqual(flowsOf(await items('/v1/flows?last=100')).map(num), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('selects exactly the flows the filter matches, with the parameters filterToQuery writes', async () => {
    const drop = (n: number) =>
      flow(n, { verdict: 'DROPPED', type: 'drop', drop_reason: 'policy-denied', destination: DB });
    const ring = [flow(0), drop(1), flow(2, { source: API, destination: DB }), drop(3), flow(4), drop(5)];
    src.push(...ring);
    const cases: [Record<string, string | string[]>, number[]][] = [
      [{ verdict: 'dropped' }, [1, 3, 5]],
      [{ 'to-pod': 'prod/db' }, [1, 2, 3, 5]],
      [{ 'from-label': 'app=api' }, [2]],
      [{ port: ['8080', '5432'], 'from-namespace': 'default' }, [0, 1, 3, 4, 5]],
      [{ 'drop-reason': 'policy-denied', 'to-ip': '10.244.3.0/24' }, [1, 3, 5]],
      [{ since: '2024-12-04T12:00:03Z', until: '2024-12-04T12:00:04Z' }, [3, 4]],
      [{ pod: 'nothing-here' }, []],
    ];
    for (const [flags, want] of cases) {
      const filter = parseFilter(flags);
      const got = flowsOf(await items(`/v1/flows?${filterToQuery(filter)}`)).map(num);
      assert.deepEqual(got, want, JSON.stringify(flags));
      assert.deepEqual(
        got,
        ring.filter((f) => matches(filter, f)).map(num),
        `${JSON.stringify(flags)}: as matches() says`,
      );
    }
    // last counts matching flows, not the ring's.
    assert.deepEqual(flowsOf(await items('/v1/flows?verdict=DROPPED&last=2')).map(num), [3, 5]);
  });

  it('refuses bad parameters with a 400 naming them, before any line', async () => {
    src.push(flow(0));
    const cases: [string, RegExp][] = [
      ['bogus=1&pod=web', /unknown parameter: bogus/],
      ['x=1&y=2', /unknown parameters: x, y/],
      ['last=-1', /last.*non-negative integer/],
      ['last=abc', /last.*non-negative integer/],
      ['last=1&last=2', /last: given 2 times/],
      ['follow=maybe', /follow.*want 1, true/],
      ['port=0', /--port 0/],
      ['verdict=MAYBE', /--verdict MAYBE/],
      ['since=yesterday', /--since yesterday/],
      ['follow=1&until=2024-12-04T12:00:00Z', /until and follow/],
    ];
    for (const [q, want] of cases) {
      const r = await get(`/v1/flows?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.type, 'application/json', q);
      assert.match((JSON.parse(r.body) as { error: string }).error, want, q);
      await assert.rejects(
        items(`/v1/flows?${q}`),
        (err: unknown) => err instanceof HttpError && err.status === 400 && want.test(err.message),
        q,
      );
    }
    assert.equal(src.queries.length, 0, 'the source was never asked');
  });

  it('follows: new flows only without last or since, then the history first with them', async () => {
    src.push(flow(0), flow(1), flow(2));
    const plain = followUntil('/v1/flows?follow=1', (all) => all.length === 2);
    await src.until(() => src.followers.size === 1);
    src.push(flow(3), flow(4));
    assert.deepEqual(flowsOf(await plain.done).map(num), [3, 4]);
    await src.until(() => src.followers.size === 0);

    const withLast = followUntil('/v1/flows?follow=true&last=2', (all) => all.length === 3);
    await src.until(() => src.followers.size === 1);
    src.push(flow(5));
    assert.deepEqual(flowsOf(await withLast.done).map(num), [3, 4, 5]);
    await src.until(() => src.followers.size === 0);

    const withSince = followUntil(
      '/v1/flows?follow=1&since=2024-12-04T12:00:04Z&verdict=FORWARDED',
      (all) => all.length === 3,
    );
    await src.until(() => src.followers.size === 1);
    src.push(flow(6, { verdict: 'DROPPED' }), flow(7));
    assert.deepEqual(flowsOf(await withSince.done).map(num), [4, 5, 7]);
  });

  it('closes the subscription when the client goes away', async () => {
    const f = followUntil('/v1/flows?follow=1', () => false);
    await src.until(() => src.followers.size === 1);
    f.ac.abort();
    await f.done;
    await src.until(() => src.followers.size === 0);
    src.push(flow(0)); // no follower left to write to a closed response
  });

  it('makes a follower that falls behind wait, tells it how many flows it lost, then catches it up', async () => {
    const small = new FakeFlowSource(64);
    src = small;
    const total = 20_000;
    const f = followUntil('/v1/flows?follow=1', (all) => {
      const last = all.at(-1)!;
      return 'flow' in last && num(last.flow) === total - 1;
    });
    await small.until(() => small.followers.size === 1);
    // Synchronous: the client cannot read meanwhile, so the socket fills and res.write says so.
    for (let i = 0; i < total; i++) small.push(flow(i));
    const got = await f.done;
    const lost = got.flatMap((x) => ('lost' in x ? [x.lost] : []));
    const flows = got.flatMap((x) => ('flow' in x ? [num(x.flow)] : []));
    assert.ok(lost.length > 0, 'some flows were lost');
    for (const l of lost) assert.equal(l.stage, 'follow');
    assert.equal(flows.length + lost.reduce((n, l) => n + l.count, 0), total, 'every flow arrived or was counted lost');
    assert.ok(
      flows.every((n, i) => i === 0 || n > flows[i - 1]!),
      'in order, no repeats',
    );
    await small.until(() => small.followers.size === 0);
  });

  it('passes lost notices through as lines of their own', async () => {
    const f = followUntil('/v1/flows?follow=1', (all) => all.length === 3);
    await src.until(() => src.followers.size === 1);
    src.push(flow(0));
    src.announceLost(7);
    src.push(flow(1));
    assert.deepEqual(await f.done, [{ flow: flow(0) }, { lost: { stage: 'follow', count: 7 } }, { flow: flow(1) }]);
  });

  it('ends the open streams when the server closes, so that close() finishes', async () => {
    const f = followUntil('/v1/flows?follow=1', () => false);
    await src.until(() => src.followers.size === 1);
    await closeServer();
    assert.deepEqual(await f.done, [], 'the stream ended cleanly');
    await src.until(() => src.followers.size === 0);
  });

  it('answers the source’s error before any line (an observer that is not running)', async () => {
    await startAgent(() => {
      throw new HttpError(503, 'not ready: the observer is off');
    });
    const r = await get('/v1/flows?last=1');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { error: 'not ready: the observer is off' });
    // Parameters are checked first.
    assert.equal((await get('/v1/flows?bogus=1')).status, 400);
  });

  it('leaves the JSON routes as they were', async () => {
    assert.deepEqual(await apiRequest(socket, 'GET', '/v1/status'), status);
    await assert.rejects(apiRequest(socket, 'GET', '/v1/nothing'), /no such endpoint: GET \/v1\/nothing/);
  });
});

// ---- the CLI ----

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs weft against the fake agent; `during` may drive it while it runs. Async: the agent
 *  answers from this process. */
function weft(
  args: string[],
  during?: (child: ReturnType<typeof spawn>, stdout: () => string) => Promise<void>,
): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, '--state-dir', dir, '--bpf-root', path.join(dir, 'bpf'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<Run>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return (during ? during(child, () => stdout) : Promise.resolve()).then(() => exited);
}

/** Resolves when `read()` satisfies `pred`, checked on each chunk of the child's stream. */
function waitFor(stream: NodeJS.ReadableStream, read: () => string, pred: (s: string) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (pred(read())) {
        stream.off('data', check);
        resolve();
      }
    };
    stream.on('data', check);
    check();
  });
}

describe('weft observe', { timeout: 60_000 }, () => {
  beforeEach(() => startAgent());

  it('prints the last 20 flows, compact, by default', async () => {
    src.push(...Array.from({ length: 30 }, (_, i) => flow(i)));
    const r = await weft(['observe']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal(
      r.stdout,
      Array.from({ length: 20 }, (_, i) => `${formatCompact(flow(i + 10), { color: false })}\n`).join(''),
    );
    assert.deepEqual(requests, ['/v1/flows?last=20']);
  });

  it('-o json prints the flows themselves, one a line; --since lifts the default of 20', async () => {
    src.push(...Array.from({ length: 30 }, (_, i) => flow(i)));
    const r = await weft(['observe', '-o', 'json', '--last', '2', '--verdict', 'forwarded']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [flow(28), flow(29)],
    );
    const since = await weft(['observe', '-o', 'json', '--since', '2024-12-04T12:00:05Z']);
    assert.equal(since.stdout.trimEnd().split('\n').length, 25);
  });

  it('-o table aligns the matching flows under a header; filter flags repeat and go to the agent as its parameters', async () => {
    const drop = flow(1, { verdict: 'DROPPED', type: 'drop', drop_reason: 'policy-denied', destination: DB });
    src.push(flow(0), drop, flow(2, { source: API, destination: DB }));
    // observe's own -n, and a --port that is a filter (explain's is not).
    const r = await weft([
      'observe',
      '-o',
      'table',
      '-n',
      'default',
      '--to-pod',
      'prod/db',
      '--to-pod',
      'prod/api',
      '--port',
      '5432',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, formatTable([drop]));
    const q = new URL(requests[0]!, 'http://x').searchParams;
    assert.deepEqual(q.getAll('to-pod'), ['prod/db', 'prod/api']);
    assert.deepEqual([q.get('namespace'), q.get('port'), q.get('last')], ['default', '5432', '20']);
  });

  it('exits 2 on a bad flag, without asking the agent', async () => {
    for (const args of [
      ['--port', '0'],
      ['--last', 'x'],
      ['-o', 'yaml'],
      ['--nope'],
      ['-f', '-o', 'table'],
      ['-f', '--until', '5m'],
      ['--since', '5m', '--since', '1m'],
      ['extra'],
    ]) {
      const r = await weft(['observe', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^weft observe: /, args.join(' '));
      assert.equal(r.stdout, '');
    }
    assert.match((await weft(['observe', '--port', '0'])).stderr, /--port 0: want a port number/);
    assert.deepEqual(requests, []);
  });

  it('exits 1 with a clear message when the agent is not there', async () => {
    await closeServer();
    const r = await weft(['observe']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^weft observe: the agent is not reachable at .*weft\.sock/);
  });

  it('follows until interrupted: new flows on stdout, lost ones on stderr, exit 0 on SIGINT', async () => {
    src.push(flow(0));
    const r = await weft(['observe', '-f', '-o', 'json'], async (child, stdout) => {
      await src.until(() => src.followers.size === 1);
      src.push(flow(1));
      src.announceLost(3);
      src.push(flow(2));
      await waitFor(child.stdout!, stdout, (s) => s.split('\n').length === 3);
      child.kill('SIGINT');
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [flow(1), flow(2)],
    );
    assert.equal(r.stderr, 'weft observe: 3 flows lost (stage follow)\n');
    await src.until(() => src.followers.size === 0);
  });

  it('stops quietly when its reader goes away (weft observe -f | head -1)', async () => {
    const r = await weft(['observe', '-f'], async (child, stdout) => {
      await src.until(() => src.followers.size === 1);
      src.push(flow(0));
      await waitFor(child.stdout!, stdout, (s) => s.includes('\n'));
      child.stdout!.destroy();
      // Enough for a write to find the pipe closed, however the pipe buffers.
      for (let i = 1; i < 2000 && src.followers.size > 0; i++) {
        src.push(flow(i));
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('says so when the agent ends a followed stream (it is stopping)', async () => {
    const r = await weft(['observe', '-f'], async () => {
      await src.until(() => src.followers.size === 1);
      await closeServer();
    });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'weft observe: the agent ended the stream\n');
  });

  it('builds the query Hubble’s way: last 20 by default, none with -f, all since --since', () => {
    const q = (args: string[]) => {
      const r = observeRequest(args);
      assert.ok(typeof r === 'object' && 'query' in r, JSON.stringify(r));
      return r.query.toString();
    };
    assert.equal(q([]), 'last=20');
    assert.equal(q(['-f']), 'follow=1');
    assert.equal(q(['-f', '--last', '5']), 'last=5&follow=1');
    assert.equal(q(['--last', '0']), 'last=0');
    assert.equal(q(['--since', '2024-12-04T12:00:00+01:00']), 'since=2024-12-04T11%3A00%3A00.000Z');
    assert.equal(
      q(['-t', 'drop', '-l', 'app=web', '--http-method', 'get']),
      'label=app%3Dweb&type=drop&http-method=GET&last=20',
    );
  });
});

describe('weft status', { timeout: 30_000 }, () => {
  const observer: ObserverStatus = {
    flowsPerSecond: 123.44,
    flowsTotal: 45678,
    kernelRing: { usedBytes: 31_457, sizeBytes: 1 << 20 },
    flowRing: { flows: 4096, capacity: 16384 },
    lost: { kernel: 0, decode: 2, follow: 1234, proxy: 0 },
    followers: 1,
  };

  it('formats the observer line', () => {
    assert.equal(
      formatObserverStatus(observer),
      '123.4/s (45,678 total); kernel ring 3% of 1 MiB; flow ring 4,096/16,384; lost: kernel 0, decode 2, follow 1,234; 1 follower',
    );
    assert.match(
      formatObserverStatus({ ...observer, kernelRing: { usedBytes: 10, sizeBytes: 256 * 1024 }, followers: 0 }),
      /kernel ring <1% of 256 KiB; .*; 0 followers$/,
    );
  });

  it('prints it when the agent reports an observer, and not otherwise', async () => {
    await startAgent();
    const without = await weft(['status']);
    assert.doesNotMatch(without.stdout, /^Flows:/m);
    status.observer = observer;
    const r = await weft(['status']);
    assert.match(r.stdout, /^Agent: +running/m);
    assert.match(
      r.stdout,
      /^Flows: {6}123\.4\/s \(45,678 total\); kernel ring 3% of 1 MiB; flow ring 4,096\/16,384; lost: kernel 0, decode 2, follow 1,234; 1 follower$/m,
    );
    const json = JSON.parse((await weft(['status', '-o', 'json'])).stdout) as { agent: { observer: unknown } };
    assert.deepEqual(json.agent.observer, observer);
  });
});
