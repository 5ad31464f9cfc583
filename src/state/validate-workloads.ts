// Validation of the objects that describe where workloads run: Pods, Namespaces and Nodes
// (the Gateway API's are src/state/routes/validate.ts's). Each keeps only the fields Weft
// reads, so that a cluster's worth of them stays small in memory.
import {
  Checker,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  isObj,
  portNameProblem,
  type Obj,
  type Validation,
} from '../lib/checker.js';
import { isCidr, parseIp } from '../lib/ip.js';
import { checkMeta } from './meta.js';
import type { ContainerPort, Namespace, Node, Pod } from './resources.js';

function containerPorts(c: Checker, v: unknown, path: string): ContainerPort[] | undefined {
  if (v === undefined || v === null) return undefined;
  return c.array(v, path).flatMap((p, i) => {
    const at = `${path}[${i}]`;
    if (!isObj(p)) return (c.fail(at, 'must be an object'), []);
    const name = c.string(p.name, `${at}.name`);
    if (name !== undefined && portNameProblem(name)) c.fail(`${at}.name`, portNameProblem(name)!);
    const containerPort = c.port(p.containerPort, `${at}.containerPort`, { required: true });
    const protocol = c.protocol(p.protocol, `${at}.protocol`);
    return containerPort === undefined ? [] : [{ ...(name !== undefined && { name }), containerPort, protocol }];
  });
}

export function validatePod(raw: Obj): Validation<Pod> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1123_SUBDOMAIN);
  const spec = isObj(raw.spec) ? raw.spec : (c.fail('spec', 'required'), {});
  const containers = c.array(spec.containers, 'spec.containers').flatMap((ct, i) => {
    if (!isObj(ct)) return (c.fail(`spec.containers[${i}]`, 'must be an object'), []);
    const name = c.string(ct.name, `spec.containers[${i}].name`, { required: true }) ?? '';
    const ports = containerPorts(c, ct.ports, `spec.containers[${i}].ports`);
    return [{ name, ...(ports && { ports }) }];
  });
  const nodeName = c.string(spec.nodeName, 'spec.nodeName');
  const status = isObj(raw.status) ? raw.status : {};
  const phase = c.string(status.phase, 'status.phase');
  const podIPs = c.array(status.podIPs, 'status.podIPs').flatMap((p, i) => {
    const ip = isObj(p) ? c.string(p.ip, `status.podIPs[${i}].ip`, { required: true }) : undefined;
    if (ip !== undefined && !parseIp(ip))
      c.fail(`status.podIPs[${i}].ip`, `${JSON.stringify(ip)} is not an IP address`);
    return ip === undefined ? [] : [{ ip }];
  });
  if (c.errors.length) return { ok: false, errors: c.errors };
  return {
    ok: true,
    value: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata,
      spec: { ...(nodeName && { nodeName }), ...(spec.hostNetwork === true && { hostNetwork: true }), containers },
      status: { ...(phase && { phase }), podIPs },
    },
  };
}

export function validateNamespace(raw: Obj): Validation<Namespace> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1123_LABEL, { clusterScoped: true });
  if (c.errors.length) return { ok: false, errors: c.errors };
  return { ok: true, value: { apiVersion: 'v1', kind: 'Namespace', metadata } };
}

export function validateNode(raw: Obj): Validation<Node> {
  const c = new Checker();
  const metadata = checkMeta(c, raw, DNS1123_SUBDOMAIN, { clusterScoped: true });
  const spec = isObj(raw.spec) ? raw.spec : {};
  // podCIDRs supersedes podCIDR (which holds its first element) since Kubernetes 1.16.
  const single = c.string(spec.podCIDR, 'spec.podCIDR');
  const listed = c.array(spec.podCIDRs, 'spec.podCIDRs');
  const podCIDRs = (listed.length ? listed : single ? [single] : []).flatMap((cidr, i) => {
    const s = c.string(cidr, `spec.podCIDRs[${i}]`, { required: true });
    if (s !== undefined && !isCidr(s)) c.fail(`spec.podCIDRs[${i}]`, `${JSON.stringify(s)} is not a CIDR`);
    return s === undefined ? [] : [s];
  });
  if (c.errors.length) return { ok: false, errors: c.errors };
  return { ok: true, value: { apiVersion: 'v1', kind: 'Node', metadata, spec: { podCIDRs } } };
}
