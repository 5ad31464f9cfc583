/* Packet parsing for the TC programs: Ethernet, IPv4, IPv6 (with a bounded walk over extension
 * headers) and the L4 ports, read with bpf_skb_load_bytes so that a non-linear or truncated
 * packet is never read past its end. */
#pragma once

#include "common.h"

#define ETH_HLEN   14
#define ETH_P_IP   0x0800
#define ETH_P_ARP  0x0806
#define ETH_P_IPV6 0x86DD

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define ICMP_ECHOREPLY        0
#define ICMP_ECHO             8
#define ICMPV6_ECHO_REQUEST   128
#define ICMPV6_ECHO_REPLY     129
#define ICMPV6_MLD_QUERY      130
#define ICMPV6_NDISC_REDIRECT 137
#define ICMPV6_MLD2_REPORT    143

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#define NEXTHDR_HOP      0
#define NEXTHDR_ROUTING  43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH     51
#define NEXTHDR_DEST     60

/* At most this many IPv6 extension headers before the L4 header; more is DROP_MALFORMED. */
#define IPV6_MAX_EXT_HDRS 4

enum parse_result {
	PARSE_IP, /* IPv4 or IPv6, headers read as far as they matter */
	PARSE_ARP,
	PARSE_OTHER_L3,  /* another ethertype, or a VLAN-tagged frame */
	PARSE_MALFORMED, /* truncated or inconsistent headers */
};

/* What the programs know of one packet. Addresses and ports in network byte order; for ICMP
 * and ICMPv6 echo both ports hold the echo identifier, so that a request and its reply name
 * the same connection whichever way they go. */
struct pkt {
	struct weft_addr saddr;
	struct weft_addr daddr;
	__be16 sport;
	__be16 dport;
	__be16 ethertype;
	__u8 family; /* WEFT_AF_INET, WEFT_AF_INET6, or 0 when not IP */
	__u8 proto;  /* IPPROTO_*: the L4 protocol after any IPv6 extension headers */
	__u8 tcp_flags;
	__u8 track; /* conntrack applies: TCP, UDP, ICMP echo, other protocols; not non-first
			 * fragments (no L4 header), ICMP errors or neighbour discovery */
	__u8 nd;    /* IPv6 neighbour discovery or MLD: link signalling, not a connection */
	__u8 pad;
	__u32 len;  /* skb->len */
	__u32 segs; /* GSO segments, 1 for a plain packet */
};

static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct pkt *p)
{
	p->track = 1;
	switch (p->proto) {
	case IPPROTO_TCP: {
		/* Ports, sequence and acknowledgement numbers, data offset, flags. */
		__u8 tcp[14];

		if (bpf_skb_load_bytes(skb, off, tcp, sizeof(tcp)) < 0)
			return PARSE_MALFORMED;
		__builtin_memcpy(&p->sport, &tcp[0], 2);
		__builtin_memcpy(&p->dport, &tcp[2], 2);
		p->tcp_flags = tcp[13];
		return PARSE_IP;
	}
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return PARSE_MALFORMED;
		p->sport = ports[0];
		p->dport = ports[1];
		return PARSE_IP;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, identifier, sequence */
		struct {
			__u8 type;
			__u8 code;
			__u16 csum;
			__be16 id;
			__be16 seq;
		} icmp;

		if (bpf_skb_load_bytes(skb, off, &icmp, sizeof(icmp)) < 0)
			return PARSE_MALFORMED;
		if (p->proto == IPPROTO_ICMP ? (icmp.type == ICMP_ECHO || icmp.type == ICMP_ECHOREPLY) :
					       (icmp.type == ICMPV6_ECHO_REQUEST || icmp.type == ICMPV6_ECHO_REPLY)) {
			p->sport = icmp.id;
			p->dport = icmp.id;
		} else {
			p->track = 0;
			if (p->proto == IPPROTO_ICMPV6 &&
			    ((icmp.type >= ICMPV6_MLD_QUERY && icmp.type <= ICMPV6_NDISC_REDIRECT) ||
			     icmp.type == ICMPV6_MLD2_REPORT))
				p->nd = 1;
		}
		return PARSE_IP;
	}
	default:
		/* Tracked by addresses and protocol alone. */
		return PARSE_IP;
	}
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PARSE_MALFORMED;
	p->family = WEFT_AF_INET;
	p->saddr.addr[0] = ip.saddr;
	p->daddr.addr[0] = ip.daddr;
	p->proto = ip.protocol;
	if (ip.frag_off & bpf_htons(0x1fff))
		return PARSE_IP; /* a non-first fragment: no L4 header, not tracked */
	return parse_l4(skb, ETH_HLEN + ip.ihl * 4, p);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt *p)
{
	struct ipv6hdr ip6;
	__u32 off = ETH_HLEN + sizeof(ip6);
	bool later_fragment = false;
	__u8 nh;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return PARSE_MALFORMED;
	if (ip6.version != 6)
		return PARSE_MALFORMED;
	p->family = WEFT_AF_INET6;
	__builtin_memcpy(&p->saddr, &ip6.saddr, sizeof(p->saddr));
	__builtin_memcpy(&p->daddr, &ip6.daddr, sizeof(p->daddr));
	nh = ip6.nexthdr;

#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HDRS; i++) {
		/* Every extension header starts with next header and length; a fragment header
		 * has its offset where the others have more options. */
		struct {
			__u8 nexthdr;
			__u8 len;
			__be16 frag_off;
		} ext;

		if (nh != NEXTHDR_HOP && nh != NEXTHDR_ROUTING && nh != NEXTHDR_DEST && nh != NEXTHDR_FRAGMENT &&
		    nh != NEXTHDR_AUTH)
			break;
		if (bpf_skb_load_bytes(skb, off, &ext, sizeof(ext)) < 0)
			return PARSE_MALFORMED;
		if (nh == NEXTHDR_FRAGMENT) {
			if (ext.frag_off & bpf_htons(0xfff8))
				later_fragment = true;
			off += 8;
		} else if (nh == NEXTHDR_AUTH) {
			off += (ext.len + 2) * 4;
		} else {
			off += (ext.len + 1) * 8;
		}
		nh = ext.nexthdr;
	}
	if (nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_DEST || nh == NEXTHDR_FRAGMENT ||
	    nh == NEXTHDR_AUTH)
		return PARSE_MALFORMED; /* more extension headers than we walk */
	p->proto = nh;
	if (later_fragment)
		return PARSE_IP;
	return parse_l4(skb, off, p);
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p)
{
	__be16 proto;

	p->len = skb->len;
	p->segs = skb->gso_segs > 1 ? skb->gso_segs : 1;
	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return PARSE_MALFORMED;
	p->ethertype = proto;
	if (skb->vlan_present) {
		/* An offloaded 802.1Q tag: not a frame a pod on a routed veth sends. */
		p->ethertype = (__be16)skb->vlan_proto;
		return PARSE_OTHER_L3;
	}
	switch (proto) {
	case bpf_htons(ETH_P_IP): return parse_ipv4(skb, p);
	case bpf_htons(ETH_P_IPV6): return parse_ipv6(skb, p);
	case bpf_htons(ETH_P_ARP): return PARSE_ARP;
	default: return PARSE_OTHER_L3;
	}
}

static __always_inline bool addr_eq(const struct weft_addr *a, const struct weft_addr *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3];
}

/* fe80::/10 or :: (the source of a duplicate address detection probe). */
static __always_inline bool ipv6_link_local_or_unspec(const struct weft_addr *a)
{
	if ((a->addr[0] & bpf_htonl(0xffc00000)) == bpf_htonl(0xfe800000))
		return true;
	return (a->addr[0] | a->addr[1] | a->addr[2] | a->addr[3]) == 0;
}
