// The agent's network policy: compiles the store's NetworkPolicies, Pods and Namespaces with
// the node's endpoints (src/state/policy-compiler.ts), writes the result into the kernel
// (src/datapath/policy-writer.ts) and answers `weft explain` from the very result it wrote.
import os from 'node:os';
import type { EndpointDatapath } from '../datapath/endpoint-datapath.js';
import { ENDPOINT_F_EGRESS_ISOLATED, ENDPOINT_F_INGRESS_ISOLATED } from '../datapath/policy-codecs.js';
import { PolicyWriter, type PolicyWriteStats } from '../datapath/policy-writer.js';
import type { Protocol } from '../lib/checker.js';
import type { Logger } from '../lib/log.js';
import { IDENTITY_UNRESOLVED } from '../state/identities.js';
import { IdentityTable, type PolicyEndpoint, type PolicyPod } from '../state/identity-table.js';
import {
  PROTOCOL_NUMBERS,
  compileEndpoints,
  evaluate,
  lookupIpcache,
  policyBlocks,
  type CompiledEndpoint,
  type CompiledPolicy,
  type Direction,
  type RuleInfo,
} from '../state/policy-compiler.js';
import type { NetworkPolicy, Pod } from '../state/resources.js';
import type { ResourceStore } from '../state/store.js';
import type { EndpointRecord, ExplanationDetail, PolicyStatus } from '../contract/agent-api.js';
import { HttpError } from '../lib/unix-http.js';

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed']);

/** What the kernel holds, as compiled: the table's live ipcache and identities, and the
 *  endpoints' policy as last written. */
type CompiledState = Omit<CompiledPolicy, 'ipcache' | 'identities'> & Pick<IdentityTable, 'ipcache' | 'identities'>;

export function endpointFlags(ep: CompiledEndpoint | undefined): number {
  if (!ep) return 0;
  return (
    (ep.isolated.ingress ? ENDPOINT_F_INGRESS_ISOLATED : 0) | (ep.isolated.egress ? ENDPOINT_F_EGRESS_ISOLATED : 0)
  );
}

/** The node's own addresses, as the agent's network namespace (the node's) has them. */
export function hostAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) =>
    (list ?? []).map((a) => a.address.replace(/%.*$/, '')),
  );
}

export class PolicyEngine {
  private readonly writer: PolicyWriter;
  private readonly table = new IdentityTable();
  private readonly pods = new WeakMap<Pod, PolicyPod>();
  private policyList: NetworkPolicy[] = [];
  /** After a failed write: read the kernel again and write everything. */
  private resync = false;
  private compiled: CompiledState | undefined;
  private revision = 0;
  private lastWrite: PolicyStatus['lastWrite'];
  private notes = new Set<string>();

  constructor(
    private readonly store: ResourceStore,
    private readonly endpoints: () => readonly EndpointRecord[],
    private readonly datapath: EndpointDatapath,
    private readonly log: Logger,
  ) {
    this.writer = new PolicyWriter(datapath.ipcache, datapath.policy);
  }

  /** Folds what changed in the store and the registry into the identity table, recompiles
   *  the endpoints' policy when policies, identities or endpoints changed (not when a pod
   *  comes or goes with labels others share: that is one ipcache entry), and writes the
   *  difference. Endpoints with an interface get their isolation flags; one being set up gets
   *  them from flagsFor() when it is attached. Throws when the kernel refuses a write: the
   *  next call starts over from what the kernel holds. */
  sync(): PolicyWriteStats {
    const t = this.table;
    for (const [, name] of this.store.takeChanged('Namespace')) {
      const ns = this.store.get('Namespace', '', name);
      t.setNamespace(name, ns ? (ns.metadata.labels ?? {}) : undefined);
    }
    for (const [ns, name] of this.store.takeChanged('Pod')) {
      const pod = this.store.get('Pod', ns, name);
      const p = pod && this.policyPod(pod);
      if (p) t.setPod(p);
      else t.deletePod(ns, name);
    }
    const policiesChanged = this.store.takeChanged('NetworkPolicy').length > 0 || !this.compiled;
    if (policiesChanged) {
      this.policyList = [...this.store.ofKind('NetworkPolicy')];
      t.setBlocks(policyBlocks(this.policyList));
    }
    const endpoints: PolicyEndpoint[] = this.endpoints().map((r) => ({
      id: r.id,
      ...(r.podNamespace && { namespace: r.podNamespace }),
      ...(r.podName && { name: r.podName }),
      ips: r.ips.map((ip) => ip.address),
    }));
    t.setEndpoints(endpoints);
    t.setHostIps(hostAddresses());
    const ipcache = t.commit();

    let stats: PolicyWriteStats;
    let compiled: CompiledState;
    try {
      const full = this.resync || !this.compiled;
      if (this.resync) this.writer.reload();
      const { state, changed } = this.compileChanged(endpoints, full || policiesChanged || ipcache.identitiesChanged);
      compiled = state;
      stats = this.writer.write(
        {
          ipcache: full ? { all: t.ipcache } : { upserts: ipcache.upserts, removes: ipcache.removes },
          endpoints: changed,
        },
        () => {
          for (const rec of this.endpoints()) {
            if (rec.hostIfIndex === undefined) continue;
            this.datapath.setFlags(rec.hostIfIndex, endpointFlags(state.endpoints.get(rec.id)));
          }
        },
      );
      this.resync = false;
    } catch (err) {
      this.resync = true;
      throw err;
    }
    this.compiled = compiled;
    this.revision++;
    this.lastWrite = { ...stats, at: new Date().toISOString() };
    for (const note of compiled.notes) if (!this.notes.has(note)) this.log.warn(note);
    this.notes = new Set(compiled.notes);
    return stats;
  }

  /** Every endpoint's policy compiled anew when policies or identities changed; otherwise only
   *  endpoints that are new or whose identity changed (a pod created on this node costs its
   *  own compile, not the node's). Returns the state and the endpoints to write (null: gone). */
  private compileChanged(
    endpoints: PolicyEndpoint[],
    everything: boolean,
  ): { state: CompiledState; changed: Map<number, CompiledEndpoint | null> } {
    const t = this.table;
    const prev = this.compiled;
    if (everything || !prev) {
      const state = {
        ...compileEndpoints(this.policyList, t, endpoints),
        ipcache: t.ipcache,
        identities: t.identities,
      };
      const changed = new Map<number, CompiledEndpoint | null>(state.endpoints);
      for (const id of this.writer.endpointIds()) if (!state.endpoints.has(id)) changed.set(id, null);
      return { state, changed };
    }
    const identityNow = (e: PolicyEndpoint) =>
      (e.namespace && e.name && t.identityOfPod(e.namespace, e.name)) || IDENTITY_UNRESOLVED;
    const fresh = endpoints.filter((e) => prev.endpoints.get(e.id)?.identity !== identityNow(e));
    const live = new Set(endpoints.map((e) => e.id));
    const gone = [...prev.endpoints.keys()].filter((id) => !live.has(id));
    if (fresh.length === 0 && gone.length === 0) return { state: prev, changed: new Map() };
    const part = compileEndpoints(this.policyList, t, fresh);
    const all = new Map(prev.endpoints);
    for (const id of gone) all.delete(id);
    for (const [id, ep] of part.endpoints) all.set(id, ep);
    return {
      state: { ...prev, endpoints: all, rules: new Map([...prev.rules, ...part.rules]) },
      changed: new Map<number, CompiledEndpoint | null>([
        ...part.endpoints,
        ...gone.map((id): [number, null] => [id, null]),
      ]),
    };
  }

  /** The endpoint's isolation flags; undefined until a compile has been written. */
  flagsFor(endpointId: number): number | undefined {
    return this.compiled && endpointFlags(this.compiled.endpoints.get(endpointId));
  }

  /** A Pod as policy sees it; the same object for the same store object, so that the table
   *  sees an unchanged pod as unchanged. Pods on the host network and finished pods have no
   *  address of their own. */
  private policyPod(p: Pod): PolicyPod | undefined {
    if (p.spec.hostNetwork || TERMINAL_PHASES.has(p.status?.phase ?? '')) return undefined;
    let out = this.pods.get(p);
    if (!out) {
      out = {
        namespace: p.metadata.namespace ?? 'default',
        name: p.metadata.name,
        labels: p.metadata.labels ?? {},
        ips: (p.status?.podIPs ?? []).map((x) => x.ip),
        ports: p.spec.containers.flatMap((c) => c.ports ?? []),
      };
      this.pods.set(p, out);
    }
    return out;
  }

  /** Who holds an address, as the ipcache says (see IdentityTable.holderOf). */
  holderOf(ip: string): ReturnType<IdentityTable['holderOf']> {
    return this.table.holderOf(ip);
  }

  /** The policies isolating an endpoint in a direction, as last compiled (ns/name, sorted). */
  isolatedBy(endpointId: number, direction: Direction): readonly string[] {
    const ep = this.compiled?.endpoints.get(endpointId);
    return ep?.isolated[direction] ? ep.selectedBy[direction] : [];
  }

  /** A rule id of the kernel's policy map, as last compiled. */
  rule(id: number): RuleInfo | undefined {
    return this.compiled?.rules.get(id);
  }

  get policyCount(): number {
    return this.compiled?.policies.length ?? 0;
  }

  status(): PolicyStatus {
    const c = this.compiled;
    return {
      revision: this.revision,
      policies: c?.policies ?? [],
      endpoints: [...(c?.endpoints.values() ?? [])].map((ep) => ({
        endpoint: ep.id,
        pod: ep.pod ?? null,
        identity: ep.identity,
        ingress: ep.isolated.ingress ? 'isolated' : 'open',
        egress: ep.isolated.egress ? 'isolated' : 'open',
        entries: ep.entries.size,
      })),
      ipcache: c?.ipcache.size ?? 0,
      ...(this.lastWrite && { lastWrite: this.lastWrite }),
      notes: c?.notes ?? [],
    };
  }

  /** `weft explain`: the verdict for a new connection from one pod to another. */
  explain(q: URLSearchParams): ExplanationDetail {
    const compiled = this.compiled;
    if (!compiled) throw new HttpError(503, 'policy is not compiled yet: the agent is starting');
    const from = podRef(q.get('from'), 'from');
    const to = podRef(q.get('to'), 'to');
    const protocol = (q.get('protocol') ?? 'TCP').toUpperCase() as Protocol;
    if (!(protocol in PROTOCOL_NUMBERS))
      throw new HttpError(400, `protocol ${JSON.stringify(q.get('protocol'))}: want TCP, UDP or SCTP`);
    const port = Number(q.get('port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new HttpError(400, `port ${JSON.stringify(q.get('port'))}: want 1-65535`);

    // Pods of this node are judged by what the kernel holds; others by the same compiler, run
    // for them as if they were local.
    const known = (ref: string) => this.endpointOf(compiled, ref) ?? this.compileAway(ref);
    const src = known(from);
    const dst = known(to);
    const family = src.ips.some((ip) => !ip.includes(':')) && dst.ips.some((ip) => !ip.includes(':')) ? 4 : 6;
    const ipOf = (x: typeof src, ref: string) => {
      const ip = x.ips.find((a) => (family === 6) === a.includes(':'));
      if (!ip) throw new HttpError(404, `pod ${ref} has no IPv${family} address (yet)`);
      return ip;
    };
    const proto = PROTOCOL_NUMBERS[protocol];
    const what = `${protocol}/${port}`;
    const step = (direction: Direction, self: typeof src, selfRef: string, peerIp: string, peerRef: string) => {
      const v = evaluate(self.ep, direction, lookupIpcache(compiled.ipcache, peerIp), proto, port);
      const selectedBy = self.ep.selectedBy[direction];
      if (!self.ep.isolated[direction])
        return { direction, pod: selfRef, verdict: 'ALLOW' as const, policy: null, rule: 'no policy selects this pod' };
      if (v.allowed) {
        const r = self.rules.get(v.rule!);
        return {
          direction,
          pod: selfRef,
          verdict: 'ALLOW' as const,
          policy: r?.policy ?? null,
          rule: r?.rule ?? `rule ${v.rule}`,
        };
      }
      const by = selectedBy.join(', ') || 'the policies of its namespace (its labels are not known yet)';
      return {
        direction,
        pod: selfRef,
        verdict: 'DENY' as const,
        policy: selectedBy[0] ?? null,
        rule: `default deny: isolated for ${direction} by ${by}; no ${direction} rule allows ${what} ${direction === 'egress' ? 'to' : 'from'} ${peerRef}`,
      };
    };
    const egress = step('egress', src, from, ipOf(dst, to), to);
    const ingress = step('ingress', dst, to, ipOf(src, from), from);
    const decisive =
      egress.verdict === 'DENY'
        ? egress
        : ingress.verdict === 'DENY'
          ? ingress
          : dst.ep.isolated.ingress || !src.ep.isolated.egress
            ? ingress
            : egress;
    return {
      verdict: decisive.verdict,
      policy: decisive.policy,
      rule: decisive.rule,
      direction: decisive.direction,
      steps: [egress, ingress],
    };
  }

  private endpointOf(compiled: CompiledState, ref: string): ExplainedPod | undefined {
    const rec = this.endpoints().find((r) => `${r.podNamespace}/${r.podName}` === ref);
    const ep = rec && compiled.endpoints.get(rec.id);
    return ep && rec ? { ep, ips: rec.ips.map((i) => i.address), rules: compiled.rules } : undefined;
  }

  private compileAway(ref: string): ExplainedPod {
    const [namespace = '', name = ''] = ref.split('/');
    const pod = this.table.pod(namespace, name);
    if (!pod) throw new HttpError(404, `no pod ${ref}: neither on this node nor among the Pods the agent knows`);
    const id = -1;
    const c = compileEndpoints(this.policyList, this.table, [{ id, namespace, name, ips: pod.ips }]);
    return { ep: c.endpoints.get(id)!, ips: [...pod.ips], rules: c.rules };
  }
}

/** A pod as explain judges it: its compiled policy, addresses, and the rules its entries name. */
interface ExplainedPod {
  ep: CompiledEndpoint;
  ips: string[];
  rules: CompiledState['rules'];
}

function podRef(v: string | null, name: string): string {
  if (!v || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v))
    throw new HttpError(400, `--${name} ${JSON.stringify(v ?? '')}: want NAMESPACE/POD`);
  return v;
}
