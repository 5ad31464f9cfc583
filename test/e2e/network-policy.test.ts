// NetworkPolicy (networking.k8s.io/v1) enforced by the real datapath, checked the way the
// upstream conformance tests and cyclonus check a CNI: nine pods in three namespaces, each
// serving TCP and UDP on ports 80 and 81; for each case a set of policies is applied, every
// ordered pod pair is probed on every port and protocol at once, and what got through is
// compared with a reference model of the spec (test/harness/policy-reference.ts). A mismatch
// prints truth tables (rows: from, columns: to) and fails. Then behaviour around the tables:
// changes and established connections, a killed agent, refused policies.
//
// Every pod is made by the CNI plugin as a runtime would (sandbox namespaces, CNI_ARGS naming
// the pod), and described to the agent by Pod and Namespace manifests, as the API would.
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { PolicyStatus } from '../../src/contract/agent-api.js';
import { AgentProcess, REPO, WEFT } from '../harness/agent.js';
import { addCniPod, Sandboxes, type Sandbox } from '../harness/cni.js';
import * as ref from '../harness/policy-reference.js';
import { World } from '../harness/world.js';

const exec = promisify(execFile);
const FIXTURES = path.join(REPO, 'build/js/test/fixtures');
const PODS4 = '10.244.0.0/24';
const PODS6 = 'fd00:10:244::/64';
/** The backend's HTTP port: only the held-connection test uses it, the matrix never does. */
const HOLD_PORT = 8080;
/** A first probe's bound; a cell that disagrees with the model is probed again with RETRY_MS. */
const PROBE_MS = 1000;
const RETRY_MS = 2500;
const APPLY_MS = 10_000;

// ---- the cluster: 3 namespaces × 3 pods ----

const NAMESPACES: Record<string, ref.Labels> = {
  x: { ns: 'x', team: 'blue' },
  y: { ns: 'y', team: 'red' },
  z: { ns: 'z' }, // no team label: for DoesNotExist
};
const POD_LABELS: Record<string, ref.Labels> = {
  a: { pod: 'a', tier: 'front', app: 'demo' },
  b: { pod: 'b', tier: 'back', app: 'demo' },
  c: { pod: 'c', app: 'demo' }, // no tier label: for Exists / DoesNotExist
};

/** Every pod serves TCP and UDP 80 and 81. Port names differ between pods on purpose: "http"
 *  is TCP 80 on the a and b pods but TCP 81 on the c pods, so a named port must be resolved
 *  against the destination pod. */
function containerPorts(letter: string): ref.ContainerPort[] {
  const http = letter === 'c' ? 81 : 80;
  const other = http === 80 ? 81 : 80;
  return [
    { name: 'http', containerPort: http, protocol: 'TCP' },
    { name: `serve-${other}-tcp`, containerPort: other, protocol: 'TCP' },
    { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
    { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' },
    { name: 'hold', containerPort: HOLD_PORT, protocol: 'TCP' },
  ];
}

interface ClusterPod {
  namespace: string;
  name: string;
  /** "ns/name", also what its backend answers. */
  key: string;
  labels: ref.Labels;
  box: Sandbox;
  ipv4: string;
  ipv6: string;
}

type Proto = 'tcp' | 'udp';
const PORTS: { port: number; protocol: Proto }[] = [
  { port: 80, protocol: 'tcp' },
  { port: 81, protocol: 'tcp' },
  { port: 80, protocol: 'udp' },
  { port: 81, protocol: 'udp' },
];

let world: World;
let agent: AgentProcess;
let pods: ClusterPod[] = [];
let cluster: ref.Model;

const pod = (key: string) => pods.find((p) => p.key === key) ?? assert.fail(`no pod ${key}`);

function namespaceManifest(name: string): object {
  // The API server adds kubernetes.io/metadata.name to every namespace; so do we, as a
  // manifest read back from the API would carry it.
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { ...NAMESPACES[name], 'kubernetes.io/metadata.name': name } },
  };
}

function podManifest(namespace: string, name: string, ips?: { ipv4: string; ipv6: string }): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace, name, labels: POD_LABELS[name] },
    spec: {
      nodeName: 'test-node',
      containers: [{ name: 'app', image: 'weft-test/backend', ports: containerPorts(name) }],
    },
    ...(ips && { status: { phase: 'Running', podIP: ips.ipv4, podIPs: [{ ip: ips.ipv4 }, { ip: ips.ipv6 }] } }),
  };
}

/** CNI ADD for one pod's sandbox, as the kubelet's runtime would call it. */
async function addPod(namespace: string, name: string, box: Sandbox): Promise<ClusterPod> {
  const { ipv4, ipv6 } = await addCniPod(world, agent.socket, namespace, name, box);
  assert.ok(ipv6, `${namespace}/${name} got both families`);
  return { namespace, name, key: `${namespace}/${name}`, labels: POD_LABELS[name]!, box, ipv4, ipv6 };
}

/** The backend fixture in a pod, in the world's cgroup like every other process of a pod. */
async function startBackend(p: ClusterPod): Promise<void> {
  const argv = [
    process.execPath,
    path.join(FIXTURES, 'backend.js'),
    '--name',
    p.key,
    '--tcp',
    '80',
    '--tcp',
    '81',
    '--udp',
    '80',
    '--udp',
    '81',
    '--http',
    String(HOLD_PORT),
  ];
  const child = world.spawn(p.box.where, argv, { inCgroup: true });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`backend in ${p.key} did not start: ${out}`)), 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`backend in ${p.key} exited ${code}: ${out}`)));
  });
}

before(async () => {
  world = World.create();
  const boxes = new Sandboxes(world);
  agent = new AgentProcess(world, { where: 'node', extraArgs: ['--pod-cidr', `${PODS4},${PODS6}`] });
  await agent.start();
  const names = Object.keys(NAMESPACES).flatMap((ns) => Object.keys(POD_LABELS).map((name) => ({ ns, name })));
  // As in a cluster: the namespaces and pods exist before their sandboxes, and the pods'
  // addresses show in their status once the runtime has set them up.
  agent.writeManifest('namespaces.yaml', Object.keys(NAMESPACES).map(namespaceManifest));
  agent.writeManifest(
    'pods.yaml',
    names.map(({ ns, name }) => podManifest(ns, name)),
  );
  const sandboxes = names.map(() => boxes.add());
  pods = await Promise.all(names.map(({ ns, name }, i) => addPod(ns, name, sandboxes[i]!)));
  agent.writeManifest(
    'pods.yaml',
    pods.map((p) => podManifest(p.namespace, p.name, p)),
  );
  await Promise.all(pods.map(startBackend));
  cluster = ref.buildModel({
    namespaces: NAMESPACES,
    pods: pods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      labels: p.labels,
      ips: [p.ipv4, p.ipv6],
      ports: containerPorts(p.name),
    })),
    policies: [],
  });
});

after(async () => {
  await agent?.stop();
  await world?.dispose();
});

// ---- policies and waiting for them ----

function np(namespace: string, name: string, spec: ref.NetworkPolicy['spec']): ref.NetworkPolicy {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name }, spec };
}

const sel = (matchLabels: ref.Labels): ref.LabelSelector => ({ matchLabels });
const policyKey = (p: ref.NetworkPolicy) => `${p.metadata.namespace}/${p.metadata.name}`;

/** Polls GET /v1/policy until the agent has exactly `expected` in force (and, with
 *  `afterRevision`, a newer revision: an edit that keeps the names) and every pod has a
 *  resolved identity; returns that answer. Returns undefined when the agent has no policy API
 *  at all and `optional`. */
async function waitForPolicies(
  expected: string[],
  opts: { afterRevision?: number; optional?: boolean } = {},
): Promise<PolicyStatus | undefined> {
  const want = [...expected].sort();
  const deadline = Date.now() + APPLY_MS;
  let last: PolicyStatus | string = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const view = await agent.get<PolicyStatus>('/v1/policy');
      last = view;
      if (applied(view, want, opts.afterRevision)) return view;
    } catch (err) {
      const msg = (err as Error).message;
      // The agent before NetworkPolicy support: only a case with no policy can go on without it.
      if (opts.optional && want.length === 0 && /no such endpoint/.test(msg)) return undefined;
      last = msg;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(
    `the agent did not put ${JSON.stringify(want)} in force within ${APPLY_MS} ms; last answer: ${JSON.stringify(last, null, 1)}\nagent log (end):\n${agent.log.slice(-4000)}`,
  );
}

function applied(view: PolicyStatus, want: string[], afterRevision: number | undefined): boolean {
  if (afterRevision !== undefined && !(view.revision > afterRevision)) return false;
  if (JSON.stringify(view.policies) !== JSON.stringify(want)) return false;
  // Every pod of the cluster is known by name and has a resolved identity (≥ 256).
  return pods.every((p) => view.endpoints.some((e) => e.pod === p.key && e.identity >= 256));
}

async function policyRevision(): Promise<number> {
  return (await agent.get<PolicyStatus>('/v1/policy')).revision;
}

/** Which file holds the policies now in force (one file per case, replaced as a whole). */
let currentFile: string | undefined;

function writePolicies(file: string, policies: ref.NetworkPolicy[]): void {
  if (currentFile && currentFile !== file) agent.removeManifest(currentFile);
  if (policies.length > 0) agent.writeManifest(file, policies);
  else agent.removeManifest(file);
  currentFile = policies.length > 0 ? file : undefined;
}

// ---- probing the matrix ----

interface Cell {
  from: ClusterPod;
  to: ClusterPod;
  port: number;
  protocol: Proto;
}

interface CellResult extends Cell {
  expected: boolean;
  observed: boolean;
  /** Why a probe failed (TIMEOUT, ECONNREFUSED, ...), for the report. */
  why?: string;
}

const targetKey = (ip: string, port: number, protocol: Proto) =>
  `${ip.includes(':') ? `[${ip}]` : ip}:${port}/${protocol}`;
const ipOf = (p: ClusterPod, family: ref.Family) => (family === 6 ? p.ipv6 : p.ipv4);
const upper = (p: Proto) => p.toUpperCase() as ref.Protocol;

/** Every ordered pair of different pods on every port: a pod's traffic to itself never crosses
 *  the datapath, so it is left out. */
function allCells(): Cell[] {
  return pods.flatMap((from) =>
    pods.filter((to) => to !== from).flatMap((to) => PORTS.map((p) => ({ from, to, ...p }))),
  );
}

/** Probes the cells from one source pod in one process, all at once. */
async function probeFrom(
  from: ClusterPod,
  cells: Cell[],
  family: ref.Family,
  timeoutMs: number,
): Promise<Map<string, { ok: boolean; why?: string }>> {
  const targets = cells.map((c) => ({ ip: ipOf(c.to, family), port: c.port, protocol: c.protocol, name: c.to.key }));
  const r = await world.run(
    from.box.where,
    [
      process.execPath,
      path.join(FIXTURES, 'policy-probe.js'),
      '--timeout-ms',
      String(timeoutMs),
      '--targets',
      JSON.stringify(targets),
    ],
    {
      inCgroup: true,
      timeoutMs: timeoutMs + 15_000,
    },
  );
  assert.equal(r.code, 0, `probe from ${from.key} failed (${r.code}, timed out: ${r.timedOut}): ${r.stderr}`);
  const ok = JSON.parse(r.stdout) as Record<string, boolean>;
  const why = failureReasons(r.stderr);
  const keys = targets.map((t) => targetKey(t.ip, t.port, t.protocol));
  return new Map(keys.map((k) => [k, { ok: ok[k] === true, ...(why[k] && { why: why[k] }) }]));
}

/** The probe's last stderr line says why each failed target failed; anything else there is noise. */
function failureReasons(stderr: string): Record<string, string> {
  try {
    return JSON.parse(stderr.trim().split('\n').at(-1) || '{}') as Record<string, string>;
  } catch {
    return {};
  }
}

/** Probes cells: one process per source pod, every source at once. */
async function probeCells(
  cells: Cell[],
  family: ref.Family,
  timeoutMs: number,
): Promise<Map<Cell, { ok: boolean; why?: string }>> {
  const sources = [...new Set(cells.map((c) => c.from))];
  const answers = await Promise.all(
    sources.map((s) =>
      probeFrom(
        s,
        cells.filter((c) => c.from === s),
        family,
        timeoutMs,
      ),
    ),
  );
  const out = new Map<Cell, { ok: boolean; why?: string }>();
  for (const c of cells)
    out.set(c, answers[sources.indexOf(c.from)]!.get(targetKey(ipOf(c.to, family), c.port, c.protocol))!);
  return out;
}

/** The whole matrix against the model. A cell that disagrees is probed once more (as cyclonus
 *  does) before it counts, so a lost first packet is not reported as a policy bug. */
async function checkMatrix(model: ref.Model, family: ref.Family): Promise<CellResult[]> {
  const cells = allCells();
  const expected = new Map(cells.map((c) => [c, ref.allowed(model, c.from, c.to, c.port, upper(c.protocol), family)]));
  const first = await probeCells(cells, family, PROBE_MS);
  const disagree = cells.filter((c) => first.get(c)!.ok !== expected.get(c));
  const second =
    disagree.length > 0 ? await probeCells(disagree, family, RETRY_MS) : new Map<Cell, { ok: boolean; why?: string }>();
  return cells.map((c) => {
    const seen = second.get(c) ?? first.get(c)!;
    return { ...c, expected: expected.get(c)!, observed: seen.ok, ...(seen.why && { why: seen.why }) };
  });
}

/** Cyclonus-style truth tables, one per port and protocol: rows are sources, columns
 *  destinations; `.` connected, `X` blocked, `!` after a cell that differs from the model. */
function renderTables(results: CellResult[], family: ref.Family): string {
  const keys = pods.map((p) => p.key);
  const width = Math.max(...keys.map((k) => k.length)) + 2;
  const pad = (s: string) => s.padEnd(width);
  const blocks = PORTS.map(({ port, protocol }) => {
    const lines = [
      `${protocol.toUpperCase()}/${port} over IPv${family} (observed; . connected, X blocked, ! differs from the model)`,
      pad('') + keys.map(pad).join(''),
    ];
    for (const from of keys) {
      const row = keys.map((to) => {
        if (to === from) return pad('-');
        const r = results.find(
          (x) => x.from.key === from && x.to.key === to && x.port === port && x.protocol === protocol,
        )!;
        return pad(`${r.observed ? '.' : 'X'}${r.observed === r.expected ? '' : '!'}`);
      });
      lines.push(pad(from) + row.join(''));
    }
    return lines.join('\n');
  });
  const wrong = results.filter((r) => r.observed !== r.expected);
  const details = wrong
    .slice(0, 30)
    .map(
      (r) =>
        `  ${r.from.key} -> ${r.to.key} ${r.protocol}/${r.port}: model ${r.expected ? 'allows' : 'denies'}, observed ${r.observed ? 'connected' : `blocked (${r.why ?? '?'})`}`,
    );
  if (wrong.length > details.length) details.push(`  ... and ${wrong.length - details.length} more`);
  return [...blocks, [`${wrong.length} mismatch(es), each probed twice:`, ...details].join('\n')].join('\n\n');
}

// ---- weft explain ----

interface Explained {
  verdict: 'ALLOW' | 'DENY';
  policy: string | null;
  rule: string;
  direction: 'ingress' | 'egress';
}

async function explain(c: Cell): Promise<Explained> {
  const args = [
    'explain',
    '--from',
    c.from.key,
    '--to',
    c.to.key,
    '--port',
    `${c.port}/${upper(c.protocol)}`,
    '-o',
    'json',
  ];
  try {
    const r = await exec(WEFT, args, {
      env: { ...process.env, WEFT_STATE_DIR: agent.stateDir, WEFT_BPF_ROOT: agent.bpfRoot },
      timeout: 30_000,
    });
    return JSON.parse(r.stdout) as Explained;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    assert.fail(`weft ${args.join(' ')} failed (${e.code}): ${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** A few cells worth explaining: some the model denies and some it allows past a policy. */
function cellsToExplain(model: ref.Model, salt: number): Cell[] {
  const cells = allCells();
  const rotated = [...cells.slice((salt * 37) % cells.length), ...cells.slice(0, (salt * 37) % cells.length)];
  const verdict = (c: Cell) => ref.decide(model, c.from, c.to, c.port, upper(c.protocol));
  const denied = rotated.filter((c) => !verdict(c).allowed);
  const allowedPastPolicy = rotated.filter(
    (c) => verdict(c).allowed && (verdict(c).ingress.isolated || verdict(c).egress.isolated),
  );
  const open = rotated.filter((c) => verdict(c).allowed);
  return [...denied.slice(0, 2), ...(allowedPastPolicy.length ? allowedPastPolicy : open).slice(0, 2)];
}

/** weft explain must give the model's verdict; for a denial that only one end makes, it must
 *  name that end's direction. */
async function checkExplain(model: ref.Model, salt: number): Promise<void> {
  const cells = cellsToExplain(model, salt);
  const answers = await Promise.all(cells.map(explain));
  cells.forEach((c, i) => {
    const want = ref.decide(model, c.from, c.to, c.port, upper(c.protocol));
    const got = answers[i]!;
    const what = `weft explain ${c.from.key} -> ${c.to.key} ${c.port}/${upper(c.protocol)}: ${JSON.stringify(got)}`;
    assert.equal(got.verdict, want.allowed ? 'ALLOW' : 'DENY', what);
    if (!want.allowed && want.ingress.allowed !== want.egress.allowed)
      assert.equal(got.direction, want.ingress.allowed ? 'egress' : 'ingress', what);
  });
}

// ---- a case ----

let salt = 0;

/** Puts `policies` in force from `file`, waits until the agent says so, and checks that it
 *  reports each pod isolated exactly where the model isolates it. Returns false when the agent
 *  has no policy API (only tolerated for an empty set: the baseline before issue 5). */
async function applyPolicies(
  file: string,
  policies: ref.NetworkPolicy[],
  opts: { afterRevision?: number } = {},
): Promise<boolean> {
  writePolicies(file, policies);
  const view = await waitForPolicies(policies.map(policyKey), { optional: true, ...opts });
  if (view) expectIsolation(view, ref.withPolicies(cluster, policies));
  return view !== undefined;
}

function expectIsolation(view: PolicyStatus, model: ref.Model): void {
  const word = (isolated: boolean) => (isolated ? 'isolated' : 'open');
  const got = pods.map((p) => {
    const e = view.endpoints.find((x) => x.pod === p.key)!;
    return `${p.key} ingress ${e.ingress} egress ${e.egress}`;
  });
  const want = pods.map((p) => {
    const iso = ref.isolation(model, p);
    return `${p.key} ingress ${word(iso.ingress)} egress ${word(iso.egress)}`;
  });
  assert.deepEqual(got, want, 'GET /v1/policy: which pods are isolated, and for which direction');
}

/** Probes the matrix and compares it with the model of `policies`; then asks weft explain
 *  about a few cells (IPv4 only: explain names pods, not addresses). */
async function expectEnforced(
  policies: ref.NetworkPolicy[],
  opts: { family?: ref.Family; explain?: boolean } = {},
): Promise<void> {
  const family = opts.family ?? 4;
  const model = ref.withPolicies(cluster, policies);
  const results = await checkMatrix(model, family);
  if (results.some((r) => r.observed !== r.expected)) {
    const view = JSON.stringify(await agent.get('/v1/policy').catch((e: Error) => e.message));
    assert.fail(
      `the datapath disagrees with the NetworkPolicy model:\n\n${renderTables(results, family)}\n\npolicies: ${JSON.stringify(policies)}\n\nGET /v1/policy: ${view}`,
    );
  }
  if (opts.explain !== false && family === 4) await checkExplain(model, ++salt);
}

/** A case: apply, wait, probe, compare, explain. */
async function expectMatrix(
  file: string,
  policies: ref.NetworkPolicy[],
  opts: { family?: ref.Family; afterRevision?: number } = {},
): Promise<void> {
  const policyApi = await applyPolicies(
    file,
    policies,
    opts.afterRevision !== undefined ? { afterRevision: opts.afterRevision } : {},
  );
  await expectEnforced(policies, { family: opts.family ?? 4, explain: policyApi });
}

// ---- the truth tables ----

interface Case {
  title: string;
  family?: ref.Family;
  policies: () => ref.NetworkPolicy[];
}

const CASES: Case[] = [
  { title: 'no policy: every pod reaches every pod on every port', policies: () => [] },
  {
    title: 'default deny ingress in one namespace: x accepts nothing, x still sends, y and z stay open',
    policies: () => [np('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })],
  },
  {
    title: 'podSelector alone allows pods of the same namespace only',
    policies: () => [
      np('x', 'deny-ingress', { podSelector: {} }),
      np('x', 'a-from-b', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }],
      }),
    ],
  },
  {
    title: 'namespaceSelector alone allows every pod of the matching namespaces',
    policies: () => [
      np('x', 'a-from-red', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ namespaceSelector: sel({ team: 'red' }) }] }],
      }),
    ],
  },
  {
    title: 'podSelector and namespaceSelector in one peer: matching pods in matching namespaces',
    policies: () => [
      np('x', 'a-from-red-b', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ namespaceSelector: sel({ team: 'red' }), podSelector: sel({ pod: 'b' }) }] }],
      }),
    ],
  },
  {
    title: 'the same two selectors as separate peers: either one',
    policies: () => [
      np('x', 'a-from-red-or-b', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ namespaceSelector: sel({ team: 'red' }) }, { podSelector: sel({ pod: 'b' }) }] }],
      }),
    ],
  },
  {
    title: 'matchExpressions In and NotIn',
    policies: () => [
      np('y', 'tiered-not-from-z', {
        podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] },
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['z'] }] },
                podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['a'] }] },
              },
            ],
          },
        ],
      }),
    ],
  },
  {
    title: 'matchExpressions Exists and DoesNotExist',
    policies: () => [
      np('z', 'tiered-from-untiered', {
        podSelector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
        ingress: [
          {
            from: [
              { namespaceSelector: {}, podSelector: { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] } },
              { namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] } },
            ],
          },
        ],
      }),
    ],
  },
  {
    title: 'ipBlock with except over IPv4, for ingress and egress (pod addresses count)',
    policies: () => [
      np('x', 'a-from-cidr', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/16', except: [`${pod('y/b').ipv4}/32`] } }] }],
      }),
      np('y', 'c-to-cidr', {
        podSelector: sel({ pod: 'c' }),
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: PODS4, except: [`${pod('x/c').ipv4}/32`] } }] }],
      }),
    ],
  },
  {
    title: 'ipBlock with except over IPv6; an IPv4 block admits no IPv6 peer',
    family: 6,
    policies: () => [
      np('x', 'a-from-cidr6', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ ipBlock: { cidr: PODS6, except: [`${pod('y/b').ipv6}/128`] } }] }],
      }),
      np('x', 'b-from-cidr4', {
        podSelector: sel({ pod: 'b' }),
        ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/16' } }] }],
      }),
    ],
  },
  {
    title: 'named ports in ingress rules, resolved on each selected pod ("http" is 80 on a and b, 81 on c)',
    policies: () => [
      np('x', 'http-by-name', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }),
      np('y', 'udp-81-by-name', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 'serve-81-udp' }] }] }),
    ],
  },
  {
    title: 'named ports in egress rules, resolved on each destination pod',
    policies: () => [
      np('z', 'a-egress-http', {
        podSelector: sel({ pod: 'a' }),
        policyTypes: ['Egress'],
        egress: [{ ports: [{ port: 'http' }] }],
      }),
    ],
  },
  {
    title: 'a port range with endPort against a single port; TCP against UDP',
    policies: () => [
      np('x', 'a-tcp-80-81', { podSelector: sel({ pod: 'a' }), ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }),
      np('x', 'b-tcp-80', { podSelector: sel({ pod: 'b' }), ingress: [{ ports: [{ port: 80 }] }] }),
      np('x', 'c-udp-any', { podSelector: sel({ pod: 'c' }), ingress: [{ ports: [{ protocol: 'UDP' }] }] }),
      np('y', 'udp-80-81', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 80, endPort: 81 }] }] }),
    ],
  },
  {
    title: 'egress rules; with policyTypes left out, the same policy isolates ingress too',
    policies: () => [
      np('x', 'a-egress-red-80', {
        podSelector: sel({ pod: 'a' }),
        egress: [{ to: [{ namespaceSelector: sel({ team: 'red' }) }], ports: [{ port: 80 }] }],
      }),
    ],
  },
  {
    title: 'policyTypes [Egress] only: its ingress rules are ignored',
    policies: () => [
      np('y', 'b-egress-only', {
        podSelector: sel({ pod: 'b' }),
        policyTypes: ['Egress'],
        ingress: [{ from: [{ podSelector: sel({ pod: 'nobody' }) }] }],
        egress: [{ to: [{ podSelector: {} }] }],
      }),
    ],
  },
  {
    title:
      'policyTypes [Ingress, Egress] with no egress rules denies all egress; an ingress rule {} admits all, and replies flow',
    policies: () => [
      np('z', 'c-no-egress', { podSelector: sel({ pod: 'c' }), policyTypes: ['Ingress', 'Egress'], ingress: [{}] }),
    ],
  },
  {
    title: 'two policies selecting the same pod add up',
    policies: () => [
      np('x', 'a-from-b', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }],
      }),
      np('x', 'front-from-z', {
        podSelector: sel({ tier: 'front' }),
        ingress: [{ from: [{ namespaceSelector: sel({ 'kubernetes.io/metadata.name': 'z' }) }] }],
      }),
    ],
  },
  {
    title: 'only selected pods are isolated: the rest of the namespace stays open',
    policies: () => [np('y', 'a-deny', { podSelector: sel({ pod: 'a' }) })],
  },
  {
    title: 'an ingress rule {} beside a default deny allows everything',
    policies: () => [
      np('x', 'deny-ingress', { podSelector: {} }),
      np('x', 'allow-all', { podSelector: {}, ingress: [{}] }),
    ],
  },
  {
    title: 'both ends must allow: egress allowed but ingress denied, and the reverse',
    policies: () => [
      np('x', 'a-egress-to-y', {
        podSelector: sel({ pod: 'a' }),
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: sel({ ns: 'y' }) }] }],
      }),
      np('y', 'from-z-and-x-a', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: sel({ ns: 'z' }) }] }] }),
    ],
  },
];

/** Gives a case's policies names of their own, so the wait can tell this case's set from the last. */
function named(policies: ref.NetworkPolicy[], n: number): ref.NetworkPolicy[] {
  return policies.map((p) => ({ ...p, metadata: { ...p.metadata, name: `${p.metadata.name}-c${n}` } }));
}

describe('NetworkPolicy truth tables', () => {
  CASES.forEach((c, i) => {
    it(`${String(i + 1).padStart(2, '0')} ${c.title}`, async () => {
      await expectMatrix(`policy-case-${i + 1}.yaml`, named(c.policies(), i + 1), { family: c.family ?? 4 });
    });
  });
});

// ---- behaviour ----

/** A long-lived TCP connection from a pod (the probe fixture's hold mode). */
class HeldConnection {
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];

  private constructor(private readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }

  static async open(from: ClusterPod, to: ClusterPod): Promise<HeldConnection> {
    const child = world.spawn(
      from.box.where,
      [process.execPath, path.join(FIXTURES, 'policy-probe.js'), '--hold', `${to.ipv4}:${HOLD_PORT}`],
      { inCgroup: true, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const held = new HeldConnection(child);
    assert.deepEqual(await held.next(), { connected: true });
    return held;
  }

  /** The next line the client prints, bounded. */
  private next(): Promise<unknown> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the held connection printed nothing within 10 s')), 10_000);
      this.waiters.push((l) => {
        clearTimeout(timer);
        resolve(JSON.parse(l));
      });
    });
  }

  /** Sends one request over the same connection; resolves with the client's report. */
  async exchange(): Promise<unknown> {
    this.child.stdin!.write('\n');
    return this.next();
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

describe('policy changes', () => {
  it('an edit and a deletion apply to new connections; a connection opened while allowed keeps working', async () => {
    const [xa, xb] = [pod('x/a'), pod('x/b')];
    const fromB = np('x', 'a-ingress-live', {
      podSelector: sel({ pod: 'a' }),
      ingress: [{ from: [{ podSelector: sel({ pod: 'b' }) }] }],
    });
    await expectMatrix('policy-live.yaml', [fromB]);
    const held = await HeldConnection.open(xb, xa);
    try {
      const answer = { n: 1, answer: 'x/a' };
      assert.deepEqual(await held.exchange(), answer);

      // The same policy, edited: x/a now admits x/c and no longer x/b. New connections from
      // x/b are refused (the matrix shows it); the one x/b opened before goes on.
      const fromC = np('x', 'a-ingress-live', {
        podSelector: sel({ pod: 'a' }),
        ingress: [{ from: [{ podSelector: sel({ pod: 'c' }) }] }],
      });
      await expectMatrix('policy-live.yaml', [fromC], { afterRevision: await policyRevision() });
      assert.deepEqual(await held.exchange(), { ...answer, n: 2 }, 'the established connection still carries data');

      await expectMatrix('policy-live.yaml', []);
      assert.deepEqual(await held.exchange(), { ...answer, n: 3 });
    } finally {
      held.close();
    }
  });
});

describe('refused policies', () => {
  const PROBLEMS: [string, string][] = [
    ['bad-operator', 'spec.podSelector.matchExpressions[0].operator'],
    ['long-port-name', 'spec.ingress[0].ports[0].port'],
    ['bad-cidr', 'spec.ingress[0].from[0].ipBlock.cidr'],
    ['only-from-y', 'spec.ingress[0].from[0].ipBlock.cidr'],
  ];

  after(() => agent.removeManifest('policy-invalid.yaml')); // also when the test failed

  it('are reported with the field named, and the policies in force stay enforced', async () => {
    const good = np('x', 'only-from-y', {
      podSelector: {},
      ingress: [{ from: [{ namespaceSelector: sel({ ns: 'y' }) }] }],
    });
    await expectMatrix('policy-valid.yaml', [good]);

    // Three new policies that would isolate z if they were taken, and an edit that would
    // break the policy in force: all refused, so the matrix must not move.
    agent.writeManifest('policy-invalid.yaml', [
      np('z', 'bad-operator', {
        podSelector: { matchExpressions: [{ key: 'pod', operator: 'Equals', values: ['a'] }] },
      }),
      np('z', 'long-port-name', { podSelector: {}, ingress: [{ ports: [{ port: 'a-very-long-port-name' }] }] }),
      np('z', 'bad-cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.300/24' } }] }] }),
    ]);
    agent.writeManifest('policy-valid.yaml', [
      np('x', 'only-from-y', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'not-a-cidr' } }] }] }),
    ]);
    await waitForProblems(PROBLEMS);
    for (const [, field] of PROBLEMS) assert.ok(agent.log.includes(field), `the agent log names ${field}`);

    const view = await agent.get<PolicyStatus>('/v1/policy');
    assert.deepEqual(view.policies, ['x/only-from-y']);
    await expectEnforced([good]);

    // Fixed: the problems go away, and the policy is the one in force.
    agent.removeManifest('policy-invalid.yaml');
    agent.writeManifest('policy-valid.yaml', [good]);
    await waitForProblems([]);
    assert.deepEqual((await agent.get<PolicyStatus>('/v1/policy')).policies, ['x/only-from-y']);
  });
});

type Problem = { file: string; object?: string; errors: string[] };

/** Polls /v1/status until the problems about NetworkPolicies are exactly the (object name,
 *  field) pairs wanted: none, when `want` is empty. */
async function waitForProblems(want: [string, string][]): Promise<void> {
  const deadline = Date.now() + APPLY_MS;
  let problems: Problem[] = [];
  while (Date.now() < deadline) {
    problems = (await agent.get<{ problems: Problem[] }>('/v1/status')).problems.filter((p) =>
      p.object?.includes('NetworkPolicy'),
    );
    const found = (name: string, field: string) =>
      problems.some((p) => p.object?.includes(name) && p.errors.some((e) => e.startsWith(`${field}: `)));
    if (problems.length === want.length && want.every(([name, field]) => found(name, field))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`/v1/status never listed ${JSON.stringify(want)}; problems: ${JSON.stringify(problems, null, 1)}`);
}

describe('a killed agent', () => {
  it('leaves the policy in force enforced while it is down, and a restarted agent enforces it still', async () => {
    const policies = [
      np('x', 'deny-ingress-kill', { podSelector: {} }),
      np('x', 'a-from-red-kill', {
        podSelector: sel({ pod: 'a' }),
        ingress: [
          { from: [{ namespaceSelector: sel({ team: 'red' }) }], ports: [{ port: 80 }, { protocol: 'UDP', port: 81 }] },
        ],
      }),
    ];
    await expectMatrix('policy-kill.yaml', policies);
    await agent.stop('SIGKILL');
    await expectEnforced(policies, { explain: false }); // the kernel alone, nobody to ask
    const logFrom = agent.log.length;
    await agent.start();
    const view = (await waitForPolicies(policies.map(policyKey)))!;
    expectIsolation(view, ref.withPolicies(cluster, policies));
    // The restarted agent found the kernel holding exactly what it compiled: it changed
    // nothing, so there was no moment with less protection than before.
    assert.deepEqual(
      { written: view.lastWrite?.written, deleted: view.lastWrite?.deleted },
      { written: 0, deleted: 0 },
      JSON.stringify(view.lastWrite),
    );
    assert.doesNotMatch(agent.log.slice(logFrom), /msg="policy synced"/, 'no policy write at all since the restart');
    await expectEnforced(policies);
  });
});
