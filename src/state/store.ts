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

  /** Replaces everything one origin holds. */
  replaceOrigin(origin: string, resources: Iterable<Resource>): void {
    const next = new Map<Kind, Objects>();
    for (const r of resources) {
      let objs = next.get(r.kind);
      if (!objs) next.set(r.kind, (objs = new Map()));
      objs.set(resourceKey(r), r);
    }
    const changed = new Set<Kind>([...(this.byOrigin.get(origin)?.keys() ?? []), ...next.keys()]);
    this.byOrigin.set(origin, next);
    this.changed(changed);
  }

  removeOrigin(origin: string): void {
    const held = this.byOrigin.get(origin);
    if (!held) return;
    this.byOrigin.delete(origin);
    this.changed(new Set(held.keys()));
  }

  /** Adds or replaces one object of an origin. */
  put(origin: string, r: Resource): void {
    this.objectsOf(origin, r.kind).set(resourceKey(r), r);
    this.changed(new Set([r.kind]));
  }

  /** Removes one object of an origin, by kind/namespace/name. */
  remove(origin: string, r: Pick<Resource, 'kind' | 'metadata'>): void {
    if (this.byOrigin.get(origin)?.get(r.kind)?.delete(resourceKey(r))) this.changed(new Set([r.kind]));
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
      for (const origin of [...this.byOrigin.keys()].sort()) {
        for (const [k, r] of this.byOrigin.get(origin)?.get(kind) ?? []) if (!seen.has(k)) seen.set(k, r);
      }
      this.views.set(kind, (view = [...seen.values()]));
    }
    return view as OfKind<K>[];
  }

  get<K extends Kind>(kind: K, namespace: string, name: string): OfKind<K> | undefined {
    const key = resourceKey({ kind, metadata: { namespace, name } });
    for (const origin of [...this.byOrigin.keys()].sort()) {
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

  private objectsOf(origin: string, kind: Kind): Objects {
    let held = this.byOrigin.get(origin);
    if (!held) this.byOrigin.set(origin, (held = new Map()));
    let objs = held.get(kind);
    if (!objs) held.set(kind, (objs = new Map()));
    return objs;
  }

  private changed(kinds: Set<Kind>): void {
    if (kinds.size === 0) return;
    for (const k of kinds) this.views.delete(k);
    this.emit('change', kinds);
  }
}
