// src/observe/format.ts: the lines `weft observe` prints for each kind of flow, with and
// without color, as JSON lines and as a table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatCompact, formatEndpoint, formatJson, formatTable, formatTime } from '../../src/observe/format.js';
import type { Flow, FlowEndpoint } from '../../src/contract/flow.js';
import { synFlow } from '../harness/flows.js';

const ESC = /\x1b/;
const plain = { color: false };
const color = { color: true };

const WEB: FlowEndpoint = {
  ip: '10.244.1.5',
  port: 34567,
  identity: 1001,
  namespace: 'default',
  pod: 'web-7c9f-x2k',
  labels: ['app=web'],
};
const API: FlowEndpoint = {
  ip: '10.244.2.9',
  port: 8080,
  identity: 1002,
  namespace: 'prod',
  pod: 'api-0',
  labels: ['app=api'],
};

function flow(over: Partial<Flow> = {}): Flow {
  return synFlow(WEB, API, over);
}

const drop = flow({ type: 'drop', verdict: 'DROPPED', drop_reason: 'policy-denied', observation_point: 'to-pod' });
const sock = flow({
  type: 'sock',
  verdict: 'TRANSLATED',
  service: 'prod/api',
  observation_point: 'sock',
  source: { ...WEB, port: undefined },
  l4: { protocol: 'TCP' },
  summary: 'connect 10.96.0.20:80 → 10.244.2.9:8080',
});
const l7 = flow({
  type: 'l7',
  verdict: 'FORWARDED',
  l4: { protocol: 'TCP' },
  l7: { type: 'http', method: 'GET', path: '/api/v1/users', status: 200, latency_ms: 12 },
  summary: '',
});

describe('formatTime', () => {
  it("prints UTC like Go's StampMilli, truncating below the millisecond", () => {
    assert.equal(formatTime('2024-12-04T12:00:01.123456789Z'), 'Dec  4 12:00:01.123');
    assert.equal(formatTime('2024-12-04T12:00:01.999999999Z'), 'Dec  4 12:00:01.999');
    assert.equal(formatTime('2025-01-14T00:00:00Z'), 'Jan 14 00:00:00.000');
    assert.equal(formatTime('2025-06-30T23:59:59.5Z'), 'Jun 30 23:59:59.500');
  });

  it('converts other offsets to UTC, and leaves what is not a time alone', () => {
    assert.equal(formatTime('2024-12-04T14:00:01.123+02:00'), 'Dec  4 12:00:01.123');
    assert.equal(formatTime('not a time'), 'not a time');
  });
});

describe('formatEndpoint', () => {
  it('ns/pod:port when the pod is known, else ip:port, [ip]:port for IPv6, no port without one', () => {
    assert.equal(formatEndpoint(WEB), 'default/web-7c9f-x2k:34567');
    assert.equal(formatEndpoint({ ...WEB, ip: 'fd00::5' }), 'default/web-7c9f-x2k:34567');
    assert.equal(formatEndpoint({ ...WEB, namespace: undefined }), 'web-7c9f-x2k:34567');
    assert.equal(formatEndpoint({ ip: '203.0.113.7', port: 443, identity: 2, labels: [] }), '203.0.113.7:443');
    assert.equal(formatEndpoint({ ip: '2001:db8::1', port: 443, identity: 2, labels: [] }), '[2001:db8::1]:443');
    assert.equal(formatEndpoint({ ip: '2001:db8::1', identity: 2, labels: [] }), '2001:db8::1');
    assert.equal(formatEndpoint({ ip: '10.0.0.1', identity: 2, labels: [] }), '10.0.0.1');
  });
});

describe('formatCompact', () => {
  it('an IPv4 trace between pods', () => {
    assert.equal(
      formatCompact(flow(), plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 to-endpoint FORWARDED (TCP Flags: SYN)',
    );
    assert.equal(
      formatCompact(flow({ observation_point: 'from-pod' }), plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 from-endpoint FORWARDED (TCP Flags: SYN)',
    );
    assert.equal(
      formatCompact(flow({ observation_point: undefined }), plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 trace FORWARDED (TCP Flags: SYN)',
    );
    const passed = flow({
      observation_point: 'proxy',
      l4: { protocol: 'TCP' },
      service: 'prod/api',
      summary: 'not HTTP, passed through: 12 bytes sent, 30 received in 1.5ms',
    });
    assert.equal(
      formatCompact(passed, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 tcp-passthrough FORWARDED service prod/api (not HTTP, passed through: 12 bytes sent, 30 received in 1.5ms)',
    );
  });

  it('addresses when the pods are not known; IPv6 in brackets', () => {
    const v4 = flow({
      source: { ip: '10.0.0.1', port: 5353, identity: 0, labels: [] },
      destination: { ip: '10.0.0.2', port: 53, identity: 0, labels: [] },
      l4: { protocol: 'UDP' },
      summary: 'UDP',
    });
    assert.equal(
      formatCompact(v4, plain),
      'Dec  4 12:00:01.123: 10.0.0.1:5353 → 10.0.0.2:53 to-endpoint FORWARDED (UDP)',
    );
    const v6 = flow({
      source: { ip: 'fd00:10:244:1::5', port: 40000, identity: 0, labels: [] },
      destination: { ip: '2001:db8::1', port: 443, identity: 2, labels: [] },
      l4: { protocol: 'TCP', tcp_flags: ['SYN', 'ACK'] },
    });
    assert.equal(
      formatCompact(v6, plain),
      'Dec  4 12:00:01.123: [fd00:10:244:1::5]:40000 → [2001:db8::1]:443 to-endpoint FORWARDED (TCP Flags: SYN, ACK)',
    );
  });

  it("ICMP: no ports, and the flow's own summary", () => {
    const icmp = flow({
      source: { ...WEB, port: undefined },
      destination: { ip: 'fd00::1', identity: 0, labels: [] },
      l4: { protocol: 'ICMPv6' },
      summary: 'ICMPv6 EchoRequest',
    });
    assert.equal(
      formatCompact(icmp, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k → fd00::1 to-endpoint FORWARDED (ICMPv6 EchoRequest)',
    );
  });

  it('a reply is printed from the side that opened the connection', () => {
    const reply = flow({
      source: API,
      destination: WEB,
      is_reply: true,
      l4: { protocol: 'TCP', tcp_flags: ['SYN', 'ACK'] },
    });
    assert.equal(
      formatCompact(reply, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 ← prod/api-0:8080 to-endpoint FORWARDED (TCP Flags: SYN, ACK)',
    );
  });

  it('a drop shows its reason where the type goes, as Hubble does', () => {
    assert.equal(
      formatCompact(drop, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 policy-denied DROPPED (TCP Flags: SYN)',
    );
    const { drop_reason: _, ...noReason } = drop;
    assert.equal(
      formatCompact(noReason, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 drop DROPPED (TCP Flags: SYN)',
    );
  });

  it('a policy verdict shows its direction, and the policy that allowed it or the drop reason', () => {
    const allowed = flow({
      type: 'policy-verdict',
      policy: { name: 'prod/allow-web', rule: 'spec.ingress[0]', direction: 'ingress' },
    });
    assert.equal(
      formatCompact(allowed, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 policy-verdict:ingress FORWARDED by prod/allow-web spec.ingress[0] (TCP Flags: SYN)',
    );
    const denied = flow({
      type: 'policy-verdict',
      verdict: 'DROPPED',
      drop_reason: 'policy-denied',
      policy: { name: null, rule: 'default deny: isolated for egress by default/deny-all', direction: 'egress' },
    });
    assert.equal(
      formatCompact(denied, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 policy-verdict:egress DROPPED policy-denied (TCP Flags: SYN)',
    );
  });

  it('a socket translation shows the service', () => {
    assert.equal(
      formatCompact(sock, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k → prod/api-0:8080 sock TRANSLATED service prod/api (connect 10.96.0.20:80 → 10.244.2.9:8080)',
    );
  });

  it('HTTP: the request line and the status', () => {
    assert.equal(
      formatCompact(l7, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 http-response FORWARDED (GET /api/v1/users => 200 12ms)',
    );
    const request = flow({
      type: 'l7',
      verdict: 'REDIRECTED',
      l4: { protocol: 'TCP' },
      l7: { type: 'http', method: 'POST', path: '/login' },
    });
    assert.equal(
      formatCompact(request, plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 http-request REDIRECTED (POST /login)',
    );
    const grpc = flow({
      type: 'l7',
      l4: { protocol: 'TCP' },
      l7: { type: 'http', method: 'POST', path: '/pkg.Svc/Get', status: 200, grpc_status: 14 },
    });
    assert.match(formatCompact(grpc, plain), /\(POST \/pkg\.Svc\/Get => 200 grpc-status 14\)$/);
  });

  it('no parentheses when there is nothing to summarize', () => {
    assert.equal(
      formatCompact(flow({ l4: { protocol: 'SCTP' }, summary: '' }), plain),
      'Dec  4 12:00:01.123: default/web-7c9f-x2k:34567 → prod/api-0:8080 to-endpoint FORWARDED',
    );
  });

  it('colors only the verdict, and only when asked', () => {
    const all = [flow(), drop, sock, l7, flow({ verdict: 'REDIRECTED' })];
    for (const f of all) assert.doesNotMatch(formatCompact(f, plain), ESC);
    assert.match(formatCompact(flow(), color), / \x1b\[32mFORWARDED\x1b\[0m \(/);
    assert.match(formatCompact(drop, color), / \x1b\[31mDROPPED\x1b\[0m \(/);
    assert.match(formatCompact(sock, color), / \x1b\[33mTRANSLATED\x1b\[0m /);
    assert.match(formatCompact(flow({ verdict: 'REDIRECTED' }), color), / \x1b\[33mREDIRECTED\x1b\[0m /);
    for (const f of all) assert.equal(formatCompact(f, color).replace(/\x1b\[\d+m/g, ''), formatCompact(f, plain));
  });

  it('is one line', () => {
    for (const f of [flow(), drop, sock, l7]) assert.doesNotMatch(formatCompact(f, plain), /\n/);
  });
});

describe('formatJson', () => {
  it('one object on one line, that parses back to the flow', () => {
    for (const f of [flow(), drop, sock, l7, flow({ summary: 'two\nlines' })]) {
      const line = formatJson(f);
      assert.doesNotMatch(line, /\n/);
      assert.doesNotMatch(line, ESC);
      assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(f)));
    }
    assert.equal(JSON.parse(formatJson(drop)).drop_reason, 'policy-denied');
  });
});

describe('formatTable', () => {
  it('aligned columns under a header', () => {
    const out = formatTable([flow(), drop, sock, l7]);
    const lines = out.split('\n');
    assert.equal(lines.pop(), '', 'ends in a newline');
    assert.equal(lines.length, 5);
    assert.match(lines[0]!, /^TIME +SOURCE +DESTINATION +TYPE +VERDICT +SUMMARY$/);
    for (const col of ['SOURCE', 'DESTINATION', 'TYPE', 'VERDICT', 'SUMMARY']) {
      const x = lines[0]!.indexOf(col);
      for (const line of lines.slice(1)) {
        assert.ok(
          line[x - 1] === ' ' && line[x] !== ' ' && line[x] !== undefined,
          `${col} starts a column in ${JSON.stringify(line)}`,
        );
      }
    }
    assert.deepEqual(lines[2]!.split(/ {3,}/), [
      'Dec  4 12:00:01.123',
      'default/web-7c9f-x2k:34567',
      'prod/api-0:8080',
      'policy-denied',
      'DROPPED',
      'TCP Flags: SYN',
    ]);
    assert.deepEqual(lines[3]!.split(/ {3,}/), [
      'Dec  4 12:00:01.123',
      'default/web-7c9f-x2k',
      'prod/api-0:8080',
      'sock',
      'TRANSLATED',
      'service prod/api; connect 10.96.0.20:80 → 10.244.2.9:8080',
    ]);
    assert.doesNotMatch(out, ESC);
  });

  it('no flows, only the header', () => {
    assert.equal(formatTable([]), 'TIME   SOURCE   DESTINATION   TYPE   VERDICT   SUMMARY\n');
  });
});
