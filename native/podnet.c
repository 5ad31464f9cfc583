#include "podnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netns.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* The calling thread's network namespace cookie; 0 when the kernel has none to give (before
 * 5.14): the agent then names no pod for this pod's socket events, nothing worse. */
static uint64_t netns_cookie(void)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 0;
	if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0 || len != sizeof(cookie))
		cookie = 0;
	close(s);
	return cookie;
}

void podnet_host_ifname(const char *container_id, const char *ifname, char out[IFNAMSIZ])
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *parts[] = { container_id, "/", ifname };
	for (int i = 0; i < 3; i++)
		for (const unsigned char *c = (const unsigned char *)parts[i]; *c; c++) {
			h ^= *c;
			h *= 0x100000001b3ull;
		}
	char hex[17];
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
	snprintf(out, IFNAMSIZ, "wft%.12s", hex);
}

static const char *ip_text(const struct nl_ip *ip, char *buf, size_t len)
{
	if (!inet_ntop(ip->family, ip->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

/* Sets an error from a netlink failure: what was being done, errno text, the kernel's note. */
static void nl_fail(struct cni_err *e, const struct nl *nl, int err, const char *what)
{
	if (nl && nl->ext_msg[0])
		cni_err_set(e, WEFT_ERR_INTERFACE, "%s: %s (%s)", what, strerror(-err), nl->ext_msg);
	else
		cni_err_set(e, WEFT_ERR_INTERFACE, "%s: %s", what, strerror(-err));
}

static int write_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, strlen(value));
	int err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* Per-interface settings of the host veth, never the node-wide ones. IPv6 ones are skipped
 * when the node has IPv6 off. */
static int host_sysctls(const char *ifname, struct cni_err *e)
{
	static const struct {
		const char *fmt;
		const char *value;
		int optional;
	} settings[] = {
		{ "/proc/sys/net/ipv4/conf/%s/forwarding", "1", 0 },
		{ "/proc/sys/net/ipv4/conf/%s/proxy_arp", "1", 0 },
		/* answer ARP at once, not after the default random delay of up to 0.8 s */
		{ "/proc/sys/net/ipv4/neigh/%s/proxy_delay", "0", 1 },
		{ "/proc/sys/net/ipv6/conf/%s/forwarding", "1", 1 },
		/* the gateway fe80::ecee:eeff:feee:eeee must answer at once, not after DAD */
		{ "/proc/sys/net/ipv6/conf/%s/accept_dad", "0", 1 },
	};
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		char path[128];
		snprintf(path, sizeof(path), settings[i].fmt, ifname);
		int err = write_sysctl(path, settings[i].value);
		if (err == -ENOENT && settings[i].optional)
			continue;
		if (err) {
			cni_err_set(e, WEFT_ERR_INTERFACE, "setting %s to %s: %s", path, settings[i].value,
				    strerror(-err));
			return -1;
		}
	}
	return 0;
}

static int is_link_local6(const struct nl_ip *ip)
{
	return ip->family == AF_INET6 && ip->addr[0] == 0xfe && (ip->addr[1] & 0xc0) == 0x80;
}

/* Inside the pod's namespace: lo up, the interface's addresses, up, routes and gateway
 * neighbours (the gateway is the host veth: its MAC is known, no ARP/ND needed). */
static int pod_side(const struct podnet *p, const uint8_t host_mac[6], struct podnet_links *out, struct cni_err *e)
{
	struct nl nl;
	int err = nl_open(&nl);
	if (err) {
		nl_fail(e, NULL, err, "opening rtnetlink in the container's namespace");
		return -1;
	}
	int rc = -1;
	char what[256], a[INET6_ADDRSTRLEN], g[INET6_ADDRSTRLEN];
	struct nl_link lo, link;
	if ((err = nl_link_get(&nl, "lo", &lo)) || (err = nl_link_up(&nl, lo.index))) {
		nl_fail(e, &nl, err, "setting lo up in the container");
		goto out;
	}
	if ((err = nl_link_get(&nl, p->pod_if, &link))) {
		snprintf(what, sizeof(what), "finding %s in %s", p->pod_if, p->netns_path);
		nl_fail(e, &nl, err, what);
		goto out;
	}
	if (link.has_mac)
		nl_mac_format(link.mac, out->pod_mac);
	out->netns_cookie = netns_cookie();
	for (int i = 0; i < p->naddrs; i++) {
		const struct pod_addr *ad = &p->addrs[i];
		if ((err = nl_addr_add(&nl, link.index, &ad->ip, ad->prefix_len, ad->ip.family == AF_INET6))) {
			snprintf(what, sizeof(what), "adding %s/%d to %s", ip_text(&ad->ip, a, sizeof(a)),
				 ad->prefix_len, p->pod_if);
			nl_fail(e, &nl, err, what);
			goto out;
		}
	}
	if ((err = nl_link_up(&nl, link.index))) {
		snprintf(what, sizeof(what), "setting %s up", p->pod_if);
		nl_fail(e, &nl, err, what);
		goto out;
	}
	for (int fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		/* One default route per family: through the first address of it that has a gateway. */
		for (int i = 0; i < p->naddrs; i++) {
			const struct pod_addr *ad = &p->addrs[i];
			if (ad->ip.family != family || ad->gw.family != family)
				continue;
			ip_text(&ad->gw, g, sizeof(g));
			if (!is_link_local6(&ad->gw)) {
				int full = family == AF_INET ? 32 : 128;
				if ((err = nl_route_replace(&nl, &ad->gw, full, NULL, link.index, true))) {
					snprintf(what, sizeof(what), "adding route %s dev %s scope link", g, p->pod_if);
					nl_fail(e, &nl, err, what);
					goto out;
				}
			}
			if ((err = nl_neigh_replace(&nl, link.index, &ad->gw, host_mac))) {
				snprintf(what, sizeof(what), "adding neighbour %s on %s", g, p->pod_if);
				nl_fail(e, &nl, err, what);
				goto out;
			}
			struct nl_ip any = { .family = family };
			if ((err = nl_route_replace(&nl, &any, 0, &ad->gw, link.index, false))) {
				snprintf(what, sizeof(what), "adding default route via %s dev %s", g, p->pod_if);
				nl_fail(e, &nl, err, what);
				goto out;
			}
			break;
		}
	}
	rc = 0;
out:
	nl_close(&nl);
	return rc;
}

int podnet_add(const struct podnet *p, struct podnet_links *out, struct cni_err *e)
{
	static const uint8_t host_mac[6] = PODNET_HOST_MAC;
	memset(out, 0, sizeof(*out));
	struct nl nl;
	int err = nl_open(&nl);
	if (err) {
		nl_fail(e, NULL, err, "opening rtnetlink");
		return -1;
	}
	int rc = -1;
	char what[256], a[INET6_ADDRSTRLEN];
	/* A host veth of this name is left from an earlier ADD of the same attachment: it goes,
	 * and with it its peer, so this ADD starts clean. */
	if ((err = nl_link_del(&nl, p->host_if))) {
		snprintf(what, sizeof(what), "removing the old %s", p->host_if);
		nl_fail(e, &nl, err, what);
		goto out;
	}
	err = nl_veth_add(&nl, p->host_if, host_mac, p->mtu, p->pod_if, p->netns_fd);
	if (err == -EEXIST) {
		struct nl_link taken;
		if (nl_link_get(&nl, p->host_if, &taken) == 0)
			cni_err_set(e, WEFT_ERR_INTERFACE, "interface %s already exists on the node", p->host_if);
		else
			cni_err_set(e, WEFT_ERR_INTERFACE, "interface %s already exists in %s", p->pod_if,
				    p->netns_path);
		goto out;
	}
	if (err) {
		snprintf(what, sizeof(what), "creating veth %s with peer %s in %s", p->host_if, p->pod_if,
			 p->netns_path);
		nl_fail(e, &nl, err, what);
		goto out;
	}
	if (host_sysctls(p->host_if, e) < 0)
		goto out;
	struct nl_link host;
	if ((err = nl_link_get(&nl, p->host_if, &host)) || (err = nl_link_up(&nl, host.index))) {
		snprintf(what, sizeof(what), "setting %s up", p->host_if);
		nl_fail(e, &nl, err, what);
		goto out;
	}
	out->host_ifindex = host.index;
	nl_mac_format(host.has_mac ? host.mac : host_mac, out->host_mac);

	int saved;
	if (netns_enter(p->netns_fd, &saved, e) < 0)
		goto out;
	int pod_rc = pod_side(p, host.has_mac ? host.mac : host_mac, out, e);
	netns_leave(saved, p->cni_version);
	if (pod_rc < 0)
		goto out;

	for (int i = 0; i < p->naddrs; i++) {
		const struct pod_addr *ad = &p->addrs[i];
		int full = ad->ip.family == AF_INET ? 32 : 128;
		if ((err = nl_route_replace(&nl, &ad->ip, full, NULL, host.index, true))) {
			snprintf(what, sizeof(what), "adding route %s/%d dev %s", ip_text(&ad->ip, a, sizeof(a)), full,
				 p->host_if);
			nl_fail(e, &nl, err, what);
			goto out;
		}
	}
	rc = 0;
out:
	nl_close(&nl);
	return rc;
}

int podnet_remove(const char *host_if, struct cni_err *e)
{
	struct nl nl;
	int err = nl_open(&nl);
	if (err) {
		nl_fail(e, NULL, err, "opening rtnetlink");
		return -1;
	}
	err = nl_link_del(&nl, host_if);
	if (err) {
		char what[64];
		snprintf(what, sizeof(what), "deleting %s", host_if);
		nl_fail(e, &nl, err, what);
	}
	nl_close(&nl);
	return err ? -1 : 0;
}

int podnet_check(const struct podnet *p, const struct pod_addr *expect, int nexpect, struct cni_err *e)
{
	struct nl nl;
	int err = nl_open(&nl);
	if (err) {
		nl_fail(e, NULL, err, "opening rtnetlink");
		return -1;
	}
	struct nl_link link;
	err = nl_link_get(&nl, p->host_if, &link);
	nl_close(&nl);
	if (err == -ENODEV) {
		cni_err_set(e, WEFT_ERR_CHECK, "host interface %s of container interface %s is missing", p->host_if,
			    p->pod_if);
		return -1;
	}
	if (err) {
		nl_fail(e, NULL, err, "reading the host interface");
		return -1;
	}
	if (!(link.flags & IFF_UP)) {
		cni_err_set(e, WEFT_ERR_CHECK, "host interface %s is down", p->host_if);
		return -1;
	}

	int saved;
	if (netns_enter(p->netns_fd, &saved, e) < 0)
		return -1;
	int rc = -1;
	if ((err = nl_open(&nl))) {
		nl_fail(e, NULL, err, "opening rtnetlink in the container's namespace");
		netns_leave(saved, p->cni_version);
		return -1;
	}
	err = nl_link_get(&nl, p->pod_if, &link);
	if (err == -ENODEV) {
		cni_err_set(e, WEFT_ERR_CHECK, "interface %s is missing in %s", p->pod_if, p->netns_path);
		goto out;
	}
	if (err) {
		nl_fail(e, &nl, err, "reading the container interface");
		goto out;
	}
	if (!(link.flags & IFF_UP)) {
		cni_err_set(e, WEFT_ERR_CHECK, "interface %s in %s is down", p->pod_if, p->netns_path);
		goto out;
	}
	for (int i = 0; i < nexpect; i++) {
		char a[INET6_ADDRSTRLEN];
		int has = nl_addr_has(&nl, link.index, &expect[i].ip, expect[i].prefix_len);
		if (has < 0) {
			nl_fail(e, &nl, has, "listing addresses");
			goto out;
		}
		if (!has) {
			cni_err_set(e, WEFT_ERR_CHECK, "address %s/%d is missing on %s in %s",
				    ip_text(&expect[i].ip, a, sizeof(a)), expect[i].prefix_len, p->pod_if,
				    p->netns_path);
			goto out;
		}
	}
	rc = 0;
out:
	nl_close(&nl);
	netns_leave(saved, p->cni_version);
	return rc;
}
