// The proxy's flow stream: followers get every line while they keep up; one that stops
// reading loses lines (it alone), and is told how many, in line, once it reads again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { serveApi } from '../../src/lib/unix-http.js';
import { FlowHub } from '../../src/proxy/flow-hub.js';
import { Cleanup, eventually } from '../fixtures/proxy-harness.js';

const cleanup = new Cleanup();
after(() => cleanup.run());

async function hubServer(maxQueue: number): Promise<{ hub: FlowHub; socket: string; wanted: boolean[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-flowhub-'));
  cleanup.add(() => fs.rmSync(dir, { recursive: true, force: true }));
  const wanted: boolean[] = [];
  const hub = new FlowHub((on) => wanted.push(on), maxQueue);
  const socket = path.join(dir, 'admin.sock');
  const server = await serveApi(socket, hub.routes());
  cleanup.add(() => new Promise((r) => server.close(r)));
  return { hub, socket, wanted };
}

function get(socket: string, p: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: p, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

describe("the proxy's flow stream", () => {
  it('takes follow=1 only', async () => {
    const { socket } = await hubServer(8);
    for (const [q, want] of [
      ['', /follow=1/],
      ['?follow=0', /follow=1/],
      ['?follow=1&last=5', /unknown parameter: last/],
    ] as const) {
      const res = await get(socket, `/v1/flows${q}`);
      let body = '';
      for await (const c of res) body += c;
      assert.equal(res.statusCode, 400);
      assert.match((JSON.parse(body) as { error: string }).error, want);
    }
  });

  it('tells a follower that fell behind how many flows it lost, and others lose nothing', async () => {
    const { hub, socket, wanted } = await hubServer(16);
    const slow = await get(socket, '/v1/flows?follow=1');
    const fast = await get(socket, '/v1/flows?follow=1');
    cleanup.add(() => (slow.destroy(), fast.destroy()));
    await eventually(() => hub.followerCount === 2, 'two followers');
    assert.deepEqual(wanted, [true]);
    slow.pause();
    const fastLines: string[] = [];
    let fastBuf = '';
    fast.setEncoding('utf8').on('data', (d: string) => {
      fastBuf += d;
      const parts = fastBuf.split('\n');
      fastBuf = parts.pop()!;
      fastLines.push(...parts);
    });
    // Big lines, so that the slow follower's socket fills and its queue overflows.
    const pad = 'x'.repeat(16 * 1024);
    const total = 2000;
    for (let i = 0; i < total; i++) {
      hub.publish(`${JSON.stringify({ flow: { n: i, pad } })}\n`);
      // The fast follower keeps up (a few lines behind at most); the slow one does not read.
      if (i % 4 === 3) await eventually(() => fastLines.length > i - 4, 'the fast follower to keep up', 10_000, 1);
    }
    await eventually(() => fastLines.length === total, "the fast follower's lines");
    assert.deepEqual(
      fastLines.map((l) => (JSON.parse(l) as { flow: { n: number } }).flow.n),
      Array.from({ length: total }, (_, i) => i),
    );
    assert.ok(hub.lostTotal > 0, 'the slow follower lost some');
    // Now the slow one reads: every flow it got, and the losses, add up.
    const slowLines: string[] = [];
    let buf = '';
    slow.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      slowLines.push(...parts);
    });
    slow.resume();
    await eventually(() => slowLines.some((l) => l.startsWith('{"lost"')), 'the loss notice');
    // One more flow after the notice, to see the stream go on.
    hub.publish(`${JSON.stringify({ flow: { n: total } })}\n`);
    await eventually(() => slowLines.some((l) => l.includes(`"n":${total}`)), 'the last flow');
    let flows = 0;
    let lost = 0;
    for (const l of slowLines) {
      const o = JSON.parse(l) as { flow?: unknown; lost?: { stage: string; count: number } };
      if (o.lost) {
        assert.equal(o.lost.stage, 'proxy');
        lost += o.lost.count;
      } else flows++;
    }
    assert.equal(flows + lost, total + 1);
    assert.equal(lost, hub.lostTotal);
    slow.destroy();
    fast.destroy();
    await eventually(() => hub.followerCount === 0, 'no followers');
    assert.deepEqual(wanted, [true, false]);
  });
});
