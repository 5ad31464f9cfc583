// weftd entry point.
import { Agent } from './agent.js';
import { USAGE, UsageError, parseConfig } from './config.js';
import { createLogger } from '../lib/log.js';

async function main(): Promise<number> {
  let cfg;
  try {
    cfg = parseConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`weftd: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (cfg === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = createLogger({ level: cfg.logLevel });
  const agent = new Agent(cfg, log);
  // Signals count from the start: an agent waiting for an unreachable API server must still stop cleanly.
  const stopping = new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  const started = agent.start().then(
    () => true,
    (err: unknown) => {
      log.error('weftd failed to start', { error: err instanceof UsageError ? err.message : (err as Error).message });
      return false;
    },
  );
  const ok = await Promise.race([started, stopping.then(() => true)]);
  if (ok) {
    await stopping;
    log.info('weftd stopping; the datapath stays in the kernel');
  }
  await agent.stop().catch(() => {});
  return ok ? 0 : 1;
}

process.exitCode = await main();
