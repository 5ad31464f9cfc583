// Who every address is, kept by difference: pods (labels → identity, addresses), namespaces'
// labels, this node's endpoints and addresses, and the ipBlock prefixes policies name, folded
// into the ipcache the datapath looks peers up in. A pod that comes or goes with labels other
// pods share (a replica) changes one ipcache entry and nothing else; only a new or vanished
// label set, a namespace's labels or a new ipBlock touch more. commit() hands out what changed.
//
// An address claimed twice resolves by precedence: the node's own, then a local endpoint (the
// registry knows this node's pods first), then the pod that sorts first by namespace/name.
import { cidrRegions, blockKey, type CidrRegions } from './cidr-regions.js';
import {
  IDENTITY_HOST,
  IDENTITY_UNRESOLVED,
  IDENTITY_WORLD,
  assignIdentities,
  hashedIdentity,
  namespaceLabels,
  securityKey,
  type SecurityLabels,
} from './identities.js';
import type { ContainerPort, IPBlock } from './resources.js';

/** A pod policy can name: labels from its Pod object, addresses from its status (or, for local
 *  pods, from the endpoint registry, which knows them first). */
export interface PolicyPod {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  ips: readonly string[];
  ports: readonly ContainerPort[];
}

/** A pod interface on this node, as the CNI plugin registered it. */
export interface PolicyEndpoint {
  id: number;
  namespace?: string;
  name?: string;
  ips: readonly string[];
}

export interface IpcacheValue {
  identity: number;
  cidrIdentity: number;
}

export interface IpcacheChanges {
  upserts: [prefix: string, value: IpcacheValue][];
  removes: string[];
  /** Some label set appeared, vanished or changed number: compiled policy is stale. */
  identitiesChanged: boolean;
}

const refOf = (namespace: string, name: string) => `${namespace}/${name}`;
const hostPrefix = (ip: string) => `${ip}/${ip.includes(':') ? 128 : 32}`;
const sameValue = (a: IpcacheValue | undefined, b: IpcacheValue | undefined) =>
  a?.identity === b?.identity && a?.cidrIdentity === b?.cidrIdentity;

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s?.delete(v) && s.size === 0) m.delete(k);
}

export class IdentityTable {
  private readonly pods = new Map<string, { pod: PolicyPod; key: string }>();
  private readonly podsOfNamespace = new Map<string, Set<string>>();
  private readonly podsOfKey = new Map<string, Set<string>>();
  private readonly labelsOfKey = new Map<string, SecurityLabels>();
  private readonly namespaceObjects = new Map<string, Readonly<Record<string, string>>>();
  private readonly nsLabelCache = new Map<string, Record<string, string>>();
  private readonly hashes = new Map<string, number>();
  private ids = new Map<string, number>();
  private keyOfIdentity = new Map<number, string>();
  private readonly identityLabels = new Map<number, SecurityLabels>();
  private readonly endpoints = new Map<number, PolicyEndpoint>();
  private readonly endpointsOfPod = new Map<string, Set<number>>();
  private hostIps = new Set<string>();
  /** address → refs of the pods claiming it. */
  private readonly podsOfAddress = new Map<string, Set<string>>();
  /** address → local endpoints claiming it. */
  private readonly endpointsOfAddress = new Map<string, Set<number>>();
  private blocksKey = '';
  private regionTable: CidrRegions = cidrRegions([]);
  private readonly entries = new Map<string, IpcacheValue>();
  private readonly dirty = new Set<string>(); // prefixes
  private keysChanged = false;
  private collisions: string[] = [];

  constructor() {
    // The defaults (0.0.0.0/0, ::/0) are there from the start, with or without ipBlocks: a
    // table built by difference and one built from scratch must hold the same entries.
    for (const p of this.regionTable.prefixes.keys()) this.dirty.add(p);
  }

  // ---- inputs ----

  setPod(pod: PolicyPod): void {
    const ref = refOf(pod.namespace, pod.name);
    const old = this.pods.get(ref);
    if (old?.pod === pod) return;
    const key = this.securityKeyOf(pod);
    if (old) this.unlinkPod(ref, old);
    this.pods.set(ref, { pod, key });
    addTo(this.podsOfNamespace, pod.namespace, ref);
    this.linkKey(ref, key, pod);
    for (const ip of pod.ips) {
      addTo(this.podsOfAddress, ip, ref);
      this.dirty.add(hostPrefix(ip));
    }
    this.touchEndpointsOf(ref);
  }

  deletePod(namespace: string, name: string): void {
    const ref = refOf(namespace, name);
    const old = this.pods.get(ref);
    if (!old) return;
    this.unlinkPod(ref, old);
    this.pods.delete(ref);
    removeFrom(this.podsOfNamespace, namespace, ref);
    this.touchEndpointsOf(ref);
  }

  /** A Namespace object's labels, or undefined when it is gone (its name label stays). */
  setNamespace(name: string, labels: Readonly<Record<string, string>> | undefined): void {
    if (labels === this.namespaceObjects.get(name)) return;
    if (labels) this.namespaceObjects.set(name, labels);
    else this.namespaceObjects.delete(name);
    this.nsLabelCache.delete(name);
    // Every pod of the namespace has new security labels.
    for (const ref of this.podsOfNamespace.get(name) ?? []) {
      const entry = this.pods.get(ref)!;
      this.unlinkKey(ref, entry.key);
      entry.key = this.securityKeyOf(entry.pod);
      this.linkKey(ref, entry.key, entry.pod);
      this.touchPod(ref);
    }
  }

  /** This node's endpoints, all of them (compared with the last call). */
  setEndpoints(list: readonly PolicyEndpoint[]): void {
    const next = new Map(list.map((e) => [e.id, e]));
    for (const [id, old] of this.endpoints) {
      const now = next.get(id);
      if (now && now.namespace === old.namespace && now.name === old.name && now.ips.join() === old.ips.join())
        continue;
      this.unlinkEndpoint(old);
    }
    for (const [id, e] of next) {
      const old = this.endpoints.get(id);
      if (old && old.namespace === e.namespace && old.name === e.name && old.ips.join() === e.ips.join()) continue;
      this.endpoints.set(id, e);
      if (e.namespace && e.name) addTo(this.endpointsOfPod, refOf(e.namespace, e.name), id);
      for (const ip of e.ips) {
        addTo(this.endpointsOfAddress, ip, id);
        this.dirty.add(hostPrefix(ip));
      }
    }
  }

  setHostIps(ips: readonly string[]): void {
    const next = new Set(ips);
    for (const ip of this.hostIps) if (!next.has(ip)) this.dirty.add(hostPrefix(ip));
    for (const ip of next) if (!this.hostIps.has(ip)) this.dirty.add(hostPrefix(ip));
    this.hostIps = next;
  }

  /** The ipBlocks of every policy in force. */
  setBlocks(blocks: readonly IPBlock[]): void {
    const key = [...new Set(blocks.map(blockKey))].sort().join('\n');
    if (key === this.blocksKey) return;
    const before = this.regionTable;
    this.blocksKey = key;
    this.regionTable = cidrRegions(blocks);
    // Region identities may move under any address: recompute every entry.
    for (const p of before.prefixes.keys()) this.dirty.add(p);
    for (const p of this.regionTable.prefixes.keys()) this.dirty.add(p);
    for (const p of this.entries.keys()) this.dirty.add(p);
  }

  // ---- outputs ----

  /** Numbers label sets anew if the set changed, and folds every change into the ipcache. */
  commit(): IpcacheChanges {
    let identitiesChanged = false;
    if (this.keysChanged) {
      this.keysChanged = false;
      const hash = (k: string) => {
        let h = this.hashes.get(k);
        if (h === undefined) this.hashes.set(k, (h = hashedIdentity(k)));
        return h;
      };
      const { ids, moved } = assignIdentities(this.labelsOfKey.keys(), hash);
      for (const k of this.hashes.keys()) if (!this.labelsOfKey.has(k)) this.hashes.delete(k);
      for (const [key, id] of ids) {
        if (this.ids.get(key) === id) continue;
        for (const ref of this.podsOfKey.get(key) ?? []) this.touchPod(ref);
      }
      identitiesChanged = ids.size !== this.ids.size || [...ids].some(([k, id]) => this.ids.get(k) !== id);
      this.ids = ids;
      this.identityLabels.clear();
      this.keyOfIdentity.clear();
      for (const [key, id] of ids) {
        this.identityLabels.set(id, this.labelsOfKey.get(key)!);
        this.keyOfIdentity.set(id, key);
      }
      this.collisions = moved;
    }
    const upserts: IpcacheChanges['upserts'] = [];
    const removes: string[] = [];
    for (const prefix of this.dirty) {
      const want = this.valueOf(prefix);
      const have = this.entries.get(prefix);
      if (sameValue(want, have)) continue;
      if (want) {
        this.entries.set(prefix, want);
        upserts.push([prefix, want]);
      } else {
        this.entries.delete(prefix);
        removes.push(prefix);
      }
    }
    this.dirty.clear();
    return { upserts, removes, identitiesChanged };
  }

  /** The whole ipcache as of the last commit. */
  get ipcache(): ReadonlyMap<string, IpcacheValue> {
    return this.entries;
  }

  get regions(): CidrRegions {
    return this.regionTable;
  }

  /** Pod identities in use → labels, as of the last commit. */
  get identities(): ReadonlyMap<number, SecurityLabels> {
    return this.identityLabels;
  }

  /** Label sets that did not get their hashed number, as of the last commit. */
  get collided(): readonly string[] {
    return this.collisions;
  }

  pod(namespace: string, name: string): PolicyPod | undefined {
    return this.pods.get(refOf(namespace, name))?.pod;
  }

  identityOfPod(namespace: string, name: string): number | undefined {
    const p = this.pods.get(refOf(namespace, name));
    return p && this.ids.get(p.key);
  }

  /** Who holds an address, by the ipcache's precedence (this node, local endpoints, pods by
   *  name): its identity and, for a pod, its namespace, name and labels. Addresses nobody
   *  holds are the world's. */
  holderOf(ip: string): {
    identity: number;
    namespace?: string;
    name?: string;
    labels?: Readonly<Record<string, string>>;
  } {
    if (this.hostIps.has(ip)) return { identity: IDENTITY_HOST };
    const eps = this.endpointsOfAddress.get(ip);
    if (eps?.size) {
      const e = this.endpoints.get(Math.min(...eps))!;
      const pod = e.namespace && e.name ? this.pods.get(refOf(e.namespace, e.name))?.pod : undefined;
      return {
        identity: this.endpointIdentity(e),
        ...(e.namespace && { namespace: e.namespace }),
        ...(e.name && { name: e.name }),
        ...(pod && { labels: pod.labels }),
      };
    }
    const refs = this.podsOfAddress.get(ip);
    if (refs?.size) {
      const { pod, key } = this.pods.get([...refs].sort()[0]!)!;
      return {
        identity: this.ids.get(key) ?? IDENTITY_UNRESOLVED,
        namespace: pod.namespace,
        name: pod.name,
        labels: pod.labels,
      };
    }
    return { identity: IDENTITY_WORLD };
  }

  /** The container ports of every pod with this identity. */
  portsOfIdentity(identity: number): ContainerPort[] {
    const key = this.keyOfIdentity.get(identity);
    if (key === undefined) return [];
    return [...(this.podsOfKey.get(key) ?? [])].flatMap((ref) => this.pods.get(ref)!.pod.ports);
  }

  // ---- internals ----

  private namespaceLabels(ns: string): Record<string, string> {
    let l = this.nsLabelCache.get(ns);
    if (!l) this.nsLabelCache.set(ns, (l = namespaceLabels(ns, this.namespaceObjects.get(ns))));
    return l;
  }

  private securityKeyOf(pod: PolicyPod): string {
    return securityKey({
      namespace: pod.namespace,
      pod: pod.labels,
      namespaceLabels: this.namespaceLabels(pod.namespace),
    });
  }

  private linkKey(ref: string, key: string, pod: PolicyPod): void {
    if (!this.podsOfKey.has(key)) {
      this.keysChanged = true;
      this.labelsOfKey.set(key, {
        namespace: pod.namespace,
        pod: pod.labels,
        namespaceLabels: this.namespaceLabels(pod.namespace),
      });
    }
    addTo(this.podsOfKey, key, ref);
  }

  private unlinkKey(ref: string, key: string): void {
    removeFrom(this.podsOfKey, key, ref);
    if (!this.podsOfKey.has(key)) {
      this.labelsOfKey.delete(key);
      this.keysChanged = true;
    }
  }

  private unlinkPod(ref: string, old: { pod: PolicyPod; key: string }): void {
    this.unlinkKey(ref, old.key);
    for (const ip of old.pod.ips) {
      removeFrom(this.podsOfAddress, ip, ref);
      this.dirty.add(hostPrefix(ip));
    }
  }

  private unlinkEndpoint(e: PolicyEndpoint): void {
    this.endpoints.delete(e.id);
    if (e.namespace && e.name) removeFrom(this.endpointsOfPod, refOf(e.namespace, e.name), e.id);
    for (const ip of e.ips) {
      removeFrom(this.endpointsOfAddress, ip, e.id);
      this.dirty.add(hostPrefix(ip));
    }
  }

  private touchPod(ref: string): void {
    for (const ip of this.pods.get(ref)?.pod.ips ?? []) this.dirty.add(hostPrefix(ip));
    this.touchEndpointsOf(ref);
  }

  private touchEndpointsOf(ref: string): void {
    for (const id of this.endpointsOfPod.get(ref) ?? [])
      for (const ip of this.endpoints.get(id)!.ips) this.dirty.add(hostPrefix(ip));
  }

  private endpointIdentity(e: PolicyEndpoint): number {
    return (e.namespace && e.name && this.identityOfPod(e.namespace, e.name)) || IDENTITY_UNRESOLVED;
  }

  /** What the ipcache should hold for a prefix; undefined: nothing. */
  private valueOf(prefix: string): IpcacheValue | undefined {
    const slash = prefix.lastIndexOf('/');
    const ip = prefix.slice(0, slash);
    const isHost = prefix === hostPrefix(ip);
    const region = () => (isHost ? this.regionTable.regionOf(ip) : this.regionTable.prefixes.get(prefix)!);
    if (isHost) {
      if (this.hostIps.has(ip)) return { identity: IDENTITY_HOST, cidrIdentity: region() };
      const eps = this.endpointsOfAddress.get(ip);
      if (eps?.size)
        return { identity: this.endpointIdentity(this.endpoints.get(Math.min(...eps))!), cidrIdentity: region() };
      const pods = this.podsOfAddress.get(ip);
      if (pods?.size) {
        const first = [...pods].sort()[0]!;
        return { identity: this.ids.get(this.pods.get(first)!.key) ?? IDENTITY_UNRESOLVED, cidrIdentity: region() };
      }
    }
    if (this.regionTable.prefixes.has(prefix))
      return { identity: IDENTITY_WORLD, cidrIdentity: this.regionTable.prefixes.get(prefix)! };
    return undefined;
  }
}
