// HTTP/1.1 upgrades through weft-proxy (WebSocket): routed by the route's rules, the
// route's request header edits applied, the Connection and Upgrade headers passed to the
// endpoint, bytes both ways after the endpoint's 101, the upgrade counted in the metrics; the
// proxy's own answers when it cannot forward; an endpoint that refuses the upgrade answers the
// client itself. Real sockets on loopback addresses, a real proxy process.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  Cleanup,
  buildTestSnapshot,
  closeServer,
  freePort,
  freePortOn,
  httpRoute,
  startProxy,
  type ProxyProcess,
} from '../fixtures/proxy-harness.js';
import { parsePrometheusText } from '../harness/prom-text.js';

const CHAT = ['127.0.0.1', '127.0.0.2'];
const PLAIN = '127.0.0.3';
const cleanup = new Cleanup();
let proxy: ProxyProcess;
let listen: number;

/** Answers an upgrade to "websocket" with 101, headers that tell what it saw, then echoes
 *  each chunk prefixed with its name; any other upgrade with 426. */
async function upgradeBackend(name: string, host: string, port: number): Promise<void> {
  const server = http.createServer((_req, res) => res.writeHead(200).end(`${name}: plain\n`));
  const sockets = new Set<net.Socket>();
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (req.headers.upgrade !== 'websocket')
      return void socket.end('HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `X-Backend: ${name}\r\nX-Seen: ${req.method} ${req.url} upgrade=${req.headers.upgrade} routed=${req.headers['x-routed'] ?? '-'}\r\n\r\n`,
    );
    if (head.length) socket.write(`${name}:${head.toString()}`);
    socket.on('data', (d: Buffer) => socket.write(`${name}:${d.toString()}`));
  });
  await new Promise<void>((r, j) => server.once('error', j).listen(port, host, () => r()));
  cleanup.add(() => closeServer(server, sockets));
}

/** A raw client: sends `request`, reads the response head, then exchanges messages. */
async function connect(
  request: string,
): Promise<{ head: string; status: number; socket: net.Socket; next: () => Promise<string> }> {
  const socket = net.connect({ host: '127.0.0.1', port: listen });
  cleanup.add(() => void socket.destroy());
  socket.setEncoding('latin1');
  let buf = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (d: string) => {
    buf += d;
    for (const w of waiters.splice(0)) w();
  });
  socket.on('error', () => {});
  const more = () =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer within 5 s; so far: ${JSON.stringify(buf)}`)), 5000);
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  socket.write(request);
  while (!buf.includes('\r\n\r\n')) await more();
  const end = buf.indexOf('\r\n\r\n') + 4;
  const head = buf.slice(0, end);
  buf = buf.slice(end);
  const next = async () => {
    while (buf === '') await more();
    const out = buf;
    buf = '';
    return out;
  };
  return { head, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), socket, next };
}

const upgradeRequest = (path: string, protocol = 'websocket') =>
  `GET ${path} HTTP/1.1\r\nHost: chat\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;

before(async () => {
  const chatPort = await freePortOn(CHAT);
  for (const [i, ip] of CHAT.entries()) await upgradeBackend(`chat-${i + 1}`, ip, chatPort);
  proxy = await startProxy(cleanup);
  listen = await freePort();
  const snapshot = buildTestSnapshot({
    version: 1,
    services: [
      { name: 'chat', clusterIP: '10.96.0.20', port: 80, targetPort: chatPort, endpoints: CHAT },
      { name: 'empty', clusterIP: '10.96.0.21', port: 80, targetPort: chatPort, endpoints: [] },
      { name: 'plain', clusterIP: '10.96.0.22', port: 80, targetPort: await freePort(PLAIN), endpoints: [PLAIN] },
    ],
    routes: [
      httpRoute('chat', {
        parentRefs: [{ group: '', kind: 'Service', name: 'chat' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/chat' } }],
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'x-routed', value: 'chat-rule' }] },
              },
            ],
            backendRefs: [{ name: 'chat', port: 80 }],
          },
          { matches: [{ path: { type: 'PathPrefix', value: '/empty' } }], backendRefs: [{ name: 'empty', port: 80 }] },
          // Nothing listens on plain's endpoint: the connection is refused.
          {
            matches: [{ path: { type: 'PathPrefix', value: '/refused' } }],
            backendRefs: [{ name: 'plain', port: 80 }],
          },
        ],
      }),
    ],
    listeners: [{ address: '127.0.0.1', port: listen, service: 'demo/chat', servicePort: 80 }],
  });
  assert.deepEqual(await proxy.put(snapshot), { version: 1 });
});

after(() => cleanup.run());

describe('HTTP/1.1 upgrades (WebSocket) through weft-proxy', () => {
  it("routes the upgrade, passes Upgrade and the route's header edits to the endpoint, and carries bytes both ways after its 101", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const c = await connect(upgradeRequest(`/chat/room-${i}`));
      assert.equal(c.status, 101, c.head);
      assert.match(c.head, /\r\nupgrade: websocket\r\n/i);
      assert.match(
        c.head,
        new RegExp(`\\r\\nx-seen: GET /chat/room-${i} upgrade=websocket routed=chat-rule\\r\\n`, 'i'),
      );
      const backend = /\r\nx-backend: (\S+)\r\n/i.exec(c.head)![1]!;
      seen.add(backend);
      c.socket.write('hello');
      assert.equal(await c.next(), `${backend}:hello`);
      c.socket.write('again');
      assert.equal(await c.next(), `${backend}:again`);
      c.socket.destroy();
    }
    assert.deepEqual([...seen].sort(), ['chat-1', 'chat-2'], 'upgrades balanced over both endpoints');
    const m = parsePrometheusText(await proxy.metrics());
    // Summed over the destination workloads (both endpoints).
    const upgrades = m.samples
      .filter(
        (s) =>
          s.name === 'weft_http_requests_total' &&
          s.labels.destination_service === 'demo/chat' &&
          s.labels.status === '101',
      )
      .reduce((a, s) => a + s.value, 0);
    assert.equal(upgrades, 6);
  });

  it('answers an upgrade it cannot forward itself: 404 without a matching rule, 503 without an endpoint or when the endpoint refuses', async () => {
    for (const [path, status] of [
      ['/elsewhere', 404],
      ['/empty', 503],
      ['/refused', 503],
    ] as const) {
      const c = await connect(upgradeRequest(path));
      assert.equal(c.status, status, `${path}: ${c.head}`);
      assert.match(c.head, /\r\nconnection: close\r\n/i);
      c.socket.destroy();
    }
  });

  it("passes an endpoint's refusal of the upgrade to the client as it is", async () => {
    const c = await connect(upgradeRequest('/chat/x', 'not-websocket'));
    assert.equal(c.status, 426, c.head);
    c.socket.destroy();
  });
});
