// The agent's Prometheus metrics, served on --metrics-address (with the probes).
import http from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { MapState } from '../datapath/kernel-state.js';

/** How long a count of the maps' entries is reused: counting walks every map. */
const MAP_COUNT_TTL_MS = 15_000;

/** The agent's registry: the process's own metrics, readiness, the sync lag and the maps' fill
 *  levels; each controller registers its own beside them. */
export class AgentMetrics {
  readonly registry = new Registry();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'weft_agent_' });
  }

  /** 1 once `ready()` says so (read at scrape time). */
  readiness(ready: () => boolean): void {
    const gauge: Gauge = new Gauge({
      name: 'weft_agent_ready',
      help: '1 once the first complete view of the source is in the kernel',
      registers: [this.registry],
      collect: () => gauge.set(ready() ? 1 : 0),
    });
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
    const entries = new Gauge({
      name: 'weft_bpf_map_entries',
      help: 'Entries in each pinned BPF map (ring buffers are in weft_bpf_ringbuf_size_bytes)',
      labelNames: ['map'],
      registers,
      collect,
    });
    const max = new Gauge({
      name: 'weft_bpf_map_max_entries',
      help: 'Capacity of each pinned BPF map, in entries',
      labelNames: ['map'],
      registers,
      collect,
    });
    const ringBytes = new Gauge({
      name: 'weft_bpf_ringbuf_size_bytes',
      help: 'Size of each pinned BPF ring buffer',
      labelNames: ['map'],
      registers,
      collect,
    });
  }

  /** Serves /metrics, and the probes a DaemonSet points at: /healthz (the agent answers) and
   *  /readyz (200 once `ready()` returns true; 503 with its reason until then). */
  async serve(address: string, ready: () => true | string): Promise<http.Server> {
    const idx = address.lastIndexOf(':');
    const host = address.slice(0, idx).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(address.slice(idx + 1));
    if (idx < 0 || !Number.isInteger(port) || port < 0 || port > 65535)
      throw new Error(`--metrics-address ${address}: want HOST:PORT`);
    const server = http.createServer((req, res) => {
      if (req.url === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      if (req.url === '/readyz') {
        const r = ready();
        return void res
          .writeHead(r === true ? 200 : 503, { 'content-type': 'text/plain' })
          .end(r === true ? 'ready\n' : `not ready: ${r}\n`);
      }
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      // A collect callback that throws fails this scrape (500, with its message), not the agent.
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
