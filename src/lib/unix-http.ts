// HTTP/JSON on a unix socket, with NDJSON streams: the server and client of weftd's local API
// (its clients: weft and the CNI plugin) and of weft-proxy's admin socket. The socket is made
// root-only (0600), like the kernel state it describes. (Messages name "the agent": its users.)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

/** Answers a request with its JSON body parsed (undefined when empty). */
export type Handler = (req: http.IncomingMessage, body: unknown) => Promise<unknown> | unknown;

/** A Handler with options. `bodyErrorFields` go into the error reply when the request's body
 *  cannot be read (over the size limit, or not JSON), for clients that want more than `error`. */
export interface JsonRoute {
  handle: Handler;
  bodyErrorFields?: Record<string, unknown>;
}

/** A route that writes its own response, for answers that go on (NDJSON streams). It owns `res`
 *  from the start and must watch res 'close' (the client left, or the server is closing).
 *  Throwing (or rejecting) before writing anything still gets the JSON error reply. */
export interface StreamRoute {
  stream: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;
}

export type Route = Handler | JsonRoute | StreamRoute;

/** An error a handler throws to answer with this status; `fields` go into the reply's body
 *  after `error`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fields?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** An error's HTTP status and body: {error} and the HttpError's fields; any other error is a 500. */
function errorReply(err: unknown): [number, Record<string, unknown>] {
  const message = (err as Error).message;
  if (err instanceof HttpError) return [err.status, { error: message, ...err.fields }];
  return [500, { error: message }];
}

const MAX_BODY = 1 << 20;
/** How long close() lets an ended stream flush to a client that stopped reading. */
const STREAM_CLOSE_GRACE_MS = 1000;

/** close() ends the open streams first: a follower would otherwise hold the server open (and
 *  the agent's shutdown with it) for as long as it stays connected. */
class ApiServer extends http.Server {
  readonly streams = new Set<http.ServerResponse>();
  closing = false;

  override close(callback?: (err?: Error) => void): this {
    this.closing = true;
    for (const res of this.streams) {
      res.end();
      const t = setTimeout(() => res.destroy(), STREAM_CLOSE_GRACE_MS);
      res.once('close', () => clearTimeout(t));
    }
    return super.close(callback);
  }
}

export async function serveApi(socketPath: string, routes: Record<string, Route>): Promise<http.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  // A socket file left by a killed agent would make listen fail with EADDRINUSE.
  fs.rmSync(socketPath, { force: true });
  const server: ApiServer = new ApiServer((req, res) => {
    answer(server, routes, req, res).catch((err: unknown) => {
      // Only a failure of the error reply itself gets here: the client is cut off rather than
      // left waiting, and the server goes on.
      res.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  fs.chmodSync(socketPath, 0o600);
  return server;
}

/** Answers one request by its route: a handler's result (or error) as JSON, or a stream. */
async function answer(
  server: ApiServer,
  routes: Record<string, Route>,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const route = `${req.method} ${new URL(req.url ?? '/', 'http://weft').pathname}`;
  const handler = Object.hasOwn(routes, route) ? routes[route] : undefined;
  const reply = (status: number, payload: unknown) => {
    // Encoded first: an answer JSON cannot encode (a bigint, a cycle) throws before the status
    // line is out, and becomes a 500 below.
    const text = `${JSON.stringify(payload)}\n`;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(text);
  };
  if (!handler) return reply(404, { error: `no such endpoint: ${route}` });
  if (typeof handler !== 'function' && 'stream' in handler) return stream(server, handler, req, res, reply);
  const { handle, bodyErrorFields }: JsonRoute = typeof handler === 'function' ? { handle: handler } : handler;
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) return reply(413, { error: `request body over ${MAX_BODY} bytes`, ...bodyErrorFields });
      chunks.push(c as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch (err) {
      return reply(400, { error: `request body is not JSON: ${(err as Error).message}`, ...bodyErrorFields });
    }
    reply(200, await handle(req, body));
  } catch (err) {
    reply(...errorReply(err));
  }
}

async function stream(
  server: ApiServer,
  route: StreamRoute,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  reply: (status: number, payload: unknown) => void,
): Promise<void> {
  // A kept-alive connection can still ask after close(): a new stream would hold it open.
  if (server.closing) return reply(503, { error: 'the agent is stopping' });
  // Not worth keeping the connection for, and a closed one lets the server's close() finish.
  res.setHeader('connection', 'close');
  server.streams.add(res);
  res.once('close', () => server.streams.delete(res));
  try {
    await route.stream(req, res);
  } catch (err) {
    if (!res.headersSent) reply(...errorReply(err));
    else res.destroy(err as Error); // mid-stream: the client sees the stream break off, not a clean end
  }
}

/** A small client for such a socket. */
export async function apiRequest<T>(
  socketPath: string,
  method: string,
  urlPath: string,
  body?: unknown,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path: urlPath, timeout: timeoutMs, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as T & { error?: string };
            if ((res.statusCode ?? 500) >= 400) reject(new Error(parsed.error ?? `HTTP ${res.statusCode}`));
            else resolve(parsed);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent at ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

export interface StreamOptions {
  /** Aborting stops following: the promise then resolves. */
  signal?: AbortSignal;
  /** For the answer to start (connect and status line); a stream may then be quiet for long. */
  timeoutMs?: number;
}

/** Reads an NDJSON answer, one parsed object per line, in order. `onLine` may return a promise:
 *  reading waits for it, so a slow consumer slows the agent's writes instead of piling up here.
 *  Resolves at the end of the stream or on abort; rejects with the agent's `error` on an error
 *  status (an HttpError carrying it), and when the stream breaks off. */
export async function apiStream(
  socketPath: string,
  urlPath: string,
  onLine: (obj: unknown) => unknown,
  opts: StreamOptions = {},
): Promise<void> {
  const { signal, timeoutMs = 5000 } = opts;
  if (signal?.aborted) return;
  let res: http.IncomingMessage;
  try {
    res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      // A connection of its own (agent: false): a stream is long, and a pooled socket may be one
      // a restarted agent has closed.
      const req = http.request(
        { socketPath, method: 'GET', path: urlPath, timeout: timeoutMs, signal, agent: false },
        resolve,
      );
      req.on('timeout', () =>
        req.destroy(
          Object.assign(new Error(`no answer from the agent at ${socketPath} within ${timeoutMs} ms`), {
            code: 'ETIMEDOUT',
          }),
        ),
      );
      req.on('error', reject);
      req.end();
    });
  } catch (err) {
    if (signal?.aborted) return;
    throw err;
  }
  res.socket.setTimeout(0); // a follower may wait long for the next line
  const status = res.statusCode ?? 500;
  let consumerFailed = false;
  try {
    if (status >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      let message = `HTTP ${status}`;
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? message;
      } catch {
        if (text.trim()) message = `${message}: ${text.trim()}`;
      }
      throw new HttpError(status, message);
    }
    res.setEncoding('utf8'); // decodes characters split across chunks
    let partial = '';
    // Async iteration reads the next chunk only when the previous one is handled: backpressure.
    for await (const chunk of res) {
      const lines = (partial + (chunk as string)).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === '') continue;
        const obj = parse(line);
        try {
          const r = onLine(obj);
          if (r instanceof Promise) await r;
        } catch (err) {
          consumerFailed = true;
          throw err;
        }
      }
    }
    if (partial.trim() !== '') throw new Error(`the agent's stream ended inside a line: ${partial.slice(0, 80)}`);
  } catch (err) {
    if (signal?.aborted) return;
    if (consumerFailed || err instanceof HttpError || !(err as NodeJS.ErrnoException).code) throw err;
    // ECONNRESET, "aborted": the agent went away mid-stream.
    throw new Error(`the agent's stream broke off: ${(err as Error).message}`);
  } finally {
    res.destroy();
  }
}

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`the agent sent a line that is not JSON: ${line.slice(0, 80)}`);
  }
}
