// Writes load-balancer frontends into lb_services and lb_backends by difference: it keeps a view
// of what the kernel holds, computes the entries that must change, and applies them in an
// order that never lets a connect see a half-written service:
//   1. backend slots (new ones, and slots whose backend changed)
//   2. services (new ones, and changed counts)
//   3. removed services
//   4. slots no longer referenced
// Service ids freed by a sync are reused only by a later one, so a slot is never rewritten
// for a new service while the old one can still read it.
import type { SyncStats } from '../contract/agent-api.js';
import { encode, encodeMany } from './codec.js';
import type { RawMap } from './libbpf.js';
import {
  lbBackendKey,
  lbBackendValue,
  lbServiceKey,
  lbServiceValue,
  type BackendKey,
  type ServiceValue,
} from './lb-codecs.js';
import type { Frontend, L4Addr } from '../state/services.js';

const hex = (b: Buffer) => b.toString('hex');
const addrText = (a: L4Addr) => `${a.ip}|${a.port}`;

interface ServiceEntry {
  id: number;
  /** LB_SERVICE_F_* */
  flags: number;
  /** slot (1-based) → backend, as the kernel holds them. */
  slots: L4Addr[];
}

export class LbWriter {
  /** service key (hex) → what the kernel holds for it. */
  private view = new Map<string, ServiceEntry>();
  private freeIds: number[] = [];
  private nextId = 1;
  private orphanSlots: { serviceId: number; slot: number }[] = [];
  /** The Frontend object each service key was last written from: the same object again means
   *  nothing to do (compilers hand back the same object for an unchanged service). */
  private writtenFrom = new Map<string, Frontend>();
  private readonly keyHex = new WeakMap<Frontend, string>();
  /** Backend slots the view holds, kept with it so a small update need not count them. */
  private backendCount = 0;

  constructor(
    private readonly services: RawMap,
    private readonly backends: RawMap,
    private readonly limits = { services: Infinity, backends: Infinity },
  ) {
    this.adopt();
  }

  /** Reads what the kernel holds: at start (a restart adopts the previous agent's state) and
   *  after a failed write, so the next diff starts from the truth. */
  private adopt(): void {
    this.view.clear();
    this.writtenFrom.clear();
    const slotsById = new Map<number, Map<number, L4Addr>>();
    for (const [k, v] of this.backends.entries()) {
      const key = lbBackendKey.decode(k);
      let m = slotsById.get(key.serviceId);
      if (!m) slotsById.set(key.serviceId, (m = new Map<number, L4Addr>()));
      m.set(key.slot, lbBackendValue.decode(v));
    }
    const byId = new Map<number, ServiceEntry>();
    for (const [k, v] of this.services.entries()) {
      const val = lbServiceValue.decode(v);
      const slots: L4Addr[] = [];
      const held = slotsById.get(val.serviceId);
      for (let s = 1; s <= val.backendCount; s++) {
        const b = held?.get(s);
        if (!b) break; // a hole: the slots after it count as unwritten and are rewritten
        slots.push(b);
      }
      const entry = { id: val.serviceId, flags: val.flags, slots };
      this.view.set(hex(k), entry);
      byId.set(val.serviceId, entry);
    }
    // Slots no service reaches (left by a crash mid-sync) are deleted by the next sync.
    this.orphanSlots = [];
    for (const [id, held] of slotsById) {
      const reached = byId.get(id)?.slots.length ?? 0;
      for (const slot of held.keys()) if (slot > reached) this.orphanSlots.push({ serviceId: id, slot });
    }
    this.nextId = Math.max(0, ...byId.keys(), ...slotsById.keys()) + 1;
    this.freeIds = [];
    this.backendCount = [...this.view.values()].reduce((n, e) => n + e.slots.length, 0);
  }

  get size(): { services: number; backends: number } {
    return { services: this.view.size, backends: this.backendCount };
  }

  /** Makes the maps hold exactly `frontends`. Throws without writing anything when the result
   *  would not fit; after a failed write, re-reads the kernel's state and rethrows. */
  sync(frontends: readonly Frontend[]): SyncStats {
    const keep = new Set<string>();
    for (const f of frontends) keep.add(this.hexKey(f));
    const removes = [...this.view.keys()].filter((k) => !keep.has(k));
    return this.write(frontends, removes);
  }

  /** Writes only what changed: frontends to add or rewrite, and frontends to remove. */
  update(upserts: readonly Frontend[], removes: readonly Frontend[]): SyncStats {
    return this.write(
      upserts,
      removes.map((f) => this.hexKey(f)),
    );
  }

  private hexKey(f: Frontend): string {
    let k = this.keyHex.get(f);
    if (k === undefined) this.keyHex.set(f, (k = hex(encode(lbServiceKey, f.key))));
    return k;
  }

  private write(upserts: readonly Frontend[], removes: readonly string[]): SyncStats {
    const t0 = performance.now();
    const slotKeys: BackendKey[] = [];
    const slotVals: L4Addr[] = [];
    const svcKeys: Buffer[] = [];
    const svcVals: ServiceValue[] = [];
    const changed = new Map<string, { entry: ServiceEntry; from: Frontend }>();
    const staleSlots = [...this.orphanSlots];
    let services = this.view.size;
    let backends = this.backendCount;

    // One entry a key, the last given winning: a batch may name a frontend more than once.
    const byKey = new Map<string, Frontend>();
    for (const f of upserts) byKey.set(this.hexKey(f), f);
    for (const [k, f] of byKey) {
      const old = this.view.get(k);
      if (old && this.writtenFrom.get(k) === f) continue;
      const id = old?.id ?? this.allocateId();
      const slots = placeBackends(old?.slots ?? [], f.backends);
      slots.forEach((b, i) => {
        const before = old?.slots[i];
        if (!before || addrText(before) !== addrText(b) || before.family !== b.family) {
          slotKeys.push({ serviceId: id, slot: i + 1 });
          slotVals.push(b);
        }
      });
      const flags = f.flags ?? 0;
      if (!old || old.slots.length !== slots.length || old.flags !== flags) {
        svcKeys.push(Buffer.from(k, 'hex'));
        svcVals.push({ serviceId: id, backendCount: slots.length, flags });
      }
      for (let s = slots.length + 1; s <= (old?.slots.length ?? 0); s++) staleSlots.push({ serviceId: id, slot: s });
      if (!old) services++;
      backends += slots.length - (old?.slots.length ?? 0);
      changed.set(k, { entry: { id, flags, slots }, from: f });
    }
    const gone: { key: string; entry: ServiceEntry }[] = [];
    for (const k of new Set(removes)) {
      const e = this.view.get(k);
      if (!e || byKey.has(k)) continue;
      gone.push({ key: k, entry: e });
      e.slots.forEach((_, i) => staleSlots.push({ serviceId: e.id, slot: i + 1 }));
      services--;
      backends -= e.slots.length;
    }
    const newIds = [...changed.values()].filter((c) => !this.view.has(this.hexKey(c.from))).map((c) => c.entry.id);
    if (services > this.limits.services || backends > this.limits.backends) {
      this.freeIds.push(...newIds); // nothing was written: the ids are free again
      const what =
        services > this.limits.services
          ? `${services} service frontends do not fit in lb_services (max ${this.limits.services})`
          : `${backends} backends do not fit in lb_backends (max ${this.limits.backends})`;
      throw new Error(`${what}; nothing written`);
    }

    try {
      this.backends.updateBatch(encodeMany(lbBackendKey, slotKeys), encodeMany(lbBackendValue, slotVals));
      this.services.updateBatch(Buffer.concat(svcKeys), encodeMany(lbServiceValue, svcVals));
      this.services.deleteBatch(Buffer.concat(gone.map((g) => Buffer.from(g.key, 'hex'))));
      this.backends.deleteBatch(encodeMany(lbBackendKey, staleSlots));
    } catch (err) {
      this.adopt();
      throw err;
    }
    for (const [k, c] of changed) {
      this.view.set(k, c.entry);
      this.writtenFrom.set(k, c.from);
    }
    for (const g of gone) {
      this.view.delete(g.key);
      this.writtenFrom.delete(g.key);
    }
    this.orphanSlots = [];
    this.backendCount = backends;
    // Ids freed now are reused only by a later write, never for a service in this one.
    this.freeIds.push(...gone.map((g) => g.entry.id));
    return {
      services,
      backends,
      written: slotKeys.length + svcKeys.length,
      deleted: gone.length + staleSlots.length,
      ms: performance.now() - t0,
    };
  }

  private allocateId(): number {
    return this.freeIds.pop() ?? this.nextId++;
  }
}

/** Assigns backends to slots, keeping every backend that stays where it is (so an endpoint
 *  change rewrites one slot, not the whole service) and filling holes with the newcomers. */
export function placeBackends(current: readonly L4Addr[], desired: readonly L4Addr[]): L4Addr[] {
  const want = new Map(desired.map((b) => [addrText(b), b]));
  const slots = new Array<L4Addr | undefined>(desired.length).fill(undefined);
  current.forEach((b, i) => {
    if (i < slots.length && want.has(addrText(b))) {
      slots[i] = want.get(addrText(b));
      want.delete(addrText(b));
    }
  });
  const rest = want.values();
  return slots.map((s) => s ?? (rest.next().value as L4Addr));
}
