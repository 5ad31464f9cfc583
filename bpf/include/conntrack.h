/* Connection tracking for the pod-facing TC programs. This header is the one definition of the
 * ct map's layout (src/datapath/endpoint-codecs.ts agrees with it, checked against BTF).
 *
 * A connection is tracked once per endpoint it touches, from that endpoint's side: the key puts
 * the endpoint's own address and port first and the peer's second, whichever way the packet
 * goes. A reply therefore finds its original entry with the one lookup the request made (the
 * reverse lookup is the normalization), and a connection between two pods of one node has two
 * entries, one per pod, each seen as new by the pod's own programs: the place where each pod's
 * policy decides. Both families share the map (IPv4 in addr[0]). */
#pragma once

#include "common.h"
#include "endpoint.h"
#include "parse.h"

#define CT_MAX_ENTRIES 262144

#define NSEC_PER_SEC 1000000000ULL
/* How long an entry lives without packets, by state (the values Cilium uses). A packet that
 * finds an expired entry opens a new connection, as if there were none. */
#define CT_LIFETIME_TCP_HANDSHAKE   (60 * NSEC_PER_SEC)
#define CT_LIFETIME_TCP_ESTABLISHED (21600 * NSEC_PER_SEC)
#define CT_LIFETIME_TCP_CLOSING     (60 * NSEC_PER_SEC)
#define CT_LIFETIME_TCP_CLOSED      (10 * NSEC_PER_SEC)
#define CT_LIFETIME_OTHER           (60 * NSEC_PER_SEC)

enum ct_state : __u8 {
	CT_STATE_NEW = 1,         /* not TCP: seen in the original direction only */
	CT_STATE_SYN_SENT = 2,    /* TCP: SYN seen */
	CT_STATE_SYN_RECV = 3,    /* TCP: SYN-ACK seen in reply */
	CT_STATE_ESTABLISHED = 4, /* TCP: handshake done (or picked up mid-stream);
					 * others: a reply was seen */
	CT_STATE_CLOSING = 5,     /* TCP: FIN seen one way */
	CT_STATE_CLOSED = 6,      /* TCP: FIN seen both ways, or RST */
};

struct ct_key {
	struct weft_addr ep_addr; /* the endpoint's side */
	struct weft_addr peer_addr;
	__be16 ep_port; /* ICMP echo: the identifier, in both ports */
	__be16 peer_port;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct ct_entry {
	__u64 packets_orig; /* in the direction that opened the connection */
	__u64 bytes_orig;
	__u64 packets_reply;
	__u64 bytes_reply;
	__u64 created_ns; /* bpf_ktime_get_ns() */
	__u64 last_seen_ns;
	__u32 endpoint_id;    /* the endpoint whose programs created it */
	enum weft_dir origin; /* WEFT_DIR_EGRESS: the pod opened it; INGRESS: opened towards it */
	enum ct_state state;
	__u8 tcp_flags_orig; /* TCP flags seen in each direction, or-ed together */
	__u8 tcp_flags_reply;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_MAX_ENTRIES);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} ct SEC(".maps");

static __always_inline void ct_key_of(struct ct_key *key, const struct pkt *p, enum weft_dir dir)
{
	if (dir == WEFT_DIR_EGRESS) {
		key->ep_addr = p->saddr;
		key->peer_addr = p->daddr;
		key->ep_port = p->sport;
		key->peer_port = p->dport;
	} else {
		key->ep_addr = p->daddr;
		key->peer_addr = p->saddr;
		key->ep_port = p->dport;
		key->peer_port = p->sport;
	}
	key->proto = p->proto;
	key->family = p->family;
}

static __always_inline __u64 ct_lifetime(const struct ct_entry *e, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return CT_LIFETIME_OTHER;
	switch (e->state) {
	case CT_STATE_ESTABLISHED: return CT_LIFETIME_TCP_ESTABLISHED;
	case CT_STATE_CLOSING: return CT_LIFETIME_TCP_CLOSING;
	case CT_STATE_CLOSED: return CT_LIFETIME_TCP_CLOSED;
	default: return CT_LIFETIME_TCP_HANDSHAKE;
	}
}

/* The entry no longer stands for the connection this packet belongs to. */
static __always_inline bool ct_stale(const struct ct_entry *e, const struct pkt *p, __u64 now)
{
	/* A SYN on a closed connection's ports opens a new one. */
	if (p->proto == IPPROTO_TCP && e->state == CT_STATE_CLOSED &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return true;
	/* Signed: another CPU may have stored a later last_seen_ns than our now. */
	return (__s64)(now - e->last_seen_ns) > (__s64)ct_lifetime(e, p->proto);
}

static __always_inline void ct_tcp_update(struct ct_entry *e, __u8 flags, bool reply)
{
	__u8 mine = reply ? e->tcp_flags_reply : e->tcp_flags_orig;
	__u8 theirs = reply ? e->tcp_flags_orig : e->tcp_flags_reply;
	__u8 state = e->state, next = state;

	if ((mine | flags) != mine) {
		if (reply)
			e->tcp_flags_reply = mine | flags;
		else
			e->tcp_flags_orig = mine | flags;
	}
	if (flags & TCP_FLAG_RST)
		next = CT_STATE_CLOSED;
	else if (flags & TCP_FLAG_FIN)
		next = (theirs & TCP_FLAG_FIN) ? CT_STATE_CLOSED : CT_STATE_CLOSING;
	else if (state == CT_STATE_SYN_SENT && reply &&
		 (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK))
		next = CT_STATE_SYN_RECV;
	else if (state == CT_STATE_SYN_RECV && !reply && (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_ACK)
		next = CT_STATE_ESTABLISHED;
	if (next > state) /* TCP states only move forward */
		e->state = next;
}

/* Accounts a packet to its connection's entry. Returns false when the packet opens a new
 * connection (no entry, or a stale one): the caller asks policy, then calls ct_create. Sets
 * *is_reply when the packet goes against the connection's opening direction. */
static __always_inline bool
ct_track(const struct ct_key *key, const struct pkt *p, enum weft_dir dir, __u64 now, __u8 *is_reply)
{
	struct ct_entry *e = bpf_map_lookup_elem(&ct, key);
	bool reply;

	if (!e || ct_stale(e, p, now))
		return false;
	reply = dir != e->origin;
	*is_reply = reply;
	if (reply) {
		__sync_fetch_and_add(&e->packets_reply, p->segs);
		__sync_fetch_and_add(&e->bytes_reply, p->len);
	} else {
		__sync_fetch_and_add(&e->packets_orig, p->segs);
		__sync_fetch_and_add(&e->bytes_orig, p->len);
	}
	e->last_seen_ns = now;
	if (p->proto == IPPROTO_TCP)
		ct_tcp_update(e, p->tcp_flags, reply);
	else if (reply && e->state == CT_STATE_NEW)
		e->state = CT_STATE_ESTABLISHED;
	return true;
}

/* A packet that opens a connection: a SYN, or anything else picked up mid-stream (programs
 * attached to a running pod, an entry evicted or expired), which counts as established. A TCP
 * RST opens nothing: the caller lets it through without an entry. */
static __always_inline void
ct_create(const struct ct_key *key, const struct pkt *p, __u32 endpoint_id, enum weft_dir dir, __u64 now)
{
	struct ct_entry e = {
		.packets_orig = p->segs,
		.bytes_orig = p->len,
		.created_ns = now,
		.last_seen_ns = now,
		.endpoint_id = endpoint_id,
		.origin = dir,
		.state = CT_STATE_NEW,
	};

	if (p->proto == IPPROTO_TCP) {
		e.tcp_flags_orig = p->tcp_flags;
		e.state = (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN ? CT_STATE_SYN_SENT :
											   CT_STATE_ESTABLISHED;
		if (p->tcp_flags & TCP_FLAG_FIN)
			e.state = CT_STATE_CLOSING;
	}
	bpf_map_update_elem(&ct, key, &e, BPF_ANY);
}
