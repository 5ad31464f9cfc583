// The pod-facing TC programs of bpf/lxc.c on each pod's host-side veth: loading them, writing
// the endpoint entry they check packets against, and attaching them as clsact filters that
// outlive the agent.
//
// Attachment: lxc_from_pod on the veth's clsact ingress (what the pod sends), lxc_to_pod on its
// clsact egress (what it receives), each a direct-action cls_bpf filter with Weft's fixed handle
// and priority (LXC_TC_HANDLE, LXC_TC_PRIORITY). A filter needs no fd or pin: it lives as long
// as the device, so a veth deleted with its pod takes its filters along. (TCX links would do
// too, but creating or detaching one waits for an RCU grace period: ~12 ms each, four per pod,
// on the CNI ADD and DEL paths; a filter takes ~0.1 ms.) An ifindex names a device in the
// network namespace of the calling thread: attach from the node's namespace (the agent runs
// there). Attaching an ifindex that has the filters already replaces their programs
// atomically (BPF_TC_F_REPLACE): an agent restart re-attaches every endpoint and no packet ever
// meets a veth without a program. Which veths are attached is what lxc_endpoints holds: attach
// writes the entry before the filters, detach removes the filters before the entry. Maps are
// pinned under <bpfRoot>/maps and reused, so conntrack and counters survive restarts.
//
// Endpoints attached by an older agent as pinned TCX links (<bpfRoot>/links/lxc/<ifindex>-<hook>)
// move to filters when attached again: the filters first, then the links go.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LXC_OBJECT_CODECS, checkCodecs } from './btf-check.js';
import { encode } from './codec.js';
import {
  BPF_TC_EGRESS,
  BPF_TC_INGRESS,
  BpfError,
  BpfObject,
  RawMap,
  closeFd,
  detachLink,
  interfaceName,
  objGet,
  openPinnedMap,
  perCpuSlots,
  progFdById,
  progId,
  tcAttach,
  tcDetach,
  tcHookCreate,
  tcQuery,
  tcxLinkInfo,
  type ProgramHandle,
  type TcFilter,
} from './libbpf.js';
import {
  ctEntry,
  endpointInfo,
  endpointMetrics,
  endpointMetricsKey,
  eventsConfigValue,
  ifindexKey,
  type Direction,
  type EndpointCounters,
  type EventsLevel,
  SHARED_EVENT_MAPS,
} from './endpoint-codecs.js';
import {
  ensurePinDirs,
  pinLayout,
  lxcLinkDir,
  lxcLinkPin,
  parseLxcLinkPin,
  type PinLayout,
  type TcHook,
} from './pins.js';
import { defaultObjectDir } from './programs.js';
import { parseIp } from '../lib/ip.js';

export interface EndpointDatapathInfo {
  /** 1..2^32-1, unique on the node (0 stands for "no endpoint" in counters and events). */
  endpointId: number;
  /** The host-side veth's ifindex, in the node's network namespace. */
  ifindex: number;
  ipv4?: string;
  ipv6?: string;
  /** The host-side veth's name. When given, attach first checks that ifindex names this
   *  interface in the calling thread's network namespace, so that an agent in the wrong
   *  namespace fails instead of attaching to whatever device has that number there. */
  ifname?: string;
  /** ENDPOINT_F_* (policy isolation). Unset: what the endpoint's entry had, or none. */
  flags?: number;
}

/** The handle and priority of Weft's clsact filters on pod veths (the same on both hooks). */
export const LXC_TC_HANDLE = 0x5746; // "WF"
export const LXC_TC_PRIORITY = 1;

export const LXC_HOOKS: readonly { hook: TcHook; program: string; attachPoint: number }[] = [
  { hook: 'ingress', program: 'lxc_from_pod', attachPoint: BPF_TC_INGRESS },
  { hook: 'egress', program: 'lxc_to_pod', attachPoint: BPF_TC_EGRESS },
];
const HOOKS = LXC_HOOKS;

/** Weft's filter on one hook of a device. */
export function lxcFilter(ifindex: number, attachPoint: number): TcFilter {
  return { ifindex, attachPoint, handle: LXC_TC_HANDLE, priority: LXC_TC_PRIORITY };
}

type Undo = () => void;

/** Takes Weft's filters off every veth lxc_endpoints names, as the calling process's network
 *  namespace numbers them (the agent's: the node's). For `weft uninstall`: filters are not
 *  pinned, so removing the pins alone would leave them running. Returns the ifindexes. */
export function detachAllFilters(bpfRoot: string): number[] {
  const pin = path.join(pinLayout(bpfRoot).maps, 'lxc_endpoints');
  if (!fs.existsSync(pin)) return [];
  const endpoints = RawMap.openPinned(pin);
  try {
    const ifindexes = [...endpoints.entries()].map(([k]) => k.readUInt32LE(0));
    for (const ifindex of ifindexes) {
      for (const { hook, attachPoint } of LXC_HOOKS)
        tcDetach(lxcFilter(ifindex, attachPoint), `uninstall: ifindex ${ifindex} (tc ${hook})`);
    }
    return ifindexes;
  } finally {
    endpoints.close();
  }
}

/** How long conntrack purges of removed endpoints wait to be batched together. */
const CONNTRACK_PURGE_DELAY_MS = 1000;

export class EndpointDatapath {
  private forgotten = new Set<number>();
  private purgeTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly pins: PinLayout,
    private obj: BpfObject | null,
    private readonly programs: Map<string, ProgramHandle & { id: number }>,
    private readonly endpoints: RawMap,
    private readonly metrics: RawMap,
    private readonly conntrack: RawMap,
    /** The policy maps (bpf/include/policy.h), written by PolicyWriter. */
    readonly ipcache: RawMap,
    readonly policy: RawMap,
    private readonly eventsConfig: RawMap,
  ) {}

  /** Loads lxc.o (from objectDir, build/bpf by default), with its maps pinned under
   *  <bpfRoot>/maps, reusing the ones a previous agent pinned. Attaches nothing. Refuses
   *  (CodecMismatchError) an object whose BTF disagrees with the codecs, before it is loaded. */
  static open(opts: { bpfRoot: string; objectDir?: string }): EndpointDatapath {
    const pins = ensurePinDirs(opts.bpfRoot);
    const objPath = path.join(opts.objectDir ?? defaultObjectDir(), 'lxc.o');
    const obj = BpfObject.load(objPath, {
      mapPinDir: pins.maps,
      replaceChanged: SHARED_EVENT_MAPS,
      verify: (o) => checkCodecs(o.btf(), LXC_OBJECT_CODECS, objPath),
    });
    const opened: RawMap[] = [];
    try {
      const programs = new Map<string, ProgramHandle & { id: number }>();
      for (const p of obj.programs()) programs.set(p.name, { ...p, id: progId(p.fd) });
      for (const { program } of HOOKS)
        if (!programs.has(program)) throw new Error(`program ${program} not found in ${obj.path}`);
      // Our own fds, sized for per-CPU values where the map is per CPU.
      const open = (name: string) => {
        const m = openPinnedMap(path.join(pins.maps, name));
        opened.push(m);
        return m;
      };
      return new EndpointDatapath(
        pins,
        obj,
        programs,
        open('lxc_endpoints'),
        open('lxc_metrics'),
        open('ct'),
        open('ipcache'),
        open('policy'),
        open('events_config'),
      );
    } catch (err) {
      for (const m of opened) m.close();
      obj.close();
      throw err;
    }
  }

  /** Writes the endpoint's lxc_endpoints entry, then attaches both programs to its veth (or
   *  swaps them into the filters there). Idempotent. On failure nothing is left changed:
   *  filters this call added are removed, swapped programs and the previous entry restored. */
  attach(ep: EndpointDatapathInfo): void {
    const key = ifindexKey(ep.ifindex);
    const previous = this.endpoints.lookup(key);
    const flags = ep.flags ?? (previous ? endpointInfo.decode(previous).flags : 0);
    const value = encode(endpointInfo, { endpointId: ep.endpointId, flags, ...validate(ep) });
    if (ep.ifname !== undefined) {
      const actual = interfaceName(ep.ifindex);
      if (actual !== ep.ifname) {
        const found = actual === undefined ? 'no interface' : `interface ${actual}`;
        throw new Error(
          `endpoint ${ep.endpointId}: ifindex ${ep.ifindex} is ${found}, not ${ep.ifname}, in this network namespace`,
        );
      }
    }
    this.endpoints.update(key, value);
    const undo: Undo[] = [];
    try {
      for (const h of HOOKS) undo.push(this.attachHook(ep.ifindex, h));
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          u();
        } catch {
          /* best effort: the error below is the one that matters */
        }
      }
      if (previous) this.endpoints.update(key, previous);
      else this.endpoints.delete(key);
      throw err;
    }
    // Links an older agent pinned go, now that the filters do their work.
    for (const { hook } of HOOKS) {
      const pin = lxcLinkPin(this.pins, ep.ifindex, hook);
      if (fs.existsSync(pin)) unpinLink(pin);
    }
    // The veth changed hands (its old endpoint's DEL never came): the old endpoint's state goes.
    const previousId = previous ? endpointInfo.decode(previous).endpointId : ep.endpointId;
    if (previousId !== ep.endpointId && !this.endpointIdInUse(previousId)) this.forget(previousId);
  }

  /** What the programs report into the events ring (events.h's trace_level). */
  setFlowEvents(traceLevel: EventsLevel): void {
    this.eventsConfig.update(Buffer.alloc(4), encode(eventsConfigValue, { traceLevel }));
  }

  /** Sets the policy flags (ENDPOINT_F_*) of an attached endpoint's entry; false when the
   *  ifindex has none. One update: the programs see the old entry or the new one. */
  setFlags(ifindex: number, flags: number): boolean {
    const key = ifindexKey(ifindex);
    const entry = this.endpoints.lookup(key);
    if (!entry) return false;
    const info = endpointInfo.decode(entry);
    if (info.flags !== flags) this.endpoints.update(key, encode(endpointInfo, { ...info, flags }));
    return true;
  }

  /** Removes both filters from the veth and deletes the endpoint entry; when no other veth has
   *  the endpoint's id, also its conntrack entries and counters. Idempotent, and fine when the
   *  veth is gone already (its filters went with it). */
  detach(ifindex: number): void {
    for (const { hook, attachPoint } of HOOKS) {
      tcDetach(lxcFilter(ifindex, attachPoint), `detach ifindex ${ifindex} (tc ${hook})`);
      unpinLink(lxcLinkPin(this.pins, ifindex, hook)); // an older agent's link, if any
    }
    const key = ifindexKey(ifindex);
    const entry = this.endpoints.lookup(key);
    if (!entry) return;
    this.endpoints.delete(key);
    const { endpointId } = endpointInfo.decode(entry);
    if (!this.endpointIdInUse(endpointId)) this.forget(endpointId);
  }

  /** The ifindexes of attached endpoints (those with lxc_endpoints entries, and any an older
   *  agent left pinned links for), ascending. */
  attachedIfindexes(): number[] {
    const dir = lxcLinkDir(this.pins);
    const set = new Set<number>();
    for (const [k] of this.endpoints.entries()) set.add(k.readUInt32LE(0));
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const parsed = parseLxcLinkPin(name);
      if (parsed) set.add(parsed.ifindex);
    }
    return [...set].sort((a, b) => a - b);
  }

  /** The endpoint's counters, summed over CPUs: ingress is what the pod received, egress what
   *  it sent. packets and bytes count what passed, drops what was dropped. */
  counters(endpointId: number): { ingress: EndpointCounters; egress: EndpointCounters } {
    return { ingress: this.sum(endpointId, 'ingress'), egress: this.sum(endpointId, 'egress') };
  }

  /** Frees our fds and the loaded object. What is pinned stays in the kernel. */
  close(): void {
    this.purgeConntrack();
    this.endpoints.close();
    this.metrics.close();
    this.conntrack.close();
    this.ipcache.close();
    this.policy.close();
    this.eventsConfig.close();
    this.obj?.close();
    this.obj = null;
  }

  private sum(endpointId: number, direction: Direction): EndpointCounters {
    const total = { packets: 0n, bytes: 0n, drops: 0n };
    const value = this.metrics.lookup(encode(endpointMetricsKey, { endpointId, direction }));
    for (const slot of value ? perCpuSlots(value, endpointMetrics.size) : []) {
      const c = endpointMetrics.decode(slot);
      total.packets += c.packets;
      total.bytes += c.bytes;
      total.drops += c.drops;
    }
    return total;
  }

  private endpointIdInUse(endpointId: number): boolean {
    const endpointIdOf = endpointInfo.fields.endpoint_id;
    for (const [, v] of this.endpoints.entries()) if (endpointIdOf.read(v, 0) === endpointId) return true;
    return false;
  }

  /** Conntrack entries and counters of an endpoint that is gone. Counters go at once; the
   *  conntrack purge scans the whole table, so it is deferred and done once for every endpoint
   *  that went meanwhile, off the CNI DEL path. (No packet reaches a gone endpoint's entries:
   *  its programs are detached first; a new pod on a reused address would, hence the purge.) */
  private forget(endpointId: number): void {
    for (const direction of ['ingress', 'egress'] as const)
      this.metrics.delete(encode(endpointMetricsKey, { endpointId, direction }));
    this.forgotten.add(endpointId);
    this.purgeTimer ??= setTimeout(() => this.purgeConntrack(), CONNTRACK_PURGE_DELAY_MS);
    this.purgeTimer.unref?.();
  }

  /** Removes the conntrack entries of every forgotten endpoint in one scan. */
  purgeConntrack(): number {
    clearTimeout(this.purgeTimer);
    this.purgeTimer = undefined;
    if (this.forgotten.size === 0) return 0;
    const gone = this.forgotten;
    this.forgotten = new Set();
    const keys: Buffer[] = [];
    const endpointIdOf = ctEntry.fields.endpoint_id;
    for (const [k, v] of this.conntrack.entries()) if (gone.has(endpointIdOf.read(v, 0))) keys.push(Buffer.from(k));
    if (keys.length > 0) this.conntrack.deleteBatch(Buffer.concat(keys));
    return keys.length;
  }

  private attachHook(ifindex: number, h: (typeof HOOKS)[number]): Undo {
    const prog = this.programs.get(h.program)!;
    const filter = lxcFilter(ifindex, h.attachPoint);
    const what = `attach ${prog.name} to ifindex ${ifindex} (tc ${h.hook})`;
    tcHookCreate(ifindex, what);
    const previous = tcQuery(filter, what);
    if (previous === prog.id) return () => {};
    tcAttach(filter, prog.fd, what);
    if (previous === undefined) return () => tcDetach(filter, `detach ifindex ${ifindex} (tc ${h.hook})`);
    return () => {
      let fd: number;
      try {
        fd = progFdById(previous);
      } catch {
        // Reopening a program by id takes CAP_SYS_ADMIN, which the DaemonSet's agent does not
        // hold: then the new program stays on this hook. It is complete on its own; only the
        // two hooks may briefly run different versions until the endpoint is attached again.
        return;
      }
      try {
        tcAttach(filter, fd, `restore program ${previous} on ifindex ${ifindex} (tc ${h.hook})`);
      } finally {
        closeFd(fd);
      }
    };
  }
}

function validate(ep: EndpointDatapathInfo): { ipv4?: string; ipv6?: string } {
  const what = `endpoint ${JSON.stringify(ep.endpointId)}`;
  if (!Number.isInteger(ep.endpointId) || ep.endpointId < 1 || ep.endpointId > 0xffffffff) {
    throw new Error(`${what}: endpointId must be an integer from 1 to 4294967295`);
  }
  if (!Number.isInteger(ep.ifindex) || ep.ifindex < 1 || ep.ifindex > 0x7fffffff) {
    throw new Error(`${what}: ifindex ${JSON.stringify(ep.ifindex)} is not an interface index`);
  }
  const out: { ipv4?: string; ipv6?: string } = {};
  for (const family of [4, 6] as const) {
    const field = family === 4 ? 'ipv4' : 'ipv6';
    const text = ep[field];
    if (text === undefined) continue;
    if (parseIp(text)?.family !== family)
      throw new Error(`${what}: ${field} ${JSON.stringify(text)} is not an IPv${family} address`);
    out[field] = text;
  }
  if (!out.ipv4 && !out.ipv6)
    throw new Error(`${what}: needs an ipv4 or an ipv6 address (a pod without one could send nothing)`);
  return out;
}

/** Detaches a pinned TCX link of an older agent (if its device is still there) and removes
 *  the pin. */
function unpinLink(pin: string): void {
  let fd: number;
  try {
    fd = objGet(pin);
  } catch (err) {
    if (err instanceof BpfError && err.errno === os.constants.errno.ENOENT) return;
    throw err;
  }
  try {
    // Detach explicitly: another process holding the link would otherwise keep it attached.
    if (tcxLinkInfo(fd).ifindex !== 0) detachLink(fd, pin);
  } finally {
    closeFd(fd);
  }
  fs.rmSync(pin, { force: true });
}
