// The bench's idle connections (bench/l7.ts): opens N HTTP/2 connections to a URL, sends one
// GET on each (so a proxy has set the connection up end to end), prints "ready N", and then
// holds them idle until it is killed, or for at most HOLD_MS.
//
//   node idle-h2-client.js URL N
import http2 from 'node:http2';

const HOLD_MS = 120_000;
const BATCH = 100;

const [url, countText] = process.argv.slice(2);
const count = Number(countText);
if (!url || !(count > 0)) {
  process.stderr.write('usage: idle-h2-client URL N\n');
  process.exit(2);
}

function once(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': new URL(url!).pathname });
    req.on('response', (h) => {
      if (h[':status'] !== 200) reject(new Error(`status ${h[':status']}`));
    });
    req.on('error', reject);
    req.on('end', resolve);
    req.resume();
    req.end();
  });
}

const sessions: http2.ClientHttp2Session[] = [];
for (let i = 0; i < count; i += BATCH) {
  const batch = Array.from({ length: Math.min(BATCH, count - i) }, () => {
    const s = http2.connect(url);
    sessions.push(s);
    return new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      once(s).then(resolve, reject);
    });
  });
  await Promise.all(batch);
}
for (const s of sessions) s.on('error', () => {});
process.stdout.write(`ready ${sessions.length}\n`);
setTimeout(() => process.exit(0), HOLD_MS);
