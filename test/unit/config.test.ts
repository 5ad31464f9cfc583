// weftd's command line (src/agent/config.ts parseConfig): the defaults the README promises and
// the errors a user gets for a wrong invocation.
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { USAGE, UsageError, parseConfig, type AgentConfig } from '../../src/agent/config.js';

function cfg(argv: string[]): AgentConfig {
  const c = parseConfig(argv);
  assert.notEqual(c, 'help');
  return c as AgentConfig;
}

/** Asserts parseConfig rejects argv with an error whose message names `flag`. */
function rejected(argv: string[], flag: string, opts: { usage?: boolean } = {}): Error {
  let caught: unknown;
  try {
    parseConfig(argv);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, `${JSON.stringify(argv)} should be rejected`);
  if (opts.usage)
    assert.ok(
      caught instanceof UsageError,
      `${JSON.stringify(argv)}: expected a UsageError, got ${caught.constructor.name}: ${caught.message}`,
    );
  assert.ok(caught.message.includes(flag), `the error names ${flag}: ${caught.message}`);
  return caught;
}

describe('parseConfig', () => {
  it('defaults', () => {
    const c = cfg(['--source', 'kubernetes']);
    assert.deepEqual(c, {
      source: { kind: 'kubernetes' },
      bpfRoot: '/sys/fs/bpf/weft',
      stateDir: '/var/run/weft',
      socketPath: '/var/run/weft/weft.sock',
      nodeName: os.hostname(),
      podCidrs: [],
      metricsAddress: '127.0.0.1:9962',
      logLevel: 'info',
      flowEvents: 'new-and-drops',
      flowBufferSize: 16384,
      proxy: {
        mode: 'managed',
        addresses: { 4: '169.254.42.1', 6: 'fd00:a9fe:2a::1' },
        portBase: 15000,
        metricsAddress: '127.0.0.1:9964',
        adminSocket: '/var/run/weft/proxy.sock',
        balancer: 'peak-ewma',
      },
    });
  });

  it('--source dir:PATH resolves a relative path to an absolute one', () => {
    assert.deepEqual(cfg(['--source', 'dir:manifests']).source, { kind: 'dir', dir: path.resolve('manifests') });
    assert.deepEqual(cfg(['--source', 'dir:/etc/weft/manifests/']).source, { kind: 'dir', dir: '/etc/weft/manifests' });
    assert.deepEqual(cfg(['--source=dir:./a/../b']).source, { kind: 'dir', dir: path.resolve('b') });
  });

  it('--source kubernetes, with --kubeconfig', () => {
    assert.deepEqual(cfg(['--source', 'kubernetes', '--kubeconfig', '/root/.kube/config']).source, {
      kind: 'kubernetes',
      kubeconfig: '/root/.kube/config',
    });
  });

  it('missing --source is a UsageError naming the flag', () => {
    rejected([], '--source', { usage: true });
    rejected(['--bpf-root', '/sys/fs/bpf/x'], '--source', { usage: true });
  });

  for (const bad of ['dir:', 'dir', 'k8s', 'Kubernetes', '/some/path', '']) {
    it(`bad --source ${JSON.stringify(bad)} is a UsageError naming the flag`, () => {
      const err = rejected(['--source', bad], '--source', { usage: true });
      if (bad) assert.ok(err.message.includes(JSON.stringify(bad)), `the error quotes the value: ${err.message}`);
    });
  }

  it('--source without a value is rejected, naming the flag', () => {
    rejected(['--source'], '--source');
  });

  it('unknown flags are rejected, naming the flag', () => {
    rejected(['--source', 'kubernetes', '--bogus'], '--bogus');
    rejected(['--source', 'kubernetes', '--bpfroot', '/x'], '--bpfroot');
  });

  it('positional arguments are rejected', () => {
    assert.throws(() => parseConfig(['--source', 'kubernetes', 'extra']));
  });

  it('--pod-cidr rejects what is not a CIDR, naming it', () => {
    for (const bad of ['garbage', '10.244.1.0', '10.244.1.1/24', '10.244.1.0/33']) {
      assert.throws(
        () => cfg(['--source', 'kubernetes', '--pod-cidr', bad]),
        (e: Error) => e instanceof UsageError && e.message.includes(`--pod-cidr ${bad}: not a CIDR`),
      );
    }
  });

  it('--flow-events is new-and-drops by default, every-packet on request, and nothing else', () => {
    assert.equal(cfg(['--source', 'kubernetes']).flowEvents, 'new-and-drops');
    assert.equal(cfg(['--source', 'kubernetes', '--flow-events', 'every-packet']).flowEvents, 'every-packet');
    assert.throws(
      () => cfg(['--source', 'kubernetes', '--flow-events', 'all']),
      (e: Error) =>
        e instanceof UsageError && e.message.includes('--flow-events all: want new-and-drops or every-packet'),
    );
  });

  it('--proxy flags: mode, one address per family, port base', () => {
    const c = cfg([
      '--source',
      'kubernetes',
      '--proxy',
      'external',
      '--proxy-address',
      '10.0.0.9',
      '--proxy-port-base',
      '20000',
      '--state-dir',
      '/tmp/w',
    ]);
    assert.deepEqual(c.proxy, {
      mode: 'external',
      addresses: { 4: '10.0.0.9' },
      portBase: 20000,
      metricsAddress: '127.0.0.1:9964',
      adminSocket: '/tmp/w/proxy.sock',
      balancer: 'peak-ewma',
    });
    assert.equal(cfg(['--source', 'kubernetes', '--proxy-balancer', 'least-request']).proxy.balancer, 'least-request');
    const bad: [string[], string][] = [
      [['--proxy', 'sidecar'], '--proxy sidecar: want managed, external or off'],
      [['--proxy-address', 'nope'], '--proxy-address nope: not an IP address'],
      [
        ['--proxy-address', '10.0.0.1', '--proxy-address', '10.0.0.2'],
        '--proxy-address 10.0.0.2: an IPv4 address is already given (10.0.0.1)',
      ],
      [['--proxy-port-base', '80'], '--proxy-port-base 80: want a port from 1024 to 65535'],
      [['--proxy-balancer', 'random'], '--proxy-balancer random: want peak-ewma, round-robin, least-request'],
    ];
    for (const [args, msg] of bad)
      assert.throws(
        () => cfg(['--source', 'kubernetes', ...args]),
        (e: Error) => e instanceof UsageError && e.message === msg,
        msg,
      );
  });

  it('--flow-buffer-size takes a number of flows, within bounds', () => {
    assert.equal(cfg(['--source', 'kubernetes', '--flow-buffer-size', '1000']).flowBufferSize, 1000);
    for (const bad of ['0', '-5', '1e3', 'many', '99999999999']) {
      assert.throws(
        () => cfg(['--source', 'kubernetes', `--flow-buffer-size=${bad}`]),
        (e: Error) =>
          e instanceof UsageError && e.message.startsWith(`--flow-buffer-size ${bad}: want a number of flows`),
      );
    }
  });

  it('--pod-cidr takes a comma-separated list; spaces and empty items are dropped', () => {
    assert.deepEqual(cfg(['--source', 'kubernetes', '--pod-cidr', '10.244.1.0/24']).podCidrs, ['10.244.1.0/24']);
    assert.deepEqual(cfg(['--source', 'kubernetes', '--pod-cidr', '10.244.1.0/24, fd00:244:1::/64,']).podCidrs, [
      '10.244.1.0/24',
      'fd00:244:1::/64',
    ]);
    assert.deepEqual(
      cfg(['--source', 'kubernetes', '--pod-cidr', '10.244.1.0/24', '--pod-cidr', 'fd00:244:1::/64']).podCidrs,
      ['10.244.1.0/24', 'fd00:244:1::/64'],
      'repeated',
    );
    assert.deepEqual(cfg(['--source', 'kubernetes', '--pod-cidr', '']).podCidrs, []);
  });

  it('--state-dir moves the API socket with it, and paths become absolute', () => {
    const c = cfg([
      '--source',
      'kubernetes',
      '--state-dir',
      'state',
      '--bpf-root',
      '/sys/fs/bpf/t1/',
      '--cgroup',
      '/sys/fs/cgroup/x',
    ]);
    assert.equal(c.stateDir, path.resolve('state'));
    assert.equal(c.socketPath, path.join(path.resolve('state'), 'weft.sock'));
    assert.equal(c.bpfRoot, '/sys/fs/bpf/t1');
    assert.equal(c.cgroup, '/sys/fs/cgroup/x');
  });

  it('--node-name, --metrics-address and --log-level', () => {
    const c = cfg([
      '--source',
      'kubernetes',
      '--node-name',
      'node-7',
      '--metrics-address',
      '0.0.0.0:9000',
      '--log-level',
      'debug',
    ]);
    assert.equal(c.nodeName, 'node-7');
    assert.equal(c.metricsAddress, '0.0.0.0:9000');
    assert.equal(c.logLevel, 'debug');
  });

  it('a bad --log-level is a UsageError naming the flag', () => {
    rejected(['--source', 'kubernetes', '--log-level', 'verbose'], '--log-level', { usage: true });
  });

  it('--help and -h return "help", even without --source', () => {
    assert.equal(parseConfig(['--help']), 'help');
    assert.equal(parseConfig(['-h']), 'help');
    assert.equal(parseConfig(['--source', 'dir:/x', '--help']), 'help');
  });

  it('the usage text documents every flag parseConfig accepts', () => {
    for (const flag of [
      '--source',
      '--kubeconfig',
      '--bpf-root',
      '--cgroup',
      '--state-dir',
      '--node-name',
      '--pod-cidr',
      '--metrics-address',
      '--log-level',
      '--help',
    ]) {
      assert.ok(USAGE.includes(flag), `USAGE mentions ${flag}`);
    }
  });
});
