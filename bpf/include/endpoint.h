/* Pod endpoints as the TC programs on their host-side veths see them, and their counters.
 * This header is the one definition of these maps' layouts: src/datapath/endpoint-codecs.ts
 * must agree with it, and test/datapath/btf-layout.test.ts checks so against lxc.o's BTF. */
#pragma once

#include "common.h"

#define LXC_MAX_ENDPOINTS 4096

/* lxc_endpoints: host-side veth ifindex (in the node's network namespace) → the pod behind it.
 * The agent writes the entry before it attaches the programs and deletes it after it detached
 * them; a program that finds no entry for its interface drops (DROP_UNKNOWN_ENDPOINT). */
/* Some NetworkPolicy selects the endpoint for that direction: new connections need an allow
 * entry in the policy map (bpf/include/policy.h). */
#define ENDPOINT_F_INGRESS_ISOLATED (1u << 0)
#define ENDPOINT_F_EGRESS_ISOLATED  (1u << 1)

struct endpoint_info {
	__u32 endpoint_id;     /* 1..2^32-1; 0 stands for "no endpoint" in counters and events */
	__u32 flags;           /* ENDPOINT_F_* */
	struct weft_addr ipv4; /* addr[0] only */
	struct weft_addr ipv6;
	__u8 has_ipv4;
	__u8 has_ipv6;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LXC_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct endpoint_info);
} lxc_endpoints SEC(".maps");

/* lxc_metrics: per endpoint and direction, per CPU. packets and bytes count what the programs
 * let through (a GSO packet counts as its segments), drops what they dropped. Drops on an
 * interface without an endpoint entry count under endpoint id 0. */
struct endpoint_metrics_key {
	__u32 endpoint_id;
	enum weft_dir direction;
	__u8 pad[3];
};

struct endpoint_metrics {
	__u64 packets;
	__u64 bytes;
	__u64 drops;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2 * LXC_MAX_ENDPOINTS + 2);
	__type(key, struct endpoint_metrics_key);
	__type(value, struct endpoint_metrics);
} lxc_metrics SEC(".maps");

static __always_inline void metrics_add(struct endpoint_metrics *m, __u32 segs, __u32 len, bool dropped)
{
	/* Per CPU: no other writer, plain adds. */
	if (dropped) {
		m->drops += segs;
	} else {
		m->packets += segs;
		m->bytes += len;
	}
}

static __always_inline void endpoint_count(__u32 endpoint_id, enum weft_dir dir, __u32 segs, __u32 len, bool dropped)
{
	struct endpoint_metrics_key key = { .endpoint_id = endpoint_id, .direction = dir };
	struct endpoint_metrics *m = bpf_map_lookup_elem(&lxc_metrics, &key);

	if (m) {
		metrics_add(m, segs, len, dropped);
		return;
	}
	/* First packet of this endpoint and direction: the insert sets this CPU's slot and zeroes
	 * the others. Another CPU may have inserted in between; then add to what it made. */
	struct endpoint_metrics init = {};

	metrics_add(&init, segs, len, dropped);
	if (bpf_map_update_elem(&lxc_metrics, &key, &init, BPF_NOEXIST) == 0)
		return;
	m = bpf_map_lookup_elem(&lxc_metrics, &key);
	if (m)
		metrics_add(m, segs, len, dropped);
}
