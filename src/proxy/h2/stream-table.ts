// A connection's open streams by id. Not a Map: streams come and go with every request, and a
// Map's hash table is reallocated each time its size crosses a power of two up or down, which
// made the Map the proxy's fourth largest allocation site per request. Here: open addressing
// with linear probing over a table that only grows, and backward-shift deletion (no
// tombstones). Stream ids of one side advance by 2, so id >>> 1 spreads them over the slots.
export class StreamTable<T extends { readonly id: number }> {
  private slots: (T | undefined)[];
  private mask: number;
  size = 0;

  constructor(capacity = 16) {
    let cap = 8;
    while (cap < capacity) cap *= 2;
    this.slots = new Array<T | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
  }

  get(id: number): T | undefined {
    const slots = this.slots;
    for (let i = (id >>> 1) & this.mask; ; i = (i + 1) & this.mask) {
      const s = slots[i];
      if (s === undefined || s.id === id) return s;
    }
  }

  /** Adds a stream whose id is not in the table. */
  add(v: T): void {
    if ((this.size + 1) * 2 > this.slots.length) this.grow();
    this.place(v);
    this.size++;
  }

  delete(id: number): boolean {
    const slots = this.slots;
    const mask = this.mask;
    let i = (id >>> 1) & mask;
    for (;;) {
      const s = slots[i];
      if (s === undefined) return false;
      if (s.id === id) break;
      i = (i + 1) & mask;
    }
    // Backward shift: later entries of the probe run move into the hole when their home slot
    // does not lie cyclically in (hole, their slot].
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const s = slots[j];
      if (s === undefined) break;
      const home = (s.id >>> 1) & mask;
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (stays) continue;
      slots[i] = s;
      i = j;
    }
    slots[i] = undefined;
    this.size--;
    return true;
  }

  /** The streams, as a list the caller may walk while streams close. */
  values(): T[] {
    const out: T[] = [];
    for (const s of this.slots) if (s !== undefined) out.push(s);
    return out;
  }

  clear(): void {
    this.slots.fill(undefined);
    this.size = 0;
  }

  private place(v: T): void {
    const slots = this.slots;
    let i = (v.id >>> 1) & this.mask;
    while (slots[i] !== undefined) i = (i + 1) & this.mask;
    slots[i] = v;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    this.mask = this.slots.length - 1;
    for (const s of old) if (s !== undefined) this.place(s);
  }
}
