// The agent's controller plumbing: when a controller's sync runs (SyncLoop), and the status
// the agent composes from its own fields and the controllers' parts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SyncLoop } from '../../src/agent/controller.js';
import { composeStatus } from '../../src/agent/status.js';

const turn = () => new Promise((r) => setImmediate(r));

describe('SyncLoop', () => {
  it('runs once for a burst of triggers within one turn of the event loop', async () => {
    let runs = 0;
    const loop = new SyncLoop(() => runs++, new AbortController().signal);
    loop.schedule();
    loop.changed();
    loop.schedule();
    assert.equal(runs, 0, 'not before the turn ends');
    await turn();
    assert.equal(runs, 1);
    loop.schedule();
    await turn();
    assert.equal(runs, 2);
  });

  it('keeps the oldest unwritten change until a run that saw it has written', () => {
    const loop = new SyncLoop(() => {}, new AbortController().signal);
    loop.changed();
    const first = loop.changedSince;
    assert.ok(first !== undefined);
    loop.changed();
    assert.equal(loop.changedSince, first, 'the oldest change counts');
    loop.written(first);
    assert.equal(loop.changedSince, undefined);
    loop.written(undefined);
    assert.equal(loop.changedSince, undefined);
  });

  it('runs nothing once the agent stops: neither what was scheduled nor what comes after', async () => {
    let runs = 0;
    const stopping = new AbortController();
    const loop = new SyncLoop(() => runs++, stopping.signal);
    loop.schedule();
    loop.retry();
    stopping.abort();
    loop.schedule();
    loop.retry();
    await turn();
    await turn();
    assert.equal(runs, 0);
  });
});

describe('composeStatus', () => {
  it('shows the fields in the usual order, whichever part fills them in', () => {
    const s = composeStatus(
      {
        version: '0.1.0',
        node: 'n1',
        pid: 1,
        startedAt: 't',
        source: 'dir:/m',
        bpfRoot: '/b',
        cgroup: '/c',
        synced: true,
        problems: [],
      },
      [
        { endpoints: 2, podCidrs: [] },
        { policy: { policies: 1, revision: 3, entries: 4, ipcache: 5 } },
        undefined,
        { lastSync: { at: 't2' } },
        {},
      ],
    );
    assert.deepEqual(Object.keys(s), [
      'version',
      'node',
      'pid',
      'startedAt',
      'source',
      'bpfRoot',
      'cgroup',
      'synced',
      'lastSync',
      'problems',
      'endpoints',
      'podCidrs',
      'policy',
    ]);
  });
});
