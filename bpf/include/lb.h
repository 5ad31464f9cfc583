/* Service load balancing maps. This header is the one definition of their layouts:
 * src/datapath/lb-codecs.ts must agree with it, and test/datapath/btf-layout.test.ts checks so
 * against the compiled object's BTF.
 *
 * A Service frontend (ClusterIP, port, protocol) maps to a service id and the number of its
 * ready backends; backend slots 1..count of that id hold the backends. The agent writes slots
 * before raising a count and lowers a count before deleting slots, so a connect never picks
 * an empty slot. */
#pragma once

#include "common.h"

#define LB_MAX_SERVICES 65536
#define LB_MAX_BACKENDS 524288
#define LB_MAX_REVNAT   262144

struct lb_service_key {
	struct weft_addr ip;
	__be16 port;
	__u8 proto;  /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 family; /* WEFT_AF_INET or WEFT_AF_INET6 */
};

#define LB_SERVICE_F_NONE 0
/* The frontend's one backend is the node proxy's listener for this Service port: the Service
 * has L7 routes (the agent sets it; the datapath reports such connections as redirected). */
#define LB_SERVICE_F_L7 (1 << 0)

struct lb_service_value {
	__u32 service_id;
	__u16 backend_count;
	__u16 flags;
};

struct lb_backend_key {
	__u32 service_id;
	__u32 slot; /* 1..backend_count */
};

struct lb_backend_value {
	struct weft_l4addr addr;
};

/* Per socket: which service address a backend address stands for, so that getpeername and
 * recvmsg show the address the application asked for. */
struct lb_revnat_key {
	__u64 cookie;
	struct weft_l4addr backend;
	__u32 pad;
};

struct lb_revnat_value {
	struct weft_l4addr service;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct lb_service_key);
	__type(value, struct lb_service_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, struct lb_backend_key);
	__type(value, struct lb_backend_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_REVNAT);
	__type(key, struct lb_revnat_key);
	__type(value, struct lb_revnat_value);
} lb_revnat SEC(".maps");

/* Picks a backend for a frontend. Returns NULL when the address is not a service, and sets
 * *no_backend when it is one with no ready backend; *flags are the service's LB_SERVICE_F_*. */
static __always_inline struct lb_backend_value *
lb_select_backend(const struct lb_service_key *key, bool *no_backend, __u16 *flags)
{
	struct lb_service_value *svc;
	struct lb_backend_key bkey = {};

	*no_backend = false;
	svc = bpf_map_lookup_elem(&lb_services, key);
	if (!svc)
		return NULL;
	*flags = svc->flags;
	if (svc->backend_count == 0) {
		*no_backend = true;
		return NULL;
	}
	bkey.service_id = svc->service_id;
	bkey.slot = (bpf_get_prandom_u32() % svc->backend_count) + 1;
	return bpf_map_lookup_elem(&lb_backends, &bkey);
}

static __always_inline void
lb_remember_service(__u64 cookie, const struct weft_l4addr *backend, const struct lb_service_key *svc)
{
	struct lb_revnat_key key = { .cookie = cookie, .backend = *backend };
	struct lb_revnat_value val = {
		.service = { .ip = svc->ip, .port = svc->port, .family = svc->family },
	};

	bpf_map_update_elem(&lb_revnat, &key, &val, BPF_ANY);
}

static __always_inline struct lb_revnat_value *lb_service_of(__u64 cookie, const struct weft_l4addr *backend)
{
	struct lb_revnat_key key = { .cookie = cookie, .backend = *backend };

	return bpf_map_lookup_elem(&lb_revnat, &key);
}
