// src/state/services.ts compileServices: which frontends a set of Services and EndpointSlices
// turns into, and which backends each one balances over.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServiceTable, compileServices, type Frontend, type L4Addr } from '../../src/state/services.js';
import type {
  Endpoint,
  EndpointConditions,
  EndpointPort,
  EndpointSlice,
  Service,
  ServicePort,
} from '../../src/state/resources.js';
import type { Protocol } from '../../src/lib/checker.js';
import { seeded } from '../harness/seeded.js';

function service(
  name: string,
  clusterIPs: string[],
  ports: ServicePort[],
  opts: { namespace?: string; type?: Service['spec']['type'] } = {},
): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace ?? 'default' },
    spec: {
      type: opts.type ?? 'ClusterIP',
      ...(clusterIPs[0] !== undefined && { clusterIP: clusterIPs[0] }),
      clusterIPs,
      ports,
    },
  };
}

const port = (p: number, name?: string, protocol: Protocol = 'TCP'): ServicePort => ({
  ...(name !== undefined && { name }),
  port: p,
  protocol,
});

function ep(ip: string | string[], conditions?: EndpointConditions): Endpoint {
  return { addresses: Array.isArray(ip) ? ip : [ip], ...(conditions && { conditions }) };
}

function slice(
  name: string,
  svcName: string | undefined,
  addressType: EndpointSlice['addressType'],
  ports: EndpointPort[],
  endpoints: Endpoint[],
  namespace = 'default',
): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, ...(svcName !== undefined && { labels: { 'kubernetes.io/service-name': svcName } }) },
    addressType,
    ports,
    endpoints,
  };
}

const b4 = (ip: string, p: number): L4Addr => ({ ip, port: p, family: 4 });
const b6 = (ip: string, p: number): L4Addr => ({ ip, port: p, family: 6 });

/** The frontend for ip:port/proto, failing with the whole list when there is none. */
function frontend(frontends: Frontend[], ip: string, p: number, proto: 'TCP' | 'UDP' = 'TCP'): Frontend {
  const f = frontends.find((x) => x.key.ip === ip && x.key.port === p && x.key.proto === proto);
  assert.ok(f, `no frontend ${ip} ${p}/${proto} in ${JSON.stringify(frontends.map((x) => x.key))}`);
  return f;
}

const keys = (frontends: Frontend[]) =>
  frontends.map((f) => `${f.service} ${f.key.ip} ${f.key.port}/${f.key.proto} v${f.key.family}`);

describe('compileServices: frontends', () => {
  it('one frontend per clusterIP family × port, with the service and port name', () => {
    const { frontends, notes } = compileServices(
      [service('web', ['10.96.0.10', 'fd00:10:96::10'], [port(80, 'http'), port(53, 'dns', 'UDP')])],
      [],
    );
    assert.deepEqual(keys(frontends), [
      'default/web 10.96.0.10 80/TCP v4',
      'default/web 10.96.0.10 53/UDP v4',
      'default/web fd00:10:96::10 80/TCP v6',
      'default/web fd00:10:96::10 53/UDP v6',
    ]);
    assert.deepEqual(
      frontends.map((f) => f.portName),
      ['http', 'dns', 'http', 'dns'],
    );
    assert.ok(
      frontends.every((f) => f.backends.length === 0),
      'no slices: no backends, but the frontends exist (connects are refused)',
    );
    assert.deepEqual(notes, []);
  });

  it('an unnamed port has port name ""', () => {
    const { frontends } = compileServices([service('web', ['10.96.0.10'], [port(80)])], []);
    assert.equal(frontends[0]?.portName, '');
  });

  it('IPv6 clusterIPs are canonicalized in the frontend key', () => {
    const { frontends } = compileServices([service('web', ['FD00:0:0::1'], [port(80)])], []);
    assert.deepEqual(
      frontends.map((f) => f.key),
      [{ ip: 'fd00::1', port: 80, proto: 'TCP', family: 6 }],
    );
  });

  it('headless services (clusterIP None) produce nothing', () => {
    const svc = service('db', ['None'], [port(5432)]);
    const s = slice('db-1', 'db', 'IPv4', [{ port: 5432, protocol: 'TCP' }], [ep('10.0.0.1')]);
    assert.deepEqual(compileServices([svc], [s]), { frontends: [], notes: [] });
  });

  it('ExternalName services produce nothing', () => {
    const svc = service('ext', [], [port(80)], { type: 'ExternalName' });
    assert.deepEqual(compileServices([svc], []), { frontends: [], notes: [] });
    // Even if the object carries a clusterIP.
    const withIp = service('ext', ['10.96.0.99'], [port(80)], { type: 'ExternalName' });
    assert.deepEqual(compileServices([withIp], []).frontends, []);
  });

  it('SCTP ports are skipped with a note naming the service and port; the others still apply', () => {
    const { frontends, notes } = compileServices(
      [service('sig', ['10.96.0.20'], [port(3868, 'diameter', 'SCTP'), port(80, 'http')])],
      [],
    );
    assert.deepEqual(keys(frontends), ['default/sig 10.96.0.20 80/TCP v4']);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, /default\/sig/);
    assert.match(notes[0]!, /3868\/SCTP/);
  });

  it('two Services claiming one IP:port/proto: the first by namespace/name wins, the note names both', () => {
    const a = service('alpha', ['10.96.0.30'], [port(80)]);
    const b = service('beta', ['10.96.0.30'], [port(80, 'http'), port(443, 'https')]);
    for (const input of [
      [a, b],
      [b, a],
    ]) {
      const { frontends, notes } = compileServices(input, []);
      assert.deepEqual(keys(frontends), ['default/alpha 10.96.0.30 80/TCP v4', 'default/beta 10.96.0.30 443/TCP v4']);
      assert.equal(notes.length, 1, JSON.stringify(notes));
      assert.match(notes[0]!, /default\/alpha/);
      assert.match(notes[0]!, /default\/beta/);
      assert.match(notes[0]!, /10\.96\.0\.30 80\/TCP/);
    }
  });

  it('namespace orders the claim before name', () => {
    const a = service('zzz', ['10.96.0.31'], [port(80)], { namespace: 'aaa' });
    const b = service('aaa', ['10.96.0.31'], [port(80)], { namespace: 'zzz' });
    const { frontends, notes } = compileServices([b, a], []);
    assert.deepEqual(
      frontends.map((f) => f.service),
      ['aaa/zzz'],
    );
    assert.equal(notes.length, 1);
  });

  it('the same port number over TCP and UDP are two frontends, not a conflict', () => {
    const a = service('a', ['10.96.0.32'], [port(53, 'dns-tcp', 'TCP')]);
    const b = service('b', ['10.96.0.32'], [port(53, 'dns-udp', 'UDP')]);
    const { frontends, notes } = compileServices([a, b], []);
    assert.equal(frontends.length, 2);
    assert.deepEqual(notes, []);
  });

  it('a conflict is found when the two Services spell one IPv6 address differently', () => {
    const a = service('alpha', ['fd00::10'], [port(80)]);
    const b = service('beta', ['FD00:0:0::10'], [port(80)]);
    const { frontends, notes } = compileServices([a, b], []);
    assert.deepEqual(keys(frontends), ['default/alpha fd00::10 80/TCP v6'], 'one frontend per kernel key');
    assert.equal(notes.length, 1, JSON.stringify(notes));
    assert.match(notes[0]!, /default\/alpha/);
    assert.match(notes[0]!, /default\/beta/);
  });

  it('never emits two frontends with one kernel key (same Service listing 80/TCP twice)', () => {
    const s = service('web', ['10.96.0.33'], [port(80, 'a'), port(80, 'b')]);
    const { frontends } = compileServices([s], []);
    assert.equal(
      new Set(frontends.map((f) => JSON.stringify(f.key))).size,
      frontends.length,
      JSON.stringify(keys(frontends)),
    );
  });
});

describe('compileServices: backends', () => {
  const WEB = service('web', ['10.96.0.10', 'fd00::10'], [port(80, 'http'), port(53, 'dns', 'UDP')]);
  const P4 = [
    { name: 'http', port: 8080, protocol: 'TCP' as const },
    { name: 'dns', port: 5353, protocol: 'UDP' as const },
  ];

  it('backends come from slices labelled with the service name, per family and port', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4', 'web', 'IPv4', P4, [ep('10.0.0.2'), ep('10.0.0.1')]),
        slice('web-v6', 'web', 'IPv6', P4, [ep('fd00::2')]),
      ],
    );
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, [b4('10.0.0.1', 8080), b4('10.0.0.2', 8080)]);
    assert.deepEqual(frontend(frontends, '10.96.0.10', 53, 'UDP').backends, [
      b4('10.0.0.1', 5353),
      b4('10.0.0.2', 5353),
    ]);
    assert.deepEqual(frontend(frontends, 'fd00::10', 80).backends, [b6('fd00::2', 8080)]);
    assert.deepEqual(frontend(frontends, 'fd00::10', 53, 'UDP').backends, [b6('fd00::2', 5353)]);
  });

  it('slices of another namespace, of another service, or without the label are ignored', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4', 'web', 'IPv4', P4, [ep('10.0.0.1')]),
        slice('web-v4', 'web', 'IPv4', P4, [ep('10.0.9.1')], 'other'),
        slice('api-v4', 'api', 'IPv4', P4, [ep('10.0.9.2')]),
        slice('web-manual', undefined, 'IPv4', P4, [ep('10.0.9.3')]),
      ],
    );
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, [b4('10.0.0.1', 8080)]);
  });

  it('a slice of the other family or FQDN does not feed a frontend', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4', 'web', 'IPv4', P4, [ep('10.0.0.1')]),
        slice('web-fqdn', 'web', 'FQDN', P4, [ep('db.example.com')]),
      ],
    );
    assert.deepEqual(frontend(frontends, 'fd00::10', 80).backends, []);
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, [b4('10.0.0.1', 8080)]);
  });

  it('ports are matched by name and protocol, not by number', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice(
          'web-v4',
          'web',
          'IPv4',
          [
            { name: 'http', port: 9090, protocol: 'UDP' }, // right name, wrong protocol
            { name: 'other', port: 80, protocol: 'TCP' }, // the service port's number, wrong name
          ],
          [ep('10.0.0.1')],
        ),
      ],
    );
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, []);
    assert.deepEqual(frontend(frontends, '10.96.0.10', 53, 'UDP').backends, []);
  });

  it('an unnamed service port matches an unnamed (or "") slice port; the slice protocol defaults to TCP', () => {
    const svc = service('one', ['10.96.0.40'], [port(80)]);
    const a = compileServices([svc], [slice('one-a', 'one', 'IPv4', [{ port: 8080 }], [ep('10.0.0.1')])]);
    assert.deepEqual(frontend(a.frontends, '10.96.0.40', 80).backends, [b4('10.0.0.1', 8080)]);
    const b = compileServices(
      [svc],
      [slice('one-b', 'one', 'IPv4', [{ name: '', port: 8080, protocol: 'TCP' }], [ep('10.0.0.1')])],
    );
    assert.deepEqual(frontend(b.frontends, '10.96.0.40', 80).backends, [b4('10.0.0.1', 8080)]);
    const c = compileServices([svc], [slice('one-c', 'one', 'IPv4', [{ name: 'http', port: 8080 }], [ep('10.0.0.1')])]);
    assert.deepEqual(
      frontend(c.frontends, '10.96.0.40', 80).backends,
      [],
      'a named slice port does not match an unnamed service port',
    );
  });

  it('a slice port without a number contributes nothing', () => {
    const svc = service('one', ['10.96.0.40'], [port(80)]);
    const { frontends } = compileServices([svc], [slice('one-a', 'one', 'IPv4', [{ name: '' }], [ep('10.0.0.1')])]);
    assert.deepEqual(frontend(frontends, '10.96.0.40', 80).backends, []);
  });

  it('ready unset counts as ready; ready=false is excluded', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4', 'web', 'IPv4', P4, [
          ep('10.0.0.1'),
          ep('10.0.0.2', {}),
          ep('10.0.0.3', { ready: true }),
          ep('10.0.0.4', { ready: false }),
          ep('10.0.0.5', { ready: false, serving: true, terminating: true }),
        ]),
      ],
    );
    assert.deepEqual(
      frontend(frontends, '10.96.0.10', 80).backends.map((b) => b.ip),
      ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
    );
  });

  it('when nothing is ready, serving && terminating endpoints are used', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4', 'web', 'IPv4', P4, [
          ep('10.0.0.4', { ready: false }),
          ep('10.0.0.5', { ready: false, serving: true, terminating: true }),
          ep('10.0.0.6', { ready: false, serving: true, terminating: false }), // not terminating: not a fallback
          ep('10.0.0.7', { ready: false, serving: false, terminating: true }), // not serving: not a fallback
          ep('10.0.0.8', { ready: false, terminating: true }),
        ]),
      ],
    );
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, [b4('10.0.0.5', 8080)]);
  });

  it('the fallback is per frontend: one ready endpoint anywhere for that port shuts it off', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4-a', 'web', 'IPv4', P4, [ep('10.0.0.5', { ready: false, serving: true, terminating: true })]),
        slice('web-v4-b', 'web', 'IPv4', P4, [ep('10.0.0.9', { ready: true })]),
        slice('web-v6', 'web', 'IPv6', P4, [ep('fd00::5', { ready: false, serving: true, terminating: true })]),
      ],
    );
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, [b4('10.0.0.9', 8080)]);
    assert.deepEqual(
      frontend(frontends, 'fd00::10', 80).backends,
      [b6('fd00::5', 8080)],
      'the IPv6 frontend has nothing ready: it falls back',
    );
  });

  it('nothing ready and nothing terminating: no backends', () => {
    const { frontends } = compileServices(
      [WEB],
      [slice('web-v4', 'web', 'IPv4', P4, [ep('10.0.0.4', { ready: false, serving: false })])],
    );
    assert.deepEqual(frontend(frontends, '10.96.0.10', 80).backends, []);
  });

  it('an endpoint with several addresses contributes each', () => {
    const { frontends } = compileServices([WEB], [slice('web-v4', 'web', 'IPv4', P4, [ep(['10.0.0.1', '10.0.0.2'])])]);
    assert.deepEqual(
      frontend(frontends, '10.96.0.10', 80).backends.map((b) => b.ip),
      ['10.0.0.1', '10.0.0.2'],
    );
  });

  it('an address listed in several slices (or twice in one) appears once', () => {
    const { frontends } = compileServices(
      [WEB],
      [
        slice('web-v4-a', 'web', 'IPv4', P4, [ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.0.1')]),
        slice('web-v4-b', 'web', 'IPv4', P4, [ep('10.0.0.2'), ep('10.0.0.3')]),
        slice('web-v6-a', 'web', 'IPv6', P4, [ep('fd00::1')]),
        slice('web-v6-b', 'web', 'IPv6', P4, [ep('FD00:0:0::1')]), // the same address, spelled differently
      ],
    );
    assert.deepEqual(
      frontend(frontends, '10.96.0.10', 80).backends.map((b) => b.ip),
      ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
    );
    assert.deepEqual(frontend(frontends, 'fd00::10', 80).backends, [b6('fd00::1', 8080)]);
  });

  it('IPv6 backend addresses are canonicalized', () => {
    const { frontends } = compileServices(
      [WEB],
      [slice('web-v6', 'web', 'IPv6', P4, [ep('FD00:0:0::1'), ep('fd00:0000:0000:0000:0000:0000:0000:00aB')])],
    );
    assert.deepEqual(
      frontend(frontends, 'fd00::10', 80).backends.map((b) => b.ip),
      ['fd00::1', 'fd00::ab'],
    );
  });

  it('frontends, their backends (sorted) and notes do not depend on the order of the input', () => {
    const services = [
      WEB,
      service('api', ['10.96.0.11'], [port(443, 'https')], { namespace: 'prod' }),
      service('api', ['10.96.0.12'], [port(443, 'https')], { namespace: 'dev' }),
    ];
    const slices = [
      slice('web-v4-a', 'web', 'IPv4', P4, [ep('10.0.0.3'), ep('10.0.0.1')]),
      slice('web-v4-b', 'web', 'IPv4', P4, [ep('10.0.0.2'), ep('10.0.0.1')]),
      slice('web-v6', 'web', 'IPv6', P4, [ep('fd00::b'), ep('fd00::a')]),
      slice(
        'api-1',
        'api',
        'IPv4',
        [{ name: 'https', port: 8443, protocol: 'TCP' }],
        [ep('10.1.0.2'), ep('10.1.0.1')],
        'prod',
      ),
      slice('api-1', 'api', 'IPv4', [{ name: 'https', port: 8443, protocol: 'TCP' }], [ep('10.2.0.1')], 'dev'),
    ];
    // The frontends' order carries no meaning (the kernel keys them by address): compare as a set.
    const canonical = (c: ReturnType<typeof compileServices>) => ({
      ...c,
      frontends: [...c.frontends].sort((a, b) => (`${a.key.ip} ${a.key.port}` < `${b.key.ip} ${b.key.port}` ? -1 : 1)),
    });
    const expected = canonical(compileServices(services, slices));
    assert.deepEqual([...new Set(expected.frontends.map((f) => f.service))].sort(), [
      'default/web',
      'dev/api',
      'prod/api',
    ]);
    assert.deepEqual(
      frontend(expected.frontends, '10.96.0.10', 80).backends.map((b) => b.ip),
      ['10.0.0.1', '10.0.0.2', '10.0.0.3'],
    );
    assert.deepEqual(
      frontend(expected.frontends, 'fd00::10', 80).backends.map((b) => b.ip),
      ['fd00::a', 'fd00::b'],
    );
    assert.deepEqual(
      frontend(expected.frontends, '10.96.0.11', 443).backends.map((b) => b.ip),
      ['10.1.0.1', '10.1.0.2'],
    );
    assert.deepEqual(
      frontend(expected.frontends, '10.96.0.12', 443).backends.map((b) => b.ip),
      ['10.2.0.1'],
    );

    const rand = seeded(7);
    const shuffle = <T>(xs: T[]): T[] =>
      xs
        .map((x) => [rand(), x] as const)
        .sort((a, b) => a[0] - b[0])
        .map(([, x]) => x);
    for (let i = 0; i < 20; i++) {
      const got = canonical(
        compileServices(
          shuffle(services),
          shuffle(slices).map((s) => ({ ...s, endpoints: shuffle(s.endpoints) })),
        ),
      );
      assert.deepEqual(got, expected, `permutation ${i}`);
    }
  });

  it("accepts any iterable, such as a store's generators", () => {
    function* svcs() {
      yield WEB;
    }
    function* slcs() {
      yield slice('web-v4', 'web', 'IPv4', P4, [ep('10.0.0.1')]);
    }
    assert.deepEqual(frontend(compileServices(svcs(), slcs()).frontends, '10.96.0.10', 80).backends, [
      b4('10.0.0.1', 8080),
    ]);
  });
});

describe('ServiceTable: compilation by difference', () => {
  const P = [{ name: 'http', port: 8080, protocol: 'TCP' as const }];
  const svc = (name: string, ip: string, ns = 'default') =>
    service(name, [ip], [{ name: 'http', port: 80, protocol: 'TCP' }], { namespace: ns });

  it('three Services on one address: the first by namespace, then name, wins, and each loser is named', () => {
    const out = compileServices([svc('c', '10.96.0.1'), svc('b', '10.96.0.1'), svc('a', '10.96.0.1', 'z')], []);
    assert.deepEqual(
      out.frontends.map((f) => f.service),
      ['default/b'],
    );
    assert.deepEqual(out.notes, [
      "Service default/c: 10.96.0.1 80/TCP is already Service default/b's; ignored",
      "Service z/a: 10.96.0.1 80/TCP is already Service default/b's; ignored",
    ]);
  });

  it('commit reports exactly the frontends that changed; an unchanged Service keeps its objects', () => {
    const table = new ServiceTable();
    const [a, b] = [svc('a', '10.96.0.1'), svc('b', '10.96.0.2')];
    table.setService(a);
    table.setService(b);
    table.setSlice(slice('a-1', 'a', 'IPv4', P, [ep('10.0.0.1')]));
    table.setSlice(slice('b-1', 'b', 'IPv4', P, [ep('10.0.0.2')]));
    const first = table.commit();
    assert.deepEqual(first.upserts.map((f) => f.service).sort(), ['default/a', 'default/b']);
    const fa = frontend(table.frontends(), '10.96.0.1', 80);

    table.setSlice(slice('b-1', 'b', 'IPv4', P, [ep('10.0.0.3')]));
    const second = table.commit();
    assert.deepEqual(
      second.upserts.map((f) => f.backends),
      [[b4('10.0.0.3', 8080)]],
    );
    assert.deepEqual(second.removes, []);
    assert.equal(frontend(table.frontends(), '10.96.0.1', 80), fa, 'the same object for the unchanged Service');

    table.deleteService('default', 'b');
    const third = table.commit();
    assert.deepEqual(
      third.removes.map((f) => f.key.ip),
      ['10.96.0.2'],
    );
    assert.deepEqual(table.commit(), { upserts: [], removes: [], notesChanged: false }, 'nothing to do twice');
  });

  it('a conflict: the loser takes over when the holder goes, and the notes follow', () => {
    const table = new ServiceTable();
    table.setService(svc('b', '10.96.0.1'));
    table.setService(svc('c', '10.96.0.1'));
    assert.equal(table.commit().notesChanged, true);
    assert.deepEqual(table.notes(), ["Service default/c: 10.96.0.1 80/TCP is already Service default/b's; ignored"]);
    table.deleteService('default', 'b');
    const changes = table.commit();
    assert.deepEqual(
      changes.upserts.map((f) => f.service),
      ['default/c'],
    );
    assert.deepEqual(changes.removes, []);
    assert.equal(changes.notesChanged, true);
    assert.deepEqual(table.notes(), []);
  });

  it('random changes: after every commit the table equals a fresh compile, and applying the reported changes to the previous frontends gives it', () => {
    let seed = 11;
    const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff), seed % n);
    const table = new ServiceTable();
    const services = new Map<string, ReturnType<typeof svc>>();
    const slices = new Map<string, ReturnType<typeof slice>>();
    const applied = new Map<string, Frontend>();
    const addr = (f: Frontend) => `${f.key.ip} ${f.key.port}/${f.key.proto}`;
    for (let step = 0; step < 400; step++) {
      for (let op = rand(4); op >= 0; op--) {
        const n = rand(12);
        const what = rand(6);
        if (what === 0) {
          services.delete(`s${n}`);
          table.deleteService('default', `s${n}`);
        } else if (what === 1) {
          slices.delete(`s${n}-${n % 2}`);
          table.deleteSlice('default', `s${n}-${n % 2}`);
        } else if (what <= 3) {
          // Few addresses for many Services: conflicts come and go.
          const s = svc(`s${n}`, `10.96.0.${1 + rand(6)}`);
          services.set(`s${n}`, s);
          table.setService(s);
        } else {
          // A slice may also move to another Service.
          const owner = rand(4) === 0 ? `s${rand(12)}` : `s${n}`;
          const sl = slice(
            `s${n}-${n % 2}`,
            owner,
            'IPv4',
            P,
            Array.from({ length: rand(4) }, () => ep(`10.0.${rand(3)}.${1 + rand(5)}`)),
          );
          slices.set(`s${n}-${n % 2}`, sl);
          table.setSlice(sl);
        }
      }
      const changes = table.commit();
      for (const f of changes.removes) assert.equal(applied.delete(addr(f)), true, `removed ${addr(f)} was there`);
      for (const f of changes.upserts) applied.set(addr(f), f);
      const want = compileServices(services.values(), slices.values());
      const byAddr = (fs: Iterable<Frontend>) =>
        [...fs].map((f) => [addr(f), f.service, f.backends] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
      assert.deepEqual(byAddr(table.frontends()), byAddr(want.frontends), `step ${step}: table`);
      assert.deepEqual(byAddr(applied.values()), byAddr(want.frontends), `step ${step}: changes applied`);
      assert.deepEqual(table.notes(), want.notes, `step ${step}: notes`);
    }
  });
});
