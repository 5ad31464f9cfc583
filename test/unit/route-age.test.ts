// The Gateway API's tie-break between routes with the same matches (the oldest route wins),
// from each source as weftd runs it: metadata.creationTimestamp kept from a manifest file
// (src/sources/manifests-dir.ts) and from the API server, which stamps it on create
// (src/sources/kubernetes.ts), through the store into the route table and a request's route.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../src/lib/log.js';
import { compileServiceRouter } from '../../src/proxy/route-match.js';
import { KubernetesSource, loadKubeConfig } from '../../src/sources/kubernetes.js';
import { WATCHED_RESOURCES } from '../../src/sources/kubernetes-resources.js';
import { ManifestsDirSource } from '../../src/sources/manifests-dir.js';
import { compileRoutes } from '../../src/state/routes/compile.js';
import { ResourceStore } from '../../src/state/store.js';
import { TestApiServer } from '../harness/kube-api-server.js';

const log = createLogger({ level: 'error', write: () => {} });

const service = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const SERVICES = [service('web', '10.96.0.10'), service('web-v1', '10.96.0.11'), service('web-v2', '10.96.0.12')];

/** Every request to web:80 to `backend`: two of these have the same match. */
function route(name: string, backend: string, creationTimestamp?: string): object {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'default', ...(creationTimestamp && { creationTimestamp }) },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: backend, port: 80 }] }],
    },
  };
}

/** Where the store's routes send a request to web:80, as weftd compiles them (src/agent/l7.ts). */
function decision(store: ResourceStore): string {
  const routes = [...store.ofKind('HTTPRoute'), ...store.ofKind('GRPCRoute')];
  const out = compileRoutes(routes, store.ofKind('Service'), store.ofKind('ReferenceGrant'));
  const sp = out.services.find((s) => s.service === 'default/web' && s.port === 80);
  assert.ok(sp, JSON.stringify(out));
  const d = compileServiceRouter(sp).route({ method: 'GET', path: '/', headers: {} });
  assert.ok(d.kind === 'forward', JSON.stringify(d));
  return d.backend;
}

const stamps = (store: ResourceStore) =>
  Object.fromEntries(store.ofKind('HTTPRoute').map((r) => [r.metadata.name, r.metadata.creationTimestamp]));

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-route-age-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('from a manifests directory: the creationTimestamp the file gives (unquoted YAML too)', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'services.json'),
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: SERVICES }),
  );
  // "a-newer" comes first by name and in the file: only its age puts it second.
  const yaml = (name: string, backend: string, created: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: default
  creationTimestamp: ${created}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: ${backend}, port: 80}]
`;
  fs.writeFileSync(
    path.join(dir, 'routes.yaml'),
    `${yaml('a-newer', 'web-v2', '2024-05-01T12:00:01Z')}---\n${yaml('z-older', 'web-v1', '"2024-05-01T12:00:00Z"')}`,
  );
  const store = new ResourceStore();
  const source = new ManifestsDirSource(dir, store, log, { pollMs: 60_000 });
  source.start();
  t.after(() => source.stop());
  assert.deepEqual(source.problems, new Map());
  assert.deepEqual(stamps(store), { 'a-newer': '2024-05-01T12:00:01Z', 'z-older': '2024-05-01T12:00:00Z' });
  assert.equal(decision(store), 'default/web-v1:80');
});

test('from a manifests directory: a malformed creationTimestamp is refused naming the field', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'routes.json'), JSON.stringify(route('web', 'web-v1', 'last tuesday')));
  const store = new ResourceStore();
  const source = new ManifestsDirSource(dir, store, log, { pollMs: 60_000 });
  source.start();
  t.after(() => source.stop());
  assert.deepEqual(source.problems.get('routes.json'), [
    {
      file: 'routes.json',
      object: 'HTTPRoute/default/web',
      errors: ['metadata.creationTimestamp: "last tuesday" is not an RFC 3339 timestamp (like "2024-05-01T12:00:00Z")'],
    },
  ]);
  assert.deepEqual(store.ofKind('HTTPRoute'), []);
});

test('from the API server: the creationTimestamp it sets on create', async (t) => {
  const dir = tempDir(t);
  const server = await TestApiServer.start();
  t.after(() => server.close());
  server.writeKubeconfig(path.join(dir, 'kubeconfig'));
  server.installCrd('httproutes.gateway.networking.k8s.io');
  for (const s of SERVICES) server.create(s);
  // The older route is named to come second; the API server ignores a creationTimestamp in
  // what it is sent, and stamps whole seconds: the next route waits for the next second.
  const older = server.create(route('z-older', 'web-v1', '2000-01-01T00:00:00Z')).metadata.creationTimestamp!;
  assert.notEqual(older, '2000-01-01T00:00:00Z');
  while (new Date().toISOString().slice(0, 19) <= older.slice(0, 19)) await sleep(20);
  const newer = server.create(route('a-newer', 'web-v2')).metadata.creationTimestamp!;
  assert.ok(Date.parse(newer) > Date.parse(older), `${newer} after ${older}`);

  const store = new ResourceStore();
  const resources = WATCHED_RESOURCES.filter((r) => r.kind === 'Service' || r.kind === 'HTTPRoute');
  const source = new KubernetesSource(loadKubeConfig(path.join(dir, 'kubeconfig')), store, log, { resources });
  t.after(() => source.stop());
  await source.start();
  assert.deepEqual(stamps(store), { 'a-newer': newer, 'z-older': older });
  assert.equal(decision(store), 'default/web-v1:80');
});
