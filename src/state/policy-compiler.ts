// NetworkPolicy → what the datapath enforces: an identity for every pod the node knows, the
// ipcache (address → identity), and for every local endpoint its isolation and its allow
// entries (peer identity, direction, protocol, port range → the rule that allows it). Pure:
// the same inputs give the same output, and `weft explain` reads the very output the kernel
// maps are written from.
//
// Semantics (networking.k8s.io/v1):
//  - A pod is isolated for a direction when a policy of its namespace selects it and lists the
//    direction in policyTypes. An isolated direction allows only what some rule of some
//    selecting policy allows (their union); a direction no policy isolates allows everything.
//  - Ingress from the pod's own node is always allowed (kubelet probes): one entry for
//    IDENTITY_HOST on every ingress-isolated endpoint.
//  - Peers: podSelector alone selects pods of the policy's namespace; namespaceSelector alone
//    every pod of the selected namespaces; both, the pods matching both. ipBlock selects
//    addresses, pods' included, by region (cidr-regions.ts). No peers: every peer.
//  - Ports: a number, a range up to endPort, or a container port name, resolved against the
//    destination pod: the endpoint itself for ingress, each peer for egress (the union over the
//    pods of a peer identity: pods sharing labels are expected to share port names). Named
//    ports do not resolve for ipBlock peers. No ports: every protocol and port.
//  - Replies are conntrack's business: only new connections are looked up.
//  - A local endpoint whose pod the agent does not know (no Pod object yet) has no labels to
//    select it by: when its namespace has policies, it is isolated for every direction one of
//    them names and allows nothing but its node. Elsewhere its address is IDENTITY_UNRESOLVED,
//    which no selector matches: such a peer is allowed only by rules that allow every peer.
import ipaddr from 'ipaddr.js';
import type { Protocol } from '../lib/checker.js';
import { matchesSelector } from './selectors.js';
import { IdentityTable, type IpcacheValue, type PolicyEndpoint, type PolicyPod } from './identity-table.js';
import {
  IDENTITY_ANY,
  IDENTITY_HOST,
  IDENTITY_UNRESOLVED,
  IDENTITY_WORLD,
  hashedIdentity,
  type SecurityLabels,
} from './identities.js';
import type {
  ContainerPort,
  IPBlock,
  LabelSelector,
  NetworkPolicy,
  PolicyPeer,
  PolicyPort,
  PolicyRule,
} from './resources.js';

export type Direction = 'ingress' | 'egress';

export const PROTOCOL_NUMBERS: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };

export interface PolicyInputs {
  policies: readonly NetworkPolicy[];
  /** Namespace objects' labels, by name (kubernetes.io/metadata.name is added here). */
  namespaces: ReadonlyMap<string, Readonly<Record<string, string>>>;
  pods: readonly PolicyPod[];
  endpoints: readonly PolicyEndpoint[];
  /** The node's own addresses. */
  hostIps: readonly string[];
}

/** Allows `proto`/`port` (top `portBits` bits of it matched) from or to `identity`. proto 0:
 *  every protocol and port. */
export interface PolicyEntry {
  identity: number;
  direction: Direction;
  proto: number;
  port: number;
  portBits: number;
}

export interface RuleInfo {
  id: number;
  /** ns/name; null for the node's implicit allow. */
  policy: string | null;
  direction: Direction;
  /** Where in the policy: spec.ingress[0]. */
  rule: string;
}

export interface CompiledEndpoint {
  id: number;
  /** ns/name of its pod, when the CNI call named one. */
  pod?: string;
  namespace?: string;
  identity: number;
  isolated: Record<Direction, boolean>;
  /** The policies that select it, by direction (ns/name, sorted). */
  selectedBy: Record<Direction, string[]>;
  /** entryKey(entry) → [entry, rule id]. */
  entries: Map<string, [PolicyEntry, number]>;
}

export interface CompiledPolicy {
  /** Every pod identity in use → its labels. */
  identities: Map<number, SecurityLabels>;
  /** Address prefix (canonical CIDR) → identities. */
  ipcache: Map<string, IpcacheValue>;
  endpoints: Map<number, CompiledEndpoint>;
  rules: Map<number, RuleInfo>;
  /** ns/name of every policy in force, sorted. */
  policies: string[];
  notes: string[];
}

export const RULE_NODE = 1;
const RULE_MIN = 16;

export const entryKey = (e: PolicyEntry) => `${e.identity}/${e.direction}/${e.proto}/${e.port}/${e.portBits}`;

/** A port range as the aligned blocks a prefix match can express: [port, bits matched]. */
export function portBlocks(lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  let p = lo;
  while (p <= hi) {
    let size = 1;
    // The largest aligned block starting at p that stays inside the range.
    while (size < 65536 && p % (size * 2) === 0 && p + size * 2 - 1 <= hi) size *= 2;
    out.push([p, 16 - Math.log2(size)]);
    p += size;
  }
  return out;
}

/** A stable number for a rule: the same on every node and across restarts. */
function ruleId(policy: string, direction: Direction, index: number): number {
  return hashedIdentity(`${policy}\n${direction}\n${index}`, 0x100000000 - RULE_MIN, RULE_MIN);
}

const policyName = (p: NetworkPolicy) => `${p.metadata.namespace}/${p.metadata.name}`;

function namedPortNumbers(ports: readonly ContainerPort[], name: string, protocol: Protocol): number[] {
  return [...new Set(ports.filter((p) => p.name === name && p.protocol === protocol).map((p) => p.containerPort))];
}

/** Every ipBlock the policies name. */
export function policyBlocks(policies: readonly NetworkPolicy[]): IPBlock[] {
  const out: IPBlock[] = [];
  for (const p of policies) {
    for (const rule of [...p.spec.ingress, ...p.spec.egress])
      for (const peer of rule.peers ?? []) if (peer.kind === 'ipBlock') out.push(peer.ipBlock);
  }
  return out;
}

/** Everything at once, from scratch: for explain's pods of other nodes, and for tests. The
 *  agent keeps an IdentityTable by difference and calls compileEndpoints. */
export function compilePolicy(inputs: PolicyInputs): CompiledPolicy {
  const table = new IdentityTable();
  for (const [name, labels] of inputs.namespaces) table.setNamespace(name, labels);
  for (const pod of inputs.pods) table.setPod(pod);
  table.setEndpoints(inputs.endpoints);
  table.setHostIps(inputs.hostIps);
  table.setBlocks(policyBlocks(inputs.policies));
  table.commit();
  return {
    identities: new Map(table.identities),
    ipcache: new Map(table.ipcache),
    ...compileEndpoints(inputs.policies, table, inputs.endpoints),
  };
}

export type CompiledEndpoints = Pick<CompiledPolicy, 'endpoints' | 'rules' | 'policies' | 'notes'>;

/** Each endpoint's isolation and allow entries, from the policies and the identities of a
 *  committed table. Works on identities, not pods: its cost does not grow with replicas. */
export function compileEndpoints(
  policyList: readonly NetworkPolicy[],
  table: IdentityTable,
  endpointList: readonly PolicyEndpoint[],
): CompiledEndpoints {
  const notes: string[] = [];
  if (table.collided.length)
    notes.push(`${table.collided.length} label set(s) collided with another's identity and took the next free number`);
  const identities = table.identities;
  const policies = [...policyList].sort((a, b) => (policyName(a) < policyName(b) ? -1 : 1));

  // Peer selections, computed once per (namespace, peer) in this compile.
  const identitiesByNs = new Map<string, { nsLabels: Readonly<Record<string, string>>; ids: number[] }>();
  for (const [id, l] of identities) {
    let entry = identitiesByNs.get(l.namespace);
    if (!entry) identitiesByNs.set(l.namespace, (entry = { nsLabels: l.namespaceLabels, ids: [] }));
    entry.ids.push(id);
  }
  const peerCache = new Map<string, number[]>();
  const peerIdentities = (policyNs: string, peer: PolicyPeer): number[] => {
    if (peer.kind === 'ipBlock') return table.regions.identitiesIn(peer.ipBlock);
    const key = `${policyNs}\n${JSON.stringify(peer)}`;
    let out = peerCache.get(key);
    if (out) return out;
    const podSel: LabelSelector = peer.podSelector ?? {};
    const candidates = peer.namespaceSelector
      ? [...identitiesByNs.values()]
          .filter((e) => matchesSelector(peer.namespaceSelector!, e.nsLabels))
          .flatMap((e) => e.ids)
      : (identitiesByNs.get(policyNs)?.ids ?? []);
    out = candidates.filter((id) => matchesSelector(podSel, identities.get(id)!.pod)).sort((a, b) => a - b);
    peerCache.set(key, out);
    return out;
  };

  const rules = new Map<number, RuleInfo>([
    [RULE_NODE, { id: RULE_NODE, policy: null, direction: 'ingress', rule: "the pod's node may always connect to it" }],
  ]);
  const byNamespace = new Map<string, NetworkPolicy[]>();
  for (const p of policies) {
    const ns = p.metadata.namespace ?? '';
    if (!byNamespace.has(ns)) byNamespace.set(ns, []);
    byNamespace.get(ns)!.push(p);
  }

  const endpoints = new Map<number, CompiledEndpoint>();
  for (const ep of endpointList) {
    const podName = ep.namespace && ep.name ? `${ep.namespace}/${ep.name}` : undefined;
    const pod = ep.namespace && ep.name ? table.pod(ep.namespace, ep.name) : undefined;
    const identity = (pod && table.identityOfPod(pod.namespace, pod.name)) || IDENTITY_UNRESOLVED;
    const out: CompiledEndpoint = {
      id: ep.id,
      ...(podName && { pod: podName }),
      ...(ep.namespace && { namespace: ep.namespace }),
      identity,
      isolated: { ingress: false, egress: false },
      selectedBy: { ingress: [], egress: [] },
      entries: new Map(),
    };
    endpoints.set(ep.id, out);
    const candidates = ep.namespace ? (byNamespace.get(ep.namespace) ?? []) : [];
    // Unknown labels: every policy of the namespace might select it (see the top of the file).
    const selecting = pod ? candidates.filter((p) => matchesSelector(p.spec.podSelector, pod.labels)) : candidates;
    const allow = (e: PolicyEntry, rule: number) => {
      const k = entryKey(e);
      if (!out.entries.has(k)) out.entries.set(k, [e, rule]);
    };
    for (const p of selecting) {
      const name = policyName(p);
      for (const direction of ['ingress', 'egress'] as const) {
        if (!p.spec.policyTypes.includes(direction === 'ingress' ? 'Ingress' : 'Egress')) continue;
        out.isolated[direction] = true;
        out.selectedBy[direction].push(name);
        if (!pod) continue;
        (direction === 'ingress' ? p.spec.ingress : p.spec.egress).forEach((rule, index) => {
          const id = ruleId(name, direction, index);
          rules.set(id, { id, policy: name, direction, rule: `spec.${direction}[${index}]` });
          for (const e of ruleEntries(rule, direction, p.metadata.namespace ?? '', pod)) allow(e, id);
        });
      }
    }
    if (out.isolated.ingress)
      allow({ identity: IDENTITY_HOST, direction: 'ingress', proto: 0, port: 0, portBits: 0 }, RULE_NODE);
  }

  /** The entries one rule gives the endpoint of `self`. */
  function ruleEntries(rule: PolicyRule, direction: Direction, policyNs: string, self: PolicyPod): PolicyEntry[] {
    const out: PolicyEntry[] = [];
    const peers: { identity: number; pod: boolean }[] = [];
    if (!rule.peers) peers.push({ identity: IDENTITY_ANY, pod: false });
    for (const peer of rule.peers ?? [])
      for (const identity of peerIdentities(policyNs, peer)) peers.push({ identity, pod: peer.kind === 'pods' });
    const ports: readonly (PolicyPort | undefined)[] = rule.ports ?? [undefined];
    for (const port of ports) {
      if (!port) {
        for (const { identity } of peers) out.push({ identity, direction, proto: 0, port: 0, portBits: 0 });
        continue;
      }
      const proto = PROTOCOL_NUMBERS[port.protocol];
      if (port.port === undefined) {
        for (const { identity } of peers) out.push({ identity, direction, proto, port: 0, portBits: 0 });
      } else if (typeof port.port === 'number') {
        const blocks = portBlocks(port.port, port.endPort ?? port.port);
        for (const { identity } of peers)
          for (const [p, bits] of blocks) out.push({ identity, direction, proto, port: p, portBits: bits });
      } else if (direction === 'ingress') {
        // The destination is the endpoint itself.
        const numbers = namedPortNumbers(self.ports, port.port, port.protocol);
        for (const { identity } of peers)
          for (const n of numbers) out.push({ identity, direction, proto, port: n, portBits: 16 });
      } else {
        // The destination is the peer: every pod identity it covers, each with its own ports.
        const targets = rule.peers ? peers.filter((p) => p.pod).map((p) => p.identity) : [...identities.keys()];
        for (const identity of targets) {
          for (const n of namedPortNumbers(table.portsOfIdentity(identity), port.port, port.protocol)) {
            out.push({ identity, direction, proto, port: n, portBits: 16 });
          }
        }
      }
    }
    return out;
  }

  return { endpoints, rules, policies: policies.map(policyName), notes };
}

/** The peer as the datapath sees it: its address's ipcache entry (longest match). */
export function lookupIpcache(ipcache: ReadonlyMap<string, IpcacheValue>, ip: string): IpcacheValue {
  const exact = ipcache.get(`${ip}/${ip.includes(':') ? 128 : 32}`);
  if (exact) return exact;
  // Not a known address: the longest ipBlock prefix holding it (rare: explain names pods).
  const addr = ipaddr.parse(ip);
  let best: [number, IpcacheValue] | undefined;
  for (const [prefix, v] of ipcache) {
    const range = ipaddr.parseCIDR(prefix);
    if (range[0].kind() === addr.kind() && (!best || range[1] > best[0]) && addr.match(range)) best = [range[1], v];
  }
  return best?.[1] ?? { identity: IDENTITY_WORLD, cidrIdentity: IDENTITY_ANY };
}

export interface Verdict {
  allowed: boolean;
  /** The rule that allowed it, as the kernel's entry names it. */
  rule?: number;
}

/** What the datapath decides for a new connection of `ep` in `direction` with the peer `peer`,
 *  by the same lookups bpf/include/policy.h makes: the peer's identity, its ipBlock region,
 *  then every peer; each a longest-prefix match on protocol and port. */
export function evaluate(
  ep: CompiledEndpoint,
  direction: Direction,
  peer: IpcacheValue,
  proto: number,
  port: number,
): Verdict {
  if (!ep.isolated[direction]) return { allowed: true };
  const lookups = [peer.identity, ...(peer.cidrIdentity !== IDENTITY_ANY ? [peer.cidrIdentity] : []), IDENTITY_ANY];
  for (const identity of lookups) {
    let best: [number, number] | undefined; // [prefix bits, rule]
    for (const [e, rule] of ep.entries.values()) {
      if (e.identity !== identity || e.direction !== direction) continue;
      const bits = e.proto === 0 ? 0 : 8 + e.portBits;
      if (e.proto !== 0 && e.proto !== proto) continue;
      if (e.portBits > 0 && port >> (16 - e.portBits) !== e.port >> (16 - e.portBits)) continue;
      if (!best || bits > best[0]) best = [bits, rule];
    }
    if (best) return { allowed: true, rule: best[1] };
  }
  return { allowed: false };
}
