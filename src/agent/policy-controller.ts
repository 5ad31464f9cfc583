// NetworkPolicy into the kernel's policy maps (ipcache, policy, the endpoints' isolation flags),
// on its own schedule: the policy engine (policy.ts) compiles and writes; this runs it when
// policies, pods, namespaces or the node's endpoints change, retries a failed write, counts,
// and answers GET /v1/policy and GET /v1/explain.
import type http from 'node:http';
import { Counter, Gauge } from 'prom-client';
import type { EndpointDatapath } from '../datapath/endpoint-datapath.js';
import { ENDPOINT_F_INGRESS_ISOLATED } from '../datapath/policy-codecs.js';
import { HttpError } from '../lib/unix-http.js';
import { SYNC_RETRY_MS, SyncLoop, type AgentContext, type Controller, type ResourceKind } from './controller.js';
import { PolicyEngine } from './policy.js';
import type { AgentStatus, EndpointRecord } from '../contract/agent-api.js';

const POLICY_KINDS: readonly ResourceKind[] = ['NetworkPolicy', 'Pod', 'Namespace'];

export class PolicyController implements Controller {
  /** Undefined until start(): the store is a complete view only then. */
  engine: PolicyEngine | undefined;
  readonly routes = {
    'GET /v1/policy': () => this.engine?.status() ?? Promise.reject(this.notReady()),
    'GET /v1/explain': (req: http.IncomingMessage) => {
      if (!this.engine) throw this.notReady();
      return this.engine.explain(new URL(req.url ?? '/', 'http://weft').searchParams);
    },
  };
  private readonly loop: SyncLoop;
  private readonly metrics: ReturnType<typeof policyMetrics>;
  private error: string | undefined;

  constructor(
    private readonly ctx: AgentContext,
    private readonly datapath: EndpointDatapath,
    /** The node's endpoints (their registry is read when the endpoints controller starts). */
    private readonly endpoints: { records(): readonly EndpointRecord[] },
  ) {
    this.loop = new SyncLoop(() => this.sync(), ctx.stopping);
    this.metrics = policyMetrics(ctx);
  }

  /** The first write comes before the endpoints' programs are re-attached (EndpointPrograms):
   *  their isolation comes from it. Until a compile succeeds, every endpoint keeps the flags
   *  its entry has. */
  start(): void {
    this.engine = new PolicyEngine(this.ctx.store, () => this.endpoints.records(), this.datapath, this.ctx.log);
    this.sync();
  }

  changed(kinds: ReadonlySet<ResourceKind>): void {
    if (POLICY_KINDS.some((k) => kinds.has(k))) this.loop.changed();
  }

  pendingSince(): number | undefined {
    return this.loop.changedSince;
  }

  /** The node's endpoints changed outside the store (one went away): write soon. */
  endpointsChanged(): void {
    this.loop.schedule();
  }

  /** Compiles and writes now; throws when the kernel refuses (the kernel keeps its last
   *  policy). Nothing to do before start(). */
  writeNow(): void {
    const engine = this.engine;
    if (!engine) return;
    try {
      const since = this.loop.changedSince;
      const stats = engine.sync();
      this.loop.written(since);
      this.error = undefined;
      this.metrics.syncs.inc({ result: 'ok' });
      this.metrics.policies.set(engine.policyCount);
      this.metrics.entries.set(stats.entries);
      this.metrics.ipcache.set(stats.ipcache);
      if (stats.written || stats.deleted) {
        this.ctx.log.info('policy synced', {
          policies: engine.policyCount,
          entries: stats.entries,
          ipcache: stats.ipcache,
          written: stats.written,
          deleted: stats.deleted,
          ms: stats.ms.toFixed(1),
        });
      }
    } catch (err) {
      this.error = (err as Error).message;
      this.metrics.syncs.inc({ result: 'error' });
      throw err;
    }
  }

  /** An endpoint's isolation flags; undefined until a compile has been written. */
  flagsFor(endpointId: number): number | undefined {
    return this.engine?.flagsFor(endpointId);
  }

  /** Whether an address is a local pod that NetworkPolicy isolates for ingress. */
  ingressIsolated(ip: string): boolean {
    const ep = this.endpoints.records().find((r) => r.ips.some((a) => a.address === ip));
    return ep !== undefined && ((this.flagsFor(ep.id) ?? 0) & ENDPOINT_F_INGRESS_ISOLATED) !== 0;
  }

  status(): Partial<AgentStatus> {
    if (!this.engine) return {};
    const s = this.engine.status();
    return {
      policy: {
        policies: s.policies.length,
        revision: s.revision,
        entries: s.lastWrite?.entries ?? 0,
        ipcache: s.lastWrite?.ipcache ?? 0,
        ...(this.error && { error: this.error }),
      },
    };
  }

  /** A scheduled write: on failure the kernel keeps its last state and a retry comes. */
  private sync(): void {
    try {
      this.writeNow();
    } catch (err) {
      this.ctx.log.error('policy sync failed; the kernel keeps its last policy', {
        error: (err as Error).message,
        retry_s: SYNC_RETRY_MS / 1000,
      });
      this.loop.retry();
    }
  }

  private notReady(): HttpError {
    return new HttpError(503, `not ready: waiting for ${this.ctx.waitingFor()}`);
  }
}

function policyMetrics({ metrics: registry }: AgentContext) {
  const registers = [registry];
  return {
    policies: new Gauge({ name: 'weft_network_policies', help: 'NetworkPolicies in force', registers }),
    entries: new Gauge({ name: 'weft_policy_entries', help: "Allow entries in the kernel's policy map", registers }),
    ipcache: new Gauge({ name: 'weft_ipcache_entries', help: "Address prefixes in the kernel's ipcache", registers }),
    syncs: new Counter({
      name: 'weft_policy_syncs_total',
      help: 'Policy writes into the kernel by result',
      labelNames: ['result'],
      registers,
    }),
  };
}
