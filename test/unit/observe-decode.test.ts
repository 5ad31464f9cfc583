// Raw ring buffer records to flows (src/observe/decode.ts): records built with the codecs
// (whose layouts the BTF test checks), decoded against a context of known workloads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '../../src/datapath/codec.js';
import {
  TRACE_F_NEW,
  TRACE_F_REPLY,
  eventHdr,
  pktTraceEvent,
  policyVerdictEvent,
  sockXlateEvent,
  type EventHeader,
} from '../../src/datapath/endpoint-codecs.js';
import { decodable, decodeFlow, type FlowContext, type Workload } from '../../src/observe/decode.js';

const WEB: Workload = { identity: 1000, namespace: 'shop', pod: 'web-1', labels: ['app=web'] };
const CLIENT: Workload = { identity: 2000, namespace: 'shop', pod: 'client', labels: ['app=client'] };
const BY_IP: Record<string, Workload> = { '10.244.0.5': WEB, '10.244.0.9': CLIENT };

const ctx: FlowContext = {
  wallTimeNs: (ns) => 1_764_849_600_000_000_000n + ns, // 2025-12-04T12:00:00Z + ns
  workload: (ip) => BY_IP[ip] ?? { identity: 2, labels: ['reserved:world'] },
  endpoint: (id) => (id === 7 ? WEB : undefined),
  socketOwner: (cookie, family) =>
    cookie === 42n ? { workload: CLIENT, ...(family === 4 && { ip: '10.244.0.9' }) } : undefined,
  service: (ip, port, proto) => (ip === '10.96.0.10' && port === 80 && proto === 6 ? 'shop/web' : undefined),
  rule: (id) => (id === 99 ? { policy: 'shop/allow-client', rule: 'spec.ingress[0]' } : undefined),
  isolatedBy: (id, direction) => (id === 7 && direction === 'ingress' ? ['shop/allow-client', 'shop/deny-all'] : []),
};

function hdr(over: Partial<EventHeader>): EventHeader {
  return {
    timeNs: 1_500_000_123n,
    type: 'trace',
    direction: 'ingress',
    family: 4,
    ifindex: 3,
    endpointId: 7,
    pktLen: 60,
    saddr: '10.244.0.9',
    daddr: '10.244.0.5',
    sport: 40000,
    dport: 8080,
    proto: 6,
    tcpFlags: 0x02,
    ethertype: 0x0800,
    ...over,
  };
}

describe('decodeFlow', () => {
  it("a trace at a pod's ingress: the pod is the destination, the peer carries the kernel's identity", () => {
    const raw = encode(pktTraceEvent, { hdr: hdr({}), peerIdentity: 2001, ctFlags: TRACE_F_NEW });
    const f = decodeFlow(raw, ctx)!;
    assert.equal(f.time, '2025-12-04T12:00:01.500000123Z');
    assert.deepEqual(
      [f.type, f.verdict, f.is_reply, f.observation_point, f.summary],
      ['trace', 'FORWARDED', false, 'to-pod', 'TCP Flags: SYN'],
    );
    assert.deepEqual(f.source, {
      ip: '10.244.0.9',
      port: 40000,
      identity: 2001,
      namespace: 'shop',
      pod: 'client',
      labels: ['app=client'],
    });
    assert.deepEqual(f.destination, {
      ip: '10.244.0.5',
      port: 8080,
      identity: 1000,
      namespace: 'shop',
      pod: 'web-1',
      labels: ['app=web'],
    });
    assert.deepEqual(f.l4, { protocol: 'TCP', tcp_flags: ['SYN'] });
    assert.deepEqual(Object.keys(f), [
      'time',
      'verdict',
      'type',
      'source',
      'destination',
      'l4',
      'is_reply',
      'observation_point',
      'summary',
    ]);
  });

  it('a peer the kernel did not look up (identity 0) keeps the identity the agent knows', () => {
    const f = decodeFlow(encode(pktTraceEvent, { hdr: hdr({}), peerIdentity: 0, ctFlags: 0 }), ctx)!;
    assert.equal(f.source.identity, 2000);
  });

  it('a reply leaving a pod: from-pod, is_reply, the pod as source', () => {
    const raw = encode(pktTraceEvent, {
      hdr: hdr({
        direction: 'egress',
        saddr: '10.244.0.5',
        daddr: '10.244.0.9',
        sport: 8080,
        dport: 40000,
        tcpFlags: 0x12,
      }),
      peerIdentity: 2000,
      ctFlags: TRACE_F_REPLY,
    });
    const f = decodeFlow(raw, ctx)!;
    assert.deepEqual(
      [f.is_reply, f.observation_point, f.source.pod, f.destination.pod],
      [true, 'from-pod', 'web-1', 'client'],
    );
    assert.deepEqual(f.l4.tcp_flags, ['SYN', 'ACK']);
  });

  it('policy verdicts: the allowing rule by name; a denial with policy-denied and no rule', () => {
    const allowed = decodeFlow(
      encode(policyVerdictEvent, {
        hdr: hdr({ type: 'policy-verdict' }),
        peerIdentity: 2000,
        ruleId: 99,
        allowed: true,
      }),
      ctx,
    )!;
    assert.deepEqual(
      [allowed.verdict, allowed.drop_reason, allowed.policy],
      ['FORWARDED', undefined, { name: 'shop/allow-client', rule: 'spec.ingress[0]', direction: 'ingress' }],
    );
    const denied = decodeFlow(
      encode(policyVerdictEvent, {
        hdr: hdr({ type: 'policy-verdict' }),
        peerIdentity: 2000,
        ruleId: 0,
        allowed: false,
      }),
      ctx,
    )!;
    assert.deepEqual(
      [denied.verdict, denied.drop_reason, denied.policy],
      [
        'DROPPED',
        'policy-denied',
        { name: 'shop/allow-client', rule: 'default deny (also isolated by shop/deny-all)', direction: 'ingress' },
      ],
    );
    const unknown = decodeFlow(
      encode(policyVerdictEvent, {
        hdr: hdr({ type: 'policy-verdict', endpointId: 8 }),
        peerIdentity: 2000,
        ruleId: 0,
        allowed: false,
      }),
      ctx,
    )!;
    assert.deepEqual(unknown.policy, { name: null, rule: 'no rule allows it', direction: 'ingress' });
  });

  it('a drop names its reason; ICMP has no ports', () => {
    const f = decodeFlow(
      encode(
        eventHdr,
        hdr({ type: 'drop', reason: 'spoofed-source', direction: 'egress', proto: 1, sport: 7, dport: 0, tcpFlags: 0 }),
      ),
      ctx,
    )!;
    assert.deepEqual(
      [f.type, f.verdict, f.drop_reason, f.l4.protocol, f.summary],
      ['drop', 'DROPPED', 'spoofed-source', 'ICMPv4', 'ICMPv4 id 7'],
    );
    assert.equal(f.source.port, undefined);
    assert.equal(f.destination.port, undefined);
  });

  it('a packet that is not IP says its ethertype', () => {
    const f = decodeFlow(
      encode(
        eventHdr,
        hdr({
          type: 'drop',
          reason: 'unsupported-l3',
          family: undefined,
          saddr: undefined,
          daddr: undefined,
          ethertype: 0x88cc,
          proto: 0,
        }),
      ),
      ctx,
    )!;
    assert.equal(f.l4.protocol, 'ethertype 0x88cc');
    assert.equal(f.source.ip, '');
  });

  it('a socket translation: the pod by its namespace cookie, the service by its frontend, the backend as destination', () => {
    const raw = encode(sockXlateEvent, {
      hdr: hdr({
        type: 'sock',
        direction: 'egress',
        ifindex: 0,
        endpointId: 0,
        saddr: undefined,
        sport: 0,
        tcpFlags: 0,
      }),
      svcAddr: '10.96.0.10',
      svcPort: 80,
      isConnect: true,
      redirected: false,
      cgroupId: 1n,
      netnsCookie: 42n,
    });
    const f = decodeFlow(raw, ctx)!;
    assert.deepEqual([f.type, f.verdict, f.service, f.observation_point], ['sock', 'TRANSLATED', 'shop/web', 'sock']);
    assert.deepEqual(f.source, {
      ip: '10.244.0.9',
      identity: 2000,
      namespace: 'shop',
      pod: 'client',
      labels: ['app=client'],
    });
    assert.equal(f.destination.pod, 'web-1');
    assert.equal(f.summary, 'connect 10.96.0.10:80 → 10.244.0.5:8080');
    const unknown = decodeFlow(encode(sockXlateEvent, { ...sockXlateEvent.decode(raw), netnsCookie: 7n }), ctx)!;
    assert.deepEqual(unknown.source, { ip: '0.0.0.0', identity: 0, labels: [] });
    const redirected = decodeFlow(encode(sockXlateEvent, { ...sockXlateEvent.decode(raw), redirected: true }), ctx)!;
    assert.equal(redirected.verdict, 'REDIRECTED', 'sent to the node proxy: the Service has L7 routes');
  });

  it('records it cannot read: unknown types and short records', () => {
    const raw = encode(pktTraceEvent, { hdr: hdr({}), peerIdentity: 1, ctFlags: 0 });
    assert.equal(decodable(raw, 0, raw.length), true);
    assert.equal(decodable(raw, 0, 70), false, 'shorter than a trace event');
    const odd = Buffer.from(raw);
    odd[8] = 77;
    assert.equal(decodable(odd, 0, odd.length), false);
    assert.equal(decodeFlow(odd, ctx), undefined);
  });
});
