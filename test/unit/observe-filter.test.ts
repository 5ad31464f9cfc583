// src/observe/filter.ts: what each `weft observe` flag selects, how values combine, the errors
// a mistyped flag gets, and the query-string round trip between the CLI and the agent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FILTER_FLAGS,
  filterFromQuery,
  filterToQuery,
  matches,
  parseFilter,
  type FlowFilter,
} from '../../src/observe/filter.js';
import type { Flow, FlowEndpoint } from '../../src/contract/flow.js';
import { synFlow } from '../harness/flows.js';

const NOW = new Date('2024-12-04T12:00:00.000Z');

function endpoint(over: Partial<FlowEndpoint>): FlowEndpoint {
  return { ip: '10.0.0.1', identity: 0, labels: [], ...over };
}

const WEB = endpoint({
  ip: '10.244.1.5',
  port: 34567,
  identity: 1001,
  namespace: 'default',
  pod: 'web-7c9f-x2k',
  labels: ['app=web', 'tier=frontend'],
});
const API = endpoint({
  ip: '10.244.2.9',
  port: 8080,
  identity: 1002,
  namespace: 'prod',
  pod: 'api-0',
  labels: ['app=api', 'tier=backend'],
});
const WORLD = endpoint({ ip: '203.0.113.7', port: 443, identity: 2 });

/** default/web-7c9f-x2k:34567 → prod/api-0:8080, a TCP SYN seen entering the pod. */
function flow(over: Partial<Flow> = {}): Flow {
  return synFlow(WEB, API, { time: '2024-12-04T11:59:00.123456789Z', ...over });
}

const http = (over: Partial<NonNullable<Flow['l7']>> = {}): Flow =>
  flow({
    type: 'l7',
    l7: { type: 'http', method: 'GET', path: '/api/v1/users/42', status: 200, latency_ms: 12, ...over },
    l4: { protocol: 'TCP' },
  });

type Args = Parameters<typeof parseFilter>[0];
const m = (args: Args, f: Flow = flow()) => matches(parseFilter(args, NOW), f);
const fails = (args: Args, message: string | RegExp) => assert.throws(() => parseFilter(args, NOW), { message });

describe('parseFilter and matches: endpoints', () => {
  it('an empty filter matches every flow', () => {
    assert.deepEqual(parseFilter({}, NOW), {});
    assert.equal(m({}), true);
    assert.equal(m({}, flow({ source: WORLD, verdict: 'DROPPED', type: 'drop' })), true);
  });

  it('--pod: the namespace exactly, the pod name as a prefix, on either side', () => {
    assert.equal(m({ pod: 'web' }), true, 'no namespace: any namespace');
    assert.equal(m({ pod: 'default/web' }), true);
    assert.equal(m({ pod: 'default/web-7c9f-x2k' }), true);
    assert.equal(m({ pod: 'api' }), true, 'the destination');
    assert.equal(m({ pod: 'prod/web' }), false, 'right prefix, wrong namespace');
    assert.equal(m({ pod: 'default/web-7c9f-x2k-0' }), false, 'longer than the name');
    assert.equal(m({ pod: 'eb' }), false, 'a prefix, not a substring');
    assert.equal(m({ pod: 'defaul/' }), false, 'a namespace is not a prefix');
    assert.equal(m({ pod: 'default/' }), true, 'namespace/: the whole namespace');
    assert.equal(m({ pod: 'kube-system/' }), false);
  });

  it('--pod never matches an endpoint that is not a pod', () => {
    const f = flow({ source: WORLD, destination: endpoint({ ip: '10.96.0.10', port: 53 }) });
    assert.equal(m({ pod: 'w' }, f), false);
    assert.equal(m({ pod: 'default/' }, f), false);
  });

  it('--pod is repeatable: any of them', () => {
    assert.equal(m({ pod: ['db', 'cache'] }), false);
    assert.equal(m({ pod: ['db', 'web'] }), true);
  });

  it('--from-pod and --to-pod look at one side only', () => {
    assert.equal(m({ 'from-pod': 'web' }), true);
    assert.equal(m({ 'from-pod': 'api' }), false);
    assert.equal(m({ 'to-pod': 'prod/api' }), true);
    assert.equal(m({ 'to-pod': 'web' }), false);
    assert.equal(m({ 'from-pod': 'web', 'to-pod': 'api' }), true);
    assert.equal(m({ 'from-pod': 'api', 'to-pod': 'web' }), false, 'the other direction');
  });

  it('pod values are normalized and malformed ones refused, naming the flag', () => {
    assert.deepEqual(parseFilter({ pod: ['web', 'default/', 'prod/api-'] }, NOW).pod, ['web', 'default/', 'prod/api-']);
    fails({ pod: '' }, '--pod "": want [namespace/]pod-name-prefix, or namespace/');
    fails({ pod: '/' }, /^--pod \/: want/);
    fails({ pod: 'a/b/c' }, /^--pod a\/b\/c: want \[namespace\/\]pod-name-prefix/);
    fails({ 'from-pod': 'Default/web' }, /^--from-pod Default\/web: .*"Default" is not a namespace name/);
    fails({ 'to-pod': 'default/Web' }, /^--to-pod default\/Web: .*"Web" cannot start a pod name/);
    fails({ pod: '-web' }, /cannot start a pod name/);
  });

  it('--namespace, --from-namespace, --to-namespace', () => {
    assert.equal(m({ namespace: 'prod' }), true);
    assert.equal(m({ namespace: 'staging' }), false);
    assert.equal(m({ namespace: ['staging', 'default'] }), true);
    assert.equal(m({ 'from-namespace': 'prod' }), false);
    assert.equal(m({ 'to-namespace': 'prod' }), true);
    fails({ namespace: 'Prod' }, '--namespace Prod: want a namespace name (an RFC 1123 label)');
  });

  it('--label: a Kubernetes selector on either side', () => {
    assert.equal(m({ label: 'app=web' }), true);
    assert.equal(m({ label: 'app==api' }), true);
    assert.equal(m({ label: 'app=db' }), false);
    assert.equal(m({ label: 'app in (db, web)' }), true);
    assert.equal(m({ label: 'app in (db,cache)' }), false);
    assert.equal(m({ label: 'app notin (web,api)' }), false, 'true of neither side');
    assert.equal(m({ label: 'app notin (web)' }), true, 'true of the destination');
    assert.equal(m({ label: 'tier' }), true);
    assert.equal(m({ label: 'version' }), false);
    assert.equal(m({ label: '!tier' }), false);
    assert.equal(m({ label: '!version' }), true);
  });

  it('--label: every requirement of a selector must hold on the same endpoint', () => {
    assert.equal(m({ label: 'app=web,tier=frontend' }), true);
    assert.equal(m({ label: 'app=web, tier=backend' }), false, 'app=web is the source, tier=backend the destination');
    assert.equal(m({ label: 'app=api,tier!=frontend' }), true);
  });

  it('--label is repeatable: any of the selectors', () => {
    assert.equal(m({ label: ['app=db', 'app=cache'] }), false);
    assert.equal(m({ label: ['app=db', 'app=web,tier=frontend'] }), true);
  });

  it('--label: != and notin also hold without the label, as in Kubernetes; so does !key for non-pods', () => {
    const f = flow({ source: WORLD, destination: WORLD });
    assert.equal(m({ label: 'app!=web' }, f), true);
    assert.equal(m({ label: 'app notin (web)' }, f), true);
    assert.equal(m({ label: '!app' }, f), true);
    assert.equal(m({ label: 'app' }, f), false);
    assert.equal(m({ 'from-label': 'app!=web' }), false);
    assert.equal(m({ 'to-label': 'app!=web' }), true);
  });

  it('--label: a key is not a prefix of a longer key', () => {
    const f = flow({
      source: endpoint({ labels: ['app.kubernetes.io/name=web', 'application=x'] }),
      destination: WORLD,
    });
    assert.equal(m({ label: 'app' }, f), false);
    assert.equal(m({ label: 'app.kubernetes.io/name=web' }, f), true);
    assert.equal(m({ label: 'app.kubernetes.io/name' }, f), true);
  });

  it('--label: an empty value is a value', () => {
    const f = flow({ source: endpoint({ labels: ['canary='] }) });
    assert.equal(m({ 'from-label': 'canary=' }, f), true);
    assert.equal(m({ 'from-label': 'canary' }, f), true);
    assert.equal(m({ 'from-label': 'canary=yes' }, f), false);
  });

  it('--label: malformed selectors say what is wrong', () => {
    fails({ label: 'app in (a,b' }, '--label "app in (a,b": "(" without ")"');
    fails({ label: 'app)' }, '--label app): ")" without "("');
    fails({ label: '' }, '--label "": an empty requirement');
    fails({ label: 'app=web,' }, '--label app=web,: an empty requirement');
    fails({ label: 'app in ()' }, '--label "app in ()": "app in ()" needs at least one value');
    fails({ label: '=web' }, /^--label =web: "=web" is not key, !key, key=value/);
    fails({ label: 'app web' }, /^--label "app web": "app web" is not key/);
    fails({ label: 'app>3' }, /^--label app>3: "app>3" is not a label key/);
    fails({ label: 'app=-web' }, /^--label app=-web: "-web" is not a label value/);
    fails({ label: '-app' }, /^--label -app: "-app" is not a label key/);
    fails({ 'to-label': 'app in (a,-b)' }, /^--to-label "app in \(a,-b\)": "-b" is not a label value/);
  });

  it('--ip: an exact address on either side, in any spelling', () => {
    assert.equal(m({ ip: '10.244.1.5' }), true);
    assert.equal(m({ ip: '10.244.2.9' }), true);
    assert.equal(m({ ip: '10.244.1.6' }), false);
    assert.equal(m({ 'from-ip': '10.244.2.9' }), false);
    assert.equal(m({ 'to-ip': '10.244.2.9' }), true);
    assert.equal(m({ ip: ['192.0.2.1', '10.244.1.5'] }), true);
  });

  it('--ip: CIDRs, host bits cleared', () => {
    assert.equal(m({ ip: '10.244.0.0/16' }), true);
    assert.equal(m({ ip: '10.244.1.4/31' }), true);
    assert.equal(m({ ip: '10.244.1.6/31' }), false);
    assert.equal(m({ ip: '10.245.0.0/16' }), false);
    assert.equal(m({ ip: '0.0.0.0/0' }), true);
    assert.equal(m({ 'from-ip': '10.244.2.0/24' }), false);
    assert.deepEqual(parseFilter({ ip: ['10.244.1.5/16', '10.244.1.5/32'] }, NOW).ip, ['10.244.0.0/16', '10.244.1.5']);
  });

  it('--ip: IPv6, and the families never mix', () => {
    const v6 = flow({
      source: endpoint({ ip: 'fd00:10:244:1::5', port: 40000 }),
      destination: endpoint({ ip: '2001:db8::1', port: 443 }),
    });
    assert.equal(m({ ip: 'fd00:10:244::/48' }, v6), true);
    assert.equal(m({ ip: 'fd00:10:245::/48' }, v6), false);
    assert.equal(m({ ip: 'FD00:10:244:1:0:0:0:5' }, v6), true, 'a non-canonical spelling');
    assert.equal(m({ 'to-ip': '2001:db8::/32' }, v6), true);
    assert.equal(m({ ip: '::/0' }, v6), true);
    assert.equal(m({ ip: '::/0' }), false, 'IPv4 flow');
    assert.equal(m({ ip: '0.0.0.0/0' }, v6), false);
    const mapped = flow({ source: endpoint({ ip: '::ffff:10.244.1.5' }), destination: WORLD });
    assert.equal(m({ ip: '10.244.1.5' }, mapped), false, 'an IPv4-mapped address stays IPv6');
    assert.equal(m({ ip: '::ffff:10.244.1.0/120' }, mapped), true);
    assert.deepEqual(parseFilter({ ip: ['FD00:10:244:1::5/64', 'fd00:0:0:0:0:0:0:1'] }, NOW).ip, [
      'fd00:10:244:1::/64',
      'fd00::1',
    ]);
  });

  it('--ip: what is not an address or a CIDR', () => {
    for (const bad of ['10.1', '10.0.0.0/33', 'fd00::/129', 'fd00::/-1', '10.0.0.0/', 'web', '10.0.0.256']) {
      fails({ ip: bad }, `--ip ${bad}: want an IP address or a CIDR like 10.0.0.0/8 or fd00::/64`);
    }
  });

  it('--port, --from-port, --to-port', () => {
    assert.equal(m({ port: '8080' }), true);
    assert.equal(m({ port: '34567' }), true);
    assert.equal(m({ port: '80' }), false);
    assert.equal(m({ port: ['80', '8080'] }), true);
    assert.equal(m({ 'from-port': '8080' }), false);
    assert.equal(m({ 'to-port': '8080' }), true);
    assert.equal(
      m(
        { port: '8080' },
        flow({ l4: { protocol: 'ICMPv4' }, source: endpoint({}), destination: endpoint({ ip: '10.0.0.2' }) }),
      ),
      false,
      'no ports',
    );
    assert.deepEqual(parseFilter({ port: ['80', '443'] }, NOW).port, [80, 443]);
    for (const bad of ['0', '65536', 'http', '-1', '80.0', '']) {
      fails(
        { port: bad },
        new RegExp(`^--port ${bad === '' ? '""' : bad.replace('.', '\\.')}: want a port number from 1 to 65535$`),
      );
    }
  });
});

describe('parseFilter and matches: flow fields', () => {
  it('--verdict is repeatable and case-insensitive', () => {
    assert.equal(m({ verdict: 'FORWARDED' }), true);
    assert.equal(m({ verdict: 'DROPPED' }), false);
    assert.equal(m({ verdict: ['DROPPED', 'FORWARDED'] }), true);
    assert.equal(m({ verdict: 'dropped' }, flow({ verdict: 'DROPPED' })), true);
    assert.deepEqual(parseFilter({ verdict: ['dropped', 'Translated'] }, NOW).verdict, ['DROPPED', 'TRANSLATED']);
    fails({ verdict: 'FOO' }, '--verdict FOO: want FORWARDED, DROPPED, TRANSLATED or REDIRECTED');
    fails({ verdict: ['DROPPED', 'DENIED'] }, /^--verdict DENIED:/);
  });

  it('--drop-reason', () => {
    const drop = flow({ type: 'drop', verdict: 'DROPPED', drop_reason: 'policy-denied' });
    assert.equal(m({ 'drop-reason': 'policy-denied' }, drop), true);
    assert.equal(m({ 'drop-reason': 'spoofed-source' }, drop), false);
    assert.equal(m({ 'drop-reason': ['spoofed-source', 'policy-denied'] }, drop), true);
    assert.equal(m({ 'drop-reason': 'policy-denied' }), false, 'not a drop');
    fails({ 'drop-reason': 'Policy denied' }, '--drop-reason "Policy denied": want a drop reason like policy-denied');
  });

  it('--protocol: L4 names, icmp for both families, http for L7 flows', () => {
    const icmp4 = flow({ l4: { protocol: 'ICMPv4' } });
    const icmp = flow({ l4: { protocol: 'ICMP' } });
    const icmp6 = flow({ l4: { protocol: 'ICMPv6' } });
    const udp = flow({ l4: { protocol: 'UDP' } });
    assert.equal(m({ protocol: 'tcp' }), true);
    assert.equal(m({ protocol: 'TCP' }), true);
    assert.equal(m({ protocol: 'udp' }), false);
    assert.equal(m({ protocol: 'udp' }, udp), true);
    assert.equal(m({ protocol: 'sctp' }, flow({ l4: { protocol: 'SCTP' } })), true);
    assert.deepEqual(
      [icmp4, icmp, icmp6, udp].map((f) => m({ protocol: 'icmp' }, f)),
      [true, true, true, false],
    );
    assert.deepEqual(
      [icmp4, icmp, icmp6].map((f) => m({ protocol: 'icmpv4' }, f)),
      [true, true, false],
    );
    assert.deepEqual(
      [icmp4, icmp, icmp6].map((f) => m({ protocol: 'icmpv6' }, f)),
      [false, false, true],
    );
    assert.equal(m({ protocol: 'http' }), false);
    assert.equal(m({ protocol: 'http' }, http()), true);
    assert.equal(m({ protocol: ['udp', 'http'] }, http()), true);
    assert.deepEqual(parseFilter({ protocol: ['TCP', 'ICMPv6'] }, NOW).protocol, ['tcp', 'icmpv6']);
    fails({ protocol: 'dns' }, '--protocol dns: want tcp, udp, sctp, icmp, icmpv4, icmpv6 or http');
  });

  it("--type, with Hubble's trace-sock for sock", () => {
    assert.equal(m({ type: 'trace' }), true);
    assert.equal(m({ type: 'drop' }), false);
    assert.equal(m({ type: ['drop', 'policy-verdict'] }, flow({ type: 'policy-verdict' })), true);
    assert.equal(m({ type: 'l7' }, http()), true);
    assert.equal(m({ type: 'trace-sock' }, flow({ type: 'sock' })), true);
    assert.deepEqual(parseFilter({ type: ['Drop', 'trace-sock'] }, NOW).type, ['drop', 'sock']);
    fails({ type: 'capture' }, '--type capture: want trace, drop, policy-verdict, sock or l7');
  });

  it("--http-status: exact codes and Hubble's class prefixes", () => {
    const status = (s: number) => http({ status: s });
    assert.equal(m({ 'http-status': '200' }, status(200)), true);
    assert.equal(m({ 'http-status': '404' }, status(200)), false);
    assert.deepEqual(
      [499, 500, 503, 599, 600].map((s) => m({ 'http-status': '5+' }, status(s))),
      [false, true, true, true, false],
    );
    assert.deepEqual(
      [399, 400, 404, 499].map((s) => m({ 'http-status': '4+' }, status(s))),
      [false, true, true, true],
    );
    assert.deepEqual(
      [400, 404, 409, 410].map((s) => m({ 'http-status': '40+' }, status(s))),
      [true, true, true, false],
    );
    assert.equal(m({ 'http-status': ['404', '5+'] }, status(404)), true);
    assert.equal(m({ 'http-status': '2+' }, http({ status: undefined })), false, 'a request without a response');
    assert.equal(m({ 'http-status': '2+' }), false, 'not an L7 flow');
    for (const bad of ['600', '5', '6+', '404+', '2xx', '+', '']) {
      fails(
        { 'http-status': bad },
        new RegExp(`want a status code like 404, or a class like 5\\+ \\(500-599\\) or 40\\+ \\(400-409\\)$`),
      );
    }
  });

  it('--http-method is case-insensitive', () => {
    assert.equal(m({ 'http-method': 'get' }, http()), true);
    assert.equal(m({ 'http-method': 'GET' }, http({ method: 'get' })), true);
    assert.equal(m({ 'http-method': 'POST' }, http()), false);
    assert.equal(m({ 'http-method': ['post', 'get'] }, http()), true);
    assert.equal(m({ 'http-method': 'GET' }, http({ method: 'GETX' })), false, 'the whole method');
    assert.equal(m({ 'http-method': 'm-search' }, http({ method: 'M-SEARCH' })), true);
    assert.equal(m({ 'http-method': 'G.T' }, http()), false, 'regular expression characters are literal');
    assert.equal(m({ 'http-method': 'GET' }), false, 'not an L7 flow');
    assert.deepEqual(parseFilter({ 'http-method': 'delete' }, NOW).httpMethod, ['DELETE']);
    fails({ 'http-method': 'GE T' }, '--http-method "GE T": want an HTTP method like GET');
  });

  it('--http-path is an unanchored regular expression', () => {
    assert.equal(m({ 'http-path': String.raw`^/api/v\d+/users/\d+$` }, http()), true);
    assert.equal(m({ 'http-path': 'users' }, http()), true);
    assert.equal(m({ 'http-path': '^/users' }, http()), false);
    assert.equal(m({ 'http-path': ['^/health', '/users/'] }, http()), true);
    assert.equal(m({ 'http-path': '.*' }, http({ path: undefined })), false, 'no path');
    assert.equal(m({ 'http-path': '.*' }), false, 'not an L7 flow');
    fails({ 'http-path': '/page/(' }, /^--http-path \/page\/\(: not a regular expression \(.+\)$/);
  });

  it('the HTTP flags match only L7 flows whatever the protocol flag says', () => {
    assert.equal(m({ protocol: 'tcp', 'http-method': 'GET' }, http()), true);
    assert.equal(m({ protocol: 'tcp', 'http-method': 'GET' }), false);
  });
});

describe('parseFilter and matches: time', () => {
  const at = (since?: string, until?: string) => parseFilter({ since, until }, NOW);

  it('--since takes a duration back from now', () => {
    assert.equal(at('90s').since?.toISOString(), '2024-12-04T11:58:30.000Z');
    assert.equal(at('5m').since?.toISOString(), '2024-12-04T11:55:00.000Z');
    assert.equal(at('1h30m').since?.toISOString(), '2024-12-04T10:30:00.000Z');
    assert.equal(at('1h30m15s250ms').since?.toISOString(), '2024-12-04T10:29:44.750Z');
    assert.equal(at('250ms').since?.toISOString(), '2024-12-04T11:59:59.750Z');
    assert.equal(at('1.5h').since?.toISOString(), '2024-12-04T10:30:00.000Z');
    assert.equal(at('0s').since?.toISOString(), NOW.toISOString());
  });

  it('--since takes an RFC 3339 time, with any offset and fraction', () => {
    assert.equal(at('2024-12-04T11:00:00Z').since?.toISOString(), '2024-12-04T11:00:00.000Z');
    assert.equal(at('2024-12-04T13:00:00+02:00').since?.toISOString(), '2024-12-04T11:00:00.000Z');
    assert.equal(at('2024-12-04T06:30:00-04:30').since?.toISOString(), '2024-12-04T11:00:00.000Z');
    assert.equal(
      at('2024-12-04T11:00:00.123456789Z').since?.toISOString(),
      '2024-12-04T11:00:00.123Z',
      'truncated to ms',
    );
    assert.equal(at('2024-12-04T11:00:00.5Z').since?.toISOString(), '2024-12-04T11:00:00.500Z');
    assert.equal(at('2024-12-04 11:00:00z').since?.toISOString(), '2024-12-04T11:00:00.000Z');
  });

  it('--since and --until refuse anything else', () => {
    for (const bad of [
      'yesterday',
      '5',
      '5d',
      '-5m',
      '5m ago',
      '2024-12-04',
      '2024-12-04T11:00:00',
      '2024-02-30T00:00:00Z',
      '2024-12-04T24:00:00Z',
      '2024-13-01T00:00:00Z',
      '2024-12-04T11:00:00+25:00',
      '',
    ]) {
      fails(
        { since: bad },
        `--since ${bad === '' || bad.includes(' ') ? JSON.stringify(bad) : bad}: want a duration like 5m or an RFC 3339 time`,
      );
    }
    fails({ until: 'tomorrow' }, '--until tomorrow: want a duration like 5m or an RFC 3339 time');
    assert.equal(at('2024-02-29T00:00:00Z').since?.toISOString(), '2024-02-29T00:00:00.000Z', 'a leap day');
  });

  it('--since is given once, before --until', () => {
    fails({ since: ['5m', '1h'] }, '--since: given 2 times, want it once');
    fails({ since: '5m', until: '1h' }, '--since 2024-12-04T11:55:00.000Z is after --until 2024-12-04T11:00:00.000Z');
    assert.ok(at('1h', '5m'));
  });

  it('both bounds are inclusive, at millisecond precision', () => {
    const f = flow(); // 11:59:00.123456789
    assert.equal(m({ since: '1m' }, f), true);
    assert.equal(m({ since: '59s' }, f), false);
    assert.equal(m({ since: '2024-12-04T11:59:00.123Z' }, f), true, 'the same millisecond');
    assert.equal(m({ since: '2024-12-04T11:59:00.124Z' }, f), false);
    assert.equal(m({ until: '2024-12-04T11:59:00.123Z' }, f), true, 'the same millisecond');
    assert.equal(m({ until: '1m' }, f), false);
    assert.equal(m({ since: '2m', until: '30s' }, f), true);
    assert.equal(m({ since: '2m', until: '61s' }, f), false);
  });
});

describe('parseFilter: combining and arguments', () => {
  it('different flags AND together', () => {
    assert.equal(
      m({ verdict: 'FORWARDED', port: '8080', pod: 'web', label: 'app=api', protocol: 'tcp', type: 'trace' }),
      true,
    );
    assert.equal(m({ verdict: 'FORWARDED', port: '80' }), false);
    assert.equal(m({ verdict: 'DROPPED', port: '8080' }), false);
    assert.equal(m({ pod: 'web', 'to-pod': 'api' }), true);
    assert.equal(m({ pod: 'web', 'to-pod': 'web' }), false);
  });

  it('either-side flags are independent criteria, not tied to one endpoint', () => {
    // web is the source; port 8080 is the destination's
    assert.equal(m({ pod: 'web', port: '8080' }), true);
    assert.equal(m({ ip: '10.244.1.5', label: 'app=api' }), true);
  });

  it('takes flags by name or by FlowFilter key, and ignores other arguments', () => {
    const f = parseFilter({ 'from-pod': 'web', toPod: 'api', output: 'json', 'state-dir': '/run/weft' }, NOW);
    assert.deepEqual(f, { fromPod: ['web'], toPod: ['api'] });
  });

  it('a flag without a value is an error', () => {
    fails({ verdict: true as unknown as string }, '--verdict: want a value');
  });

  it('parsed filters are frozen', () => {
    const f = parseFilter({ verdict: 'DROPPED' }, NOW);
    assert.ok(Object.isFrozen(f) && Object.isFrozen(f.verdict));
  });

  it('a filter built by hand matches too, and is validated on first use', () => {
    const f: FlowFilter = { verdict: ['DROPPED'], ip: ['10.244.0.0/16'], since: new Date('2024-12-04T11:00:00Z') };
    assert.equal(matches(f, flow()), false);
    assert.equal(matches(f, flow({ verdict: 'DROPPED' })), true);
    assert.throws(() => matches({ labels: ['app in (a'] }, flow()), {
      message: '--label "app in (a": "(" without ")"',
    });
    assert.throws(() => matches({ port: [0] }, flow()), { message: /^--port 0:/ });
  });

  it('FILTER_FLAGS names every field of a filter once', () => {
    const keys = FILTER_FLAGS.map((x) => x.key);
    assert.equal(new Set(keys).size, keys.length);
    assert.equal(new Set(FILTER_FLAGS.map((x) => x.flag)).size, keys.length);
  });
});

describe('filterToQuery and filterFromQuery', () => {
  const full: Args = {
    pod: ['web', 'default/'],
    'from-pod': 'prod/api-',
    'to-pod': 'db',
    namespace: 'prod',
    'from-namespace': 'default',
    'to-namespace': ['prod', 'staging'],
    label: ['app in (web, api),tier', '!canary'],
    'from-label': 'app=web',
    'to-label': 'app!=db',
    ip: ['10.244.0.0/16', 'fd00::/8'],
    'from-ip': '10.244.1.5',
    'to-ip': '2001:db8::1',
    port: ['80', '443'],
    'from-port': '34567',
    'to-port': '8080',
    verdict: ['DROPPED', 'forwarded'],
    'drop-reason': 'policy-denied',
    protocol: ['tcp', 'http'],
    type: ['trace', 'l7'],
    'http-status': ['404', '5+'],
    'http-method': 'get',
    'http-path': [String.raw`^/api/v\d+/`, 'a&b=c d'],
    since: '1h',
    until: '2024-12-04T11:59:30.5Z',
  };

  it('round-trips every flag', () => {
    const f = parseFilter(full, NOW);
    assert.equal(Object.keys(f).length, FILTER_FLAGS.length, 'the fixture sets every flag');
    const q = filterToQuery(f);
    const later = new Date(NOW.getTime() + 3_600_000);
    assert.deepEqual(filterFromQuery(new URLSearchParams(q.toString()), later), f, 'times travel as absolute times');
  });

  it('writes one parameter per value, named after the flag', () => {
    const q = filterToQuery(parseFilter(full, NOW));
    assert.deepEqual(q.getAll('verdict'), ['DROPPED', 'FORWARDED']);
    assert.deepEqual(q.getAll('label'), ['app in (web, api),tier', '!canary']);
    assert.deepEqual(q.getAll('ip'), ['10.244.0.0/16', 'fd00::/8']);
    assert.equal(q.get('since'), '2024-12-04T11:00:00.000Z');
    assert.equal(q.get('until'), '2024-12-04T11:59:30.500Z');
    assert.equal(filterToQuery({}).toString(), '');
    assert.equal(filterToQuery(parseFilter({ 'to-pod': 'db', port: '53' }, NOW)).toString(), 'to-pod=db&port=53');
  });

  it('validates what it reads, resolves durations against the given now, and ignores other parameters', () => {
    assert.throws(() => filterFromQuery(new URLSearchParams('verdict=NOPE'), NOW), {
      message: '--verdict NOPE: want FORWARDED, DROPPED, TRANSLATED or REDIRECTED',
    });
    assert.equal(
      filterFromQuery(new URLSearchParams('since=5m'), NOW).since?.toISOString(),
      '2024-12-04T11:55:00.000Z',
    );
    assert.deepEqual(filterFromQuery(new URLSearchParams('follow=1&last=20&port=53'), NOW), { port: [53] });
  });

  it('a filter read back matches what the original matches', () => {
    const f = parseFilter({ pod: 'web', label: 'app=api', since: '2m' }, NOW);
    const g = filterFromQuery(filterToQuery(f), NOW);
    for (const fl of [flow(), flow({ time: '2024-12-04T11:50:00Z' }), flow({ destination: WORLD })])
      assert.equal(matches(g, fl), matches(f, fl));
  });
});
