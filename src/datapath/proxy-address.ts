// The node proxy's listen addresses: host addresses (/32, /128) on the loopback interface of
// the agent's (the node's) network namespace, so that every pod reaches them through its
// default route to the node and the node delivers them locally. (Not a dummy interface: the
// dummy module is not in every kernel, loopback is.) Link-local IPv4 and a ULA IPv6 by
// default: no cluster network uses them, and nothing outside the node routes them.
import { execFileSync } from 'node:child_process';

export const PROXY_INTERFACE = 'lo';
export const DEFAULT_PROXY_ADDRESSES = { 4: '169.254.42.1', 6: 'fd00:a9fe:2a::1' } as const;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

/** Puts the addresses on the interface; idempotent. Throws with ip's message when it cannot
 *  (no CAP_NET_ADMIN). */
export function ensureProxyAddresses(addresses: { 4?: string; 6?: string }): void {
  if (addresses[4]) ip('addr', 'replace', `${addresses[4]}/32`, 'dev', PROXY_INTERFACE);
  // nodad: usable at once; loopback has no neighbours to detect duplicates with anyway.
  if (addresses[6]) ip('-6', 'addr', 'replace', `${addresses[6]}/128`, 'dev', PROXY_INTERFACE, 'nodad');
}

/** Takes the addresses off again (weft uninstall); returns the ones that were there. */
export function removeProxyAddresses(addresses: { 4?: string; 6?: string } = DEFAULT_PROXY_ADDRESSES): string[] {
  const removed: string[] = [];
  for (const [family, a] of Object.entries(addresses)) {
    try {
      ip(`-${family}`, 'addr', 'del', `${a}/${family === '4' ? 32 : 128}`, 'dev', PROXY_INTERFACE);
      removed.push(a);
    } catch {
      /* not there */
    }
  }
  return removed;
}
