// The node proxy's listen addresses: on a dummy interface of the agent's (the node's) network
// namespace, so that every pod reaches them through its default route to the node, and the
// node delivers them locally. Link-local IPv4 and a ULA IPv6 by default: no cluster network
// uses them, and nothing outside the node routes them.
import { execFileSync } from 'node:child_process';

export const PROXY_INTERFACE = 'weft-proxy';
export const DEFAULT_PROXY_ADDRESSES = { 4: '169.254.42.1', 6: 'fd00:a9fe:2a::1' } as const;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

/** Creates the interface if it is missing and puts the addresses on it; idempotent. Throws
 *  with ip's message when it cannot (no CAP_NET_ADMIN). */
export function ensureProxyAddresses(addresses: { 4?: string; 6?: string }): void {
  try {
    ip('link', 'show', 'dev', PROXY_INTERFACE);
  } catch {
    ip('link', 'add', PROXY_INTERFACE, 'type', 'dummy');
  }
  if (addresses[4]) ip('addr', 'replace', `${addresses[4]}/32`, 'dev', PROXY_INTERFACE);
  // nodad: the address is usable at once, and nobody else can hold it on a dummy.
  if (addresses[6]) ip('-6', 'addr', 'replace', `${addresses[6]}/128`, 'dev', PROXY_INTERFACE, 'nodad');
  ip('link', 'set', PROXY_INTERFACE, 'up');
}

/** Removes the interface (weft uninstall); nothing when it is not there. */
export function removeProxyAddresses(): void {
  try {
    ip('link', 'del', PROXY_INTERFACE);
  } catch {
    /* not there */
  }
}
