// What a controller is. The agent (agent.ts) is wiring: it loads the datapath, composes
// controllers that each do one job and own its state (Services into the LB maps, policy into
// the policy maps, the node's endpoints, the proxy, flows, ...), serves the API routes they
// answer, waits for the source's first complete view, then starts them and hands them every
// change of the store, always in the order of its list.
import type { Registry } from 'prom-client';
import type { Logger } from '../lib/log.js';
import type { Resource } from '../state/resources.js';
import type { ResourceStore } from '../state/store.js';
import type { Route } from '../lib/unix-http.js';
import type { AgentConfig } from './config.js';
import type { AgentStatus } from '../contract/agent-api.js';

export type ResourceKind = Resource['kind'];

/** What the agent gives every controller. */
export interface AgentContext {
  readonly cfg: AgentConfig;
  readonly log: Logger;
  /** The resource store the source fills. */
  readonly store: ResourceStore;
  /** The registry served on --metrics-address: a controller registers its own metrics. */
  readonly metrics: Registry;
  /** Aborted when the agent stops: no sync is scheduled or run after that (see SyncLoop). */
  readonly stopping: AbortSignal;
  /** What the agent waits for before it starts the controllers, for "not ready" answers. */
  waitingFor(): string;
}

/** One job of the agent. Every member is optional: a controller has what its job needs. */
export interface Controller {
  /** The API routes it answers ("METHOD /path"). They are served from before the source has
   *  synced: until start() they answer that the agent is not ready (or what they can). */
  readonly routes?: Readonly<Record<string, Route>>;
  /** The source holds a complete view: the first sync. Called once, in list order; nothing is
   *  written into the kernel before (a partial view would delete what it has not read yet). */
  start?(): void;
  /** After start: the store changed objects of these kinds. Called in list order, for every
   *  change; a controller that cares schedules its sync (SyncLoop), coalescing bursts. */
  changed?(kinds: ReadonlySet<ResourceKind>): void;
  /** Whether its first complete write is in the kernel. The agent is ready (/readyz,
   *  weft_agent_ready, status.synced) once it has started and every controller with this
   *  member says true. */
  readonly synced?: boolean;
  /** When the oldest change it has not written yet arrived (Date.now()), if any: the agent's
   *  sync lag is the oldest over all controllers. */
  pendingSince?(): number | undefined;
  /** Its fields of GET /v1/status. */
  status?(): Partial<AgentStatus>;
  /** Ends what it runs (processes, workers). Called after the API has closed, awaited in list
   *  order. The kernel keeps what was written. */
  stop?(): Promise<void> | void;
}

/** After a failed write the sync is retried on its own: the source may stay quiet. */
export const SYNC_RETRY_MS = 5000;

/** When a controller's sync runs: a burst of triggers within one turn of the event loop
 *  becomes one run (setImmediate), a failed run asks for a retry, and nothing is scheduled once
 *  the agent stops. The run itself (and its error handling) is the controller's. */
export class SyncLoop {
  /** When the oldest change not yet written arrived (the sync lag); undefined when none. */
  changedSince: number | undefined;
  private pending: NodeJS.Immediate | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly run: () => void,
    private readonly stopping: AbortSignal,
  ) {
    stopping.addEventListener(
      'abort',
      () => {
        if (this.pending) clearImmediate(this.pending);
        clearTimeout(this.retryTimer);
      },
      { once: true },
    );
  }

  /** A change to write arrived: notes when (for the lag) and schedules a run. */
  changed(): void {
    this.changedSince ??= Date.now();
    this.schedule();
  }

  /** Schedules a run (one for any number of calls until it runs). */
  schedule(): void {
    if (this.stopping.aborted) return;
    this.pending ??= setImmediate(() => {
      this.pending = undefined;
      this.run();
    });
  }

  /** After a failed run: schedules one more in SYNC_RETRY_MS (replacing a retry not yet due). */
  retry(): void {
    if (this.stopping.aborted) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.schedule(), SYNC_RETRY_MS);
  }

  /** A run that began when changedSince was `since` wrote everything: the lag ends, unless a
   *  newer change arrived meanwhile. */
  written(since: number | undefined): void {
    if (this.changedSince === since) this.changedSince = undefined;
  }
}
