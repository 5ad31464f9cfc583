// ipBlock regions: the address space cut by every ipBlock's CIDR and exceptions, as the
// datapath's longest-prefix-match ipcache sees it. Each prefix of every block (and the two
// defaults, 0.0.0.0/0 and ::/0) becomes an ipcache entry; the addresses whose longest match is
// that prefix form its region, and a region lies in exactly the blocks that contain the prefix
// and whose exceptions do not. Regions lying in the same blocks share one node-local identity,
// so a rule naming a block allows a handful of identities, not a list of addresses. Pure.
import ipaddr from 'ipaddr.js';
import { IDENTITY_ANY, IDENTITY_F_CIDR, assignIdentities, hashedIdentity } from './identities.js';
import type { IPBlock } from './resources.js';

interface Prefix {
  family: 4 | 6;
  bits: bigint;
  len: number;
}

const width = (f: 4 | 6) => (f === 4 ? 32 : 128);

function parsePrefix(cidr: string): Prefix {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  const family = addr.kind() === 'ipv4' ? 4 : 6;
  let bits = 0n;
  for (const b of addr.toByteArray()) bits = (bits << 8n) | BigInt(b);
  return { family, bits, len };
}

function addressBits(ip: string): { family: 4 | 6; bits: bigint } | undefined {
  if (!ipaddr.isValid(ip)) return undefined;
  const addr = ipaddr.parse(ip);
  let bits = 0n;
  for (const b of addr.toByteArray()) bits = (bits << 8n) | BigInt(b);
  return { family: addr.kind() === 'ipv4' ? 4 : 6, bits };
}

/** Whether prefix p lies inside prefix q. */
function inside(p: Prefix, q: Prefix): boolean {
  if (p.family !== q.family || p.len < q.len) return false;
  const shift = BigInt(width(q.family) - q.len);
  return p.bits >> shift === q.bits >> shift;
}

export const blockKey = (b: IPBlock) => [b.cidr, ...[...b.except].sort()].join(' except ');

const CIDR_SPACE = 0x7fffffff;
const cidrIdentity = (key: string) => hashedIdentity(key, CIDR_SPACE, IDENTITY_F_CIDR + 1);

export interface CidrRegions {
  /** Every ipcache prefix the blocks need, with its region's identity (IDENTITY_ANY when the
   *  region lies in no block). */
  readonly prefixes: ReadonlyMap<string, number>;
  /** The region identity of an address: its longest-matching prefix's. */
  regionOf(ip: string): number;
  /** The region identities lying in a block. */
  identitiesIn(block: IPBlock): number[];
}

export function cidrRegions(blocks: readonly IPBlock[]): CidrRegions {
  const unique = new Map(blocks.map((b) => [blockKey(b), b]));
  const parsed = [...unique.entries()].map(([key, b]) => ({
    key,
    cidr: parsePrefix(b.cidr),
    except: b.except.map(parsePrefix),
  }));
  const texts = new Set(['0.0.0.0/0', '::/0']);
  for (const b of unique.values()) for (const c of [b.cidr, ...b.except]) texts.add(c);

  // Each prefix's region: the blocks containing it, minus those whose exceptions do. A block
  // containing p has for its CIDR one of p's ancestors: walk those (at most 129) instead of
  // testing every block.
  const blocksByCidr = new Map<string, typeof parsed>();
  for (const b of parsed) {
    const k = `${b.cidr.family}/${b.cidr.len}/${b.cidr.bits}`;
    if (!blocksByCidr.has(k)) blocksByCidr.set(k, []);
    blocksByCidr.get(k)!.push(b);
  }
  const regionKeyOf = new Map<string, string>();
  const blocksOfRegion = new Map<string, string[]>();
  for (const text of texts) {
    const p = parsePrefix(text);
    const w = width(p.family);
    const candidates: typeof parsed = [];
    for (let len = p.len; len >= 0; len--) {
      const shift = BigInt(w - len);
      const found = blocksByCidr.get(`${p.family}/${len}/${(p.bits >> shift) << shift}`);
      if (found) candidates.push(...found);
    }
    const inBlocks = candidates
      .filter((b) => !b.except.some((e) => inside(p, e)))
      .map((b) => b.key)
      .sort();
    const regionKey = inBlocks.join('\n');
    regionKeyOf.set(text, regionKey);
    if (regionKey) blocksOfRegion.set(regionKey, inBlocks);
  }
  const { ids } = assignIdentities(blocksOfRegion.keys(), cidrIdentity, CIDR_SPACE, IDENTITY_F_CIDR + 1);
  const prefixes = new Map([...regionKeyOf].map(([text, key]) => [text, key ? ids.get(key)! : IDENTITY_ANY]));

  // Longest match, one map lookup per prefix length present.
  const byLength = new Map<string, Map<bigint, number>>(); // `${family}/${len}` → masked bits → identity
  const lengths: Record<4 | 6, number[]> = { 4: [], 6: [] };
  for (const [text, id] of prefixes) {
    const p = parsePrefix(text);
    const lk = `${p.family}/${p.len}`;
    if (!byLength.has(lk)) {
      byLength.set(lk, new Map());
      lengths[p.family].push(p.len);
    }
    byLength.get(lk)!.set(p.bits, id);
  }
  lengths[4].sort((a, b) => b - a);
  lengths[6].sort((a, b) => b - a);

  const regionOf = (ip: string): number => {
    const a = addressBits(ip);
    if (!a) return IDENTITY_ANY;
    const w = width(a.family);
    for (const len of lengths[a.family]) {
      const shift = BigInt(w - len);
      const id = byLength.get(`${a.family}/${len}`)!.get((a.bits >> shift) << shift);
      if (id !== undefined) return id;
    }
    return IDENTITY_ANY;
  };

  // Block → the regions lying in it, indexed once: a rule naming a block asks for them.
  const regionsOfBlock = new Map<string, number[]>();
  for (const [rk, bs] of blocksOfRegion) {
    for (const b of bs) {
      if (!regionsOfBlock.has(b)) regionsOfBlock.set(b, []);
      regionsOfBlock.get(b)!.push(ids.get(rk)!);
    }
  }
  for (const list of regionsOfBlock.values()) list.sort((a, b) => a - b);
  const identitiesIn = (block: IPBlock): number[] => regionsOfBlock.get(blockKey(block)) ?? [];

  return { prefixes, regionOf, identitiesIn };
}
