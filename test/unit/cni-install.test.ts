// Installing the plugin and its conflist onto a host's CNI directories.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { installCni, uninstallCni } from '../../src/cli/cni-install.js';

describe('weft cni install / uninstall', () => {
  let dir: string;
  let plugin: string;
  let template: string;
  const dirs = () => ({ binDir: path.join(dir, 'opt/cni/bin'), confDir: path.join(dir, 'etc/cni/net.d') });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cni-install-'));
    plugin = path.join(dir, 'weft-cni.build');
    fs.writeFileSync(plugin, '#!/bin/sh\nexit 0\n');
    template = path.join(dir, 'template.conflist');
    fs.writeFileSync(
      template,
      JSON.stringify({
        cniVersion: '1.1.0',
        name: 'weft',
        plugins: [{ type: 'weft-cni', agentSocket: '/var/run/weft/weft.sock', mtu: 1500 }],
      }),
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("installs an executable plugin and the conflist with this node's agent socket, creating the directories", () => {
    const files = installCni({ ...dirs(), plugin, conflist: template, agentSocket: '/run/weft/weft.sock', mtu: 1450 });
    const [bin, conf] = files as [string, string];
    assert.equal(fs.readFileSync(bin, 'utf8'), fs.readFileSync(plugin, 'utf8'));
    assert.equal(fs.statSync(bin).mode & 0o777, 0o755);
    const c = JSON.parse(fs.readFileSync(conf, 'utf8')) as { plugins: { agentSocket: string; mtu: number }[] };
    assert.equal(c.plugins[0]!.agentSocket, '/run/weft/weft.sock');
    assert.equal(c.plugins[0]!.mtu, 1450);
    assert.deepEqual(fs.readdirSync(dirs().binDir), ['weft-cni'], 'no temporary file is left');
    // Installing again (an upgrade) replaces both in place.
    assert.deepEqual(installCni({ ...dirs(), plugin, conflist: template }), files);
  });

  it('refuses a template without a weft-cni plugin, and a missing binary, before writing anything', () => {
    fs.writeFileSync(template, JSON.stringify({ cniVersion: '1.1.0', name: 'x', plugins: [{ type: 'bridge' }] }));
    assert.throws(() => installCni({ ...dirs(), plugin, conflist: template }), /has no plugin of type weft-cni/);
    assert.throws(
      () => installCni({ ...dirs(), plugin: path.join(dir, 'nope'), conflist: template }),
      /plugin binary .*nope not found/,
    );
    assert.equal(fs.existsSync(dirs().binDir), false);
  });

  it('uninstall removes exactly what install wrote, and is idempotent', () => {
    installCni({ ...dirs(), plugin, conflist: template });
    fs.writeFileSync(path.join(dirs().confDir, '99-other.conflist'), '{}');
    assert.equal(uninstallCni(dirs()).length, 2);
    assert.deepEqual(fs.readdirSync(dirs().confDir), ['99-other.conflist']);
    assert.deepEqual(uninstallCni(dirs()), []);
  });
});
