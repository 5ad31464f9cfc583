/* A pod's interface: the veth pair, the pod side's addresses, routes and gateway neighbours,
 * the host side's sysctls and routes. What ADD builds, CHECK verifies and DEL removes. */
#ifndef WEFT_PODNET_H
#define WEFT_PODNET_H

#include <net/if.h>
#include <stdint.h>

#include "cni_error.h"
#include "netlink.h"

#define PODNET_MAX_IPS 8
/* The host veth's MAC: its IPv6 link-local address is then fe80::ecee:eeff:feee:eeee. */
/* An initializer, which clang-format would lay out as a block. */
/* clang-format off */
#define PODNET_HOST_MAC { 0xee, 0xee, 0xee, 0xee, 0xee, 0xee }
/* clang-format on */

struct pod_addr {
	struct nl_ip ip;
	int prefix_len;
	struct nl_ip gw; /* family 0: no gateway */
};

struct podnet {
	const char *cni_version; /* for the error result if the process cannot leave the pod's netns */
	const char *host_if;
	const char *pod_if;
	const char *netns_path;
	int netns_fd;
	int mtu;
	struct pod_addr addrs[PODNET_MAX_IPS];
	int naddrs;
};

struct podnet_links {
	int host_ifindex;
	char host_mac[18];
	char pod_mac[18];
	/* SO_NETNS_COOKIE of the pod's namespace (what bpf_get_netns_cookie() returns for its
	 * sockets), so that the agent can name the pod behind a socket event; 0 if unknown. */
	uint64_t netns_cookie;
};

/* "wft" + the first 12 hex digits of FNV-1a-64 over "<containerId>/<ifName>" (the agent
 * computes the same name). */
void podnet_host_ifname(const char *container_id, const char *ifname, char out[IFNAMSIZ]);
/* Creates everything; on failure leaves whatever it made for podnet_remove to delete. */
int podnet_add(const struct podnet *p, struct podnet_links *out, struct cni_err *e);
/* Deletes the host veth (and with it the pod side). 0 also when it was not there. */
int podnet_remove(const char *host_if, struct cni_err *e);
/* Verifies the host veth and, in the pod, the interface and each of `expect`. */
int podnet_check(const struct podnet *p, const struct pod_addr *expect, int nexpect, struct cni_err *e);

#endif
