// The map writer against real pinned maps: whatever sequence of desired states it is given,
// the kernel ends up holding exactly the last one, with nothing stale.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encode } from '../../src/datapath/codec.js';
import { lbBackendKey, lbBackendValue } from '../../src/datapath/lb-codecs.js';
import { readKernelServices } from '../../src/datapath/lb-reader.js';
import { LbWriter } from '../../src/datapath/lb-writer.js';
import type { RawMap } from '../../src/datapath/libbpf.js';
import { loadSocketPrograms, type LoadedDatapath } from '../../src/datapath/programs.js';
import type { Frontend, L4Addr } from '../../src/state/services.js';
import { World } from '../harness/world.js';

let world: World;
let dp: LoadedDatapath;
let services: RawMap;
let backends: RawMap;

before(() => {
  world = World.create();
  dp = loadSocketPrograms({ bpfRoot: world.bpfRoot, cgroupDir: world.cgroupDir });
  services = dp.maps.get('lb_services')!;
  backends = dp.maps.get('lb_backends')!;
});

after(async () => {
  dp?.close();
  await world?.dispose();
});

// A small deterministic PRNG, so a failure can be replayed.
function rng(seed: number) {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

function frontend(i: number, backendIdx: number[]): Frontend {
  return {
    service: `default/svc-${i}`,
    portName: '',
    key: { ip: `10.96.${i >> 8}.${i & 255}`, port: 80, proto: 'TCP', family: 4 },
    backends: backendIdx.map((b): L4Addr => ({ ip: `10.244.${b >> 8}.${b & 255}`, port: 8080, family: 4 })),
  };
}

/** The kernel's content as {frontend → sorted backends}, compared with what was asked. */
function assertKernelHolds(desired: readonly Frontend[]): void {
  const kernel = readKernelServices(world.bpfRoot);
  const got = Object.fromEntries(
    kernel.map((s) => [`${s.frontend.ip}:${s.frontend.port}`, s.backends.map((b) => b.ip).sort()]),
  );
  const want = Object.fromEntries(
    desired.map((f) => [`${f.key.ip}:${f.key.port}`, f.backends.map((b) => b.ip).sort()]),
  );
  assert.deepEqual(got, want);
  const slots = [...backends.entries()].length;
  assert.equal(
    slots,
    desired.reduce((n, f) => n + f.backends.length, 0),
    'no stale backend slot is left',
  );
}

describe('LbWriter on real maps', () => {
  it('converges through 1,000 services of random churn with no stale entry', () => {
    const rand = rng(42);
    const writer = new LbWriter(services, backends);
    let state = new Map<number, number[]>();
    for (let round = 0; round < 12; round++) {
      const next = new Map(state);
      for (let k = 0; k < 400; k++) {
        const i = Math.floor(rand() * 1000);
        const r = rand();
        if (r < 0.2) next.delete(i);
        else
          next.set(
            i,
            Array.from({ length: Math.floor(rand() * 6) }, () => Math.floor(rand() * 5000)).filter(
              (v, j, a) => a.indexOf(v) === j,
            ),
          );
      }
      state = next;
      const desired = [...state].map(([i, b]) => frontend(i, b));
      writer.sync(desired);
      assertKernelHolds(desired);
    }
  });

  it('update() writes only the changes it is given, and converges through the same churn', () => {
    const rand = rng(7);
    const writer = new LbWriter(services, backends);
    writer.sync([]);
    const state = new Map<number, Frontend>();
    for (let round = 0; round < 12; round++) {
      const upserts: Frontend[] = [];
      const removes: Frontend[] = [];
      for (let k = 0; k < 200; k++) {
        const i = Math.floor(rand() * 1000);
        const old = state.get(i);
        if (rand() < 0.2) {
          if (old && !removes.includes(old)) removes.push(old);
          state.delete(i);
        } else {
          const f = frontend(
            i,
            Array.from({ length: 1 + Math.floor(rand() * 5) }, () => Math.floor(rand() * 5000)).filter(
              (v, j, a) => a.indexOf(v) === j,
            ),
          );
          state.set(i, f);
          upserts.push(f);
        }
      }
      // Only the last version of each frontend is current, as a table's commit reports it.
      const current = upserts.filter(
        (f) => state.get(Number(f.key.ip.split('.')[3]) + 256 * Number(f.key.ip.split('.')[2])) === f,
      );
      const stats = writer.update(
        current,
        removes.filter((f) => !state.has(Number(f.key.ip.split('.')[3]) + 256 * Number(f.key.ip.split('.')[2]))),
      );
      assertKernelHolds([...state.values()]);
      assert.equal(stats.services, state.size);
    }
    const before = writer.size;
    assert.equal(writer.update([...state.values()], []).written, 0, 'frontends already written are skipped');
    assert.deepEqual(writer.size, before);
  });

  it('a new writer adopts the kernel state: a repeated sync writes nothing', () => {
    const desired = [frontend(1, [1, 2, 3]), frontend(2, [4])];
    new LbWriter(services, backends).sync(desired);
    const stats = new LbWriter(services, backends).sync(desired);
    assert.equal(stats.written, 0);
    assert.equal(stats.deleted, 0);
    assertKernelHolds(desired);
  });

  it('an endpoint change rewrites only the slot it touches', () => {
    const writer = new LbWriter(services, backends);
    writer.sync([frontend(1, [1, 2, 3, 4])]);
    const stats = writer.sync([frontend(1, [1, 2, 5, 4])]);
    assert.equal(stats.written, 1, 'one slot rewritten, the service entry untouched');
    assert.equal(stats.deleted, 0);
  });

  it('slots a crashed agent left behind are removed by the next sync', () => {
    const desired = [frontend(7, [1, 2])];
    new LbWriter(services, backends).sync(desired);
    // What a crash between writing slots and writing the service leaves: slots of no service.
    backends.update(
      encode(lbBackendKey, { serviceId: 999, slot: 1 }),
      encode(lbBackendValue, { ip: '10.244.9.9', port: 1, family: 4 }),
    );
    const svcId = readKernelServices(world.bpfRoot)[0]!.serviceId;
    backends.update(
      encode(lbBackendKey, { serviceId: svcId, slot: 3 }),
      encode(lbBackendValue, { ip: '10.244.9.9', port: 1, family: 4 }),
    );
    const stats = new LbWriter(services, backends).sync(desired);
    assert.equal(stats.deleted, 2);
    assertKernelHolds(desired);
  });

  it('a state that does not fit is refused whole: the kernel keeps the last good state', () => {
    const good = [frontend(1, [1, 2, 3])];
    const writer = new LbWriter(services, backends, { services: 10, backends: 8 });
    writer.sync(good);
    assert.throws(
      () => writer.sync([frontend(1, [1, 2, 3]), frontend(2, [4, 5, 6, 7, 8, 9])]),
      /9 backends do not fit in lb_backends \(max 8\); nothing written/,
    );
    assertKernelHolds(good);
    assert.throws(
      () => writer.sync(Array.from({ length: 11 }, (_, i) => frontend(i, []))),
      /11 service frontends do not fit/,
    );
    assertKernelHolds(good);
    writer.sync([]);
    assertKernelHolds([]);
  });
});
