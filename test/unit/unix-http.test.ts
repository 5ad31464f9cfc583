// The unix-socket HTTP/JSON server (src/lib/unix-http.ts): its error replies, over a real socket.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HttpError, serveApi, type Route } from '../../src/lib/unix-http.js';
import { CniCode, CniError } from '../../src/contract/cni.js';

let dir: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-unix-http-'));
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** One request with a raw body; the status and the parsed reply. */
function request(
  socket: string,
  method: string,
  urlPath: string,
  body?: string | Buffer,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: urlPath, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function withServer(routes: Record<string, Route>, fn: (socket: string) => Promise<void>): Promise<void> {
  const socket = path.join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
  const server = await serveApi(socket, routes);
  try {
    await fn(socket);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

describe('serveApi error replies', () => {
  it('an HttpError answers its status with {error} and its fields; any other error is a 500', () =>
    withServer(
      {
        'GET /teapot': () => {
          throw new HttpError(418, 'short and stout');
        },
        'GET /fields': () => Promise.reject(new HttpError(409, 'taken', { holder: 'x' })),
        'GET /bug': () => {
          throw new Error('oops');
        },
      },
      async (socket) => {
        assert.deepEqual(await request(socket, 'GET', '/teapot'), { status: 418, json: { error: 'short and stout' } });
        assert.deepEqual(await request(socket, 'GET', '/fields'), {
          status: 409,
          json: { error: 'taken', holder: 'x' },
        });
        assert.deepEqual(await request(socket, 'GET', '/bug'), { status: 500, json: { error: 'oops' } });
        assert.deepEqual(await request(socket, 'GET', '/nothing'), {
          status: 404,
          json: { error: 'no such endpoint: GET /nothing' },
        });
      },
    ));

  it("an unreadable body is a 400 (not JSON) or a 413 (too large), with the route's bodyErrorFields", () =>
    withServer(
      {
        'POST /plain': (_, body) => ({ got: body }),
        'POST /fields': { handle: (_, body) => ({ got: body }), bodyErrorFields: { code: 6 } },
      },
      async (socket) => {
        assert.deepEqual(await request(socket, 'POST', '/fields', '{"a":1}'), { status: 200, json: { got: { a: 1 } } });
        assert.deepEqual(await request(socket, 'POST', '/plain', ''), { status: 200, json: {} });
        const bad = await request(socket, 'POST', '/plain', '{nope');
        assert.equal(bad.status, 400);
        assert.deepEqual(Object.keys(bad.json as object), ['error']);
        assert.match((bad.json as { error: string }).error, /^request body is not JSON: /);
        const badFields = await request(socket, 'POST', '/fields', '{nope');
        assert.equal(badFields.status, 400);
        assert.equal((badFields.json as { code: number }).code, 6);
        const big = Buffer.alloc((1 << 20) + 1, 0x20);
        assert.deepEqual(await request(socket, 'POST', '/plain', big), {
          status: 413,
          json: { error: `request body over ${1 << 20} bytes` },
        });
        assert.deepEqual(await request(socket, 'POST', '/fields', big), {
          status: 413,
          json: { error: `request body over ${1 << 20} bytes`, code: 6 },
        });
      },
    ));

  it('a CniError answers {error, cniCode} for the plugin: 503 try again later, 409 pool exhausted, else 400', () =>
    withServer(
      Object.fromEntries(
        [CniCode.TryAgainLater, CniCode.PoolExhausted, CniCode.InvalidConfig].map((code) => [
          `GET /${code}`,
          () => {
            throw new CniError(code, `code ${code}`);
          },
        ]),
      ),
      async (socket) => {
        assert.deepEqual(await request(socket, 'GET', '/11'), { status: 503, json: { error: 'code 11', cniCode: 11 } });
        assert.deepEqual(await request(socket, 'GET', '/100'), {
          status: 409,
          json: { error: 'code 100', cniCode: 100 },
        });
        assert.deepEqual(await request(socket, 'GET', '/7'), { status: 400, json: { error: 'code 7', cniCode: 7 } });
      },
    ));
});
