/* Network policy for the pod-facing TC programs: the identity of every address the node knows
 * (ipcache) and what each local endpoint lets in and out (policy). This header is the one
 * definition of both maps' layouts: src/datapath/policy-codecs.ts agrees with it, checked
 * against lxc.o's BTF.
 *
 * Identities never travel in packets: each node looks up the peer's address in its own
 * ipcache. The agent fills ipcache with every pod of the cluster (/32 and /128), the node's own
 * addresses (IDENTITY_HOST), and the prefixes of every ipBlock some policy names; anything
 * else falls through to 0.0.0.0/0 and ::/0 (IDENTITY_WORLD). A pod address's entry also
 * carries the identity of the ipBlock region it lies in (cidr_identity), so that an ipBlock
 * can name pods as the API asks, without a second address lookup.
 *
 * Policy is asked once per new connection (conntrack knows the rest, replies included), only
 * in a direction the endpoint is isolated in (ENDPOINT_F_*_ISOLATED in its lxc_endpoints
 * entry): unselected pods pay nothing. A connection is allowed when an entry matches the peer's
 * identity, the peer's ipBlock region, or any peer (IDENTITY_ANY), for the protocol and port.
 * Entries only allow: Kubernetes policies have no deny rules, and an isolated endpoint with no
 * matching entry drops (DROP_POLICY).
 *
 * Not asked: packets conntrack does not track (non-first fragments, ICMP errors, IPv6 neighbour
 * discovery), and TCP RSTs that match no connection. */
#pragma once

#include "common.h"
#include "endpoint.h"
#include "parse.h"

#define IPCACHE_MAX_ENTRIES (1 << 18)
#define POLICY_MAX_ENTRIES  (1 << 20)

/* Reserved identities, below IDENTITY_MIN_POD. Pod identities are derived from a pod's labels
 * and its namespace's; identities with IDENTITY_F_CIDR set name ipBlock regions, node-local. */
#define IDENTITY_ANY        0 /* in policy keys: every peer */
#define IDENTITY_HOST       1 /* this node */
#define IDENTITY_WORLD      2 /* outside the cluster, as far as this node knows */
#define IDENTITY_UNRESOLVED 5 /* a pod whose labels the agent does not know (yet) */
#define IDENTITY_MIN_POD    256
#define IDENTITY_F_CIDR     0x80000000u

enum policy_verdict {
	POLICY_ALLOW = 0,
	POLICY_DENY = 1,
};

/* ipcache: address prefix → identities. prefixlen counts from `family`: 32 + the address
 * prefix length (family and pad are always matched whole, pad is zero). */
struct ipcache_key {
	__u32 prefixlen;
	__u8 family; /* WEFT_AF_INET or WEFT_AF_INET6 */
	__u8 pad[3];
	struct weft_addr addr; /* IPv4 in addr[0] */
};

struct ipcache_value {
	__u32 identity;      /* the peer itself: a pod's identity, or reserved */
	__u32 cidr_identity; /* the ipBlock region it lies in; IDENTITY_ANY when none */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPCACHE_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
} ipcache SEC(".maps");

/* policy: (endpoint, peer identity, direction, protocol, port) → allow. endpoint_id, identity
 * and direction are always matched whole (POLICY_PREFIX_FIXED bits); a shorter prefix leaves
 * the protocol and port open (every protocol: POLICY_PREFIX_FIXED; one protocol, every port:
 * + 8; a port range: + 8 + the bits the range's aligned block shares). */
#define POLICY_PREFIX_FIXED 72

struct policy_key {
	__u32 prefixlen;
	__u32 endpoint_id;
	__u32 identity;
	enum weft_dir direction;
	__u8 proto;
	__be16 dport;
};

struct policy_value {
	__u32 rule_id; /* which policy rule allowed it: the agent names it */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, POLICY_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
} policy SEC(".maps");

static __always_inline struct ipcache_value ipcache_lookup(const struct weft_addr *addr, __u8 family)
{
	struct ipcache_key key = {
		.prefixlen = 32 + (family == WEFT_AF_INET ? 32 : 128),
		.family = family,
		.addr = *addr,
	};
	struct ipcache_value *v = bpf_map_lookup_elem(&ipcache, &key);
	struct ipcache_value world = { .identity = IDENTITY_WORLD };

	return v ? *v : world;
}

/* The rule that allows it, or 0. */
static __always_inline __u32 policy_allows(__u32 endpoint_id, __u32 identity, enum weft_dir dir, const struct pkt *p)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FIXED + 8 + 16,
		.endpoint_id = endpoint_id,
		.identity = identity,
		.direction = dir,
		.proto = p->proto,
		.dport = p->dport,
	};

	struct policy_value *v = bpf_map_lookup_elem(&policy, &key);

	return v ? v->rule_id : 0;
}

static __always_inline bool endpoint_isolated(const struct endpoint_info *ep, enum weft_dir dir)
{
	return ep->flags & (dir == WEFT_DIR_INGRESS ? ENDPOINT_F_INGRESS_ISOLATED : ENDPOINT_F_EGRESS_ISOLATED);
}

/* What policy made of a new connection, for the events. */
struct policy_result {
	__u32 peer_identity; /* 0 when policy was not asked */
	__u32 rule_id;       /* the allowing rule; 0 when denied or not asked */
	bool asked;          /* the endpoint is isolated in this direction */
};

/* Asked once per new connection, from the side of the endpoint whose program saw it. dport is
 * the destination port whichever way the packet goes: the endpoint's own for ingress, the
 * peer's for egress. Rule ids are never 0 (the agent's RULE_NODE is 1, the others >= 16). */
static __always_inline enum policy_verdict
policy_new_connection(const struct endpoint_info *ep, enum weft_dir dir, const struct pkt *p, struct policy_result *r)
{
	if (!endpoint_isolated(ep, dir))
		return POLICY_ALLOW;

	const struct weft_addr *peer = dir == WEFT_DIR_EGRESS ? &p->daddr : &p->saddr;
	struct ipcache_value id = ipcache_lookup(peer, p->family);

	r->asked = true;
	r->peer_identity = id.identity;
	r->rule_id = policy_allows(ep->endpoint_id, id.identity, dir, p);
	if (!r->rule_id && id.cidr_identity != IDENTITY_ANY)
		r->rule_id = policy_allows(ep->endpoint_id, id.cidr_identity, dir, p);
	if (!r->rule_id)
		r->rule_id = policy_allows(ep->endpoint_id, IDENTITY_ANY, dir, p);
	return r->rule_id ? POLICY_ALLOW : POLICY_DENY;
}
