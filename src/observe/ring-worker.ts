// The observer's worker thread: drains the kernel's events ring buffer as fast as the kernel
// fills it, into the shared flow ring, and counts what it read. It blocks in epoll_wait between
// bursts, which is why it is a thread of its own: the agent's event loop never waits on it, and
// it never waits on the event loop (nothing is posted per event; the main thread reads the
// shared memory when it wants flows).
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { pinLayout } from '../datapath/pins.js';
import { RingReader } from '../datapath/ring-reader.js';
import { decodable } from './decode.js';
import { FlowRing, MAX_RECORD } from './flow-ring.js';
import { CONTROL, STAT, countRecord, type WorkerInit } from './worker-shared.js';

const init = workerData as WorkerInit;
const control = new Int32Array(init.control);
const stats = new Float64Array(init.stats);
const ring = FlowRing.attach(init.ring);
/** How often the worker looks when the kernel did not wake it: the datapath wakes it only
 *  once a backlog builds up (bpf/include/events.h), so this bounds how late a quiet flow is. */
const POLL_MS = 20;
// A batch is published at once; it must stay well under the ring's capacity so that readers
// keep most of the ring while the worker writes.
const BATCH = Math.max(1, Math.min(4096, Math.floor(ring.capacity / 4)));

const reader = RingReader.openPinned(path.join(pinLayout(init.bpfRoot).maps, 'events'), 'events');
stats[STAT.kernelRingSize] = reader.size;

function sink(data: Uint8Array, off: number, len: number): void {
  stats[STAT.read]!++;
  if (len > MAX_RECORD || !decodable(data, off, len)) {
    stats[STAT.decodeLost]!++;
    return;
  }
  countRecord(stats, data, off);
  ring.append(data, off, len);
}

try {
  while (Atomics.load(control, CONTROL.stop) === 0) {
    const pending = reader.pending();
    if (pending > stats[STAT.kernelRingPeak]!) stats[STAT.kernelRingPeak] = pending;
    reader.wait(POLL_MS);
    if (reader.pending() === 0) continue;
    let n: number;
    do {
      ring.begin(BATCH);
      n = reader.read(sink, BATCH);
      ring.commit();
    } while (n === BATCH);
    // One wake-up at a time for the main thread, and only when it asked for one (it has
    // followers): it clears the flag when it has handled the last.
    if (Atomics.compareExchange(control, CONTROL.wake, 1, 0) === 1) parentPort!.postMessage(0);
  }
} finally {
  reader.close();
}
