// Installing the CNI plugin onto a host: the binary into the runtime's CNI bin directory and
// the network configuration into its conf directory. The DaemonSet's init step runs this.
// Each file is written beside its destination and renamed into place, so a runtime never
// executes half a binary or reads half a config.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PLUGIN_NAME = 'weft-cni';
export const CONFLIST_NAME = '10-weft.conflist';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

export interface CniInstallOptions {
  binDir: string;
  confDir: string;
  /** The plugin binary to install (default: build/bin/weft-cni of this checkout). */
  plugin?: string;
  /** The conflist template (default: deploy/cni/10-weft.conflist). */
  conflist?: string;
  agentSocket?: string;
  mtu?: number;
}

function placeAtomically(dest: string, write: (tmp: string) => void, mode: number): void {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.tmp`);
  try {
    write(tmp);
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, dest);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Returns the files it wrote. */
export function installCni(o: CniInstallOptions): string[] {
  const plugin = o.plugin ?? path.join(REPO, 'build/bin', PLUGIN_NAME);
  const template = o.conflist ?? path.join(REPO, 'deploy/cni', CONFLIST_NAME);
  if (!fs.existsSync(plugin)) throw new Error(`plugin binary ${plugin} not found (run make)`);
  let conf: { plugins?: Record<string, unknown>[] };
  try {
    conf = JSON.parse(fs.readFileSync(template, 'utf8')) as typeof conf;
  } catch (err) {
    throw new Error(`conflist template ${template}: ${(err as Error).message}`);
  }
  const weft = conf.plugins?.find((p) => p.type === PLUGIN_NAME);
  if (!weft) throw new Error(`conflist template ${template} has no plugin of type ${PLUGIN_NAME}`);
  if (o.agentSocket) weft.agentSocket = o.agentSocket;
  if (o.mtu !== undefined) weft.mtu = o.mtu;
  fs.mkdirSync(o.binDir, { recursive: true });
  fs.mkdirSync(o.confDir, { recursive: true });
  const bin = path.join(o.binDir, PLUGIN_NAME);
  const conflist = path.join(o.confDir, CONFLIST_NAME);
  // The binary first: a config naming a plugin that is not there yet would fail pod starts.
  placeAtomically(bin, (tmp) => fs.copyFileSync(plugin, tmp), 0o755);
  placeAtomically(conflist, (tmp) => fs.writeFileSync(tmp, `${JSON.stringify(conf, null, 2)}\n`), 0o644);
  return [bin, conflist];
}

/** Removes what installCni wrote; returns what was there to remove. */
export function uninstallCni(o: { binDir: string; confDir: string }): string[] {
  // The config first, so no runtime picks the network up while its plugin is going away.
  const files = [path.join(o.confDir, CONFLIST_NAME), path.join(o.binDir, PLUGIN_NAME)];
  return files.filter((f) => {
    if (!fs.existsSync(f)) return false;
    fs.unlinkSync(f);
    return true;
  });
}
