// Kubernetes object metadata, as every validator of src/state checks it.
import type { Checker } from '../lib/checker.js';
import { DNS1123_LABEL, isObj, nameProblem, validName, type NameRule, type Obj } from '../lib/checker.js';
import type { ObjectMeta } from './resources.js';

export interface MetaOptions {
  /** The object has no namespace: metadata.namespace is ''. */
  clusterScoped?: boolean;
  /** Keep metadata.creationTimestamp (checked: RFC 3339). Only the kinds whose compiler reads
   *  it ask: a cluster holds many Pods and EndpointSlices, and none needs it. */
  creationTimestamp?: boolean;
}

export function checkMeta(c: Checker, raw: Obj, nameRule: NameRule, opts: MetaOptions = {}): ObjectMeta {
  if (!isObj(raw.metadata)) {
    c.fail('metadata', 'required');
    return { name: '', namespace: opts.clusterScoped ? '' : 'default' };
  }
  const m = raw.metadata;
  const name = c.string(m.name, 'metadata.name', { required: true }) ?? '';
  if (name && !validName(name, nameRule)) c.fail('metadata.name', nameProblem(name, nameRule));
  // The API server ignores a namespace on a cluster-scoped object; so do we.
  const namespace = opts.clusterScoped ? '' : (c.string(m.namespace, 'metadata.namespace') ?? 'default');
  if (!opts.clusterScoped && !validName(namespace, DNS1123_LABEL))
    c.fail('metadata.namespace', nameProblem(namespace, DNS1123_LABEL));
  const labels = c.labels(m.labels, 'metadata.labels');
  const resourceVersion = c.string(m.resourceVersion, 'metadata.resourceVersion');
  const uid = c.string(m.uid, 'metadata.uid');
  const creationTimestamp = opts.creationTimestamp
    ? c.timestamp(m.creationTimestamp, 'metadata.creationTimestamp')
    : undefined;
  return {
    name,
    namespace,
    ...(labels && { labels }),
    ...(resourceVersion && { resourceVersion }),
    ...(uid && { uid }),
    ...(creationTimestamp && { creationTimestamp }),
  };
}
