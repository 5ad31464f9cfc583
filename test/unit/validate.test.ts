// src/state/validate.ts: what a user sees when a manifest is right, and which field the error
// names when it is not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Validation } from '../../src/lib/checker.js';
import { validateEndpointSlice, validateResource, validateService } from '../../src/state/validate.js';
import type { EndpointSlice, Service } from '../../src/state/resources.js';

type Obj = Record<string, unknown>;

function svc(spec: Obj, metadata: Obj = { name: 'web', namespace: 'default' }): Obj {
  return { apiVersion: 'v1', kind: 'Service', metadata, spec };
}

const ONE_PORT = [{ port: 80, protocol: 'TCP', targetPort: 8080 }];

function slice(
  fields: Obj,
  metadata: Obj = { name: 'web-abc12', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
): Obj {
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata, ...fields };
}

function ok<T>(v: Validation<T> | { ok: 'unsupported'; kind: string }): T {
  if (v.ok === true) return v.value;
  assert.fail(`expected a valid object, got ${JSON.stringify(v)}`);
}

/** Asserts the object is rejected and that some error is about exactly `field`, matching `msg`. */
function rejects(v: Validation<unknown> | { ok: 'unsupported'; kind: string }, field: string, msg?: RegExp): string[] {
  assert.equal(v.ok, false, `expected a rejection naming ${field}, got ${JSON.stringify(v)}`);
  const errors = (v as { errors: string[] }).errors;
  const hit = errors.find((e) => e.startsWith(`${field}: `) && (!msg || msg.test(e)));
  assert.ok(hit, `no error names ${field}${msg ? ` matching ${msg}` : ''}; errors: ${JSON.stringify(errors)}`);
  return errors;
}

describe('validateService: valid services', () => {
  it('accepts a single-stack IPv4 service and fills in the families and defaults', () => {
    const s: Service = ok(validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 8080 }] })));
    assert.equal(s.metadata.name, 'web');
    assert.equal(s.metadata.namespace, 'default');
    assert.equal(s.spec.type, 'ClusterIP');
    assert.deepEqual(s.spec.clusterIPs, ['10.96.0.10']);
    assert.deepEqual(s.spec.ipFamilies, ['IPv4']);
    assert.deepEqual(s.spec.ports, [{ port: 80, protocol: 'TCP', targetPort: 8080 }]);
  });

  it('defaults the namespace to "default" when metadata.namespace is absent', () => {
    const s = ok(validateService(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }, { name: 'web' })));
    assert.equal(s.metadata.namespace, 'default');
  });

  it('accepts a single-stack IPv6 service', () => {
    const s = ok(
      validateService(
        svc({ clusterIP: 'fd00:10:96::a', clusterIPs: ['fd00:10:96::a'], ipFamilies: ['IPv6'], ports: ONE_PORT }),
      ),
    );
    assert.deepEqual(s.spec.ipFamilies, ['IPv6']);
  });

  it('accepts a dual-stack service, in either family order', () => {
    const a = ok(
      validateService(
        svc({
          clusterIP: '10.96.0.10',
          clusterIPs: ['10.96.0.10', 'fd00::10'],
          ipFamilies: ['IPv4', 'IPv6'],
          ports: ONE_PORT,
        }),
      ),
    );
    assert.deepEqual(a.spec.clusterIPs, ['10.96.0.10', 'fd00::10']);
    assert.deepEqual(a.spec.ipFamilies, ['IPv4', 'IPv6']);
    const b = ok(validateService(svc({ clusterIPs: ['fd00::10', '10.96.0.10'], ports: ONE_PORT })));
    assert.deepEqual(b.spec.ipFamilies, ['IPv6', 'IPv4'], 'families derived from the addresses, in their order');
  });

  it('accepts named ports, UDP and SCTP, and targetPort given by name', () => {
    const s = ok(
      validateService(
        svc({
          clusterIP: '10.96.0.10',
          ports: [
            { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http-web' },
            { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
            { name: 'sig', port: 3868, protocol: 'SCTP' },
          ],
        }),
      ),
    );
    assert.deepEqual(s.spec.ports, [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http-web' },
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
      { name: 'sig', port: 3868, protocol: 'SCTP' },
    ]);
  });

  it('accepts the port range bounds 1 and 65535', () => {
    ok(validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: 1 }] })));
    ok(validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: 65535 }] })));
  });

  it('accepts a headless service (clusterIP None), with or without ports', () => {
    const s = ok(validateService(svc({ clusterIP: 'None', selector: { app: 'web' } })));
    assert.deepEqual(s.spec.clusterIPs, ['None']);
    assert.deepEqual(s.spec.ports, []);
    ok(validateService(svc({ clusterIP: 'None', clusterIPs: ['None'], ports: ONE_PORT })));
  });

  it('accepts an ExternalName service without clusterIP or ports', () => {
    const s = ok(validateService(svc({ type: 'ExternalName', externalName: 'db.example.com' })));
    assert.equal(s.spec.type, 'ExternalName');
    assert.deepEqual(s.spec.ports, []);
  });

  it('keeps labels and the selector', () => {
    const s = ok(
      validateService(
        svc(
          { clusterIP: '10.96.0.10', ports: ONE_PORT, selector: { app: 'web' } },
          { name: 'web', labels: { tier: 'front' } },
        ),
      ),
    );
    assert.deepEqual(s.metadata.labels, { tier: 'front' });
    assert.deepEqual(s.spec.selector, { app: 'web' });
  });

  it('validateResource dispatches a v1 Service to validateService', () => {
    const r = validateResource(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }));
    assert.equal(ok(r).kind, 'Service');
  });
});

describe('validateService: bad input names the field', () => {
  for (const bad of ['10.96.0.300', '10.1', 'not-an-ip', '10.96.0.10/32', '0x0a.0.0.1']) {
    it(`clusterIP ${JSON.stringify(bad)} is not an IP address`, () => {
      const errors = rejects(
        validateService(svc({ clusterIP: bad, ports: ONE_PORT })),
        'spec.clusterIPs[0]',
        /is not an IP address/,
      );
      assert.ok(
        errors.some((e) => e.includes(JSON.stringify(bad))),
        `the bad value is quoted: ${errors}`,
      );
    });
  }

  it('a bad second clusterIP names clusterIPs[1]', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00::zz'], ports: ONE_PORT })),
      'spec.clusterIPs[1]',
      /not an IP address/,
    );
  });

  for (const bad of [0, 70000, 65536, -1, 1.5, '80', true]) {
    it(`port ${JSON.stringify(bad)} is out of range or not a number`, () => {
      rejects(
        validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: bad }] })),
        'spec.ports[0].port',
        /is not a port number/,
      );
    });
  }

  it('a missing port is required', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: [{ name: 'http', targetPort: 80 }] })),
      'spec.ports[0].port',
      /required/,
    );
  });

  it("the index in the path is the bad port's", () => {
    rejects(
      validateService(
        svc({
          clusterIP: '10.96.0.10',
          ports: [
            { name: 'a', port: 80 },
            { name: 'b', port: 70000 },
          ],
        }),
      ),
      'spec.ports[1].port',
    );
  });

  it('a numeric targetPort out of range names targetPort', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 0 }] })),
      'spec.ports[0].targetPort',
      /not a port number/,
    );
  });

  for (const bad of ['TCPX', 'tcp', 'ICMP', 6]) {
    it(`protocol ${JSON.stringify(bad)} is unknown`, () => {
      rejects(
        validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: 80, protocol: bad }] })),
        'spec.ports[0].protocol',
        /unknown protocol/,
      );
    });
  }

  it('clusterIP of the wrong family for ipFamilies (IPv4 address, IPv6 family)', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ipFamilies: ['IPv6'], ports: ONE_PORT })),
      'spec.clusterIPs[0]',
      /10\.96\.0\.10 is not an IPv6 address/,
    );
  });

  it('clusterIP of the wrong family for ipFamilies (dual-stack, swapped order)', () => {
    const errors = rejects(
      validateService(svc({ clusterIPs: ['fd00::10', '10.96.0.10'], ipFamilies: ['IPv4', 'IPv6'], ports: ONE_PORT })),
      'spec.clusterIPs[0]',
      /not an IPv4 address/,
    );
    assert.ok(
      errors.some((e) => e.startsWith('spec.clusterIPs[1]: ') && /not an IPv6 address/.test(e)),
      JSON.stringify(errors),
    );
  });

  it('an unknown ipFamilies entry names its index', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ipFamilies: ['IPv5'], ports: ONE_PORT })),
      'spec.ipFamilies[0]',
      /unknown family/,
    );
  });

  it('dual-stack with two IPs of one family', () => {
    rejects(
      validateService(svc({ clusterIPs: ['10.96.0.10', '10.96.0.11'], ports: ONE_PORT })),
      'spec.clusterIPs',
      /one address of each family/,
    );
    rejects(
      validateService(svc({ clusterIPs: ['fd00::10', 'fd00::11'], ports: ONE_PORT })),
      'spec.clusterIPs',
      /one address of each family/,
    );
  });

  it('more than two clusterIPs', () => {
    rejects(
      validateService(svc({ clusterIPs: ['10.96.0.10', 'fd00::10', '10.96.0.11'], ports: ONE_PORT })),
      'spec.clusterIPs',
      /at most two/,
    );
  });

  it('clusterIPs[0] different from clusterIP', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.11'], ports: ONE_PORT })),
      'spec.clusterIPs[0]',
      /must equal spec\.clusterIP/,
    );
  });

  it('missing metadata.name, and missing metadata altogether', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }, { namespace: 'default' })),
      'metadata.name',
      /required/,
    );
    rejects(
      validateService({ apiVersion: 'v1', kind: 'Service', spec: { clusterIP: '10.96.0.10', ports: ONE_PORT } }),
      'metadata',
      /required/,
    );
  });

  for (const bad of ['Web', 'web_1', '-web', 'web-', 'web.example', 'wéb', '1web', 'w'.repeat(64)]) {
    it(`invalid service name ${JSON.stringify(bad.length > 20 ? `${bad.slice(0, 8)}… (${bad.length} chars)` : bad)}`, () => {
      rejects(
        validateService(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }, { name: bad })),
        'metadata.name',
        /is not an RFC 1035 label/,
      );
    });
  }

  it('invalid port names, and one port/protocol listed twice', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: [{ name: 'Bad Name', port: 80 }] })),
      'spec.ports[0].name',
      /is not an RFC 1123 label/,
    );
    rejects(
      validateService(
        svc({
          clusterIP: '10.96.0.10',
          ports: [
            { name: 'a', port: 80 },
            { name: 'b', port: 80 },
          ],
        }),
      ),
      'spec.ports[1].port',
      /duplicate port 80\/TCP \(also spec\.ports\[0\]\)/,
    );
    // The same number on two protocols is two frontends, as in Kubernetes (DNS on 53).
    assert.equal(
      validateService(
        svc({
          clusterIP: '10.96.0.10',
          ports: [
            { name: 'a', port: 53, protocol: 'UDP' },
            { name: 'b', port: 53, protocol: 'TCP' },
          ],
        }),
      ).ok,
      true,
    );
  });

  it('a name that is not a string', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }, { name: 42 })),
      'metadata.name',
      /must be a string/,
    );
  });

  it('invalid namespace', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }, { name: 'web', namespace: 'Kube_System' })),
      'metadata.namespace',
      /is not an RFC 1123 label/,
    );
  });

  it('a label value that is not a string', () => {
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: ONE_PORT }, { name: 'web', labels: { replicas: 3 } })),
      'metadata.labels.replicas',
      /must be a string/,
    );
  });

  it('multi-port service without port names: each unnamed port is named in an error', () => {
    const errors = rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: [{ port: 80 }, { name: 'https', port: 443 }] })),
      'spec.ports[0].name',
      /required when a service has more than one port/,
    );
    assert.ok(!errors.some((e) => e.startsWith('spec.ports[1].name')), `the named port is fine: ${errors}`);
    rejects(
      validateService(svc({ clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }, { port: 443 }] })),
      'spec.ports[1].name',
      /required/,
    );
  });

  it('duplicate port names name the second port', () => {
    rejects(
      validateService(
        svc({
          clusterIP: '10.96.0.10',
          ports: [
            { name: 'http', port: 80 },
            { name: 'http', port: 8080 },
          ],
        }),
      ),
      'spec.ports[1].name',
      /duplicate port name "http"/,
    );
  });

  it('a non-headless ClusterIP service without ports', () => {
    rejects(validateService(svc({ clusterIP: '10.96.0.10' })), 'spec.ports', /required/);
  });

  it('ports that are not a list, and a port that is not an object', () => {
    rejects(validateService(svc({ clusterIP: '10.96.0.10', ports: { port: 80 } })), 'spec.ports', /must be a list/);
    rejects(validateService(svc({ clusterIP: '10.96.0.10', ports: [80] })), 'spec.ports[0]', /must be an object/);
  });

  it('unknown service type', () => {
    rejects(
      validateService(svc({ type: 'Ingress', clusterIP: '10.96.0.10', ports: ONE_PORT })),
      'spec.type',
      /unknown type "Ingress"/,
    );
  });

  it('missing spec', () => {
    rejects(validateService({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' } }), 'spec', /required/);
  });

  it('reports every problem at once, not only the first', () => {
    const v = validateService(svc({ clusterIP: '10.1', ports: [{ port: 0, protocol: 'TCPX' }] }, { name: 'Bad_Name' }));
    rejects(v, 'metadata.name');
    rejects(v, 'spec.clusterIPs[0]');
    rejects(v, 'spec.ports[0].port');
    rejects(v, 'spec.ports[0].protocol');
  });
});

describe('validateEndpointSlice', () => {
  const PORTS = [{ name: 'http', port: 8080, protocol: 'TCP' }];

  it('accepts IPv4, IPv6 and FQDN slices and keeps conditions', () => {
    const s4: EndpointSlice = ok(
      validateEndpointSlice(
        slice({
          addressType: 'IPv4',
          ports: PORTS,
          endpoints: [
            { addresses: ['10.0.0.1'], conditions: { ready: true }, nodeName: 'node-a' },
            { addresses: ['10.0.0.2'], conditions: { ready: false, serving: true, terminating: true } },
            { addresses: ['10.0.0.3'] },
          ],
        }),
      ),
    );
    assert.equal(s4.addressType, 'IPv4');
    assert.deepEqual(s4.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.equal(s4.endpoints.length, 3);
    assert.deepEqual(s4.endpoints[0], { addresses: ['10.0.0.1'], conditions: { ready: true }, nodeName: 'node-a' });
    assert.deepEqual(s4.endpoints[1]?.conditions, { ready: false, serving: true, terminating: true });
    assert.deepEqual(s4.metadata.labels, { 'kubernetes.io/service-name': 'web' });

    ok(validateEndpointSlice(slice({ addressType: 'IPv6', ports: PORTS, endpoints: [{ addresses: ['fd00::1'] }] })));
    ok(
      validateEndpointSlice(
        slice({ addressType: 'FQDN', ports: PORTS, endpoints: [{ addresses: ['db.example.com'] }] }),
      ),
    );
  });

  it('accepts an empty endpoints list (a service with no pods), also as the API prints it: null', () => {
    ok(validateEndpointSlice(slice({ addressType: 'IPv4', ports: PORTS, endpoints: [] })));
    assert.deepEqual(
      ok(validateEndpointSlice(slice({ addressType: 'IPv4', ports: PORTS, endpoints: null }))).endpoints,
      [],
    );
  });

  it('conditions that are not an object are rejected, not read as ready', () => {
    rejects(
      validateEndpointSlice(
        slice({ addressType: 'IPv4', ports: PORTS, endpoints: [{ addresses: ['10.0.0.1'], conditions: 'yes' }] }),
      ),
      'endpoints[0].conditions',
      /must be an object/,
    );
  });

  it('accepts a DNS subdomain name (dots allowed, unlike a Service name)', () => {
    ok(validateEndpointSlice(slice({ addressType: 'IPv4', endpoints: [] }, { name: 'web.v4-abc12' })));
  });

  it('validateResource dispatches a discovery.k8s.io/v1 EndpointSlice', () => {
    assert.equal(
      ok(validateResource(slice({ addressType: 'IPv4', ports: PORTS, endpoints: [] }))).kind,
      'EndpointSlice',
    );
  });

  for (const bad of ['IPv5', 'ipv4', undefined]) {
    it(`addressType ${JSON.stringify(bad)} is invalid`, () => {
      rejects(
        validateEndpointSlice(slice({ addressType: bad, endpoints: [] })),
        'addressType',
        /is not IPv4, IPv6 or FQDN/,
      );
    });
  }

  it('an address of the wrong family names the address', () => {
    rejects(
      validateEndpointSlice(
        slice({
          addressType: 'IPv4',
          endpoints: [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2', 'fd00::2'] }],
        }),
      ),
      'endpoints[1].addresses[1]',
      /fd00::2 is not an IPv4 address/,
    );
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv6', endpoints: [{ addresses: ['10.0.0.1'] }] })),
      'endpoints[0].addresses[0]',
      /not an IPv6 address/,
    );
  });

  it('an address that is no IP at all', () => {
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.256'] }] })),
      'endpoints[0].addresses[0]',
      /is not an IP address/,
    );
  });

  it('an endpoint without addresses', () => {
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv4', endpoints: [{ addresses: [] }] })),
      'endpoints[0].addresses',
      /at least one address/,
    );
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv4', endpoints: [{ conditions: { ready: true } }] })),
      'endpoints[0].addresses',
      /required/,
    );
  });

  for (const k of ['ready', 'serving', 'terminating']) {
    it(`non-boolean conditions.${k}`, () => {
      rejects(
        validateEndpointSlice(
          slice({ addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], conditions: { [k]: 'true' } }] }),
        ),
        `endpoints[0].conditions.${k}`,
        /must be true or false/,
      );
    });
  }

  it('missing endpoints', () => {
    rejects(validateEndpointSlice(slice({ addressType: 'IPv4', ports: PORTS })), 'endpoints', /required/);
  });

  it('bad ports name their index', () => {
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv4', ports: [{ name: 'http', port: 0 }], endpoints: [] })),
      'ports[0].port',
      /not a port number/,
    );
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv4', ports: [{ port: 80, protocol: 'TCPX' }], endpoints: [] })),
      'ports[0].protocol',
      /unknown protocol/,
    );
  });

  it('missing metadata.name', () => {
    rejects(
      validateEndpointSlice(slice({ addressType: 'IPv4', endpoints: [] }, { namespace: 'default' })),
      'metadata.name',
      /required/,
    );
  });
});

describe('validateResource: kinds', () => {
  it('unsupported kinds come back as unsupported, not as errors', () => {
    assert.deepEqual(validateResource({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }), {
      ok: 'unsupported',
      kind: 'v1 ConfigMap',
    });
    assert.deepEqual(validateResource({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' } }), {
      ok: 'unsupported',
      kind: 'apps/v1 Deployment',
    });
    // A known kind at an API version Weft does not read is unsupported too.
    assert.deepEqual(validateResource({ apiVersion: 'discovery.k8s.io/v1beta1', kind: 'EndpointSlice' }), {
      ok: 'unsupported',
      kind: 'discovery.k8s.io/v1beta1 EndpointSlice',
    });
  });

  it('a document that is not an object, or has no kind/apiVersion, is an error', () => {
    assert.equal(validateResource('hello').ok, false);
    assert.equal(validateResource([1, 2]).ok, false);
    assert.equal(validateResource(null).ok, false);
    rejects(validateResource({ metadata: { name: 'x' } }), 'kind/apiVersion', /required/);
  });
});
