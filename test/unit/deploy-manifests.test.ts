// deploy/: the manifests `kubectl apply -f deploy/` installs and the image they run. Every
// document is validated against the Kubernetes schemas (kubernetes-models) and for unknown
// fields (client-node's models), then held to what the code needs and no more: the ClusterRole
// to what the Kubernetes source watches, the agent's flags to weftd's own parser, the CNI
// install step to the real `weft cni install`, the Dockerfile to what `make` produces here.
// Each policy check is a function returning problems, and each is also shown to catch a
// broken copy, so none of them passes vacuously.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { parseConfig, type AgentConfig } from '../../src/agent/config.js';
import { DEFAULT_STATE_DIR } from '../../src/contract/agent-api.js';
import { CONFLIST_NAME, PLUGIN_NAME } from '../../src/cli/cni-install.js';
import { DEFAULT_BPF_ROOT } from '../../src/datapath/pins.js';
import { CRD_RESOURCE, WATCHED_RESOURCES } from '../../src/sources/kubernetes-resources.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const DEPLOY = path.join(REPO, 'deploy');
const NAMESPACE = 'weft-system';
const SAMPLE_NODE = 'node-a';
/** The capabilities 30-daemonset.yaml documents for the agent, one comment each. */
const AGENT_CAPABILITIES = ['BPF', 'NET_ADMIN', 'PERFMON', 'SYS_RESOURCE'];
/** Every host path the pod may mount, and nothing else. */
const HOST_PATHS = ['/sys/fs/bpf', '/sys/fs/cgroup', '/var/run/weft', '/opt/cni/bin', '/etc/cni/net.d'];
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

type Doc = Record<string, unknown> & {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
};
interface Loaded {
  file: string;
  doc: Doc;
}

const clone = <T>(v: T): T => structuredClone(v);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const idOf = (d: Doc) => `${d.kind}/${d.metadata?.name}`;

function loadDeploy(): Loaded[] {
  const files = fs
    .readdirSync(DEPLOY)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  return files.flatMap((file) =>
    loadAll(fs.readFileSync(path.join(DEPLOY, file), 'utf8'))
      .filter((d) => d !== null && d !== undefined)
      .map((d) => ({ file, doc: d as Doc })),
  );
}

// ---- schema validation ----

/** The kubernetes-models class for a document: kubernetes-models/<group or v1>/<version>/<Kind>. */
async function modelFor(doc: Doc): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = doc.apiVersion?.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
  const spec = group ? `kubernetes-models/${group}/${version}/${doc.kind}` : `kubernetes-models/${version}/${doc.kind}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec)) as Record<string, unknown>;
  } catch {
    throw new Error(`unknown kind ${doc.kind} in ${doc.apiVersion}`);
  }
  const ctor = mod[doc.kind ?? ''];
  if (typeof ctor !== 'function') throw new Error(`unknown kind ${doc.kind} in ${doc.apiVersion}`);
  return ctor as new (data: unknown) => { validate(): void };
}

interface AttributeType {
  baseName: string;
  type: string;
}

/** Fields the API server would reject as unknown (kubectl apply validates strictly). The JSON
 *  schemas allow extra properties; client-node's generated models list every field there is. */
function unknownFields(value: unknown, type: string, at: string, out: string[] = []): string[] {
  if (value === null || value === undefined) return out;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${at}[${i}]`, out));
    return out;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (isObj(value)) for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${at}.${k}`, out);
    return out;
  }
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeType[] } | undefined>)[type];
  if (typeof model?.getAttributeTypeMap !== 'function' || !isObj(value)) return out; // a scalar, IntOrString, ...
  const attrs = model.getAttributeTypeMap();
  for (const [k, v] of Object.entries(value)) {
    const attr = attrs.find((a) => a.baseName === k);
    if (!attr) out.push(`${at}.${k}`);
    else unknownFields(v, attr.type, `${at}.${k}`, out);
  }
  return out;
}

/** Throws what is wrong with one document: schema errors, unknown kind, unknown fields. */
async function validateDoc(doc: Doc): Promise<void> {
  if (!doc.apiVersion || !doc.kind) throw new Error('no apiVersion or kind');
  const Model = await modelFor(doc);
  new Model(doc).validate();
  const version = doc.apiVersion.split('/').pop()!;
  const root = `${version[0]!.toUpperCase()}${version.slice(1)}${doc.kind}`;
  const unknown = unknownFields(doc, root, idOf(doc));
  if (unknown.length) throw new Error(`unknown fields: ${unknown.join(', ')}`);
}

// ---- the pieces of the installation ----

interface Install {
  docs: Loaded[];
  role: IClusterRole;
  binding: IClusterRoleBinding;
  config: IConfigMap;
  ds: IDaemonSet;
}

function pick<T>(docs: Loaded[], kind: string): T {
  const found = docs.filter((d) => d.doc.kind === kind);
  assert.equal(found.length, 1, `deploy/ has exactly one ${kind}`);
  return found[0]!.doc as T;
}

function podOf(ds: IDaemonSet): IPodSpec {
  const pod = ds.spec?.template.spec;
  assert.ok(pod, 'the DaemonSet has a pod template');
  return pod;
}

function containerNamed(pod: IPodSpec, name: string): IContainer {
  const c = [...(pod.initContainers ?? []), ...pod.containers].find((x) => x.name === name);
  assert.ok(c, `the pod has a container ${name}`);
  return c;
}

const hostPathOf = (pod: IPodSpec, volume: string) => pod.volumes?.find((v) => v.name === volume)?.hostPath?.path;

/** Where a path inside a container lies on the host, through its hostPath mounts. */
function hostPathFor(
  pod: IPodSpec,
  c: IContainer,
  p: string,
): { host: string; readOnly: boolean; propagation?: string } | undefined {
  const m = (c.volumeMounts ?? [])
    .filter((vm) => p === vm.mountPath || p.startsWith(`${vm.mountPath.replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  const host = m && hostPathOf(pod, m.name);
  if (!m || !host) return undefined;
  return {
    host: path.posix.join(host, path.posix.relative(m.mountPath, p)),
    readOnly: m.readOnly ?? false,
    ...(m.mountPropagation ? { propagation: m.mountPropagation } : {}),
  };
}

/** Kubernetes' $(VAR) expansion: defined variables are replaced, $$ is a literal $. */
const expand = (s: string, env: Map<string, string>) =>
  s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m: string, name?: string) =>
    name === undefined ? '$' : (env.get(name) ?? m),
  );

/** A container's environment as the kubelet builds it: downward API spec.nodeName is
 *  SAMPLE_NODE, ConfigMap keys come from deploy/ (an absent optional key leaves the variable unset). */
function containerEnv(c: IContainer, configMaps: IConfigMap[]): Map<string, string> {
  assert.equal(c.envFrom, undefined, `${c.name}: envFrom would hide which settings become flags`);
  const env = new Map<string, string>();
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, expand(e.value, env));
    else if (e.valueFrom?.fieldRef) {
      assert.equal(e.valueFrom.fieldRef.fieldPath, 'spec.nodeName', `${c.name}: env ${e.name}`);
      env.set(e.name, SAMPLE_NODE);
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const cm = configMaps.find((m) => m.metadata?.name === ref.name);
      assert.ok(cm, `${c.name}: env ${e.name} reads ConfigMap ${ref.name}, which deploy/ does not define`);
      const v = cm.data?.[ref.key];
      if (v === undefined)
        assert.ok(ref.optional, `${c.name}: env ${e.name}: ConfigMap ${ref.name} has no key ${ref.key}`);
      else env.set(e.name, v);
    } else assert.fail(`${c.name}: env ${e.name} has no value this test knows how to resolve`);
  }
  return env;
}

function expandedArgs(c: IContainer, env: Map<string, string>): string[] {
  const args = (c.args ?? []).map((a) => expand(a, env));
  for (const a of args)
    assert.ok(!/\$\([A-Za-z_]/.test(a), `${c.name}: ${a} refers to a variable the container does not define`);
  return args;
}

function agentConfig(install: Install): { cfg: AgentConfig; env: Map<string, string> } {
  const agent = containerNamed(podOf(install.ds), 'agent');
  const env = containerEnv(agent, [install.config]);
  const cfg = parseConfig(expandedArgs(agent, env));
  assert.notEqual(cfg, 'help');
  return { cfg: cfg as AgentConfig, env };
}

function metricsPort(cfg: AgentConfig): number {
  const m = /^(.*):(\d+)$/.exec(cfg.metricsAddress);
  assert.ok(m, `metrics address ${cfg.metricsAddress} is HOST:PORT`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  assert.ok(
    ['', '127.0.0.1', '0.0.0.0', '::'].includes(host),
    `probes at 127.0.0.1 reach a listener on ${cfg.metricsAddress}`,
  );
  return Number(m[2]);
}

/** Bytes of a memory quantity (the forms these manifests use). */
function bytes(q: string | number | undefined): number {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(String(q ?? ''));
  assert.ok(m, `memory quantity ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

// ---- policy checks: each returns what is wrong ----

/** The ClusterRole grants list and watch on exactly what the Kubernetes source watches. */
function rbacProblems(role: IClusterRole): string[] {
  const problems: string[] = [];
  const key = (group: string, plural: string) => `${group || 'core'}/${plural}`;
  const expected = new Map<string, string[] | undefined>(
    WATCHED_RESOURCES.map((r) => [key(r.group, r.plural), undefined]),
  );
  expected.set(
    key(CRD_RESOURCE.group, CRD_RESOURCE.plural),
    WATCHED_RESOURCES.flatMap((r) => (r.crd ? [r.crd] : [])).sort(),
  );
  const granted = new Map<string, string[] | undefined>();
  for (const [i, rule] of (role.rules ?? []).entries()) {
    if (rule.nonResourceURLs?.length) problems.push(`rule ${i}: nonResourceURLs`);
    const verbs = [...rule.verbs].sort();
    if (verbs.join() !== 'list,watch') problems.push(`rule ${i}: verbs ${verbs.join(',')} (want list,watch)`);
    for (const group of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        const k = key(group, resource);
        if (group === '*' || resource.includes('*')) problems.push(`rule ${i}: wildcard ${k}`);
        if (resource.includes('/')) problems.push(`rule ${i}: subresource ${k}`);
        if (resource === 'secrets') problems.push(`rule ${i}: secrets`);
        if (granted.has(k)) problems.push(`${k} granted twice`);
        granted.set(k, rule.resourceNames ? [...rule.resourceNames].sort() : undefined);
      }
    }
  }
  for (const [k, names] of expected) {
    if (!granted.has(k)) problems.push(`${k} not granted`);
    else if (JSON.stringify(granted.get(k)) !== JSON.stringify(names))
      problems.push(`${k}: resourceNames ${JSON.stringify(granted.get(k))}, want ${JSON.stringify(names)}`);
  }
  for (const k of granted.keys()) if (!expected.has(k)) problems.push(`${k} granted but not watched`);
  return problems;
}

/** Least privilege in the pod: one privileged init container for bpffs, an agent with exactly
 *  the documented capabilities, nothing else above an unprivileged root. */
function privilegeProblems(pod: IPodSpec): string[] {
  const problems: string[] = [];
  if (pod.hostPID || pod.hostIPC) problems.push('hostPID/hostIPC');
  const all = [
    ...(pod.initContainers ?? []).map((c) => ({ c, init: true })),
    ...pod.containers.map((c) => ({ c, init: false })),
  ];
  for (const { c, init } of all) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) {
      if (!init || c.name !== 'mount-bpffs') problems.push(`${c.name}: privileged`);
      const mounts = (c.volumeMounts ?? []).map((m) => hostPathOf(pod, m.name));
      if (mounts.join() !== '/sys/fs/bpf')
        problems.push(`${c.name}: privileged with mounts ${mounts.join(',')} (want only bpffs)`);
      if (!(c.command ?? []).join(' ').includes('mount -t bpf'))
        problems.push(`${c.name}: privileged but does not mount bpffs`);
      continue;
    }
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${c.name}: allowPrivilegeEscalation not false`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${c.name}: root filesystem writable`);
    if (!sc.capabilities?.drop?.includes('ALL')) problems.push(`${c.name}: capabilities not dropped`);
    const add = [...(sc.capabilities?.add ?? [])].sort();
    const want = c.name === 'agent' ? AGENT_CAPABILITIES : [];
    if (add.join() !== want.join())
      problems.push(`${c.name}: capabilities ${add.join(',') || 'none'} (want ${want.join(',') || 'none'})`);
    for (const m of c.volumeMounts ?? [])
      if (m.mountPropagation === 'Bidirectional') problems.push(`${c.name}: Bidirectional mount ${m.mountPath}`);
  }
  if (!all.some(({ c, init }) => init && c.securityContext?.privileged))
    problems.push('no init container mounts bpffs');
  return problems;
}

/** Volumes: every mount names a defined volume, every volume is used, host paths only from
 *  the allowed list, and each container mounts only what its job needs. */
function volumeProblems(pod: IPodSpec): string[] {
  const problems: string[] = [];
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const used = new Set<string>();
  const containers = [...(pod.initContainers ?? []), ...pod.containers];
  for (const c of containers) {
    for (const m of c.volumeMounts ?? []) {
      if (!volumes.has(m.name)) problems.push(`${c.name}: mounts undefined volume ${m.name}`);
      used.add(m.name);
    }
  }
  for (const [name, v] of volumes) {
    if (!used.has(name)) problems.push(`volume ${name} is not mounted`);
    if (v.hostPath && !HOST_PATHS.includes(v.hostPath.path))
      problems.push(`volume ${name}: host path ${v.hostPath.path} not allowed`);
  }
  const want: Record<string, string[]> = {
    'mount-bpffs': ['/sys/fs/bpf'],
    'install-cni': ['/etc/cni/net.d', '/opt/cni/bin'],
    agent: ['/sys/fs/bpf', '/sys/fs/cgroup', '/var/run/weft'],
    // The admin socket only: the proxy touches neither bpffs nor cgroups.
    proxy: ['/var/run/weft'],
  };
  for (const c of containers) {
    const got = (c.volumeMounts ?? []).map((m) => hostPathOf(pod, m.name) ?? m.name).sort();
    if (got.join() !== (want[c.name] ?? []).join())
      problems.push(`${c.name}: mounts ${got.join(',')} (want ${(want[c.name] ?? []).join(',')})`);
  }
  return problems;
}

function probeProblems(pod: IPodSpec, port: number): string[] {
  const problems: string[] = [];
  const agent = pod.containers.find((c) => c.name === 'agent');
  if (!agent) return ['no agent container'];
  const check = (what: string, p: IProbe | undefined, pathWanted: string) => {
    const g = p?.httpGet;
    if (!g) return void problems.push(`${what}: not an httpGet probe`);
    const named = typeof g.port === 'string' ? agent.ports?.find((x) => x.name === g.port)?.containerPort : g.port;
    if (named !== port) problems.push(`${what}: port ${g.port}, metrics listen on ${port}`);
    if (g.host !== '127.0.0.1') problems.push(`${what}: host ${g.host} (hostNetwork: the kubelet must ask 127.0.0.1)`);
    if (g.path !== pathWanted) problems.push(`${what}: path ${g.path} (want ${pathWanted})`);
  };
  check('livenessProbe', agent.livenessProbe, '/healthz');
  check('readinessProbe', agent.readinessProbe, '/readyz');
  check('startupProbe', agent.startupProbe, '/readyz');
  const s = agent.startupProbe;
  const budget = (s?.periodSeconds ?? 10) * (s?.failureThreshold ?? 3);
  if (budget < 300) problems.push(`startupProbe allows ${budget} s for the first list (want >= 300)`);
  const declared = agent.ports?.find((x) => x.name === 'metrics');
  if (declared?.containerPort !== port)
    problems.push(`containerPort metrics ${declared?.containerPort}, metrics listen on ${port}`);
  return problems;
}

// ---- the Dockerfile ----

interface Stage {
  from: string;
  name?: string;
  workdir: string;
  runs: string[];
  copies: { from?: string; sources: string[]; dest: string }[];
  env: Map<string, string>;
  entrypoint?: string[];
}

function parseDockerfile(text: string): Stage[] {
  const lines: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith('\\')) {
      cur += `${line.slice(0, -1)} `;
      continue;
    }
    cur += line;
    if (cur.trim()) lines.push(cur.trim());
    cur = '';
  }
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const stage = stages.at(-1);
    switch (op.toUpperCase()) {
      case 'FROM': {
        const [from = '', as, name] = rest.split(/\s+/);
        stages.push({
          from,
          ...(as?.toUpperCase() === 'AS' && name ? { name } : {}),
          workdir: '/',
          runs: [],
          copies: [],
          env: new Map(),
        });
        break;
      }
      case 'WORKDIR':
        assert.ok(stage, 'WORKDIR before FROM');
        stage.workdir = path.posix.resolve(stage.workdir, rest);
        break;
      case 'RUN':
        stage?.runs.push(rest);
        break;
      case 'COPY': {
        assert.ok(stage, 'COPY before FROM');
        const words = rest.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--'));
        const rawDest = paths.pop() ?? '';
        const dest = path.posix.resolve(stage.workdir, rawDest) + (rawDest.endsWith('/') ? '/' : '');
        stage.copies.push({ ...(from ? { from } : {}), sources: paths, dest });
        break;
      }
      case 'ENV':
        for (const m of rest.matchAll(/(\w+)=(\S+)/g)) stage?.env.set(m[1]!, m[2]!);
        break;
      case 'ENTRYPOINT':
        if (stage) stage.entrypoint = JSON.parse(rest) as string[];
        break;
    }
  }
  return stages;
}

/** Where a path of the runtime image comes from in the repository, or undefined. Sources of
 *  COPY --from=<stage> are paths of that stage's checkout (its WORKDIR after `COPY . .`). */
function repoPathOf(stages: Stage[], imagePath: string): string | undefined {
  const runtime = stages.at(-1)!;
  for (const copy of [...runtime.copies].reverse()) {
    const workdir = copy.from ? stages.find((s) => s.name === copy.from)?.workdir : undefined;
    for (const src of copy.sources) {
      const rel = copy.from ? path.posix.relative(workdir ?? '/', src) : src.replace(/^\.\//, '');
      const isDir = src.endsWith('/');
      const dest =
        isDir || copy.dest.endsWith('/')
          ? path.posix.join(copy.dest, isDir ? '' : path.posix.basename(src))
          : copy.dest;
      if (imagePath === dest.replace(/\/$/, '')) return rel.replace(/\/$/, '');
      if (isDir && imagePath.startsWith(dest.endsWith('/') ? dest : `${dest}/`))
        return path.posix.join(rel, path.posix.relative(dest, imagePath));
    }
  }
  return undefined;
}

const aptPackages = (runs: string[]) =>
  runs.flatMap((r) =>
    [...r.matchAll(/apt-get install ((?:\s*(?:-\S+|[a-z0-9][a-z0-9.+-]*))+)/g)].flatMap((m) =>
      m[1]!
        .trim()
        .split(/\s+/)
        .filter((w) => !w.startsWith('-')),
    ),
  );

// ---- the tests ----

describe('deploy/ manifests', () => {
  let install: Install;

  before(() => {
    const docs = loadDeploy();
    install = {
      docs,
      role: pick<IClusterRole>(docs, 'ClusterRole'),
      binding: pick<IClusterRoleBinding>(docs, 'ClusterRoleBinding'),
      config: pick<IConfigMap>(docs, 'ConfigMap'),
      ds: pick<IDaemonSet>(docs, 'DaemonSet'),
    };
  });

  it('validates every document against the Kubernetes schemas, with no unknown field or kind', async () => {
    assert.ok(install.docs.length >= 6);
    for (const { file, doc } of install.docs) {
      await validateDoc(doc).catch((err: Error) => assert.fail(`deploy/${file}: ${idOf(doc)}: ${err.message}`));
    }
  });

  it('validation catches a broken manifest', async () => {
    const ds = install.ds as unknown as Doc & IDaemonSet;
    const noName = clone(ds);
    delete (podOf(noName).containers[0] as Partial<IContainer>).name;
    await assert.rejects(validateDoc(noName), /must have required property name/);
    const wrongType = clone(ds);
    (podOf(wrongType).containers[0]!.ports![0] as { containerPort: unknown }).containerPort = '9962';
    await assert.rejects(validateDoc(wrongType), /containerPort must be integer/);
    const typo = clone(ds) as unknown as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    typo.spec.template.spec.containers[0]!.securityContex = {};
    await assert.rejects(
      validateDoc(typo),
      /unknown fields: .*DaemonSet\/weft\.spec\.template\.spec\.containers\[0\]\.securityContex/,
    );
    await assert.rejects(validateDoc({ ...clone(ds), kind: 'DeamonSet' }), /unknown kind DeamonSet/);
  });

  it('applies in one go: the Namespace first, everything else in it, each object once', () => {
    const order = install.docs.map((d) => d.doc.kind);
    assert.equal(order[0], 'Namespace', 'the first document (by file name) is the Namespace');
    assert.equal(install.docs[0]!.doc.metadata?.name, NAMESPACE);
    for (const needed of ['ServiceAccount', 'ConfigMap'])
      assert.ok(order.indexOf(needed) < order.indexOf('DaemonSet'), `${needed} before the DaemonSet`);
    const seen = new Set<string>();
    for (const { file, doc } of install.docs) {
      const id = `${doc.kind}/${doc.metadata?.namespace ?? ''}/${doc.metadata?.name}`;
      assert.ok(!seen.has(id), `deploy/${file}: ${id} twice`);
      seen.add(id);
      if (CLUSTER_SCOPED.has(doc.kind!))
        assert.equal(doc.metadata?.namespace, undefined, `deploy/${file}: ${id} is cluster-scoped`);
      else assert.equal(doc.metadata?.namespace, NAMESPACE, `deploy/${file}: ${id} is in ${NAMESPACE}`);
    }
    assert.deepEqual([...new Set(order)].sort(), [
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'DaemonSet',
      'Namespace',
      'ServiceAccount',
    ]);
  });

  it("grants list and watch on exactly what the Kubernetes source watches, bound to the pod's ServiceAccount", () => {
    assert.deepEqual(rbacProblems(install.role), []);
    const pod = podOf(install.ds);
    assert.deepEqual(install.binding.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: install.role.metadata?.name,
    });
    assert.deepEqual(install.binding.subjects, [
      { kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: NAMESPACE },
    ]);
    assert.ok(
      install.docs.some((d) => d.doc.kind === 'ServiceAccount' && d.doc.metadata?.name === pod.serviceAccountName),
    );
    // ... and the check catches a role that is wrong.
    const withGet = clone(install.role);
    withGet.rules![0]!.verbs.push('get');
    assert.match(rbacProblems(withGet).join('\n'), /verbs get,list,watch/);
    const secrets = clone(install.role);
    secrets.rules![0]!.resources!.push('secrets');
    assert.match(rbacProblems(secrets).join('\n'), /secrets/);
    const missing = clone(install.role);
    missing.rules = missing.rules!.filter((r) => !r.apiGroups?.includes('discovery.k8s.io'));
    assert.match(rbacProblems(missing).join('\n'), /discovery\.k8s\.io\/endpointslices not granted/);
    const allCrds = clone(install.role);
    for (const r of allCrds.rules!) delete r.resourceNames;
    assert.match(rbacProblems(allCrds).join('\n'), /customresourcedefinitions: resourceNames undefined/);
  });

  it("runs on every node as the node's network: hostNetwork, critical priority, every taint tolerated, one node at a time", () => {
    const ds = install.ds;
    const pod = podOf(ds);
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, 'Default', 'the agent must not depend on cluster DNS, which it programs');
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.ok(
      pod.tolerations?.some((t) => t.operator === 'Exists' && !t.key && !t.effect),
      'tolerates every taint, NotReady included',
    );
    assert.deepEqual(ds.spec?.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    assert.ok(
      (pod.terminationGracePeriodSeconds ?? 30) <= 10,
      'a short grace period: weftd leaves the datapath in the kernel',
    );
    const labels = ds.spec?.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(ds.spec?.selector.matchLabels ?? {}))
      assert.equal(labels[k], v, `the template carries selector label ${k}`);
    const version = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string })
      .version;
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      assert.equal(c.image, `ghcr.io/weft-mesh/weft:${version}`, `${c.name}: the image of this version`);
      assert.equal(c.imagePullPolicy, 'IfNotPresent');
      assert.ok(c.resources?.requests && c.resources.limits?.memory, `${c.name}: resource requests and a memory limit`);
    }
    const agent = containerNamed(pod, 'agent');
    // make bench measured about 255 MB RSS at 10,000 services and 100,000 endpoints.
    assert.ok(bytes(agent.resources?.requests?.memory) >= 255e6, 'the agent requests what it uses at 10,000 services');
    assert.ok(
      bytes(agent.resources?.limits?.memory) >= 2 * 255e6,
      "the agent's memory limit leaves room over what it uses",
    );
  });

  it('is privileged only where it must be', () => {
    const pod = podOf(install.ds);
    assert.deepEqual(privilegeProblems(pod), []);
    const agent = containerNamed(pod, 'agent');
    assert.equal(agent.securityContext?.runAsUser, 0);
    assert.ok(!agent.securityContext?.privileged);
    const bpffsInit = pod.initContainers?.[0];
    assert.equal(bpffsInit?.name, 'mount-bpffs', 'bpffs is mounted before anything else runs');
    assert.equal(bpffsInit.volumeMounts?.[0]?.mountPropagation, 'Bidirectional', 'its mount reaches the host');
    const text = fs.readFileSync(path.join(DEPLOY, '30-daemonset.yaml'), 'utf8');
    for (const cap of AGENT_CAPABILITIES)
      assert.match(
        text,
        new RegExp(`#[^\\n]*\\n(\\s*#[^\\n]*\\n)*\\s*- ${cap}\\n`),
        `a comment says why the agent needs ${cap}`,
      );
    // ... and the check catches a pod that is wrong.
    const privilegedAgent = clone(pod);
    containerNamed(privilegedAgent, 'agent').securityContext!.privileged = true;
    assert.match(privilegeProblems(privilegedAgent).join('\n'), /agent: privileged/);
    const sysAdmin = clone(pod);
    containerNamed(sysAdmin, 'agent').securityContext!.capabilities!.add!.push('SYS_ADMIN');
    assert.match(
      privilegeProblems(sysAdmin).join('\n'),
      /agent: capabilities BPF,NET_ADMIN,PERFMON,SYS_ADMIN,SYS_RESOURCE/,
    );
    const writable = clone(pod);
    containerNamed(writable, 'install-cni').securityContext!.readOnlyRootFilesystem = false;
    assert.match(privilegeProblems(writable).join('\n'), /install-cni: root filesystem writable/);
  });

  it('mounts only defined volumes, only the allowed host paths, each where its job needs it', () => {
    const pod = podOf(install.ds);
    assert.deepEqual(volumeProblems(pod), []);
    const agent = containerNamed(pod, 'agent');
    assert.equal(
      agent.volumeMounts?.find((m) => hostPathOf(pod, m.name) === '/sys/fs/bpf')?.mountPropagation,
      'HostToContainer',
    );
    assert.equal(agent.volumeMounts?.find((m) => hostPathOf(pod, m.name) === '/sys/fs/cgroup')?.readOnly, true);
    // Host paths appear under /host (the runtime's default AppArmor profile denies writes under
    // /sys/*); only the state directory is at its own path, which the plugin on the host dials.
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      for (const m of c.volumeMounts ?? []) {
        const hp = hostPathOf(pod, m.name);
        assert.ok(
          m.mountPath === `/host${hp}` || (hp === DEFAULT_STATE_DIR && m.mountPath === hp),
          `${c.name}: ${hp} mounted at ${m.mountPath}`,
        );
      }
    }
    // ... and the check catches a pod that is wrong.
    const broken = clone(pod);
    containerNamed(broken, 'agent').volumeMounts!.push({ name: 'nope', mountPath: '/nope' });
    broken.volumes!.push({ name: 'root', hostPath: { path: '/' } });
    const problems = volumeProblems(broken).join('\n');
    assert.match(problems, /agent: mounts undefined volume nope/);
    assert.match(problems, /volume root is not mounted/);
    assert.match(problems, /host path \/ not allowed/);
  });

  it('starts weftd with flags its own parser accepts: the Kubernetes source, this node, host pins and cgroup', () => {
    const pod = podOf(install.ds);
    const agent = containerNamed(pod, 'agent');
    assert.equal(agent.command, undefined, "the image's ENTRYPOINT (weftd) runs, with args as its flags");
    const { cfg, env } = agentConfig(install);
    assert.deepEqual(cfg.source, { kind: 'kubernetes' });
    assert.equal(cfg.nodeName, SAMPLE_NODE);
    assert.equal(cfg.stateDir, '/var/run/weft');
    assert.equal(cfg.logLevel, install.config.data?.['log-level']);
    // The pins and the state live on the host, where the host's own `weft` finds them by default.
    assert.deepEqual(hostPathFor(pod, agent, cfg.bpfRoot), {
      host: DEFAULT_BPF_ROOT,
      readOnly: false,
      propagation: 'HostToContainer',
    });
    assert.equal(hostPathFor(pod, agent, cfg.stateDir)?.host, DEFAULT_STATE_DIR);
    assert.ok(cfg.cgroup, "--cgroup is given: the container's own cgroup2 mount is not the host's root");
    assert.equal(hostPathFor(pod, agent, cfg.cgroup)?.host, '/sys/fs/cgroup');
    // `kubectl exec ds/weft -- weft status` finds the same pins and socket.
    assert.equal(env.get('WEFT_BPF_ROOT'), cfg.bpfRoot);
    assert.equal(env.get('WEFT_STATE_DIR'), cfg.stateDir);
    // The API server override stays unset until weft-config sets it (then the kubelet's value is replaced).
    assert.equal(env.has('KUBERNETES_SERVICE_HOST'), install.config.data?.['kubernetes-service-host'] !== undefined);
    const overridden = clone(install.config);
    overridden.data = {
      ...overridden.data,
      'kubernetes-service-host': '192.0.2.10',
      'kubernetes-service-port': '6443',
    };
    const env2 = containerEnv(agent, [overridden]);
    assert.equal(env2.get('KUBERNETES_SERVICE_HOST'), '192.0.2.10');
    assert.equal(env2.get('KUBERNETES_SERVICE_PORT'), '6443');
    // ... and a wrong setting fails the same parser.
    const badLevel = clone(install.config);
    badLevel.data = { ...badLevel.data, 'log-level': 'verbose' };
    assert.throws(() => agentConfig({ ...install, config: badLevel }), /--log-level verbose/);
  });

  it('probes the agent on its metrics listener', () => {
    const pod = podOf(install.ds);
    const port = metricsPort(agentConfig(install).cfg);
    assert.deepEqual(probeProblems(pod, port), []);
    assert.equal(install.ds.spec?.template.metadata?.annotations?.['prometheus.io/port'], String(port));
    const moved = clone(pod);
    containerNamed(moved, 'agent').livenessProbe!.httpGet!.port = 9090;
    assert.match(probeProblems(moved, port).join('\n'), /livenessProbe: port 9090, metrics listen on 9962/);
  });

  it("installs the CNI plugin with a real `weft cni install` that points the plugin at the agent's socket", () => {
    const pod = podOf(install.ds);
    const init = containerNamed(pod, 'install-cni');
    const [bin, ...args] = init.command ?? [];
    assert.deepEqual(args.slice(0, 2), ['cni', 'install']);
    // The image's weft is bin/weft of this checkout; run the script it execs.
    const stages = parseDockerfile(fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8'));
    assert.equal(repoPathOf(stages, bin ?? ''), 'bin/weft', `${bin} is bin/weft in the image`);
    const script = /"\$here\/\.\.\/(build\/js\/[^"]+\.js)"/.exec(
      fs.readFileSync(path.join(REPO, 'bin/weft'), 'utf8'),
    )?.[1];
    assert.ok(script, 'bin/weft names the compiled CLI');
    // Run it against a scratch "host": paths under the container's mounts land in tmp/<host path>.
    const host = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-deploy-host-'));
    try {
      const onHost = (p: string) => {
        const h = hostPathFor(pod, init, p);
        return h ? path.join(host, h.host) : p;
      };
      const hostArgs = args.map((a) =>
        a.replace(/^(--[\w-]+=)?(\/.*)$/, (_m, flag: string | undefined, p: string) => `${flag ?? ''}${onHost(p)}`),
      );
      const out = execFileSync(process.execPath, [path.join(REPO, script), ...hostArgs], { encoding: 'utf8', env: {} });
      assert.match(out, /Installed/);
      assert.ok(
        fs.statSync(path.join(host, '/opt/cni/bin', PLUGIN_NAME)).mode & 0o111,
        "the plugin is in the runtime's bin directory, executable",
      );
      const conf = JSON.parse(fs.readFileSync(path.join(host, '/etc/cni/net.d', CONFLIST_NAME), 'utf8')) as {
        plugins: { type: string; agentSocket?: string }[];
      };
      const socket = conf.plugins.find((p) => p.type === PLUGIN_NAME)?.agentSocket;
      // The plugin runs on the host: the socket it dials is where the agent's socket is on the host.
      const { cfg } = agentConfig(install);
      assert.equal(socket, hostPathFor(pod, containerNamed(pod, 'agent'), cfg.socketPath)?.host);
    } finally {
      fs.rmSync(host, { recursive: true, force: true });
    }
  });
});

describe('deploy/Dockerfile', () => {
  const stages = parseDockerfile(fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8'));
  const runtime = stages.at(-1)!;
  const build = stages[0]!;

  it('builds in a full Debian 12 image and runs in a slim one with the same Node.js major', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    assert.match(runtime.from, /^node:(\d+)-bookworm-slim$/);
    assert.match(build.from, /^node:\d+-bookworm$/);
    const engines = (
      JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } }
    ).engines.node;
    const major = /(\d+)/.exec(engines)![1];
    for (const s of stages)
      assert.match(s.from, new RegExp(`^node:${major}-`), `${s.from}: Node.js ${major}, as package.json's engines`);
    assert.deepEqual(aptPackages(runtime.runs), ['libbpf1'], 'the runtime adds libbpf1 and nothing else');
  });

  it('installs the build tools ensure-tools.sh installs and runs make targets the Makefile has (not the benchmarks)', () => {
    const packages = aptPackages(build.runs);
    const ensure = fs.readFileSync(path.join(REPO, 'scripts/ensure-tools.sh'), 'utf8');
    const known = /APT_PACKAGES=\(([^)]*)\)/.exec(ensure)![1]!.split(/\s+/).filter(Boolean);
    for (const p of ['clang', 'llvm', 'libbpf-dev', 'bpftool', 'gcc', 'make', 'libc6-dev', 'libjsmn-dev'])
      assert.ok(packages.includes(p), `the build stage installs ${p}`);
    for (const p of packages) assert.ok(known.includes(p), `${p} is one of ensure-tools.sh's packages`);
    const makefile = fs.readFileSync(path.join(REPO, 'Makefile'), 'utf8');
    const make = build.runs.find((r) => /^make\b/.test(r));
    assert.ok(make, 'the build stage runs make');
    const words = make.split(/\s+/).slice(1);
    const targets = words.filter((w, i) => !w.startsWith('-') && words[i - 1] !== '-o');
    assert.deepEqual([...targets].sort(), ['bpf', 'native', 'ts']);
    for (const t of [...targets, ...words.filter((_w, i) => words[i - 1] === '-o')])
      assert.match(makefile, new RegExp(`^${t}:`, 'm'), `Makefile target ${t}`);
    assert.ok(
      build.runs.some((r) => /npm ci\b/.test(r) && !r.includes('--omit')),
      'the build installs dev dependencies (tsc)',
    );
    assert.ok(
      stages.some((s) => s.runs.some((r) => /npm ci\b.*--omit=dev/.test(r))),
      "the runtime's node_modules are production-only",
    );
  });

  it('copies from the build everything weftd, weft and `weft cni install` read at run time, all of which make produces here', () => {
    // What the build stages hand over exists in this checkout after make.
    for (const copy of runtime.copies.filter((c) => c.from)) {
      const from = stages.find((s) => s.name === copy.from);
      assert.ok(from, `COPY --from=${copy.from} names a stage`);
      for (const src of copy.sources) {
        const rel = path.posix.relative(from.workdir, src);
        assert.ok(!rel.startsWith('..'), `${src} is in stage ${copy.from}'s checkout (${from.workdir})`);
        assert.ok(fs.existsSync(path.join(REPO, rel)), `${rel} exists after make (COPY --from=${copy.from} ${src})`);
      }
    }
    for (const copy of runtime.copies.filter((c) => !c.from)) {
      for (const src of copy.sources) assert.ok(fs.existsSync(path.join(REPO, src)), `${src} is in the build context`);
    }
    // The files the code finds relative to itself, at the same place under the image's root.
    const root = runtime.workdir;
    const scriptOf = (bin: string) =>
      /"\$here\/\.\.\/(build\/js\/[^"]+\.js)"/.exec(fs.readFileSync(path.join(REPO, bin), 'utf8'))![1]!;
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
      type: string;
      dependencies: Record<string, string>;
    };
    assert.equal(pkg.type, 'module', 'package.json makes build/js ES modules, so the image needs it');
    const needed = [
      'package.json',
      'bin/weftd',
      'bin/weft',
      scriptOf('bin/weftd'),
      scriptOf('bin/weft'),
      ...fs
        .readdirSync(path.join(REPO, 'bpf'))
        .filter((f) => f.endsWith('.c'))
        .map((f) => `build/bpf/${f.replace(/\.c$/, '.o')}`),
      `build/bin/${PLUGIN_NAME}`,
      `deploy/cni/${CONFLIST_NAME}`,
      ...Object.keys(pkg.dependencies).map((d) => `node_modules/${d}/package.json`),
    ];
    for (const rel of needed) {
      assert.equal(repoPathOf(stages, path.posix.join(root, rel)), rel, `the image has ${path.posix.join(root, rel)}`);
      assert.ok(fs.existsSync(path.join(REPO, rel)), `${rel} exists in this checkout after make`);
    }
    assert.deepEqual(
      runtime.entrypoint?.map((p) => repoPathOf(stages, p)),
      ['bin/weftd'],
      'ENTRYPOINT is weftd',
    );
    assert.ok(
      runtime.env.get('PATH')?.split(':').includes(path.posix.join(root, 'bin')),
      'weft is on PATH for kubectl exec',
    );
  });

  it('keeps local builds and installs out of the build context', () => {
    const ignored = fs
      .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const p of ['node_modules', 'build', '.tools', '.run', '.git'])
      assert.ok(ignored.includes(p), `.dockerignore has ${p}`);
  });
});
