// Header lists as HTTP/2 carries them: flat [name, value, name, value, ...], names in lower
// case, repeated names repeated. weft-proxy keeps requests and responses in this form from
// HPACK to HPACK: no header object is built for a request that only needs routing.
import type { HeaderEdits } from '../contract/proxy-snapshot.js';

export type HeaderList = string[];

/** A header's value; repeated headers joined with ", " (as node:http joins them, so that a
 *  route's header match sees HTTP/1.1 and HTTP/2 requests alike). */
export function listGet(list: readonly string[], name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < list.length; i += 2) {
    if (list[i] !== name) continue;
    v = v === undefined ? list[i + 1]! : `${v}, ${list[i + 1]!}`;
  }
  return v;
}

/** A route's header edits, in order, on a copy of the list: "set" replaces every value of the
 *  name, "add" appends one, "remove" drops them all. `host` edits apply to `:authority` where
 *  the list has it (HTTP/2's Host). */
export function editList(list: readonly string[], edits: readonly HeaderEdits[]): HeaderList {
  let out = list.slice();
  const authority = out.includes(':authority');
  const nameOf = (n: string) => (n === 'host' && authority ? ':authority' : n);
  for (const e of edits) {
    for (const h of e.set) {
      const name = nameOf(h.name);
      out = without(out, name);
      if (name === ':authority') out.unshift(name, h.value);
      else out.push(name, h.value);
    }
    for (const h of e.add) {
      const name = nameOf(h.name);
      if (name === ':authority' && listGet(out, name) !== undefined) continue; // one authority only
      out.push(name, h.value);
    }
    for (const n of e.remove) out = without(out, nameOf(n));
  }
  return out;
}

function without(list: HeaderList, name: string): HeaderList {
  if (!list.includes(name)) return list;
  const out: HeaderList = [];
  for (let i = 0; i < list.length; i += 2) if (list[i] !== name) out.push(list[i]!, list[i + 1]!);
  return out;
}

/** A node-style header object (undici's, node:http's) as a list; values that are arrays become
 *  repeated names. */
export function objectToList(
  h: Readonly<Record<string, string | string[] | number | undefined>>,
  out: HeaderList = [],
): HeaderList {
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, typeof v === 'string' ? v : String(v));
  }
  return out;
}
