/* rtnetlink by hand: just the link, address, route and neighbour operations the plugin needs.
 * A socket talks to the network namespace it was opened in. Errors are negative errnos; the
 * kernel's extended-ack message, if any, is left in nl->ext_msg. */
#ifndef WEFT_NETLINK_H
#define WEFT_NETLINK_H

#include <stdint.h>
#include <stdbool.h>

struct nl {
	int fd;
	uint32_t seq;
	char ext_msg[160];
};

struct nl_link {
	int index;
	unsigned flags; /* IFF_* */
	int mtu;
	uint8_t mac[6];
	bool has_mac;
};

struct nl_ip {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
};

int nl_open(struct nl *nl);
void nl_close(struct nl *nl);

/* -ENODEV if there is no such link. */
int nl_link_get(struct nl *nl, const char *name, struct nl_link *out);
/* A veth pair: `name` here (with mac and mtu), its peer `peer` created directly in the
 * namespace peer_netns_fd (same mtu). Both start down. */
int nl_veth_add(struct nl *nl, const char *name, const uint8_t mac[6], int mtu, const char *peer, int peer_netns_fd);
/* 0 also when there was no such link. */
int nl_link_del(struct nl *nl, const char *name);
int nl_link_up(struct nl *nl, int ifindex);
int nl_addr_add(struct nl *nl, int ifindex, const struct nl_ip *ip, int prefix_len, bool nodad);
/* 1 if ifindex has ip/prefix_len, 0 if not. */
int nl_addr_has(struct nl *nl, int ifindex, const struct nl_ip *ip, int prefix_len);
/* Adds or replaces dst/dst_len via gw (NULL: directly on the link) on ifindex. */
int nl_route_replace(struct nl *nl, const struct nl_ip *dst, int dst_len, const struct nl_ip *gw, int ifindex,
		     bool scope_link);
/* A permanent neighbour entry ip -> mac on ifindex. */
int nl_neigh_replace(struct nl *nl, int ifindex, const struct nl_ip *ip, const uint8_t mac[6]);

int nl_ip_parse(const char *s, struct nl_ip *out);
void nl_mac_format(const uint8_t mac[6], char out[18]);

#endif
