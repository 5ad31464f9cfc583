// GET /v1/flows: the observer's flows as NDJSON on the agent's unix socket, for `weft observe`.
//
// Parameters: every filter flag, named and written as filterToQuery writes them (repeat one to
// OR its values); last=N (the newest N matching flows in the ring); follow=1|true (0|false: off).
// Anything else, or a bad value, is a 400 {error} naming it, before any line is written.
// Each line is one FlowStreamItem: {"flow":{...}} or {"lost":{"stage":"follow","count":N}}.
// Without follow: the matching flows in the ring, oldest first, then the end. With follow: the
// history only when last or since asks for it (Hubble's habit: `-f` alone starts now), then
// every new matching flow until the client goes away. The API has no defaults of its own
// (no last: every matching flow); Hubble's "last 20" belongs to the CLI.
import type http from 'node:http';
import { HttpError, type StreamRoute } from '../lib/unix-http.js';
import { FILTER_FLAGS, filterFromQuery } from './filter.js';
import type { FlowStreamItem } from '../contract/flow.js';
import type { FlowQuery, FlowSource } from './flow-source.js';

export interface FlowRequest {
  query: FlowQuery;
  follow: boolean;
}

const KNOWN = new Set([...FILTER_FLAGS.map((f) => f.flag), 'last', 'follow']);

/** The request's parameters, validated; throws HttpError 400 naming the bad one. */
export function parseFlowParams(q: URLSearchParams, now: Date = new Date()): FlowRequest {
  const unknown = [...new Set([...q.keys()].filter((k) => !KNOWN.has(k)))];
  if (unknown.length)
    throw new HttpError(400, `unknown parameter${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  const once = (name: string): string | undefined => {
    const all = q.getAll(name);
    if (all.length > 1) throw new HttpError(400, `parameter ${name}: given ${all.length} times, want it once`);
    return all[0];
  };
  const lastText = once('last');
  let last: number | undefined;
  if (lastText !== undefined) {
    last = /^\d{1,15}$/.test(lastText) ? Number(lastText) : NaN;
    if (!Number.isSafeInteger(last))
      throw new HttpError(400, `parameter last=${JSON.stringify(lastText)}: want a non-negative integer`);
  }
  const followText = once('follow');
  let follow = false;
  if (followText !== undefined) {
    if (followText === '1' || followText === 'true') follow = true;
    else if (followText !== '0' && followText !== 'false')
      throw new HttpError(400, `parameter follow=${JSON.stringify(followText)}: want 1, true, 0 or false`);
  }
  let filter;
  try {
    filter = filterFromQuery(q, now);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  // Flows after `until` never come: a follower would wait for nothing.
  if (follow && filter.until)
    throw new HttpError(400, 'parameters until and follow: a followed stream has no end, want one or the other');
  // last: 0 asks the source for no history.
  if (follow && last === undefined && !filter.since) last = 0;
  return { query: last === undefined ? { filter } : { filter, last }, follow };
}

/** The flow routes; `source` may throw (an HttpError 503 while the observer is not running). */
export function flowRoutes(source: () => FlowSource): Record<string, StreamRoute> {
  return {
    'GET /v1/flows': {
      stream: (req, res) => {
        const { query, follow } = parseFlowParams(new URL(req.url ?? '/', 'http://weft').searchParams);
        const src = source();
        return follow ? followFlows(src, query, res) : writeFlows(src, query, res);
      },
    },
  };
}

function start(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  // The client learns the query was accepted before the first flow, which may be long.
  res.flushHeaders();
}

const line = (item: FlowStreamItem): string => `${JSON.stringify(item)}\n`;
const BATCH_BYTES = 64 * 1024;

/** The ring's matching flows, in batches that wait for a slow reader (the ring may be large). */
async function writeFlows(src: FlowSource, q: FlowQuery, res: http.ServerResponse): Promise<void> {
  const flows = src.query(q);
  start(res);
  let batch = '';
  for (let i = 0; i < flows.length; i++) {
    batch += line({ flow: flows[i]! });
    if (batch.length < BATCH_BYTES && i < flows.length - 1) continue;
    // Gone, or ended by the server's close(): a write after the end would throw asynchronously.
    if (res.destroyed || res.writableEnded) return;
    const ok = res.write(batch);
    batch = '';
    if (!ok) await drainOrClose(res);
  }
  if (!res.destroyed && !res.writableEnded) res.end();
}

function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Until the client goes away (or the server closes and ends the response). */
function followFlows(src: FlowSource, q: FlowQuery, res: http.ServerResponse): void {
  start(res);
  // A follower pass delivers many flows in one go: they leave in one write, after the pass.
  // After the end (see writeFlows) deliveries are refused; the source then waits for a resume
  // that never comes, and is closed on 'close'.
  let buffered = '';
  let scheduled = false;
  let full = false;
  const flush = () => {
    scheduled = false;
    const chunk = buffered;
    buffered = '';
    if (res.writableEnded || res.destroyed) return;
    // Paused for our own batch limit and the socket took it: go on. Else 'drain' resumes.
    if (res.write(chunk) && full) {
      full = false;
      sub.resume();
    }
  };
  const deliver = (item: FlowStreamItem): boolean => {
    if (res.writableEnded || res.destroyed) return false;
    buffered += line(item);
    if (!scheduled) {
      scheduled = true;
      process.nextTick(flush);
    }
    if (buffered.length < BATCH_BYTES && !res.writableNeedDrain) return true;
    full = true;
    return false;
  };
  const sub = src.follow(q, deliver);
  res.on('drain', () => {
    full = false;
    sub.resume();
  });
  res.once('close', () => sub.close());
  // The client may have gone while the history was written.
  if (res.destroyed) sub.close();
}
