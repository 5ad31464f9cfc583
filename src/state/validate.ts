// Validation of raw objects (parsed YAML or JSON from any source) into typed resources. Every
// problem names the field, so that a log line points straight at what to fix.
import { parseIp } from '../lib/ip.js';
import type { EndpointSlice, Resource, Service, ServicePort, Protocol, Endpoint, EndpointPort } from './resources.js';

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
// The name rules Kubernetes applies: namespaces and port names are RFC 1123 labels, Service
// names RFC 1035 labels (they become DNS names, so they start with a letter), EndpointSlice
// names RFC 1123 subdomains.
interface NameRule {
  re: RegExp;
  max: number;
  what: string;
}
const DNS1123_LABEL: NameRule = { re: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, max: 63, what: 'an RFC 1123 label' };
const DNS1035_LABEL: NameRule = { re: /^[a-z]([-a-z0-9]*[a-z0-9])?$/, max: 63, what: 'an RFC 1035 label (lower case, starting with a letter)' };
const DNS1123_SUBDOMAIN: NameRule = {
  re: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
  max: 253,
  what: 'an RFC 1123 subdomain',
};
const validName = (v: string, rule: NameRule) => v.length <= rule.max && rule.re.test(v);
const nameProblem = (v: string, rule: NameRule) => `${JSON.stringify(v)} is not ${rule.what} of at most ${rule.max} characters`;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  readonly errors: string[] = [];
  fail(path: string, msg: string): void {
    this.errors.push(`${path}: ${msg}`);
  }
  string(v: unknown, path: string, opts: { required?: boolean } = {}): string | undefined {
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, 'required');
      return undefined;
    }
    if (typeof v !== 'string') return this.fail(path, `must be a string, got ${JSON.stringify(v)}`), undefined;
    return v;
  }
  port(v: unknown, path: string, opts: { required?: boolean } = {}): number | undefined {
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, 'required');
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
      return this.fail(path, `${JSON.stringify(v)} is not a port number (1-65535)`), undefined;
    }
    return v;
  }
  protocol(v: unknown, path: string): Protocol {
    if (v === undefined || v === null) return 'TCP';
    if (!PROTOCOLS.includes(v as Protocol)) this.fail(path, `unknown protocol ${JSON.stringify(v)} (want TCP, UDP or SCTP)`);
    return v as Protocol;
  }
  array(v: unknown, path: string, opts: { required?: boolean } = {}): unknown[] {
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, 'required');
      return [];
    }
    if (!Array.isArray(v)) return this.fail(path, 'must be a list'), [];
    return v;
  }
  ip(v: unknown, path: string): 4 | 6 | undefined {
    const s = this.string(v, path, { required: true });
    if (s === undefined) return undefined;
    const parsed = parseIp(s);
    if (!parsed) this.fail(path, `${JSON.stringify(s)} is not an IP address`);
    return parsed?.family;
  }
  labels(v: unknown, path: string): Record<string, string> | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) return this.fail(path, 'must be a map of strings'), undefined;
    for (const [k, val] of Object.entries(v)) if (typeof val !== 'string') this.fail(`${path}.${k}`, 'must be a string');
    return v as Record<string, string>;
  }
}

function checkMeta(c: Checker, raw: Obj, nameRule: NameRule) {
  if (!isObj(raw.metadata)) {
    c.fail('metadata', 'required');
    return { name: '', namespace: 'default' };
  }
  const m = raw.metadata;
  const name = c.string(m.name, 'metadata.name', { required: true }) ?? '';
  if (name && !validName(name, nameRule)) c.fail('metadata.name', nameProblem(name, nameRule));
  const namespace = c.string(m.namespace, 'metadata.namespace') ?? 'default';
  if (!validName(namespace, DNS1123_LABEL)) c.fail('metadata.namespace', nameProblem(namespace, DNS1123_LABEL));
  const labels = c.labels(m.labels, 'metadata.labels');
  const resourceVersion = c.string(m.resourceVersion, 'metadata.resourceVersion');
  return { name, namespace, ...(labels && { labels }), ...(resourceVersion && { resourceVersion }) };
}

export function validateService(raw: Obj): Validation<Service> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1035_LABEL);
  const spec = isObj(raw.spec) ? raw.spec : (c.fail('spec', 'required'), {});
  const type = c.string(spec.type, 'spec.type') ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type)) c.fail('spec.type', `unknown type ${JSON.stringify(type)}`);

  const clusterIP = c.string(spec.clusterIP, 'spec.clusterIP');
  let clusterIPs = c.array(spec.clusterIPs, 'spec.clusterIPs') as string[];
  if (clusterIPs.length === 0 && clusterIP !== undefined) clusterIPs = [clusterIP];
  if (clusterIP !== undefined && clusterIPs[0] !== clusterIP) c.fail('spec.clusterIPs[0]', 'must equal spec.clusterIP');
  const headless = clusterIPs[0] === 'None' || clusterIPs[0] === '';
  const families: (4 | 6 | undefined)[] = headless ? [] : clusterIPs.map((ip, i) => c.ip(ip, `spec.clusterIPs[${i}]`));
  if (families.length === 2 && families[0] === families[1]) c.fail('spec.clusterIPs', 'a dual-stack service needs one address of each family');
  if (families.length > 2) c.fail('spec.clusterIPs', 'at most two addresses');

  const ipFamilies = c.array(spec.ipFamilies, 'spec.ipFamilies');
  ipFamilies.forEach((f, i) => {
    if (f !== 'IPv4' && f !== 'IPv6') return c.fail(`spec.ipFamilies[${i}]`, `unknown family ${JSON.stringify(f)}`);
    const fam = families[i];
    if (fam !== undefined && `IPv${fam}` !== f) c.fail(`spec.clusterIPs[${i}]`, `${clusterIPs[i]} is not an ${f} address (spec.ipFamilies[${i}] is ${f})`);
  });

  const ports: ServicePort[] = [];
  const portNames = new Set<string>();
  const portNumbers = new Map<string, number>();
  const rawPorts = c.array(spec.ports, 'spec.ports', { required: type !== 'ExternalName' && !headless });
  rawPorts.forEach((p, i) => {
    const path = `spec.ports[${i}]`;
    if (!isObj(p)) return c.fail(path, 'must be an object');
    const name = c.string(p.name, `${path}.name`);
    if (rawPorts.length > 1 && !name) c.fail(`${path}.name`, 'required when a service has more than one port');
    if (name !== undefined) {
      if (name && !validName(name, DNS1123_LABEL)) c.fail(`${path}.name`, nameProblem(name, DNS1123_LABEL));
      if (portNames.has(name)) c.fail(`${path}.name`, `duplicate port name ${JSON.stringify(name)}`);
      portNames.add(name);
    }
    const port = c.port(p.port, `${path}.port`, { required: true });
    const protocol = c.protocol(p.protocol, `${path}.protocol`);
    if (port !== undefined) {
      // One address, port and protocol can only lead to one set of backends.
      const first = portNumbers.get(`${port}/${protocol}`);
      if (first !== undefined) c.fail(`${path}.port`, `duplicate port ${port}/${protocol} (also spec.ports[${first}])`);
      else portNumbers.set(`${port}/${protocol}`, i);
    }
    let targetPort: number | string | undefined;
    if (typeof p.targetPort === 'string') targetPort = p.targetPort;
    else if (p.targetPort !== undefined) targetPort = c.port(p.targetPort, `${path}.targetPort`);
    if (port !== undefined) ports.push({ ...(name !== undefined && { name }), port, protocol, ...(targetPort !== undefined && { targetPort }) });
  });

  if (c.errors.length) return { ok: false, errors: c.errors };
  return {
    ok: true,
    value: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata,
      spec: {
        type: type as Service['spec']['type'],
        ...(clusterIP !== undefined && { clusterIP }),
        clusterIPs,
        ipFamilies: (ipFamilies.length ? ipFamilies : families.map((f) => `IPv${f}`)) as Service['spec']['ipFamilies'],
        ports,
        ...(isObj(spec.selector) && { selector: spec.selector as Record<string, string> }),
      },
    },
  };
}

export function validateEndpointSlice(raw: Obj): Validation<EndpointSlice> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1123_SUBDOMAIN);
  const addressType = raw.addressType;
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') {
    c.fail('addressType', `${JSON.stringify(addressType)} is not IPv4, IPv6 or FQDN`);
  }
  const ports: EndpointPort[] = c.array(raw.ports, 'ports').map((p, i) => {
    const path = `ports[${i}]`;
    if (!isObj(p)) return c.fail(path, 'must be an object'), {};
    const name = c.string(p.name, `${path}.name`);
    const port = c.port(p.port, `${path}.port`);
    const protocol = c.protocol(p.protocol, `${path}.protocol`);
    return { ...(name !== undefined && { name }), ...(port !== undefined && { port }), protocol };
  });
  // `endpoints: null` is how the API serializes a slice of a Service with no pods.
  const endpoints: Endpoint[] = (raw.endpoints === null ? [] : c.array(raw.endpoints, 'endpoints', { required: true })).map((e, i) => {
    const path = `endpoints[${i}]`;
    if (!isObj(e)) return c.fail(path, 'must be an object'), { addresses: [] };
    const addresses = c.array(e.addresses, `${path}.addresses`, { required: true }) as string[];
    if (addresses.length === 0) c.fail(`${path}.addresses`, 'needs at least one address');
    if (addressType !== 'FQDN') {
      addresses.forEach((a, j) => {
        const fam = c.ip(a, `${path}.addresses[${j}]`);
        if (fam !== undefined && `IPv${fam}` !== addressType) c.fail(`${path}.addresses[${j}]`, `${a} is not an ${String(addressType)} address`);
      });
    }
    if (e.conditions !== undefined && e.conditions !== null && !isObj(e.conditions)) c.fail(`${path}.conditions`, 'must be an object');
    const conditions = isObj(e.conditions) ? e.conditions : {};
    for (const k of ['ready', 'serving', 'terminating'] as const) {
      if (conditions[k] !== undefined && typeof conditions[k] !== 'boolean') c.fail(`${path}.conditions.${k}`, 'must be true or false');
    }
    return {
      addresses,
      conditions: conditions as Endpoint['conditions'],
      ...(typeof e.nodeName === 'string' && { nodeName: e.nodeName }),
    };
  });
  if (c.errors.length) return { ok: false, errors: c.errors };
  return {
    ok: true,
    value: { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata, addressType: addressType as EndpointSlice['addressType'], ports, endpoints },
  };
}

/** Validates any supported object; unsupported kinds are reported as such, not as errors. */
export function validateResource(raw: unknown): Validation<Resource> | { ok: 'unsupported'; kind: string } {
  if (!isObj(raw)) return { ok: false, errors: ['(document): not an object'] };
  const kind = raw.kind;
  const apiVersion = raw.apiVersion;
  if (kind === 'Service' && apiVersion === 'v1') return validateService(raw);
  if (kind === 'EndpointSlice' && apiVersion === 'discovery.k8s.io/v1') return validateEndpointSlice(raw);
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') return { ok: false, errors: ['kind/apiVersion: required'] };
  return { ok: 'unsupported', kind: `${apiVersion} ${kind}` };
}
