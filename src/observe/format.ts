// How `weft observe` prints flows: compact lines (the default, as Hubble's), JSON lines and an
// aligned table. Pure; the CLI decides color from isTTY.
import { formatTable as table } from '../lib/table.js';
import type { Flow, FlowEndpoint, FlowVerdict } from '../contract/flow.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const RFC3339_UTC = /^\d{4}-(\d{2})-(\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$/;

/** "Dec  4 12:00:01.123" in UTC, as Hubble prints times (Go's StampMilli): truncated, not
 *  rounded, so a flow never appears to happen later than it did. */
export function formatTime(time: string): string {
  const m = RFC3339_UTC.exec(time);
  if (m) return `${MONTHS[Number(m[1]) - 1]} ${m[2]!.replace(/^0/, ' ')} ${m[3]}.${`${m[4] ?? ''}000`.slice(0, 3)}`;
  const t = new Date(time); // an offset other than Z: let Date do the arithmetic
  if (Number.isNaN(t.getTime())) return time;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const clock = `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}.${pad(t.getUTCMilliseconds(), 3)}`;
  return `${MONTHS[t.getUTCMonth()]} ${String(t.getUTCDate()).padStart(2)} ${clock}`;
}

/** "ns/pod:port" when the pod is known, else "ip:port" ("[ip]:port" for IPv6); no port, no ":". */
export function formatEndpoint(ep: FlowEndpoint): string {
  const host = ep.pod !== undefined ? (ep.namespace !== undefined ? `${ep.namespace}/${ep.pod}` : ep.pod) : ep.ip;
  if (ep.port === undefined || ep.port === 0) return host;
  return ep.pod === undefined && host.includes(':') ? `[${host}]:${ep.port}` : `${host}:${ep.port}`;
}

/** The TYPE column, in Hubble's words where it has them: where a trace was seen, a drop's
 *  reason, the direction of a policy verdict, http-request / http-response. */
export function flowTypeLabel(flow: Flow): string {
  switch (flow.type) {
    case 'trace':
      if (flow.observation_point === 'from-pod') return 'from-endpoint';
      if (flow.observation_point === 'to-pod') return 'to-endpoint';
      if (flow.observation_point === 'proxy') return 'tcp-passthrough';
      return 'trace';
    case 'drop':
      return flow.drop_reason ?? 'drop';
    case 'policy-verdict':
      return flow.policy ? `policy-verdict:${flow.policy.direction}` : 'policy-verdict';
    case 'l7':
      if (flow.l7?.type === 'http') return flow.l7.status === undefined ? 'http-request' : 'http-response';
      return 'l7';
    default:
      return flow.type;
  }
}

/** What follows the verdict: the drop reason (when the type did not show it), the deciding
 *  policy, the translated service. */
function details(flow: Flow): string[] {
  const out: string[] = [];
  if (flow.drop_reason !== undefined && flow.type !== 'drop') out.push(flow.drop_reason);
  if (flow.policy?.name) out.push(`by ${flow.policy.name} ${flow.policy.rule}`);
  if (flow.service !== undefined) out.push(`service ${flow.service}`);
  return out;
}

/** Built from the flow's fields where it has them, so every producer's flows read alike:
 *  "GET /path => 200 12ms", "TCP Flags: SYN, ACK"; else the flow's own summary. */
export function flowSummary(flow: Flow): string {
  const h = flow.l7;
  if (h?.type === 'http' && (h.method !== undefined || h.path !== undefined || h.status !== undefined)) {
    const parts = [h.method, h.path].filter((x) => x !== undefined);
    if (h.status !== undefined) parts.push(`=> ${h.status}`);
    if (h.grpc_status !== undefined) parts.push(`grpc-status ${h.grpc_status}`);
    if (h.latency_ms !== undefined) parts.push(`${h.latency_ms}ms`);
    return parts.join(' ');
  }
  const flags = flow.l4.tcp_flags;
  if (flags?.length) return `TCP Flags: ${flags.join(', ')}`;
  return flow.summary;
}

const COLORS: Record<FlowVerdict, string> = {
  FORWARDED: '\x1b[32m', // green
  DROPPED: '\x1b[31m', // red
  TRANSLATED: '\x1b[33m', // yellow
  REDIRECTED: '\x1b[33m',
};

/** One line, no newline: "TIME: SOURCE → DESTINATION TYPE VERDICT [DETAILS] (SUMMARY)". A reply
 *  is printed the other way round ("client ← server") so that the side that opened the
 *  connection stays on the left, as Hubble does. */
export function formatCompact(flow: Flow, opts: { color: boolean }): string {
  let src = formatEndpoint(flow.source);
  let dst = formatEndpoint(flow.destination);
  let arrow = '→';
  if (flow.is_reply) [src, dst, arrow] = [dst, src, '←'];
  const color = opts.color ? COLORS[flow.verdict] : undefined;
  const verdict = color ? `${color}${flow.verdict}\x1b[0m` : flow.verdict;
  const parts = [`${formatTime(flow.time)}:`, src, arrow, dst, flowTypeLabel(flow), verdict, ...details(flow)];
  const summary = flowSummary(flow);
  if (summary) parts.push(`(${summary})`);
  return parts.join(' ');
}

/** One JSON object on one line (JSON.stringify escapes newlines inside strings). */
export function formatJson(flow: Flow): string {
  return JSON.stringify(flow);
}

/** Aligned columns under a header, one flow a line, ending in a newline; never colored (escape
 *  codes would break the alignment). */
export function formatTable(flows: readonly Flow[]): string {
  return table(
    ['TIME', 'SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY'],
    flows.map((f) => [
      formatTime(f.time),
      formatEndpoint(f.source),
      formatEndpoint(f.destination),
      flowTypeLabel(f),
      f.verdict,
      [...details(f), flowSummary(f)].filter((x) => x !== '').join('; '),
    ]),
  );
}
