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
  try {
    await agent.start();
  } catch (err) {
    log.error('weftd failed to start', { error: err instanceof UsageError ? err.message : (err as Error).message });
    await agent.stop().catch(() => {});
    return 1;
  }
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  log.info('weftd stopping; the datapath stays in the kernel');
  await agent.stop();
  return 0;
}

process.exitCode = await main();
