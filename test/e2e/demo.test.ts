// `make run` and `make stop`, as a newcomer runs them: the demo must balance a real service,
// show what the datapath saw (weft observe) and leave nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Flow, FlowEndpoint } from '../../src/contract/flow.js';
import { REPO, WEFT } from '../harness/agent.js';

const exec = promisify(execFile);
const RUN = path.join(REPO, 'scripts/run.sh');
const netnsList = async () => (await exec('ip', ['netns', 'list'])).stdout;

/** `weft observe -o json ARGS`, as a user runs it: one flow object a line. */
async function observe(...args: string[]): Promise<Flow[]> {
  const { stdout } = await exec(WEFT, ['observe', '-o', 'json', ...args]);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Flow);
}

interface DemoPod {
  ipv4: string;
  ipv6: string;
  labels: string[];
}

/** The pods as the demo printed them: "pod demo/backend-1  10.244.0.1  fd00:10:244::1   app=web". */
function demoPods(stdout: string): Map<string, DemoPod> {
  const pods = new Map<string, DemoPod>();
  for (const m of stdout.matchAll(/^\s+pod demo\/(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$/gm)) {
    pods.set(m[1]!, { ipv4: m[2]!, ipv6: m[3]!, labels: m[4]!.split(',').sort() });
  }
  return pods;
}

describe(
  'make run / make stop',
  { skip: fs.existsSync('/run/weft-test/demo.json') && 'a demo is running on this machine' },
  () => {
    let demoStdout = '';
    const startedAt = Date.now();
    after(async () => {
      await exec('bash', [RUN, 'stop']).catch(() => {});
    });

    it('starts a cluster whose service answers from several backends, on IPv4 and IPv6', async () => {
      const { stdout } = await exec('bash', [RUN, 'start'], { timeout: 120_000 });
      demoStdout = stdout;
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
      assert.match(
        batch,
        /DENY\s+demo\/batch → demo\/backend-1 TCP\/8080\n\s+decided at ingress by demo\/web-from-frontend/,
      );
      // The kernel holds the service, and the CLI finds it with its defaults.
      const list = await exec(WEFT, ['service', 'list', '-o', 'json']);
      const services = JSON.parse(list.stdout) as { frontend: string; service: string; backends: string[] }[];
      assert.deepEqual(services.map((s) => [s.frontend, s.service, s.backends.length]).sort(), [
        ['10.96.0.10:80', 'demo/web:http', 3],
        // Routed: its one backend in the kernel is weft-proxy's listener.
        ['10.96.0.20:80', 'demo/shop:http', 1],
        ['10.96.0.21:80', 'demo/shop-v1:http', 1],
        ['10.96.0.22:80', 'demo/shop-v2:http', 1],
        ['[fd00:10:96::10]:80', 'demo/web:http', 3],
      ]);
      assert.match(services.find((s) => s.frontend === '10.96.0.20:80')!.backends[0]!, /^169\.254\.42\.1:\d+/);
      // Over enough calls, every backend answers (the demo's own 4 calls may miss one).
      const again = await exec('bash', [RUN, 'start'], { timeout: 60_000 });
      const seen = new Set([...`${stdout}${again.stdout}`.matchAll(/-> (backend-\d)/g)].map((m) => m[1]));
      assert.ok(seen.size >= 2, `calls reach several backends: ${[...seen].join(', ')}`);
      // The demo shows the flows of its calls, and how to follow them live.
      const flowsShown = stdout.split('What the datapath saw')[1] ?? '';
      assert.match(
        flowsShown,
        /\$ weft observe --verdict DROPPED\n(\s+.*\n)*?\s+\w{3} [ \d]\d [\d:.]+: demo\/batch:\d+ → demo\/backend-[123]:8080 policy-denied DROPPED \(TCP Flags: SYN\)\n/,
        stdout,
      );
      assert.match(
        flowsShown,
        /\$ weft observe --type sock\n(\s+.*\n)*?\s+\w{3} [ \d]\d [\d:.]+: demo\/(client|batch) → demo\/backend-[123]:8080 sock TRANSLATED service demo\/web \(connect 10\.96\.0\.10:80 → 10\.244\.0\.\d+:8080\)\n/,
        stdout,
      );
      assert.match(
        flowsShown,
        /demo\/client:\d+ → demo\/backend-[123]:8080 policy-verdict:ingress FORWARDED by demo\/web-from-frontend spec\.ingress\[0\] \(TCP Flags: SYN\)/,
        stdout,
      );
      assert.match(flowsShown, /npx weft observe -f/);
      // shop.demo through weft-proxy: the canary header always reaches shop-v2, the split sends
      // most requests to shop-v1 (90/10 over 40: binomial sd 1.9, so at most 14 to shop-v2).
      const shop = stdout.split('Calling shop.demo')[1] ?? '';
      const split = /40 x GET[^\n]*\n((?:\s+\d+ x 200 shop-v\d\n)+)/.exec(shop)?.[1] ?? '';
      const got = Object.fromEntries([...split.matchAll(/(\d+) x 200 (shop-v\d)/g)].map((m) => [m[2], Number(m[1])]));
      assert.equal((got['shop-v1'] ?? 0) + (got['shop-v2'] ?? 0), 40, shop);
      assert.ok((got['shop-v2'] ?? 0) <= 14, shop);
      assert.match(shop, /with x-canary: always[^\n]*\n\s+5 x 200 shop-v2\n/, shop);
      assert.match(
        shop,
        /demo\/client:\d+ → demo\/shop-v[12]:8080 http-response FORWARDED service demo\/shop \(GET \/ => 200 [\d.]+ms\)/,
        shop,
      );
    });

    it('the routed service shows in weft observe: redirected at connect, then one L7 flow per request', async () => {
      const pods = demoPods(demoStdout);
      const flows = await observe('--last', '10000');
      const redirected = flows.filter((f) => f.type === 'sock' && f.service === 'demo/shop');
      assert.ok(redirected.length > 0, 'shop.demo connections were seen at connect');
      for (const f of redirected) {
        assert.equal(f.verdict, 'REDIRECTED');
        assert.equal(f.destination.ip, '169.254.42.1');
        assert.equal(f.source.pod, 'client');
      }
      const l7 = flows.filter((f) => f.type === 'l7');
      assert.ok(l7.length >= 45, `the demo's 45 requests (and make run's second round): ${l7.length}`);
      for (const f of l7) {
        assert.equal(f.service, 'demo/shop');
        assert.equal(f.source.pod, 'client');
        assert.equal(f.source.ip, pods.get('client')!.ipv4);
        assert.ok(f.destination.pod === 'shop-v1' || f.destination.pod === 'shop-v2', JSON.stringify(f));
        assert.deepEqual([f.l7?.method, f.l7?.path, f.l7?.status], ['GET', '/', 200]);
      }
      const filtered = await observe('--protocol', 'http', '--to-pod', 'demo/shop-v2', '--last', '10000');
      assert.deepEqual(
        filtered.map((f) => f.time),
        l7.filter((f) => f.destination.pod === 'shop-v2').map((f) => f.time),
      );
    });

    it("weft observe shows the demo's flows: translations to the service, allowed and refused connections, named", async () => {
      const pods = demoPods(demoStdout);
      assert.deepEqual(
        [...pods.keys()].sort(),
        ['backend-1', 'backend-2', 'backend-3', 'batch', 'client', 'shop-v1', 'shop-v2'],
        demoStdout,
      );
      const podAt = new Map(
        [...pods].flatMap(
          ([name, p]) =>
            [
              [p.ipv4, name],
              [p.ipv6, name],
            ] as const,
        ),
      );
      // shop.demo's traffic goes through weft-proxy (its own test is below): from the client to
      // the proxy's address, and from the node to the shop pods.
      const PROXY = '169.254.42.1';
      const viaProxy = (f: Flow) =>
        f.type === 'l7' ||
        f.service === 'demo/shop' ||
        [f.source, f.destination].some((ep) => ep.ip === PROXY || podAt.get(ep.ip)?.startsWith('shop-'));
      const all = await observe('--last', '10000');
      const flows = all.filter((f) => !viaProxy(f));
      const dump = (list: Flow[]) => list.map((f) => JSON.stringify(f)).join('\n');
      assert.ok(flows.length > 0, 'the demo made flows');

      // Every flow is recent, and every address of a pod is named: its namespace, pod and labels,
      // and the same identity wherever the pod appears with one (0: the datapath did not look it up).
      const identities = new Map<string, Set<number>>();
      const named = (ep: FlowEndpoint, what: string) => {
        const pod = podAt.get(ep.ip);
        assert.ok(pod, `${what} ${ep.ip} is a demo pod`);
        assert.equal(ep.namespace, 'demo', what);
        assert.equal(ep.pod, pod, what);
        assert.deepEqual(ep.labels, pods.get(pod)!.labels, what);
        if (ep.identity) identities.set(pod, (identities.get(pod) ?? new Set()).add(ep.identity));
      };
      for (const f of flows) {
        assert.match(f.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
        const t = Date.parse(f.time);
        assert.ok(t >= startedAt - 60_000 && t <= Date.now() + 1000, `flow time ${f.time} is during the demo`);
        assert.equal(f.is_reply, false, 'new-and-drops reports no replies');
        const json = JSON.stringify(f);
        // The demo's traffic is all pod to pod (to the service's backends), sock flows included:
        // their source is the calling pod (by its network namespace), at its address of the
        // family, without a port (the socket hook runs before the kernel picks one).
        named(f.source, `source of ${json}`);
        named(f.destination, `destination of ${json}`);
      }
      for (const [pod, ids] of identities) assert.equal(ids.size, 1, `${pod} has one identity: ${[...ids].join(', ')}`);
      const backendIds = ['backend-1', 'backend-2', 'backend-3']
        .map((b) => [...(identities.get(b) ?? [])][0])
        .filter((i) => i !== undefined);
      assert.ok(
        backendIds.length > 0 && backendIds.every((i) => i === backendIds[0]),
        `the backends share a label set, so an identity: ${backendIds.join(', ')}`,
      );

      // The batch pod's connections are dropped at the backends' interfaces by the policy, over
      // both families, and only its connections.
      const drops = flows.filter((f) => f.type === 'drop');
      assert.ok(drops.length > 0, dump(flows));
      for (const f of drops) {
        assert.equal(f.verdict, 'DROPPED');
        assert.equal(f.drop_reason, 'policy-denied');
        assert.equal(f.source.pod, 'batch');
        assert.match(f.destination.pod ?? '', /^backend-[123]$/);
        assert.equal(f.destination.port, 8080);
        assert.equal(f.observation_point, 'to-pod');
        assert.deepEqual(f.l4, { protocol: 'TCP', tcp_flags: ['SYN'] });
      }
      const batch = pods.get('batch')!;
      assert.deepEqual(
        new Set(drops.map((f) => f.source.ip)),
        new Set([batch.ipv4, batch.ipv6]),
        'refused over IPv4 and IPv6',
      );

      // Policy verdicts: the client allowed by the demo's policy and its rule, at the backends'
      // ingress; the batch pod denied, once for each dropped SYN.
      const verdicts = flows.filter((f) => f.type === 'policy-verdict');
      const allowed = verdicts.filter((f) => f.verdict === 'FORWARDED');
      const denied = verdicts.filter((f) => f.verdict === 'DROPPED');
      assert.ok(allowed.length >= 2, dump(verdicts));
      for (const f of allowed) {
        assert.equal(f.source.pod, 'client');
        assert.match(f.destination.pod ?? '', /^backend-[123]$/);
        assert.equal(f.destination.port, 8080);
        assert.deepEqual(f.policy, { name: 'demo/web-from-frontend', rule: 'spec.ingress[0]', direction: 'ingress' });
        assert.equal(f.drop_reason, undefined);
      }
      const client = pods.get('client')!;
      assert.deepEqual(new Set(allowed.map((f) => f.source.ip)), new Set([client.ipv4, client.ipv6]));
      assert.equal(denied.length, drops.length, 'a denied verdict for each policy drop');
      for (const f of denied) {
        assert.equal(f.source.pod, 'batch');
        assert.equal(f.drop_reason, 'policy-denied');
        assert.equal(f.policy?.direction, 'ingress');
      }
      // New connections traced where they leave the client and where they reach a backend.
      const traces = flows.filter((f) => f.type === 'trace');
      assert.ok(
        traces.some(
          (f) => f.source.pod === 'client' && f.observation_point === 'from-pod' && f.verdict === 'FORWARDED',
        ),
        dump(traces),
      );
      assert.ok(
        traces.some((f) => f.source.pod === 'client' && f.observation_point === 'to-pod' && f.verdict === 'FORWARDED'),
        dump(traces),
      );
      assert.ok(
        !traces.some((f) => f.source.pod === 'batch' && f.observation_point === 'to-pod'),
        'nothing of batch reaches a backend',
      );

      // Socket translations: demo/web's ClusterIP to a backend's own address, per family.
      const socks = flows.filter((f) => f.type === 'sock');
      assert.ok(socks.length > 0, dump(flows));
      for (const f of socks) {
        assert.equal(f.verdict, 'TRANSLATED');
        assert.match(f.source.pod ?? '', /^(client|batch)$/, JSON.stringify(f));
        assert.equal(f.source.port, undefined);
        assert.equal(f.service, 'demo/web');
        assert.equal(f.observation_point, 'sock');
        assert.equal(f.l4.protocol, 'TCP');
        const backend = pods.get(f.destination.pod ?? '');
        assert.ok(backend && /^backend-[123]$/.test(f.destination.pod!), JSON.stringify(f));
        assert.equal(f.destination.port, 8080);
        const v6 = f.destination.ip.includes(':');
        assert.equal(f.destination.ip, v6 ? backend.ipv6 : backend.ipv4);
        assert.equal(
          f.summary,
          v6 ? `connect [fd00:10:96::10]:80 → [${backend.ipv6}]:8080` : `connect 10.96.0.10:80 → ${backend.ipv4}:8080`,
        );
      }
      assert.deepEqual(
        new Set(socks.map((f) => f.destination.ip.includes(':'))),
        new Set([false, true]),
        'translated over IPv4 and IPv6',
      );
      assert.deepEqual(
        new Set(socks.map((f) => `${f.source.pod} IPv${f.source.ip.includes(':') ? 6 : 4}`)),
        new Set(['client IPv4', 'client IPv6', 'batch IPv4', 'batch IPv6']),
      );
      // Every backend that answered the client was one the socket hook translated to.
      for (const b of new Set([...demoStdout.matchAll(/-> (backend-\d)/g)].map((m) => m[1]!))) {
        assert.ok(
          socks.some((f) => f.destination.pod === b),
          `a translation to ${b}, which answered`,
        );
      }

      // The CLI's filters select the same flows.
      const refused = await observe('--from-pod', 'demo/batch', '--verdict', 'DROPPED', '--last', '10000');
      assert.deepEqual(
        refused.map((f) => f.time),
        flows.filter((f) => f.source.pod === 'batch' && f.verdict === 'DROPPED').map((f) => f.time),
      );
      assert.ok(refused.length >= drops.length + denied.length);
      const translated = await observe('--type', 'sock', '--to-pod', 'demo/', '--last', '10000');
      assert.deepEqual(translated, socks);
      assert.deepEqual(await observe('--pod', 'demo/client', '--type', 'drop'), []);

      // weft status: the observer's line, nothing lost.
      const status = await exec(WEFT, ['status']).catch((e: { stdout: string }) => e);
      const line =
        /^Flows:\s+\d+(?:\.\d)?\/s \(([\d,]+) total\); kernel ring \S+% of 8 MiB; flow ring ([\d,]+)\/16,384; lost: kernel 0, decode 0, follow 0; 0 followers$/m.exec(
          status.stdout,
        );
      assert.ok(line, status.stdout);
      assert.ok(Number(line[2]!.replaceAll(',', '')) >= flows.length, status.stdout);
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
  },
);
