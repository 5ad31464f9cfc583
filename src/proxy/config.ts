// weft-proxy's command line.
import { parseArgs } from 'node:util';
import type { Level } from '../lib/log.js';

export const USAGE = `usage: weft-proxy --admin-socket PATH [flags]

  --admin-socket PATH        the admin API's unix socket (weftd configures the proxy there)
  --metrics-address ADDR     Prometheus metrics on http://ADDR/metrics (default 127.0.0.1:9964)
  --log-level LEVEL          debug, info, warn, error (default info); logfmt on stderr
  --workers N                data-plane worker processes sharing each listener with
                             SO_REUSEPORT (default 1: the data plane runs in this process)
  --max-queued-mib N         MiB of response and request DATA a data-plane process holds for
                             peers that do not open their HTTP/2 windows, all connections
                             together (default 64); past it the streams holding the most are
                             reset (ENHANCE_YOUR_CALM), largest first
  --help                     this text
`;

export interface ProxyConfig {
  adminSocket: string;
  metricsHost: string;
  metricsPort: number;
  logLevel: Level;
  workers: number;
  /** --max-queued-mib, in bytes. */
  maxQueuedBytes: number;
}

const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

/** "HOST:PORT" or "[V6]:PORT". */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--metrics-address ${JSON.stringify(text)}: want HOST:PORT or [IPv6]:PORT`);
  return { host: (m[1] ?? m[2])!, port };
}

export function parseConfig(argv: string[]): ProxyConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      'admin-socket': { type: 'string' },
      'metrics-address': { type: 'string', default: '127.0.0.1:9964' },
      'log-level': { type: 'string', default: 'info' },
      workers: { type: 'string', default: '1' },
      'max-queued-mib': { type: 'string', default: '64' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  if (!values['admin-socket']) throw new Error('--admin-socket is required');
  const logLevel = values['log-level'] as Level;
  if (!LEVELS.includes(logLevel))
    throw new Error(`--log-level ${JSON.stringify(logLevel)}: want one of ${LEVELS.join(', ')}`);
  const workers = /^\d{1,3}$/.test(values.workers) ? Number(values.workers) : NaN;
  if (!(workers >= 1 && workers <= 256))
    throw new Error(`--workers ${JSON.stringify(values.workers)}: want a number from 1 to 256`);
  const mib = /^\d{1,6}$/.test(values['max-queued-mib']) ? Number(values['max-queued-mib']) : NaN;
  if (!(mib >= 1 && mib <= 65_536))
    throw new Error(
      `--max-queued-mib ${JSON.stringify(values['max-queued-mib'])}: want a number of MiB from 1 to 65536`,
    );
  const { host, port } = parseHostPort(values['metrics-address']);
  return {
    adminSocket: values['admin-socket'],
    metricsHost: host,
    metricsPort: port,
    logLevel,
    workers,
    maxQueuedBytes: mib * 1024 * 1024,
  };
}
