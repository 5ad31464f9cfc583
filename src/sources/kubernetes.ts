// The Kubernetes source: one @kubernetes/client-node ListWatch per resource type, feeding the
// store with validated, slimmed objects. The informer's cache holds those same objects, so a
// cluster's state is held once. Lists are paginated; watches resume from their resourceVersion,
// re-list on 410 Gone (ListWatch does both), and errors back off and retry (which ListWatch
// leaves to its user). Resources behind a CRD (Gateway API routes) are watched while the CRD
// exists: it may be installed or removed at any time.
// The library's modules one by one, not its index: see client-node/slim.ts.
import { ListWatch } from '@kubernetes/client-node/dist/cache.js';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import { fetch } from 'undici';
import type { InformerState, SourceProblem } from '../contract/agent-api.js';
import type { Logger } from '../lib/log.js';
import { resourceKey, type Resource } from '../state/resources.js';
import type { ResourceStore } from '../state/store.js';
import { validateResource } from '../state/validate.js';
import {
  CRD_RESOURCE,
  WATCHED_RESOURCES,
  apiVersionOf,
  collectionPath,
  type WatchedResource,
} from './kubernetes-resources.js';

export interface KubernetesSourceOptions {
  /** Items per list page (client-go's reflector uses 500). */
  pageSize?: number;
  backoffMs?: { initial: number; max: number };
  /** A watch silent this long is reopened from its resourceVersion (bookmarks keep a healthy one talking). */
  watchIdleMs?: number;
  /** Watched resources (default WATCHED_RESOURCES). */
  resources?: readonly WatchedResource[];
}

type Raw = Record<string, unknown> & { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };
interface CachedObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}
/** kubeconfig from --kubeconfig, else $KUBECONFIG, else the pod's service account. */
export function loadKubeConfig(file: string | undefined, env = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else if (env.KUBECONFIG) kc.loadFromDefault();
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else
      throw new Error(
        'no kubeconfig: pass --kubeconfig FILE or set KUBECONFIG (in a pod, the service account is used)',
      );
  } catch (err) {
    const what = file ? `--kubeconfig ${file}` : env.KUBECONFIG ? `KUBECONFIG=${env.KUBECONFIG}` : 'in-cluster config';
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server)
    throw new Error(`${file ?? env.KUBECONFIG ?? 'in-cluster config'}: no current cluster with a server address`);
  return kc;
}

/** One resource type's informer. */
class ResourceInformer {
  private readonly lw: ListWatch<CachedObject>;
  private readonly watch: Watch;
  private readonly origin: string;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private listedOnce = false;
  private markSynced!: () => void;
  /** Resolves once the first list is in the store. */
  readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));
  readonly problems = new Map<string, SourceProblem>();
  state: InformerState;

  constructor(
    private readonly kc: KubeConfig,
    readonly res: WatchedResource,
    private readonly sink: { put(r: CachedObject): void; remove(r: CachedObject): void } | undefined,
    private readonly log: Logger,
    private readonly opts: Required<Omit<KubernetesSourceOptions, 'resources'>> & { fieldSelector?: string },
  ) {
    this.origin = `kubernetes/${res.plural}`;
    const name = opts.fieldSelector
      ? `${res.plural}/${opts.fieldSelector.replace(/^metadata\.name=/, '')}`
      : res.plural;
    this.state = { resource: name, synced: false, objects: 0, resourceVersion: '', errors: 0 };
    this.watch = new Watch(kc);
    (this.watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = opts.watchIdleMs;
    // ListWatch calls watch() right after it has applied a list: that is when the store holds
    // a complete view. Every event passes through accept() before ListWatch caches it.
    const watch = Object.assign(Object.create(this.watch) as Watch, {
      watch: (
        path: string,
        params: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, obj: unknown, w?: unknown) => void,
        done: (err: unknown) => void,
      ) => {
        this.listApplied();
        // The apiserver ends a watch after timeoutSeconds; client-go picks 5 to 10 minutes so
        // that a fleet of agents does not reconnect in lockstep.
        const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
        return this.watch.watch(
          path,
          { ...params, allowWatchBookmarks: true, timeoutSeconds, ...this.selector() },
          (phase, obj, w) => this.onEvent(phase, obj as Raw, cb, w),
          done,
        );
      },
    });
    this.lw = new ListWatch<CachedObject>(
      collectionPath(res),
      watch,
      () => this.listAll(),
      false,
      undefined,
      opts.fieldSelector,
    );
    this.lw.on('add', (o) => this.sink?.put(o));
    this.lw.on('update', (o) => this.sink?.put(o));
    this.lw.on('delete', (o) => this.sink?.remove(o));
    this.lw.on('error', (err) => this.onError(err));
  }

  get originName(): string {
    return this.origin;
  }

  start(): void {
    this.stopped = false;
    void this.lw.start();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    void this.lw.stop();
    this.markSynced(); // nobody should wait for an informer that was stopped
  }

  /** The informer's cache: what the store holds of this resource. */
  cached(): readonly CachedObject[] {
    return this.lw.list();
  }

  private selector(): Record<string, string> {
    return this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {};
  }

  private listApplied(): void {
    this.state.resourceVersion = this.lw.latestResourceVersion();
    this.state.objects = this.lw.list().length;
    if (this.listedOnce) return;
    this.listedOnce = true;
    this.state.synced = true;
    this.markSynced();
  }

  /** A page-by-page list of the whole collection at one resourceVersion. */
  private async listAll(): Promise<{ metadata: { resourceVersion: string }; items: CachedObject[] }> {
    const items: CachedObject[] = [];
    let resourceVersion: string | undefined;
    let cont: string | undefined;
    const listed = new Set<string>();
    do {
      const q = new URLSearchParams({
        limit: String(this.opts.pageSize),
        ...this.selector(),
        ...(cont && { continue: cont }),
      });
      const page = (await this.get(`${collectionPath(this.res)}?${q}`)) as {
        metadata?: { resourceVersion?: string; continue?: string };
        items?: Raw[] | null;
      };
      // Every page of one list is served at the first page's resourceVersion.
      resourceVersion ??= page.metadata?.resourceVersion ?? '';
      for (const raw of page.items ?? []) {
        listed.add(this.keyOf(raw));
        const obj = this.accept(raw) ?? this.lastGood(raw);
        if (obj) items.push(obj);
      }
      cont = page.metadata?.continue || undefined;
    } while (cont);
    // A rejected object that is gone takes its problem with it.
    for (const key of this.problems.keys()) if (!listed.has(key)) this.problems.delete(key);
    this.failures = 0;
    this.log.debug('listed', { resource: this.res.plural, objects: items.length, resource_version: resourceVersion });
    return { metadata: { resourceVersion }, items };
  }

  private async get(path: string): Promise<unknown> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = `${cluster.server.replace(/\/$/, '')}${path}`;
    const ctx = new RequestContext(url, HttpMethod.GET);
    await this.kc.applySecurityAuthentication(ctx);
    ctx.setHeaderParam('Accept', 'application/json');
    const res = await fetch(url, {
      headers: ctx.getHeaders(),
      dispatcher: ctx.getDispatcher(),
      signal: AbortSignal.timeout(60_000),
    });
    const body = (await res.json().catch(() => undefined)) as { message?: string } | undefined;
    if (res.status !== 200) {
      const err = new Error(`list ${path}: HTTP ${res.status}${body?.message ? `: ${body.message}` : ''}`) as Error & {
        statusCode: number;
      };
      err.statusCode = res.status;
      throw err;
    }
    return body;
  }

  /** Watch events, checked before ListWatch caches them. */
  private onEvent(phase: string, raw: Raw, cb: (phase: string, obj: unknown, w?: unknown) => void, w: unknown): void {
    this.failures = 0;
    if (phase === 'ADDED' || phase === 'MODIFIED') {
      const obj = this.accept(raw);
      // An object that fails validation keeps its last good version: ListWatch only learns
      // the resourceVersion, as from a bookmark.
      if (obj) cb(phase, obj, w);
      else cb('BOOKMARK', { metadata: { resourceVersion: raw.metadata?.resourceVersion } }, w);
    } else if (phase === 'DELETED') {
      this.problems.delete(this.keyOf(raw));
      const m = raw.metadata ?? {};
      cb(
        phase,
        {
          kind: this.res.kind,
          metadata: {
            name: m.name,
            namespace: this.res.namespaced ? m.namespace : '',
            resourceVersion: m.resourceVersion,
          },
        },
        w,
      );
    } else {
      cb(phase, raw, w);
    }
    this.state.resourceVersion = this.lw.latestResourceVersion();
  }

  /** A raw object (list items carry no kind or apiVersion) → the validated resource, or undefined. */
  private accept(raw: Raw): CachedObject | undefined {
    if (this.res === CRD_RESOURCE) return slimCrd(raw);
    const result = validateResource({ ...raw, apiVersion: apiVersionOf(this.res), kind: this.res.kind });
    const key = this.keyOf(raw);
    if (result.ok === true) {
      if (this.problems.delete(key)) this.log.info('object fixed', { object: key });
      return result.value;
    }
    const errors = result.ok === false ? result.errors : [`unsupported kind ${result.kind}`];
    this.problems.set(key, { file: this.origin, object: key, errors });
    for (const error of errors)
      this.log.error('invalid object; its last good version stays in force', {
        object: key,
        error,
        resource_version: raw.metadata?.resourceVersion,
      });
    return undefined;
  }

  private keyOf(raw: Raw): string {
    return resourceKey({
      kind: this.res.kind,
      metadata: {
        namespace: this.res.namespaced ? (raw.metadata?.namespace ?? '') : '',
        name: raw.metadata?.name ?? '',
      },
    });
  }

  private lastGood(raw: Raw): CachedObject | undefined {
    const m = raw.metadata ?? {};
    return this.lw.get(m.name ?? '', this.res.namespaced ? m.namespace : '');
  }

  private onError(err: unknown): void {
    if (this.stopped) return;
    const { initial, max } = this.opts.backoffMs;
    const delay = Math.min(max, initial * 2 ** this.failures++) * (0.8 + Math.random() * 0.4);
    const message = (err as Error)?.message ?? String(err);
    this.state.lastError = message;
    this.state.errors++;
    this.log.warn('list/watch failed; retrying', {
      resource: this.state.resource,
      error: message,
      retry_ms: Math.round(delay),
    });
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.stopped || this.start(), delay);
  }
}

/** A CRD only matters for whether its resource is served. */
function slimCrd(raw: Raw): CachedObject {
  const spec = (raw.spec ?? {}) as { versions?: { name?: string; served?: boolean }[] };
  const status = (raw.status ?? {}) as { conditions?: { type?: string; status?: string }[] };
  const established = status.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
  const m = raw.metadata ?? {};
  return {
    metadata: { name: m.name ?? '', resourceVersion: m.resourceVersion ?? '' },
    served: established && (spec.versions ?? []).some((v) => v.served),
  } as CachedObject;
}

export class KubernetesSource {
  private readonly informers = new Map<string, ResourceInformer>();
  private readonly crdWatchers: ResourceInformer[] = [];
  private readonly opts: Required<Omit<KubernetesSourceOptions, 'resources'>>;
  private readonly resources: readonly WatchedResource[];
  private ready = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly store: ResourceStore,
    private readonly log: Logger,
    opts: KubernetesSourceOptions = {},
  ) {
    this.opts = {
      pageSize: opts.pageSize ?? 500,
      backoffMs: opts.backoffMs ?? { initial: 500, max: 30_000 },
      watchIdleMs: opts.watchIdleMs ?? 120_000,
    };
    this.resources = opts.resources ?? WATCHED_RESOURCES;
  }

  /** Resolves when every resource that is served has been listed into the store: only then is
   *  the store a complete view that may drive deletions in the datapath. */
  async start(): Promise<void> {
    const server = this.kc.getCurrentCluster()?.server;
    this.log.info('watching the Kubernetes API', { server, resources: this.resources.map((r) => r.plural).join(',') });
    for (const res of this.resources) {
      if (res.crd) this.watchCrd(res);
      else this.startInformer(res);
    }
    // CRD informers start their resource's informer while applying their first list, before
    // they count as synced: waiting on them first, then on everything, covers both.
    await Promise.all(this.crdWatchers.map((w) => w.synced));
    await Promise.all([...this.informers.values()].map((i) => i.synced));
    this.ready = true;
    this.log.info(
      'Kubernetes source synced',
      Object.fromEntries([...this.informers.values()].map((i) => [i.res.plural, i.state.objects])),
    );
  }

  get synced(): boolean {
    return this.ready;
  }

  stop(): void {
    for (const i of [...this.informers.values(), ...this.crdWatchers]) i.stop();
  }

  get problems(): ReadonlyMap<string, SourceProblem[]> {
    const out = new Map<string, SourceProblem[]>();
    for (const i of this.informers.values()) for (const [k, p] of i.problems) out.set(k, [p]);
    return out;
  }

  informerStates(): InformerState[] {
    return [...this.crdWatchers, ...this.informers.values()].map((i) => ({ ...i.state, objects: i.cached().length }));
  }

  private startInformer(res: WatchedResource): ResourceInformer {
    const origin = `kubernetes/${res.plural}`;
    const sink = {
      put: (r: CachedObject) => this.store.put(origin, r as Resource),
      remove: (r: CachedObject) => this.store.remove(origin, { kind: res.kind, metadata: r.metadata } as Resource),
    };
    const informer = new ResourceInformer(this.kc, res, sink, this.log, this.opts);
    this.informers.set(res.plural, informer);
    informer.start();
    return informer;
  }

  private watchCrd(res: WatchedResource): void {
    let crd: ResourceInformer | undefined = undefined;
    const reconcile = () => {
      const served = crd?.cached().some((o) => (o as unknown as { served: boolean }).served) ?? false;
      const running = this.informers.get(res.plural);
      if (served && !running) {
        this.log.info('CRD installed; watching its resource', { crd: res.crd });
        this.startInformer(res);
      } else if (!served && running) {
        this.log.info('CRD removed; forgetting its resource', { crd: res.crd });
        running.stop();
        this.informers.delete(res.plural);
        this.store.removeOrigin(running.originName);
      }
    };
    // ListWatch calls these after updating its cache, so list() already shows the change.
    crd = new ResourceInformer(this.kc, CRD_RESOURCE, { put: reconcile, remove: reconcile }, this.log, {
      ...this.opts,
      fieldSelector: `metadata.name=${res.crd}`,
    });
    this.crdWatchers.push(crd);
    crd.start();
  }
}
