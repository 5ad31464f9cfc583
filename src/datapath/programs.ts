// Loading the BPF objects and attaching their programs, adopting what a previous agent left
// pinned: maps are reused (the kernel keeps its state), and each pinned link gets the new
// program atomically, so traffic never sees a moment without a program.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BpfObject,
  RawMap,
  attachCgroupPinned,
  closeFd,
  linkInfo,
  objGet,
  openDirectory,
  updateLink,
  mapInfo,
} from './libbpf.js';
import { SOCK_OBJECT_CODECS, checkCodecs } from './btf-check.js';
import { SHARED_EVENT_MAPS } from './endpoint-codecs.js';
import { ensurePinDirs, type PinLayout } from './pins.js';

/** build/bpf, next to build/js where this file is compiled to. */
export function defaultObjectDir(): string {
  return process.env.WEFT_BPF_OBJECTS ?? fileURLToPath(new URL('../../../bpf/', import.meta.url));
}

export interface AttachReport {
  program: string;
  action: 'attached' | 'replaced' | 'moved';
}

export interface LoadedDatapath {
  pins: PinLayout;
  maps: Map<string, RawMap>;
  attached: AttachReport[];
  close(): void;
}

/** Loads bpf/sock.c's object, pins its maps and attaches its programs to `cgroupDir`. Refuses
 *  (CodecMismatchError) an object whose BTF disagrees with the codecs, before it is loaded. */
export function loadSocketPrograms(opts: { bpfRoot: string; cgroupDir: string; objectDir?: string }): LoadedDatapath {
  const pins = ensurePinDirs(opts.bpfRoot);
  const objPath = path.join(opts.objectDir ?? defaultObjectDir(), 'sock.o');
  const obj = BpfObject.load(objPath, {
    mapPinDir: pins.maps,
    replaceChanged: SHARED_EVENT_MAPS,
    verify: (o) => checkCodecs(o.btf(), SOCK_OBJECT_CODECS, objPath),
  });
  const cgroupFd = openDirectory(opts.cgroupDir);
  const cgroupId = BigInt(fs.statSync(opts.cgroupDir).ino);
  const attached: AttachReport[] = [];
  try {
    for (const prog of obj.programs()) {
      const pin = path.join(pins.links, prog.name);
      attached.push({ program: prog.name, action: attachOrAdopt(prog, pin, cgroupFd, cgroupId) });
    }
    const maps = new Map<string, RawMap>();
    for (const m of obj.maps()) {
      if (m.name.startsWith('.')) continue;
      // Our own fd, independent of the object's, so the object can be freed now.
      const fd = objGet(path.join(pins.maps, m.name));
      const info = mapInfo(fd);
      maps.set(m.name, new RawMap(fd, info.keySize, info.valueSize, m.name));
    }
    return {
      pins,
      maps,
      attached,
      close() {
        for (const m of maps.values()) m.close();
      },
    };
  } finally {
    closeFd(cgroupFd);
    obj.close();
  }
}

function attachOrAdopt(
  prog: { name: string; fd: number; ptr: bigint },
  pin: string,
  cgroupFd: number,
  cgroupId: bigint,
): AttachReport['action'] {
  if (!fs.existsSync(pin)) {
    attachCgroupPinned(prog, cgroupFd, pin);
    return 'attached';
  }
  const linkFd = objGet(pin);
  try {
    if (linkInfo(linkFd).cgroupId === cgroupId) {
      updateLink(linkFd, prog.fd, pin);
      return 'replaced';
    }
    // Pinned for another cgroup (the --cgroup flag changed): attach here first, then let the
    // old attachment go, so the new place never goes unprotected.
    const tmp = `${pin}.new`;
    attachCgroupPinned(prog, cgroupFd, tmp);
    fs.unlinkSync(pin);
    fs.renameSync(tmp, pin);
    return 'moved';
  } finally {
    closeFd(linkFd);
  }
}

/** Removes every pin under the root: unpinning a link detaches its program, and maps go when
 *  no program holds them. Returns what was removed. */
export function removeAllPins(bpfRoot: string): string[] {
  const removed: string[] = [];
  if (!fs.existsSync(bpfRoot)) return removed;
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(p);
        fs.rmdirSync(p);
      } else {
        fs.unlinkSync(p);
        removed.push(p);
      }
    }
  };
  // Links first, so no program is left running against maps that are going away.
  const links = path.join(bpfRoot, 'links');
  if (fs.existsSync(links)) walk(links);
  walk(bpfRoot);
  fs.rmdirSync(bpfRoot);
  return removed;
}
