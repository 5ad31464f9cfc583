/* TC on each pod's host-side veth, both directions.
 *
 * lxc_from_pod runs at the host veth's TC ingress: packets leaving the pod (its egress).
 * lxc_to_pod runs at the host veth's TC egress: packets entering the pod (its ingress).
 *
 * Per packet: one endpoint lookup (by the veth's ifindex), one conntrack lookup (plus an insert
 * for a new connection), one per-CPU counter update. Every drop also sends an event with its
 * reason into the events ring buffer.
 *
 * What passes and what does not:
 *  - an interface without an lxc_endpoints entry: every packet is dropped, both ways
 *    (DROP_UNKNOWN_ENDPOINT); the agent writes the entry before it attaches the programs.
 *  - from the pod:
 *    - IPv4 and IPv6 only from the pod's own address of that family (DROP_SPOOFED_SOURCE).
 *      The one exception is IPv6 neighbour discovery and MLD sent from a link-local or the
 *      unspecified address, which the pod needs to find its gateway.
 *    - ARP passes (the pod must resolve its gateway), unchecked: the node's neighbour entries
 *      are per interface, so a pod can only mislead the node about its own veth.
 *    - any other ethertype, or a VLAN-tagged frame, is dropped (DROP_UNSUPPORTED_L3): a pod
 *      on a routed veth has no business sending it, and what is not parsed is not checked.
 *  - to the pod: whatever the node sends passes; IP packets are tracked.
 *  - truncated IP headers are dropped both ways (DROP_MALFORMED).
 *  - Conntrack follows TCP, UDP, ICMP/ICMPv6 echo and other IP protocols (by addresses).
 *    Non-first fragments, ICMP errors and neighbour discovery pass untracked.
 *
 * Allowed packets return TC_ACT_OK: with direct-action clsact filters the verdict is final. */
#include "common.h"
#include "parse.h"
#include "endpoint.h"
#include "conntrack.h"
#include "events.h"
#include "policy.h"

#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

static __always_inline int
lxc_drop(struct __sk_buff *skb, const struct pkt *p, __u32 endpoint_id, enum weft_dir dir, enum drop_reason reason)
{
	endpoint_count(endpoint_id, dir, p->segs, p->len, true);
	emit_drop(skb->ifindex, p, endpoint_id, dir, reason);
	return TC_ACT_SHOT;
}

/* A pod may only send from its own addresses. */
static __always_inline bool source_is_endpoint(const struct endpoint_info *ep, const struct pkt *p)
{
	if (p->family == WEFT_AF_INET)
		return ep->has_ipv4 && p->saddr.addr[0] == ep->ipv4.addr[0];
	if (ep->has_ipv6 && addr_eq(&p->saddr, &ep->ipv6))
		return true;
	return p->nd && ipv6_link_local_or_unspec(&p->saddr);
}

static __always_inline int lxc_handle(struct __sk_buff *skb, enum weft_dir dir)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep;
	struct pkt p = {};
	int parsed;

	parsed = parse_packet(skb, &p);
	ep = bpf_map_lookup_elem(&lxc_endpoints, &ifindex);
	if (!ep)
		return lxc_drop(skb, &p, 0, dir, DROP_UNKNOWN_ENDPOINT);

	switch (parsed) {
	case PARSE_MALFORMED: return lxc_drop(skb, &p, ep->endpoint_id, dir, DROP_MALFORMED);
	case PARSE_OTHER_L3:
		if (dir == WEFT_DIR_EGRESS)
			return lxc_drop(skb, &p, ep->endpoint_id, dir, DROP_UNSUPPORTED_L3);
		break;
	case PARSE_ARP: break;
	case PARSE_IP:
		if (dir == WEFT_DIR_EGRESS && !source_is_endpoint(ep, &p))
			return lxc_drop(skb, &p, ep->endpoint_id, dir, DROP_SPOOFED_SOURCE);
		if (p.track) {
			struct ct_key key = {};
			__u64 now = bpf_ktime_get_ns();

			ct_key_of(&key, &p, dir);
			__u8 reply = 0;
			if (ct_track(&key, &p, dir, now, &reply)) {
				if (events_every_packet())
					emit_trace(ifindex, &p, ep->endpoint_id, dir, 0, reply ? TRACE_F_REPLY : 0);
			} else if (!(p.proto == IPPROTO_TCP && (p.tcp_flags & TCP_FLAG_RST))) {
				struct policy_result r = {};

				if (policy_new_connection(ep, dir, &p, &r) != POLICY_ALLOW) {
					emit_policy(ifindex, &p, ep->endpoint_id, dir, r.peer_identity, 0, false);
					return lxc_drop(skb, &p, ep->endpoint_id, dir, DROP_POLICY);
				}
				if (r.asked)
					emit_policy(ifindex, &p, ep->endpoint_id, dir, r.peer_identity, r.rule_id,
						    true);
				ct_create(&key, &p, ep->endpoint_id, dir, now);
				emit_trace(ifindex, &p, ep->endpoint_id, dir, r.peer_identity, TRACE_F_NEW);
			} else if (events_every_packet()) {
				emit_trace(ifindex, &p, ep->endpoint_id, dir, 0, 0);
			}
		} else if (events_every_packet()) {
			emit_trace(ifindex, &p, ep->endpoint_id, dir, 0, 0);
		}
		break;
	}
	endpoint_count(ep->endpoint_id, dir, p.segs, p.len, false);
	return TC_ACT_OK;
}

SEC("tc")
int lxc_from_pod(struct __sk_buff *skb)
{
	return lxc_handle(skb, WEFT_DIR_EGRESS);
}

SEC("tc")
int lxc_to_pod(struct __sk_buff *skb)
{
	return lxc_handle(skb, WEFT_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
