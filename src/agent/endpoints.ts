// The node's endpoints: one per pod interface the CNI plugin set up, with its addresses (this
// is where IPAM lives) and what the datapath needs to know. Every change is written to the
// state directory (atomically, and synced to disk) before it is acknowledged, so a restarted
// agent knows every address it handed out and never hands one out twice.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../lib/log.js';
import { AddressPool } from '../state/address-pool.js';
import type { EndpointRecord } from '../contract/agent-api.js';
import { CniCode, CniError, GATEWAY4, GATEWAY6, hostIfName, type PodAddress } from '../contract/cni.js';

interface StateFile {
  version: 1;
  nextId: number;
  cursors: Record<string, string>;
  endpoints: EndpointRecord[];
}

const keyOf = (containerId: string, ifName: string) => `${containerId}/${ifName}`;

export class EndpointRegistry {
  private readonly records = new Map<string, EndpointRecord>();
  private nextId = 1;

  private constructor(
    private readonly file: string,
    private pools: AddressPool[],
  ) {}

  /** Loads the registry from `stateDir/endpoints.json` (if any) and marks its addresses taken. */
  static load(stateDir: string, podCidrs: readonly string[], log: Logger): EndpointRegistry {
    const reg = new EndpointRegistry(
      path.join(stateDir, 'endpoints.json'),
      podCidrs.map((c) => new AddressPool(c)),
    );
    let state: StateFile | undefined;
    try {
      state = JSON.parse(fs.readFileSync(reg.file, 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // Refusing to start beats handing out addresses that may be in use.
        throw new Error(`cannot read endpoint state ${reg.file}: ${(err as Error).message}`);
      }
    }
    if (state) {
      reg.nextId = state.nextId;
      for (const ep of state.endpoints) {
        reg.records.set(keyOf(ep.containerId, ep.ifName), ep);
        for (const ip of ep.ips) {
          if (!reg.pools.some((p) => p.claim(ip.address))) {
            log.warn('endpoint address outside the pod CIDRs; kept, never reused', {
              container: ep.containerId,
              address: ip.address,
            });
          }
        }
      }
      for (const p of reg.pools) {
        const cursor = state.cursors[p.cidr];
        if (cursor) p.next = cursor;
      }
    }
    return reg;
  }

  /** The node's pod CIDRs changed (in Kubernetes mode they arrive with the Node object, which
   *  may be after the agent started). Pools of CIDRs that stay keep their state; a new pool
   *  marks the addresses endpoints already hold in it as taken. */
  setPodCidrs(cidrs: readonly string[]): void {
    const pools = cidrs.map((cidr) => this.pools.find((p) => p.cidr === cidr) ?? new AddressPool(cidr));
    for (const pool of pools) {
      if (this.pools.includes(pool)) continue;
      for (const ep of this.records.values())
        for (const ip of ep.ips) if (pool.contains(ip.address)) pool.claim(ip.address);
    }
    this.pools = pools;
  }

  get podCidrs(): string[] {
    return this.pools.map((p) => p.cidr);
  }

  get(containerId: string, ifName: string): EndpointRecord | undefined {
    return this.records.get(keyOf(containerId, ifName));
  }

  list(): EndpointRecord[] {
    return [...this.records.values()].sort((a, b) => a.id - b.id);
  }

  /** The endpoint's addresses: the existing ones for a known container and interface (ADD
   *  may be retried), one new address per configured family otherwise. */
  allocate(req: {
    containerId: string;
    ifName: string;
    netns: string;
    podNamespace?: string;
    podName?: string;
  }): EndpointRecord {
    const existing = this.get(req.containerId, req.ifName);
    if (existing) return existing;
    if (this.pools.length === 0)
      throw new CniError(
        CniCode.TryAgainLater,
        "this node has no pod CIDR yet (weftd --pod-cidr, or the Node object's spec.podCIDRs)",
      );
    const ips: PodAddress[] = [];
    const undo = () => ips.forEach((ip) => this.poolOf(ip.address)?.release(ip.address));
    for (const family of [4, 6] as const) {
      const pools = this.pools.filter((p) => p.family === family);
      if (pools.length === 0) continue;
      let address: string | undefined;
      let pool: AddressPool | undefined;
      for (pool of pools) if ((address = pool.allocate())) break;
      if (!address || !pool) {
        undo();
        throw new CniError(
          CniCode.PoolExhausted,
          `address pool ${pools.map((p) => p.cidr).join(', ')} exhausted (${pools.reduce((n, p) => n + p.used, 0)} addresses in use)`,
        );
      }
      ips.push({ family, address, prefixLength: family === 4 ? 32 : 128, gateway: family === 4 ? GATEWAY4 : GATEWAY6 });
    }
    const rec: EndpointRecord = {
      id: this.nextId++,
      containerId: req.containerId,
      ifName: req.ifName,
      ...(req.podNamespace && { podNamespace: req.podNamespace }),
      ...(req.podName && { podName: req.podName }),
      netns: req.netns,
      hostIfName: hostIfName(req.containerId, req.ifName),
      ips,
      state: 'allocated',
      createdAt: new Date().toISOString(),
    };
    this.records.set(keyOf(rec.containerId, rec.ifName), rec);
    this.commit(() => {
      this.records.delete(keyOf(rec.containerId, rec.ifName));
      undo();
    });
    return rec;
  }

  markReady(
    rec: EndpointRecord,
    facts: { hostIfIndex: number; hostMac: string; podMac: string; netnsCookie?: string },
  ): void {
    const before = { ...rec };
    Object.assign(rec, facts, { state: 'ready' });
    this.commit(() => Object.assign(rec, before));
  }

  /** Forgets an endpoint and frees its addresses; undefined if it was not known. */
  remove(containerId: string, ifName: string): EndpointRecord | undefined {
    const rec = this.get(containerId, ifName);
    if (!rec) return undefined;
    this.records.delete(keyOf(containerId, ifName));
    for (const ip of rec.ips) this.poolOf(ip.address)?.release(ip.address);
    this.commit(() => {
      this.records.set(keyOf(containerId, ifName), rec);
      for (const ip of rec.ips) this.poolOf(ip.address)?.claim(ip.address);
    });
    return rec;
  }

  /** Removes every endpoint not in `valid` (the runtime's list of attachments it still has). */
  gc(valid: readonly { containerID: string; ifname: string }[]): EndpointRecord[] {
    const keep = new Set(valid.map((v) => keyOf(v.containerID, v.ifname)));
    const gone = this.list().filter((r) => !keep.has(keyOf(r.containerId, r.ifName)));
    for (const r of gone) {
      this.records.delete(keyOf(r.containerId, r.ifName));
      for (const ip of r.ips) this.poolOf(ip.address)?.release(ip.address);
    }
    if (gone.length) {
      this.commit(() => {
        for (const r of gone) {
          this.records.set(keyOf(r.containerId, r.ifName), r);
          for (const ip of r.ips) this.poolOf(ip.address)?.claim(ip.address);
        }
      });
    }
    return gone;
  }

  poolUsage(): { cidr: string; used: number; capacity: string }[] {
    return this.pools.map((p) => ({ cidr: p.cidr, used: p.used, capacity: p.capacity.toString() }));
  }

  private poolOf(ip: string): AddressPool | undefined {
    return this.pools.find((p) => p.contains(ip));
  }

  /** Writes the state durably; on failure undoes the in-memory change and reports an I/O error. */
  private commit(rollback: () => void): void {
    const state: StateFile = {
      version: 1,
      nextId: this.nextId,
      cursors: Object.fromEntries(this.pools.map((p) => [p.cidr, p.next])),
      endpoints: this.list(),
    };
    const tmp = `${this.file}.tmp`;
    try {
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeSync(fd, JSON.stringify(state));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
    } catch (err) {
      rollback();
      throw new CniError(CniCode.IoFailure, `cannot persist endpoint state to ${this.file}: ${(err as Error).message}`);
    }
  }
}
