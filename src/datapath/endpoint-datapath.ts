// The pod-facing TC programs of bpf/lxc.c on each pod's host-side veth: loading them, writing
// the endpoint entry they check packets against, and attaching them as pinned TCX links that
// outlive the agent.
//
// Attachment: lxc_from_pod on the veth's TCX ingress (what the pod sends), lxc_to_pod on its
// TCX egress (what it receives), each a BPF link made with bpf_link_create(BPF_TCX_INGRESS /
// BPF_TCX_EGRESS) and pinned at <bpfRoot>/links/lxc/<ifindex>-ingress|egress. An ifindex names a
// device in the network namespace of the calling thread: attach from the node's namespace (the
// agent runs there). Attaching an ifindex whose links are pinned already swaps the program in
// them with bpf_link_update, atomically: an agent restart re-attaches every endpoint and no
// packet ever meets a veth without a program. Maps are pinned under <bpfRoot>/maps and reused,
// so conntrack and counters survive restarts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encode } from './codec.js';
import {
  BPF_LINK_TYPE_TCX, BPF_TCX_EGRESS, BPF_TCX_INGRESS, BpfError, BpfObject, RawMap, closeFd, createTcxLink, detachLink,
  interfaceName, objGet, objPin, openPinnedMap, perCpuSlots, progFdById, progId, tcxLinkInfo, updateLink, type ProgramHandle,
} from './libbpf.js';
import {
  ctEntry, endpointInfo, endpointMetrics, endpointMetricsKey, ifindexKey, type Direction, type EndpointCounters,
} from './endpoint-codecs.js';
import { ensurePinDirs, lxcLinkDir, lxcLinkPin, parseLxcLinkPin, type PinLayout, type TcHook } from './pins.js';
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
}

export type { EndpointCounters } from './endpoint-codecs.js';

const HOOKS: { hook: TcHook; program: string; attachType: number }[] = [
  { hook: 'ingress', program: 'lxc_from_pod', attachType: BPF_TCX_INGRESS },
  { hook: 'egress', program: 'lxc_to_pod', attachType: BPF_TCX_EGRESS },
];

type Undo = () => void;

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
  ) {}

  /** Loads lxc.o (from objectDir, build/bpf by default), with its maps pinned under
   *  <bpfRoot>/maps, reusing the ones a previous agent pinned. Attaches nothing. */
  static open(opts: { bpfRoot: string; objectDir?: string }): EndpointDatapath {
    const pins = ensurePinDirs(opts.bpfRoot);
    fs.mkdirSync(lxcLinkDir(pins), { recursive: true, mode: 0o700 });
    const obj = BpfObject.load(path.join(opts.objectDir ?? defaultObjectDir(), 'lxc.o'), { mapPinDir: pins.maps });
    const opened: RawMap[] = [];
    try {
      const programs = new Map<string, ProgramHandle & { id: number }>();
      for (const p of obj.programs()) programs.set(p.name, { ...p, id: progId(p.fd) });
      for (const { program } of HOOKS) if (!programs.has(program)) throw new Error(`program ${program} not found in ${obj.path}`);
      // Our own fds, sized for per-CPU values where the map is per CPU.
      const open = (name: string) => {
        const m = openPinnedMap(path.join(pins.maps, name));
        opened.push(m);
        return m;
      };
      return new EndpointDatapath(pins, obj, programs, open('lxc_endpoints'), open('lxc_metrics'), open('ct'));
    } catch (err) {
      for (const m of opened) m.close();
      obj.close();
      throw err;
    }
  }

  /** Writes the endpoint's lxc_endpoints entry, then attaches both programs to its veth (or
   *  swaps them into the links pinned there). Idempotent. On failure nothing is left changed:
   *  links this call made are removed, swapped programs and the previous entry restored. */
  attach(ep: EndpointDatapathInfo): void {
    const value = encode(endpointInfo, { endpointId: ep.endpointId, flags: 0, ...validate(ep) });
    if (ep.ifname !== undefined) {
      const actual = interfaceName(ep.ifindex);
      if (actual !== ep.ifname) {
        throw new Error(
          `endpoint ${ep.endpointId}: ifindex ${ep.ifindex} is ${actual === undefined ? 'no interface' : `interface ${actual}`}, not ${ep.ifname}, in this network namespace`,
        );
      }
    }
    const key = ifindexKey(ep.ifindex);
    const previous = this.endpoints.lookup(key);
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
    // The veth changed hands (its old endpoint's DEL never came): the old endpoint's state goes.
    const previousId = previous ? endpointInfo.decode(previous).endpointId : ep.endpointId;
    if (previousId !== ep.endpointId && !this.endpointIdInUse(previousId)) this.forget(previousId);
  }

  /** Detaches both programs from the veth, unpins their links and deletes the endpoint entry;
   *  when no other veth has the endpoint's id, also its conntrack entries and counters.
   *  Idempotent, and fine when the veth is gone already. */
  detach(ifindex: number): void {
    for (const { hook } of HOOKS) unpinLink(lxcLinkPin(this.pins, ifindex, hook));
    const key = ifindexKey(ifindex);
    const entry = this.endpoints.lookup(key);
    if (!entry) return;
    this.endpoints.delete(key);
    const { endpointId } = endpointInfo.decode(entry);
    if (!this.endpointIdInUse(endpointId)) this.forget(endpointId);
  }

  /** The ifindexes that have pinned links, ascending. */
  attachedIfindexes(): number[] {
    const dir = lxcLinkDir(this.pins);
    const set = new Set<number>();
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
    for (const [, v] of this.endpoints.entries()) if (v.readUInt32LE(endpointInfo.fields.endpoint_id!.offset) === endpointId) return true;
    return false;
  }

  /** Conntrack entries and counters of an endpoint that is gone. Counters go at once; the
   *  conntrack purge scans the whole table, so it is deferred and done once for every endpoint
   *  that went meanwhile, off the CNI DEL path. (No packet reaches a gone endpoint's entries:
   *  its programs are detached first; a new pod on a reused address would, hence the purge.) */
  private forget(endpointId: number): void {
    for (const direction of ['ingress', 'egress'] as const) this.metrics.delete(encode(endpointMetricsKey, { endpointId, direction }));
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
    const idAt = ctEntry.fields.endpoint_id!.offset;
    for (const [k, v] of this.conntrack.entries()) if (gone.has(v.readUInt32LE(idAt))) keys.push(Buffer.from(k));
    if (keys.length > 0) this.conntrack.deleteBatch(Buffer.concat(keys));
    return keys.length;
  }

  private attachHook(ifindex: number, h: (typeof HOOKS)[number]): Undo {
    const prog = this.programs.get(h.program)!;
    const pin = lxcLinkPin(this.pins, ifindex, h.hook);
    if (fs.existsSync(pin)) {
      const linkFd = objGet(pin);
      try {
        const info = tcxLinkInfo(linkFd);
        if (info.type === BPF_LINK_TYPE_TCX && info.ifindex === ifindex && info.attachType === h.attachType) {
          if (info.progId === prog.id) return () => {};
          updateLink(linkFd, prog.fd, pin);
          return () => restoreProgram(pin, info.progId);
        }
      } finally {
        closeFd(linkFd);
      }
      // The pinned link no longer holds this device (the veth went away and a new one got its
      // ifindex): it attaches nothing, and a new link takes its place.
      unpinLink(pin);
    }
    const fd = createTcxLink(prog.fd, ifindex, h.attachType, `attach ${prog.name} to ifindex ${ifindex} (TCX ${h.hook})`);
    try {
      objPin(fd, pin);
    } finally {
      // The pin holds the link now (or, when pinning failed, closing detaches it again).
      closeFd(fd);
    }
    return () => unpinLink(pin);
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
    if (parseIp(text)?.family !== family) throw new Error(`${what}: ${field} ${JSON.stringify(text)} is not an IPv${family} address`);
    out[field] = text;
  }
  if (!out.ipv4 && !out.ipv6) throw new Error(`${what}: needs an ipv4 or an ipv6 address (a pod without one could send nothing)`);
  return out;
}

/** Detaches a pinned link (if its device is still there) and removes the pin. */
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

function restoreProgram(pin: string, id: number): void {
  const progFd = progFdById(id);
  try {
    const linkFd = objGet(pin);
    try {
      updateLink(linkFd, progFd, pin);
    } finally {
      closeFd(linkFd);
    }
  } finally {
    closeFd(progFd);
  }
}
