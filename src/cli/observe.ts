// `weft observe`: the agent's flows, with Hubble's flags and habits. Flags are validated here,
// before the agent is asked, so a typo fails at once; the agent gets filterToQuery's parameters
// (GET /v1/flows, src/observe/flow-api.ts) and the CLI keeps Hubble's defaults (last 20).
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { HttpError, apiStream } from '../lib/unix-http.js';
import { FILTER_FLAGS, filterToQuery, parseFilter, type FlowFilter } from '../observe/filter.js';
import type { Flow, FlowStreamItem } from '../contract/flow.js';
import type { ObserverStatus } from '../contract/agent-api.js';
import { formatCompact, formatJson, formatTable } from '../observe/format.js';

/** Hubble's default when neither --follow, --last nor --since says how much. */
export const DEFAULT_LAST = 20;

const SHORT: Record<string, string> = { namespace: 'n', label: 'l', type: 't' };

// One help line per flag, the help in a column.
const flagLine = (short: string | undefined, long: string, help: string): string =>
  `${`  ${short ? `-${short}, ` : '    '}--${long}`.padEnd(26)}${help.replaceAll('\n', `\n${' '.repeat(26)}`)}`;

export const OBSERVE_USAGE = `Usage: weft [global flags] observe [flags]

Flows the datapath saw, from the agent's flow ring, oldest first. Without --follow, --last
or --since: the last ${DEFAULT_LAST} flows. Criteria of different flags must all hold; the
values of a repeated flag are alternatives. --X matches either side, --from-X the source,
--to-X the destination.

Flags:
${[
  flagLine(
    'f',
    'follow',
    'keep printing new flows until interrupted (Ctrl-C);\nwith --last N or --since, print those flows first',
  ),
  flagLine(undefined, 'last N', 'the last N matching flows'),
  flagLine(
    'o',
    'output FMT',
    'compact (default: one line a flow), json (one flow\n' +
      'object a line) or table (aligned columns; not with\n' +
      '--follow: it cannot align rows it has not seen yet)',
  ),
  ...FILTER_FLAGS.map(({ flag, help }) =>
    flagLine(SHORT[flag], `${flag} ${flag === 'since' || flag === 'until' ? 'TIME' : 'X'}`, help),
  ),
].join('\n')}

Lost flows are reported on stderr. Colors on a terminal unless NO_COLOR is set.
`;

const options = {
  follow: { type: 'boolean', short: 'f' },
  last: { type: 'string' },
  output: { type: 'string', short: 'o' },
  // The global flags, accepted after the command too.
  'state-dir': { type: 'string' },
  'bpf-root': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  // Every filter flag repeats: parseFilter refuses a repeated --since or --until itself.
  ...Object.fromEntries(
    FILTER_FLAGS.map(({ flag }) => [
      flag,
      SHORT[flag] ? { type: 'string', multiple: true, short: SHORT[flag] } : { type: 'string', multiple: true },
    ]),
  ),
} as const;

type Output = 'compact' | 'json' | 'table';

interface Request {
  output: Output;
  follow: boolean;
  stateDir: string | undefined;
  /** The query string of GET /v1/flows. */
  query: URLSearchParams;
}

/** The request the flags ask for, or the usage error to print. Exported for tests. */
export function observeRequest(argv: string[], now: Date = new Date()): Request | { error: string } | 'help' {
  let values: Record<string, string | string[] | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options, allowPositionals: true }));
  } catch (err) {
    return { error: (err as Error).message };
  }
  if (values.help) return 'help';
  if (positionals.length) return { error: `unexpected argument "${positionals[0]}"` };
  const output = (values.output ?? 'compact') as string;
  if (output !== 'compact' && output !== 'json' && output !== 'table')
    return { error: `-o ${output}: want compact, json or table` };
  const follow = values.follow === true;
  const last = values.last as string | undefined;
  if (last !== undefined && !/^\d{1,15}$/.test(last))
    return { error: `--last ${JSON.stringify(last)}: want a non-negative integer` };
  if (output === 'table' && follow)
    return { error: '-o table cannot --follow (it aligns the columns over all rows): use -o compact or -o json' };
  let filter: FlowFilter;
  try {
    const args: Record<string, string[]> = {};
    for (const { flag } of FILTER_FLAGS) if (values[flag] !== undefined) args[flag] = values[flag] as string[];
    filter = parseFilter(args, now);
  } catch (err) {
    return { error: (err as Error).message };
  }
  if (follow && filter.until) return { error: '--until cannot --follow: flows after it never come' };
  const query = filterToQuery(filter);
  if (last !== undefined) query.set('last', last);
  else if (!follow && !filter.since) query.set('last', String(DEFAULT_LAST));
  if (follow) query.set('follow', '1');
  return { output, follow, stateDir: values['state-dir'] as string | undefined, query };
}

const CONNECT_ERRORS = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK', 'ETIMEDOUT']);

/** Runs `weft observe`; `socketFor` finds the agent's socket as every command does. */
export async function observe(argv: string[], socketFor: (stateDir: string | undefined) => string): Promise<number> {
  const req = observeRequest(argv);
  if (req === 'help') {
    process.stdout.write(OBSERVE_USAGE);
    return 0;
  }
  if ('error' in req) {
    process.stderr.write(`weft observe: ${req.error}\n(weft observe -h lists the flags)\n`);
    return 2;
  }
  const socket = socketFor(req.stateDir);
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  const table: Flow[] = [];
  // Waits for a full stdout, so a slow reader slows the agent's stream (which then reports
  // what it dropped) rather than this process's memory growing.
  const write = (s: string): Promise<unknown> | undefined =>
    process.stdout.write(s) ? undefined : once(process.stdout, 'drain');
  const onItem = (obj: unknown): Promise<unknown> | undefined => {
    const item = obj as FlowStreamItem;
    if ('lost' in item) {
      const { count, stage } = item.lost;
      process.stderr.write(`weft observe: ${count} flow${count === 1 ? '' : 's'} lost (stage ${stage})\n`);
      return undefined;
    }
    if (!('flow' in item)) return undefined; // a kind of line from a newer agent
    if (req.output === 'table') table.push(item.flow);
    else return write(`${req.output === 'json' ? formatJson(item.flow) : formatCompact(item.flow, { color })}\n`);
    return undefined;
  };

  const stop = new AbortController();
  const interrupt = () => stop.abort();
  if (req.follow) process.once('SIGINT', interrupt);
  try {
    await apiStream(socket, `/v1/flows?${req.query}`, onItem, { signal: stop.signal });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof HttpError && err.status === 404)
      process.stderr.write(`weft observe: the agent has no flow API (${e.message}): it is older than this weft\n`);
    else if (err instanceof HttpError) process.stderr.write(`weft observe: the agent refused: ${e.message}\n`);
    else if (e.code && CONNECT_ERRORS.has(e.code))
      process.stderr.write(`weft observe: the agent is not reachable at ${socket}: ${e.message}\n`);
    else process.stderr.write(`weft observe: ${e.message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', interrupt);
  }
  if (req.output === 'table') process.stdout.write(formatTable(table));
  if (req.follow && !stop.signal.aborted) {
    // Only the agent ends a followed stream: it is stopping.
    process.stderr.write('weft observe: the agent ended the stream\n');
    return 1;
  }
  return 0;
}

// ---- weft status ----

const count = (n: number) => n.toLocaleString('en-US');

function bytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  }
  return `${n} B`;
}

/** The observer's line of `weft status`, after "Flows:". */
export function formatObserverStatus(o: ObserverStatus): string {
  const used = o.kernelRing.sizeBytes > 0 ? (100 * o.kernelRing.usedBytes) / o.kernelRing.sizeBytes : 0;
  const pct = used > 0 && used < 1 ? '<1' : String(Math.round(used));
  const proxyLost = o.lost.proxy ? `, proxy ${count(o.lost.proxy)}` : '';
  return [
    `${o.flowsPerSecond.toFixed(1)}/s (${count(o.flowsTotal)} total)`,
    `kernel ring ${pct}% of ${bytes(o.kernelRing.sizeBytes)}`,
    `flow ring ${count(o.flowRing.flows)}/${count(o.flowRing.capacity)}`,
    `lost: kernel ${count(o.lost.kernel)}, decode ${count(o.lost.decode)}, follow ${count(o.lost.follow)}${proxyLost}`,
    `${o.followers} follower${o.followers === 1 ? '' : 's'}`,
    ...(o.error ? [`NOT READING THE KERNEL: ${o.error}`] : []),
  ].join('; ');
}
