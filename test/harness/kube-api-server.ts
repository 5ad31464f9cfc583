// A kube-apiserver stand-in for tests and benchmarks. It serves the resources the agent watches
// (src/sources/kubernetes-resources.ts) over plain HTTP on 127.0.0.1, speaking the list/watch
// protocol the way kube-apiserver does: one global revision like etcd's, consistent paginated
// lists, watches that resume from a resourceVersion out of a bounded history, 410 Expired once
// that history is compacted, bookmarks, selectors, CRD-gated resources and Status errors. What
// it follows, with sources, and what it simplifies: kube-api-protocol.md next to this file.
//
// Tests drive it in process (create/update/delete, compact, disconnectWatches, failNext) and
// read `requests` to see what the client asked. Writes cost O(object size + watchers of that
// kind): a benchmark holds tens of thousands of objects.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CRD_RESOURCE,
  WATCHED_RESOURCES,
  apiVersionOf,
  type WatchedResource,
} from '../../src/sources/kubernetes-resources.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
}

/** A Kubernetes object as plain JSON. No index signature, so that it converts to and from the
 *  project's interfaces (Service, EndpointSlice...); other fields are read with fieldOf(). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

/** A top-level field of an object (spec, status, data...). */
export function fieldOf(obj: KubeObject, name: string): unknown {
  return (obj as unknown as Record<string, unknown>)[name];
}

export interface RequestRecord {
  method: string;
  /** The URL path, without the query. */
  path: string;
  query: Record<string, string>;
  watch: boolean;
}

export interface TestApiServerOptions {
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** How often a watch with allowWatchBookmarks=true gets a BOOKMARK (default 1000 ms). */
  bookmarkIntervalMs?: number;
  /** Changes kept for watches, Exact lists and continue tokens (default 200,000). */
  historyLimit?: number;
  /** kube-apiserver's --min-request-timeout: a watch without timeoutSeconds lasts 1–2× this (default 1800 s). */
  minRequestTimeoutSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: { continue?: string };
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: Record<string, unknown>;
  code: number;
}

/** A request the apiserver would refuse, with the Status it would answer. */
export class ApiError extends Error {
  constructor(readonly status: Status) {
    super(status.message);
  }
  get code(): number {
    return this.status.code;
  }
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
type Matcher = (o: KubeObject) => boolean;

/** One write, as etcd's watch reports it: the object after it and the one before. */
interface Change {
  rv: number;
  type: EventType;
  c: Collection;
  key: string;
  /** The object after the change; for DELETED, its last state carrying the deletion's rv. */
  obj: KubeObject;
  prev: KubeObject | undefined;
}

interface Collection {
  res: WatchedResource;
  /** Stored objects by key (namespace/name, or name): never mutated once stored. */
  objects: Map<string, KubeObject>;
  watchers: Set<Watcher>;
}

interface Watcher {
  c: Collection;
  matches: Matcher;
  /** Changes up to this revision were already sent (or were not asked for). */
  from: number;
  res: ServerResponse;
  bookmarks: boolean;
  /** disconnectWatches({ midEvent: true }): write half of the next event, then cut. */
  tear: boolean;
  timers: NodeJS.Timeout[];
}

const RESOURCES: readonly WatchedResource[] = [...WATCHED_RESOURCES, CRD_RESOURCE];
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};
const NOT_FOUND = 'the server could not find the requested resource';
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';
const CRD_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';
const VERBS = ['create', 'delete', 'get', 'list', 'update', 'watch'];
const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' };
// The apiserver's messages for a continue token or list resourceVersion that was compacted.
const EXPIRED_LIST = 'The resourceVersion for the provided list is too old.';
const INCONSISTENT_CONTINUE =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';

export class TestApiServer {
  readonly url: string;
  /** Every request, in arrival order (also refused ones). */
  readonly requests: RequestRecord[] = [];

  private readonly collections = new Map<WatchedResource, Collection>();
  private readonly watchers = new Set<Watcher>();
  /** Changes with rv in (floor, revision], oldest at history[head]. */
  private history: Change[] = [];
  private head = 0;
  /** Lists, watches and continue tokens at a revision >= floor can be served. */
  private floor = 1;
  private revision = 1;
  /** Sorted states of one collection at one revision, for the pages of a list. */
  private readonly snapshots = new Map<string, [string, KubeObject][]>();
  private failures = { count: 0, code: 500 };
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: http.Server,
    private readonly opts: Required<Omit<TestApiServerOptions, 'token'>> & { token: string | undefined },
  ) {
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const res of RESOURCES) this.collections.set(res, { res, objects: new Map(), watchers: new Set() });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
  }

  static async start(opts: TestApiServerOptions = {}): Promise<TestApiServer> {
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return new TestApiServer(server, {
      token: opts.token,
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 1000,
      historyLimit: opts.historyLimit ?? 200_000,
      minRequestTimeoutSeconds: opts.minRequestTimeoutSeconds ?? 1800,
    });
  }

  /** A kubeconfig for this server. It is plain HTTP, which @kubernetes/client-node accepts only
   *  with insecure-skip-tls-verify set. */
  kubeconfig(): string {
    const user = this.opts.token ? `\n    token: ${JSON.stringify(this.opts.token)}` : ' {}';
    return `apiVersion: v1
kind: Config
clusters:
- name: weft-test
  cluster:
    server: ${this.url}
    insecure-skip-tls-verify: true
users:
- name: weft-test
  user:${user}
contexts:
- name: weft-test
  context:
    cluster: weft-test
    user: weft-test
current-context: weft-test
`;
  }

  writeKubeconfig(file: string): void {
    fs.writeFileSync(file, this.kubeconfig(), { mode: 0o600 });
  }

  // ---- In-process API -------------------------------------------------------------------------

  /** Stores a new object (ADDED). Throws ApiError 409 if it exists, 404 if its CRD is absent. */
  create(input: object): KubeObject {
    const obj = asObject(input);
    return structuredClone(this.createIn(this.servedCollection(obj.apiVersion, obj.kind), obj));
  }

  /** Replaces an object (MODIFIED). A metadata.resourceVersion, if given, must be current (else
   *  409), as for a PUT. Like the apiserver, an update that changes nothing writes nothing: no
   *  event, and the object keeps its resourceVersion. */
  update(input: object): KubeObject {
    const obj = asObject(input);
    return structuredClone(this.replaceIn(this.servedCollection(obj.apiVersion, obj.kind), obj));
  }

  /** Creates or updates, ignoring any resourceVersion in `obj`. */
  apply(input: object): KubeObject {
    const obj = asObject(input);
    const c = this.servedCollection(obj.apiVersion, obj.kind);
    const o = { ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } };
    const exists = c.objects.has(keyOf(c.res, o.metadata.namespace, o.metadata.name));
    return structuredClone(exists ? this.replaceIn(c, o) : this.createIn(c, o));
  }

  /** Deletes an object (DELETED); undefined if there was none. */
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const c = this.collection(apiVersion, kind);
    const prev = c.objects.get(keyOf(c.res, namespace, name));
    return prev && structuredClone(this.deleteIn(c, prev));
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const c = this.collection(apiVersion, kind);
    const obj = c.objects.get(keyOf(c.res, namespace, name));
    return obj && structuredClone(obj);
  }

  /** Every object of a kind, in key order. */
  list(apiVersion: string, kind: string): KubeObject[] {
    return this.stateAt(this.collection(apiVersion, kind), this.revision).map(([, o]) => structuredClone(o));
  }

  /** The current revision: the resourceVersion a list made now would carry. */
  get resourceVersion(): string {
    return String(this.revision);
  }

  /** Installs the CRD that serves a watched resource (e.g. httproutes.gateway.networking.k8s.io):
   *  ADDED, then MODIFIED once Established, as the apiextensions controllers do it. */
  installCrd(name: string): KubeObject {
    const res = crdResource(name);
    const crds = this.collectionOf(CRD_RESOURCE);
    const existing = crds.objects.get(name);
    if (existing) return structuredClone(existing);
    const created = this.createIn(crds, crdObject(res));
    return structuredClone(this.replaceIn(crds, { ...created, status: establishedStatus(res) } as KubeObject));
  }

  /** Removes a CRD as the apiserver does: marks it Terminating, deletes every custom resource
   *  (DELETED events), ends the watches on them, then deletes the CRD. False if it was absent. */
  removeCrd(name: string): boolean {
    const res = crdResource(name);
    const crds = this.collectionOf(CRD_RESOURCE);
    const crd = crds.objects.get(name);
    if (!crd) return false;
    this.replaceIn(crds, terminating(crd));
    const c = this.collectionOf(res);
    for (const obj of [...c.objects.values()]) this.deleteIn(c, obj);
    for (const w of [...c.watchers]) this.endWatch(w);
    this.deleteIn(crds, crds.objects.get(name)!);
    return true;
  }

  /** Forgets all history up to now, as etcd compaction does: older resourceVersions get 410. */
  compact(): void {
    this.floor = this.revision;
    this.history = [];
    this.head = 0;
    this.snapshots.clear();
  }

  /** Cuts every open watch (destroys its connection). With midEvent, each watch is cut instead
   *  after writing half of its next event's line, so the client sees a torn line. */
  disconnectWatches(opts: { midEvent?: boolean } = {}): number {
    const all = [...this.watchers];
    for (const w of all) {
      if (opts.midEvent) {
        w.tear = true;
      } else {
        this.forget(w);
        w.res.socket?.destroy();
      }
    }
    return all.length;
  }

  /** The next `count` requests answer `code` with a Status body. */
  failNext(count: number, code = 500): void {
    this.failures = { count, code };
  }

  openWatches(): number {
    return this.watchers.size;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const w of [...this.watchers]) {
        this.forget(w);
        w.res.socket?.destroy();
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  // ---- Storage --------------------------------------------------------------------------------

  private collection(apiVersion: string, kind: string): Collection {
    const res = RESOURCES.find((r) => r.kind === kind && apiVersionOf(r) === apiVersion);
    if (!res) throw new Error(`the test API server does not serve ${apiVersion} ${kind}`);
    return this.collectionOf(res);
  }

  private collectionOf(res: WatchedResource): Collection {
    return this.collections.get(res)!;
  }

  private servedCollection(apiVersion: string, kind: string): Collection {
    const c = this.collection(apiVersion, kind);
    if (!this.served(c.res)) throw new ApiError(status(404, NOT_FOUND, { details: {} }));
    return c;
  }

  /** Custom resources are served while their CRD exists and is Established. */
  private served(res: WatchedResource): boolean {
    if (!res.crd) return true;
    const crd = this.collectionOf(CRD_RESOURCE).objects.get(res.crd);
    const conditions =
      ((crd && fieldOf(crd, 'status')) as { conditions?: { type: string; status: string }[] } | undefined)
        ?.conditions ?? [];
    return conditions.some((cond) => cond.type === 'Established' && cond.status === 'True');
  }

  /** A deep copy of `obj` with the collection's kind, a name, and a namespace where it has one. */
  private normalize(c: Collection, obj: KubeObject): { key: string; obj: KubeObject } {
    const { kind: _kind, apiVersion: _apiVersion, ...rest } = structuredClone(obj);
    const o: KubeObject = {
      kind: c.res.kind,
      apiVersion: apiVersionOf(c.res),
      ...rest,
      metadata: { ...rest.metadata },
    };
    if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') {
      throw new ApiError(invalid(c.res, '', 'metadata.name: Required value: name or generateName is required'));
    }
    if (c.res.namespaced) o.metadata.namespace ||= 'default';
    else delete o.metadata.namespace; // the apiserver clears it for cluster-scoped kinds
    return { key: keyOf(c.res, o.metadata.namespace, o.metadata.name), obj: o };
  }

  private createIn(c: Collection, input: KubeObject): KubeObject {
    const { key, obj } = this.normalize(c, input);
    if (c.objects.has(key))
      throw new ApiError(objectStatus(409, c.res, obj.metadata.name, 'already exists', 'AlreadyExists'));
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = timestamp();
    return this.commit(c, 'ADDED', key, obj, undefined);
  }

  private replaceIn(c: Collection, input: KubeObject): KubeObject {
    const { key, obj } = this.normalize(c, input);
    const prev = c.objects.get(key);
    if (!prev) throw new ApiError(objectStatus(404, c.res, obj.metadata.name, 'not found'));
    const expected = obj.metadata.resourceVersion;
    if (expected && expected !== prev.metadata.resourceVersion) {
      throw new ApiError(
        status(
          409,
          `Operation cannot be fulfilled on ${qualified(c.res)} "${obj.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
          { details: objectDetails(c.res, obj.metadata.name) },
        ),
      );
    }
    obj.metadata.uid = prev.metadata.uid;
    obj.metadata.creationTimestamp = prev.metadata.creationTimestamp;
    obj.metadata.resourceVersion = prev.metadata.resourceVersion;
    // etcd3's GuaranteedUpdate skips the write when the object is unchanged.
    if (sameJson(obj, prev)) return prev;
    return this.commit(c, 'MODIFIED', key, obj, prev);
  }

  private deleteIn(c: Collection, prev: KubeObject): KubeObject {
    return this.commit(c, 'DELETED', keyOf(c.res, prev.metadata.namespace, prev.metadata.name), undefined, prev);
  }

  /** One write: the next revision, the store, the history, then every watcher of the kind. */
  private commit(
    c: Collection,
    type: EventType,
    key: string,
    obj: KubeObject | undefined,
    prev: KubeObject | undefined,
  ): KubeObject {
    const rv = ++this.revision;
    let stored: KubeObject;
    if (type === 'DELETED') {
      stored = withRv(prev!, rv);
      c.objects.delete(key);
    } else {
      stored = obj!;
      stored.metadata.resourceVersion = String(rv);
      c.objects.set(key, stored);
    }
    const change: Change = { rv, type, c, key, obj: stored, prev };
    this.record(change);
    this.dispatch(change);
    return stored;
  }

  private record(change: Change): void {
    this.history.push(change);
    while (this.history.length - this.head > this.opts.historyLimit) this.floor = this.history[this.head++]!.rv;
    if (this.head > 4096 && this.head * 2 > this.history.length) {
      this.history = this.history.slice(this.head);
      this.head = 0;
    }
  }

  /** The collection at revision rv (>= floor), sorted by key: the current objects with every
   *  later change undone. Cached, since each page of a list reads the same revision. */
  private stateAt(c: Collection, rv: number): [string, KubeObject][] {
    const id = `${c.res.plural}@${rv}`;
    let state = this.snapshots.get(id);
    if (state) return state;
    const objects = new Map(c.objects);
    for (let i = this.history.length - 1; i >= this.head; i--) {
      const change = this.history[i]!;
      if (change.rv <= rv) break;
      if (change.c !== c) continue;
      if (change.prev) objects.set(change.key, change.prev);
      else objects.delete(change.key);
    }
    state = [...objects].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this.snapshots.set(id, state);
    if (this.snapshots.size > 8) this.snapshots.delete(this.snapshots.keys().next().value!);
    return state;
  }

  // ---- Watches --------------------------------------------------------------------------------

  private dispatch(change: Change): void {
    // Each event is serialized once, whatever the number of watchers it goes to.
    const lines: Partial<Record<EventType, string>> = {};
    for (const w of change.c.watchers) {
      if (change.rv <= w.from) continue;
      const event = eventFor(change, w.matches);
      if (event) this.send(w, (lines[event.type] ??= line(event.type, event.obj)));
    }
  }

  private send(w: Watcher, text: string): void {
    if (!w.tear) {
      w.res.write(text);
      return;
    }
    this.forget(w);
    const socket = w.res.socket;
    // Destroy only once the half line is flushed, or the client might never see it.
    w.res.write(text.slice(0, Math.max(1, text.length >> 1)), () => socket?.destroy());
  }

  private bookmark(w: Watcher, annotations?: Record<string, string>): string {
    const metadata = { resourceVersion: String(Math.max(this.revision, w.from)), ...(annotations && { annotations }) };
    return line('BOOKMARK', { kind: w.c.res.kind, apiVersion: apiVersionOf(w.c.res), metadata });
  }

  private endWatch(w: Watcher): void {
    this.forget(w);
    w.res.end();
  }

  private forget(w: Watcher): void {
    for (const t of w.timers) clearTimeout(t);
    w.c.watchers.delete(w);
    this.watchers.delete(w);
  }

  private watch(c: Collection, namespace: string | undefined, q: Query, res: ServerResponse): void {
    validateWatchOptions(q);
    const matches = matcher(c.res, namespace, q);
    const timeoutMs = 1000 * (int(q, 'timeoutSeconds') || this.opts.minRequestTimeoutSeconds * (1 + Math.random()));
    const bookmarks = flag(q.allowWatchBookmarks) === true;
    const requested = q.resourceVersion ?? '';
    const latest = requested === '' || requested === '0';
    // kube-apiserver with WatchList (on by default in 1.34) turns a watch from "" or "0" into
    // sendInitialEvents=true: the current objects as ADDED, then, when bookmarks were allowed,
    // a bookmark marking their end. Older servers send the same ADDED events, without it.
    const initial = flag(q.sendInitialEvents) ?? latest;
    let from = this.revision;
    if (!latest) {
      const rv = parseRv(requested);
      if (initial && rv > this.revision) throw new ApiError(tooLarge(rv, this.revision));
      if (!initial) from = rv; // Start at Exact: every change after rv
    }
    res.writeHead(200, { ...JSON_HEADERS, 'Transfer-Encoding': 'chunked' });
    if (!initial && from < this.floor) {
      // Past the rv parse, the watch cache reports errors as an ERROR event in a 200 stream.
      res.end(line('ERROR', status(410, `too old resource version: ${from} (${this.floor})`)));
      return;
    }
    res.flushHeaders();
    const w: Watcher = { c, matches, from: Math.max(from, this.revision), res, bookmarks, tear: false, timers: [] };
    const out: string[] = [];
    if (initial) {
      for (const obj of c.objects.values()) if (matches(obj)) out.push(line('ADDED', obj));
      if (bookmarks) out.push(this.bookmark(w, { [INITIAL_EVENTS_END]: 'true' }));
    } else {
      for (let i = this.head + (from - this.floor); i < this.history.length; i++) {
        const event = eventFor(this.history[i]!, matches, c);
        if (event) out.push(line(event.type, event.obj));
      }
    }
    for (let i = 0; i < out.length; i += 1000) res.write(out.slice(i, i + 1000).join(''));
    c.watchers.add(w);
    this.watchers.add(w);
    res.on('close', () => this.forget(w));
    if (bookmarks)
      w.timers.push(setInterval(() => this.send(w, this.bookmark(w)), this.opts.bookmarkIntervalMs).unref());
    w.timers.push(
      setTimeout(() => {
        // The watch cache sends a bookmark shortly before the deadline, then the stream ends.
        if (bookmarks) this.send(w, this.bookmark(w));
        this.endWatch(w);
      }, timeoutMs).unref(),
    );
  }

  // ---- Lists ----------------------------------------------------------------------------------

  private listResponse(c: Collection, namespace: string | undefined, q: Query): unknown {
    validateListOptions(q);
    const limit = int(q, 'limit');
    const { rv, start } = this.listRevision(q, limit);
    const state = this.stateAt(c, rv);
    // Keys sort as namespace/name, so a namespace is a key range, as in etcd.
    const lo = lowerBound(state, namespace === undefined ? start : start > `${namespace}/` ? start : `${namespace}/`);
    const hi = namespace === undefined ? state.length : lowerBound(state, `${namespace}0`); // '0' follows '/'
    const selected = q.labelSelector || q.fieldSelector;
    const matches = matcher(c.res, undefined, q);
    const items: KubeObject[] = [];
    let i = lo;
    let last = '';
    for (; i < hi && (limit <= 0 || items.length < limit); i++) {
      const [key, obj] = state[i]!;
      last = key;
      if (matches(obj)) items.push(obj);
    }
    // Like etcd3's paging, "more" means more keys in the range, matching or not.
    const more = limit > 0 && i < hi;
    return {
      kind: `${c.res.kind}List`,
      apiVersion: apiVersionOf(c.res),
      metadata: {
        resourceVersion: String(rv),
        ...(more && { continue: encodeContinue(rv, `${last}\u0000`) }),
        ...(more && !selected && { remainingItemCount: hi - i }),
      },
      // Built-in lists carry no kind/apiVersion on their items; custom resources keep theirs.
      items: c.res.crd ? items : items.map(({ kind: _kind, apiVersion: _apiVersion, ...rest }) => rest),
    };
  }

  /** Which revision a list reads, per the resourceVersion/resourceVersionMatch/continue rules. */
  private listRevision(q: Query, limit: number): { rv: number; start: string } {
    const requested = q.resourceVersion ?? '';
    if (q.continue) {
      if (requested !== '' && requested !== '0')
        throw new ApiError(status(400, 'specifying resource version is not allowed when using continue'));
      const token = decodeContinue(q.continue);
      if (token.rv === -1) return { rv: this.revision, start: token.start };
      if (token.rv < this.floor) {
        const fresh = status(410, INCONSISTENT_CONTINUE);
        fresh.metadata.continue = encodeContinue(-1, token.start);
        throw new ApiError(fresh);
      }
      if (token.rv > this.revision) throw new ApiError(status(400, 'invalid continue token: unknown resource version'));
      return { rv: token.rv, start: token.start };
    }
    if (requested === '' || requested === '0') return { rv: this.revision, start: '' };
    const rv = parseRv(requested);
    if (rv > this.revision) throw new ApiError(tooLarge(rv, this.revision));
    const exact = q.resourceVersionMatch === 'Exact' || (!q.resourceVersionMatch && limit > 0);
    if (!exact) return { rv: this.revision, start: '' };
    if (rv < this.floor) throw new ApiError(status(410, EXPIRED_LIST));
    return { rv, start: '' };
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const query: Query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query, watch: flag(query.watch) === true });
    try {
      if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
        throw new ApiError(status(401, 'Unauthorized'));
      }
      if (this.failures.count > 0) {
        this.failures.count--;
        throw new ApiError(
          status(
            this.failures.code,
            `injected failure (HTTP ${this.failures.code})`,
            this.failures.code === 429 ? { details: { retryAfterSeconds: 1 } } : {},
          ),
        );
      }
      await this.route(method, url.pathname, query, req, res);
    } catch (err) {
      const s =
        err instanceof ApiError
          ? err.status
          : status(500, `Internal error occurred: ${(err as Error)?.message ?? err}`);
      if (res.headersSent) res.destroy();
      else reply(res, s.code, s);
    }
  }

  private async route(
    method: string,
    path: string,
    q: Query,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const discovery = method === 'GET' ? this.discovery(path) : undefined;
    if (discovery) return reply(res, 200, discovery);
    const target = this.resolve(path);
    if (!target) throw new ApiError(status(404, NOT_FOUND, { details: {} }));
    const { c, namespace, name } = target;
    // CRDs change only through installCrd/removeCrd, which also do what the controllers would.
    const writable = c.res !== CRD_RESOURCE;
    if (name === undefined) {
      if (method === 'GET' && flag(q.watch)) return this.watch(c, namespace, q, res);
      if (method === 'GET') return reply(res, 200, this.listResponse(c, namespace, q));
      // Namespaced kinds are created in their namespace's collection, not the cluster-wide one.
      const creatable = writable && (namespace !== undefined || !c.res.namespaced);
      if (method === 'POST' && creatable)
        return reply(res, 201, this.createIn(c, await this.body(req, c, namespace, undefined)));
    } else {
      const key = keyOf(c.res, namespace, name);
      if (method === 'GET') {
        const obj = c.objects.get(key);
        if (!obj) throw new ApiError(objectStatus(404, c.res, name, 'not found'));
        return reply(res, 200, obj);
      }
      if (method === 'PUT' && writable)
        return reply(res, 200, this.replaceIn(c, await this.body(req, c, namespace, name)));
      if (method === 'DELETE' && writable) {
        const obj = c.objects.get(key);
        if (!obj) throw new ApiError(objectStatus(404, c.res, name, 'not found'));
        const gone = this.deleteIn(c, obj);
        return reply(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { ...objectDetails(c.res, name), uid: gone.metadata.uid },
        });
      }
    }
    throw new ApiError(status(405, `the server does not allow this method on the requested resource`, { details: {} }));
  }

  /** A POST or PUT body, checked against the URL as the apiserver does. */
  private async body(
    req: IncomingMessage,
    c: Collection,
    namespace: string | undefined,
    name: string | undefined,
  ): Promise<KubeObject> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let obj: KubeObject;
    try {
      obj = JSON.parse(Buffer.concat(chunks).toString('utf8')) as KubeObject;
    } catch (err) {
      throw new ApiError(status(400, `the request body is not valid JSON: ${(err as Error).message}`));
    }
    if (typeof obj !== 'object' || obj === null || typeof obj.metadata !== 'object' || obj.metadata === null) {
      throw new ApiError(status(400, 'the request body is not an object with metadata'));
    }
    if ((obj.kind && obj.kind !== c.res.kind) || (obj.apiVersion && obj.apiVersion !== apiVersionOf(c.res))) {
      throw new ApiError(
        status(
          400,
          `the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersionOf(c.res)}) or kind ${obj.kind} is not ${c.res.kind}`,
        ),
      );
    }
    if (namespace !== undefined) {
      if (obj.metadata.namespace && obj.metadata.namespace !== namespace) {
        throw new ApiError(
          status(400, 'the namespace of the provided object does not match the namespace sent on the request'),
        );
      }
      obj.metadata.namespace = namespace;
    }
    if (name !== undefined && obj.metadata.name !== name) {
      throw new ApiError(status(400, 'the name of the object does not match the name on the URL'));
    }
    if (name === undefined && obj.metadata.resourceVersion) {
      throw new ApiError(status(400, 'resourceVersion should not be set on objects to be created'));
    }
    return obj;
  }

  /** The resource a path names: /api/v1/..., /apis/GROUP/VERSION/... then [namespaces/NS/]PLURAL[/NAME]. */
  private resolve(path: string): { c: Collection; namespace?: string; name?: string } | undefined {
    const segs = path.split('/').slice(1);
    const [group, version, rest] =
      segs[0] === 'api' ? ['', segs[1], segs.slice(2)] : segs[0] === 'apis' ? [segs[1], segs[2], segs.slice(3)] : [];
    if (version === undefined || rest === undefined || rest.some((s) => s === '')) return undefined;
    const scoped = rest[0] === 'namespaces' && rest.length >= 3;
    const [namespace, plural, name, ...extra] = scoped ? rest.slice(1) : [undefined, ...rest];
    const res = RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
    if (!res || !this.served(res) || extra.length > 0) return undefined;
    if (scoped ? !res.namespaced : res.namespaced && name !== undefined) return undefined;
    return {
      c: this.collectionOf(res),
      ...(namespace !== undefined && { namespace }),
      ...(name !== undefined && { name }),
    };
  }

  /** Legacy discovery: /api, /apis, /apis/GROUP, and the resource list of each group version. */
  private discovery(path: string): unknown {
    const served = RESOURCES.filter((r) => this.served(r));
    const groups = [...new Set(served.map((r) => r.group).filter((g) => g !== ''))].map((name) => {
      const versions = [...new Set(served.filter((r) => r.group === name).map((r) => r.version))].map((v) => ({
        groupVersion: `${name}/${v}`,
        version: v,
      }));
      return { name, versions, preferredVersion: versions[0] };
    });
    if (path === '/api')
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.url.slice('http://'.length) }],
      };
    if (path === '/apis') return { kind: 'APIGroupList', apiVersion: 'v1', groups };
    if (path === '/version')
      return { major: '1', minor: '34', gitVersion: 'v1.34.0-weft-test', platform: 'linux/amd64' };
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)(?:\/([^/]+))?)$/.exec(path);
    if (!m) return undefined;
    const group = m[2] ?? '';
    if (m[2] !== undefined && m[3] === undefined) {
      const g = groups.find((x) => x.name === group);
      return g && { kind: 'APIGroup', apiVersion: 'v1', ...g };
    }
    const version = m[1] ?? m[3]!;
    const resources = served.filter((r) => r.group === group && r.version === version);
    if (resources.length === 0) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: resources.map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: r === CRD_RESOURCE ? ['get', 'list', 'watch'] : VERBS,
      })),
    };
  }
}

// ---- Events and objects -------------------------------------------------------------------------

type Query = Record<string, string>;

/** What a watcher with this filter sees of a change (the watch cache's convertToWatchEvent): an
 *  object entering the filter is ADDED, one leaving it is DELETED as it was, at the change's rv. */
function eventFor(
  change: Change,
  matches: Matcher,
  only?: Collection,
): { type: EventType; obj: KubeObject } | undefined {
  if (only && change.c !== only) return undefined;
  const now = change.type !== 'DELETED' && matches(change.obj);
  const before = change.prev !== undefined && matches(change.prev);
  if (now) return { type: before ? 'MODIFIED' : 'ADDED', obj: change.obj };
  if (before) return { type: 'DELETED', obj: change.type === 'DELETED' ? change.obj : withRv(change.prev!, change.rv) };
  return undefined;
}

/** Objects come in as plain JSON; only their type is checked here, the rest by normalize(). */
function asObject(input: object): KubeObject {
  const obj = input as Partial<KubeObject>;
  if (
    typeof obj.apiVersion !== 'string' ||
    typeof obj.kind !== 'string' ||
    typeof obj.metadata !== 'object' ||
    obj.metadata === null
  ) {
    throw new Error('an object needs apiVersion, kind and metadata');
  }
  return obj as KubeObject;
}

function line(type: string, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}

function withRv(obj: KubeObject, rv: number): KubeObject {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
}

function keyOf(res: WatchedResource, namespace: string | undefined, name: string): string {
  return res.namespaced ? `${namespace || 'default'}/${name}` : name;
}

function lowerBound(state: [string, KubeObject][], key: string): number {
  let lo = 0;
  let hi = state.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (state[mid]![0] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** JSON equality: key order and undefined members do not count. */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (
    typeof a !== 'object' ||
    typeof b !== 'object' ||
    a === null ||
    b === null ||
    Array.isArray(a) !== Array.isArray(b)
  )
    return false;
  if (Array.isArray(a))
    return a.length === (b as unknown[]).length && a.every((v, i) => sameJson(v, (b as unknown[])[i]));
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  return (
    ka.length === Object.keys(rb).filter((k) => rb[k] !== undefined).length && ka.every((k) => sameJson(ra[k], rb[k]))
  );
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function crdResource(name: string): WatchedResource {
  const res = WATCHED_RESOURCES.find((r) => r.crd === name);
  if (!res) throw new Error(`no watched resource is served by a CRD named ${name}`);
  return res;
}

function crdObject(res: WatchedResource): KubeObject {
  const names = { plural: res.plural, singular: res.kind.toLowerCase(), kind: res.kind, listKind: `${res.kind}List` };
  return {
    apiVersion: apiVersionOf(CRD_RESOURCE),
    kind: CRD_RESOURCE.kind,
    metadata: { name: res.crd! },
    spec: {
      group: res.group,
      names,
      scope: res.namespaced ? 'Namespaced' : 'Cluster',
      versions: [
        {
          name: res.version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
    status: { acceptedNames: { plural: '', kind: '' }, storedVersions: [res.version] },
  } as KubeObject;
}

function establishedStatus(res: WatchedResource): unknown {
  const now = timestamp();
  return {
    conditions: [
      {
        type: 'NamesAccepted',
        status: 'True',
        lastTransitionTime: now,
        reason: 'NoConflicts',
        message: 'no conflicts found',
      },
      {
        type: 'Established',
        status: 'True',
        lastTransitionTime: now,
        reason: 'InitialNamesAccepted',
        message: 'the initial names have been accepted',
      },
    ],
    acceptedNames: (fieldOf(crdObject(res), 'spec') as { names: unknown }).names,
    storedVersions: [res.version],
  };
}

/** The CRD as its first delete leaves it: deletionTimestamp, cleanup finalizer, Terminating. */
function terminating(crd: KubeObject): KubeObject {
  const status = structuredClone(fieldOf(crd, 'status')) as { conditions?: unknown[] };
  status.conditions = [
    ...(status.conditions ?? []),
    {
      type: 'Terminating',
      status: 'True',
      lastTransitionTime: timestamp(),
      reason: 'InstanceDeletionPending',
      message: 'CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon',
    },
  ];
  return {
    ...crd,
    metadata: {
      ...crd.metadata,
      deletionTimestamp: timestamp(),
      deletionGracePeriodSeconds: 0,
      finalizers: [CRD_FINALIZER],
    },
    status,
  } as KubeObject;
}

// ---- Status objects -----------------------------------------------------------------------------

function status(
  code: number,
  message: string | undefined,
  extra: { reason?: string; details?: Record<string, unknown> } = {},
): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    ...(message !== undefined && { message }),
    reason: extra.reason ?? REASONS[code] ?? 'Unknown',
    ...(extra.details && { details: extra.details }),
    code,
  };
}

function qualified(res: WatchedResource): string {
  return res.group ? `${res.plural}.${res.group}` : res.plural;
}

function objectDetails(res: WatchedResource, name: string): Record<string, unknown> {
  return { name, ...(res.group && { group: res.group }), kind: res.plural };
}

function objectStatus(code: number, res: WatchedResource, name: string, what: string, reason?: string): Status {
  return status(code, `${qualified(res)} "${name}" ${what}`, {
    ...(reason && { reason }),
    details: objectDetails(res, name),
  });
}

function invalid(res: WatchedResource, name: string, cause: string): Status {
  return status(422, `${res.kind} "${name}" is invalid: ${cause}`, {
    details: { name, ...(res.group && { group: res.group }), kind: res.kind },
  });
}

function tooLarge(rv: number, current: number): Status {
  return status(504, `Too large resource version: ${rv}, current: ${current}`, {
    details: {
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      retryAfterSeconds: 1,
    },
  });
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { ...JSON_HEADERS, ...(code === 429 && { 'Retry-After': '1' }) });
  res.end(JSON.stringify(body));
}

// ---- Query parameters ---------------------------------------------------------------------------

/** Go's query → bool conversion: absent is unset, "false" and "0" are false, anything else
 *  (even an empty ?watch) is true. */
function flag(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  return !(value === '0' || value.toLowerCase() === 'false');
}

function int(q: Query, name: string): number {
  const value = q[name];
  if (value === undefined || value === '') return 0;
  if (!/^-?\d+$/.test(value))
    throw new ApiError(status(400, `${name}: invalid value ${JSON.stringify(value)}: not an integer`));
  return Number(value);
}

function parseRv(value: string): number {
  if (!/^\d+$/.test(value)) throw new ApiError(status(400, `invalid resource version: ${JSON.stringify(value)}`));
  return Number(value);
}

function listOptionsInvalid(errors: string[]): void {
  if (errors.length === 0) return;
  throw new ApiError(
    status(422, `ListOptions.meta.k8s.io "" is invalid: ${errors.join(', ')}`, {
      details: {
        group: 'meta.k8s.io',
        kind: 'ListOptions',
        causes: errors.map((message) => ({ reason: 'FieldValueForbidden', message, field: message.split(':')[0] })),
      },
    }),
  );
}

/** apimachinery's ValidateListOptions, for a list. */
function validateListOptions(q: Query): void {
  const errors: string[] = [];
  const match = q.resourceVersionMatch;
  if (match) {
    if (!q.resourceVersion)
      errors.push(
        'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided',
      );
    if (q.continue)
      errors.push('resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided');
    if (match !== 'Exact' && match !== 'NotOlderThan')
      errors.push(`resourceVersionMatch: Unsupported value: "${match}": supported values: "Exact", "NotOlderThan", ""`);
    if (match === 'Exact' && q.resourceVersion === '0')
      errors.push('resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"');
  }
  if (q.sendInitialEvents !== undefined)
    errors.push('sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list');
  listOptionsInvalid(errors);
}

/** apimachinery's ValidateListOptions, for a watch (WatchList enabled). */
function validateWatchOptions(q: Query): void {
  const errors: string[] = [];
  const match = q.resourceVersionMatch;
  if (q.sendInitialEvents !== undefined && match !== 'NotOlderThan')
    errors.push(
      'resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
    );
  if (match) {
    if (q.sendInitialEvents === undefined)
      errors.push(
        'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided',
      );
    if (match !== 'NotOlderThan')
      errors.push(`resourceVersionMatch: Unsupported value: "${match}": supported values: "NotOlderThan"`);
  }
  listOptionsInvalid(errors);
}

// ---- Continue tokens ----------------------------------------------------------------------------

/** The apiserver's token: base64url of {"v":"meta.k8s.io/v1","rv":N,"start":"<next key>"};
 *  rv -1 means "continue at the latest revision" (handed out with a 410). */
function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  let parsed: { v?: unknown; rv?: unknown; start?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as typeof parsed;
  } catch {
    throw new ApiError(status(400, 'invalid continue token: continue key is not valid'));
  }
  if (
    parsed.v !== 'meta.k8s.io/v1' ||
    typeof parsed.rv !== 'number' ||
    parsed.rv === 0 ||
    typeof parsed.start !== 'string' ||
    parsed.start === ''
  ) {
    throw new ApiError(status(400, 'invalid continue token: continue key is not valid'));
  }
  return { rv: parsed.rv, start: parsed.start };
}

// ---- Selectors ----------------------------------------------------------------------------------

/** Namespace (from the path), label selector and field selector of a list or watch, as one test. */
function matcher(res: WatchedResource, namespace: string | undefined, q: Query): Matcher {
  const tests: Matcher[] = [];
  if (namespace !== undefined) tests.push((o) => o.metadata.namespace === namespace);
  if (q.labelSelector) tests.push(labelSelector(q.labelSelector));
  if (q.fieldSelector) tests.push(fieldSelector(res, q.fieldSelector));
  return (o) => tests.every((t) => t(o));
}

const LABEL_KEY =
  /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** labels.Parse: comma-separated requirements, all of which must hold. */
function labelSelector(selector: string): Matcher {
  const bad = (why: string): never => {
    throw new ApiError(status(400, `unable to parse requirement: labelSelector ${JSON.stringify(selector)}: ${why}`));
  };
  const terms: string[] = [];
  let depth = 0;
  let startAt = 0;
  for (let i = 0; i <= selector.length; i++) {
    const ch = selector[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if ((ch === ',' && depth === 0) || ch === undefined) {
      terms.push(selector.slice(startAt, i).trim());
      startAt = i + 1;
    }
  }
  const checkKey = (key: string): string =>
    LABEL_KEY.test(key) && key.split('/').pop()!.length <= 63 ? key : bad(`invalid label key ${JSON.stringify(key)}`);
  const checkValue = (value: string): string =>
    LABEL_VALUE.test(value) && value.length <= 63 ? value : bad(`invalid label value ${JSON.stringify(value)}`);
  const requirements = terms.map((term): Matcher => {
    let m: RegExpExecArray | null;
    if ((m = /^!\s*([^\s!=<>(),]+)$/.exec(term))) {
      const key = checkKey(m[1]!);
      return (o) => o.metadata.labels?.[key] === undefined;
    }
    if ((m = /^([^\s!=<>(),]+)\s*(==|=|!=)\s*([^\s!=<>(),]*)$/.exec(term))) {
      const key = checkKey(m[1]!);
      const value = checkValue(m[3]!);
      return m[2] === '!=' ? (o) => o.metadata.labels?.[key] !== value : (o) => o.metadata.labels?.[key] === value;
    }
    if ((m = /^([^\s!=<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(term))) {
      const key = checkKey(m[1]!);
      const values = new Set(m[3]!.split(',').map((v) => checkValue(v.trim())));
      if (m[3]!.trim() === '') bad(`for 'in', 'notin' operators, values set can't be empty`);
      if (m[2] === 'in') return (o) => values.has(o.metadata.labels?.[key] as string);
      return (o) => !values.has(o.metadata.labels?.[key] as string);
    }
    if ((m = /^([^\s!=<>(),]+)\s*([<>])\s*(-?\d+)$/.exec(term))) {
      const key = checkKey(m[1]!);
      const bound = Number(m[3]);
      const gt = m[2] === '>';
      return (o) => {
        const v = o.metadata.labels?.[key];
        return v !== undefined && /^-?\d+$/.test(v) && (gt ? Number(v) > bound : Number(v) < bound);
      };
    }
    if ((m = /^([^\s!=<>(),]+)$/.exec(term))) {
      const key = checkKey(m[1]!);
      return (o) => o.metadata.labels?.[key] !== undefined;
    }
    return bad(`cannot parse ${JSON.stringify(term)}`);
  });
  return (o) => requirements.every((r) => r(o));
}

/** Fields each kind can be selected on (a subset of the apiserver's, enough for these kinds). */
const FIELD_LABELS: Record<string, readonly string[]> = {
  Pod: ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'status.phase'],
  Node: ['metadata.name', 'spec.unschedulable'],
  Namespace: ['metadata.name', 'status.phase'],
};

function fieldValue(o: KubeObject, field: string): string {
  if (field === 'metadata.name') return o.metadata.name;
  if (field === 'metadata.namespace') return o.metadata.namespace ?? '';
  const [part, name] = field.split('.') as [string, string];
  const value = (fieldOf(o, part) as Record<string, unknown> | undefined)?.[name];
  return field === 'spec.unschedulable' ? String(value === true) : typeof value === 'string' ? value : '';
}

/** fields.ParseSelector: comma-separated `field=value`, `field==value`, `field!=value`. */
function fieldSelector(res: WatchedResource, selector: string): Matcher {
  const supported =
    FIELD_LABELS[res.kind] ?? (res.namespaced ? ['metadata.name', 'metadata.namespace'] : ['metadata.name']);
  const terms = selector.split(/(?<!\\),/);
  const requirements = terms.map((term): Matcher => {
    const m = /^(.*?)(!=|==|=)(.*)$/.exec(term);
    if (!m || m[1] === '')
      throw new ApiError(status(400, `invalid selector: '${selector}'; can't understand '${term}'`));
    const field = m[1]!.trim();
    if (!supported.includes(field)) throw new ApiError(status(400, `field label not supported: ${field}`));
    const value = m[3]!.replace(/\\(.)/g, '$1');
    return m[2] === '!=' ? (o) => fieldValue(o, field) !== value : (o) => fieldValue(o, field) === value;
  });
  return (o) => requirements.every((r) => r(o));
}
