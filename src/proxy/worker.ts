// A weft-proxy worker process (--workers N > 1): one data plane, driven by the primary over
// IPC (src/proxy/workers.ts). It binds the listeners with SO_REUSEPORT. It drains and exits on
// the primary's "drain", on SIGTERM/SIGINT, and when the primary goes away.
import type { ProxySnapshot } from '../contract/proxy-snapshot.js';
import { createLogger, type Level } from '../lib/log.js';
import { ProxyCore } from './core.js';
import type { FromWorker, ToWorker } from './workers.js';

const FLUSH_MS = 10;
const BATCH = 512;
const GRACE_MS = 5000;

const index = process.argv[2] ?? '?';
const level = (process.argv[3] ?? 'info') as Level;
const maxQueuedBytes = Number(process.argv[4]) || undefined;
const log = createLogger({
  level,
  write: (line) => process.stderr.write(line.replace(' msg=', ` worker=${index} msg=`)),
});

const send = (m: FromWorker) => {
  if (process.connected) process.send!(m);
};

let lines: string[] = [];
let timer: NodeJS.Timeout | undefined;
const flush = () => {
  timer = undefined;
  if (!lines.length) return;
  const batch = lines;
  lines = [];
  send({ t: 'flows', lines: batch });
};
const core = new ProxyCore(
  log,
  true,
  (line) => {
    lines.push(line);
    if (lines.length >= BATCH) flush();
    else timer ??= setTimeout(flush, FLUSH_MS);
  },
  maxQueuedBytes === undefined ? {} : { maxQueuedBytes },
);

let draining: Promise<void> | undefined;
const drain = (graceMs: number) =>
  (draining ??= core.drain(graceMs).then(() => {
    flush();
    setImmediate(() => process.exit(0));
  }));

async function onMessage(m: ToWorker): Promise<void> {
  if (m.t === 'flows') {
    core.setFlowsWanted(m.on);
    if (!m.on) lines = [];
    return;
  }
  try {
    let value: unknown;
    if (m.op === 'prepare') await core.prepare(m.arg as ProxySnapshot);
    else if (m.op === 'commit') await core.commit();
    else if (m.op === 'abort') await core.abort();
    else if (m.op === 'metrics') value = await core.metrics();
    else if (m.op === 'drain') {
      send({ t: 'reply', id: m.id, ok: true });
      await drain(Number(m.arg) || GRACE_MS);
      return;
    }
    send({ t: 'reply', id: m.id, ok: true, ...(value !== undefined && { value }) });
  } catch (err) {
    send({ t: 'reply', id: m.id, ok: false, error: (err as Error).message });
  }
}

process.on('message', (m: ToWorker) => {
  onMessage(m).catch((err: unknown) => {
    // A reply that could not be sent (or a failed flows switch) gets here. The primary's calls
    // would wait for ever: the worker exits, so that the primary fails them and starts a new one.
    log.error('cannot answer the primary; exiting', { op: m.t === 'call' ? m.op : m.t, error: String(err) });
    process.exit(1);
  });
});
process.on('disconnect', () => void drain(GRACE_MS));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void drain(GRACE_MS));
send({ t: 'ready' });
