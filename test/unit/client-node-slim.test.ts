// src/sources/client-node/slim.ts: with the hook, the Kubernetes source loads without the
// generated API and models of @kubernetes/client-node, and what it uses still works. Runs in a
// child process: hooks are process-wide and the module graph must start empty.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const slim = fileURLToPath(new URL('../../src/sources/client-node/slim.js', import.meta.url));
const source = fileURLToPath(new URL('../../src/sources/kubernetes.js', import.meta.url));

const CHILD = `
import { registerHooks } from 'node:module';
import { rmSync, writeFileSync } from 'node:fs';
const { slimClientNode } = await import(${JSON.stringify(slim)});
slimClientNode();
// Registered last, so it runs first and sees what the slim hook resolves to.
const loaded = [];
registerHooks({ resolve(s, c, next) { const r = next(s, c); loaded.push(r.url); return r; } });
const k8s = await import(${JSON.stringify(source)});
const kubeconfig = { apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: 'http://127.0.0.1:1', 'insecure-skip-tls-verify': true } }], users: [{ name: 'u', user: { token: 't' } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' };
const file = '/tmp/weft-slim-test-' + process.pid + '.kubeconfig';
writeFileSync(file, JSON.stringify(kubeconfig));
const config = k8s.loadKubeConfig(file);
const { RequestContext, HttpMethod } = await import('@kubernetes/client-node/dist/gen/http/http.js');
const ctx = new RequestContext('http://127.0.0.1:1/api/v1/services', HttpMethod.GET);
await config.applySecurityAuthentication(ctx);
const headers = ctx.getHeaders();
console.log(JSON.stringify({
  server: config.getCurrentCluster()?.server,
  auth: headers.Authorization ?? headers.authorization,
  models: loaded.filter((u) => u.includes('/client-node/dist/gen/models/')).length,
  apis: loaded.filter((u) => u.includes('/client-node/dist/gen/apis/')).length,
  shims: loaded.filter((u) => u.endsWith('/sources/client-node/gen-index.js') || u.endsWith('/sources/client-node/selector-serializer.js')).length,
}));
rmSync(file);
`;

test('the Kubernetes source loads without the generated API and models', () => {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    server: string;
    auth: string;
    models: number;
    apis: number;
    shims: number;
  };
  assert.equal(r.server, 'http://127.0.0.1:1');
  assert.equal(r.auth, 'Bearer t');
  assert.equal(r.models, 0);
  assert.equal(r.apis, 0);
  assert.equal(r.shims, 2);
});
