// networking.k8s.io/v1 NetworkPolicy validation, with the API server's rules and defaults, and
// every problem named by field. The result is the normalized policy the compiler reads:
// policyTypes filled in, protocols defaulted, CIDRs in canonical form. Pure.
import ipaddr from 'ipaddr.js';
import { Checker, DNS1123_SUBDOMAIN, isObj, portNameProblem, type Obj, type Validation } from '../lib/checker.js';
import { checkMeta } from './meta.js';
import type { IPBlock, NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyType } from './resources.js';
import { checkLabelSelector } from './selectors.js';

/** The canonical form of a CIDR (host bits cleared), or undefined. */
function canonicalCidr(text: string): { cidr: string; range: [ipaddr.IPv4 | ipaddr.IPv6, number] } | undefined {
  if (!ipaddr.isValidCIDR(text)) return undefined;
  const range = ipaddr.parseCIDR(text);
  const base =
    range[0].kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  return { cidr: `${base.toString()}/${range[1]}`, range: [base, range[1]] };
}

function checkIpBlock(c: Checker, v: unknown, path: string): IPBlock | undefined {
  if (!isObj(v)) return (c.fail(path, 'must be an object'), undefined);
  const cidrText = c.string(v.cidr, `${path}.cidr`, { required: true });
  const cidr = cidrText === undefined ? undefined : canonicalCidr(cidrText);
  if (cidrText !== undefined && !cidr) c.fail(`${path}.cidr`, `${JSON.stringify(cidrText)} is not a CIDR`);
  const except = c.array(v.except, `${path}.except`).flatMap((x, i) => {
    const at = `${path}.except[${i}]`;
    const text = c.string(x, at, { required: true });
    if (text === undefined) return [];
    const e = canonicalCidr(text);
    if (!e) return (c.fail(at, `${JSON.stringify(text)} is not a CIDR`), []);
    // The API requires each exception to lie strictly inside the block.
    if (
      cidr &&
      (e.range[0].kind() !== cidr.range[0].kind() || e.range[1] <= cidr.range[1] || !e.range[0].match(cidr.range))
    ) {
      return (c.fail(at, `${text} is not strictly inside ${cidr.cidr}`), []);
    }
    return [e.cidr];
  });
  return cidr ? { cidr: cidr.cidr, except } : undefined;
}

function checkPeers(c: Checker, v: unknown, path: string): PolicyPeer[] | undefined {
  if (v === undefined || v === null) return undefined;
  return c.array(v, path).flatMap((p, i): PolicyPeer[] => {
    const at = `${path}[${i}]`;
    if (!isObj(p)) return (c.fail(at, 'must be an object'), []);
    const hasPods = p.podSelector != null || p.namespaceSelector != null;
    if (p.ipBlock != null) {
      if (hasPods) return (c.fail(at, 'ipBlock cannot be combined with podSelector or namespaceSelector'), []);
      const ipBlock = checkIpBlock(c, p.ipBlock, `${at}.ipBlock`);
      return ipBlock ? [{ kind: 'ipBlock', ipBlock }] : [];
    }
    if (!hasPods) return (c.fail(at, 'must set podSelector, namespaceSelector or ipBlock'), []);
    const podSelector = checkLabelSelector(c, p.podSelector, `${at}.podSelector`);
    const namespaceSelector = checkLabelSelector(c, p.namespaceSelector, `${at}.namespaceSelector`);
    return [{ kind: 'pods', ...(podSelector && { podSelector }), ...(namespaceSelector && { namespaceSelector }) }];
  });
}

function checkPorts(c: Checker, v: unknown, path: string): PolicyPort[] | undefined {
  if (v === undefined || v === null) return undefined;
  return c.array(v, path).flatMap((p, i): PolicyPort[] => {
    const at = `${path}[${i}]`;
    if (!isObj(p)) return (c.fail(at, 'must be an object'), []);
    const protocol = c.protocol(p.protocol, `${at}.protocol`);
    let port: number | string | undefined;
    if (typeof p.port === 'string') {
      const problem = portNameProblem(p.port);
      if (problem) c.fail(`${at}.port`, problem);
      port = p.port;
    } else port = c.port(p.port, `${at}.port`);
    const endPort = c.port(p.endPort, `${at}.endPort`);
    if (endPort !== undefined) {
      if (typeof port !== 'number') c.fail(`${at}.endPort`, 'may only be set with a numeric port');
      else if (endPort < port) c.fail(`${at}.endPort`, `${endPort} is below port ${port}`);
    }
    return [{ protocol, ...(port !== undefined && { port }), ...(endPort !== undefined && { endPort }) }];
  });
}

function checkRules(c: Checker, v: unknown, path: string, peersField: 'from' | 'to'): PolicyRule[] {
  return c.array(v, path).flatMap((r, i): PolicyRule[] => {
    const at = `${path}[${i}]`;
    if (!isObj(r)) return (c.fail(at, 'must be an object'), []);
    const peers = checkPeers(c, r[peersField], `${at}.${peersField}`);
    const ports = checkPorts(c, r.ports, `${at}.ports`);
    return [{ ...(peers && peers.length > 0 && { peers }), ...(ports && ports.length > 0 && { ports }) }];
  });
}

export function validateNetworkPolicy(raw: Obj): Validation<NetworkPolicy> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1123_SUBDOMAIN);
  const spec = isObj(raw.spec) ? raw.spec : (c.fail('spec', 'required'), {});
  const podSelector = checkLabelSelector(c, spec.podSelector, 'spec.podSelector');
  if (spec.podSelector === undefined || spec.podSelector === null)
    c.fail('spec.podSelector', 'required (an empty selector {} selects every pod of the namespace)');
  const ingress = checkRules(c, spec.ingress, 'spec.ingress', 'from');
  const egress = checkRules(c, spec.egress, 'spec.egress', 'to');
  // The API server's default: Ingress always, Egress when there are egress rules.
  let policyTypes: PolicyType[] = ['Ingress', ...(egress.length > 0 ? ['Egress' as const] : [])];
  if (spec.policyTypes !== undefined && spec.policyTypes !== null) {
    const given = c.array(spec.policyTypes, 'spec.policyTypes');
    given.forEach((t, i) => {
      if (t !== 'Ingress' && t !== 'Egress')
        c.fail(`spec.policyTypes[${i}]`, `${JSON.stringify(t)} is not Ingress or Egress`);
    });
    if (given.length > 2 || new Set(given).size !== given.length)
      c.fail('spec.policyTypes', 'each of Ingress and Egress at most once');
    if (given.length > 0) policyTypes = given as PolicyType[];
  }
  if (c.errors.length) return { ok: false, errors: c.errors };
  return {
    ok: true,
    value: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata,
      spec: { podSelector: podSelector ?? {}, policyTypes, ingress, egress },
    },
  };
}
