// Writes load-balancer frontends into lb_services and lb_backends by difference: it keeps a view
// of what the kernel holds, computes the entries that must change, and applies them in an
// order that never lets a connect see a half-written service:
//   1. backend slots (new ones, and slots whose backend changed)
//   2. services (new ones, and changed counts)
//   3. removed services
//   4. slots no longer referenced
// Service ids freed by a sync are reused only by a later one, so a slot is never rewritten
// for a new service while the old one can still read it.
import { encode, encodeMany } from './codec.js';
import type { RawMap } from './libbpf.js';
import {
  lbBackendKey, lbBackendValue, lbServiceKey, lbServiceValue, type BackendKey, type L4Addr, type ServiceValue,
} from './lb-codecs.js';
import type { Frontend } from '../state/services.js';

export interface SyncStats {
  services: number;
  backends: number;
  written: number;
  deleted: number;
  ms: number;
}

const hex = (b: Buffer) => b.toString('hex');
const addrText = (a: L4Addr) => `${a.ip}|${a.port}`;

interface ServiceEntry {
  id: number;
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
      if (!m) slotsById.set(key.serviceId, (m = new Map()));
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
      const entry = { id: val.serviceId, slots };
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
  }

  get size(): { services: number; backends: number } {
    let backends = 0;
    for (const e of this.view.values()) backends += e.slots.length;
    return { services: this.view.size, backends };
  }

  /** Makes the maps hold exactly `frontends`. Throws without writing anything when the result
   *  would not fit; after a failed write, re-reads the kernel's state and rethrows. */
  sync(frontends: readonly Frontend[]): SyncStats {
    const t0 = performance.now();
    const total = frontends.reduce((n, f) => n + f.backends.length, 0);
    if (frontends.length > this.limits.services) {
      throw new Error(`${frontends.length} service frontends do not fit in lb_services (max ${this.limits.services}); nothing written`);
    }
    if (total > this.limits.backends) {
      throw new Error(`${total} backends do not fit in lb_backends (max ${this.limits.backends}); nothing written`);
    }

    const slotKeys: BackendKey[] = [];
    const slotVals: L4Addr[] = [];
    const svcKeys: Buffer[] = [];
    const svcVals: ServiceValue[] = [];
    const next = new Map<string, ServiceEntry>();
    const nextFrom = new Map<string, Frontend>();
    const freed: number[] = [];
    const staleSlots = [...this.orphanSlots];

    for (const f of frontends) {
      let k = this.keyHex.get(f);
      if (k === undefined) this.keyHex.set(f, (k = hex(encode(lbServiceKey, f.key))));
      const old = this.view.get(k);
      nextFrom.set(k, f);
      if (old && this.writtenFrom.get(k) === f) {
        next.set(k, old);
        continue;
      }
      const keyBuf = Buffer.from(k, 'hex');
      const id = old?.id ?? this.allocateId();
      const slots = placeBackends(old?.slots ?? [], f.backends);
      slots.forEach((b, i) => {
        const before = old?.slots[i];
        if (!before || addrText(before) !== addrText(b) || before.family !== b.family) {
          slotKeys.push({ serviceId: id, slot: i + 1 });
          slotVals.push(b);
        }
      });
      if (!old || old.slots.length !== slots.length) {
        svcKeys.push(keyBuf);
        svcVals.push({ serviceId: id, backendCount: slots.length, flags: 0 });
      }
      for (let s = slots.length + 1; s <= (old?.slots.length ?? 0); s++) staleSlots.push({ serviceId: id, slot: s });
      next.set(k, { id, slots });
    }
    const goneSvcKeys: Buffer[] = [];
    for (const [k, e] of this.view) {
      if (next.has(k)) continue;
      goneSvcKeys.push(Buffer.from(k, 'hex'));
      e.slots.forEach((_, i) => staleSlots.push({ serviceId: e.id, slot: i + 1 }));
      freed.push(e.id);
    }

    try {
      this.backends.updateBatch(encodeMany(lbBackendKey, slotKeys), encodeMany(lbBackendValue, slotVals));
      this.services.updateBatch(Buffer.concat(svcKeys), encodeMany(lbServiceValue, svcVals));
      this.services.deleteBatch(Buffer.concat(goneSvcKeys));
      this.backends.deleteBatch(encodeMany(lbBackendKey, staleSlots));
    } catch (err) {
      this.adopt();
      throw err;
    }
    this.view = next;
    this.writtenFrom = nextFrom;
    this.orphanSlots = [];
    this.freeIds.push(...freed);
    return {
      services: next.size,
      backends: total,
      written: slotKeys.length + svcKeys.length,
      deleted: goneSvcKeys.length + staleSlots.length,
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
  const slots: (L4Addr | undefined)[] = new Array(desired.length).fill(undefined);
  current.forEach((b, i) => {
    if (i < slots.length && want.has(addrText(b))) {
      slots[i] = want.get(addrText(b));
      want.delete(addrText(b));
    }
  });
  const rest = want.values();
  return slots.map((s) => s ?? (rest.next().value as L4Addr));
}
