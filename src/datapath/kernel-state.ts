// What Weft has in the kernel, read from the pins alone (no agent needed): attached programs
// and map fill levels.
import fs from 'node:fs';
import path from 'node:path';
import { type RawMap, closeFd, linkInfo, mapInfo, objGet, openPinnedMap } from './libbpf.js';
import { pinLayout } from './pins.js';

export interface ProgramState {
  program: string;
  linkId?: number;
  progId?: number;
  cgroupId?: string;
  error?: string;
}

export interface MapState {
  map: string;
  entries: number;
  maxEntries: number;
  /** Set for a ring buffer: its size. */
  ringBytes?: number;
  error?: string;
}

/** The pins (files) of a directory; subdirectories (links/lxc: an older agent's per-endpoint links) are not. */
const listDir = (dir: string) =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((e) => !e.isDirectory())
        .map((e) => e.name)
        .sort()
    : [];

const BPF_MAP_TYPE_RINGBUF = 27;

export function readPrograms(bpfRoot: string): ProgramState[] {
  return listDir(pinLayout(bpfRoot).links).map((name) => {
    let fd = -1;
    try {
      fd = objGet(path.join(pinLayout(bpfRoot).links, name));
      const info = linkInfo(fd);
      return { program: name, linkId: info.id, progId: info.progId, cgroupId: info.cgroupId.toString() };
    } catch (err) {
      return { program: name, error: (err as Error).message };
    } finally {
      closeFd(fd);
    }
  });
}

export function readMaps(bpfRoot: string): MapState[] {
  return listDir(pinLayout(bpfRoot).maps).map((name) => {
    let map: RawMap | undefined;
    try {
      map = openPinnedMap(path.join(pinLayout(bpfRoot).maps, name));
      const info = mapInfo(map.fd);
      // A ring buffer has no entries to count; max_entries is its size in bytes.
      if (info.type === BPF_MAP_TYPE_RINGBUF)
        return { map: name, entries: 0, maxEntries: info.maxEntries, ringBytes: info.maxEntries };
      let entries = 0;
      for (const _ of map.entries()) entries++;
      return { map: name, entries, maxEntries: info.maxEntries };
    } catch (err) {
      return { map: name, entries: 0, maxEntries: 0, error: (err as Error).message };
    } finally {
      map?.close();
    }
  });
}
