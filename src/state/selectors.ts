// Label selectors (metav1.LabelSelector): validation with field-named errors, and matching with
// the semantics of k8s.io/apimachinery's LabelSelectorAsSelector. Pure.
import type { Checker } from '../lib/checker.js';
import { isObj } from '../lib/checker.js';
import type { LabelSelector, SelectorOperator } from './resources.js';

const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];
// A label key is an optional DNS subdomain prefix and '/', then a name of at most 63
// characters: alphanumerics with '-', '_' or '.' inside. A value is empty or such a name.
const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !PREFIX.test(prefix))) {
    return `${JSON.stringify(key)}: the prefix must be a DNS subdomain of at most 253 characters`;
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return (
      `${JSON.stringify(key)} is not a label key (a name of at most 63 characters: ` +
      "letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
    );
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value === '' || (value.length <= 63 && NAME.test(value))) return undefined;
  return (
    `${JSON.stringify(value)} is not a label value (empty, or at most 63 characters: ` +
    "letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
  );
}

/** A selector as the API would accept it, or undefined (and errors in `c`). */
export function checkLabelSelector(c: Checker, v: unknown, path: string): LabelSelector | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) return (c.fail(path, 'must be an object'), undefined);
  const out: LabelSelector = {};
  if (v.matchLabels !== undefined && v.matchLabels !== null) {
    if (!isObj(v.matchLabels)) c.fail(`${path}.matchLabels`, 'must be a map of strings');
    else {
      out.matchLabels = {};
      for (const [k, val] of Object.entries(v.matchLabels)) {
        const at = `${path}.matchLabels[${JSON.stringify(k)}]`;
        const keyProblem = labelKeyProblem(k);
        if (keyProblem) c.fail(at, keyProblem);
        if (typeof val !== 'string') c.fail(at, `must be a string, got ${JSON.stringify(val)}`);
        else if (labelValueProblem(val)) c.fail(at, labelValueProblem(val)!);
        else out.matchLabels[k] = val;
      }
    }
  }
  const exprs = c.array(v.matchExpressions, `${path}.matchExpressions`);
  if (exprs.length) out.matchExpressions = [];
  exprs.forEach((e, i) => {
    const at = `${path}.matchExpressions[${i}]`;
    if (!isObj(e)) return c.fail(at, 'must be an object');
    const key = c.string(e.key, `${at}.key`, { required: true });
    if (key !== undefined && labelKeyProblem(key)) c.fail(`${at}.key`, labelKeyProblem(key)!);
    const operator = e.operator as SelectorOperator;
    if (!OPERATORS.includes(operator)) {
      return c.fail(
        `${at}.operator`,
        `${JSON.stringify(e.operator)} is not a valid operator (want In, NotIn, Exists or DoesNotExist)`,
      );
    }
    const values = c.array(e.values, `${at}.values`).map((x, j) => {
      if (typeof x !== 'string')
        return (c.fail(`${at}.values[${j}]`, `must be a string, got ${JSON.stringify(x)}`), '');
      if (labelValueProblem(x)) c.fail(`${at}.values[${j}]`, labelValueProblem(x)!);
      return x;
    });
    const setBased = operator === 'In' || operator === 'NotIn';
    if (setBased && values.length === 0) c.fail(`${at}.values`, `must be non-empty when operator is ${operator}`);
    if (!setBased && values.length > 0) c.fail(`${at}.values`, `must be empty when operator is ${operator}`);
    if (key !== undefined) out.matchExpressions!.push({ key, operator, ...(setBased && { values }) });
  });
  return out;
}

/** Whether `labels` satisfy every requirement of the selector. An empty selector selects everything. */
export function matchesSelector(sel: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const r of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(l, r.key);
    switch (r.operator) {
      case 'In':
        if (!has || !r.values!.includes(l[r.key]!)) return false;
        break;
      case 'NotIn':
        if (has && r.values!.includes(l[r.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}
