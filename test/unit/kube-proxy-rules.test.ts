// bench/kube-proxy-rules.ts: the kube-proxy-shaped iptables and nftables rules the bench loads.
// Chain names are checked against kube-proxy's own test fixtures (pkg/proxy/iptables and
// pkg/proxy/nftables proxier_test.go: services ns1/svc1 .. ns5/svc5, port p80, endpoints
// 10.180.0.x:80). Pure; nothing is loaded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  fillerServices,
  iptablesRestore,
  ipv4ToInt,
  nftEndpointChain,
  nftScript,
  nftServiceChain,
  probability,
  sepChain,
  servicePortName,
  svcChain,
  type KubeService,
  type RuleOptions,
} from '../../bench/kube-proxy-rules.js';

const OPTS: RuleOptions = { clusterCIDR: '10.0.0.0/8', serviceCIDRs: ['172.30.0.0/16'] };

/** kube-proxy's fixture service nsN/svcN, port p80/tcp, with endpoints on port 80. */
function fixture(n: number, ...endpointIPs: string[]): KubeService {
  return {
    namespace: `ns${n}`,
    name: `svc${n}`,
    portName: 'p80',
    clusterIP: `172.30.0.${40 + n}`,
    port: 80,
    proto: 'tcp',
    endpoints: endpointIPs.map((ip) => ({ ip, port: 80 })),
  };
}

const lines = (text: string) => text.split('\n').filter(Boolean);

describe('iptables chain names', () => {
  it('KUBE-SVC-<hash> matches kube-proxy fixtures', () => {
    assert.equal(svcChain(fixture(1)), 'KUBE-SVC-XPGD46QRK7WJZT7O');
    assert.equal(svcChain(fixture(2)), 'KUBE-SVC-GNZBNJ2PO5MGZ6GT');
    assert.equal(svcChain(fixture(3)), 'KUBE-SVC-X27LE4BHSL4DOUIK');
    assert.equal(svcChain(fixture(4)), 'KUBE-SVC-4SW47YFZTEDKD3PK');
    assert.equal(svcChain(fixture(5)), 'KUBE-SVC-NUKIZ6OKUXPJNT4C');
  });

  it('KUBE-SEP-<hash> matches kube-proxy fixtures, and depends on the service too', () => {
    const ep = (ip: string) => ({ ip, port: 80 });
    assert.equal(sepChain(fixture(1), ep('10.180.0.1')), 'KUBE-SEP-SXIVWICOYRO3J4NJ');
    assert.equal(sepChain(fixture(2), ep('10.180.0.2')), 'KUBE-SEP-RS4RBKLTHTF2IUXJ');
    assert.equal(sepChain(fixture(3), ep('10.180.0.3')), 'KUBE-SEP-OYPFS5VJICHGATKP');
    assert.equal(sepChain(fixture(4), ep('10.180.0.4')), 'KUBE-SEP-UKSFD7AGPMPPLUHC');
    assert.equal(sepChain(fixture(4), ep('10.180.0.5')), 'KUBE-SEP-C6EBXVWJJZMIWKLZ');
    // The same endpoint behind another service gets another chain.
    assert.equal(sepChain(fixture(5), ep('10.180.0.3')), 'KUBE-SEP-I77PXRDZVX7PMWMN');
  });

  it('the service port name is ns/name:port, or ns/name for an unnamed port', () => {
    assert.equal(servicePortName(fixture(1)), 'ns1/svc1:p80');
    assert.equal(servicePortName({ ...fixture(1), portName: '' }), 'ns1/svc1');
  });
});

describe('nftables chain names', () => {
  it('service-<hash>-ns/name/proto/port matches kube-proxy fixtures', () => {
    assert.equal(nftServiceChain(fixture(1)), 'service-ULMVA6XW-ns1/svc1/tcp/p80');
    assert.equal(nftServiceChain(fixture(2)), 'service-42NFTM6N-ns2/svc2/tcp/p80');
    assert.equal(nftServiceChain(fixture(3)), 'service-4AT6LBPK-ns3/svc3/tcp/p80');
    assert.equal(nftServiceChain(fixture(4)), 'service-LAUZTJTB-ns4/svc4/tcp/p80');
    assert.equal(nftServiceChain(fixture(5)), 'service-HVFWP5L3-ns5/svc5/tcp/p80');
  });

  it('endpoint-<hash>-ns/name/proto/port__ip/port matches kube-proxy fixtures', () => {
    const ep = (ip: string) => ({ ip, port: 80 });
    assert.equal(nftEndpointChain(fixture(1), ep('10.180.0.1')), 'endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80');
    assert.equal(nftEndpointChain(fixture(2), ep('10.180.0.2')), 'endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80');
    assert.equal(nftEndpointChain(fixture(3), ep('10.180.0.3')), 'endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80');
    assert.equal(nftEndpointChain(fixture(4), ep('10.180.0.4')), 'endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80');
    assert.equal(nftEndpointChain(fixture(4), ep('10.180.0.5')), 'endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80');
    assert.equal(nftEndpointChain(fixture(5), ep('10.180.0.3')), 'endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80');
  });
});

describe('iptablesRestore', () => {
  const svc = fixture(1, '10.180.0.1', '10.180.0.2', '10.180.0.3');
  const text = iptablesRestore([svc], OPTS);
  const chain = svcChain(svc);

  it('picks endpoints with probabilities 1/3, 1/2, then unconditionally', () => {
    assert.equal(probability(3), '0.3333333333');
    assert.equal(probability(2), '0.5000000000');
    const jumps = lines(text).filter((l) => l.startsWith(`-A ${chain} `) && l.includes('-j KUBE-SEP-'));
    assert.equal(jumps.length, 3);
    assert.match(jumps[0]!, /-m statistic --mode random --probability 0\.3333333333 -j /);
    assert.match(jumps[1]!, /-m statistic --mode random --probability 0\.5000000000 -j /);
    assert.doesNotMatch(jumps[2]!, /statistic/);
    svc.endpoints.forEach((ep, i) => assert.ok(jumps[i]!.endsWith(`-j ${sepChain(svc, ep)}`), jumps[i]));
  });

  it('each endpoint chain DNATs to its endpoint and marks hairpin traffic for masquerade', () => {
    for (const ep of svc.endpoints) {
      const sep = sepChain(svc, ep);
      const rules = lines(text).filter((l) => l.startsWith(`-A ${sep} `));
      assert.equal(rules.length, 2, sep);
      assert.match(rules[0]!, new RegExp(`-s ${ep.ip.replace(/\./g, '\\.')}/32 .*-j KUBE-MARK-MASQ$`));
      assert.match(rules[1]!, new RegExp(`-j DNAT --to-destination ${ep.ip.replace(/\./g, '\\.')}:80$`));
    }
  });

  it('puts the services in KUBE-SERVICES in the order given, the last one given last, before only the NodePort rule', () => {
    const measured = fixture(9, '10.180.0.9');
    const fillers = fillerServices({
      count: 50,
      firstClusterIP: '10.97.0.1',
      firstEndpointIP: '10.244.128.1',
      endpointsPerService: 3,
      port: 80,
      targetPort: 8080,
    });
    const all = lines(iptablesRestore([...fillers, measured], OPTS));
    const nat = all.slice(all.indexOf('*nat'));
    const services = nat.filter((l) => l.startsWith('-A KUBE-SERVICES '));
    assert.equal(services.length, 52);
    assert.match(services[51]!, /-j KUBE-NODEPORTS$/);
    assert.match(
      services[50]!,
      new RegExp(`-d ${measured.clusterIP.replace(/\./g, '\\.')}/32 .*--dport 80 -j ${svcChain(measured)}$`),
    );
    assert.match(services[0]!, new RegExp(`-j ${svcChain(fillers[0]!)}$`));
  });

  it('declares every chain of a table before its rules, and commits each table', () => {
    const all = lines(text);
    for (const table of ['*filter', '*nat']) {
      const start = all.indexOf(table);
      const end = all.indexOf('COMMIT', start);
      assert.ok(start >= 0 && end > start, table);
      const body = all.slice(start + 1, end);
      const declared = new Set(body.filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]));
      const firstRule = body.findIndex((l) => l.startsWith('-A '));
      assert.ok(
        body.slice(firstRule).every((l) => l.startsWith('-A ')),
        `${table}: declarations come first`,
      );
      for (const l of body.filter((x) => x.startsWith('-A '))) {
        const [, name] = l.split(' ');
        assert.ok(declared.has(name), `${table}: ${name} is declared`);
        const target = /-j (KUBE-[\w-]+)/.exec(l)?.[1];
        if (target) assert.ok(declared.has(target), `${table}: jump target ${target} is declared`);
      }
    }
  });

  it('rejects a service without endpoints in the filter table, with no nat chains for it', () => {
    const empty = fixture(6);
    const all = lines(iptablesRestore([empty], OPTS));
    assert.ok(
      all.some(
        (l) =>
          l.includes(`-d ${empty.clusterIP}/32`) &&
          l.includes('has no endpoints') &&
          l.endsWith('-j REJECT --reject-with icmp-port-unreachable'),
      ),
    );
    assert.ok(!all.some((l) => l.includes(svcChain(empty))));
  });
});

describe('nftScript', () => {
  const svc4 = fixture(4, '10.180.0.4', '10.180.0.5');
  const text = nftScript([fixture(1, '10.180.0.1'), svc4, fixture(6)], OPTS);
  const all = lines(text);

  it('writes the service and endpoint rules kube-proxy writes', () => {
    const chain = 'service-LAUZTJTB-ns4/svc4/tcp/p80';
    assert.ok(
      all.includes(
        `add rule ip kube-proxy ${chain} ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade`,
      ),
    );
    assert.ok(
      all.includes(
        `add rule ip kube-proxy ${chain} numgen random mod 2 vmap { 0 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 , 1 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80 }`,
      ),
    );
    assert.ok(
      all.includes(
        'add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 ip saddr 10.180.0.4 jump mark-for-masquerade',
      ),
    );
    assert.ok(
      all.includes(
        'add rule ip kube-proxy endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80 meta l4proto tcp dnat to 10.180.0.4:80',
      ),
    );
    assert.ok(all.includes(`add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : goto ${chain} }`));
    assert.ok(
      all.includes(
        'add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }',
      ),
    );
    assert.ok(
      all.includes(
        'add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"',
      ),
    );
  });

  it('declares every chain before any rule, jump, goto or element names it', () => {
    const declaredAt = new Map<string, number>();
    all.forEach((l, i) => {
      const m = /^add chain ip kube-proxy (\S+)/.exec(l);
      if (m) {
        assert.ok(!declaredAt.has(m[1]!), `${m[1]} declared once`);
        declaredAt.set(m[1]!, i);
      }
    });
    assert.ok(declaredAt.has('service-ULMVA6XW-ns1/svc1/tcp/p80'));
    assert.ok(declaredAt.has('endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80'));
    let refs = 0;
    all.forEach((l, i) => {
      const names = [
        ...[...l.matchAll(/^add rule ip kube-proxy (\S+)/g)].map((m) => m[1]!),
        ...[...l.matchAll(/\b(?:jump|goto) ([^\s,}]+)/g)].map((m) => m[1]!),
      ];
      for (const name of names) {
        refs++;
        const at = declaredAt.get(name);
        assert.ok(
          at !== undefined && at < i,
          `line ${i + 1} names ${name}, declared at line ${at === undefined ? 'never' : at + 1}: ${l}`,
        );
      }
    });
    assert.ok(refs > 20);
  });

  it('creates its table first and empties it, so a reload replaces the rules', () => {
    assert.match(all[0]!, /^add table ip kube-proxy\b/);
    assert.equal(all[1], 'flush table ip kube-proxy');
  });
});

describe('validation', () => {
  const good = fixture(1, '10.180.0.1');
  for (const [what, gen] of [
    ['iptablesRestore', iptablesRestore],
    ['nftScript', nftScript],
  ] as const) {
    it(`${what} rejects what kube-proxy could not have produced`, () => {
      assert.throws(
        () => gen([{ ...good, clusterIP: 'fd00::1' }], OPTS),
        /service ns1\/svc1:p80: clusterIP "fd00::1" is not IPv4/,
      );
      assert.throws(() => gen([{ ...good, port: 0 }], OPTS), /port 0 out of range/);
      assert.throws(() => gen([{ ...good, port: 65536 }], OPTS), /port 65536 out of range/);
      assert.throws(
        () => gen([good, { ...good, name: 'other' }], OPTS),
        /service ns1\/other:p80: duplicate 172\.30\.0\.41:80\/tcp/,
      );
      assert.throws(
        () => gen([{ ...good, endpoints: [{ ip: '10.180.0', port: 80 }] }], OPTS),
        /bad endpoint 10\.180\.0:80/,
      );
      assert.throws(
        () => gen([{ ...good, endpoints: [{ ip: '10.180.0.1', port: 70000 }] }], OPTS),
        /bad endpoint 10\.180\.0\.1:70000/,
      );
    });
  }

  it('the same address and port over another protocol is not a duplicate', () => {
    assert.doesNotThrow(() => iptablesRestore([good, { ...good, name: 'dns', proto: 'udp' }], OPTS));
  });

  it('ipv4ToInt rejects what is not a dotted quad', () => {
    assert.equal(ipv4ToInt('10.97.0.1'), 0x0a610001);
    for (const bad of ['10.97.0', '10.97.0.256', '10.97.0.x', ''])
      assert.throws(() => ipv4ToInt(bad), /not an IPv4 address/);
  });
});

describe('fillerServices', () => {
  it('gives consecutive addresses, skipping .0 and .255', () => {
    const s = fillerServices({
      count: 2,
      firstClusterIP: '10.97.0.254',
      firstEndpointIP: '10.244.128.253',
      endpointsPerService: 2,
      port: 80,
      targetPort: 8080,
    });
    assert.deepEqual(
      s.map((x) => x.clusterIP),
      ['10.97.0.254', '10.97.1.1'],
    );
    assert.deepEqual(
      s.flatMap((x) => x.endpoints.map((e) => `${e.ip}:${e.port}`)),
      ['10.244.128.253:8080', '10.244.128.254:8080', '10.244.129.1:8080', '10.244.129.2:8080'],
    );
    assert.deepEqual(s.map(servicePortName), ['filler/svc-0:http', 'filler/svc-1:http']);
  });
});
