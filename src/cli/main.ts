// weft: the command line for a node's Weft. It finds the agent through --state-dir (or
// WEFT_STATE_DIR) and the kernel state through --bpf-root (or WEFT_BPF_ROOT), the same way for
// every command.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { apiRequest } from '../lib/unix-http.js';
import {
  DEFAULT_STATE_DIR,
  apiSocketPath,
  type AgentStatus,
  type EndpointRecord,
  type ExplainQuery,
  type ExplanationDetail,
  type ServiceName,
} from '../contract/agent-api.js';
import { readKernelServices } from '../datapath/lb-reader.js';
import { DEFAULT_BPF_ROOT } from '../datapath/pins.js';
import { removeAllPins } from '../datapath/programs.js';
import { installCni, uninstallCni } from './cni-install.js';
import { readMaps, readPrograms } from '../datapath/kernel-state.js';
import { NO_DEVICE, readEndpointLinks } from '../datapath/endpoint-reader.js';
import { detachAllFilters } from '../datapath/endpoint-datapath.js';
import { formatTable, indent } from '../lib/table.js';
import { formatObserverStatus, observe } from './observe.js';
import { removeProxyAddresses } from '../datapath/proxy-address.js';

const USAGE = `Usage: weft [global flags] COMMAND

Commands:
  status              agent health, attached programs and map fill levels
  service list        services as the kernel balances them (read from the maps)
  endpoint list       the pods this node's agent set up through the CNI plugin
  observe [flags]     flows the datapath saw, with Hubble's flags: -f to follow, --last N,
                      --pod, --verdict, ... (weft observe -h lists them)
  explain --from NS/POD --to NS/POD --port PORT[/PROTO]
                      would network policy allow a new connection, and which policy
                      and rule decide (PROTO: TCP, UDP or SCTP; default TCP)
  cni install         put the CNI plugin and its conflist on this host
                      (--cni-bin-dir, default /opt/cni/bin; --cni-conf-dir, default
                      /etc/cni/net.d; --agent-socket, default <state-dir>/weft.sock)
  cni uninstall       remove them
  uninstall           detach every Weft program and remove its pinned maps (run it in
                      the agent's network namespace: pod interfaces are numbered there)

Global flags:
  --state-dir DIR     agent state directory (env WEFT_STATE_DIR, default ${DEFAULT_STATE_DIR})
  --bpf-root DIR      pin root (env WEFT_BPF_ROOT, default ${DEFAULT_BPF_ROOT})
  -o, --output FMT    table (default) or json (observe: compact, json or table)
  -h, --help          show this help
`;

interface Ctx {
  stateDir: string;
  bpfRoot: string;
  json: boolean;
  socket: string;
}

const out = (s: string) => process.stdout.write(s);
const printJson = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);

async function agentStatus(ctx: Ctx): Promise<{ status?: AgentStatus; error?: string }> {
  try {
    return { status: await apiRequest<AgentStatus>(ctx.socket, 'GET', '/v1/status', undefined, 3000) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function status(ctx: Ctx): Promise<number> {
  const agent = await agentStatus(ctx);
  const programs = readPrograms(ctx.bpfRoot);
  const maps = readMaps(ctx.bpfRoot);
  const endpointLinks = readEndpointLinks(ctx.bpfRoot);
  const healthy = !!agent.status && programs.length > 0 && programs.every((p) => !p.error);
  if (ctx.json) {
    printJson({
      healthy,
      agent: agent.status ?? { reachable: false, error: agent.error },
      programs,
      endpointLinks,
      maps,
    });
    return healthy ? 0 : 1;
  }
  const a = agent.status;
  out(
    a
      ? `Agent:      running (pid ${a.pid}, node ${a.node}, ${a.source}, ${a.synced ? 'synced' : `not synced yet: waiting for ${a.waitingFor ?? '?'}`})\n`
      : `Agent:      not reachable at ${ctx.socket} (${agent.error})\n`,
  );
  if (a?.lastSync?.error) out(`Last sync:  FAILED: ${a.lastSync.error}\n`);
  else if (a?.lastSync?.stats)
    out(
      `Last sync:  ${a.lastSync.at}: ${a.lastSync.stats.services} frontends, ${a.lastSync.stats.backends} backends\n`,
    );
  if (a)
    out(
      `Endpoints:  ${a.endpoints}${a.podCidrs.length ? `; pod CIDRs ${a.podCidrs.map((p) => `${p.cidr} (${p.used} used)`).join(', ')}` : ''}\n`,
    );
  if (a?.policy) {
    const p = a.policy;
    const failed = p.error ? `; last write FAILED: ${p.error}` : '';
    out(
      `Policy:     ${p.policies} NetworkPolic${p.policies === 1 ? 'y' : 'ies'}, ` +
        `${p.entries} allow entries, ${p.ipcache} ipcache entries${failed}\n`,
    );
  }
  // Absent from agents without an observer (and older ones).
  if (a?.observer) out(`Flows:      ${formatObserverStatus(a.observer)}\n`);
  if (a?.proxy) {
    const p = a.proxy;
    const state = p.running ? `running${p.pid ? ` (pid ${p.pid})` : ''}, snapshot ${p.version}` : 'NOT RUNNING';
    const ports = p.routedPorts;
    const routed = `${ports.length} routed Service port${ports.length === 1 ? '' : 's'}${ports.length ? ` (${ports.join(', ')})` : ''}`;
    const restarts = `${p.restarts} restart${p.restarts === 1 ? '' : 's'}`;
    out(`L7 proxy:   ${state}; ${routed}; ${restarts}${p.lastError ? `; last error: ${p.lastError}` : ''}\n`);
    for (const n of p.notes) out(`            note: ${n}\n`);
  }
  if (a?.informers) {
    out(
      `Informers:  ${a.informers.map((i) => `${i.resource} ${i.synced ? i.objects : 'listing'}${i.lastError ? ` (error: ${i.lastError})` : ''}`).join(', ')}\n`,
    );
  }
  for (const p of a?.problems ?? [])
    out(`Problem:    ${p.file}${p.object ? ` ${p.object}` : ''}: ${p.errors.join('; ')}\n`);
  out(
    `Programs:   ${programs.length ? `${programs.filter((p) => !p.error).length}/${programs.length} attached` : `none pinned under ${ctx.bpfRoot}`}\n`,
  );
  if (programs.length) {
    out(
      indent(
        formatTable(
          ['PROGRAM', 'LINK', 'PROG', 'CGROUP', 'STATE'],
          programs.map((p) => [
            p.program,
            String(p.linkId ?? '-'),
            String(p.progId ?? '-'),
            p.cgroupId ?? '-',
            p.error ?? 'attached',
          ]),
        ),
      ),
    );
  }
  const endpointIfs = new Set(endpointLinks.filter((l) => !l.error).map((l) => l.ifindex));
  // Interface numbers are per network namespace: run elsewhere than the agent, the pods'
  // interfaces are not found, which says nothing about their programs.
  const elsewhere = endpointLinks.filter((l) => l.error === NO_DEVICE).length;
  const missing = endpointLinks.filter((l) => l.error && l.error !== NO_DEVICE).length;
  const notes = [
    ...(missing ? [`${missing} hook${missing === 1 ? '' : 's'} without a program`] : []),
    ...(elsewhere
      ? [
          `${elsewhere} hook${elsewhere === 1 ? '' : 's'} on interfaces outside this network namespace: run weft status in the agent's`,
        ]
      : []),
  ];
  out(
    `Pod TC:     programs on ${endpointIfs.size} pod interface${endpointIfs.size === 1 ? '' : 's'}${notes.length ? ` (${notes.join('; ')})` : ''}\n`,
  );
  if (maps.length) {
    out('Maps:\n');
    out(
      indent(
        formatTable(
          ['MAP', 'ENTRIES', 'MAX', 'FILL'],
          maps.map((m) => [
            m.map,
            m.ringBytes ? '-' : String(m.entries),
            m.ringBytes ? `${m.ringBytes / 1024} KiB ring` : String(m.maxEntries),
            m.error ?? (m.ringBytes ? '-' : `${((100 * m.entries) / Math.max(1, m.maxEntries)).toFixed(1)}%`),
          ]),
        ),
      ),
    );
  }
  return healthy ? 0 : 1;
}

async function serviceList(ctx: Ctx): Promise<number> {
  const kernel = readKernelServices(ctx.bpfRoot);
  // Names are the agent's knowledge, not the kernel's: add them when the agent answers.
  const names = new Map<string, string>();
  try {
    const fronts = await apiRequest<ServiceName[]>(ctx.socket, 'GET', '/v1/services', undefined, 3000);
    for (const f of fronts) names.set(f.frontend, f.portName ? `${f.service}:${f.portName}` : f.service);
  } catch {
    /* agent down: the kernel's view alone */
  }
  const fmt = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
  const rows = kernel.map((s) => {
    const frontend = fmt(s.frontend.ip, s.frontend.port);
    return {
      id: s.serviceId,
      frontend,
      protocol: s.frontend.proto,
      service: names.get(`${frontend}/${s.frontend.proto}`) ?? null,
      backends: s.backends.map((b) => fmt(b.ip, b.port)),
    };
  });
  if (ctx.json) printJson(rows);
  else
    out(
      formatTable(
        ['ID', 'FRONTEND', 'PROTO', 'SERVICE', 'BACKENDS'],
        rows.map((r) => [
          String(r.id),
          r.frontend,
          r.protocol,
          r.service ?? '-',
          r.backends.join(', ') || '(none: refused)',
        ]),
      ),
    );
  return 0;
}

async function endpointList(ctx: Ctx): Promise<number> {
  const eps = await apiRequest<EndpointRecord[]>(ctx.socket, 'GET', '/v1/endpoints', undefined, 3000).catch(
    (err: Error) => {
      throw new Error(`the agent keeps the endpoints and is not reachable at ${ctx.socket}: ${err.message}`);
    },
  );
  if (ctx.json) printJson(eps);
  else {
    out(
      formatTable(
        ['ID', 'POD', 'CONTAINER', 'IF', 'HOST IF', 'ADDRESSES', 'STATE'],
        eps.map((e) => [
          String(e.id),
          e.podName ? `${e.podNamespace ?? 'default'}/${e.podName}` : '-',
          e.containerId.slice(0, 12),
          e.ifName,
          e.hostIfIndex !== undefined ? `${e.hostIfName} (${e.hostIfIndex})` : e.hostIfName,
          e.ips.map((ip) => ip.address).join(', '),
          e.state,
        ]),
      ),
    );
  }
  return 0;
}

async function uninstall(ctx: Ctx): Promise<number> {
  const agent = await agentStatus(ctx);
  if (agent.status)
    process.stderr.write(
      `weft: warning: the agent (pid ${agent.status.pid}) is still running; stop it first or it keeps serving from memory until restarted\n`,
    );
  const detached = detachAllFilters(ctx.bpfRoot);
  const removed = removeAllPins(ctx.bpfRoot);
  // The L7 proxy's default addresses on this namespace's loopback, where weftd put them.
  const addresses = removeProxyAddresses();
  if (ctx.json) printJson({ removed, detachedInterfaces: detached, proxyAddresses: addresses });
  else {
    out(
      removed.length
        ? `Removed ${removed.length} pins under ${ctx.bpfRoot} and the programs on ${detached.length} pod interfaces; all Weft programs are detached.\n`
        : `Nothing pinned under ${ctx.bpfRoot}.\n`,
    );
    if (addresses.length) out(`Removed the L7 proxy's addresses ${addresses.join(', ')} from lo.\n`);
  }
  return 0;
}
async function explain(ctx: Ctx, v: { from?: string; to?: string; port?: string }): Promise<number> {
  const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(v.port ?? '');
  if (!v.from || !v.to || !m) {
    process.stderr.write('weft explain: want --from NAMESPACE/POD --to NAMESPACE/POD --port PORT[/TCP|UDP|SCTP]\n');
    return 2;
  }
  const params: ExplainQuery = { from: v.from, to: v.to, port: m[1]!, protocol: (m[2] ?? 'TCP').toUpperCase() };
  const q = new URLSearchParams(params);
  const e = await apiRequest<ExplanationDetail>(ctx.socket, 'GET', `/v1/explain?${q}`, undefined, 5000);
  if (ctx.json) {
    printJson({ verdict: e.verdict, policy: e.policy, rule: e.rule, direction: e.direction });
    return 0;
  }
  out(`${e.verdict}  ${v.from} → ${v.to} ${q.get('protocol')}/${q.get('port')}\n`);
  out(`  decided at ${e.direction}${e.policy ? ` by ${e.policy}` : ''}: ${e.rule}\n\n`);
  out(
    formatTable(
      ['DIRECTION', 'POD', 'VERDICT', 'POLICY', 'RULE'],
      e.steps.map((s) => [s.direction, s.pod, s.verdict, s.policy ?? '-', s.rule]),
    ),
  );
  return 0;
}

const OPTIONS = {
  'state-dir': { type: 'string' },
  'bpf-root': { type: 'string' },
  output: { type: 'string', short: 'o', default: 'table' },
  'cni-bin-dir': { type: 'string', default: '/opt/cni/bin' },
  'cni-conf-dir': { type: 'string', default: '/etc/cni/net.d' },
  'agent-socket': { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  port: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const socketFor = (stateDir: string | undefined) =>
  apiSocketPath(path.resolve(stateDir ?? process.env.WEFT_STATE_DIR ?? DEFAULT_STATE_DIR));

/** Where the command word is in argv: the first argument that is no flag nor a global flag's value. */
function commandIndex(argv: string[]): number | undefined {
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  return tokens.find((t) => t.kind === 'positional')?.index;
}

async function main(argv: string[]): Promise<number> {
  // observe has flags of its own (-n, -f, a repeatable --port, -o compact): it parses all of
  // its arguments, the global flags among them.
  const at = commandIndex(argv);
  if (at !== undefined && argv[at] === 'observe')
    return observe([...argv.slice(0, at), ...argv.slice(at + 1)], socketFor);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    process.stderr.write(`weft: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    out(USAGE);
    return values.help ? 0 : 2;
  }
  if (values.output !== 'table' && values.output !== 'json') {
    process.stderr.write(`weft: -o ${values.output}: want table or json\n`);
    return 2;
  }
  const socket = socketFor(values['state-dir']);
  const ctx: Ctx = {
    stateDir: path.dirname(socket),
    bpfRoot: path.resolve(values['bpf-root'] ?? process.env.WEFT_BPF_ROOT ?? DEFAULT_BPF_ROOT),
    json: values.output === 'json',
    socket,
  };
  const cmd = positionals.join(' ');
  switch (cmd) {
    case 'status':
      return status(ctx);
    case 'service list':
    case 'services':
      return serviceList(ctx);
    case 'endpoint list':
    case 'endpoints':
      return endpointList(ctx);
    case 'uninstall':
      return uninstall(ctx);
    case 'explain':
      return explain(ctx, values);
    case 'cni install': {
      const files = installCni({
        binDir: values['cni-bin-dir'],
        confDir: values['cni-conf-dir'],
        agentSocket: values['agent-socket'] ?? ctx.socket,
      });
      if (ctx.json) printJson({ installed: files });
      else out(`Installed ${files.join(' and ')}.\n`);
      return 0;
    }
    case 'cni uninstall': {
      const files = uninstallCni({ binDir: values['cni-bin-dir'], confDir: values['cni-conf-dir'] });
      if (ctx.json) printJson({ removed: files });
      else out(files.length ? `Removed ${files.join(' and ')}.\n` : 'Nothing to remove.\n');
      return 0;
    }
    default:
      process.stderr.write(`weft: unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

// `weft ... | head`: a reader that went away is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`weft: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
