// A BPF ring buffer's consumer that reads the ring's memory directly (mmap), not through
// libbpf's ring_buffer__poll: that one calls back into JavaScript once per record, about 1.5 µs
// a record through FFI, while reading the mapped pages costs under 0.1 µs. One reader per ring.
//
// The kernel's layout (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h): page 0 holds the
// consumer position (ours to write), page 1 the producer position, and the data pages follow,
// mapped twice in a row so that a record that wraps around the end reads as one piece. Each
// record starts with an 8-byte header whose first word is its length with BUSY (the producer
// is still writing it) and DISCARD (skip it) bits. Positions only grow; an offset in the data
// is position & (size - 1).
//
// Memory ordering: the kernel publishes a record by clearing BUSY with a release store after
// writing its data, and reads the consumer position with an acquire load. x86-64 and arm64
// loads from the mapping here are not reordered past the header load that guards them (typed
// array loads stay in program order in V8, and the header is read before the data is copied),
// and the consumer position is written only after the record is copied out.
import koffi from 'koffi';
import { closeFd, mapInfo, objGet } from './libbpf.js';

const libc = koffi.load('libc.so.6');
const c = {
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  sysconf: libc.func('long sysconf(int name)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, const uint8_t *event)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, _Out_ uint8_t *events, int maxevents, int timeout)'),
  close: libc.func('int close(int fd)'),
};

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const SC_PAGESIZE = 30;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
const EINTR = 4;
const MAP_FAILED = 0xffffffffffffffffn;

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HDR = 8;

/** Hands a record to its reader: `data[off, off + len)` is valid only during the call. Return
 *  false to stop reading; that record then counts as read. */
export type RecordSink = (data: Uint8Array, off: number, len: number) => boolean | void;

export class RingReader {
  /** The ring's data size in bytes (the map's max_entries). */
  readonly size: number;
  private readonly page: number;
  private consPtr: bigint;
  private prodPtr: bigint;
  private readonly cons: BigUint64Array;
  private readonly prod: BigUint64Array;
  private readonly words: Uint32Array;
  private readonly data: Uint8Array;
  private readonly epfd: number;
  private readonly evbuf = Buffer.alloc(12 * 4);
  private closed = false;
  /** Set when the reader opened the fd itself (openPinned): close() closes it too. */
  private ownedFd = -1;

  /** The ring buffer pinned at `pin`, with an fd of its own that close() closes. */
  static openPinned(pin: string, name: string): RingReader {
    const fd = objGet(pin);
    try {
      const r = new RingReader(fd, name);
      r.ownedFd = fd;
      return r;
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Maps the ring buffer behind `fd` (the caller keeps the fd open while reading). */
  constructor(
    private readonly fd: number,
    readonly name: string,
  ) {
    this.size = mapInfo(fd).maxEntries;
    this.page = Number(c.sysconf(SC_PAGESIZE));
    const mapOrThrow = (len: number, prot: number, off: number, what: string): bigint => {
      const p = c.mmap(null, len, prot, MAP_SHARED, fd, off) as bigint;
      if (BigInt.asUintN(64, p) === MAP_FAILED)
        throw new Error(`mmap ${what} of ring buffer ${name}: errno ${koffi.errno()}`);
      return p;
    };
    this.consPtr = mapOrThrow(this.page, PROT_READ | PROT_WRITE, 0, 'consumer page');
    try {
      this.prodPtr = mapOrThrow(this.page + 2 * this.size, PROT_READ, this.page, 'data pages');
    } catch (err) {
      c.munmap(this.consPtr, this.page);
      throw err;
    }
    this.cons = new BigUint64Array(koffi.view(this.consPtr, 8));
    const prodBuf = koffi.view(this.prodPtr, this.page + 2 * this.size);
    this.prod = new BigUint64Array(prodBuf, 0, 1);
    this.words = new Uint32Array(prodBuf, this.page, (2 * this.size) / 4);
    this.data = new Uint8Array(prodBuf, this.page, 2 * this.size);
    this.epfd = c.epoll_create1(EPOLL_CLOEXEC) as number;
    const ev = Buffer.alloc(12); // struct epoll_event is packed on x86-64: u32 events, u64 data
    ev.writeUInt32LE(EPOLLIN, 0);
    if (this.epfd < 0 || (c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, ev) as number) < 0) {
      const errno = koffi.errno();
      this.close();
      throw new Error(`epoll on ring buffer ${name}: errno ${errno}`);
    }
  }

  /** Bytes written by the kernel and not read yet. */
  pending(): number {
    return Number(this.prod[0]! - this.cons[0]!);
  }

  /** Reads every complete record there is now, or until `sink` returns false or `max` records
   *  were read; returns how many records were read (discarded ones not counted). */
  read(sink: RecordSink, max = Infinity): number {
    this.live();
    const mask = this.size - 1;
    let cons = Number(this.cons[0]!);
    const prod = Number(this.prod[0]!);
    let n = 0;
    while (cons < prod && n < max) {
      const off = cons & mask;
      const word = this.words[off >>> 2]!;
      if (word & BUSY) break;
      const len = word & ~(BUSY | DISCARD);
      cons += (len + HDR + 7) & ~7;
      if (word & DISCARD) continue;
      n++;
      if (sink(this.data, off + HDR, len) === false) break;
    }
    this.cons[0] = BigInt(cons);
    return n;
  }

  /** Blocks this thread until the kernel has written something or timeoutMs passes; true when
   *  there is something to read. For a worker thread: the event loop stops meanwhile. */
  wait(timeoutMs: number): boolean {
    this.live();
    if (this.pending() > 0) return true;
    const r = c.epoll_wait(this.epfd, this.evbuf, 4, timeoutMs) as number;
    if (r < 0 && koffi.errno() !== EINTR)
      throw new Error(`epoll_wait on ring buffer ${this.name}: errno ${koffi.errno()}`);
    return r > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.epfd >= 0) c.close(this.epfd);
    c.munmap(this.prodPtr, this.page + 2 * this.size);
    c.munmap(this.consPtr, this.page);
    this.prodPtr = 0n;
    this.consPtr = 0n;
    closeFd(this.ownedFd);
  }

  private live(): void {
    if (this.closed) throw new Error(`ring buffer ${this.name} is closed`);
  }
}
