// Validation of raw objects (parsed YAML or JSON from any source) into typed resources. Every
// problem names the field, so that a log line points straight at what to fix.
import {
  Checker,
  DNS1035_LABEL,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  isObj,
  nameProblem,
  validName,
  type Obj,
  type Validation,
} from '../lib/checker.js';
import { checkMeta } from './meta.js';
import type {
  EndpointConditions,
  EndpointSlice,
  Resource,
  Service,
  ServicePort,
  Endpoint,
  EndpointPort,
} from './resources.js';
import { validateGRPCRoute, validateHTTPRoute, validateReferenceGrant } from './routes/validate.js';
import { validateNetworkPolicy } from './validate-policy.js';
import { validateNamespace, validateNode, validatePod } from './validate-workloads.js';

export function validateService(raw: Obj): Validation<Service> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1035_LABEL);
  const spec = isObj(raw.spec) ? raw.spec : (c.fail('spec', 'required'), {});
  const type = c.string(spec.type, 'spec.type') ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type))
    c.fail('spec.type', `unknown type ${JSON.stringify(type)}`);

  const clusterIP = c.string(spec.clusterIP, 'spec.clusterIP');
  let clusterIPs = c.array(spec.clusterIPs, 'spec.clusterIPs') as string[];
  if (clusterIPs.length === 0 && clusterIP !== undefined) clusterIPs = [clusterIP];
  if (clusterIP !== undefined && clusterIPs[0] !== clusterIP) c.fail('spec.clusterIPs[0]', 'must equal spec.clusterIP');
  const headless = clusterIPs[0] === 'None' || clusterIPs[0] === '';
  const families: (4 | 6 | undefined)[] = headless ? [] : clusterIPs.map((ip, i) => c.ip(ip, `spec.clusterIPs[${i}]`));
  if (families.length === 2 && families[0] === families[1])
    c.fail('spec.clusterIPs', 'a dual-stack service needs one address of each family');
  if (families.length > 2) c.fail('spec.clusterIPs', 'at most two addresses');

  const ipFamilies = c.array(spec.ipFamilies, 'spec.ipFamilies');
  ipFamilies.forEach((f, i) => {
    if (f !== 'IPv4' && f !== 'IPv6') return c.fail(`spec.ipFamilies[${i}]`, `unknown family ${JSON.stringify(f)}`);
    const fam = families[i];
    if (fam !== undefined && `IPv${fam}` !== f)
      c.fail(`spec.clusterIPs[${i}]`, `${clusterIPs[i]} is not an ${f} address (spec.ipFamilies[${i}] is ${f})`);
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
    if (port !== undefined)
      ports.push({
        ...(name !== undefined && { name }),
        port,
        protocol,
        ...(targetPort !== undefined && { targetPort }),
      });
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

// A node holds 100,000 endpoints at scale: their conditions (a handful of combinations) and
// node names (one per node) are shared, not held once per endpoint.
const conditionSets = new Map<string, EndpointConditions>();
function sharedConditions(c: EndpointConditions): EndpointConditions {
  const key = `${c.ready}|${c.serving}|${c.terminating}`;
  let shared = conditionSets.get(key);
  if (!shared) {
    shared = Object.freeze({
      ...(typeof c.ready === 'boolean' && { ready: c.ready }),
      ...(typeof c.serving === 'boolean' && { serving: c.serving }),
      ...(typeof c.terminating === 'boolean' && { terminating: c.terminating }),
    });
    conditionSets.set(key, shared);
  }
  return shared;
}

const interned = new Map<string, string>();
function intern(s: string): string {
  const held = interned.get(s);
  if (held !== undefined) return held;
  if (interned.size >= 65536) interned.clear(); // bounded: node names churn over a cluster's life
  interned.set(s, s);
  return s;
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
    if (!isObj(p)) return (c.fail(path, 'must be an object'), {});
    const name = c.string(p.name, `${path}.name`);
    const port = c.port(p.port, `${path}.port`);
    const protocol = c.protocol(p.protocol, `${path}.protocol`);
    return { ...(name !== undefined && { name }), ...(port !== undefined && { port }), protocol };
  });
  // `endpoints: null` is how the API serializes a slice of a Service with no pods.
  const endpoints: Endpoint[] = (
    raw.endpoints === null ? [] : c.array(raw.endpoints, 'endpoints', { required: true })
  ).map((e, i) => {
    const path = `endpoints[${i}]`;
    if (!isObj(e)) return (c.fail(path, 'must be an object'), { addresses: [] });
    const addresses = c.array(e.addresses, `${path}.addresses`, { required: true }) as string[];
    if (addresses.length === 0) c.fail(`${path}.addresses`, 'needs at least one address');
    if (addressType !== 'FQDN') {
      addresses.forEach((a, j) => {
        const fam = c.ip(a, `${path}.addresses[${j}]`);
        if (fam !== undefined && `IPv${fam}` !== addressType)
          c.fail(`${path}.addresses[${j}]`, `${a} is not an ${String(addressType)} address`);
      });
    }
    if (e.conditions !== undefined && e.conditions !== null && !isObj(e.conditions))
      c.fail(`${path}.conditions`, 'must be an object');
    const conditions = isObj(e.conditions) ? e.conditions : {};
    for (const k of ['ready', 'serving', 'terminating'] as const) {
      if (conditions[k] !== undefined && typeof conditions[k] !== 'boolean')
        c.fail(`${path}.conditions.${k}`, 'must be true or false');
    }
    return {
      addresses,
      conditions: sharedConditions(conditions),
      ...(typeof e.nodeName === 'string' && { nodeName: intern(e.nodeName) }),
    };
  });
  if (c.errors.length) return { ok: false, errors: c.errors };
  return {
    ok: true,
    value: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata,
      addressType: addressType as EndpointSlice['addressType'],
      ports,
      endpoints,
    },
  };
}

/** Validates any supported object; unsupported kinds are reported as such, not as errors. */
const VALIDATORS: Record<string, (raw: Obj) => Validation<Resource>> = {
  'v1 Service': validateService,
  'discovery.k8s.io/v1 EndpointSlice': validateEndpointSlice,
  'v1 Pod': validatePod,
  'v1 Namespace': validateNamespace,
  'v1 Node': validateNode,
  'networking.k8s.io/v1 NetworkPolicy': validateNetworkPolicy,
  'gateway.networking.k8s.io/v1 HTTPRoute': validateHTTPRoute,
  'gateway.networking.k8s.io/v1 GRPCRoute': validateGRPCRoute,
  'gateway.networking.k8s.io/v1beta1 ReferenceGrant': validateReferenceGrant,
  'gateway.networking.k8s.io/v1 ReferenceGrant': validateReferenceGrant,
};

/** Validates any supported object; unsupported kinds are reported as such, not as errors. */
export function validateResource(raw: unknown): Validation<Resource> | { ok: 'unsupported'; kind: string } {
  if (!isObj(raw)) return { ok: false, errors: ['(document): not an object'] };
  const { kind, apiVersion } = raw;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string')
    return { ok: false, errors: ['kind/apiVersion: required'] };
  const validate = VALIDATORS[`${apiVersion} ${kind}`];
  return validate ? validate(raw) : { ok: 'unsupported', kind: `${apiVersion} ${kind}` };
}
