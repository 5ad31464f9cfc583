// `make run` and `make stop`, as a newcomer runs them: the demo must balance a real service
// and leave nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { REPO, WEFT } from '../harness/agent.js';

const exec = promisify(execFile);
const RUN = path.join(REPO, 'scripts/run.sh');
const netnsList = async () => (await exec('ip', ['netns', 'list'])).stdout;

describe('make run / make stop', { skip: fs.existsSync('/run/weft-test/demo.json') && 'a demo is running on this machine' }, () => {
  after(async () => {
    await exec('bash', [RUN, 'stop']).catch(() => {});
  });

  it('starts a cluster whose service answers from several backends, on IPv4 and IPv6', async () => {
    const { stdout } = await exec('bash', [RUN, 'start'], { timeout: 120_000 });
    const answers = (family: string) => {
      const block = stdout.split(`${family}:`)[1]?.split(/IPv6:|The demo cluster/)[0] ?? '';
      return [...block.matchAll(/-> (backend-\d)/g)].map((m) => m[1]);
    };
    assert.equal(answers('IPv4').length, 4, stdout);
    assert.equal(answers('IPv6').length, 4, stdout);
    assert.match(stdout, /make stop/);
    // The batch pod is refused by the demo's NetworkPolicy, and explain says which one.
    const batch = stdout.split('from the batch pod')[1] ?? '';
    assert.equal([...batch.matchAll(/-> no answer within/g)].length, 2, stdout);
    assert.match(batch, /DENY\s+demo\/batch → demo\/backend-1 TCP\/8080\n\s+decided at ingress by demo\/web-from-frontend/);
    // The kernel holds the service, and the CLI finds it with its defaults.
    const list = await exec(WEFT, ['service', 'list', '-o', 'json']);
    const services = JSON.parse(list.stdout) as { frontend: string; service: string; backends: string[] }[];
    assert.deepEqual(services.map((s) => [s.frontend, s.service, s.backends.length]).sort(), [
      ['10.96.0.10:80', 'demo/web:http', 3],
      ['[fd00:10:96::10]:80', 'demo/web:http', 3],
    ]);
    // Over enough calls, every backend answers (the demo's own 4 calls may miss one).
    const again = await exec('bash', [RUN, 'start'], { timeout: 60_000 });
    const seen = new Set([...`${stdout}${again.stdout}`.matchAll(/-> (backend-\d)/g)].map((m) => m[1]));
    assert.ok(seen.size >= 2, `calls reach several backends: ${[...seen].join(', ')}`);
  });

  it('stop removes the agent, the namespaces, the cgroup and the pins', async () => {
    const { stdout } = await exec('bash', [RUN, 'stop']);
    assert.match(stdout, /Demo stopped/);
    assert.doesNotMatch(await netnsList(), /wdemo-/);
    assert.equal(fs.existsSync('/sys/fs/bpf/weft'), false);
    assert.equal(fs.existsSync('/var/run/weft/weft.sock'), false);
    const status = await exec(WEFT, ['status']).catch((e: { code: number; stdout: string }) => e);
    assert.match(status.stdout, /not reachable/);
  });
});
