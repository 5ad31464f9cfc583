// The field checker every validator uses: each problem names its field, so that a log line
// points straight at what to fix. Generic: it knows values and paths, not the objects they
// belong to (src/state/meta.ts checks Kubernetes metadata with it).
import { parseIp } from './ip.js';

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/** An L4 protocol as Kubernetes names it (Service, EndpointSlice and container ports). */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
// The name rules Kubernetes applies: namespaces and port names are RFC 1123 labels, Service
// names RFC 1035 labels (they become DNS names, so they start with a letter), EndpointSlice
// names RFC 1123 subdomains.
export interface NameRule {
  re: RegExp;
  max: number;
  what: string;
}
export const DNS1123_LABEL: NameRule = { re: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, max: 63, what: 'an RFC 1123 label' };
export const DNS1035_LABEL: NameRule = {
  re: /^[a-z]([-a-z0-9]*[a-z0-9])?$/,
  max: 63,
  what: 'an RFC 1035 label (lower case, starting with a letter)',
};
export const DNS1123_SUBDOMAIN: NameRule = {
  re: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
  max: 253,
  what: 'an RFC 1123 subdomain',
};
// A named port is an IANA service name: at most 15 characters of [a-z0-9-], at least one
// letter, no hyphen at either end or twice in a row (k8s.io/apimachinery IsValidPortName).
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/;
export const portNameProblem = (name: string): string | undefined =>
  name.length <= 15 && IANA_SVC_NAME.test(name)
    ? undefined
    : `${JSON.stringify(name)} is not a port name (at most 15 characters of a-z, 0-9 and '-', with a letter)`;

export const validName = (v: string, rule: NameRule) => v.length <= rule.max && rule.re.test(v);
export const nameProblem = (v: string, rule: NameRule) =>
  `${JSON.stringify(v)} is not ${rule.what} of at most ${rule.max} characters`;

// RFC 3339 date-time (section 5.6), as Kubernetes writes metadata.creationTimestamp.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/** Whether `s` is an RFC 3339 date-time: the pattern, and every field in its range (no
 *  February 30th, no hour 24; no leap second, which Go's time.Parse refuses too). */
export function isRfc3339(s: string): boolean {
  const m = RFC3339.exec(s);
  if (!m) return false;
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map(Number);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  const offsetOk = m[8] === undefined || (Number(m[8]) <= 23 && Number(m[9]) <= 59);
  return days !== undefined && day >= 1 && day <= days && hour <= 23 && minute <= 59 && second <= 59 && offsetOk;
}

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What Checker.text asks of a string: each bound or pattern only when given. */
export interface TextRule {
  required?: boolean;
  min?: number;
  max?: number;
  pattern?: RegExp;
  /** What `pattern` describes, for the error ("a namespace name"). */
  what?: string;
}

export class Checker {
  readonly errors: string[] = [];
  fail(path: string, msg: string): void {
    this.errors.push(`${path}: ${msg}`);
  }
  string(v: unknown, path: string, opts: { required?: boolean } = {}): string | undefined {
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, 'required');
      return undefined;
    }
    if (typeof v !== 'string') return (this.fail(path, `must be a string, got ${JSON.stringify(v)}`), undefined);
    return v;
  }
  port(v: unknown, path: string, opts: { required?: boolean } = {}): number | undefined {
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, 'required');
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
      return (this.fail(path, `${JSON.stringify(v)} is not a port number (1-65535)`), undefined);
    }
    return v;
  }
  protocol(v: unknown, path: string): Protocol {
    if (v === undefined || v === null) return 'TCP';
    if (!PROTOCOLS.includes(v as Protocol))
      this.fail(path, `unknown protocol ${JSON.stringify(v)} (want TCP, UDP or SCTP)`);
    return v as Protocol;
  }
  /** A list (at most `max` items, when given); unset is empty. */
  array(v: unknown, path: string, opts: { required?: boolean; max?: number } = {}): unknown[] {
    if (v === undefined || v === null) {
      if (opts.required) this.fail(path, 'required');
      return [];
    }
    if (!Array.isArray(v)) return (this.fail(path, 'must be a list'), []);
    if (opts.max !== undefined && v.length > opts.max) this.fail(path, `at most ${opts.max} items, got ${v.length}`);
    return v;
  }
  /** A string of min..max characters that matches `pattern` (described as `what`), each when given. */
  text(v: unknown, path: string, opts: TextRule = {}): string | undefined {
    const s = this.string(v, path, { required: opts.required ?? false });
    if (s === undefined) return undefined;
    let problem: string | undefined;
    if (s.length < (opts.min ?? 0)) problem = opts.min === 1 ? 'must not be empty' : `at least ${opts.min} characters`;
    else if (opts.max !== undefined && s.length > opts.max) problem = `at most ${opts.max} characters, got ${s.length}`;
    else if (opts.pattern && !opts.pattern.test(s)) problem = `${JSON.stringify(s)} is not ${opts.what}`;
    if (problem === undefined) return s;
    this.fail(path, problem);
    return undefined;
  }
  /** One of `allowed`. With a fallback, unset is the fallback; without one, unset is an error.
   *  Undefined when the value is not allowed. */
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], fallback?: T): T | undefined {
    if (fallback !== undefined && (v === undefined || v === null)) return fallback;
    if (allowed.includes(v as T)) return v as T;
    this.fail(path, `${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
    return undefined;
  }
  /** An integer in min..max; unset is undefined, or an error when required. */
  integer(v: unknown, path: string, min: number, max: number, opts: { required?: boolean } = {}): number | undefined {
    if (!opts.required && (v === undefined || v === null)) return undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    this.fail(path, `${JSON.stringify(v)} is not an integer in ${min}..${max}`);
    return undefined;
  }
  object(v: unknown, path: string): Obj | undefined {
    if (isObj(v)) return v;
    this.fail(path, 'must be an object');
    return undefined;
  }
  ip(v: unknown, path: string): 4 | 6 | undefined {
    const s = this.string(v, path, { required: true });
    if (s === undefined) return undefined;
    const parsed = parseIp(s);
    if (!parsed) this.fail(path, `${JSON.stringify(s)} is not an IP address`);
    return parsed?.family;
  }
  /** An RFC 3339 date-time ("2024-05-01T12:00:00Z"), as written. */
  timestamp(v: unknown, path: string): string | undefined {
    const s = this.string(v, path);
    if (s === undefined || isRfc3339(s)) return s;
    this.fail(path, `${JSON.stringify(s)} is not an RFC 3339 timestamp (like "2024-05-01T12:00:00Z")`);
    return undefined;
  }
  labels(v: unknown, path: string): Record<string, string> | undefined {
    if (v === undefined || v === null) return undefined;
    if (!isObj(v)) return (this.fail(path, 'must be a map of strings'), undefined);
    for (const [k, val] of Object.entries(v))
      if (typeof val !== 'string') this.fail(`${path}.${k}`, 'must be a string');
    return v as Record<string, string>;
  }
}
