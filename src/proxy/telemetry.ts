// weft-proxy's telemetry: the RED metrics of every request, and its L7 flow.
//
// Metrics. prom-client's Counter.inc(labels) and Histogram.observe(labels) hash a labels object
// per call; on the proxy's hot path that is most of a microsecond and several allocations per
// request. Here a request costs four Map lookups (one per label, no string built) and a few
// number updates on a series object kept across requests; prom-client sees the series only
// at scrape time, through metric objects whose get() answers in its JSON shape. They register
// in a prom-client Registry like any other metric, so the text format, the other metrics and
// the aggregation across worker processes (AggregatorRegistry.aggregate: counters and buckets
// summed) are prom-client's.
//
// Labels (README: weft-proxy metrics): source_workload (the client pod, "namespace/pod", or
// "unknown"), destination_workload (the endpoint's pod, or "unknown"), destination_service (the
// backend Service, "namespace/name", or "" when the proxy answered itself), route (the
// HTTPRoute/GRPCRoute "namespace/name", "" when none matched), status (the HTTP status, or
// "canceled" when the client left before the response began) and grpc_status ("" when not
// gRPC). A proxy sees the pods of its node as clients, so source workloads are bounded by the
// pods of one node. To keep a scrape bounded whatever happens, past MAX_SERIES label sets new
// ones are counted with destination_workload "overflow".
//
// Flows. Only built while someone follows GET /v1/flows (FlowTap.wanted): a proxy that nobody
// observes spends nothing on them.
import type { Flow, FlowEndpoint } from '../contract/flow.js';

/** Seconds. Request latencies of a mesh hop: from half a millisecond to 10 s. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const MAX_SERIES = 10_000;

/** One label set of the duration histogram, and its request counts by status. */
class Series {
  readonly buckets = new Float64Array(DURATION_BUCKETS.length);
  count = 0;
  sum = 0;
  /** statusKey(status, grpc status) → requests. */
  readonly statuses = new Map<number, number>();

  constructor(readonly labels: Readonly<Record<string, string>>) {}
}

/** A status and gRPC status as one number (no string built per request): HTTP status × 100 +
 *  gRPC status + 1 (0: not gRPC); HTTP status 0: the client left before the response began. */
const statusKey = (status: number, grpcStatus: number) => status * 100 + grpcStatus + 1;

interface PromValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface PromMetricJson {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: PromValue[];
}

/** What prom-client's Registry.registerMetric needs of a metric. */
export interface CustomMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): Promise<PromMetricJson>;
  reset(): void;
}

/** Label value → the next level (source → destination → service → route → Series). */
type Level<T> = Map<string, T>;

export class HttpStats {
  // Nested maps rather than one map keyed by the labels joined: a lookup builds no string.
  private readonly tree: Level<Level<Level<Level<Series>>>> = new Map();
  private readonly series: Series[] = [];

  /** One finished request: status 0 when the client left before the response began, gRPC
   *  status -1 when the request is not gRPC. */
  record(
    source: string,
    destination: string,
    service: string,
    route: string,
    status: number,
    grpcStatus: number,
    seconds: number,
  ): void {
    let s = this.find(source, destination, service, route);
    if (s === undefined) {
      if (this.series.length >= MAX_SERIES)
        s = this.find(source, 'overflow', service, route) ?? this.add(source, 'overflow', service, route);
      else s = this.add(source, destination, service, route);
    }
    s.count++;
    s.sum += seconds;
    const b = s.buckets;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]!) {
        b[i]!++;
        break;
      }
    }
    const sk = statusKey(status, grpcStatus);
    s.statuses.set(sk, (s.statuses.get(sk) ?? 0) + 1);
  }

  private find(source: string, destination: string, service: string, route: string): Series | undefined {
    return this.tree.get(source)?.get(destination)?.get(service)?.get(route);
  }

  private add(source: string, destination: string, service: string, route: string): Series {
    const s = new Series({
      source_workload: source,
      destination_workload: destination,
      destination_service: service,
      route,
    });
    let a = this.tree.get(source);
    if (a === undefined) this.tree.set(source, (a = new Map<string, Level<Level<Series>>>()));
    let b = a.get(destination);
    if (b === undefined) a.set(destination, (b = new Map<string, Level<Series>>()));
    let c = b.get(service);
    if (c === undefined) b.set(service, (c = new Map<string, Series>()));
    c.set(route, s);
    this.series.push(s);
    return s;
  }

  private clear(): void {
    this.tree.clear();
    this.series.length = 0;
  }

  /** The two metrics, for a prom-client Registry. */
  metrics(): CustomMetric[] {
    const requests: CustomMetric = {
      name: 'weft_http_requests_total',
      help: 'HTTP and gRPC requests through the proxy, by source and destination workload, destination service, route, status and gRPC status',
      type: 'counter',
      aggregator: 'sum',
      get: async () => {
        const values: PromValue[] = [];
        for (const s of this.series) {
          for (const [sk, n] of s.statuses) {
            const status = Math.floor(sk / 100);
            const grpc = (sk % 100) - 1;
            values.push({
              labels: {
                ...s.labels,
                status: status === 0 ? 'canceled' : String(status),
                grpc_status: grpc < 0 ? '' : String(grpc),
              },
              value: n,
            });
          }
        }
        return { name: requests.name, help: requests.help, type: 'counter', aggregator: 'sum', values };
      },
      reset: () => this.clear(),
    };
    const duration: CustomMetric = {
      name: 'weft_http_request_duration_seconds',
      help: "Time from a request's headers to the end of its response, by source and destination workload, destination service and route",
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: PromValue[] = [];
        const name = duration.name;
        for (const s of this.series) {
          let cumulative = 0;
          for (let i = 0; i < DURATION_BUCKETS.length; i++) {
            cumulative += s.buckets[i]!;
            values.push({
              labels: { ...s.labels, le: DURATION_BUCKETS[i]! },
              value: cumulative,
              metricName: `${name}_bucket`,
            });
          }
          values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${name}_bucket` });
          values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` });
          values.push({ labels: { ...s.labels }, value: s.count, metricName: `${name}_count` });
        }
        return { name, help: duration.help, type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => this.clear(),
    };
    return [requests, duration];
  }
}

// ---- flows ----

/** Where flows go: wanted tells whether anyone listens (check it before building one). */
export interface FlowTap {
  readonly wanted: boolean;
  /** One NDJSON line, "\n" included: {"flow":{...}}. */
  push(line: string): void;
}

/** RFC 3339 with nanoseconds, UTC, of a performance.now() reading. */
export function flowTime(perfNow: number): string {
  const ms = performance.timeOrigin + perfNow;
  const whole = Math.floor(ms);
  const iso = new Date(whole).toISOString(); // 2026-12-04T14:18:20.565Z
  const sub = Math.floor((ms - whole) * 1e6);
  return `${iso.slice(0, -1)}${String(sub).padStart(6, '0')}Z`;
}

/** "12ms", "0.4ms": the latency as a summary prints it. */
export function formatLatency(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)}ms` : `${Math.round(ms)}ms`;
}

export interface L7FlowInput {
  time: number;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  service: string | undefined;
  method: string;
  path: string;
  /** 0: no response began (the client left first). */
  status: number;
  /** -1: not gRPC, or no status seen. */
  grpcStatus: number;
  latencyMs: number;
  /** Set when the proxy answered itself (or cut the response short). */
  dropReason: string | undefined;
}

export interface PassthroughFlowInput {
  /** When the connection was accepted. */
  time: number;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  service: string;
  /** Bytes from the client, and to it. */
  sent: number;
  received: number;
  durationMs: number;
  /** Set when no endpoint took the connection. */
  dropReason: string | undefined;
}

/** A connection on an L7 port that was not HTTP, passed through as TCP: one flow when it ends. */
export function passthroughFlow(f: PassthroughFlowInput): Flow {
  return {
    time: flowTime(f.time),
    verdict: f.dropReason === undefined ? 'FORWARDED' : 'DROPPED',
    ...(f.dropReason !== undefined && { drop_reason: f.dropReason }),
    type: 'trace',
    source: f.source,
    destination: f.destination,
    l4: { protocol: 'TCP' },
    is_reply: false,
    service: f.service,
    observation_point: 'proxy',
    summary:
      `not HTTP, passed through: ${f.sent} bytes sent, ${f.received} received in ${formatLatency(f.durationMs)}` +
      (f.dropReason !== undefined ? ` (${f.dropReason})` : ''),
  };
}

export function l7Flow(f: L7FlowInput): Flow {
  const latency = Math.round(f.latencyMs * 1000) / 1000;
  const outcome =
    f.status === 0 ? 'canceled' : f.grpcStatus >= 0 ? `${f.status} grpc-status ${f.grpcStatus}` : String(f.status);
  return {
    time: flowTime(f.time),
    verdict: f.dropReason === undefined ? 'FORWARDED' : 'DROPPED',
    ...(f.dropReason !== undefined && { drop_reason: f.dropReason }),
    type: 'l7',
    source: f.source,
    destination: f.destination,
    l4: { protocol: 'TCP' },
    is_reply: false,
    ...(f.service !== undefined && { service: f.service }),
    l7: {
      type: 'http',
      method: f.method,
      path: f.path,
      ...(f.status !== 0 && { status: f.status }),
      ...(f.grpcStatus >= 0 && { grpc_status: f.grpcStatus }),
      latency_ms: latency,
    },
    summary: `${f.method} ${f.path} => ${outcome} ${formatLatency(f.latencyMs)}${f.dropReason !== undefined ? ` (${f.dropReason})` : ''}`,
  };
}
