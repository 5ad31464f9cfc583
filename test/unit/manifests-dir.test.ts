// The local source (src/sources/manifests-dir.ts) feeding the store (src/state/store.ts), on a
// real temporary directory: what a user editing manifests sees in the store and in the log.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { createLogger } from '../../src/lib/log.js';
import { ManifestsDirSource } from '../../src/sources/manifests-dir.js';
import type { Service } from '../../src/state/resources.js';
import { ResourceStore } from '../../src/state/store.js';

function svcYaml(name: string, ip: string, port: number | string = 80, namespace = 'default'): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  clusterIP: ${ip}
  ports:
    - port: ${port}
      protocol: TCP
`;
}

function sliceYaml(name: string, svc: string, ip: string): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  namespace: default
  labels:
    kubernetes.io/service-name: ${svc}
addressType: IPv4
ports:
  - port: 8080
    protocol: TCP
endpoints:
  - addresses: [${ip}]
    conditions: {ready: true}
`;
}

const svcObj = (name: string, ip: string, port: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { clusterIP: ip, ports: [{ port, protocol: 'TCP' }] },
});

interface Ctx {
  dir: string;
  store: ResourceStore;
  lines: string[];
  source: ManifestsDirSource;
  write(name: string, text: string): void;
}

let ctx: Ctx;

beforeEach(() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-manifests-'));
  const store = new ResourceStore();
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  ctx = {
    dir,
    store,
    lines,
    source: new ManifestsDirSource(dir, store, log),
    write: (name, text) => fs.writeFileSync(path.join(dir, name), text),
  };
});

afterEach(() => {
  ctx.source.stop();
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

/** Polls until `cond` holds (the source reacts to fs.watch after a short debounce); at most 2 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) {
      assert.fail(
        `timed out waiting for ${what}; store: ${JSON.stringify(ctx.store.all().map((r) => r.metadata.name))}; log:\n${ctx.lines.join('')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

const names = (rs: readonly { metadata: { namespace: string; name: string } }[]) =>
  rs.map((r) => `${r.metadata.namespace}/${r.metadata.name}`).sort();
const service = (name: string, namespace = 'default'): Service | undefined =>
  ctx.store.services().find((s) => s.metadata.name === name && s.metadata.namespace === namespace);
const portOf = (name: string) => service(name)?.spec.ports[0]?.port;

/** The logfmt lines that carry all of the given key=value pairs. */
const logged = (pairs: Record<string, string>) =>
  ctx.lines.filter((l) =>
    Object.entries(pairs).every(([k, v]) => l.includes(` ${k}=${v}`) || l.includes(` ${k}=${JSON.stringify(v)}`)),
  );

describe('ManifestsDirSource: initial load', () => {
  it('loads multi-document YAML and JSON files before start() returns', () => {
    ctx.write(
      'web.yaml',
      `${svcYaml('web', '10.96.0.10')}---\n${sliceYaml('web-1', 'web', '10.0.0.1')}---\n${sliceYaml('web-2', 'web', '10.0.0.2')}`,
    );
    ctx.write('api.json', JSON.stringify(svcObj('api', '10.96.0.11', 443), null, 2));
    ctx.write('db.yml', svcYaml('db', '10.96.0.12', 5432, 'data'));
    ctx.source.start();
    assert.deepEqual(names(ctx.store.services()), ['data/db', 'default/api', 'default/web']);
    assert.deepEqual(names(ctx.store.endpointSlices()), ['default/web-1', 'default/web-2']);
    assert.equal(service('api')?.spec.ports[0]?.port, 443);
    assert.deepEqual([...(ctx.store.originResources('web.yaml')?.keys() ?? [])].sort(), [
      'EndpointSlice/default/web-1',
      'EndpointSlice/default/web-2',
      'Service/default/web',
    ]);
    assert.equal(ctx.source.problems.size, 0);
    assert.deepEqual(logged({ level: 'error' }), []);
  });

  it('skips files that are not manifests, hidden files, empty documents and unsupported kinds', () => {
    ctx.write('README.md', svcYaml('readme', '10.96.0.13'));
    ctx.write('.hidden.yaml', svcYaml('hidden', '10.96.0.14'));
    ctx.write('web.yaml.bak', svcYaml('backup', '10.96.0.15'));
    fs.mkdirSync(path.join(ctx.dir, 'sub.yaml'));
    ctx.write('empty.yaml', '');
    ctx.write(
      'web.yaml',
      `---\n# just a comment\n---\n${svcYaml('web', '10.96.0.10')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n`,
    );
    ctx.source.start();
    assert.deepEqual(names(ctx.store.all()), ['default/web']);
    assert.equal(ctx.source.problems.size, 0, JSON.stringify([...ctx.source.problems]));
  });

  it('expands a v1 List into its items', () => {
    ctx.write(
      'list.yaml',
      `apiVersion: v1
kind: List
items:
${[svcYaml('web', '10.96.0.10'), sliceYaml('web-1', 'web', '10.0.0.1'), svcYaml('api', '10.96.0.11')]
  .map((doc) =>
    doc
      .trimEnd()
      .split('\n')
      .map((l, i) => (i === 0 ? `  - ${l}` : `    ${l}`))
      .join('\n'),
  )
  .join('\n')}
`,
    );
    ctx.write(
      'list.json',
      JSON.stringify({ apiVersion: 'v1', kind: 'ServiceList', items: [svcObj('db', '10.96.0.12', 5432)] }),
    );
    ctx.source.start();
    assert.deepEqual(names(ctx.store.services()), ['default/api', 'default/db', 'default/web']);
    assert.deepEqual(names(ctx.store.endpointSlices()), ['default/web-1']);
  });

  it("an invalid object is reported with file=, object= and field=; the file's other objects apply", () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10')}---\n${svcYaml('api', '10.96.0.11', 70000)}`);
    ctx.source.start();
    assert.deepEqual(names(ctx.store.services()), ['default/web'], 'never valid: not in the store at all');
    const hits = logged({
      level: 'error',
      file: 'web.yaml',
      object: 'Service/default/api',
      field: 'spec.ports[0].port',
    });
    assert.equal(hits.length, 1, `expected one log line naming the field; log:\n${ctx.lines.join('')}`);
    assert.match(hits[0]!, /70000 is not a port number/);
    assert.deepEqual(
      ctx.source.problems.get('web.yaml')?.map((p) => p.object),
      ['Service/default/api'],
    );
  });

  it('an object defined twice in one file: the first wins, and it is reported', () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 80)}---\n${svcYaml('web', '10.96.0.10', 81)}`);
    ctx.source.start();
    assert.equal(portOf('web'), 80);
    assert.equal(logged({ file: 'web.yaml', object: 'Service/default/web' }).length, 1, ctx.lines.join(''));
  });

  it('an unparsable file is reported with file= and loads nothing', () => {
    ctx.write('bad.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: [web\n');
    ctx.write('ok.yaml', svcYaml('ok', '10.96.0.10'));
    ctx.source.start();
    assert.deepEqual(names(ctx.store.all()), ['default/ok']);
    assert.ok(logged({ level: 'error', file: 'bad.yaml' }).length >= 1, ctx.lines.join(''));
  });

  it('start() fails on a directory that does not exist, naming it', () => {
    const missing = new ManifestsDirSource(path.join(ctx.dir, 'nope'), ctx.store, createLogger({ write: () => {} }));
    assert.throws(() => missing.start(), /nope: not a directory/);
  });
});

describe('ManifestsDirSource: changes after start', () => {
  it('a changed file is re-read and the store signals the change', async () => {
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10', 80));
    ctx.source.start();
    let changes = 0;
    ctx.store.on('change', () => changes++);
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10', 8080));
    await until(() => portOf('web') === 8080, 'web to move to port 8080');
    assert.ok(changes >= 1);
  });

  it("an edit keeps the identity of the file's unchanged objects, so compilers can skip them", async () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 80)}---\n${svcYaml('api', '10.96.0.11', 443)}`);
    ctx.source.start();
    const webBefore = service('web');
    const apiBefore = service('api');
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 80)}---\n${svcYaml('api', '10.96.0.11', 8443)}`);
    await until(() => portOf('api') === 8443, 'api to move to port 8443');
    assert.equal(service('web'), webBefore, 'unchanged web is the same object');
    assert.notEqual(service('api'), apiBefore);
  });

  it('a new file is picked up', async () => {
    ctx.source.start();
    assert.deepEqual(ctx.store.all(), []);
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10')}---\n${sliceYaml('web-1', 'web', '10.0.0.1')}`);
    await until(() => ctx.store.all().length === 2, "the new file's two objects");
  });

  it("an invalid edit keeps that object's last good version while the file's other objects apply", async () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 80)}---\n${svcYaml('api', '10.96.0.11', 443)}`);
    ctx.source.start();
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 81)}---\n${svcYaml('api', '10.96.0.11', 70000)}`);
    await until(() => portOf('web') === 81, 'the valid edit to web');
    assert.equal(portOf('api'), 443, 'api keeps its last good version');
    const hits = logged({
      level: 'error',
      file: 'web.yaml',
      object: 'Service/default/api',
      field: 'spec.ports[0].port',
    });
    assert.equal(hits.length, 1, ctx.lines.join(''));
    assert.ok(ctx.source.problems.has('web.yaml'));

    // Fixing the object applies it and clears the problem.
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 81)}---\n${svcYaml('api', '10.96.0.11', 444)}`);
    await until(() => portOf('api') === 444, 'the fixed api');
    assert.equal(ctx.source.problems.has('web.yaml'), false);
    assert.equal(
      logged({ level: 'info', file: 'web.yaml' }).filter((l) => l.includes('fixed')).length,
      1,
      ctx.lines.join(''),
    );
  });

  it('the last good version survives several bad edits in a row', async () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 80)}---\n${svcYaml('api', '10.96.0.11', 443)}`);
    ctx.source.start();
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 81)}---\n${svcYaml('api', '10.1', 443)}`);
    await until(() => portOf('web') === 81, 'first edit');
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 82)}---\n${svcYaml('api', '10.96.0.11', 0)}`);
    await until(() => portOf('web') === 82, 'second edit');
    assert.equal(portOf('api'), 443);
    assert.equal(service('api')?.spec.clusterIP, '10.96.0.11');
  });

  it('an object removed from a file (while others stay) is removed from the store', async () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10')}---\n${svcYaml('api', '10.96.0.11')}`);
    ctx.source.start();
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10'));
    await until(() => service('api') === undefined, 'api to go');
    assert.deepEqual(names(ctx.store.all()), ['default/web']);
  });

  it("an unparsable edit keeps all of the file's previous objects", async () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 80)}---\n${sliceYaml('web-1', 'web', '10.0.0.1')}`);
    ctx.write('other.yaml', svcYaml('other', '10.96.0.20', 80));
    ctx.source.start();
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10', 81)}---\nkind: Service\n  metadata: {name: [broken\n`);
    await until(() => ctx.source.problems.has('web.yaml'), 'the parse error to be reported');
    assert.equal(portOf('web'), 80, 'not even the parsable part applies');
    assert.deepEqual(names(ctx.store.endpointSlices()), ['default/web-1']);
    assert.ok(logged({ level: 'error', file: 'web.yaml' }).length >= 1, ctx.lines.join(''));

    // Other files still apply while web.yaml is broken.
    ctx.write('other.yaml', svcYaml('other', '10.96.0.20', 81));
    await until(() => portOf('other') === 81, 'the edit to other.yaml');
    assert.equal(portOf('web'), 80);

    // And the fix applies.
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10', 82));
    await until(() => portOf('web') === 82, 'the fixed web.yaml');
    assert.deepEqual(names(ctx.store.endpointSlices()), []);
    assert.equal(ctx.source.problems.has('web.yaml'), false);
  });

  it('deleting a file removes its objects and logs it', async () => {
    ctx.write('web.yaml', `${svcYaml('web', '10.96.0.10')}---\n${sliceYaml('web-1', 'web', '10.0.0.1')}`);
    ctx.write('api.yaml', svcYaml('api', '10.96.0.11'));
    ctx.source.start();
    fs.rmSync(path.join(ctx.dir, 'web.yaml'));
    await until(() => ctx.store.originResources('web.yaml') === undefined, "web.yaml's objects to go");
    assert.deepEqual(names(ctx.store.all()), ['default/api']);
    assert.equal(
      logged({ level: 'info', file: 'web.yaml' }).filter((l) => l.includes('removed')).length,
      1,
      ctx.lines.join(''),
    );
  });

  it('deleting a broken file drops its problems and its last good objects', async () => {
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10'));
    ctx.source.start();
    ctx.write('web.yaml', 'kind: [');
    await until(() => ctx.source.problems.has('web.yaml'), 'the parse error');
    fs.rmSync(path.join(ctx.dir, 'web.yaml'));
    await until(() => ctx.store.all().length === 0, 'web to go');
    assert.equal(ctx.source.problems.has('web.yaml'), false);
  });

  it('a file renamed into place (as editors save) is picked up', async () => {
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10', 80));
    ctx.source.start();
    ctx.write('.web.yaml.swp', svcYaml('web', '10.96.0.10', 90));
    fs.renameSync(path.join(ctx.dir, '.web.yaml.swp'), path.join(ctx.dir, 'web.yaml'));
    await until(() => portOf('web') === 90, 'the renamed file');
  });

  it('after stop(), changes are no longer applied', async () => {
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10', 80));
    ctx.source.start();
    ctx.source.stop();
    ctx.write('web.yaml', svcYaml('web', '10.96.0.10', 81));
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(portOf('web'), 80);
  });
});

describe('ResourceStore', () => {
  it('the same object in two files: the first file in name order wins; removing it uncovers the other', () => {
    const store = new ResourceStore();
    const a = svcObj('web', '10.96.0.10', 80) as unknown as Service;
    const b = svcObj('web', '10.96.0.10', 81) as unknown as Service;
    store.replaceOrigin('b.yaml', [b]);
    store.replaceOrigin('a.yaml', [a]);
    assert.equal(store.services()[0]?.spec.ports[0]?.port, 80);
    assert.equal(store.all().length, 1);
    store.removeOrigin('a.yaml');
    assert.equal(store.services()[0]?.spec.ports[0]?.port, 81);
  });

  it('signals the kinds that changed, and nothing when nothing did', () => {
    const store = new ResourceStore();
    const seen: string[][] = [];
    store.on('change', (kinds) => seen.push([...kinds].sort()));
    store.replaceOrigin('a.yaml', []);
    store.replaceOrigin('a.yaml', [svcObj('web', '10.96.0.10', 80) as unknown as Service]);
    store.removeOrigin('a.yaml');
    store.removeOrigin('never.yaml');
    assert.deepEqual(seen, [['Service'], ['Service']]);
  });

  it('put and remove change one object; views of other kinds are untouched', () => {
    const store = new ResourceStore();
    const web = svcObj('web', '10.96.0.10', 80) as unknown as Service;
    const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod', namespace: '' } } as const;
    store.put('k8s/Service', web);
    store.put('k8s/Namespace', ns);
    const services = store.services();
    assert.equal(store.get('Service', 'default', 'web'), web);
    assert.equal(store.get('Namespace', '', 'prod'), ns);
    store.remove('k8s/Namespace', ns);
    assert.equal(store.get('Namespace', '', 'prod'), undefined);
    assert.equal(store.services(), services, 'the Service view is reused while no Service changed');
    store.remove('k8s/Service', web);
    assert.deepEqual(store.services(), []);
  });
});
