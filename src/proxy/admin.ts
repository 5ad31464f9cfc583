// weft-proxy's control side, in the primary process: the admin API on the unix socket (weftd
// is its client), the metrics listener, and the data planes it drives (one in this process, or
// one per worker process).
//
// Admin API (HTTP/JSON on --admin-socket; errors are {"error": "..."}):
//   PUT /v1/snapshot   body: a ProxySnapshot (src/contract/proxy-snapshot.ts), at most 64 MiB.
//                      200 {"version": N} once every data plane runs it.
//                      400 {"error"} naming the field when it is invalid, not newer than the
//                      running one, or a listener cannot be bound ("listeners[2]: cannot
//                      listen on ..."): the running snapshot stays, nothing of the new one applies.
//   GET /v1/snapshot   200 {"version": N} (0 before the first).
//   GET /v1/flows?follow=1   NDJSON, {"flow": Flow} per request, {"lost": {"stage":"proxy","count":N}}
//                      when a slow reader missed some (src/proxy/flow-hub.ts).
//   GET /healthz       200 {"ok": true, "version": N}.
// Metrics listener (--metrics-address): GET /metrics (Prometheus text), GET /healthz.
import http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { HttpError, serveApi, type Route } from '../lib/unix-http.js';
import { acceptSnapshot, type ProxySnapshot } from '../contract/proxy-snapshot.js';
import type { Logger } from '../lib/log.js';
import type { DataPlane, MetricsJson } from './core.js';
import { FlowHub } from './flow-hub.js';

const MAX_SNAPSHOT_BYTES = 64 << 20;

export class Admin {
  snapshot: ProxySnapshot | undefined;
  readonly registry = new Registry();
  readonly hub: FlowHub;
  private planes: DataPlane[] = [];
  private lock: Promise<unknown> = Promise.resolve();
  private readonly rejected: Counter;
  private readonly versionGauge: Gauge;
  private api: http.Server | undefined;
  private metricsServer: http.Server | undefined;

  constructor(
    readonly log: Logger,
    opts: { processMetrics?: boolean; maxFlowQueue?: number; workers?: () => number } = {},
  ) {
    this.hub = new FlowHub((on) => {
      for (const p of this.planes) p.setFlowsWanted(on);
    }, opts.maxFlowQueue);
    const registers = [this.registry];
    this.versionGauge = new Gauge({
      name: 'weft_proxy_snapshot_version',
      help: 'Version of the snapshot in force (0: none yet)',
      registers,
      aggregator: 'max',
    });
    this.versionGauge.set(0);
    this.rejected = new Counter({
      name: 'weft_proxy_snapshot_rejected_total',
      help: 'Snapshots refused: invalid, not newer, or a listener could not be bound',
      registers,
    });
    this.rejected.inc(0);
    const hub = this.hub;
    new Gauge({
      name: 'weft_proxy_flow_followers',
      help: 'Clients following GET /v1/flows now',
      registers,
      collect() {
        this.set(hub.followerCount);
      },
    });
    const lost: Counter = new Counter({
      name: 'weft_proxy_flows_lost_total',
      help: 'L7 flows dropped for followers that read too slowly',
      registers,
      collect() {
        lost.reset();
        lost.inc(hub.lostTotal);
      },
    });
    const workers = opts.workers;
    if (workers) {
      new Gauge({
        name: 'weft_proxy_workers',
        help: 'Worker processes running',
        registers,
        collect() {
          this.set(workers());
        },
      });
    }
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'weft_proxy_primary_' });
  }

  setPlanes(planes: DataPlane[]): void {
    this.planes = planes;
  }

  get version(): number {
    return this.snapshot?.version ?? 0;
  }

  /** One change at a time: snapshots (and a restarted worker's catching up) queue. */
  serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => {});
    return run;
  }

  /** Validates, prepares on every plane, then commits on every plane; or changes nothing. */
  apply(raw: unknown): Promise<{ version: number }> {
    return this.serialized(async () => {
      const v = acceptSnapshot(this.snapshot, raw);
      if (!v.ok) return this.refuse(v.error);
      const snapshot = v.value;
      const prepared = await Promise.allSettled(this.planes.map((p) => p.prepare(snapshot)));
      const failed = prepared.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        await Promise.allSettled(this.planes.map((p) => p.abort()));
        return this.refuse((failed.reason as Error).message);
      }
      await Promise.all(this.planes.map((p) => p.commit()));
      this.snapshot = snapshot;
      this.versionGauge.set(snapshot.version);
      this.log.info('snapshot applied', {
        version: snapshot.version,
        services: snapshot.services.length,
        listeners: snapshot.listeners.length,
        backends: Object.keys(snapshot.backends).length,
      });
      return { version: snapshot.version };
    });
  }

  private refuse(error: string): never {
    this.rejected.inc();
    this.log.warn('snapshot refused', { error, running: this.version });
    throw new HttpError(400, error);
  }

  /** A restarted worker: give it the snapshot in force. */
  catchUp(plane: DataPlane): Promise<void> {
    return this.serialized(async () => {
      const s = this.snapshot;
      if (s === undefined) return;
      try {
        await plane.prepare(s);
        await plane.commit();
      } catch (err) {
        await plane.abort().catch(() => {});
        this.log.error('a restarted worker could not take the running snapshot', {
          version: s.version,
          error: (err as Error).message,
        });
      }
    });
  }

  routes(): Record<string, Route> {
    return {
      'PUT /v1/snapshot': {
        stream: async (req, res) => {
          const raw = await readJson(req);
          const out = await this.apply(raw);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(`${JSON.stringify(out)}\n`);
        },
      },
      'GET /v1/snapshot': () => ({ version: this.version }),
      'GET /healthz': () => ({ ok: true, version: this.version }),
      ...this.hub.routes(),
    };
  }

  async serveAdmin(socketPath: string): Promise<void> {
    this.api = await serveApi(socketPath, this.routes());
  }

  /** Every plane's metrics and the control side's, as one exposition. */
  async metricsText(): Promise<string> {
    const parts: MetricsJson[] = [await this.registry.getMetricsAsJSON()];
    const planes = await Promise.allSettled(this.planes.map((p) => p.metrics()));
    for (const r of planes) if (r.status === 'fulfilled') parts.push(r.value);
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  async serveMetrics(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = http.createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://weft').pathname;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405).end();
        return;
      }
      if (path === '/metrics') {
        this.metricsText().then(
          (text) => {
            res.writeHead(200, { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE });
            res.end(text);
          },
          (err: Error) => {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(`${err.message}\n`);
          },
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ ok: true, version: this.version })}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
      }
    });
    this.metricsServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => resolve());
    });
    const a = server.address() as { address: string; port: number };
    return { host: a.address, port: a.port };
  }

  /** Stops the admin socket (followers' streams end) and the metrics listener. */
  async close(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const s of [this.api, this.metricsServer]) {
      if (!s) continue;
      closing.push(new Promise((r) => s.close(() => r())));
      s.closeIdleConnections();
    }
    await Promise.all(closing);
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_SNAPSHOT_BYTES) throw new HttpError(413, `request body over ${MAX_SNAPSHOT_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`);
  }
}
