// The agent's local API: HTTP/JSON on a unix socket. The CLI (and later the CNI plugin) are its
// clients; the socket is root-only, like the kernel state it describes.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

export type Handler = (req: http.IncomingMessage, body: unknown) => Promise<unknown> | unknown;

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** An error's HTTP status and body: CNI errors carry their CNI code for the plugin to print. */
function errorReply(err: unknown): [number, Record<string, unknown>] {
  const message = (err as Error).message;
  const cniCode = (err as { cniCode?: unknown }).cniCode;
  if (typeof cniCode === 'number') return [cniCode === 11 ? 503 : cniCode === 100 ? 409 : 400, { error: message, cniCode }];
  return [err instanceof HttpError ? err.status : 500, { error: message }];
}

const MAX_BODY = 1 << 20;

export async function serveApi(socketPath: string, routes: Record<string, Handler>): Promise<http.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  // A socket file left by a killed agent would make listen fail with EADDRINUSE.
  fs.rmSync(socketPath, { force: true });
  const server = http.createServer(async (req, res) => {
    const route = `${req.method} ${new URL(req.url ?? '/', 'http://weft').pathname}`;
    const handler = routes[route];
    const reply = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(payload)}\n`);
    };
    if (!handler) return reply(404, { error: `no such endpoint: ${route}` });
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > MAX_BODY) return reply(413, { error: `request body over ${MAX_BODY} bytes`, cniCode: 6 });
        chunks.push(c as Buffer);
      }
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch (err) {
        return reply(400, { error: `request body is not JSON: ${(err as Error).message}`, cniCode: 6 });
      }
      reply(200, await handler(req, body));
    } catch (err) {
      reply(...errorReply(err));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  fs.chmodSync(socketPath, 0o600);
  return server;
}

/** A small client for the agent's socket. */
export async function apiRequest<T>(socketPath: string, method: string, urlPath: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as T & { error?: string };
          if ((res.statusCode ?? 500) >= 400) reject(new Error(parsed.error ?? `HTTP ${res.statusCode}`));
          else resolve(parsed);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent at ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}
