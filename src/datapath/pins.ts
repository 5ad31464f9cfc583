// Where Weft keeps its pinned maps and links, and making sure bpffs is there to hold them.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

export const DEFAULT_BPF_ROOT = '/sys/fs/bpf/weft';

export interface PinLayout {
  root: string;
  maps: string;
  links: string;
}

export function pinLayout(root: string): PinLayout {
  return { root, maps: path.join(root, 'maps'), links: path.join(root, 'links') };
}

function mounts(): { dir: string; type: string }[] {
  return fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, dir = '', type = ''] = line.split(' ');
      return { dir: dir.replace(/\\040/g, ' '), type };
    });
}

/** The mount of a given type that holds `p` (the longest matching mount point), if any. */
function mountHolding(p: string, type: string): string | undefined {
  return mounts()
    .filter((m) => m.type === type && (p === m.dir || p.startsWith(m.dir.endsWith('/') ? m.dir : `${m.dir}/`)))
    .sort((a, b) => b.dir.length - a.dir.length)[0]?.dir;
}

/** Creates the pin directories, mounting bpffs at /sys/fs/bpf first if nothing holds the root. */
export function ensurePinDirs(root: string): PinLayout {
  const abs = path.resolve(root);
  if (!mountHolding(abs, 'bpf')) {
    if (!abs.startsWith('/sys/fs/bpf/')) throw new Error(`--bpf-root ${root} is not on a bpf filesystem`);
    fs.mkdirSync('/sys/fs/bpf', { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  }
  const layout = pinLayout(abs);
  fs.mkdirSync(layout.maps, { recursive: true, mode: 0o700 });
  fs.mkdirSync(layout.links, { recursive: true, mode: 0o700 });
  return layout;
}

/** The root of the cgroup v2 hierarchy, from /proc/mounts (hybrid systems mount it at
 *  /sys/fs/cgroup/unified, pure v2 ones at /sys/fs/cgroup). */
export function cgroup2Root(): string {
  const m = mounts().find((x) => x.type === 'cgroup2');
  if (!m) throw new Error('no cgroup2 filesystem is mounted (see /proc/mounts)');
  return m.dir;
}

export function isCgroup2Dir(dir: string): boolean {
  return mountHolding(path.resolve(dir), 'cgroup2') !== undefined && fs.statSync(dir).isDirectory();
}

/** Where agents before clsact filters pinned the TCX links of pod endpoints (read now only to
 *  move such endpoints to filters): <root>/links/lxc/<ifindex>-ingress|egress,
 *  named for the hook on the pod's host-side veth (its ingress carries what the pod sends). */
export function lxcLinkDir(layout: PinLayout): string {
  return path.join(layout.links, 'lxc');
}

export type TcHook = 'ingress' | 'egress';

export function lxcLinkPin(layout: PinLayout, ifindex: number, hook: TcHook): string {
  return path.join(lxcLinkDir(layout), `${ifindex}-${hook}`);
}

/** The ifindex and hook of a pin name in lxcLinkDir, or undefined for anything else. */
export function parseLxcLinkPin(name: string): { ifindex: number; hook: TcHook } | undefined {
  const m = /^([1-9]\d{0,9})-(ingress|egress)$/.exec(name);
  return m ? { ifindex: Number(m[1]), hook: m[2] as TcHook } : undefined;
}
