// src/proxy/h2/connection.ts when the code that owns a stream throws (a bug, or a peer's data
// it could not take): that stream is reset with INTERNAL_ERROR, the error is reported, and the
// connection's other streams, and the process, go on. A bare server-side H2Connection on a
// loopback socket, driven by the raw client of test/fixtures/h2-raw.ts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { H2Connection, type H2Stream, type H2StreamHandler } from '../../src/proxy/h2/connection.js';
import { ErrorCode } from '../../src/proxy/h2/frames.js';
import { RawH2, requestList } from '../fixtures/h2-raw.js';
import { Cleanup, closeServer } from '../fixtures/proxy-harness.js';

const cleanup = new Cleanup();
const reported: { message: string; stream: number }[] = [];
/** Paths whose owners heard onReset. */
const told: string[] = [];
let port = 0;

/** Answers 200 with the path as body; throws where the path says to. */
function owner(path: string): H2StreamHandler {
  return {
    onHeaders: () => {},
    onData: (s: H2Stream, data: Buffer, end: boolean) => {
      s.credit(data.length);
      if (path === '/throw-on-data') throw new TypeError('a bug in onData');
      if (end) s.respond([':status', '200'], true);
    },
    onReset: () => {
      told.push(path);
      if (path === '/throw-on-reset') throw new Error('a bug in onReset');
    },
    onDrain: () => {},
  };
}

before(async () => {
  const socks = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socks.add(socket);
    socket.on('close', () => socks.delete(socket));
    new H2Connection(
      socket,
      'server',
      { maxConcurrentStreams: 100, initialWindowSize: 65_535, connectionWindowSize: 65_535, maxHeaderListSize: 16_384 },
      {
        onStream: (s, list, end) => {
          const path = list[list.indexOf(':path') + 1]!;
          if (path === '/throw-on-stream') throw new RangeError('a bug in onStream');
          s.handler = owner(path);
          if (end) s.respond([':status', '200'], true);
        },
        onClose: () => {},
        onOwnerError: (err, stream) => reported.push({ message: err.message, stream }),
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  cleanup.add(() => closeServer(server, socks));
});

after(() => cleanup.run());

describe('H2Connection: a stream owner that throws', () => {
  it('costs that stream (RST_STREAM INTERNAL_ERROR), reported, and the connection serves on', async () => {
    const c = await RawH2.connect(cleanup, port);
    const onStream = c.request(requestList('/throw-on-stream'));
    assert.equal(await c.rst(onStream), ErrorCode.INTERNAL_ERROR);
    const onData = c.request(requestList('/throw-on-data', 'POST'), { body: 'x' });
    assert.equal(await c.rst(onData), ErrorCode.INTERNAL_ERROR);
    assert.equal((await c.response(c.request(requestList('/fine')))).status, 200);
    assert.deepEqual(reported.splice(0), [
      { message: 'a bug in onStream', stream: onStream },
      { message: 'a bug in onData', stream: onData },
    ]);
    // The owner whose onData threw hears that its stream is reset, as any owner would.
    assert.deepEqual(told.splice(0), ['/throw-on-data']);
    assert.equal(
      c.frames.some((f) => f.type === 7 /* GOAWAY */),
      false,
    );
    c.destroy();
  });

  it('tells every stream of a closing connection, even when one owner throws on being told', async () => {
    const c = await RawH2.connect(cleanup, port);
    // Both open (no END_STREAM): the peer going away resets them.
    c.request(requestList('/throw-on-reset', 'POST'), { endStream: false });
    c.request(requestList('/quiet', 'POST'), { endStream: false });
    await c.response(c.request(requestList('/fine'))); // both streams are in place by now
    c.destroy();
    const until = Date.now() + 5000;
    while (reported.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(
      reported.splice(0).map((r) => r.message),
      ['a bug in onReset'],
    );
    assert.deepEqual(told.splice(0).sort(), ['/quiet', '/throw-on-reset']);
    // The process is fine and so is the server: a new connection is served.
    const d = await RawH2.connect(cleanup, port);
    assert.equal((await d.response(d.request(requestList('/fine')))).status, 200);
    d.destroy();
  });
});
