// weft-proxy entry point: the per-node L7 proxy. weftd configures it over --admin-socket with
// versioned snapshots (src/proxy/admin.ts); the data plane (src/proxy/core.ts) runs in this
// process, or in --workers N worker processes (src/proxy/workers.ts).
//
// SIGTERM/SIGINT: stop accepting, finish the requests in flight (at most GRACE_MS), exit 0.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../lib/log.js';
import { Admin } from './admin.js';
import { USAGE, parseConfig, type ProxyConfig } from './config.js';
import { ProxyCore, type DataPlane } from './core.js';
import { WorkerPlane } from './workers.js';

const GRACE_MS = 5000;

async function main(): Promise<number> {
  let cfg: ProxyConfig | 'help';
  try {
    cfg = parseConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`weft-proxy: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (cfg === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = createLogger({ level: cfg.logLevel });
  const stopping = new Promise<NodeJS.Signals>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve(sig));
  });

  let planes: DataPlane[];
  let workers: WorkerPlane[] = [];
  const admin = new Admin(log, {
    processMetrics: cfg.workers > 1,
    ...(cfg.workers > 1 && { workers: () => workers.filter((w) => w.alive).length }),
  });
  if (cfg.workers === 1) {
    planes = [new ProxyCore(log, false, (line) => admin.hub.publish(line), { maxQueuedBytes: cfg.maxQueuedBytes })];
  } else {
    const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js');
    workers = Array.from(
      { length: cfg.workers },
      (_, i) =>
        new WorkerPlane(i, {
          entry,
          args: [String(i), cfg.logLevel, String(cfg.maxQueuedBytes)],
          execArgv: process.execArgv,
          log,
          onFlows: (lines) => admin.hub.publishAll(lines),
          onRestart: (w) => admin.catchUp(w),
        }),
    );
    planes = workers;
  }
  admin.setPlanes(planes);
  try {
    await Promise.all(workers.map((w) => w.start()));
    const m = await admin.serveMetrics(cfg.metricsHost, cfg.metricsPort);
    await admin.serveAdmin(cfg.adminSocket);
    log.info('weft-proxy started', {
      admin: cfg.adminSocket,
      metrics: `${m.host}:${m.port}`,
      workers: cfg.workers,
      pid: process.pid,
    });
  } catch (err) {
    log.error('weft-proxy failed to start', { error: (err as Error).message });
    await Promise.allSettled(planes.map((p) => p.drain(0)));
    await admin.close().catch(() => {});
    return 1;
  }
  const sig = await stopping;
  log.info('weft-proxy stopping: draining connections', { signal: sig, graceMs: GRACE_MS });
  await Promise.allSettled([admin.close(), ...planes.map((p) => p.drain(GRACE_MS))]);
  log.info('weft-proxy stopped');
  return 0;
}

process.exitCode = await main();
// Upstream pools and timers may still hold the loop: the work is done.
process.exit();
