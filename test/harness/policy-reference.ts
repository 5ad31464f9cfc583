// A reference model of Kubernetes networking.k8s.io/v1 NetworkPolicy, written from the API
// reference and the concepts page, independently of Weft's implementation: the oracle of the
// truth-table suite (test/e2e/network-policy.test.ts). It reads objects as the API gives them
// (raw NetworkPolicy, Pod and Namespace shapes) and answers one question: may this pod open a
// connection to that pod on this port? Pure: no imports from src/, no I/O.
//
// The rules it implements:
// - A pod is isolated for ingress (egress) iff some NetworkPolicy in its namespace selects it
//   (spec.podSelector) and has Ingress (Egress) among its policyTypes. policyTypes, when absent
//   or empty, is Ingress, plus Egress when the policy has at least one egress rule.
// - Policies are additive: an isolated pod accepts (sends) what at least one rule of at least
//   one selecting policy allows. A connection needs both the source's egress and the
//   destination's ingress to allow it. Replies of an allowed connection are not policed.
// - A rule allows a peer (from/to, missing or empty: every peer) on a port (ports, missing or
//   empty: every port of every protocol).
// - A peer is a podSelector (pods of the policy's namespace), a namespaceSelector (every pod of
//   the matching namespaces), both in one peer (matching pods in matching namespaces), or an
//   ipBlock (cidr minus except), which here matches a pod by the address the connection uses.
// - A port is a number (with endPort: an inclusive range) or a container port name, looked up
//   in the destination pod's containers (the peer for egress, the selected pod for ingress);
//   protocol defaults to TCP and must match the connection's.

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type Family = 4 | 6;
export type Labels = Record<string, string>;

export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyPort {
  protocol?: Protocol;
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: Protocol;
}

export interface ModelPod {
  namespace: string;
  name: string;
  labels: Labels;
  /** The pod's addresses (status.podIPs), at most one per family. */
  ips: string[];
  /** Every container's ports, flattened (names are unique within a pod). */
  ports: ContainerPort[];
}

export interface PodRef {
  namespace: string;
  name: string;
}

export interface Model {
  /** Namespace name → labels, kubernetes.io/metadata.name included. */
  namespaces: Map<string, Labels>;
  pods: ModelPod[];
  policies: NetworkPolicy[];
}

export interface ModelInput {
  /** Namespace name → its own labels; kubernetes.io/metadata.name is added as the API server does. */
  namespaces: Record<string, Labels>;
  pods: ModelPod[];
  policies: NetworkPolicy[];
}

export function buildModel(input: ModelInput): Model {
  const namespaces = new Map<string, Labels>();
  for (const [name, labels] of Object.entries(input.namespaces)) {
    namespaces.set(name, { ...labels, 'kubernetes.io/metadata.name': name });
  }
  for (const p of input.pods) {
    if (!namespaces.has(p.namespace))
      throw new Error(`pod ${p.namespace}/${p.name}: no namespace ${p.namespace} in the model`);
  }
  return { namespaces, pods: input.pods, policies: input.policies };
}

/** The same cluster with another policy set. */
export function withPolicies(model: Model, policies: NetworkPolicy[]): Model {
  return { ...model, policies };
}

// ---- label selectors (metav1.LabelSelector) ----

function matchesRequirement(labels: Labels, r: LabelSelectorRequirement): boolean {
  const has = Object.hasOwn(labels, r.key);
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return has && values.includes(labels[r.key]!);
    case 'NotIn':
      // A pod without the key is "not in" any set of values.
      return !(has && values.includes(labels[r.key]!));
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      throw new Error(`selector operator ${JSON.stringify(r.operator)}: the model only takes valid policies`);
  }
}

/** An empty selector ({}) selects everything; matchLabels and matchExpressions are ANDed. */
export function matchesSelector(labels: Labels, sel: LabelSelector): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  return (sel.matchExpressions ?? []).every((r) => matchesRequirement(labels, r));
}

// ---- addresses and CIDRs ----

interface Addr {
  family: Family;
  value: bigint;
}

function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
}

function parseIPv6(s: string): bigint | undefined {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = s.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const tail = parseIPv4(v4[2]!);
    if (tail === undefined) return undefined;
    s = `${v4[1]}${(tail >> 16n).toString(16)}:${(tail & 0xffffn).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function parseAddr(s: string): Addr | undefined {
  if (s.includes(':')) {
    const value = parseIPv6(s);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIPv4(s);
  return value === undefined ? undefined : { family: 4, value };
}

/** Whether `ip` lies in `cidr`; addresses of the other family never do. */
export function cidrContains(cidr: string, ip: string): boolean {
  const [base, len] = cidr.split('/');
  const net = parseAddr(base ?? '');
  const addr = parseAddr(ip);
  const bits = net?.family === 6 ? 128 : 32;
  const prefix = Number(len);
  if (!net || !addr || len === undefined || !/^\d+$/.test(len) || prefix > bits)
    throw new Error(`${cidr} or ${ip}: not a CIDR and an address`);
  if (net.family !== addr.family) return false;
  const shift = BigInt(bits - prefix);
  return net.value >> shift === addr.value >> shift;
}

function inIpBlock(block: IPBlock, ip: string): boolean {
  return cidrContains(block.cidr, ip) && !(block.except ?? []).some((e) => cidrContains(e, ip));
}

// ---- policies ----

type Direction = 'ingress' | 'egress';

const keyOf = (p: PodRef) => `${p.namespace}/${p.name}`;

function policyTypes(pol: NetworkPolicy): Set<'Ingress' | 'Egress'> {
  const given = pol.spec.policyTypes ?? [];
  if (given.length > 0) return new Set(given);
  // The API server's default: every policy affects ingress; egress only with egress rules.
  return new Set((pol.spec.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress']);
}

function policyNamespace(pol: NetworkPolicy): string {
  return pol.metadata.namespace ?? 'default';
}

function findPod(model: Model, ref: PodRef): ModelPod {
  const pod = model.pods.find((p) => p.namespace === ref.namespace && p.name === ref.name);
  if (!pod) throw new Error(`no pod ${keyOf(ref)} in the model`);
  return pod;
}

function ipOf(pod: ModelPod, family: Family): string {
  const ip = pod.ips.find((a) => parseAddr(a)?.family === family);
  if (!ip) throw new Error(`pod ${keyOf(pod)} has no IPv${family} address`);
  return ip;
}

/** The policies of the pod's namespace that select it for this direction. */
function selecting(model: Model, pod: ModelPod, dir: Direction): NetworkPolicy[] {
  const type = dir === 'ingress' ? 'Ingress' : 'Egress';
  return model.policies.filter(
    (pol) =>
      policyNamespace(pol) === pod.namespace &&
      policyTypes(pol).has(type) &&
      matchesSelector(pod.labels, pol.spec.podSelector),
  );
}

/** Whether a peer of a policy in `policyNs` takes in `other`, reached at `ip`. */
function peerMatches(model: Model, peer: NetworkPolicyPeer, policyNs: string, other: ModelPod, ip: string): boolean {
  if (peer.ipBlock) return inIpBlock(peer.ipBlock, ip);
  if (!peer.podSelector && !peer.namespaceSelector)
    throw new Error('a peer needs podSelector, namespaceSelector or ipBlock');
  const nsOk = peer.namespaceSelector
    ? matchesSelector(model.namespaces.get(other.namespace) ?? {}, peer.namespaceSelector)
    : other.namespace === policyNs; // podSelector alone: the policy's own namespace
  return nsOk && (!peer.podSelector || matchesSelector(other.labels, peer.podSelector));
}

/** Whether a port entry takes in (port, protocol) on `dst`, the pod that receives the connection. */
function portMatches(entry: NetworkPolicyPort, dst: ModelPod, port: number, protocol: Protocol): boolean {
  const proto = entry.protocol ?? 'TCP';
  if (proto !== protocol) return false;
  if (entry.port === undefined) return true;
  if (typeof entry.port === 'number')
    return entry.endPort === undefined ? port === entry.port : port >= entry.port && port <= entry.endPort;
  // A named port: the destination's container port of that name, and the rule's protocol.
  const named = dst.ports.find((cp) => cp.name === entry.port && (cp.protocol ?? 'TCP') === proto);
  return named !== undefined && named.containerPort === port;
}

export interface SideVerdict {
  /** Some policy selects the pod for this direction. */
  isolated: boolean;
  /** The direction lets the connection through. */
  allowed: boolean;
  /** "ns/name" of every selecting policy with a rule that allows it. */
  allowedBy: string[];
}

export interface Verdict {
  allowed: boolean;
  egress: SideVerdict;
  ingress: SideVerdict;
}

function side(
  model: Model,
  dir: Direction,
  self: ModelPod,
  other: ModelPod,
  dst: ModelPod,
  port: number,
  protocol: Protocol,
  family: Family,
): SideVerdict {
  const policies = selecting(model, self, dir);
  const otherIp = ipOf(other, family);
  const allowedBy = policies
    .filter((pol) => {
      const rules =
        dir === 'ingress'
          ? (pol.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
          : (pol.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
      return rules.some(
        (r) =>
          ((r.peers ?? []).length === 0 ||
            r.peers!.some((peer) => peerMatches(model, peer, policyNamespace(pol), other, otherIp))) &&
          ((r.ports ?? []).length === 0 || r.ports!.some((entry) => portMatches(entry, dst, port, protocol))),
      );
    })
    .map((pol) => `${policyNamespace(pol)}/${pol.metadata.name}`);
  return { isolated: policies.length > 0, allowed: policies.length === 0 || allowedBy.length > 0, allowedBy };
}

/** The verdict for a new connection from `from` to `to` on port/protocol, over IPv4 or IPv6,
 *  with each direction's part in it. */
export function decide(
  model: Model,
  from: PodRef,
  to: PodRef,
  port: number,
  protocol: Protocol,
  family: Family = 4,
): Verdict {
  const src = findPod(model, from);
  const dst = findPod(model, to);
  const egress = side(model, 'egress', src, dst, dst, port, protocol, family);
  const ingress = side(model, 'ingress', dst, src, dst, port, protocol, family);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

/** Whether any policy isolates the pod, per direction. */
export function isolation(model: Model, ref: PodRef): { ingress: boolean; egress: boolean } {
  const pod = findPod(model, ref);
  return { ingress: selecting(model, pod, 'ingress').length > 0, egress: selecting(model, pod, 'egress').length > 0 };
}

export function allowed(
  model: Model,
  from: PodRef,
  to: PodRef,
  port: number,
  protocol: Protocol,
  family: Family = 4,
): boolean {
  return decide(model, from, to, port, protocol, family).allowed;
}
