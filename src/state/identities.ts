// Security identities: the labels that policy can select a pod by (its own, its namespace's,
// and its namespace's name) map to one number, which the datapath looks peers up by.
//
// The number is derived from the labels, not allocated: every node computes the same one from
// the same label set without talking to the others or writing to the API. Identities never
// travel in packets (each node looks a peer's address up in its own ipcache), so a node only
// needs its numbers to be consistent with itself; deriving them makes them the same on every
// node too, which is what `weft observe` and `weft explain` show.
//
// Collisions: the space is 2^31 - 256 numbers, so two of 10,000 label sets share a hash with a
// probability of about 2%. Colliding sets are ordered by their label text; the first keeps the
// hashed number and each next one takes the next free number. Every node that knows the same
// label sets therefore makes the same choice; a node that has not seen one of them yet may
// number the other differently for a moment, which changes names, never verdicts.
// Exhaustion cannot happen: there are never more label sets than pods. Pure.
import { createHash } from 'node:crypto';

/** Reserved identities (bpf/include/policy.h). */
export const IDENTITY_ANY = 0;
export const IDENTITY_HOST = 1;
export const IDENTITY_WORLD = 2;
export const IDENTITY_UNRESOLVED = 5;
export const IDENTITY_MIN_POD = 256;
/** Set in node-local identities of ipBlock regions. */
export const IDENTITY_F_CIDR = 0x80000000;
const POD_SPACE = IDENTITY_F_CIDR - IDENTITY_MIN_POD;

export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export const RESERVED_NAMES: Readonly<Record<number, string>> = {
  [IDENTITY_ANY]: 'reserved:any',
  [IDENTITY_HOST]: 'reserved:host',
  [IDENTITY_WORLD]: 'reserved:world',
  [IDENTITY_UNRESOLVED]: 'reserved:unresolved',
};

export interface SecurityLabels {
  namespace: string;
  /** The pod's labels. */
  pod: Readonly<Record<string, string>>;
  /** Its namespace's labels, kubernetes.io/metadata.name included. */
  namespaceLabels: Readonly<Record<string, string>>;
}

/** A namespace's labels as the API server keeps them: kubernetes.io/metadata.name is always its
 *  name, whatever the object says (or when there is no object, as in local mode). */
export function namespaceLabels(
  name: string,
  labels: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  return { ...labels, [NAMESPACE_NAME_LABEL]: name };
}

const sortedPairs = (labels: Readonly<Record<string, string>>) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);

/** The canonical text of a label set: what the identity is derived from. Label keys and values
 *  cannot hold newlines, so the lines cannot run into each other. */
export function securityKey(l: SecurityLabels): string {
  return [
    `namespace=${l.namespace}`,
    ...sortedPairs(l.pod).map((p) => `pod:${p}`),
    ...sortedPairs(l.namespaceLabels).map((p) => `ns:${p}`),
  ].join('\n');
}

export function hashedIdentity(key: string, space = POD_SPACE, base = IDENTITY_MIN_POD): number {
  const digest = createHash('sha256').update(key).digest();
  // 48 bits reduced modulo the space: the bias is below 2^-17.
  return base + (digest.readUIntBE(0, 6) % space);
}

/** Numbers every key of the set, deterministically for the set (see the top of this file).
 *  Returns key → identity, and the keys that did not get their hashed number. */
export function assignIdentities(
  keys: Iterable<string>,
  hash: (key: string) => number = hashedIdentity,
  space = POD_SPACE,
  base = IDENTITY_MIN_POD,
): { ids: Map<string, number>; moved: string[] } {
  const wanted = [...new Set(keys)].map((key) => ({ key, id: hash(key) }));
  wanted.sort((a, b) => a.id - b.id || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const taken = new Set<number>();
  const ids = new Map<string, number>();
  const moved: string[] = [];
  for (const w of wanted) {
    let id = w.id;
    // Bounded: there are fewer keys than numbers.
    for (let i = 0; taken.has(id) && i < space; i++) id = base + ((id - base + 1) % space);
    if (id !== w.id) moved.push(w.key);
    taken.add(id);
    ids.set(w.key, id);
  }
  return { ids, moved };
}
