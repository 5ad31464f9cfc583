/* Events from the datapath to the agent's observer, through one ring buffer. Every event starts
 * with struct event_hdr; a drop event is the header alone. This header is the one definition
 * of the layout and of the codes (src/datapath/endpoint-codecs.ts agrees, checked against
 * BTF). A reservation that fails (the ring is full) is counted in events_lost, never silent. */
#pragma once

#include "common.h"
#include "endpoint.h"
#include "parse.h"

#define EVENTS_RING_BYTES (1 << 20)

enum weft_event_type : __u8 {
	WEFT_EVENT_DROP = 1,
};

enum drop_reason : __u8 {
	DROP_SPOOFED_SOURCE = 1,	/* a pod sent from an address that is not its own */
	DROP_UNKNOWN_ENDPOINT = 2,	/* no lxc_endpoints entry for the interface */
	DROP_UNSUPPORTED_L3 = 3,	/* from a pod: not IPv4, IPv6 or ARP (or VLAN-tagged) */
	DROP_MALFORMED = 4,		/* truncated or inconsistent headers */
	DROP_POLICY = 5,		/* a new connection no NetworkPolicy allows */
};

struct event_hdr {
	__u64 time_ns;			/* bpf_ktime_get_ns() */
	enum weft_event_type type;
	enum drop_reason reason;	/* WEFT_EVENT_DROP only */
	enum weft_dir direction;
	__u8 family;			/* WEFT_AF_INET, WEFT_AF_INET6, 0 when not IP */
	__u32 ifindex;
	__u32 endpoint_id;		/* 0 when the interface has no endpoint */
	__u32 pkt_len;
	struct weft_addr saddr;
	struct weft_addr daddr;
	__be16 sport;			/* ICMP echo: the identifier */
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags;
	__be16 ethertype;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RING_BYTES);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

/* Not inlined: drops are rare, and as a function of its own that takes the header, the event
 * layout is in the object's BTF, where the TypeScript codec is checked against it. */
static __noinline int emit_event(const struct event_hdr *ev)
{
	if (bpf_ringbuf_output(&events, (void *)ev, sizeof(*ev), 0) < 0) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&events_lost, &zero);

		if (lost)
			*lost += 1;
	}
	return 0;
}

static __always_inline void
emit_drop(__u32 ifindex, const struct pkt *p, __u32 endpoint_id, enum weft_dir dir,
	  enum drop_reason reason)
{
	struct event_hdr ev = {
		.time_ns = bpf_ktime_get_ns(),
		.type = WEFT_EVENT_DROP,
		.reason = reason,
		.direction = dir,
		.family = p->family,
		.ifindex = ifindex,
		.endpoint_id = endpoint_id,
		.pkt_len = p->len,
		.saddr = p->saddr,
		.daddr = p->daddr,
		.sport = p->sport,
		.dport = p->dport,
		.proto = p->proto,
		.tcp_flags = p->tcp_flags,
		.ethertype = p->ethertype,
	};

	emit_event(&ev);
}
