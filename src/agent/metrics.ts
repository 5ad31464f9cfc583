// The agent's Prometheus metrics, served on --metrics-address.
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { dropReason, eventType, weftDir } from '../datapath/endpoint-codecs.js';
import type { MapState } from '../datapath/kernel-state.js';
import type { Observer } from '../observe/observer.js';

/** How long a count of the maps' entries is reused: counting walks every map. */
const MAP_COUNT_TTL_MS = 15_000;

export class AgentMetrics {
  readonly registry = new Registry();
  readonly services = new Gauge({ name: 'weft_lb_frontends', help: 'Service frontends (address, port, protocol) in the kernel', registers: [this.registry] });
  readonly backends = new Gauge({ name: 'weft_lb_backends', help: 'Backend slots in the kernel', registers: [this.registry] });
  readonly syncs = new Counter({ name: 'weft_datapath_syncs_total', help: 'Datapath syncs by result', labelNames: ['result'], registers: [this.registry] });
  readonly syncSeconds = new Histogram({
    name: 'weft_datapath_sync_duration_seconds',
    help: 'Time to compile desired state and write the difference into the maps',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly manifestErrors = new Gauge({ name: 'weft_manifest_errors', help: 'Manifest objects currently rejected', registers: [this.registry] });
  readonly networkPolicies = new Gauge({ name: 'weft_network_policies', help: 'NetworkPolicies in force', registers: [this.registry] });
  readonly policyEntries = new Gauge({ name: 'weft_policy_entries', help: 'Allow entries in the kernel\'s policy map', registers: [this.registry] });
  readonly ipcacheEntries = new Gauge({ name: 'weft_ipcache_entries', help: 'Address prefixes in the kernel\'s ipcache', registers: [this.registry] });
  readonly policySyncs = new Counter({ name: 'weft_policy_syncs_total', help: 'Policy writes into the kernel by result', labelNames: ['result'], registers: [this.registry] });
  readonly ready = new Gauge({ name: 'weft_agent_ready', help: '1 once the first complete view of the source is in the kernel', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'weft_agent_' });
  }

  /** The observer's counters, read at scrape time: counting costs the hot path nothing. */
  observe(observer: Observer): void {
    const registers = [this.registry];
    // Every metric of the observer calls it at each scrape: it is cheap, and idempotent.
    const collect = () => {
      const counts = observer.counts();
      for (const f of counts.flows) advance(flows, { type: eventType.name(f.type) ?? String(f.type), verdict: f.verdict }, f.count);
      for (const d of counts.drops) {
        advance(drops, { reason: dropReason.name(d.reason) ?? String(d.reason), direction: weftDir.name(d.direction) ?? String(d.direction) }, d.count);
      }
      for (const [stage, n] of Object.entries(observer.lost())) advance(lost, { stage }, n);
      ringFlows.set(observer.ring.written() - observer.ring.oldest());
      ringCapacity.set(observer.ring.capacity);
      up.set(observer.running ? 1 : 0);
    };
    const flows = new Counter({ name: 'weft_flows_processed_total', help: 'Flow events read from the kernel, by type and verdict', labelNames: ['type', 'verdict'], registers, collect });
    const drops = new Counter({ name: 'weft_drops_total', help: 'Packets the datapath dropped, by reason and direction', labelNames: ['reason', 'direction'], registers, collect });
    const lost = new Counter({ name: 'weft_flows_lost_total', help: 'Flow events lost, by stage: kernel (ring buffer full), decode (unreadable record), follow (a slow API follower), proxy (L7 flows weft-proxy dropped)', labelNames: ['stage'], registers, collect });
    const ringFlows = new Gauge({ name: 'weft_flow_buffer_flows', help: 'Flows held in the observer\'s in-memory ring', registers, collect });
    const ringCapacity = new Gauge({ name: 'weft_flow_buffer_capacity', help: 'Flows the observer\'s in-memory ring can hold', registers, collect });
    const up = new Gauge({ name: 'weft_observer_up', help: '1 while the observer reads the kernel\'s ring buffer', registers, collect });
    // Counters only go up: each scrape adds what was counted since the last one.
    const seen = new Map<Counter<string>, Map<string, number>>();
    const advance = (c: Counter<string>, labels: Record<string, string>, total: number) => {
      let mine = seen.get(c);
      if (!mine) seen.set(c, (mine = new Map()));
      const key = JSON.stringify(labels);
      const before = mine.get(key) ?? 0;
      if (total > before) {
        c.inc(labels, total - before);
        mine.set(key, total);
      }
    };
    // Created at zero so that rate() works from the first flow on.
    for (const stage of ['kernel', 'decode', 'follow', 'proxy']) lost.inc({ stage }, 0);
  }

  /** How far the kernel is behind the source, as `lagSeconds` tells at scrape time. */
  syncLag(lagSeconds: () => number): void {
    const lag: Gauge = new Gauge({
      name: 'weft_agent_sync_lag_seconds',
      help: 'How long the oldest change from the source has waited to reach the kernel (0: all applied)',
      registers: [this.registry],
      collect: () => lag.set(lagSeconds()),
    });
  }

  /** Map fill levels, from the pins (counted at most every MAP_COUNT_TTL_MS). */
  maps(read: () => MapState[]): void {
    const registers = [this.registry];
    let cached: { at: number; maps: MapState[] } | undefined;
    const collect = () => {
      if (!cached || Date.now() - cached.at > MAP_COUNT_TTL_MS) cached = { at: Date.now(), maps: read() };
      for (const m of cached.maps) {
        if (m.error) continue;
        if (m.ringBytes !== undefined) {
          ringBytes.set({ map: m.map }, m.ringBytes);
          continue;
        }
        entries.set({ map: m.map }, m.entries);
        max.set({ map: m.map }, m.maxEntries);
      }
    };
    const entries = new Gauge({ name: 'weft_bpf_map_entries', help: 'Entries in each pinned BPF map (ring buffers are in weft_bpf_ringbuf_size_bytes)', labelNames: ['map'], registers, collect });
    const max = new Gauge({ name: 'weft_bpf_map_max_entries', help: 'Capacity of each pinned BPF map, in entries', labelNames: ['map'], registers, collect });
    const ringBytes = new Gauge({ name: 'weft_bpf_ringbuf_size_bytes', help: 'Size of each pinned BPF ring buffer', labelNames: ['map'], registers, collect });
  }

  /** Serves /metrics, and the probes a DaemonSet points at: /healthz (the agent answers) and
   *  /readyz (200 once `ready()` returns true; 503 with its reason until then). */
  async serve(address: string, ready: () => true | string): Promise<http.Server> {
    const idx = address.lastIndexOf(':');
    const host = address.slice(0, idx).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(address.slice(idx + 1));
    if (idx < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-address ${address}: want HOST:PORT`);
    const server = http.createServer(async (req, res) => {
      if (req.url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      if (req.url === '/readyz') {
        const r = ready();
        return void res.writeHead(r === true ? 200 : 503, { 'content-type': 'text/plain' }).end(r === true ? 'ready\n' : `not ready: ${r}\n`);
      }
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': this.registry.contentType });
      res.end(await this.registry.metrics());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
