// Rule generators shaped like kube-proxy's, for the `make bench` comparison.
//
// Pure functions: a list of services in, the text for `iptables-restore` or `nft -f` out.
// The shapes follow kube-proxy's iptables mode (KUBE-SERVICES → KUBE-SVC-<hash> with
// `statistic --mode random --probability` → KUBE-SEP-<hash> with DNAT, plus the masquerade
// mark chains and the filter-table forwarding rules it installs) and its nftables mode (one
// `ip kube-proxy` table, a `service-ips` verdict map keyed by address . protocol . port,
// per-service chains with `numgen random mod N vmap`, per-endpoint chains with `dnat`).
// Only ClusterIP services are modelled: no NodePorts, external IPs, session affinity or
// topology; those rules would not be on the measured path.
import { createHash } from 'node:crypto';

export type Proto = 'tcp' | 'udp' | 'sctp';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface KubeService {
  namespace: string;
  name: string;
  /** The Service port's name; '' for an unnamed port. */
  portName: string;
  clusterIP: string;
  port: number;
  proto: Proto;
  endpoints: Endpoint[];
}

export interface RuleOptions {
  /** The pod CIDR: traffic from outside it to a ClusterIP is marked for masquerade. */
  clusterCIDR: string;
  /** Service CIDRs: new connections to unallocated ClusterIPs in them are dropped (nftables). */
  serviceCIDRs: string[];
  /** Addresses that accept NodePort traffic (nftables `nodeport-ips`); may be empty. */
  nodeIPs?: string[];
}

const MASQ_MARK = '0x4000';

/** `ns/name:port` (or `ns/name` for an unnamed port), as kube-proxy's ServicePortName prints. */
export function servicePortName(s: KubeService): string {
  return s.portName ? `${s.namespace}/${s.name}:${s.portName}` : `${s.namespace}/${s.name}`;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (no padding) of the first bytes of a buffer, enough for `chars` characters. */
export function base32(buf: Uint8Array, chars: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
    if (out.length >= chars) break;
  }
  return out;
}

/** kube-proxy's chain-name hash: base32 of SHA-256 of the concatenated parts, truncated. */
export function chainHash(parts: string[], chars: number): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return base32(h.digest(), chars);
}

export function svcChain(s: KubeService): string {
  return `KUBE-SVC-${chainHash([servicePortName(s), s.proto], 16)}`;
}

export function sepChain(s: KubeService, ep: Endpoint): string {
  return `KUBE-SEP-${chainHash([servicePortName(s), s.proto, `${ep.ip}:${ep.port}`], 16)}`;
}

/** The probability for the i-th of n endpoints: 1/(n-i), printed like kube-proxy (%0.10f). */
export function probability(remaining: number): string {
  return (1 / remaining).toFixed(10);
}

function validate(services: KubeService[]): void {
  const seen = new Set<string>();
  for (const s of services) {
    const id = servicePortName(s);
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(s.clusterIP)) {
      throw new Error(`service ${id}: clusterIP ${JSON.stringify(s.clusterIP)} is not IPv4`);
    }
    if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
      throw new Error(`service ${id}: port ${s.port} out of range`);
    }
    const key = `${s.clusterIP}.${s.proto}.${s.port}`;
    if (seen.has(key)) throw new Error(`service ${id}: duplicate ${s.clusterIP}:${s.port}/${s.proto}`);
    seen.add(key);
    for (const ep of s.endpoints) {
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ep.ip) || !Number.isInteger(ep.port) || ep.port < 1 || ep.port > 65535) {
        throw new Error(`service ${id}: bad endpoint ${ep.ip}:${ep.port}`);
      }
    }
  }
}

/**
 * Input for `iptables-restore` (without --noflush: it replaces the filter and nat tables).
 * Services appear in KUBE-SERVICES in the order given, so the last one given is the last
 * service rule, followed only by kube-proxy's trailing NodePort rule.
 */
export function iptablesRestore(services: KubeService[], opts: RuleOptions): string {
  validate(services);
  const out: string[] = [];
  const push = (line: string): void => {
    out.push(line);
  };

  push('*filter');
  for (const c of ['INPUT', 'FORWARD', 'OUTPUT']) push(`:${c} ACCEPT [0:0]`);
  for (const c of [
    'KUBE-EXTERNAL-SERVICES',
    'KUBE-FIREWALL',
    'KUBE-FORWARD',
    'KUBE-NODEPORTS',
    'KUBE-PROXY-FIREWALL',
    'KUBE-SERVICES',
  ])
    push(`:${c} - [0:0]`);
  push(
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  );
  push('-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS');
  push(
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
  );
  push('-A INPUT -j KUBE-FIREWALL');
  push(
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  );
  push('-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD');
  push('-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  push(
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
  );
  push(
    '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
  );
  push('-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  push('-A OUTPUT -j KUBE-FIREWALL');
  push(
    '-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
  );
  push('-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP');
  push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${MASQ_MARK}/${MASQ_MARK} -j ACCEPT`,
  );
  push(
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  );
  // Filter KUBE-SERVICES only rejects services without endpoints.
  for (const s of services) {
    if (s.endpoints.length > 0) continue;
    push(
      `-A KUBE-SERVICES -d ${s.clusterIP}/32 -p ${s.proto} -m comment --comment "${servicePortName(s)} has no endpoints" -m ${s.proto} --dport ${s.port} -j REJECT --reject-with icmp-port-unreachable`,
    );
  }
  push('COMMIT');

  push('*nat');
  for (const c of ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']) push(`:${c} ACCEPT [0:0]`);
  for (const c of ['KUBE-MARK-MASQ', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-SERVICES']) push(`:${c} - [0:0]`);
  const svcRules: string[] = [];
  const chainRules: string[] = [];
  for (const s of services) {
    if (s.endpoints.length === 0) continue;
    const spn = servicePortName(s);
    const svc = svcChain(s);
    push(`:${svc} - [0:0]`);
    svcRules.push(
      `-A KUBE-SERVICES -d ${s.clusterIP}/32 -p ${s.proto} -m comment --comment "${spn} cluster IP" -m ${s.proto} --dport ${s.port} -j ${svc}`,
    );
    chainRules.push(
      `-A ${svc} ! -s ${opts.clusterCIDR} -d ${s.clusterIP}/32 -p ${s.proto} -m comment --comment "${spn} cluster IP" -m ${s.proto} --dport ${s.port} -j KUBE-MARK-MASQ`,
    );
    const n = s.endpoints.length;
    s.endpoints.forEach((ep, i) => {
      const sep = sepChain(s, ep);
      const stat = i < n - 1 ? ` -m statistic --mode random --probability ${probability(n - i)}` : '';
      chainRules.push(`-A ${svc} -m comment --comment "${spn} -> ${ep.ip}:${ep.port}"${stat} -j ${sep}`);
    });
    for (const ep of s.endpoints) {
      const sep = sepChain(s, ep);
      push(`:${sep} - [0:0]`);
      chainRules.push(`-A ${sep} -s ${ep.ip}/32 -m comment --comment "${spn}" -j KUBE-MARK-MASQ`);
      chainRules.push(
        `-A ${sep} -p ${s.proto} -m comment --comment "${spn}" -m ${s.proto} -j DNAT --to-destination ${ep.ip}:${ep.port}`,
      );
    }
  }
  push('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  push('-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
  push('-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING');
  push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${MASQ_MARK}`);
  push(`-A KUBE-POSTROUTING -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`);
  push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${MASQ_MARK}`);
  push(
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  );
  for (const r of svcRules) push(r);
  push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  for (const r of chainRules) push(r);
  push('COMMIT');
  return out.join('\n') + '\n';
}

/** nftables chain names: `<base32(sha256(base))[:8]>-<base>`, cut to nft's length limit. */
function hashAndTruncate(base: string): string {
  const name = `${chainHash([base], 8)}-${base}`;
  return name.length > NFT_CHAIN_NAME_MAX ? `${name.slice(0, NFT_CHAIN_NAME_MAX - 3)}...` : name;
}

const NFT_CHAIN_NAME_MAX = 200;

function nftServiceBase(s: KubeService): string {
  return `${s.namespace}/${s.name}/${s.proto}/${s.portName}`;
}

export function nftServiceChain(s: KubeService): string {
  return `service-${hashAndTruncate(nftServiceBase(s))}`;
}

export function nftEndpointChain(s: KubeService, ep: Endpoint): string {
  return `endpoint-${hashAndTruncate(`${nftServiceBase(s)}__${ep.ip}/${ep.port}`)}`;
}

export const NFT_TABLE = 'kube-proxy';

/**
 * Input for `nft -f`: creates (or empties and refills) table `ip kube-proxy`. One `add`
 * statement per object, as kube-proxy writes its transactions.
 */
export function nftScript(services: KubeService[], opts: RuleOptions): string {
  validate(services);
  const t = `ip ${NFT_TABLE}`;
  const out: string[] = [];
  const push = (line: string): void => {
    out.push(line);
  };
  push(`add table ${t} { comment "rules for kube-proxy" ; }`);
  push(`flush table ${t}`);
  push(`add set ${t} cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }`);
  push(`add set ${t} nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }`);
  push(
    `add map ${t} firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }`,
  );
  push(
    `add map ${t} no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }`,
  );
  push(
    `add map ${t} no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }`,
  );
  push(
    `add map ${t} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
  );
  push(`add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`);
  for (const c of [
    'cluster-ips-check',
    'firewall-check',
    'mark-for-masquerade',
    'masquerading',
    'nodeport-endpoints-check',
    'services',
    'service-endpoints-check',
  ])
    push(`add chain ${t} ${c}`);
  push(`add chain ${t} filter-prerouting-pre-dnat { type filter hook prerouting priority -110 ; }`);
  push(`add chain ${t} filter-output-pre-dnat { type filter hook output priority -110 ; }`);
  push(`add chain ${t} filter-forward { type filter hook forward priority 0 ; }`);
  push(`add chain ${t} filter-input { type filter hook input priority 0 ; }`);
  push(`add chain ${t} filter-output { type filter hook output priority 0 ; }`);
  push(`add chain ${t} nat-output { type nat hook output priority -100 ; }`);
  push(`add chain ${t} nat-postrouting { type nat hook postrouting priority 100 ; }`);
  push(`add chain ${t} nat-prerouting { type nat hook prerouting priority -100 ; }`);
  push(`add chain ${t} reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }`);

  push(
    `add rule ${t} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
  );
  if (opts.serviceCIDRs.length > 0) {
    push(
      `add rule ${t} cluster-ips-check ip daddr { ${opts.serviceCIDRs.join(', ')} } drop comment "Drop traffic to unallocated ClusterIPs"`,
    );
  }
  push(`add rule ${t} filter-prerouting-pre-dnat ct state new jump firewall-check`);
  push(`add rule ${t} filter-forward ct state new jump service-endpoints-check`);
  push(`add rule ${t} filter-forward ct state new jump cluster-ips-check`);
  push(`add rule ${t} filter-input ct state new jump nodeport-endpoints-check`);
  push(`add rule ${t} filter-input ct state new jump service-endpoints-check`);
  push(`add rule ${t} filter-output ct state new jump service-endpoints-check`);
  push(`add rule ${t} filter-output-pre-dnat ct state new jump firewall-check`);
  push(`add rule ${t} filter-output ct state new jump cluster-ips-check`);
  push(`add rule ${t} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips`);
  push(`add rule ${t} mark-for-masquerade mark set mark or ${MASQ_MARK}`);
  push(`add rule ${t} masquerading mark and ${MASQ_MARK} == 0 return`);
  push(`add rule ${t} masquerading mark set mark xor ${MASQ_MARK}`);
  push(`add rule ${t} masquerading masquerade fully-random`);
  push(`add rule ${t} nat-output jump services`);
  push(`add rule ${t} nat-postrouting jump masquerading`);
  push(`add rule ${t} nat-prerouting jump services`);
  push(
    `add rule ${t} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`,
  );
  push(`add rule ${t} reject-chain reject`);
  push(`add rule ${t} services ip daddr . meta l4proto . th dport vmap @service-ips`);
  push(`add rule ${t} services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`);
  push(`add rule ${t} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  for (const ip of opts.nodeIPs ?? []) push(`add element ${t} nodeport-ips { ${ip} }`);

  // Chains first: a rule's `goto` must name a chain that already exists in the transaction.
  const rules: string[] = [];
  for (const s of services) {
    const spn = servicePortName(s);
    rules.push(`add element ${t} cluster-ips { ${s.clusterIP} }`);
    if (s.endpoints.length === 0) {
      rules.push(
        `add element ${t} no-endpoint-services { ${s.clusterIP} . ${s.proto} . ${s.port} comment "${spn}" : goto reject-chain }`,
      );
      continue;
    }
    const svc = nftServiceChain(s);
    push(`add chain ${t} ${svc}`);
    rules.push(`add rule ${t} ${svc} ip daddr ${s.clusterIP} ip saddr != ${opts.clusterCIDR} jump mark-for-masquerade`);
    const vmap = s.endpoints.map((ep, i) => `${i} : goto ${nftEndpointChain(s, ep)}`).join(' , ');
    rules.push(`add rule ${t} ${svc} numgen random mod ${s.endpoints.length} vmap { ${vmap} }`);
    for (const ep of s.endpoints) {
      const epc = nftEndpointChain(s, ep);
      push(`add chain ${t} ${epc}`);
      rules.push(`add rule ${t} ${epc} ip saddr ${ep.ip} jump mark-for-masquerade`);
      rules.push(`add rule ${t} ${epc} meta l4proto ${s.proto} dnat to ${ep.ip}:${ep.port}`);
    }
    rules.push(`add element ${t} service-ips { ${s.clusterIP} . ${s.proto} . ${s.port} : goto ${svc} }`);
  }
  for (const r of rules) push(r);
  return out.join('\n') + '\n';
}

/** `nft -f` input that removes what nftScript created. */
export function nftDeleteScript(): string {
  return `delete table ip ${NFT_TABLE}\n`;
}

/** IPv4 dotted quad from a 32-bit number. */
export function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** 32-bit number from a dotted quad. */
export function ipv4ToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!;
}

export interface FillerOptions {
  /** How many filler services. */
  count: number;
  /** First ClusterIP to use; consecutive addresses follow. */
  firstClusterIP: string;
  /** First endpoint address; consecutive addresses follow (nothing listens on them). */
  firstEndpointIP: string;
  endpointsPerService: number;
  port: number;
  targetPort: number;
  proto?: Proto;
  namespace?: string;
}

/** The next address after n whose last octet is neither 0 nor 255. */
function nextHost(n: number): number {
  let x = (n + 1) >>> 0;
  while ((x & 255) === 0 || (x & 255) === 255) x = (x + 1) >>> 0;
  return x;
}

/** Filler services whose endpoints point at addresses not in use. */
export function fillerServices(o: FillerOptions): KubeService[] {
  const out: KubeService[] = [];
  let ip = ipv4ToInt(o.firstClusterIP);
  let ep = ipv4ToInt(o.firstEndpointIP);
  for (let i = 0; i < o.count; i++) {
    const endpoints: Endpoint[] = [];
    for (let k = 0; k < o.endpointsPerService; k++) {
      endpoints.push({ ip: ipv4(ep), port: o.targetPort });
      ep = nextHost(ep);
    }
    const clusterIP = ipv4(ip);
    ip = nextHost(ip);
    out.push({
      namespace: o.namespace ?? 'filler',
      name: `svc-${i}`,
      portName: 'http',
      clusterIP,
      port: o.port,
      proto: o.proto ?? 'tcp',
      endpoints,
    });
  }
  return out;
}
