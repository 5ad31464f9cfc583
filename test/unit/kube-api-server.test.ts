// test/harness/kube-api-server.ts: the kube-apiserver stand-in speaks the list/watch protocol
// as kube-apiserver does (kube-api-protocol.md lists the facts), over raw HTTP and to the real
// @kubernetes/client-node ListWatch the agent uses.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  KubeConfig,
  ListWatch,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import {
  ApiError,
  TestApiServer,
  fieldOf,
  type KubeObject,
  type Status,
  type TestApiServerOptions,
} from '../harness/kube-api-server.js';

const GATEWAY = 'gateway.networking.k8s.io';
const HTTPROUTES_CRD = `httproutes.${GATEWAY}`;

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject & Partial<Status>;
}

interface ListBody {
  kind: string;
  apiVersion: string;
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: (Partial<KubeObject> & { metadata: KubeObject['metadata'] })[];
}

async function start(t: TestContext, opts: TestApiServerOptions = {}): Promise<TestApiServer> {
  const srv = await TestApiServer.start(opts);
  t.after(() => srv.close());
  return srv;
}

function service(name: string, namespace = 'default', labels?: Record<string, string>, port = 80): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, ...(labels && { labels }) },
    spec: { ports: [{ port, protocol: 'TCP' }] },
  };
}

function pod(name: string, labels: Record<string, string>, nodeName?: string, namespace = 'default'): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { ...(nodeName && { nodeName }), containers: [{ name: 'c', image: 'i' }] },
  };
}

function route(name: string): object {
  return {
    apiVersion: `${GATEWAY}/v1`,
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'default' },
    spec: { rules: [] },
  };
}

async function get<T = unknown>(
  srv: TestApiServer,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(srv.url + path, init);
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

const names = (list: { items: { metadata: { name: string } }[] }) => list.items.map((i) => i.metadata.name);

/** Polls until `check` holds; fails after `ms`. */
async function until(what: string, check: () => boolean, ms = 1500): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A raw watch stream: newline-delimited JSON events as they arrive. */
class WatchStream {
  readonly events: WatchEvent[] = [];
  /** Bytes after the last newline: a torn line when the stream was cut mid-event. */
  partial = '';
  ended = false;
  error: unknown;
  private constructor(
    readonly response: Response,
    private readonly abort: AbortController,
  ) {
    void this.pump();
  }

  static async open(
    t: TestContext,
    srv: TestApiServer,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<WatchStream> {
    const abort = new AbortController();
    const response = await fetch(srv.url + path, { signal: abort.signal, headers });
    const stream = new WatchStream(response, abort);
    t.after(() => stream.close());
    return stream;
  }

  private async pump(): Promise<void> {
    const reader = this.response.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.partial += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = this.partial.indexOf('\n')) >= 0) {
          this.events.push(JSON.parse(this.partial.slice(0, nl)) as WatchEvent);
          this.partial = this.partial.slice(nl + 1);
        }
      }
    } catch (err) {
      this.error = err;
    }
    this.ended = true;
  }

  async waitFor(count: number, ms = 1500): Promise<WatchEvent[]> {
    await until(
      `${count} watch events (have ${this.events.length})`,
      () => this.events.length >= count || this.ended,
      ms,
    );
    return this.events;
  }

  async waitEnd(ms = 1500): Promise<void> {
    await until('the watch to end', () => this.ended, ms);
  }

  close(): void {
    this.abort.abort();
  }
}

const brief = (events: WatchEvent[]) => events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`.trim());

test('lists page with limit and continue, every page at the revision of the first', async (t) => {
  const srv = await start(t);
  for (let i = 0; i < 10; i++) srv.create(service(`s${i}`, 'a'));
  for (let i = 0; i < 15; i++) srv.create(service(`s${String(i).padStart(2, '0')}`, 'b'));
  const expected = [
    ...Array.from({ length: 10 }, (_, i) => `a/s${i}`),
    ...Array.from({ length: 15 }, (_, i) => `b/s${String(i).padStart(2, '0')}`),
  ];

  const first = await get<ListBody>(srv, '/api/v1/services?limit=10');
  assert.equal(first.status, 200);
  assert.equal(first.body.kind, 'ServiceList');
  assert.equal(first.body.apiVersion, 'v1');
  assert.equal(first.body.items.length, 10);
  assert.equal(first.body.metadata.remainingItemCount, 15);
  assert.ok(first.body.metadata.continue);
  const rv = first.body.metadata.resourceVersion;
  // The apiserver serves list items without kind and apiVersion: a client must not need them.
  for (const item of first.body.items) {
    assert.equal(item.kind, undefined);
    assert.equal(item.apiVersion, undefined);
    assert.match(item.metadata.resourceVersion ?? '', /^\d+$/);
  }

  // Changes between pages do not show in the rest of this list.
  srv.delete('v1', 'Service', 'b', 's00');
  srv.update({ ...service('s01', 'b', { changed: 'yes' }) });
  srv.create(service('s99', 'b'));

  const second = await get<ListBody>(srv, `/api/v1/services?limit=10&continue=${first.body.metadata.continue}`);
  assert.equal(second.body.metadata.resourceVersion, rv);
  assert.equal(second.body.metadata.remainingItemCount, 5);
  assert.deepEqual(
    second.body.items.find((i) => i.metadata.name === 's01')?.metadata.labels,
    undefined,
    's01 as it was at the first page',
  );
  const third = await get<ListBody>(srv, `/api/v1/services?limit=10&continue=${second.body.metadata.continue}`);
  assert.equal(third.body.metadata.resourceVersion, rv);
  assert.equal(third.body.metadata.continue, undefined);
  assert.equal(third.body.metadata.remainingItemCount, undefined);
  const all = [first, second, third].flatMap((p) =>
    p.body.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`),
  );
  assert.deepEqual(all, expected, 'every object of the first revision, once, in key order');

  const now = await get<ListBody>(srv, '/api/v1/services');
  assert.ok(Number(now.body.metadata.resourceVersion) > Number(rv));
  assert.equal(now.body.items.length, 25);
  assert.ok(
    names(now.body).includes('s99') &&
      !now.body.items.some((i) => i.metadata.namespace === 'b' && i.metadata.name === 's00'),
  );

  // A namespace's collection pages over that namespace only.
  const inA: string[] = [];
  let cont = '';
  for (let pages = 0; pages < 10; pages++) {
    const page = await get<ListBody>(srv, `/api/v1/namespaces/a/services?limit=4${cont && `&continue=${cont}`}`);
    inA.push(...names(page.body));
    cont = page.body.metadata.continue ?? '';
    if (!cont) break;
  }
  assert.deepEqual(
    inA,
    Array.from({ length: 10 }, (_, i) => `s${i}`),
  );

  // With a selector the remaining count is unknown, so it is left out.
  const selected = await get<ListBody>(srv, '/api/v1/services?limit=2&labelSelector=!changed');
  assert.equal(selected.body.items.length, 2);
  assert.ok(selected.body.metadata.continue);
  assert.equal(selected.body.metadata.remainingItemCount, undefined);
  assert.deepEqual(names((await get<ListBody>(srv, '/api/v1/services?labelSelector=changed%3Dyes')).body), ['s01']);
});

test('continue tokens: 410 with a fresh token once compacted, 400 when malformed or combined with a resourceVersion', async (t) => {
  const srv = await start(t);
  for (const n of ['a', 'b', 'c', 'd']) srv.create(service(n));
  const first = await get<ListBody>(srv, '/api/v1/services?limit=2');
  srv.create(service('e'));
  srv.compact();

  const expired = await get<Status>(srv, `/api/v1/services?limit=2&continue=${first.body.metadata.continue}`);
  assert.equal(expired.status, 410);
  assert.equal(expired.body.kind, 'Status');
  assert.equal(expired.body.reason, 'Expired');
  assert.equal(expired.body.code, 410);
  assert.match(expired.body.message ?? '', /continue parameter is too old/);
  // The token that comes with the 410 continues, inconsistently, at the latest revision.
  assert.ok(expired.body.metadata.continue);
  const rest = await get<ListBody>(srv, `/api/v1/services?limit=10&continue=${expired.body.metadata.continue}`);
  assert.deepEqual(names(rest.body), ['c', 'd', 'e']);
  assert.equal(rest.body.metadata.resourceVersion, srv.resourceVersion);

  const withRv = await get<Status>(
    srv,
    `/api/v1/services?limit=2&resourceVersion=3&continue=${expired.body.metadata.continue}`,
  );
  assert.equal(withRv.status, 400);
  assert.equal(withRv.body.reason, 'BadRequest');
  const garbage = await get<Status>(srv, '/api/v1/services?limit=2&continue=not-a-token');
  assert.equal(garbage.status, 400);
  assert.match(garbage.body.message ?? '', /continue/);
});

test('list resourceVersion: unset and 0 serve the latest, NotOlderThan, Exact, 504 past the latest, 410 once compacted', async (t) => {
  const srv = await start(t);
  srv.create(service('a'));
  const rv = srv.resourceVersion;
  srv.create(service('b'));
  const latest = srv.resourceVersion;

  for (const q of [
    '',
    '?resourceVersion=0',
    `?resourceVersion=${rv}`,
    `?resourceVersion=${rv}&resourceVersionMatch=NotOlderThan`,
  ]) {
    const { body } = await get<ListBody>(srv, `/api/v1/services${q}`);
    assert.equal(body.metadata.resourceVersion, latest, q);
    assert.deepEqual(names(body), ['a', 'b'], q);
  }
  // Exact (explicitly, or implied by limit with a resourceVersion) reads that revision.
  for (const q of [`?resourceVersion=${rv}&resourceVersionMatch=Exact`, `?resourceVersion=${rv}&limit=5`]) {
    const { body } = await get<ListBody>(srv, `/api/v1/services${q}`);
    assert.equal(body.metadata.resourceVersion, rv, q);
    assert.deepEqual(names(body), ['a'], q);
  }
  const future = await get<Status>(srv, `/api/v1/services?resourceVersion=${Number(latest) + 100}`);
  assert.equal(future.status, 504);
  assert.equal(future.body.reason, 'Timeout');
  assert.match(future.body.message ?? '', /Too large resource version/);

  const invalid = await get<Status>(srv, '/api/v1/services?resourceVersionMatch=Exact');
  assert.equal(invalid.status, 422);
  assert.equal(invalid.body.reason, 'Invalid');
  assert.match(invalid.body.message ?? '', /resourceVersionMatch is forbidden unless resourceVersion is provided/);

  srv.compact();
  const gone = await get<Status>(srv, `/api/v1/services?resourceVersion=${rv}&resourceVersionMatch=Exact`);
  assert.equal(gone.status, 410);
  assert.equal(gone.body.reason, 'Expired');
  const stillFine = await get<ListBody>(srv, `/api/v1/services?resourceVersion=${rv}`);
  assert.equal(stillFine.status, 200, 'NotOlderThan is served from the latest state');
});

test('a watch from a resourceVersion replays exactly the changes after it, then goes live', async (t) => {
  const srv = await start(t);
  for (const n of ['a', 'b', 'c']) srv.create(service(n));
  const rv = srv.resourceVersion;
  const b = srv.get('v1', 'Service', 'default', 'b')!;
  srv.update(service('a', 'default', undefined, 81));
  srv.delete('v1', 'Service', 'default', 'b');
  srv.create(service('d'));
  srv.create(pod('p', {})); // another kind: not on this watch

  const w = await WatchStream.open(t, srv, `/api/v1/services?watch=1&resourceVersion=${rv}`);
  assert.equal(w.response.status, 200);
  assert.equal(w.response.headers.get('content-type'), 'application/json');
  assert.equal(w.response.headers.get('transfer-encoding'), 'chunked');
  await w.waitFor(3);
  srv.create(service('e'));
  const events = await w.waitFor(4);
  assert.deepEqual(brief(events), ['MODIFIED a', 'DELETED b', 'ADDED d', 'ADDED e']);
  for (const e of events) {
    assert.equal(e.object.kind, 'Service', 'watch event objects carry their kind');
    assert.equal(e.object.apiVersion, 'v1');
  }
  // DELETED carries the object's last state, at the deletion's resourceVersion.
  const deleted = events[1]!.object;
  assert.deepEqual(fieldOf(deleted, 'spec'), fieldOf(b, 'spec'));
  assert.equal(deleted.metadata.uid, b.metadata.uid);
  assert.ok(Number(deleted.metadata.resourceVersion) > Number(b.metadata.resourceVersion));
  const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
  assert.deepEqual(
    rvs,
    [...rvs].sort((x, y) => x - y),
    'in revision order',
  );

  // `?watch` with no value is a watch too, here on one namespace's collection.
  const ns = await WatchStream.open(
    t,
    srv,
    `/api/v1/namespaces/other/services?watch&resourceVersion=${srv.resourceVersion}`,
  );
  srv.create(service('x', 'default'));
  srv.create(service('y', 'other'));
  assert.deepEqual(brief(await ns.waitFor(1)), ['ADDED y']);
  assert.equal(srv.openWatches(), 2);
});

test('a watch from a compacted or trimmed resourceVersion gets 200, one ERROR event with 410 Expired, then the end', async (t) => {
  const srv = await start(t, { historyLimit: 3 });
  srv.create(service('a'));
  const old = srv.resourceVersion;
  for (const n of ['b', 'c', 'd', 'e']) srv.create(service(n)); // 'a' falls out of the 3-change history
  const recent = String(Number(srv.resourceVersion) - 3);

  const trimmed = await WatchStream.open(t, srv, `/api/v1/services?watch=true&resourceVersion=${old}`);
  assert.equal(trimmed.response.status, 200);
  await trimmed.waitEnd();
  assert.equal(trimmed.events.length, 1);
  assert.equal(trimmed.events[0]!.type, 'ERROR');
  assert.deepEqual(trimmed.events[0]!.object, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `too old resource version: ${old} (${recent})`,
    reason: 'Expired',
    code: 410,
  });
  const kept = await WatchStream.open(t, srv, `/api/v1/services?watch=true&resourceVersion=${recent}`);
  assert.deepEqual(brief(await kept.waitFor(3)), ['ADDED c', 'ADDED d', 'ADDED e']);

  srv.compact();
  const compacted = await WatchStream.open(t, srv, `/api/v1/services?watch=true&resourceVersion=${recent}`);
  await compacted.waitEnd();
  assert.deepEqual(
    compacted.events.map((e) => [e.type, e.object.code]),
    [['ERROR', 410]],
  );
  const current = await WatchStream.open(t, srv, `/api/v1/services?watch=true&resourceVersion=${srv.resourceVersion}`);
  srv.create(service('f'));
  assert.deepEqual(brief(await current.waitFor(1)), ['ADDED f'], 'a watch from the compaction revision itself works');
});

test('a watch without a resourceVersion starts with the current objects as ADDED', async (t) => {
  const srv = await start(t);
  srv.create(service('a'));
  srv.create(service('b'));
  const rv = srv.resourceVersion;

  const w = await WatchStream.open(t, srv, '/api/v1/services?watch=1&allowWatchBookmarks=true');
  const initial = await w.waitFor(3);
  assert.deepEqual(brief(initial).slice(0, 2).sort(), ['ADDED a', 'ADDED b']);
  // As kube-apiserver with WatchList does: a bookmark marks the end of the initial events.
  assert.equal(initial[2]!.type, 'BOOKMARK');
  assert.equal(initial[2]!.object.metadata.resourceVersion, rv);
  assert.deepEqual(initial[2]!.object.metadata.annotations, { 'k8s.io/initial-events-end': 'true' });
  srv.create(service('c'));
  assert.deepEqual(brief(await w.waitFor(4)).slice(3), ['ADDED c']);

  const zero = await WatchStream.open(t, srv, '/api/v1/services?watch=1&resourceVersion=0');
  srv.delete('v1', 'Service', 'default', 'a');
  assert.deepEqual(brief(await zero.waitFor(4)).sort(), ['ADDED a', 'ADDED b', 'ADDED c', 'DELETED a']);
  assert.equal(zero.events[3]!.type, 'DELETED');
});

test('bookmarks carry the current revision, only when asked for', async (t) => {
  const srv = await start(t, { bookmarkIntervalMs: 20 });
  srv.create(service('a'));
  const plain = await WatchStream.open(t, srv, `/api/v1/services?watch=1&resourceVersion=${srv.resourceVersion}`);
  const w = await WatchStream.open(
    t,
    srv,
    `/api/v1/services?watch=1&resourceVersion=${srv.resourceVersion}&allowWatchBookmarks=true`,
  );
  const [first] = await w.waitFor(1);
  assert.deepEqual(first, {
    type: 'BOOKMARK',
    object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: srv.resourceVersion } },
  });
  // The revision is global: a change to another kind moves the next bookmark on.
  srv.create(pod('p', {}));
  await until('a bookmark at the new revision', () =>
    w.events.some((e) => e.object.metadata.resourceVersion === srv.resourceVersion),
  );
  assert.ok(w.events.every((e) => e.type === 'BOOKMARK'));
  assert.deepEqual(plain.events, [], 'no bookmarks without allowWatchBookmarks');
});

test('timeoutSeconds ends a watch cleanly', async (t) => {
  const srv = await start(t);
  const began = Date.now();
  const w = await WatchStream.open(
    t,
    srv,
    `/api/v1/services?watch=1&resourceVersion=${srv.resourceVersion}&timeoutSeconds=1`,
  );
  assert.equal(srv.openWatches(), 1);
  await w.waitEnd(2000);
  assert.equal(w.error, undefined, 'ended, not cut');
  assert.ok(Date.now() - began >= 900);
  assert.equal(srv.openWatches(), 0);
});

test('label and field selectors filter lists and watches; entering and leaving a selector reads as ADDED and DELETED', async (t) => {
  const srv = await start(t);
  srv.create(pod('p1', { app: 'web', tier: 'fe' }, 'n1'));
  srv.create(pod('p2', { app: 'web' }, 'n2'));
  srv.create(pod('p3', { app: 'db' }, 'n1'));
  srv.create(pod('p4', {}));
  srv.create(pod('q1', { app: 'web' }, 'n1', 'other'));
  const pods = async (q: string, path = '/api/v1/namespaces/default/pods') =>
    names((await get<ListBody>(srv, `${path}?${q}`)).body);

  assert.deepEqual(await pods('labelSelector=app%3Dweb'), ['p1', 'p2']);
  assert.deepEqual(await pods('labelSelector=app%3D%3Dweb,tier%3Dfe'), ['p1']);
  assert.deepEqual(await pods('labelSelector=app!%3Dweb'), ['p3', 'p4']);
  assert.deepEqual(await pods(`labelSelector=${encodeURIComponent('app in (web, db)')}`), ['p1', 'p2', 'p3']);
  assert.deepEqual(await pods(`labelSelector=${encodeURIComponent('app notin (web)')}`), ['p3', 'p4']);
  assert.deepEqual(await pods('labelSelector=tier'), ['p1']);
  assert.deepEqual(await pods('labelSelector=!tier'), ['p2', 'p3', 'p4']);
  assert.deepEqual(await pods('fieldSelector=spec.nodeName%3Dn1'), ['p1', 'p3']);
  assert.deepEqual(await pods('fieldSelector=spec.nodeName%3D'), ['p4'], 'an unscheduled pod has an empty nodeName');
  assert.deepEqual(await pods('fieldSelector=spec.nodeName%3Dn1,metadata.name!%3Dp1'), ['p3']);
  assert.deepEqual(await pods('fieldSelector=metadata.namespace%3Dother', '/api/v1/pods'), ['q1']);

  for (const [q, what] of [
    [`labelSelector=${encodeURIComponent('app in web')}`, 'app in web'],
    ['labelSelector=a%3Db%3Dc', 'a=b=c'],
    ['fieldSelector=spec.foo%3D1', 'spec.foo'],
    ['fieldSelector=nonsense', 'nonsense'],
  ] as const) {
    const { status, body } = await get<Status>(srv, `/api/v1/pods?${q}`);
    assert.equal(status, 400, q);
    assert.equal(body.reason, 'BadRequest');
    assert.ok(body.message?.includes(what), `${body.message} names ${what}`);
  }
  assert.equal(
    (await get(srv, '/api/v1/services?fieldSelector=spec.nodeName%3Dn1')).status,
    400,
    'services have no spec.nodeName field selector',
  );

  const w = await WatchStream.open(
    t,
    srv,
    `/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb&resourceVersion=${srv.resourceVersion}`,
  );
  srv.update(pod('p3', { app: 'web' }, 'n1')); // enters
  srv.update(pod('p3', { app: 'web' }, 'n3')); // changes while inside
  const p1 = srv.get('v1', 'Pod', 'default', 'p1')!;
  srv.update(pod('p1', { app: 'api' }, 'n1')); // leaves
  const leftAt = srv.resourceVersion;
  srv.update(pod('p4', { other: 'x' })); // never inside
  srv.delete('v1', 'Pod', 'default', 'p2');
  srv.create(pod('q2', { app: 'web' }, 'n1', 'other')); // another namespace
  const events = await w.waitFor(4);
  await sleep(20);
  assert.deepEqual(brief(w.events), ['ADDED p3', 'MODIFIED p3', 'DELETED p1', 'DELETED p2']);
  // Leaving: the object as it was while it matched, at the revision of the change.
  assert.deepEqual(events[2]!.object.metadata.labels, p1.metadata.labels);
  assert.equal(events[2]!.object.metadata.resourceVersion, leftAt);
});

test('a CRD-backed resource: 404 without its CRD; served and discoverable once Established; removed with its objects', async (t) => {
  const srv = await start(t);
  const path = `/apis/${GATEWAY}/v1/namespaces/default/httproutes`;
  const missing = await get<Status>(srv, path);
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'the server could not find the requested resource',
    reason: 'NotFound',
    details: {},
    code: 404,
  });
  const groups = async () => (await get<{ groups: { name: string }[] }>(srv, '/apis')).body.groups.map((g) => g.name);
  assert.ok(!(await groups()).includes(GATEWAY));
  assert.ok((await groups()).includes('discovery.k8s.io'));
  assert.equal((await get(srv, `/apis/${GATEWAY}/v1`)).status, 404);
  assert.throws(
    () => srv.create(route('r')),
    (err: unknown) => err instanceof ApiError && err.code === 404,
  );

  const crds = await WatchStream.open(
    t,
    srv,
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=1&resourceVersion=${srv.resourceVersion}&fieldSelector=metadata.name%3D${HTTPROUTES_CRD}`,
  );
  srv.installCrd(HTTPROUTES_CRD);
  const conditions = (e: WatchEvent) =>
    ((fieldOf(e.object, 'status') as { conditions?: { type: string; status: string }[] }).conditions ?? []).map(
      (c) => `${c.type}=${c.status}`,
    );
  const [added, established] = await crds.waitFor(2);
  assert.deepEqual([added!.type, established!.type], ['ADDED', 'MODIFIED']);
  assert.deepEqual(conditions(added!), []);
  assert.ok(conditions(established!).includes('Established=True'));

  assert.ok((await groups()).includes(GATEWAY));
  const resources = await get<{
    groupVersion: string;
    resources: { name: string; kind: string; namespaced: boolean }[];
  }>(srv, `/apis/${GATEWAY}/v1`);
  assert.equal(resources.body.groupVersion, `${GATEWAY}/v1`);
  assert.deepEqual(
    resources.body.resources.map((r) => [r.name, r.kind, r.namespaced]),
    [['httproutes', 'HTTPRoute', true]],
    'grpcroutes still has no CRD',
  );
  assert.equal((await get(srv, `/apis/${GATEWAY}/v1/grpcroutes`)).status, 404);

  srv.create(route('r1'));
  const list = await get<ListBody>(srv, path);
  assert.equal(list.status, 200);
  assert.equal(list.body.kind, 'HTTPRouteList');
  assert.equal(list.body.items[0]?.kind, 'HTTPRoute', 'custom resources keep kind and apiVersion in lists');
  const routes = await WatchStream.open(
    t,
    srv,
    `${path}?watch=1&resourceVersion=${list.body.metadata.resourceVersion}`,
  );
  assert.equal(srv.removeCrd(HTTPROUTES_CRD), true);
  await routes.waitEnd();
  assert.equal(routes.error, undefined, 'the watch ends, it is not cut');
  assert.deepEqual(brief(routes.events), ['DELETED r1']);
  const [, , terminating, gone] = await crds.waitFor(4);
  assert.ok(conditions(terminating!).includes('Terminating=True') && terminating!.object.metadata.deletionTimestamp);
  assert.equal(gone!.type, 'DELETED');
  assert.equal((await get(srv, path)).status, 404);
  assert.ok(!(await groups()).includes(GATEWAY));
  assert.equal(srv.removeCrd(HTTPROUTES_CRD), false);
});

test('failNext answers the next requests with a Status, then the server recovers; a token is required when set', async (t) => {
  const srv = await start(t, { token: 'sekret' });
  const auth = { headers: { Authorization: 'Bearer sekret' } };
  const anonymous = await get<Status>(srv, '/api/v1/services');
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.reason, 'Unauthorized');
  assert.equal((await get(srv, '/api/v1/services', { headers: { Authorization: 'Bearer wrong' } })).status, 401);

  srv.failNext(2, 503);
  for (let i = 0; i < 2; i++) {
    const failed = await get<Status>(srv, '/api/v1/services', auth);
    assert.equal(failed.status, 503);
    assert.equal(failed.body.kind, 'Status');
    assert.equal(failed.body.reason, 'ServiceUnavailable');
  }
  assert.equal((await get(srv, '/api/v1/services', auth)).status, 200);
  srv.failNext(1);
  assert.equal(
    (await get<Status>(srv, '/api/v1/services?watch=1', auth)).body.reason,
    'InternalError',
    'watches fail too',
  );
  srv.failNext(1, 429);
  assert.equal((await get(srv, '/api', auth)).headers.get('retry-after'), '1');
  assert.equal((await get(srv, '/api', auth)).status, 200);

  const kc = new KubeConfig();
  kc.loadFromString(srv.kubeconfig());
  assert.equal(kc.getCurrentCluster()?.server, srv.url);
  assert.equal(kc.getCurrentUser()?.token, 'sekret');
});

test('writes: server-set metadata, deep copies, conflicts, no-op updates, and the HTTP verbs', async (t) => {
  const srv = await start(t);
  const created = srv.create({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web' },
    spec: { ports: [{ port: 80 }] },
  });
  assert.equal(created.metadata.namespace, 'default');
  assert.match(created.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.match(created.metadata.creationTimestamp ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(created.metadata.resourceVersion, srv.resourceVersion);
  (fieldOf(created, 'spec') as { ports: unknown[] }).ports.push('mutated');
  assert.equal(
    (fieldOf(srv.get('v1', 'Service', undefined, 'web')!, 'spec') as { ports: unknown[] }).ports.length,
    1,
    'what is returned is a copy',
  );
  assert.equal(
    srv.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', namespace: 'x' } }).metadata.namespace,
    undefined,
  );
  assert.throws(
    () => srv.create(service('web')),
    (err: unknown) => err instanceof ApiError && err.code === 409 && err.status.reason === 'AlreadyExists',
  );
  assert.throws(
    () => srv.update(service('nope')),
    (err: unknown) => err instanceof ApiError && err.code === 404,
  );
  assert.throws(() => srv.create({ apiVersion: 'v1', kind: 'Gadget', metadata: { name: 'g' } }), /does not serve/);

  // An update that changes nothing writes nothing, as in etcd3.
  const before = srv.resourceVersion;
  const same = srv.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web' },
    spec: { ports: [{ port: 80 }] },
  });
  assert.equal(same.metadata.resourceVersion, created.metadata.resourceVersion);
  assert.equal(srv.resourceVersion, before);
  assert.throws(
    () => srv.update({ ...service('web'), metadata: { name: 'web', resourceVersion: '1' } }),
    (err: unknown) => err instanceof ApiError && err.status.reason === 'Conflict',
  );

  const json = (method: string, body?: object) => ({
    method,
    headers: { 'Content-Type': 'application/json' },
    ...(body && { body: JSON.stringify(body) }),
  });
  const base = '/api/v1/namespaces/ns1/services';
  const posted = await get<KubeObject>(
    srv,
    base,
    json('POST', { metadata: { name: 'api' }, spec: { ports: [{ port: 8080 }] } }),
  );
  assert.equal(posted.status, 201);
  assert.equal(posted.body.kind, 'Service');
  assert.equal(posted.body.metadata.namespace, 'ns1');
  const again = await get<Status>(srv, base, json('POST', { metadata: { name: 'api' } }));
  assert.deepEqual(
    [again.status, again.body.reason, again.body.message],
    [409, 'AlreadyExists', 'services "api" already exists'],
  );
  const wrongNs = await get<Status>(srv, base, json('POST', { metadata: { name: 'x', namespace: 'ns2' } }));
  assert.equal(wrongNs.status, 400);
  const stale = await get<Status>(
    srv,
    `${base}/api`,
    json('PUT', { metadata: { name: 'api', resourceVersion: '2' }, spec: {} }),
  );
  assert.deepEqual([stale.status, stale.body.reason], [409, 'Conflict']);
  const put = await get<KubeObject>(
    srv,
    `${base}/api`,
    json('PUT', {
      metadata: { name: 'api', resourceVersion: posted.body.metadata.resourceVersion },
      spec: { ports: [{ port: 9090 }] },
    }),
  );
  assert.equal(put.status, 200);
  assert.equal(put.body.metadata.uid, posted.body.metadata.uid);
  assert.ok(Number(put.body.metadata.resourceVersion) > Number(posted.body.metadata.resourceVersion));
  assert.equal((await get(srv, `${base}/api`, { method: 'PATCH', body: '{}' })).status, 405);
  assert.equal(
    (await get(srv, '/api/v1/services', json('POST', { metadata: { name: 'x', namespace: 'ns1' } }))).status,
    405,
  );
  assert.equal(
    (
      await get(
        srv,
        '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
        json('POST', { metadata: { name: 'x' } }),
      )
    ).status,
    405,
  );
  const deleted = await get<Status>(srv, `${base}/api`, json('DELETE'));
  assert.deepEqual([deleted.status, deleted.body.status], [200, 'Success']);
  const after = await get<Status>(srv, `${base}/api`);
  assert.deepEqual(
    [after.status, after.body.reason, after.body.message],
    [404, 'NotFound', 'services "api" not found'],
  );
  assert.equal((await get(srv, '/api/v1/services/web')).status, 404, 'a namespaced object has no cluster-wide path');
  assert.equal((await get<KubeObject>(srv, '/api/v1/nodes/n')).body.kind, 'Node');
});

test('a watch cut mid-event leaves a torn line; resuming from the last resourceVersion loses nothing', async (t) => {
  const srv = await start(t);
  const w = await WatchStream.open(t, srv, `/api/v1/services?watch=1&resourceVersion=${srv.resourceVersion}`);
  srv.create(service('a'));
  const [added] = await w.waitFor(1);
  assert.equal(srv.disconnectWatches({ midEvent: true }), 1);
  srv.update(service('a', 'default', { v: '2' }));
  await w.waitEnd();
  assert.ok(w.error, 'the client sees the connection break');
  assert.ok(w.partial.length > 0 && !w.partial.includes('\n'), 'after half a line');
  assert.deepEqual(brief(w.events), ['ADDED a']);
  assert.equal(srv.openWatches(), 0);

  const resumed = await WatchStream.open(
    t,
    srv,
    `/api/v1/services?watch=1&resourceVersion=${added!.object.metadata.resourceVersion}`,
  );
  const [modified] = await resumed.waitFor(1);
  assert.equal(modified!.type, 'MODIFIED');
  assert.deepEqual(modified!.object.metadata.labels, { v: '2' });

  assert.equal(srv.disconnectWatches(), 1);
  await resumed.waitEnd();
  assert.ok(resumed.error);
});

test('client-node ListWatch: sees changes, resumes after a cut without listing again, re-lists after compaction', async (t) => {
  const srv = await start(t, { token: 'tok' });
  const kc = new KubeConfig();
  kc.loadFromString(srv.kubeconfig());
  const path = '/api/v1/services';
  const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
    const res = await fetch(`${kc.getCurrentCluster()!.server}${path}`, {
      headers: { Authorization: `Bearer ${kc.getCurrentUser()!.token}` },
    });
    if (res.status !== 200) throw Object.assign(new Error(`list: HTTP ${res.status}`), { statusCode: res.status });
    return (await res.json()) as KubernetesListObject<KubernetesObject>;
  };
  // Backoff is the client's business; keep it short here.
  const lw = new ListWatch(path, new Watch(kc), listFn, false, undefined, undefined, { delayFn: () => sleep(10) });
  const seen: string[] = [];
  lw.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  lw.on('update', (o) => seen.push(`update ${o.metadata?.name}`));
  lw.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  // ListWatch leaves errors (a cut connection) to its user, who restarts it.
  let stopped = false;
  lw.on('error', () => {
    void sleep(10).then(() => {
      if (!stopped) void lw.start();
    });
  });
  t.after(() => {
    stopped = true;
    return lw.stop();
  });
  const lists = () => srv.requests.filter((r) => r.path === path && !r.watch).length;
  const watchesSince = (from: number) => srv.requests.slice(from).filter((r) => r.path === path && r.watch);
  const cached = () =>
    lw
      .list()
      .map((o) => o.metadata?.name)
      .sort();

  srv.create(service('a'));
  await lw.start();
  await until('the first watch', () => srv.openWatches() === 1);
  srv.create(service('b'));
  srv.update(service('a', 'default', { v: '2' }));
  srv.delete('v1', 'Service', 'default', 'b');
  await until('add/update/delete', () => seen.length === 4);
  assert.deepEqual(seen, ['add a', 'add b', 'update a', 'delete b']);
  assert.equal(lists(), 1);

  // A cut: changes made while it is down arrive on the resumed watch, with no new list.
  const rv = lw.latestResourceVersion();
  assert.equal(rv, srv.resourceVersion);
  const mark = srv.requests.length;
  assert.equal(srv.disconnectWatches(), 1);
  srv.create(service('c'));
  srv.delete('v1', 'Service', 'default', 'a');
  await until('the changes made during the cut', () => seen.length === 6);
  assert.deepEqual(seen.slice(4), ['add c', 'delete a']);
  assert.equal(lists(), 1, 'resumed without listing');
  assert.equal(watchesSince(mark)[0]?.query.resourceVersion, rv, 'from the last resourceVersion it saw');
  await until('the resumed watch', () => srv.openWatches() === 1);

  // Changes it missed, then compaction past them: the resumed watch gets 410, and ListWatch
  // lists again and converges.
  const before = lw.latestResourceVersion();
  const mark2 = srv.requests.length;
  srv.disconnectWatches();
  srv.create(service('d'));
  srv.delete('v1', 'Service', 'default', 'c');
  srv.compact();
  await until('a re-list', () => lists() === 2);
  await until('convergence', () => cached().join() === 'd');
  await until('the watch after the re-list', () => srv.openWatches() === 1);
  const watches = watchesSince(mark2);
  assert.equal(watches[0]?.query.resourceVersion, before, 'it first tried to resume');
  assert.equal(watches.at(-1)?.query.resourceVersion, srv.resourceVersion, 'then watched from the new list');
  srv.create(service('e'));
  await until('a change after the re-list', () => cached().join() === 'd,e');
  assert.deepEqual(
    srv.list('v1', 'Service').map((o) => o.metadata.name),
    cached(),
  );
});
