// weft-proxy's command line (src/proxy/config.ts parseConfig): the defaults its usage text
// promises, and an error naming the flag for each wrong value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { USAGE, parseConfig, type ProxyConfig } from '../../src/proxy/config.js';

const MiB = 1024 * 1024;

function cfg(argv: string[]): ProxyConfig {
  const c = parseConfig(['--admin-socket', '/run/weft/proxy.sock', ...argv]);
  assert.notEqual(c, 'help');
  return c as ProxyConfig;
}

describe('weft-proxy parseConfig', () => {
  it('defaults', () => {
    assert.deepEqual(cfg([]), {
      adminSocket: '/run/weft/proxy.sock',
      metricsHost: '127.0.0.1',
      metricsPort: 9964,
      logLevel: 'info',
      workers: 1,
      maxQueuedBytes: 64 * MiB,
    });
    for (const promise of ['default 127.0.0.1:9964', 'default info', 'default 1', 'default 64'])
      assert.ok(USAGE.includes(promise), promise);
  });

  it('takes each flag', () => {
    const c = cfg([
      '--metrics-address',
      '[::1]:9000',
      '--log-level',
      'debug',
      '--workers',
      '4',
      '--max-queued-mib',
      '256',
    ]);
    assert.deepEqual(
      [c.metricsHost, c.metricsPort, c.logLevel, c.workers, c.maxQueuedBytes],
      ['::1', 9000, 'debug', 4, 256 * MiB],
    );
    assert.equal(parseConfig(['--help']), 'help');
  });

  it('names the flag of a wrong value', () => {
    const cases: [string[], string][] = [
      [[], '--admin-socket'],
      [['--admin-socket', 's', '--workers', '0'], '--workers'],
      [['--admin-socket', 's', '--workers', 'two'], '--workers'],
      [['--admin-socket', 's', '--max-queued-mib', '0'], '--max-queued-mib'],
      [['--admin-socket', 's', '--max-queued-mib', '1.5'], '--max-queued-mib'],
      [['--admin-socket', 's', '--max-queued-mib', '100000'], '--max-queued-mib'],
      [['--admin-socket', 's', '--metrics-address', '9964'], '--metrics-address'],
      [['--admin-socket', 's', '--log-level', 'loud'], '--log-level'],
      [['--admin-socket', 's', '--bogus'], '--bogus'],
    ];
    for (const [argv, flag] of cases)
      assert.throws(
        () => parseConfig(argv),
        (err: Error) => err.message.includes(flag),
        `${argv.join(' ')}: an error naming ${flag}`,
      );
  });
});
