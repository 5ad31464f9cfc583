// Flows: the observer (src/observe/observer.ts) reads the datapath's events from the start
// (flows are served before the source has synced), takes the proxy's L7 flows, serves
// GET /v1/flows, counts the flow metrics and reports its state.
import { Counter, Gauge, type Registry } from 'prom-client';
import { dropReason, eventType, weftDir } from '../datapath/endpoint-codecs.js';
import type { FlowContext } from '../observe/decode.js';
import { flowRoutes } from '../observe/flow-api.js';
import type { Flow } from '../contract/flow.js';
import { Observer } from '../observe/observer.js';
import type { Route } from '../lib/unix-http.js';
import type { AgentContext, Controller } from './controller.js';
import type { AgentStatus } from '../contract/agent-api.js';

export class FlowController implements Controller {
  readonly routes: Readonly<Record<string, Route>>;
  private readonly observer: Observer;

  constructor(
    ctx: AgentContext,
    /** Names the addresses, endpoints, services and rules in a flow (flow-context.ts). */
    context: Omit<FlowContext, 'wallTimeNs'>,
  ) {
    const { cfg, log } = ctx;
    this.observer = new Observer({ bpfRoot: cfg.bpfRoot, capacity: cfg.flowBufferSize, context, log });
    observerMetrics(ctx.metrics, this.observer);
    this.routes = flowRoutes(() => this.observer);
  }

  /** An L7 flow the proxy reported. */
  addFlow(flow: Flow): void {
    this.observer.addFlow(flow);
  }

  /** L7 flows the proxy said it dropped. */
  addLost(count: number): void {
    this.observer.addLost(count);
  }

  status(): Partial<AgentStatus> {
    return { observer: this.observer.status() };
  }

  async stop(): Promise<void> {
    await this.observer.stop();
  }
}

/** The observer's counters, read at scrape time: counting costs the hot path nothing. */
function observerMetrics(registry: Registry, observer: Observer): void {
  const registers = [registry];
  // Every metric of the observer calls it at each scrape: it is cheap, and idempotent.
  const collect = () => {
    const counts = observer.counts();
    for (const f of counts.flows)
      advance(flows, { type: eventType.name(f.type) ?? String(f.type), verdict: f.verdict }, f.count);
    for (const d of counts.drops) {
      advance(
        drops,
        {
          reason: dropReason.name(d.reason) ?? String(d.reason),
          direction: weftDir.name(d.direction) ?? String(d.direction),
        },
        d.count,
      );
    }
    for (const [stage, n] of Object.entries(observer.lost())) advance(lost, { stage }, n);
    ringFlows.set(observer.ring.written() - observer.ring.oldest());
    ringCapacity.set(observer.ring.capacity);
    up.set(observer.running ? 1 : 0);
  };
  const flows = new Counter({
    name: 'weft_flows_processed_total',
    help: 'Flow events read from the kernel, by type and verdict',
    labelNames: ['type', 'verdict'],
    registers,
    collect,
  });
  const drops = new Counter({
    name: 'weft_drops_total',
    help: 'Packets the datapath dropped, by reason and direction',
    labelNames: ['reason', 'direction'],
    registers,
    collect,
  });
  const lost = new Counter({
    name: 'weft_flows_lost_total',
    help:
      'Flow events lost, by stage: kernel (ring buffer full), decode (unreadable record), ' +
      'follow (a slow API follower), proxy (L7 flows weft-proxy dropped)',
    labelNames: ['stage'],
    registers,
    collect,
  });
  const ringFlows = new Gauge({
    name: 'weft_flow_buffer_flows',
    help: "Flows held in the observer's in-memory ring",
    registers,
    collect,
  });
  const ringCapacity = new Gauge({
    name: 'weft_flow_buffer_capacity',
    help: "Flows the observer's in-memory ring can hold",
    registers,
    collect,
  });
  const up = new Gauge({
    name: 'weft_observer_up',
    help: "1 while the observer reads the kernel's ring buffer",
    registers,
    collect,
  });
  // Counters only go up: each scrape adds what was counted since the last one.
  const seen = new Map<Counter<string>, Map<string, number>>();
  const advance = (c: Counter<string>, labels: Record<string, string>, total: number) => {
    let mine = seen.get(c);
    if (!mine) seen.set(c, (mine = new Map<string, number>()));
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
