// Writes compiled policy (src/state/policy-compiler.ts) into the ipcache and policy maps by
// difference against what the kernel holds, in an order that never leaves a pod less
// protected than both the old and the new policy would:
//   1. new and changed allow entries, 2. new and changed ipcache entries,
//   3. isolation flags (the caller's: they live in lxc_endpoints),
//   4. ipcache entries that went, 5. allow entries that went.
// Between the steps the kernel allows at most what the old or the new policy allows. The
// view of the kernel is read once, when the writer is made (a restarted agent adopts what the
// previous one wrote), and kept in step with every write after; the ipcache may be written
// by difference the caller computed, the allow entries are diffed here.
import { encode } from './codec.js';
import type { RawMap } from './libbpf.js';
import { ipcacheKey, ipcacheValue, policyKey, policyValue } from './policy-codecs.js';
import type { IpcacheValue } from '../state/identity-table.js';
import { entryKey, type CompiledEndpoint, type PolicyEntry } from '../state/policy-compiler.js';

export interface PolicyWriteStats {
  ipcache: number;
  entries: number;
  written: number;
  deleted: number;
  ms: number;
}

type View = Map<string, string>; // key bytes (hex) → value bytes (hex)

/** What to write: the whole ipcache (diffed against the kernel) or what changed in it; and
 *  the allow entries of the endpoints whose policy was compiled anew (each diffed against
 *  what the kernel holds for it; null: the endpoint is gone, its entries go). */
export interface PolicyWrite {
  ipcache:
    | { all: ReadonlyMap<string, IpcacheValue> }
    | { upserts: readonly [string, IpcacheValue][]; removes: readonly string[] };
  endpoints?: ReadonlyMap<number, Pick<CompiledEndpoint, 'entries'> | null>;
}

export class PolicyWriter {
  private ipcacheView: View = new Map();
  /** endpoint id → entryKey → [entry, rule id]: compared as the compiler's own keys, so a
   *  diff encodes only what it writes. */
  private policyView = new Map<number, Map<string, [PolicyEntry, number]>>();

  constructor(
    private readonly ipcache: RawMap,
    private readonly policy: RawMap,
  ) {
    this.reload();
  }

  /** Reads what the kernel holds (after a failed write, the views may be behind). */
  reload(): void {
    this.ipcacheView = readView(this.ipcache);
    this.policyView = new Map();
    for (const [k, v] of this.policy.entries()) {
      const key = policyKey.decode(k);
      const e: PolicyEntry = {
        identity: key.identity,
        direction: key.direction === 1 ? 'ingress' : 'egress',
        proto: key.proto,
        port: key.port,
        portBits: key.portBits,
      };
      this.viewOf(key.endpointId).set(entryKey(e), [e, policyValue.decode(v).ruleId]);
    }
  }

  private viewOf(endpointId: number): Map<string, [PolicyEntry, number]> {
    let view = this.policyView.get(endpointId);
    if (!view) this.policyView.set(endpointId, (view = new Map<string, [PolicyEntry, number]>()));
    return view;
  }

  /** Endpoints the kernel holds entries for. */
  endpointIds(): number[] {
    return [...this.policyView.keys()];
  }

  get size(): { ipcache: number; entries: number } {
    return { ipcache: this.ipcacheView.size, entries: this.entryCount() };
  }

  private entryCount(): number {
    let n = 0;
    for (const v of this.policyView.values()) n += v.size;
    return n;
  }

  /** Makes the maps hold `w`; `setFlags` applies the endpoints' isolation (step 3). */
  write(w: PolicyWrite, setFlags: () => void): PolicyWriteStats {
    const t0 = performance.now();
    const encodeIpcache = (prefix: string, v: IpcacheValue): [string, string] => [
      hex(encode(ipcacheKey, { prefix })),
      hex(encode(ipcacheValue, v)),
    ];
    let ipcacheUp: [string, string][];
    let ipcacheGone: string[];
    if ('all' in w.ipcache) {
      const want: View = new Map();
      for (const [prefix, v] of w.ipcache.all) want.set(...encodeIpcache(prefix, v));
      ipcacheUp = changed(want, this.ipcacheView);
      ipcacheGone = gone(want, this.ipcacheView);
    } else {
      ipcacheUp = w.ipcache.upserts
        .map(([prefix, v]) => encodeIpcache(prefix, v))
        .filter(([k, v]) => this.ipcacheView.get(k) !== v);
      ipcacheGone = w.ipcache.removes
        .map((prefix) => hex(encode(ipcacheKey, { prefix })))
        .filter((k) => this.ipcacheView.has(k));
    }
    const policyUp: PolicyChange[] = [];
    const policyGone: PolicyChange[] = [];
    for (const [id, ep] of w.endpoints ?? []) {
      const want = ep?.entries ?? new Map<string, [PolicyEntry, number]>();
      const have = this.policyView.get(id) ?? new Map<string, [PolicyEntry, number]>();
      for (const [k, [e, rule]] of want) if (have.get(k)?.[1] !== rule) policyUp.push([id, k, e, rule]);
      for (const [k, [e, rule]] of have) if (!want.has(k)) policyGone.push([id, k, e, rule]);
    }

    this.upsertPolicy(policyUp);
    upsert(this.ipcache, this.ipcacheView, ipcacheUp);
    setFlags();
    remove(this.ipcache, this.ipcacheView, ipcacheGone);
    this.removePolicy(policyGone);
    return {
      ipcache: this.ipcacheView.size,
      entries: this.entryCount(),
      written: policyUp.length + ipcacheUp.length,
      deleted: policyGone.length + ipcacheGone.length,
      ms: performance.now() - t0,
    };
  }

  private upsertPolicy(changes: PolicyChange[]): void {
    for (let i = 0; i < changes.length; i += BATCH) {
      const chunk = changes.slice(i, i + BATCH);
      const keys = Buffer.alloc(chunk.length * policyKey.size);
      const values = Buffer.alloc(chunk.length * policyValue.size);
      chunk.forEach(([id, , e, rule], j) => {
        policyKey.encodeInto(policyKeyOf(id, e), keys, j * policyKey.size);
        policyValue.encodeInto({ ruleId: rule }, values, j * policyValue.size);
      });
      this.policy.updateBatch(keys, values);
      for (const [id, k, e, rule] of chunk) this.viewOf(id).set(k, [e, rule]);
    }
  }

  private removePolicy(changes: PolicyChange[]): void {
    for (let i = 0; i < changes.length; i += BATCH) {
      const chunk = changes.slice(i, i + BATCH);
      const keys = Buffer.alloc(chunk.length * policyKey.size);
      chunk.forEach(([id, , e], j) => policyKey.encodeInto(policyKeyOf(id, e), keys, j * policyKey.size));
      this.policy.deleteBatch(keys);
      for (const [id, k] of chunk) {
        const view = this.policyView.get(id);
        if (view?.delete(k) && view.size === 0) this.policyView.delete(id);
      }
    }
  }
}

/** [endpoint id, entryKey, entry, rule id]. */
type PolicyChange = [number, string, PolicyEntry, number];

const policyKeyOf = (endpointId: number, e: PolicyEntry) =>
  ({
    endpointId,
    identity: e.identity,
    direction: e.direction === 'ingress' ? 1 : 0,
    proto: e.proto,
    port: e.port,
    portBits: e.portBits,
  }) as const;

const hex = (b: Buffer) => b.toString('hex');

function readView(map: RawMap): View {
  const view: View = new Map();
  for (const [k, v] of map.entries()) view.set(hex(k), hex(v));
  return view;
}

function changed(want: View, have: View): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of want) if (have.get(k) !== v) out.push([k, v]);
  return out;
}

function gone(want: View, have: View): string[] {
  const out: string[] = [];
  for (const k of have.keys()) if (!want.has(k)) out.push(k);
  return out;
}

/** Batches bounded so one syscall never copies more than a few MB. */
const BATCH = 8192;

function upsert(map: RawMap, view: View, entries: [string, string][]): void {
  for (let i = 0; i < entries.length; i += BATCH) {
    const chunk = entries.slice(i, i + BATCH);
    map.updateBatch(
      Buffer.from(chunk.map(([k]) => k).join(''), 'hex'),
      Buffer.from(chunk.map(([, v]) => v).join(''), 'hex'),
    );
    for (const [k, v] of chunk) view.set(k, v);
  }
}

function remove(map: RawMap, view: View, keys: string[]): void {
  for (let i = 0; i < keys.length; i += BATCH) {
    const chunk = keys.slice(i, i + BATCH);
    map.deleteBatch(Buffer.from(chunk.join(''), 'hex'));
    for (const k of chunk) view.delete(k);
  }
}
