/* Events from the datapath to the agent's observer, through one ring buffer. Every event starts
 * with struct event_hdr; a drop event is the header alone, the others add a struct of their
 * own. This header is the one definition of the layouts and of the codes
 * (src/datapath/endpoint-codecs.ts agrees, checked against BTF). A reservation that fails (the
 * ring is full) is counted in events_lost, per CPU, never silent.
 *
 * How much is reported is events_config's trace_level: EVENTS_NEW_AND_DROPS (the default, 0)
 * sends a trace event for each new connection, a policy verdict for each connection policy
 * decided, and every drop; EVENTS_EVERY_PACKET adds a trace event for every packet that
 * passes. */
#pragma once

#include "common.h"
#include "parse.h"

#define EVENTS_RING_BYTES (1 << 23)

enum weft_event_type : __u8 {
	WEFT_EVENT_DROP = 1,   /* struct event_hdr */
	WEFT_EVENT_TRACE = 2,  /* struct pkt_trace_event: a packet passed */
	WEFT_EVENT_POLICY = 3, /* struct policy_verdict_event: policy decided a new connection */
	WEFT_EVENT_SOCK = 4,   /* struct sock_xlate_event: bpf/sock.c sent a socket to a backend */
};

enum events_level : __u32 {
	EVENTS_NEW_AND_DROPS = 0,
	EVENTS_EVERY_PACKET = 1,
};

/* pkt_trace_event.ct_flags */
#define TRACE_F_NEW   (1 << 0) /* the packet opened a connection */
#define TRACE_F_REPLY (1 << 1) /* against the direction its connection was opened in */

enum drop_reason : __u8 {
	DROP_SPOOFED_SOURCE = 1,   /* a pod sent from an address that is not its own */
	DROP_UNKNOWN_ENDPOINT = 2, /* no lxc_endpoints entry for the interface */
	DROP_UNSUPPORTED_L3 = 3,   /* from a pod: not IPv4, IPv6 or ARP (or VLAN-tagged) */
	DROP_MALFORMED = 4,        /* truncated or inconsistent headers */
	DROP_POLICY = 5,           /* a new connection no NetworkPolicy allows */
};

struct event_hdr {
	__u64 time_ns; /* bpf_ktime_get_ns() */
	enum weft_event_type type;
	enum drop_reason reason; /* WEFT_EVENT_DROP only */
	enum weft_dir direction;
	__u8 family; /* WEFT_AF_INET, WEFT_AF_INET6, 0 when not IP */
	__u32 ifindex;
	__u32 endpoint_id; /* 0 when the interface has no endpoint */
	__u32 pkt_len;
	struct weft_addr saddr;
	struct weft_addr daddr;
	__be16 sport; /* ICMP echo: the identifier */
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags;
	__be16 ethertype;
};

struct pkt_trace_event {
	struct event_hdr hdr;
	__u32 peer_identity; /* the peer's ipcache identity */
	__u8 ct_flags;       /* TRACE_F_* */
	__u8 pad[3];
};

struct policy_verdict_event {
	struct event_hdr hdr;
	__u32 peer_identity;
	__u32 rule_id; /* the allowing rule; 0 when denied */
	__u8 allowed;
	__u8 pad[7];
};

/* The header's daddr/dport are the backend, its proto the socket's; ifindex and endpoint_id
 * are 0 (a socket hook sees no interface). Sent for every connect, and for every datagram
 * sendmsg translates only at EVENTS_EVERY_PACKET. */
struct sock_xlate_event {
	struct event_hdr hdr;
	struct weft_addr svc_addr; /* what the application asked for */
	__be16 svc_port;
	__u8 is_connect; /* connect (1) or sendmsg (0) */
	__u8 redirected; /* the backend is the node proxy's listener (LB_SERVICE_F_L7) */
	__u8 pad[4];
	__u64 cgroup_id;    /* the socket's cgroup */
	__u64 netns_cookie; /* the socket's network namespace */
};

struct events_config_value {
	enum events_level trace_level;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct events_config_value);
} events_config SEC(".maps");

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

static __always_inline void events_count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&events_lost, &zero);

	if (lost)
		*lost += 1;
}

/* The reader is woken only once a backlog builds up: a wake-up per event would cost the
 * observer's thread a context switch per new connection, taken from the pods' CPUs. Below
 * the mark the observer finds the events when it next looks (it polls every few ms); above
 * it, every event wakes it, so a burst never waits for the poll with the ring filling. */
#define EVENTS_WAKEUP_BYTES (EVENTS_RING_BYTES / 8)

static __always_inline void events_output(void *ev, __u64 size)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= EVENTS_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP :
											     BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_output(&events, ev, size, flags) < 0)
		events_count_lost();
}

/* Not inlined: as functions of their own that take each struct, the event layouts are in the
 * object's BTF, where the TypeScript codecs are checked against them. */
static __noinline __attribute__((unused)) int emit_event(const struct event_hdr *ev)
{
	events_output((void *)ev, sizeof(*ev));
	return 0;
}

static __noinline __attribute__((unused)) int emit_trace_event(const struct pkt_trace_event *ev)
{
	events_output((void *)ev, sizeof(*ev));
	return 0;
}

static __noinline __attribute__((unused)) int emit_policy_event(const struct policy_verdict_event *ev)
{
	events_output((void *)ev, sizeof(*ev));
	return 0;
}

static __noinline __attribute__((unused)) int emit_sock_event(const struct sock_xlate_event *ev)
{
	events_output((void *)ev, sizeof(*ev));
	return 0;
}

static __always_inline bool events_every_packet(void)
{
	__u32 zero = 0;
	struct events_config_value *c = bpf_map_lookup_elem(&events_config, &zero);

	return c && c->trace_level == EVENTS_EVERY_PACKET;
}

static __always_inline void event_hdr_fill(struct event_hdr *h, enum weft_event_type type, __u32 ifindex,
					   const struct pkt *p, __u32 endpoint_id, enum weft_dir dir)
{
	h->time_ns = bpf_ktime_get_ns();
	h->type = type;
	h->direction = dir;
	h->family = p->family;
	h->ifindex = ifindex;
	h->endpoint_id = endpoint_id;
	h->pkt_len = p->len;
	h->saddr = p->saddr;
	h->daddr = p->daddr;
	h->sport = p->sport;
	h->dport = p->dport;
	h->proto = p->proto;
	h->tcp_flags = p->tcp_flags;
	h->ethertype = p->ethertype;
}

static __always_inline void
emit_drop(__u32 ifindex, const struct pkt *p, __u32 endpoint_id, enum weft_dir dir, enum drop_reason reason)
{
	struct event_hdr ev = {};

	event_hdr_fill(&ev, WEFT_EVENT_DROP, ifindex, p, endpoint_id, dir);
	ev.reason = reason;
	emit_event(&ev);
}

static __always_inline void
emit_trace(__u32 ifindex, const struct pkt *p, __u32 endpoint_id, enum weft_dir dir, __u32 peer_identity, __u8 ct_flags)
{
	struct pkt_trace_event ev = { .peer_identity = peer_identity, .ct_flags = ct_flags };

	event_hdr_fill(&ev.hdr, WEFT_EVENT_TRACE, ifindex, p, endpoint_id, dir);
	emit_trace_event(&ev);
}

static __always_inline void emit_policy(__u32 ifindex, const struct pkt *p, __u32 endpoint_id, enum weft_dir dir,
					__u32 peer_identity, __u32 rule_id, bool allowed)
{
	struct policy_verdict_event ev = { .peer_identity = peer_identity, .rule_id = rule_id, .allowed = allowed };

	event_hdr_fill(&ev.hdr, WEFT_EVENT_POLICY, ifindex, p, endpoint_id, dir);
	emit_policy_event(&ev);
}
