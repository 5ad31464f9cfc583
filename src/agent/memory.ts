// Giving back the memory the first load used as scratch. The first list of a large cluster (or
// the first read of a large manifests directory) parses every object once: V8 promotes that
// garbage to its old generation and keeps the pages it grew into, and glibc keeps the freed
// buffers. At 10,000 Services / 100,000 endpoints that is ~70 MB of resident memory held for
// the agent's lifetime after the sync. One forced collection, once, returns it.
import koffi from 'koffi';

/** glibc's malloc_trim; undefined where the C library is another (musl has none): then only
 *  the collection runs. */
const mallocTrim = ((): ((pad: number) => number) | undefined => {
  try {
    return koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
  } catch {
    return undefined;
  }
})();

type Gc = (opts: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** Collects all garbage, lets V8 release the pages it no longer needs (a "last resort"
 *  collection compacts and shrinks the heap; a regular one keeps the pages), then lets glibc
 *  return its free memory. Needs node --expose-gc (bin/weftd passes it); without it, only the
 *  malloc trim runs. Blocks the event loop for ~0.1-0.2 s at 10,000 Services: for after the
 *  first sync, not for a hot path. Returns how long each part took (ms), for the log. */
export function releaseScratchMemory(): { gcMs: number | undefined; trimMs: number } {
  const gc = (globalThis as { gc?: Gc }).gc;
  const t0 = performance.now();
  gc?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const t1 = performance.now();
  mallocTrim?.(0);
  return { gcMs: gc ? t1 - t0 : undefined, trimMs: performance.now() - t1 };
}
