// The resource store: the typed objects every source feeds, grouped by origin (a file in local
// mode), with one change signal for whoever compiles desired state from them.
import { EventEmitter } from 'node:events';
import { resourceKey, type EndpointSlice, type Resource, type Service } from './resources.js';

export class ResourceStore extends EventEmitter<{ change: [] }> {
  private byOrigin = new Map<string, Map<string, Resource>>();

  /** Replaces everything one origin holds. */
  replaceOrigin(origin: string, resources: Iterable<Resource>): void {
    const m = new Map<string, Resource>();
    for (const r of resources) m.set(resourceKey(r), r);
    this.byOrigin.set(origin, m);
    this.emit('change');
  }

  removeOrigin(origin: string): void {
    if (this.byOrigin.delete(origin)) this.emit('change');
  }

  originResources(origin: string): ReadonlyMap<string, Resource> | undefined {
    return this.byOrigin.get(origin);
  }

  /** All resources; when two origins hold the same object, the first origin in name order wins. */
  all(): Resource[] {
    const seen = new Map<string, Resource>();
    for (const origin of [...this.byOrigin.keys()].sort()) {
      for (const [k, r] of this.byOrigin.get(origin) ?? []) if (!seen.has(k)) seen.set(k, r);
    }
    return [...seen.values()];
  }

  services(): Service[] {
    return this.all().filter((r): r is Service => r.kind === 'Service');
  }

  endpointSlices(): EndpointSlice[] {
    return this.all().filter((r): r is EndpointSlice => r.kind === 'EndpointSlice');
  }
}
