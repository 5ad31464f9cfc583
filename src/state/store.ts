// The resource store: the typed objects every source feeds, grouped by origin (a file in local
// mode, a resource type in Kubernetes mode), with one change signal naming the kinds that
// changed, for whoever compiles desired state from them.
import { EventEmitter } from 'node:events';
import { resourceKey, type EndpointSlice, type Resource, type Service } from './resources.js';

type Kind = Resource['kind'];
type OfKind<K extends Kind> = Extract<Resource, { kind: K }>;
type Objects = Map<string, Resource>;

export class ResourceStore extends EventEmitter<{ change: [kinds: ReadonlySet<Kind>] }> {
  /** origin → kind → key → object. */
  private byOrigin = new Map<string, Map<Kind, Objects>>();
  /** Merged view of each kind over all origins, rebuilt only after that kind changed. */
  private views = new Map<Kind, Resource[]>();
  /** Keys changed since their kind's last takeChanged(), for consumers that work by difference. */
  private changedKeys = new Map<Kind, Set<string>>();
  private sortedOrigins: string[] | undefined;

  /** Replaces everything one origin holds. */
  replaceOrigin(origin: string, resources: Iterable<Resource>): void {
    const next = new Map<Kind, Objects>();
    for (const r of resources) {
      let objs = next.get(r.kind);
      if (!objs) next.set(r.kind, (objs = new Map<string, Resource>()));
      objs.set(resourceKey(r), r);
    }
    const old = this.byOrigin.get(origin);
    const changed = new Set<Kind>([...(old?.keys() ?? []), ...next.keys()]);
    for (const kind of changed) {
      for (const key of old?.get(kind)?.keys() ?? []) this.mark(kind, key);
      for (const key of next.get(kind)?.keys() ?? []) this.mark(kind, key);
    }
    if (!old) this.sortedOrigins = undefined;
    this.byOrigin.set(origin, next);
    this.changed(changed);
  }

  removeOrigin(origin: string): void {
    const held = this.byOrigin.get(origin);
    if (!held) return;
    this.byOrigin.delete(origin);
    this.sortedOrigins = undefined;
    for (const [kind, objs] of held) for (const key of objs.keys()) this.mark(kind, key);
    this.changed(new Set(held.keys()));
  }

  /** Adds or replaces one object of an origin. */
  put(origin: string, r: Resource): void {
    const key = resourceKey(r);
    this.objectsOf(origin, r.kind).set(key, r);
    this.mark(r.kind, key);
    this.changed(new Set([r.kind]));
  }

  /** Removes one object of an origin, by kind/namespace/name. */
  remove(origin: string, r: Pick<Resource, 'kind' | 'metadata'>): void {
    const key = resourceKey(r);
    if (!this.byOrigin.get(origin)?.get(r.kind)?.delete(key)) return;
    this.mark(r.kind, key);
    this.changed(new Set([r.kind]));
  }

  /** The objects of a kind added, changed or removed since the last call, as [namespace, name]. */
  takeChanged(kind: Kind): [namespace: string, name: string][] {
    const keys = this.changedKeys.get(kind);
    this.changedKeys.delete(kind);
    return [...(keys ?? [])].map((k) => {
      const [, namespace = '', name = ''] = k.split('/');
      return [namespace, name];
    });
  }

  originResources(origin: string): ReadonlyMap<string, Resource> | undefined {
    const held = this.byOrigin.get(origin);
    if (!held) return undefined;
    return new Map([...held.values()].flatMap((objs) => [...objs]));
  }

  /** All objects of a kind; when two origins hold the same object, the first origin in name order wins. */
  ofKind<K extends Kind>(kind: K): readonly OfKind<K>[] {
    let view = this.views.get(kind);
    if (!view) {
      const seen = new Map<string, Resource>();
      for (const origin of this.origins()) {
        for (const [k, r] of this.byOrigin.get(origin)?.get(kind) ?? []) if (!seen.has(k)) seen.set(k, r);
      }
      this.views.set(kind, (view = [...seen.values()]));
    }
    return view as OfKind<K>[];
  }

  get<K extends Kind>(kind: K, namespace: string, name: string): OfKind<K> | undefined {
    const key = resourceKey({ kind, metadata: { namespace, name } });
    for (const origin of this.origins()) {
      const r = this.byOrigin.get(origin)?.get(kind)?.get(key);
      if (r) return r as OfKind<K>;
    }
    return undefined;
  }

  all(): Resource[] {
    const kinds = new Set([...this.byOrigin.values()].flatMap((m) => [...m.keys()]));
    return [...kinds].sort().flatMap((k) => this.ofKind(k));
  }

  services(): readonly Service[] {
    return this.ofKind('Service');
  }

  endpointSlices(): readonly EndpointSlice[] {
    return this.ofKind('EndpointSlice');
  }

  private origins(): string[] {
    return (this.sortedOrigins ??= [...this.byOrigin.keys()].sort());
  }

  private mark(kind: Kind, key: string): void {
    let keys = this.changedKeys.get(kind);
    if (!keys) this.changedKeys.set(kind, (keys = new Set()));
    keys.add(key);
  }

  private objectsOf(origin: string, kind: Kind): Objects {
    let held = this.byOrigin.get(origin);
    if (!held) {
      this.byOrigin.set(origin, (held = new Map<Kind, Objects>()));
      this.sortedOrigins = undefined;
    }
    let objs = held.get(kind);
    if (!objs) held.set(kind, (objs = new Map<string, Resource>()));
    return objs;
  }

  private changed(kinds: Set<Kind>): void {
    if (kinds.size === 0) return;
    for (const k of kinds) this.views.delete(k);
    this.emit('change', kinds);
  }
}
