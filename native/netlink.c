#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define REQ_SIZE  1024
#define RECV_SIZE 65536
#define MAX_RECVS 10000 /* a dump of every address on a busy node stays far below this */

union req {
	struct nlmsghdr h;
	char buf[REQ_SIZE];
};

static char recv_buf[RECV_SIZE] __attribute__((aligned(8)));

int nl_open(struct nl *nl)
{
	memset(nl, 0, sizeof(*nl));
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl->fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = 5 };
	int one = 1;
	setsockopt(nl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(nl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		close(nl->fd);
		nl->fd = -1;
		return err;
	}
	nl->seq = (uint32_t)getpid() << 8;
	return 0;
}

void nl_close(struct nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

static void req_init(union req *r, uint16_t type, uint16_t flags, const void *hdr, size_t hdrlen)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | flags;
	r->h.nlmsg_len = NLMSG_LENGTH(hdrlen);
	memcpy(NLMSG_DATA(&r->h), hdr, hdrlen);
}

/* Appends an attribute; NULL if the request is full (then the request is marked invalid). */
static struct rtattr *attr(union req *r, unsigned short type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->h.nlmsg_len);
	size_t alen = RTA_LENGTH(len);
	if (r->h.nlmsg_len == 0 || off + RTA_ALIGN(alen) > sizeof(r->buf)) {
		r->h.nlmsg_len = 0;
		return NULL;
	}
	struct rtattr *rta = (struct rtattr *)(r->buf + off);
	rta->rta_type = type;
	rta->rta_len = (unsigned short)alen;
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	r->h.nlmsg_len = (uint32_t)(off + RTA_ALIGN(alen));
	return rta;
}

static void attr_str(union req *r, unsigned short type, const char *s)
{
	attr(r, type, s, strlen(s) + 1);
}

static void attr_u32(union req *r, unsigned short type, uint32_t v)
{
	attr(r, type, &v, sizeof(v));
}

static void nest_end(union req *r, struct rtattr *nest)
{
	if (nest && r->h.nlmsg_len)
		nest->rta_len = (unsigned short)(r->buf + r->h.nlmsg_len - (char *)nest);
}

/* Raw bytes inside a nest (the ifinfomsg that starts VETH_INFO_PEER). */
static void raw(union req *r, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->h.nlmsg_len);
	if (r->h.nlmsg_len == 0 || off + NLMSG_ALIGN(len) > sizeof(r->buf)) {
		r->h.nlmsg_len = 0;
		return;
	}
	memcpy(r->buf + off, data, len);
	r->h.nlmsg_len = (uint32_t)(off + NLMSG_ALIGN(len));
}

static void take_ext_ack(struct nl *nl, const struct nlmsghdr *h)
{
	const struct nlmsgerr *e = NLMSG_DATA(h);
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	size_t off = sizeof(*e);
	if (!(h->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	size_t total = h->nlmsg_len - NLMSG_HDRLEN;
	if (off >= total)
		return;
	const struct rtattr *a = (const struct rtattr *)((const char *)e + NLMSG_ALIGN(off));
	size_t left = total - NLMSG_ALIGN(off);
	for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		if (a->rta_type == NLMSGERR_ATTR_MSG) {
			/* NUL-terminated by the kernel; %.*s bounds it all the same */
			snprintf(nl->ext_msg, sizeof(nl->ext_msg), "%.*s", (int)RTA_PAYLOAD(a),
				 (const char *)RTA_DATA(a));
			return;
		}
	}
}

typedef int (*nl_cb)(const struct nlmsghdr *h, void *arg);

/* Sends the request and reads until its ack, error or dump end, handing other messages of
 * this request to cb. Returns 0 or a negative errno. */
static int talk(struct nl *nl, union req *r, nl_cb cb, void *arg)
{
	nl->ext_msg[0] = '\0';
	if (r->h.nlmsg_len == 0)
		return -EMSGSIZE;
	int dump = (r->h.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
	if (!dump)
		r->h.nlmsg_flags |= NLM_F_ACK;
	r->h.nlmsg_seq = ++nl->seq;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (sendto(nl->fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	int cb_err = 0;
	for (int i = 0; i < MAX_RECVS; i++) {
		ssize_t n = recv(nl->fd, recv_buf, sizeof(recv_buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		size_t left = (size_t)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)recv_buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_seq != r->h.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return cb_err;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EBADMSG;
				if (e->error)
					take_ext_ack(nl, h);
				return e->error ? e->error : cb_err;
			}
			if (cb && !cb_err)
				cb_err = cb(h, arg);
		}
	}
	return -ETIMEDOUT;
}

struct link_arg {
	struct nl_link *out;
	int found;
};

static int link_cb(const struct nlmsghdr *h, void *arg)
{
	struct link_arg *la = arg;
	if (h->nlmsg_type != RTM_NEWLINK)
		return 0;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	la->found = 1;
	la->out->index = ifi->ifi_index;
	la->out->flags = ifi->ifi_flags;
	size_t left = IFLA_PAYLOAD(h);
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= 4)
			memcpy(&la->out->mtu, RTA_DATA(a), 4);
		if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
			memcpy(la->out->mac, RTA_DATA(a), 6);
			la->out->has_mac = true;
		}
	}
	return 0;
}

int nl_link_get(struct nl *nl, const char *name, struct nl_link *out)
{
	memset(out, 0, sizeof(*out));
	if (strlen(name) >= IFNAMSIZ)
		return -ENODEV;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	union req r;
	req_init(&r, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	attr_u32(&r, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	struct link_arg la = { .out = out };
	int err = talk(nl, &r, link_cb, &la);
	if (err)
		return err;
	return la.found ? 0 : -ENODEV;
}

int nl_veth_add(struct nl *nl, const char *name, const uint8_t mac[6], int mtu, const char *peer, int peer_netns_fd)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	union req r;
	req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	attr(&r, IFLA_ADDRESS, mac, 6);
	attr_u32(&r, IFLA_MTU, (uint32_t)mtu);
	struct rtattr *linkinfo = attr(&r, IFLA_LINKINFO, NULL, 0);
	attr_str(&r, IFLA_INFO_KIND, "veth");
	struct rtattr *data = attr(&r, IFLA_INFO_DATA, NULL, 0);
	struct rtattr *peer_nest = attr(&r, VETH_INFO_PEER, NULL, 0);
	raw(&r, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, peer);
	attr_u32(&r, IFLA_MTU, (uint32_t)mtu);
	attr_u32(&r, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
	nest_end(&r, peer_nest);
	nest_end(&r, data);
	nest_end(&r, linkinfo);
	return talk(nl, &r, NULL, NULL);
}

int nl_link_del(struct nl *nl, const char *name)
{
	if (strlen(name) >= IFNAMSIZ)
		return 0;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	union req r;
	req_init(&r, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	attr_str(&r, IFLA_IFNAME, name);
	int err = talk(nl, &r, NULL, NULL);
	return err == -ENODEV ? 0 : err;
}

int nl_link_up(struct nl *nl, int ifindex)
{
	struct ifinfomsg ifi = {
		.ifi_family = AF_UNSPEC, .ifi_index = ifindex, .ifi_flags = IFF_UP, .ifi_change = IFF_UP
	};
	union req r;
	req_init(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	return talk(nl, &r, NULL, NULL);
}

static size_t ip_len(const struct nl_ip *ip)
{
	return ip->family == AF_INET ? 4 : 16;
}

int nl_addr_add(struct nl *nl, int ifindex, const struct nl_ip *ip, int prefix_len, bool nodad)
{
	struct ifaddrmsg ifa = {
		.ifa_family = (uint8_t)ip->family,
		.ifa_prefixlen = (uint8_t)prefix_len,
		.ifa_flags = nodad ? IFA_F_NODAD : 0,
		.ifa_scope = RT_SCOPE_UNIVERSE,
		.ifa_index = (uint32_t)ifindex,
	};
	union req r;
	req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof(ifa));
	attr(&r, IFA_LOCAL, ip->addr, ip_len(ip));
	attr(&r, IFA_ADDRESS, ip->addr, ip_len(ip));
	if (nodad)
		attr_u32(&r, IFA_FLAGS, IFA_F_NODAD);
	return talk(nl, &r, NULL, NULL);
}

struct addr_arg {
	int ifindex;
	const struct nl_ip *ip;
	int prefix_len;
	int found;
};

static int addr_cb(const struct nlmsghdr *h, void *arg)
{
	struct addr_arg *aa = arg;
	if (h->nlmsg_type != RTM_NEWADDR)
		return 0;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	if ((int)ifa->ifa_index != aa->ifindex || ifa->ifa_family != aa->ip->family ||
	    ifa->ifa_prefixlen != aa->prefix_len)
		return 0;
	size_t left = IFA_PAYLOAD(h);
	size_t len = ip_len(aa->ip);
	for (const struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		int wanted = aa->ip->family == AF_INET ? IFA_LOCAL : IFA_ADDRESS;
		if (a->rta_type == wanted && RTA_PAYLOAD(a) == len && !memcmp(RTA_DATA(a), aa->ip->addr, len))
			aa->found = 1;
	}
	return 0;
}

int nl_addr_has(struct nl *nl, int ifindex, const struct nl_ip *ip, int prefix_len)
{
	struct ifaddrmsg ifa = { .ifa_family = (uint8_t)ip->family, .ifa_index = (uint32_t)ifindex };
	union req r;
	req_init(&r, RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof(ifa));
	struct addr_arg aa = { .ifindex = ifindex, .ip = ip, .prefix_len = prefix_len };
	int err = talk(nl, &r, addr_cb, &aa);
	return err ? err : aa.found;
}

int nl_route_replace(struct nl *nl, const struct nl_ip *dst, int dst_len, const struct nl_ip *gw, int ifindex,
		     bool scope_link)
{
	struct rtmsg rtm = {
		.rtm_family = (uint8_t)dst->family,
		.rtm_dst_len = (uint8_t)dst_len,
		.rtm_table = RT_TABLE_MAIN,
		.rtm_protocol = RTPROT_BOOT,
		.rtm_scope = scope_link ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE,
		.rtm_type = RTN_UNICAST,
	};
	union req r;
	req_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rtm, sizeof(rtm));
	if (dst_len > 0)
		attr(&r, RTA_DST, dst->addr, ip_len(dst));
	if (gw)
		attr(&r, RTA_GATEWAY, gw->addr, ip_len(gw));
	attr_u32(&r, RTA_OIF, (uint32_t)ifindex);
	return talk(nl, &r, NULL, NULL);
}

int nl_neigh_replace(struct nl *nl, int ifindex, const struct nl_ip *ip, const uint8_t mac[6])
{
	struct ndmsg nd = {
		.ndm_family = (uint8_t)ip->family,
		.ndm_ifindex = ifindex,
		.ndm_state = NUD_PERMANENT,
		.ndm_type = RTN_UNICAST,
	};
	union req r;
	req_init(&r, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &nd, sizeof(nd));
	attr(&r, NDA_DST, ip->addr, ip_len(ip));
	attr(&r, NDA_LLADDR, mac, 6);
	return talk(nl, &r, NULL, NULL);
}

int nl_ip_parse(const char *s, struct nl_ip *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, out->addr) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->addr) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

void nl_mac_format(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}
