// HTTP/1.1 upgrades other than h2c, WebSocket above all: the request is routed like any other
// (the route's matches, weights and request header edits apply), then a connection to the
// chosen endpoint carries the request head with its Connection and Upgrade headers (they are
// the point here), and from then on bytes are copied both ways until either side closes. The
// endpoint's answer (101 Switching Protocols, or a refusal) reaches the client as it is; its
// status line is read for the metrics and the flow.
//
// The proxy answers itself when it cannot forward: 404 (no route), 500 (the rule's backend is
// invalid), 503 (no endpoint, or the endpoint refused the connection), 502 (it failed before
// answering), each with "Connection: close". A tunnel closes after `idleMs` of silence (the
// listener's TCP_IDLE_MS, as a passthrough).
import type http from 'node:http';
import net from 'node:net';
import type { EndpointState } from './balance.js';
import { report, type Conn } from './forward.js';
import { editList } from './header-list.js';
import type { Backend } from './runtime.js';
import type { Endpoint } from './upstream.js';

/** Whether a request asks to switch to a protocol the proxy tunnels (anything but h2c, which
 *  the proxy speaks itself). */
export function wantsTunnel(req: http.IncomingMessage): boolean {
  const up = req.headers.upgrade;
  if (typeof up !== 'string' || up.trim().toLowerCase() === 'h2c') return false;
  const c = req.headers.connection;
  return typeof c === 'string' && /(?:^|,)\s*upgrade\s*(?:,|$)/i.test(c) && req.method !== 'CONNECT';
}

const REASONS: Record<number, string> = {
  404: 'Not Found',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** The request head as the endpoint gets it: the client's header lines (names in lower case),
 *  the route's edits applied. */
function requestHead(req: http.IncomingMessage, edits: Parameters<typeof editList>[1]): string {
  const raw = req.rawHeaders;
  let list: string[] = [];
  for (let i = 0; i < raw.length; i += 2) list.push(raw[i]!.toLowerCase(), raw[i + 1]!);
  if (edits.length) list = editList(list, edits);
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < list.length; i += 2) head += `${list[i]}: ${list[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/** Routes an upgrade request and tunnels its connection to an endpoint. */
export function tunnel(conn: Conn, req: http.IncomingMessage, socket: net.Socket, head: Buffer, idleMs: number): void {
  conn.kind = 'tcp'; // from here a byte stream: draining leaves it to finish
  const ctx = conn.ctx;
  const state = ctx.state;
  const t0 = performance.now();
  const r = {
    t0,
    pick: undefined as EndpointState<Endpoint> | undefined,
    backend: undefined as Backend | undefined,
    route: '',
    status: 0,
    grpcStatus: -1,
    method: req.method ?? 'GET',
    path: req.url ?? '/',
    dropReason: undefined as string | undefined,
  };
  socket.on('error', () => {});
  const refuse = (status: number, reason: string, dropReason: string) => {
    r.status = status;
    r.dropReason = dropReason;
    const body = `${reason}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${REASONS[status] ?? ''}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    if (state !== undefined) report(conn, state, r, performance.now() - t0);
  };
  const router = conn.binding.router;
  if (state === undefined || router === undefined)
    return refuse(404, `no route: ${conn.binding.serviceKey} is not routed`, 'no-route');
  const d = router
    .forClient(conn.source(state).flow.namespace)
    .route({ method: r.method, path: r.path, headers: req.headers });
  if (d.route !== undefined) r.route = d.route;
  if (d.kind === 'respond') return refuse(d.status, d.reason, d.status === 404 ? 'no-route' : 'invalid-backend');
  const backend = state.backends.get(d.backend);
  const pick = backend?.balancer.pick();
  if (backend === undefined || pick === undefined)
    return refuse(503, `no endpoint: ${d.backend} has no ready endpoint`, 'no-endpoint');
  r.backend = backend;
  r.pick = pick;
  backend.balancer.start(pick);
  let answered = false;
  const up = net.connect({ host: pick.endpoint.ip, port: pick.endpoint.port, noDelay: true });
  up.write(requestHead(req, d.requestHeaders));
  if (head.length) up.write(head);
  up.once('data', (first: Buffer) => {
    // "HTTP/1.1 101 ..." → 101: what the endpoint answered, for the metrics and the flow.
    answered = true;
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(first.toString('latin1', 0, 16));
    r.status = m ? Number(m[1]) : 502;
    const ms = performance.now() - t0;
    backend.balancer.done(pick, ms, r.status < 500);
    report(conn, state, r, ms);
  });
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (answered || socket.destroyed) return void socket.destroy();
    answered = true;
    backend.balancer.done(pick, performance.now() - t0, false);
    ctx.log.debug('upgrade: endpoint error', { endpoint: pick.endpoint.authority, error: err.message });
    const refused = err.code === 'ECONNREFUSED';
    refuse(refused ? 503 : 502, `upstream ${refused ? 'connect error' : 'error'}: ${err.message}`, 'upstream-error');
  });
  up.on('close', () => {
    if (!answered) {
      answered = true;
      backend.balancer.done(pick, performance.now() - t0, false);
      return refuse(502, 'upstream error: the endpoint closed the connection without answering', 'upstream-error');
    }
    socket.end();
  });
  socket.once('close', () => up.destroy());
  const idle = () => {
    socket.destroy();
    up.destroy();
  };
  socket.setTimeout(idleMs, idle);
  up.setTimeout(idleMs, idle);
  up.pipe(socket, { end: false });
  socket.pipe(up);
  socket.resume();
}
