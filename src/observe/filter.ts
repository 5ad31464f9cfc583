// Flow filters of `weft observe`: parsed and validated once from flags (or from the query string
// the CLI sends to the agent), then matched against every flow in the agent. Pure.
//
// Semantics, chosen to be what Hubble users expect unless noted:
//  - Different criteria AND together; the values of one repeatable flag OR together.
//  - Each endpoint criterion comes in three forms: --X (source OR destination), --from-X
//    (source), --to-X (destination). Unlike Hubble, `--pod web --port 80` is two independent
//    criteria (web on either side, and port 80 on either side), not "web's own port is 80".
//  - --pod / --from-pod / --to-pod take "namespace/pod-name-prefix", "pod-name-prefix" (any
//    namespace; Hubble would assume "default") or "namespace/" (every endpoint of the
//    namespace). The namespace is matched exactly, the pod name as a prefix: "web" matches
//    web-7c9f-x2k.
//  - --label takes a Kubernetes label selector: comma-separated requirements ("app=web",
//    "app==web", "app!=web", "app in (a,b)", "app notin (a,b)", "app", "!app"), all of which must
//    hold on the same endpoint. As in Kubernetes, "app!=web" and "app notin (...)" also hold when
//    the endpoint has no app label.
//  - --http-status "404" exact; "5+" 500-599, "40+" 400-409 (Hubble's prefixes).
//  - --http-path is an unanchored JavaScript regular expression (Hubble: Go RE2).
//  - --since / --until: a duration back from now ("90s", "5m", "1h30m", "250ms") or an RFC 3339
//    time; both bounds inclusive, compared at millisecond precision.
import { DNS1123_LABEL, validName } from '../lib/checker.js';
import { canonicalIp, parseIp } from '../lib/ip.js';
import { labelKeyProblem, labelValueProblem } from '../state/selectors.js';
import type { Flow, FlowEndpoint, FlowType, FlowVerdict } from '../contract/flow.js';

export type FilterProtocol = 'tcp' | 'udp' | 'sctp' | 'icmp' | 'icmpv4' | 'icmpv6' | 'http';

/** Every criterion of `weft observe`, validated and normalized. Treat as immutable: matches()
 *  compiles a filter once, on first use. */
export interface FlowFilter {
  /** "[namespace/]pod-name-prefix" or "namespace/". */
  readonly pod?: readonly string[];
  readonly fromPod?: readonly string[];
  readonly toPod?: readonly string[];
  readonly namespace?: readonly string[];
  readonly fromNamespace?: readonly string[];
  readonly toNamespace?: readonly string[];
  /** Label selectors, as given. */
  readonly labels?: readonly string[];
  readonly fromLabels?: readonly string[];
  readonly toLabels?: readonly string[];
  /** Canonical addresses or CIDRs (network address, no host bits). */
  readonly ip?: readonly string[];
  readonly fromIp?: readonly string[];
  readonly toIp?: readonly string[];
  readonly port?: readonly number[];
  readonly fromPort?: readonly number[];
  readonly toPort?: readonly number[];
  readonly verdict?: readonly FlowVerdict[];
  readonly dropReason?: readonly string[];
  readonly protocol?: readonly FilterProtocol[];
  readonly type?: readonly FlowType[];
  /** "404", or a class prefix "5+" / "40+". */
  readonly httpStatus?: readonly string[];
  /** Upper case; matched case-insensitively. */
  readonly httpMethod?: readonly string[];
  /** Regular expression sources. */
  readonly httpPath?: readonly string[];
  readonly since?: Date;
  readonly until?: Date;
}

type Key = keyof FlowFilter;

/** The flags, in the order filterToQuery writes them; each is also its query parameter name. */
export const FILTER_FLAGS: readonly { flag: string; key: Key; help: string }[] = [
  { flag: 'pod', key: 'pod', help: 'source or destination pod: [namespace/]pod-name-prefix, or namespace/' },
  { flag: 'from-pod', key: 'fromPod', help: 'source pod: [namespace/]pod-name-prefix, or namespace/' },
  { flag: 'to-pod', key: 'toPod', help: 'destination pod: [namespace/]pod-name-prefix, or namespace/' },
  { flag: 'namespace', key: 'namespace', help: 'source or destination namespace' },
  { flag: 'from-namespace', key: 'fromNamespace', help: 'source namespace' },
  { flag: 'to-namespace', key: 'toNamespace', help: 'destination namespace' },
  {
    flag: 'label',
    key: 'labels',
    help: 'label selector of the source or destination (app=web,tier!=db; app in (a,b); !app)',
  },
  { flag: 'from-label', key: 'fromLabels', help: 'label selector of the source' },
  { flag: 'to-label', key: 'toLabels', help: 'label selector of the destination' },
  { flag: 'ip', key: 'ip', help: 'source or destination address or CIDR' },
  { flag: 'from-ip', key: 'fromIp', help: 'source address or CIDR' },
  { flag: 'to-ip', key: 'toIp', help: 'destination address or CIDR' },
  { flag: 'port', key: 'port', help: 'source or destination port' },
  { flag: 'from-port', key: 'fromPort', help: 'source port' },
  { flag: 'to-port', key: 'toPort', help: 'destination port' },
  { flag: 'verdict', key: 'verdict', help: 'FORWARDED, DROPPED, TRANSLATED or REDIRECTED' },
  { flag: 'drop-reason', key: 'dropReason', help: 'why a packet was dropped (policy-denied, spoofed-source, ...)' },
  { flag: 'protocol', key: 'protocol', help: 'tcp, udp, sctp, icmp (v4 or v6), icmpv4, icmpv6 or http' },
  { flag: 'type', key: 'type', help: 'trace, drop, policy-verdict, sock or l7' },
  { flag: 'http-status', key: 'httpStatus', help: 'HTTP status code (404) or class (5+, 40+)' },
  { flag: 'http-method', key: 'httpMethod', help: 'HTTP method (GET, post, ...)' },
  { flag: 'http-path', key: 'httpPath', help: 'regular expression on the HTTP path' },
  { flag: 'since', key: 'since', help: 'flows at or after: a duration back from now (5m, 1h30m) or an RFC 3339 time' },
  { flag: 'until', key: 'until', help: 'flows at or before: a duration back from now or an RFC 3339 time' },
];

const VERDICTS: readonly FlowVerdict[] = ['FORWARDED', 'DROPPED', 'TRANSLATED', 'REDIRECTED'];
const TYPES: readonly FlowType[] = ['trace', 'drop', 'policy-verdict', 'sock', 'l7'];
const PROTOCOLS: Readonly<Record<FilterProtocol, readonly string[]>> = {
  tcp: ['TCP'],
  udp: ['UDP'],
  sctp: ['SCTP'],
  // "ICMP" as well: the datapath's protocol names call ICMP for IPv4 just that.
  icmp: ['ICMP', 'ICMPv4', 'ICMPv6'],
  icmpv4: ['ICMP', 'ICMPv4'],
  icmpv6: ['ICMPv6'],
  http: [],
};

// ---- parsing ----

type Args = Record<string, string | string[] | undefined>;

/** Validates every filter flag in `args` (keyed by flag name, e.g. "from-pod", or by FlowFilter
 *  key); other keys are ignored. Throws an Error naming the flag and the problem. */
export function parseFilter(args: Args, now: Date = new Date()): FlowFilter {
  const f: { -readonly [K in Key]?: FlowFilter[K] } = {};
  const list = (flag: string, key: Key): string[] => {
    const out: string[] = [];
    for (const v of [args[flag], key === flag ? undefined : args[key]]) {
      if (v === undefined) continue;
      for (const s of Array.isArray(v) ? v : [v]) {
        if (typeof s !== 'string') throw new Error(`--${flag}: want a value`);
        out.push(s);
      }
    }
    return out;
  };
  for (const { flag, key } of FILTER_FLAGS) {
    const values = list(flag, key);
    if (values.length === 0) continue;
    if (key === 'since' || key === 'until') {
      if (values.length > 1) throw new Error(`--${flag}: given ${values.length} times, want it once`);
      f[key] = parseTime(values[0]!, flag, now);
      continue;
    }
    (f as Record<string, unknown>)[key] = Object.freeze(values.map((v) => normalize(key, v, flagValue(key, v))));
  }
  if (f.since && f.until && f.since.getTime() > f.until.getTime()) {
    throw new Error(`--since ${f.since.toISOString()} is after --until ${f.until.toISOString()}`);
  }
  const filter = Object.freeze(f);
  cache.set(filter, compile(filter));
  return filter;
}

const flagOf = (key: Key): string => FILTER_FLAGS.find((x) => x.key === key)!.flag;
const flagValue = (key: Key, v: string): string => `--${flagOf(key)} ${show(v)}`;

function show(v: string): string {
  return v === '' || /\s/.test(v) ? JSON.stringify(v) : v;
}

/** One value of a list flag, validated and in its canonical form; `at` prefixes errors. */
function normalize(key: Key, v: string, at: string): string | number {
  switch (key) {
    case 'pod':
    case 'fromPod':
    case 'toPod':
      return podText(parsePod(v, at));
    case 'namespace':
    case 'fromNamespace':
    case 'toNamespace':
      if (!validName(v, DNS1123_LABEL)) throw new Error(`${at}: want a namespace name (an RFC 1123 label)`);
      return v;
    case 'labels':
    case 'fromLabels':
    case 'toLabels':
      parseSelector(v, at);
      return v;
    case 'ip':
    case 'fromIp':
    case 'toIp':
      return parseCidr(v, at).text;
    case 'port':
    case 'fromPort':
    case 'toPort': {
      const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
      if (!(n >= 1 && n <= 65535)) throw new Error(`${at}: want a port number from 1 to 65535`);
      return n;
    }
    case 'verdict': {
      const u = v.toUpperCase() as FlowVerdict;
      if (!VERDICTS.includes(u)) throw new Error(`${at}: want FORWARDED, DROPPED, TRANSLATED or REDIRECTED`);
      return u;
    }
    case 'dropReason':
      if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(v)) throw new Error(`${at}: want a drop reason like policy-denied`);
      return v;
    case 'protocol': {
      const l = v.toLowerCase();
      if (!Object.hasOwn(PROTOCOLS, l)) throw new Error(`${at}: want tcp, udp, sctp, icmp, icmpv4, icmpv6 or http`);
      return l;
    }
    case 'type': {
      let l = v.toLowerCase();
      if (l === 'trace-sock') l = 'sock'; // Hubble's name for socket-level events
      if (!TYPES.includes(l as FlowType)) throw new Error(`${at}: want trace, drop, policy-verdict, sock or l7`);
      return l;
    }
    case 'httpStatus':
      statusRange(v, at);
      return v;
    case 'httpMethod':
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v)) throw new Error(`${at}: want an HTTP method like GET`);
      return v.toUpperCase();
    case 'httpPath':
      pathRegExp(v, at);
      return v;
    case 'since':
    case 'until':
      throw new Error(`${at}: not a list`);
  }
}

interface PodSpec {
  ns: string | undefined;
  prefix: string;
}

// A pod name is an RFC 1123 subdomain; a prefix of one may end in '-' or '.'.
const POD_PREFIX = /^[a-z0-9][-a-z0-9.]*$/;

function parsePod(v: string, at: string): PodSpec {
  const want = `${at}: want [namespace/]pod-name-prefix, or namespace/`;
  const parts = v.split('/');
  if (parts.length > 2) throw new Error(want);
  const ns = parts.length === 2 ? parts[0]! : undefined;
  const prefix = parts[parts.length - 1]!;
  if (ns !== undefined && !validName(ns, DNS1123_LABEL))
    throw new Error(`${want} (${JSON.stringify(ns)} is not a namespace name)`);
  if (prefix === '' ? ns === undefined : prefix.length > 253 || !POD_PREFIX.test(prefix)) {
    throw new Error(prefix === '' ? want : `${want} (${JSON.stringify(prefix)} cannot start a pod name)`);
  }
  return { ns, prefix };
}

const podText = (p: PodSpec): string => (p.ns === undefined ? p.prefix : `${p.ns}/${p.prefix}`);

// Label selectors. A requirement compiles to the "key=value" strings flows carry, so that
// matching is string comparison.
type Requirement = { op: 'in' | 'notin'; pairs: readonly string[] } | { op: 'exists' | 'absent'; keyEq: string };

function parseSelector(v: string, at: string): Requirement[] {
  const out: Requirement[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= v.length; i++) {
    const c = v[i];
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) throw new Error(`${at}: ")" without "("`);
    else if ((c === ',' && depth === 0) || i === v.length) {
      if (depth > 0) throw new Error(`${at}: "(" without ")"`);
      out.push(parseRequirement(v.slice(start, i).trim(), at));
      start = i + 1;
    }
  }
  return out;
}

const KEY = String.raw`[^\s=!(),]+`;
const SET_RE = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\((.*)\)$`);
const CMP_RE = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*([^\s=!(),]*)$`);
const EXISTS_RE = new RegExp(String.raw`^(!?)\s*(${KEY})$`);

function parseRequirement(r: string, at: string): Requirement {
  const key = (k: string): string => {
    const problem = labelKeyProblem(k);
    if (problem) throw new Error(`${at}: ${problem}`);
    return k;
  };
  const value = (val: string): string => {
    const problem = labelValueProblem(val);
    if (problem) throw new Error(`${at}: ${problem}`);
    return val;
  };
  let m: RegExpExecArray | null;
  if ((m = SET_RE.exec(r))) {
    const k = key(m[1]!);
    const values = m[3]!.split(',').map((s) => s.trim());
    if (values.length === 1 && values[0] === '') throw new Error(`${at}: "${k} ${m[2]} ()" needs at least one value`);
    return { op: m[2] as 'in' | 'notin', pairs: values.map((val) => `${k}=${value(val)}`) };
  }
  if ((m = CMP_RE.exec(r))) {
    const pairs = [`${key(m[1]!)}=${value(m[3]!)}`];
    return { op: m[2] === '!=' ? 'notin' : 'in', pairs };
  }
  if ((m = EXISTS_RE.exec(r))) return { op: m[1] ? 'absent' : 'exists', keyEq: `${key(m[2]!)}=` };
  const why =
    r === ''
      ? 'an empty requirement'
      : `${JSON.stringify(r)} is not key, !key, key=value, key!=value, key in (v1,v2) or key notin (v1,v2)`;
  throw new Error(`${at}: ${why}`);
}

interface Cidr {
  text: string;
  family: 4 | 6;
  bytes: Uint8Array;
  bits: number;
}

function parseCidr(v: string, at: string): Cidr {
  const slash = v.indexOf('/');
  const addr = parseIp(slash < 0 ? v : v.slice(0, slash));
  const max = addr?.family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : v.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!addr || !(bits <= max)) throw new Error(`${at}: want an IP address or a CIDR like 10.0.0.0/8 or fd00::/64`);
  // Host bits are cleared rather than refused, as Hubble (Go's net.ParseCIDR) does.
  const bytes = addr.bytes;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.min(8, Math.max(0, bits - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  const network = addr.family === 4 ? bytes.join('.') : canonicalIp(formatV6(bytes));
  return { text: bits === max ? network : `${network}/${bits}`, family: addr.family, bytes, bits };
}

function formatV6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
}

function statusRange(v: string, at: string): [number, number] {
  if (/^[1-5]\d\d$/.test(v)) return [Number(v), Number(v)];
  const m = /^([1-5]\d?)\+$/.exec(v);
  if (!m) throw new Error(`${at}: want a status code like 404, or a class like 5+ (500-599) or 40+ (400-409)`);
  const scale = m[1]!.length === 1 ? 100 : 10;
  const lo = Number(m[1]) * scale;
  return [lo, lo + scale - 1];
}

function pathRegExp(v: string, at: string): RegExp {
  try {
    return new RegExp(v);
  } catch (err) {
    throw new Error(`${at}: not a regular expression (${(err as Error).message})`);
  }
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function parseTime(v: string, flag: string, now: Date): Date {
  const bad = new Error(`--${flag} ${show(v)}: want a duration like 5m or an RFC 3339 time`);
  if (/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(v)) {
    let ms = 0;
    for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
    const t = now.getTime() - Math.round(ms);
    if (!Number.isFinite(t) || Math.abs(t) > 8.64e15) throw bad;
    return new Date(t);
  }
  const m = RFC3339.exec(v);
  if (!m) throw bad;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  // Date.parse rolls 2024-02-30 over into March: check the fields ourselves.
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > days || h > 23 || mi > 59 || s > 59) throw bad;
  const offset = m[8] ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11])) * 60_000;
  if (Number(m[10] ?? 0) > 23 || Number(m[11] ?? 0) > 59) throw bad;
  const ms = m[7] ? Number(`${m[7].slice(1)}00`.slice(0, 3)) : 0;
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms) - offset);
}

// ---- query parameters ----

/** The filter as query parameters, one per value, named after the flags; times absolute. */
export function filterToQuery(f: FlowFilter): URLSearchParams {
  const q = new URLSearchParams();
  for (const { flag, key } of FILTER_FLAGS) {
    const v = f[key];
    if (v instanceof Date) q.append(flag, v.toISOString());
    else if (v) for (const x of v) q.append(flag, String(x));
  }
  return q;
}

/** The inverse of filterToQuery, validating as parseFilter does. Other parameters are ignored:
 *  compare their names with FILTER_FLAGS to refuse them. */
export function filterFromQuery(q: URLSearchParams, now: Date): FlowFilter {
  const args: Args = {};
  for (const { flag } of FILTER_FLAGS) {
    const all = q.getAll(flag);
    if (all.length) args[flag] = all;
  }
  return parseFilter(args, now);
}

// ---- matching ----

// A filter compiles to predicates, cheapest first; matching allocates nothing.
type Pred = (flow: Flow) => boolean;
const cache = new WeakMap<FlowFilter, readonly Pred[]>();

/** Whether the flow passes every criterion of the filter. */
export function matches(f: FlowFilter, flow: Flow): boolean {
  let preds = cache.get(f);
  if (preds === undefined) cache.set(f, (preds = compile(f)));
  for (let i = 0; i < preds.length; i++) if (!preds[i]!(flow)) return false;
  return true;
}

type EpPred = (ep: FlowEndpoint) => boolean;

function sides(out: Pred[], either: EpPred | undefined, from: EpPred | undefined, to: EpPred | undefined): void {
  if (either) out.push((fl) => either(fl.source) || either(fl.destination));
  if (from) out.push((fl) => from(fl.source));
  if (to) out.push((fl) => to(fl.destination));
}

// Builds an endpoint predicate from a flag's values, or undefined when the flag is absent.
function ep<T>(
  values: readonly (string | number)[] | undefined,
  key: Key,
  parse: (v: string, at: string) => T,
  make: (specs: readonly T[]) => EpPred,
): EpPred | undefined {
  return values?.length ? make(values.map((v) => parse(String(v), flagValue(key, String(v))))) : undefined;
}

function compile(f: FlowFilter): Pred[] {
  const out: Pred[] = [];
  // Hand-built filters get the same validation as parsed ones.
  const list = <T>(values: readonly T[] | undefined, key: Key): readonly T[] | undefined =>
    values?.length ? (values.map((v) => normalize(key, String(v), flagValue(key, String(v)))) as T[]) : undefined;

  const verdicts = list(f.verdict, 'verdict');
  if (verdicts) out.push((fl) => verdicts.includes(fl.verdict));
  const types = list(f.type, 'type');
  if (types) out.push((fl) => types.includes(fl.type));
  const reasons = list(f.dropReason, 'dropReason');
  if (reasons) out.push((fl) => fl.drop_reason !== undefined && reasons.includes(fl.drop_reason));
  const protocols = list(f.protocol, 'protocol');
  if (protocols) {
    const l4 = [...new Set(protocols.flatMap((p) => PROTOCOLS[p]))];
    const http = protocols.includes('http');
    out.push((fl) => l4.includes(fl.l4.protocol) || (http && fl.l7?.type === 'http'));
  }

  const port = (v: string, at: string): number => normalize('port', v, at) as number;
  const ports =
    (ps: readonly number[]): EpPred =>
    (e) =>
      e.port !== undefined && ps.includes(e.port);
  sides(
    out,
    ep(f.port, 'port', port, ports),
    ep(f.fromPort, 'fromPort', port, ports),
    ep(f.toPort, 'toPort', port, ports),
  );

  const ns = (v: string, at: string): string => normalize('namespace', v, at) as string;
  const nss =
    (list: readonly string[]): EpPred =>
    (e) =>
      e.namespace !== undefined && list.includes(e.namespace);
  sides(
    out,
    ep(f.namespace, 'namespace', ns, nss),
    ep(f.fromNamespace, 'fromNamespace', ns, nss),
    ep(f.toNamespace, 'toNamespace', ns, nss),
  );

  sides(
    out,
    ep(f.pod, 'pod', parsePod, podPred),
    ep(f.fromPod, 'fromPod', parsePod, podPred),
    ep(f.toPod, 'toPod', parsePod, podPred),
  );

  const status = list(f.httpStatus, 'httpStatus');
  if (status) {
    const ranges = status.flatMap((s) => statusRange(s, ''));
    out.push((fl) => {
      const code = fl.l7?.status;
      if (code === undefined) return false;
      for (let i = 0; i < ranges.length; i += 2) if (code >= ranges[i]! && code <= ranges[i + 1]!) return true;
      return false;
    });
  }
  const methods = list(f.httpMethod, 'httpMethod');
  if (methods) {
    // One case-insensitive pattern: matching allocates nothing, unlike toUpperCase().
    const re = new RegExp(`^(?:${methods.map((m) => m.replace(/[$^.*+?()[\]{}|\\-]/g, '\\$&')).join('|')})$`, 'i');
    out.push((fl) => fl.l7?.method !== undefined && re.test(fl.l7.method));
  }

  sides(
    out,
    ep(f.ip, 'ip', parseCidr, cidrPred),
    ep(f.fromIp, 'fromIp', parseCidr, cidrPred),
    ep(f.toIp, 'toIp', parseCidr, cidrPred),
  );
  sides(
    out,
    ep(f.labels, 'labels', parseSelector, labelPred),
    ep(f.fromLabels, 'fromLabels', parseSelector, labelPred),
    ep(f.toLabels, 'toLabels', parseSelector, labelPred),
  );

  const paths = f.httpPath?.length ? f.httpPath.map((p) => pathRegExp(p, flagValue('httpPath', p))) : undefined;
  if (paths) {
    out.push((fl) => {
      const path = fl.l7?.path;
      if (path === undefined) return false;
      for (let i = 0; i < paths.length; i++) if (paths[i]!.test(path)) return true;
      return false;
    });
  }

  if (f.since || f.until) {
    const lo = f.since ? f.since.getTime() : -Infinity;
    const hi = f.until ? f.until.getTime() : Infinity;
    out.push((fl) => {
      const t = Date.parse(fl.time); // ms: sub-millisecond digits are dropped
      return t >= lo && t <= hi;
    });
  }
  return out;
}

function podPred(specs: readonly PodSpec[]): EpPred {
  return (e) => {
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      if (s.ns !== undefined && e.namespace !== s.ns) continue;
      // An empty prefix ("namespace/") comes with a namespace, checked above.
      if (s.prefix === '' || (e.pod !== undefined && e.pod.startsWith(s.prefix))) return true;
    }
    return false;
  };
}

function labelPred(selectors: readonly Requirement[][]): EpPred {
  return (e) => {
    for (let i = 0; i < selectors.length; i++) if (selects(selectors[i]!, e.labels)) return true;
    return false;
  };
}

function selects(reqs: readonly Requirement[], labels: readonly string[]): boolean {
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i]!;
    let found = false;
    if ('pairs' in r) {
      for (let j = 0; j < r.pairs.length && !found; j++) found = labels.includes(r.pairs[j]!);
      if (found !== (r.op === 'in')) return false;
    } else {
      for (let j = 0; j < labels.length && !found; j++) found = labels[j]!.startsWith(r.keyEq);
      if (found !== (r.op === 'exists')) return false;
    }
  }
  return true;
}

function cidrPred(cidrs: readonly Cidr[]): EpPred {
  return (e) => {
    const addr = parseIp(e.ip);
    if (addr === undefined) return false;
    for (let i = 0; i < cidrs.length; i++) {
      const c = cidrs[i]!;
      if (c.family === addr.family && prefixEqual(c.bytes, addr.bytes, c.bits)) return true;
    }
    return false;
  };
}

function prefixEqual(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[whole]! & mask) === (b[whole]! & mask);
}
