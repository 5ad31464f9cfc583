/* Shared definitions for every Weft BPF program. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define WEFT_AF_INET  4
#define WEFT_AF_INET6 6

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif

/* Which way a packet goes, seen from the pod, as Kubernetes network policy sees it. The TC
 * hooks are named from the host side of the veth, the other way round: lxc_from_pod runs at
 * the host veth's TC ingress and sees the pod's WEFT_DIR_EGRESS; lxc_to_pod runs at its TC
 * egress and sees the pod's WEFT_DIR_INGRESS. */
enum weft_dir : __u8 {
	WEFT_DIR_EGRESS = 0,
	WEFT_DIR_INGRESS = 1,
};

/* An IP address of either family. IPv4 lives in addr[0]; the other words are zero, so that
 * one map can hold both families without a second copy of every structure. */
struct weft_addr {
	__be32 addr[4];
};

/* An address and port, as the kernel's sockets see them: network byte order. */
struct weft_l4addr {
	struct weft_addr ip;
	__be16 port;
	__u8 family;
	__u8 pad;
};
