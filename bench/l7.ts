// L7 proxies in `make bench` (issue 7): what one HTTP/2 proxy hop costs, for weft-proxy and for
// the proxies it is measured against, side by side in one run.
//
// One world (test/harness/world.ts): a fresh network namespace, everything on its loopback,
// every process in the world's cgroup (so nothing outlives the run). h2load (nghttp2-client)
// sends HTTP/2 cleartext (prior knowledge) requests for a 1 kB response along each path:
//
//   direct        h2load → backend
//   weft-proxy    h2load → bin/weft-proxy (configured over its admin socket) → backend
//   haproxy       h2load → HAProxy (mode http, h2c both sides) → backend
//   nginx         h2load → nginx (http2 listener, HTTP/1.1 keepalive upstream) → backend
//   haproxy-2hop  h2load → HAProxy → HAProxy → backend (a sidecar mesh's two hops)
//
// The backend is nginx (one worker per server CPU, `return 200` with 1,024 bytes from memory,
// h2c and HTTP/1.1 listeners). nginx cannot proxy plain HTTP to an upstream over HTTP/2 (only
// grpc_pass speaks HTTP/2 upstream), so the nginx path uses the usual HTTP/1.1 keepalive pool.
//
// For each path, runs interleaved round robin (rotating start):
//   - saturation: `h2load -c 10 -m 10 -D s` → requests/s; the proxy's RSS (VmRSS summed over its
//     processes, sampled every 100 ms) and CPU time per request meanwhile;
//   - fixed rate: `h2load -c 10 -m 1 --rps 100 -D s --log-file` (1,000 requests/s) → p50, p99
//     from the per-request log; added latency = the path's median p50 (p99) − direct's.
// Then, once per proxy, idle connections: bench/idle-h2-client.ts opens N connections with one
// request each and holds them; what the proxy's memory grew by, per connection (a node's proxy
// holds every pod's pooled connections, most of them idle at any time).
// A path whose requests fail (errors, non-2xx, a body that is not 1,024 bytes) is FAILED. Each run
// records the CPU that processes outside the world used meanwhile, so a disturbed run shows.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiRequest } from '../src/lib/unix-http.js';
import { validateSnapshot, type ProxySnapshot } from '../src/contract/proxy-snapshot.js';
import { World } from '../test/harness/world.js';
import { watch, type Proc } from './topology.js';
import { spread, type Spread } from './spread.js';

export type L7PathName = 'direct' | 'weft-proxy' | 'haproxy' | 'nginx' | 'haproxy-2hop';
export const L7_PATHS: L7PathName[] = ['direct', 'weft-proxy', 'haproxy', 'nginx', 'haproxy-2hop'];

export interface L7BenchOptions {
  paths: L7PathName[];
  runs: number;
  /** Seconds of one saturation run, and of one fixed-rate run (each after WARMUP_S). */
  satSeconds: number;
  rateSeconds: number;
  /** Requests a second of the fixed-rate runs, over all connections. */
  rate: number;
  clients: number;
  /** Concurrent streams per connection at saturation (the fixed rate uses 1). */
  streams: number;
  /** CPU lists for taskset ('' = no pinning). */
  clientCpus: string;
  serverCpus: string;
  proxyCpus: string;
  /** Idle connections to hold open against each proxy (0: not measured). */
  idleConnections: number;
  /** The weft-proxy program, and extra arguments for it. */
  weftProxy: string;
  weftProxyArgs: string[];
  log: (m: string) => void;
  register: (w: World) => void;
}

export interface L7SatRun {
  rps: number;
  requests: number;
  /** The proxy's RSS during the run (all its processes summed; max of the samples), MB. */
  rssMb?: number;
  /** The largest single process of the proxy during the run, MB. */
  rssProcessMb?: number;
  /** The largest anonymous (RssAnon) part of one process of the proxy during the run, MB. */
  anonProcessMb?: number;
  processes?: number;
  /** The proxy's CPU time (all processes, all threads) per request over the measured part, µs. */
  cpuUsPerReq?: number;
  /** CPUs used by processes outside the bench's world meanwhile, plus stolen CPU (a VM's). */
  otherLoad: number;
  /** Of which stolen by the hypervisor. */
  steal: number;
}

export interface L7RateRun {
  requests: number;
  /** Requests a second the log shows (count / span of start times). */
  achievedRate: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
  cpuUsPerReq?: number;
  otherLoad: number;
  steal: number;
}

export interface L7Path {
  path: L7PathName;
  label: string;
  /** How the path is configured, in a line. */
  config: string;
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  satRuns: L7SatRun[];
  rateRuns: L7RateRun[];
  saturation?: { rps: Spread; rssMb?: Spread; rssProcessMb?: Spread; anonProcessMb?: Spread; cpuUsPerReq?: Spread };
  fixedRate?: { p50Us: Spread; p99Us: Spread; achievedRate: Spread; cpuUsPerReq?: Spread };
  /** Against the same run's direct path: median p50 (p99) − direct median p50 (p99), µs; and the
   *  median of the round-by-round differences (runs taken in the same round). */
  added?: { p50Us: number; p99Us: number; pairedP50Us: number; pairedP99Us: number };
  /** Saturation requests/s over HAProxy's (medians). */
  xHaproxy?: number;
  /** The proxy's RSS (its processes summed) once it answered the probe, before any load, MB. */
  idleRssMb?: number;
  /** Idle connections held open: what the proxy's processes grew by (VmRSS, RssAnon), per connection, kB. */
  idleConnections?: { count: number; rssKbPerConn: number; anonKbPerConn: number };
  warnings: string[];
}

export interface L7Result {
  status: 'ok' | 'unavailable' | 'failed';
  reason?: string;
  method: string;
  tools: Record<string, string>;
  backend: string;
  cpus: { client: string; server: string; proxy: string };
  config: {
    runs: number;
    satSeconds: number;
    rateSeconds: number;
    warmupSeconds: number;
    rate: number;
    clients: number;
    streams: number;
    bodyBytes: number;
  };
  paths: L7Path[];
}

const BODY_BYTES = 1024;
const WARMUP_S = 1;
const BACKEND_H2 = 8080;
const BACKEND_H1 = 8081;
const PORTS: Record<Exclude<L7PathName, 'direct'>, number> = {
  'weft-proxy': 10001,
  haproxy: 10002,
  nginx: 10003,
  'haproxy-2hop': 10004,
};
const HOP2_PORT = 10005;
const SAMPLE_MS = 100;
/** Other work on the machine (CPUs) above which a run is noted as disturbed. */
const OTHER_LOAD_NOTE = 0.1;

// ---------------------------------------------------------------------------------------------
// Statistics and /proc

function optSpread(xs: (number | undefined)[]): Spread | undefined {
  const v = xs.filter((x): x is number => x !== undefined);
  return v.length === xs.length && v.length > 0 ? spread(v) : undefined;
}

/** Nearest-rank percentile of sorted values. */
function pct(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function cpuCount(list: string): number {
  if (!list) return 1;
  let n = 0;
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return Math.max(1, n);
}

/** pid and all its descendants (from /proc/<pid>/stat's ppid). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** VmRSS, and of it RssAnon (the process's own memory; the rest is file-backed pages, for a
 *  Node process mostly the node binary's, shared with every other Node process), kB. */
function memKb(pid: number): { rss: number; anon: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const anon = /^RssAnon:\s+(\d+) kB/m.exec(status);
    return { rss: rss ? Number(rss[1]) : 0, anon: anon ? Number(anon[1]) : 0 };
  } catch {
    return { rss: 0, anon: 0 };
  }
}

const rssKb = (pid: number): number => memKb(pid).rss;

const memOf = (pids: number[]): { rss: number; anon: number } =>
  pids.map(memKb).reduce((a, m) => ({ rss: a.rss + m.rss, anon: a.anon + m.anon }), { rss: 0, anon: 0 });

const IDLE_CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'idle-h2-client.js');
/** Between the client's "ready" and the measure: responses and setup garbage settle. */
const IDLE_SETTLE_MS = 2000;

/** User + system CPU seconds of a process (all its threads). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** User + nice + system CPU seconds of the whole machine (interrupt time left out: the kernel
 *  charges softirq work, loopback traffic's included, to no cgroup), and steal: time a VM's
 *  CPUs were taken by the hypervisor for others. */
function machineCpuSeconds(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  return { busy: (Number(f[1]) + Number(f[2]) + Number(f[3])) / 100, steal: Number(f[8] ?? 0) / 100 };
}

function cgroupCpuSeconds(dir: string): number {
  const m = /^usage_usec (\d+)/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'));
  return m ? Number(m[1]) / 1e6 : 0;
}

/** CPU that processes outside the world (the bench's own process included) used while a run
 *  lasted, plus the CPU stolen by the hypervisor, in CPUs: other work on the machine that the
 *  run's numbers suffered from. */
function otherLoad(cgroupDir: string): { stop(): { other: number; steal: number } } {
  const t0 = performance.now();
  const m0 = machineCpuSeconds();
  const ours0 = cgroupCpuSeconds(cgroupDir);
  return {
    stop() {
      const secs = Math.max((performance.now() - t0) / 1000, 1e-3);
      const m = machineCpuSeconds();
      const steal = Math.max(0, m.steal - m0.steal) / secs;
      const outside = Math.max(0, m.busy - m0.busy - (cgroupCpuSeconds(cgroupDir) - ours0)) / secs;
      return { other: outside + steal, steal };
    },
  };
}

interface Sample {
  t: number;
  rssKb: number;
  maxProcKb: number;
  maxAnonKb: number;
  cpu: number;
}

/** Samples a set of processes' RSS and CPU every SAMPLE_MS until stopped (stop() again: the
 *  same samples). */
function sampler(pids: number[]): { stop(): Sample[] } {
  const samples: Sample[] = [];
  const take = () => {
    let total = 0;
    let maxProc = 0;
    let maxAnon = 0;
    let cpu = 0;
    for (const p of pids) {
      const m = memKb(p);
      total += m.rss;
      maxProc = Math.max(maxProc, m.rss);
      maxAnon = Math.max(maxAnon, m.anon);
      cpu += cpuSeconds(p);
    }
    samples.push({ t: performance.now(), rssKb: total, maxProcKb: maxProc, maxAnonKb: maxAnon, cpu });
  };
  take();
  const timer = setInterval(take, SAMPLE_MS);
  let stopped = false;
  return {
    stop() {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        take();
      }
      return samples;
    },
  };
}

/** CPU µs per request over the measured part of a run (samples after the warm-up). */
function cpuPerRequest(samples: Sample[], startedAt: number, requests: number, seconds: number): number | undefined {
  const measured = samples.filter((s) => s.t >= startedAt + WARMUP_S * 1000);
  const first = measured[0];
  const last = measured[measured.length - 1];
  if (!first || !last || last.t - first.t < 500 || requests === 0) return undefined;
  const cpuPerSec = (last.cpu - first.cpu) / ((last.t - first.t) / 1000);
  return (cpuPerSec / (requests / seconds)) * 1e6;
}

// ---------------------------------------------------------------------------------------------
// h2load

interface H2loadSummary {
  rps: number;
  total: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status2xx: number;
  /** 3xx + 4xx + 5xx. */
  statusOther: number;
  dataBytes: number;
}

function parseH2load(out: string): H2loadSummary {
  const fin = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const data = /traffic: .*\((\d+)\) data/.exec(out);
  if (!fin || !req || !codes)
    throw new Error(`h2load: unexpected output: ${out.trim().split('\n').slice(-6).join(' | ')}`);
  return {
    rps: Number(fin[1]),
    total: Number(req[1]),
    done: Number(req[3]),
    succeeded: Number(req[4]),
    failed: Number(req[5]),
    errored: Number(req[6]),
    timeout: Number(req[7]),
    status2xx: Number(codes[1]),
    statusOther: Number(codes[2]) + Number(codes[3]) + Number(codes[4]),
    dataBytes: data ? Number(data[1]) : NaN,
  };
}

/** Every request answered with a 2xx. (With -D, h2load's done and 2xx counts differ by the
 *  streams in flight at the end of the measurement: compare the others with 0.) */
function checkAllGood(s: H2loadSummary, what: string): void {
  if (s.done === 0 || s.status2xx === 0) throw new Error(`${what}: no request completed`);
  if (s.failed || s.errored || s.timeout || s.statusOther) {
    throw new Error(
      `${what}: ${s.done} done, ${s.status2xx} 2xx, ${s.statusOther} other statuses, ${s.failed} failed, ${s.errored} errored, ${s.timeout} timed out`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration files

function body(): string {
  // 1,023 printable bytes and a newline: no quotes, `$` or backslashes (nginx string).
  return 'weft-bench-1k-body-0123456789abcdefghijklmnopqrstuvwxyz-'.repeat(20).slice(0, BODY_BYTES - 1);
}

function nginxConf(dir: string, workers: number, http: string): string {
  const t = (n: string) => join(dir, n);
  mkdirSync(dir, { recursive: true });
  return `daemon off;
master_process on;
worker_processes ${workers};
pid ${t('nginx.pid')};
error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${t('body')}; proxy_temp_path ${t('proxy')}; fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')}; scgi_temp_path ${t('scgi')};
  keepalive_requests 100000000;
  keepalive_timeout 300s;
${http}
}
`;
}

function backendConf(dir: string, workers: number): string {
  return nginxConf(
    dir,
    workers,
    `  server {
    listen 127.0.0.1:${BACKEND_H2} http2;
    listen 127.0.0.1:${BACKEND_H1};
    location / {
      default_type application/octet-stream;
      return 200 "${body()}\\n";
    }
  }`,
  );
}

function nginxProxyConf(dir: string, workers: number, port: number): string {
  return nginxConf(
    dir,
    workers,
    `  upstream backend {
    server 127.0.0.1:${BACKEND_H1};
    keepalive 256;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${port} http2;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`,
  );
}

function haproxyConf(threads: number, port: number, upstreamPort: number): string {
  return `global
  nbthread ${threads}
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend fe
  bind 127.0.0.1:${port} proto h2
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:${upstreamPort} proto h2
`;
}

/** The snapshot weftd would send for one routed Service port "bench/web:80" whose listener is
 *  127.0.0.1:port and whose one endpoint is the backend's h2c listener. */
export function benchSnapshot(port: number, backendPort: number): ProxySnapshot {
  return {
    version: 1,
    balancer: 'peak-ewma',
    services: [
      {
        service: 'bench/web',
        port: 80,
        portName: 'http',
        protocol: 'http',
        addresses: ['10.96.0.10'],
        rules: [{ route: 'bench/web', rule: 0, backends: [{ weight: 1, backend: 'bench/web:80' }] }],
        matches: [{ rule: 0, path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
      },
    ],
    backends: { 'bench/web:80': { protocol: 'h2c', endpoints: [{ ip: '127.0.0.1', port: backendPort }] } },
    listeners: [{ address: '127.0.0.1', port, service: 'bench/web', servicePort: 80 }],
    workloads: {},
  };
}

// ---------------------------------------------------------------------------------------------
// Tools

function version(cmd: string, args: string[], re: RegExp): string | undefined {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
    return re.exec(out)?.[1] ?? out.trim().split('\n')[0];
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: string };
    if (err.code === 'ENOENT') return undefined;
    const out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    return re.exec(out)?.[1];
  }
}

function toolVersions(): Record<string, string | undefined> {
  return {
    h2load: version('h2load', ['--version'], /nghttp2\/(\S+)/),
    haproxy: version('haproxy', ['-v'], /HA-?Proxy version (\S+)/),
    // nginx -v prints to stderr.
    nginx: version('sh', ['-c', 'command -v nginx >/dev/null && nginx -v 2>&1'], /nginx\/(\S+)/),
  };
}

// ---------------------------------------------------------------------------------------------
// The measurement

interface Running {
  point: L7Path;
  url: string;
  /** The proxy's processes (one or two roots; their children join at each run). */
  roots: Proc[];
  /** The round each run was taken in (to pair them with direct's). */
  satRound: number[];
  rateRound: number[];
}

export async function measureL7(o: L7BenchOptions): Promise<L7Result> {
  const v = toolVersions();
  const tools: Record<string, string> = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x ?? 'unavailable']));
  // One worker (HAProxy: thread) per CPU the process may use, for every proxy alike.
  const proxyWorkers = o.proxyCpus ? cpuCount(o.proxyCpus) : availableParallelism();
  const serverWorkers = o.serverCpus ? cpuCount(o.serverCpus) : availableParallelism();
  const base: L7Result = {
    status: 'ok',
    method:
      `h2load (one thread per client CPU) over HTTP/2 cleartext with prior knowledge, GET / answered with ${BODY_BYTES} bytes; ` +
      `saturation: -c ${o.clients} -m ${o.streams} -D ${o.satSeconds} after ${WARMUP_S} s warm-up, req/s; ` +
      `fixed rate: -c ${o.clients} -m 1 --rps ${o.rate / o.clients} -D ${o.rateSeconds} after ${WARMUP_S} s warm-up, percentiles of the per-request log (--log-file); ` +
      "RSS: VmRSS of the proxy's processes summed, sampled every 100 ms during saturation, max; CPU: utime+stime of the proxy's processes over the measured part / requests",
    tools,
    backend: `nginx ${tools.nginx}: ${serverWorkers} worker(s), return 200 with ${BODY_BYTES} bytes from memory, h2c on 127.0.0.1:${BACKEND_H2}, HTTP/1.1 on :${BACKEND_H1}`,
    cpus: { client: o.clientCpus || 'any', server: o.serverCpus || 'any', proxy: o.proxyCpus || 'any' },
    config: {
      runs: o.runs,
      satSeconds: o.satSeconds,
      rateSeconds: o.rateSeconds,
      warmupSeconds: WARMUP_S,
      rate: o.rate,
      clients: o.clients,
      streams: o.streams,
      bodyBytes: BODY_BYTES,
    },
    paths: [],
  };
  if (!v.h2load) return { ...base, status: 'unavailable', reason: 'h2load not found (Debian: nghttp2-client)' };
  if (!v.nginx) return { ...base, status: 'unavailable', reason: 'nginx not found (the backend; Debian: nginx)' };

  const world = World.create({ kind: 'bench' });
  o.register(world);
  const dir = join(world.stateDir, 'l7');
  mkdirSync(dir, { recursive: true });
  const procs: Proc[] = [];
  const running: Running[] = [];
  const h2loadThreads = Math.min(o.clients, cpuCount(o.clientCpus));
  const cpusOf = (l: string) => (l ? { cpus: l } : {});

  const start = (name: string, argv: string[], cpus: string): Proc => {
    const p = watch(world.spawn('node', argv, { inCgroup: true, ...cpusOf(cpus) }), name);
    procs.push(p);
    return p;
  };
  const h2load = async (args: string[], timeoutMs: number): Promise<string> => {
    const r = await world.run('node', ['h2load', '-t', String(h2loadThreads), ...args], {
      inCgroup: true,
      timeoutMs,
      ...cpusOf(o.clientCpus),
    });
    if (r.code !== 0)
      throw new Error(
        `h2load ${r.timedOut ? 'timed out' : `exited ${r.signal ?? r.code}`}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`,
      );
    return r.stdout;
  };
  /** Ready and right: 20 requests, all 2xx with the whole body (retried while the path starts). */
  const probe = async (url: string, roots: Proc[], timeoutMs = 10_000): Promise<void> => {
    const until = Date.now() + timeoutMs;
    let last: string;
    for (;;) {
      const dead = roots.find((p) => !p.isRunning());
      if (dead) throw new Error(`${dead.name} exited: ${dead.lines.slice(-4).join(' | ') || 'no output'}`);
      try {
        const s = parseH2load(await h2load(['-n', '20', '-c', '1', '-m', '1', url], 10_000));
        checkAllGood(s, 'probe');
        if (s.status2xx !== 20) throw new Error(`probe: ${s.status2xx} of 20 requests answered 2xx`);
        if (s.dataBytes !== 20 * BODY_BYTES)
          throw new Error(`probe: ${s.dataBytes} bytes of data for 20 responses, expected ${20 * BODY_BYTES}`);
        return;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > until) throw new Error(last);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const setup = async (path: L7PathName): Promise<{ point: L7Path; run?: Running }> => {
    const point: L7Path = { path, label: path, config: '', status: 'ok', satRuns: [], rateRuns: [], warnings: [] };
    const url = (port: number) => `http://127.0.0.1:${port}/`;
    const fail = (status: 'unavailable' | 'failed', reason: string) => ({ point: { ...point, status, reason } });
    const cfgFile = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    try {
      switch (path) {
        case 'direct': {
          point.label = 'direct (backend)';
          point.config = `h2load → nginx backend h2c :${BACKEND_H2}`;
          await probe(url(BACKEND_H2), []);
          return { point, run: { point, url: url(BACKEND_H2), roots: [], satRound: [], rateRound: [] } };
        }
        case 'haproxy':
        case 'haproxy-2hop': {
          if (!v.haproxy) return fail('unavailable', 'haproxy not found (Debian: haproxy)');
          const port = PORTS[path];
          const roots: Proc[] = [];
          if (path === 'haproxy') {
            point.label = `HAProxy ${v.haproxy}`;
            point.config = `mode http, bind :${port} proto h2 → server proto h2 (h2c both sides), http-reuse always, nbthread ${proxyWorkers}`;
            roots.push(
              start(
                'haproxy',
                ['haproxy', '-db', '-f', cfgFile('haproxy.cfg', haproxyConf(proxyWorkers, port, BACKEND_H2))],
                o.proxyCpus,
              ),
            );
          } else {
            point.label = `2× HAProxy (sidecars)`;
            point.config = `two HAProxy processes in series, each as the haproxy path: :${port} → :${HOP2_PORT} → backend (the client's and the server's sidecar)`;
            roots.push(
              start(
                'haproxy hop 2',
                ['haproxy', '-db', '-f', cfgFile('haproxy-hop2.cfg', haproxyConf(proxyWorkers, HOP2_PORT, BACKEND_H2))],
                o.proxyCpus,
              ),
            );
            roots.push(
              start(
                'haproxy hop 1',
                ['haproxy', '-db', '-f', cfgFile('haproxy-hop1.cfg', haproxyConf(proxyWorkers, port, HOP2_PORT))],
                o.proxyCpus,
              ),
            );
          }
          await probe(url(port), roots);
          return { point, run: { point, url: url(port), roots, satRound: [], rateRound: [] } };
        }
        case 'nginx': {
          const port = PORTS.nginx;
          point.label = `nginx ${v.nginx}`;
          point.config = `listen :${port} http2 (h2c) → proxy_pass over HTTP/1.1 keepalive (256 idle) to the backend's :${BACKEND_H1}, ${proxyWorkers} worker(s)`;
          const conf = cfgFile('nginx-proxy.conf', nginxProxyConf(join(dir, 'nginx-proxy'), proxyWorkers, port));
          const roots = [start('nginx proxy', ['nginx', '-p', join(dir, 'nginx-proxy'), '-c', conf], o.proxyCpus)];
          await probe(url(port), roots);
          return { point, run: { point, url: url(port), roots, satRound: [], rateRound: [] } };
        }
        case 'weft-proxy': {
          const port = PORTS['weft-proxy'];
          point.label = 'weft-proxy';
          point.config = `bin/weft-proxy --workers ${proxyWorkers} standalone, one snapshot over its admin socket: listener :${port} → route bench/web (PathPrefix /) → backend h2c :${BACKEND_H2}`;
          if (!existsSync(o.weftProxy))
            return fail('unavailable', `${o.weftProxy} not found (weft-proxy not built yet?)`);
          const snap = benchSnapshot(port, BACKEND_H2);
          const valid = validateSnapshot(snap);
          if (!valid.ok)
            return fail(
              'unavailable',
              `the bench's snapshot does not validate (src/contract/proxy-snapshot.ts changed?): ${valid.error}`,
            );
          const sock = join(dir, 'weft-proxy.sock');
          const proxy = start(
            'weft-proxy',
            [
              o.weftProxy,
              '--admin-socket',
              sock,
              '--metrics-address',
              '127.0.0.1:0',
              '--log-level',
              'warn',
              '--workers',
              String(proxyWorkers),
              ...o.weftProxyArgs,
            ],
            o.proxyCpus,
          );
          const until = Date.now() + 15_000;
          for (;;) {
            if (!proxy.isRunning())
              return fail('unavailable', `weft-proxy exited: ${proxy.lines.slice(-4).join(' | ') || 'no output'}`);
            try {
              await apiRequest(sock, 'GET', '/healthz', undefined, 1000);
              break;
            } catch (e) {
              if (Date.now() > until)
                return fail('unavailable', `weft-proxy: no answer on ${sock} within 15 s (${(e as Error).message})`);
              await new Promise((r) => setTimeout(r, 50));
            }
          }
          try {
            await apiRequest(sock, 'PUT', '/v1/snapshot', snap, 10_000);
          } catch (e) {
            return fail('failed', `weft-proxy refused the snapshot: ${(e as Error).message}`);
          }
          await probe(url(port), [proxy]);
          return { point, run: { point, url: url(port), roots: [proxy], satRound: [], rateRound: [] } };
        }
      }
    } catch (e) {
      return fail('failed', (e as Error).message);
    }
  };

  /** Every process of a path now (its roots and their children: nginx's workers). */
  const pidsOf = (r: Running): number[] => r.roots.flatMap((p) => processTree(p.pid));

  const satRun = async (r: Running): Promise<L7SatRun> => {
    const pids = pidsOf(r);
    const sample = sampler(pids);
    const other = otherLoad(world.cgroupDir);
    const t0 = performance.now();
    const out = await h2load(
      [
        '-c',
        String(o.clients),
        '-m',
        String(o.streams),
        '-D',
        String(o.satSeconds),
        '--warm-up-time',
        String(WARMUP_S),
        r.url,
      ],
      (o.satSeconds + WARMUP_S + 30) * 1000,
    ).finally(() => sample.stop());
    const samples = sample.stop();
    const otherCpus = other.stop();
    const s = parseH2load(out);
    checkAllGood(s, 'saturation');
    const run: L7SatRun = { rps: s.rps, requests: s.done, otherLoad: otherCpus.other, steal: otherCpus.steal };
    if (pids.length > 0) {
      run.rssMb = Math.max(...samples.map((x) => x.rssKb)) / 1024;
      run.rssProcessMb = Math.max(...samples.map((x) => x.maxProcKb)) / 1024;
      run.anonProcessMb = Math.max(...samples.map((x) => x.maxAnonKb)) / 1024;
      run.processes = pids.length;
      const cpu = cpuPerRequest(samples, t0, s.done, o.satSeconds);
      if (cpu !== undefined) run.cpuUsPerReq = cpu;
    }
    return run;
  };

  const rateRun = async (r: Running): Promise<L7RateRun> => {
    const logFile = join(dir, 'requests.log');
    rmSync(logFile, { force: true }); // h2load appends
    const pids = pidsOf(r);
    const sample = sampler(pids);
    const other = otherLoad(world.cgroupDir);
    const t0 = performance.now();
    const out = await h2load(
      [
        '-c',
        String(o.clients),
        '-m',
        '1',
        '--rps',
        String(o.rate / o.clients),
        '-D',
        String(o.rateSeconds),
        '--warm-up-time',
        String(WARMUP_S),
        '--log-file',
        logFile,
        r.url,
      ],
      (o.rateSeconds + WARMUP_S + 30) * 1000,
    ).finally(() => sample.stop());
    const samples = sample.stop();
    const otherCpus = other.stop();
    checkAllGood(parseH2load(out), 'fixed rate');
    const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
    rmSync(logFile, { force: true });
    const durations: number[] = [];
    let first = Infinity;
    let last = -Infinity;
    for (const l of lines) {
      const [start, status, us] = l.split('\t');
      if (status === undefined || us === undefined || !status.startsWith('2'))
        throw new Error(`fixed rate: a request logged status ${status}`);
      durations.push(Number(us));
      first = Math.min(first, Number(start));
      last = Math.max(last, Number(start));
    }
    if (durations.length < 10) throw new Error(`fixed rate: only ${durations.length} requests logged`);
    durations.sort((a, b) => a - b);
    const run: L7RateRun = {
      requests: durations.length,
      achievedRate: durations.length / Math.max(1e-3, (last - first) / 1e6),
      p50Us: pct(durations, 0.5),
      p90Us: pct(durations, 0.9),
      p99Us: pct(durations, 0.99),
      maxUs: durations[durations.length - 1]!,
      meanUs: durations.reduce((a, b) => a + b, 0) / durations.length,
      otherLoad: otherCpus.other,
      steal: otherCpus.steal,
    };
    if (pids.length > 0) {
      const cpu = cpuPerRequest(samples, t0, durations.length, o.rateSeconds);
      if (cpu !== undefined) run.cpuUsPerReq = cpu;
    }
    return run;
  };

  const idleRun = async (r: Running): Promise<void> => {
    const n = o.idleConnections;
    await new Promise((res) => setTimeout(res, IDLE_SETTLE_MS));
    const before = memOf(pidsOf(r));
    const client = start(
      `idle client → ${r.point.label}`,
      [process.execPath, IDLE_CLIENT, r.url, String(n)],
      o.clientCpus,
    );
    try {
      await client.waitForLine(/^ready \d+$/, 60_000);
      await new Promise((res) => setTimeout(res, IDLE_SETTLE_MS));
      const held = memOf(pidsOf(r));
      r.point.idleConnections = {
        count: n,
        rssKbPerConn: (held.rss - before.rss) / n,
        anonKbPerConn: (held.anon - before.anon) / n,
      };
    } finally {
      await client.stop();
    }
  };

  const guarded = async (r: Running, what: string, f: () => Promise<void>): Promise<void> => {
    try {
      const dead = r.roots.find((p) => !p.isRunning());
      if (dead) throw new Error(`${dead.name} exited: ${dead.lines.slice(-4).join(' | ') || 'no output'}`);
      await f();
    } catch (e) {
      r.point.status = 'failed';
      const m = (e as Error).message;
      r.point.reason = m.startsWith(what) ? m : `${what}: ${m}`;
      o.log(`bench: L7 ${r.point.label}: failed: ${r.point.reason}`);
    }
  };

  const points: L7Path[] = [];
  try {
    writeFileSync(join(dir, 'backend.conf'), backendConf(join(dir, 'backend'), serverWorkers));
    const backend = start(
      'nginx backend',
      ['nginx', '-p', join(dir, 'backend'), '-c', join(dir, 'backend.conf')],
      o.serverCpus,
    );
    for (const path of o.paths) {
      const t0 = Date.now();
      const { point, run } = await setup(path);
      points.push(point);
      if (run) {
        running.push(run);
        if (run.roots.length > 0) point.idleRssMb = pidsOf(run).reduce((a, p) => a + rssKb(p), 0) / 1024;
        o.log(`bench: L7 ${point.label} ready (${((Date.now() - t0) / 1000).toFixed(1)} s): ${point.config}`);
      } else {
        o.log(`bench: L7 ${point.label}: ${point.status}: ${point.reason}`);
      }
      if (path === 'direct' && point.status !== 'ok' && !backend.isRunning())
        throw new Error(`the nginx backend exited: ${backend.lines.slice(-4).join(' | ')}`);
    }
    const live = () => running.filter((r) => r.point.status === 'ok');
    // Warm-up: a short saturation run on every path (connection pools, JIT, page cache).
    for (const r of live()) {
      await guarded(r, 'warm-up', async () => {
        checkAllGood(
          parseH2load(await h2load(['-c', String(o.clients), '-m', String(o.streams), '-D', '1', r.url], 30_000)),
          'warm-up',
        );
      });
    }
    for (let round = 0; round < o.runs; round++) {
      const order = live();
      for (let k = 0; k < order.length; k++) {
        const r = order[(k + round) % order.length]!;
        await guarded(r, 'saturation', async () => {
          r.point.satRuns.push(await satRun(r));
          r.satRound.push(round);
        });
      }
    }
    for (let round = 0; round < o.runs; round++) {
      const order = live();
      for (let k = 0; k < order.length; k++) {
        const r = order[(k + round) % order.length]!;
        await guarded(r, 'fixed rate', async () => {
          r.point.rateRuns.push(await rateRun(r));
          r.rateRound.push(round);
        });
      }
    }
    if (o.idleConnections > 0) {
      for (const r of live()) if (r.roots.length > 0) await guarded(r, 'idle connections', () => idleRun(r));
    }
    for (const r of running) {
      const p = r.point;
      if (p.status !== 'ok') continue;
      p.saturation = { rps: spread(p.satRuns.map((x) => x.rps)) };
      const rss = optSpread(p.satRuns.map((x) => x.rssMb));
      if (rss) p.saturation.rssMb = rss;
      const rssProc = optSpread(p.satRuns.map((x) => x.rssProcessMb));
      if (rssProc) p.saturation.rssProcessMb = rssProc;
      const anonProc = optSpread(p.satRuns.map((x) => x.anonProcessMb));
      if (anonProc) p.saturation.anonProcessMb = anonProc;
      const cpu = optSpread(p.satRuns.map((x) => x.cpuUsPerReq));
      if (cpu) p.saturation.cpuUsPerReq = cpu;
      p.fixedRate = {
        p50Us: spread(p.rateRuns.map((x) => x.p50Us)),
        p99Us: spread(p.rateRuns.map((x) => x.p99Us)),
        achievedRate: spread(p.rateRuns.map((x) => x.achievedRate)),
      };
      const rcpu = optSpread(p.rateRuns.map((x) => x.cpuUsPerReq));
      if (rcpu) p.fixedRate.cpuUsPerReq = rcpu;
      const disturbed = [...p.satRuns, ...p.rateRuns].filter((x) => x.otherLoad > OTHER_LOAD_NOTE);
      if (disturbed.length)
        p.warnings.push(
          `${disturbed.length} of its runs shared the machine with other work (up to ${Math.max(...disturbed.map((x) => x.otherLoad)).toFixed(2)} CPUs)`,
        );
      if (p.fixedRate.achievedRate.min < 0.95 * o.rate)
        p.warnings.push(
          `the fixed-rate runs reached only ${Math.round(p.fixedRate.achievedRate.min)} requests/s (asked ${o.rate})`,
        );
      o.log(
        `bench: L7 ${p.label}: ${p.satRuns.map((x) => Math.round(x.rps)).join(' / ')} req/s; at ${o.rate}/s p50 ${p.rateRuns.map((x) => x.p50Us).join(' / ')} µs, p99 ${p.rateRuns.map((x) => x.p99Us).join(' / ')} µs` +
          (rss ? `; RSS ${rss.max.toFixed(1)} MB` : ''),
      );
    }
    const direct = running.find((r) => r.point.path === 'direct' && r.point.status === 'ok');
    const hap = points.find((p) => p.path === 'haproxy' && p.status === 'ok');
    for (const r of running) {
      const p = r.point;
      if (p.status !== 'ok' || !p.fixedRate) continue;
      if (hap?.saturation && p.saturation) p.xHaproxy = p.saturation.rps.median / hap.saturation.rps.median;
      if (!direct?.point.fixedRate || r === direct) continue;
      const d = direct.point;
      const paired = (mine: number[], theirs: number[]) => {
        const diffs: number[] = [];
        r.rateRound.forEach((round, i) => {
          const j = direct.rateRound.indexOf(round);
          if (j >= 0) diffs.push(mine[i]! - theirs[j]!);
        });
        return diffs.length ? spread(diffs).median : NaN;
      };
      p.added = {
        p50Us: p.fixedRate.p50Us.median - d.fixedRate!.p50Us.median,
        p99Us: p.fixedRate.p99Us.median - d.fixedRate!.p99Us.median,
        pairedP50Us: paired(
          p.rateRuns.map((x) => x.p50Us),
          d.rateRuns.map((x) => x.p50Us),
        ),
        pairedP99Us: paired(
          p.rateRuns.map((x) => x.p99Us),
          d.rateRuns.map((x) => x.p99Us),
        ),
      };
    }
    for (const r of running) {
      const dead = r.roots.find((p) => !p.isRunning());
      if (dead && r.point.status === 'ok') r.point.warnings.push(`${dead.name} exited during the runs`);
      const noisy = r.roots
        .flatMap((p) => p.lines.filter((l) => /\b(error|warn|alert|emerg|crit)/i.test(l)))
        .slice(0, 3);
      for (const l of noisy) r.point.warnings.push(`log: ${l.slice(0, 200)}`);
    }
    const anyFailed = points.some((p) => p.status === 'failed');
    return {
      ...base,
      status: anyFailed ? 'failed' : 'ok',
      ...(anyFailed && {
        reason: points
          .filter((p) => p.status === 'failed')
          .map((p) => `${p.label}: ${p.reason}`)
          .join('; '),
      }),
      paths: points,
    };
  } catch (e) {
    return { ...base, status: 'failed', reason: (e as Error).message, paths: points };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await world.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Output

const int = (x: number) => Math.round(x).toLocaleString('en-US');
const us = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const trio = (s: Spread, f: (x: number) => string) => `${f(s.min)} / ${f(s.median)} / ${f(s.max)}`;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${Math.round(x)}`;

export function l7Summary(r: L7Result): string {
  if (r.status === 'unavailable') return `unavailable (${r.reason})`;
  return r.paths
    .map((p) =>
      p.status !== 'ok'
        ? `${p.label} ${p.status}`
        : `${p.label} ${int(p.saturation!.rps.median)} req/s, p50 ${us(p.fixedRate!.p50Us.median)} µs${p.added ? ` (${signed(p.added.p50Us)})` : ''}`,
    )
    .join('; ');
}

export function l7Report(r: L7Result): string {
  const out: string[] = [];
  out.push(
    `L7 proxies (HTTP/2 cleartext, ${BODY_BYTES} B responses; h2load ${r.tools.h2load} on CPU ${r.cpus.client}, proxies on CPU ${r.cpus.proxy}, backend on CPU ${r.cpus.server}; ` +
      `${r.config.runs} runs per path, interleaved):`,
  );
  out.push(`  backend: ${r.backend}`);
  if (r.status === 'unavailable') {
    out.push(`  unavailable: ${r.reason}`);
    return out.join('\n');
  }
  if (r.status === 'failed' && r.reason) out.push(`  FAILED: ${r.reason}`);
  out.push(
    '  ' +
      'path'.padEnd(24) +
      'req/s at saturation  min / median / max'.padStart(40) +
      '×HAProxy'.padStart(10) +
      `p50 µs at ${int(r.config.rate)}/s  min / med / max`.padStart(37) +
      '+p50'.padStart(7) +
      'p99 µs'.padStart(8) +
      '+p99'.padStart(7) +
      'RSS MB'.padStart(8) +
      'CPU µs/req sat / fixed'.padStart(24),
  );
  for (const p of r.paths) {
    if (p.status !== 'ok' || !p.saturation || !p.fixedRate) {
      out.push(
        `  ${p.label.padEnd(24)}${p.status === 'unavailable' ? 'unavailable' : 'FAILED'}: ${p.reason ?? 'unknown'}`,
      );
      continue;
    }
    const s = p.saturation;
    const f = p.fixedRate;
    const cpu =
      s.cpuUsPerReq || f.cpuUsPerReq
        ? `${s.cpuUsPerReq ? us(s.cpuUsPerReq.median) : '-'} / ${f.cpuUsPerReq ? us(f.cpuUsPerReq.median) : '-'}`
        : '-';
    out.push(
      '  ' +
        p.label.padEnd(24) +
        trio(s.rps, int).padStart(40) +
        (p.xHaproxy !== undefined ? `${p.xHaproxy.toFixed(2)}x` : '-').padStart(10) +
        trio(f.p50Us, us).padStart(37) +
        (p.added ? signed(p.added.p50Us) : '-').padStart(7) +
        us(f.p99Us.median).padStart(8) +
        (p.added ? signed(p.added.p99Us) : '-').padStart(7) +
        (s.rssMb ? s.rssMb.max.toFixed(1) : '-').padStart(8) +
        cpu.padStart(24),
    );
    for (const w of p.warnings) out.push(`  ${''.padEnd(24)}warning: ${w}`);
  }
  out.push('');
  for (const p of r.paths) out.push(`  ${p.label}: ${p.config}`);
  out.push(
    `  saturation: h2load -c ${r.config.clients} -m ${r.config.streams}, ${r.config.satSeconds} s after ${r.config.warmupSeconds} s warm-up; ×HAProxy = median / HAProxy's median. ` +
      `Fixed rate: -c ${r.config.clients} -m 1 --rps ${r.config.rate / r.config.clients}, ${r.config.rateSeconds} s after ${r.config.warmupSeconds} s warm-up;`,
  );
  out.push(
    "  p99: median over runs; +p50 / +p99 = the path's median − direct's, µs. RSS: the proxy's processes summed (2× HAProxy: both), max while saturated. CPU: the proxy's.",
  );
  const idle = r.paths.filter((p) => p.idleConnections);
  if (idle.length > 0) {
    out.push(
      `  ${int(idle[0]!.idleConnections!.count)} idle connections held (one request each), what the proxy grew by per connection, VmRSS (RssAnon): ` +
        idle
          .map(
            (p) =>
              `${p.label} ${p.idleConnections!.rssKbPerConn.toFixed(1)} kB (${p.idleConnections!.anonKbPerConn.toFixed(1)})`,
          )
          .join(', ') +
        '.',
    );
  }
  const runs = r.paths.flatMap((p) => [...p.satRuns, ...p.rateRuns]);
  const loads = runs.map((x) => x.otherLoad);
  if (loads.length > 0) {
    const l = spread(loads);
    const steal = spread(runs.map((x) => x.steal));
    const busy = loads.filter((x) => x > OTHER_LOAD_NOTE).length;
    out.push(
      `  other work on the machine during the runs (CPUs used outside the bench's world, and stolen by the hypervisor): median ${l.median.toFixed(2)}, max ${l.max.toFixed(2)}` +
        (steal.max > 0.01 ? ` (stolen: median ${steal.median.toFixed(2)}, max ${steal.max.toFixed(2)})` : '') +
        (busy
          ? `; ${busy} of ${loads.length} runs above ${OTHER_LOAD_NOTE}: their latencies (p99 first) and rates suffered`
          : ''),
    );
  }
  return out.join('\n');
}

export interface L7Goal {
  goal: string;
  status: 'met' | 'missed' | 'n/a';
  detail: string;
}

/** Reference figures from the issue (same kind of machine): HAProxy +0.43 ms p50, two hops +0.71 ms. */
const REF_TWO_HOPS_US = 710;
const RSS_PER_WORKER_MB = 60;

export function l7Goals(r: L7Result | undefined): L7Goal[] {
  const get = (n: L7PathName) => r?.paths.find((p) => p.path === n && p.status === 'ok');
  const weft = get('weft-proxy');
  const why = !r
    ? 'not measured'
    : r.status === 'unavailable'
      ? `unavailable: ${r.reason}`
      : (() => {
          const p = r.paths.find((q) => q.path === 'weft-proxy');
          return p ? `${p.status}: ${p.reason ?? 'unknown'}` : 'weft-proxy not measured';
        })();
  const hap = get('haproxy');
  const two = get('haproxy-2hop');
  const out: L7Goal[] = [];
  const limit = two?.added?.p50Us ?? REF_TWO_HOPS_US;
  const against = two?.added
    ? `two HAProxy hops ${signed(two.added.p50Us)} µs in this run (issue's reference +${REF_TWO_HOPS_US})`
    : `the issue's two-hop reference +${REF_TWO_HOPS_US} µs`;
  out.push({
    goal: 'one weft-proxy hop adds less p50 latency than two HAProxy hops (sidecar shape, ref. +0.71 ms), heading for one HAProxy (ref. +0.43 ms)',
    status: weft?.added === undefined ? 'n/a' : weft.added.p50Us < limit ? 'met' : 'missed',
    detail:
      weft?.added === undefined
        ? why
        : `weft-proxy ${signed(weft.added.p50Us)} µs vs ${against}${hap?.added ? `; HAProxy ${signed(hap.added.p50Us)} µs` : ''} (p99 ${signed(weft.added.p99Us)} µs)`,
  });
  const x = weft?.xHaproxy;
  out.push({
    goal: "weft-proxy throughput ≥ 0.5x HAProxy's (requests/s at saturation)",
    status: x === undefined ? 'n/a' : x >= 0.5 ? 'met' : 'missed',
    detail:
      x === undefined
        ? weft && !hap
          ? 'HAProxy not measured'
          : why
        : `${x.toFixed(2)}x (${int(weft!.saturation!.rps.median)} vs ${int(hap!.saturation!.rps.median)} req/s)`,
  });
  const rss = weft?.saturation?.rssProcessMb?.max;
  out.push({
    goal: `weft-proxy RSS ≤ ${RSS_PER_WORKER_MB} MB per worker under load`,
    status: rss === undefined ? 'n/a' : rss <= RSS_PER_WORKER_MB ? 'met' : 'missed',
    detail:
      rss === undefined
        ? why
        : `${rss.toFixed(1)} MB the largest process, of which ${weft!.saturation!.anonProcessMb?.max.toFixed(1) ?? '?'} MB its own (RssAnon; the rest is file-backed, mostly the node binary's pages, shared by every Node process) (${weft!.saturation!.rssMb!.max.toFixed(1)} MB over ${Math.max(...weft!.satRuns.map((s) => s.processes ?? 0))} process(es)` +
          `${weft!.idleRssMb !== undefined ? `; ${weft!.idleRssMb.toFixed(1)} MB before any load` : ''})`,
  });
  return out;
}
