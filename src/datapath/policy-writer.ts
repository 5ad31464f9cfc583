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
import type { CompiledEndpoint, IpcacheValue } from '../state/policy-compiler.js';

export interface PolicyWriteStats {
  ipcache: number;
  entries: number;
  written: number;
  deleted: number;
  ms: number;
}

type View = Map<string, string>; // key bytes (hex) → value bytes (hex)

/** What to write: the whole ipcache (diffed against the kernel) or what changed in it; and,
 *  when the endpoints' policy was recompiled, all of it (diffed against the kernel). */
export interface PolicyWrite {
  ipcache: { all: ReadonlyMap<string, IpcacheValue> } | { upserts: readonly [string, IpcacheValue][]; removes: readonly string[] };
  endpoints?: ReadonlyMap<number, Pick<CompiledEndpoint, 'id' | 'entries'>>;
}

export class PolicyWriter {
  private ipcacheView: View = new Map();
  private policyView: View = new Map();

  constructor(
    private readonly ipcache: RawMap,
    private readonly policy: RawMap,
  ) {
    this.reload();
  }

  /** Reads what the kernel holds (after a failed write, the views may be behind). */
  reload(): void {
    this.ipcacheView = readView(this.ipcache);
    this.policyView = readView(this.policy);
  }

  get size(): { ipcache: number; entries: number } {
    return { ipcache: this.ipcacheView.size, entries: this.policyView.size };
  }

  /** Makes the maps hold `w`; `setFlags` applies the endpoints' isolation (step 3). */
  write(w: PolicyWrite, setFlags: () => void): PolicyWriteStats {
    const t0 = performance.now();
    const encodeIpcache = (prefix: string, v: IpcacheValue): [string, string] => [hex(encode(ipcacheKey, { prefix })), hex(encode(ipcacheValue, v))];
    let ipcacheUp: [string, string][];
    let ipcacheGone: string[];
    if ('all' in w.ipcache) {
      const want: View = new Map();
      for (const [prefix, v] of w.ipcache.all) want.set(...encodeIpcache(prefix, v));
      ipcacheUp = changed(want, this.ipcacheView);
      ipcacheGone = gone(want, this.ipcacheView);
    } else {
      ipcacheUp = w.ipcache.upserts.map(([prefix, v]) => encodeIpcache(prefix, v)).filter(([k, v]) => this.ipcacheView.get(k) !== v);
      ipcacheGone = w.ipcache.removes.map((prefix) => hex(encode(ipcacheKey, { prefix }))).filter((k) => this.ipcacheView.has(k));
    }
    let policyUp: [string, string][] = [];
    let policyGone: string[] = [];
    if (w.endpoints) {
      const want: View = new Map();
      for (const ep of w.endpoints.values()) {
        for (const [e, ruleId] of ep.entries.values()) {
          const key = encode(policyKey, { endpointId: ep.id, identity: e.identity, direction: e.direction === 'ingress' ? 1 : 0, proto: e.proto, port: e.port, portBits: e.portBits });
          want.set(hex(key), hex(encode(policyValue, { ruleId })));
        }
      }
      policyUp = changed(want, this.policyView);
      policyGone = gone(want, this.policyView);
    }

    upsert(this.policy, this.policyView, policyUp);
    upsert(this.ipcache, this.ipcacheView, ipcacheUp);
    setFlags();
    remove(this.ipcache, this.ipcacheView, ipcacheGone);
    remove(this.policy, this.policyView, policyGone);
    return {
      ipcache: this.ipcacheView.size,
      entries: this.policyView.size,
      written: policyUp.length + ipcacheUp.length,
      deleted: policyGone.length + ipcacheGone.length,
      ms: performance.now() - t0,
    };
  }
}

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
    map.updateBatch(Buffer.from(chunk.map(([k]) => k).join(''), 'hex'), Buffer.from(chunk.map(([, v]) => v).join(''), 'hex'));
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
