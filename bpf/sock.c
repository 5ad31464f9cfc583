/* Socket-level service load balancing, attached to a cgroup v2 directory.
 *
 * connect and sendmsg rewrite a ClusterIP destination to one of the service's ready
 * backends before the socket ever sends a packet, so no packet needs NAT. getpeername and
 * recvmsg translate the backend address back, so the application only ever sees the service
 * address it asked for. */
#include "common.h"
#include "lb.h"
#include "events.h"

#define SYS_REJECT  0
#define SYS_PROCEED 1

/* Reads the socket address of a hook of family hook_family; out->family is the address's own
 * family. An AF_INET6 socket may carry an IPv4 destination as ::ffff:a.b.c.d (dual-stack
 * sockets, as Java and others open them): that is balanced as the IPv4 service it names. */
static __always_inline void ctx_l4addr(const struct bpf_sock_addr *ctx, int hook_family, struct weft_l4addr *out)
{
	out->port = (__be16)ctx->user_port;
	if (hook_family == WEFT_AF_INET) {
		out->ip.addr[0] = ctx->user_ip4;
		out->family = WEFT_AF_INET;
		return;
	}
	/* Every word is loaded straight from ctx before any branch: the verifier rejects the
	 * offset ctx pointer clang makes of a conditional load. */
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1];
	__u32 w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];

	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff)) {
		out->ip.addr[0] = w3;
		out->family = WEFT_AF_INET;
	} else {
		out->ip.addr[0] = w0;
		out->ip.addr[1] = w1;
		out->ip.addr[2] = w2;
		out->ip.addr[3] = w3;
		out->family = WEFT_AF_INET6;
	}
}

static __always_inline void ctx_set_l4addr(struct bpf_sock_addr *ctx, int hook_family, const struct weft_l4addr *addr)
{
	if (hook_family == WEFT_AF_INET) {
		ctx->user_ip4 = addr->ip.addr[0];
	} else if (addr->family == WEFT_AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = addr->ip.addr[0];
	} else {
		ctx->user_ip6[0] = addr->ip.addr[0];
		ctx->user_ip6[1] = addr->ip.addr[1];
		ctx->user_ip6[2] = addr->ip.addr[2];
		ctx->user_ip6[3] = addr->ip.addr[3];
	}
	ctx->user_port = addr->port;
}

/* Reports a translation: every connect, and every datagram only when every packet is asked
 * for (an unconnected UDP socket translates each one). */
static __always_inline void sock_report(struct bpf_sock_addr *ctx, const struct weft_l4addr *svc,
					const struct weft_l4addr *backend, bool is_connect, bool redirected)
{
	if (!is_connect && !events_every_packet())
		return;

	struct sock_xlate_event ev = {
		.hdr = {
			.time_ns = bpf_ktime_get_ns(),
			.type = WEFT_EVENT_SOCK,
			.direction = WEFT_DIR_EGRESS,
			.family = backend->family,
			.daddr = backend->ip,
			.dport = backend->port,
			.proto = ctx->protocol,
		},
		.svc_addr = svc->ip,
		.svc_port = svc->port,
		.is_connect = is_connect,
		.redirected = redirected,
		.cgroup_id = bpf_get_current_cgroup_id(),
		.netns_cookie = bpf_get_netns_cookie(ctx),
	};

	emit_sock_event(&ev);
}

/* Destination of a connect or an unconnected send: service → backend. */
static __always_inline int sock_xlate_fwd(struct bpf_sock_addr *ctx, int family, bool is_connect)
{
	struct weft_l4addr dst = {};
	struct lb_service_key key = {};
	struct lb_backend_value *backend;
	bool no_backend;
	__u16 flags = 0;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return SYS_PROCEED;

	ctx_l4addr(ctx, family, &dst);
	key.ip = dst.ip;
	key.port = dst.port;
	key.proto = ctx->protocol;
	key.family = dst.family;

	backend = lb_select_backend(&key, &no_backend, &flags);
	if (!backend) {
		if (no_backend) {
			/* A service without ready backends refuses at once rather than letting the
			 * packet wander off to an address nobody owns. */
			bpf_set_retval(-ECONNREFUSED);
			return SYS_REJECT;
		}
		return SYS_PROCEED;
	}
	if (backend->addr.family != dst.family)
		return SYS_PROCEED;

	lb_remember_service(bpf_get_socket_cookie(ctx), &backend->addr, &key);
	ctx_set_l4addr(ctx, family, &backend->addr);
	sock_report(ctx, &dst, &backend->addr, is_connect, flags & LB_SERVICE_F_L7);
	return SYS_PROCEED;
}

/* Peer address seen by the application: backend → service. */
static __always_inline int sock_xlate_rev(struct bpf_sock_addr *ctx, int family)
{
	struct weft_l4addr peer = {};
	struct lb_revnat_value *svc;

	ctx_l4addr(ctx, family, &peer);
	svc = lb_service_of(bpf_get_socket_cookie(ctx), &peer);
	if (svc && svc->service.family == peer.family)
		ctx_set_l4addr(ctx, family, &svc->service);
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, WEFT_AF_INET, true);
}

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, WEFT_AF_INET6, true);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, WEFT_AF_INET, false);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, WEFT_AF_INET6, false);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, WEFT_AF_INET);
}

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, WEFT_AF_INET6);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, WEFT_AF_INET);
}

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, WEFT_AF_INET6);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
