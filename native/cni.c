#include "cni.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_client.h"
#include "buf.h"
#include "netns.h"
#include "podnet.h"

/* The agent's request body: the configuration spliced in verbatim, and the CNI parameters. */
static void body_common(struct buf *b, const struct cni_ctx *c, int with_attachment)
{
	const char *conf;
	size_t len;
	json_raw(&c->conf, 0, &conf, &len);
	buf_str(b, "{\"config\":");
	buf_add(b, conf, len);
	if (with_attachment) {
		buf_str(b, ",\"containerId\":");
		buf_json_str(b, c->container_id);
		buf_str(b, ",\"ifName\":");
		buf_json_str(b, c->ifname);
		buf_str(b, ",\"netns\":");
		buf_json_str(b, c->netns);
		buf_str(b, ",\"args\":");
		buf_json_str(b, c->args);
	}
}

/* A complete request body for a verb that needs nothing beyond the common fields. */
static void body_plain(struct buf *b, const struct cni_ctx *c)
{
	buf_init(b);
	body_common(b, c, 1);
	buf_str(b, "}");
}

/* The pod's side of this call: its interface and its network namespace, opened. */
static int podnet_for(const struct cni_ctx *c, struct podnet *p, struct cni_err *e)
{
	*p = (struct podnet){ .cni_version = c->cni_version, .pod_if = c->ifname, .netns_path = c->netns };
	p->netns_fd = netns_open(c->netns, e);
	return p->netns_fd < 0 ? -1 : 0;
}

struct call {
	struct agent_reply reply;
	struct json json; /* the answer's body (2xx) */
};

static void call_free(struct call *k)
{
	json_free(&k->json);
	agent_reply_free(&k->reply);
}

/* One request to the agent. On success the answer's JSON object is in k->json. Otherwise e
 * says why: `unreachable_code` when there is no agent to talk to (11 for the verbs that the
 * runtime retries, 50 for STATUS), the agent's own CNI code when it refused. */
static int call_agent(const struct cni_ctx *c, const char *method, const char *path, const struct buf *body,
		      int unreachable_code, struct call *k, struct cni_err *e)
{
	memset(k, 0, sizeof(*k));
	if (body && body->failed) {
		cni_err_set(e, CNI_ERR_IO, "request for %s %s too large", method, path);
		return -1;
	}
	char why[256];
	enum agent_outcome o = agent_request(c->agent_socket, method, path, body ? body->p : NULL, body ? body->len : 0,
					     &k->reply, why, sizeof(why));
	switch (o) {
	case AGENT_UNREACHABLE:
		cni_err_set(e, unreachable_code, "the Weft agent is not reachable at %s: %s", c->agent_socket, why);
		cni_err_details(e, unreachable_code == CNI_ERR_TRY_AGAIN ?
					   "try again later: weftd must run on this node and serve agentSocket" :
					   "weftd must run on this node and serve agentSocket");
		return -1;
	case AGENT_NO_ANSWER:
		cni_err_set(e, unreachable_code, "the Weft agent at %s did not answer %s %s: %s", c->agent_socket,
			    method, path, why);
		return -1;
	case AGENT_BAD_ANSWER:
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL,
			    "the Weft agent at %s answered %s %s with something unusable: %s", c->agent_socket, method,
			    path, why);
		return -1;
	case AGENT_REPLIED: break;
	}
	char err[128];
	int parsed = json_parse(&k->json, k->reply.body, k->reply.body_len, err, sizeof(err));
	int status = k->reply.status;
	if (status < 200 || status > 299) {
		char msg[sizeof(e->msg)];
		long code = 0;
		if (parsed == 0 && json_get_str(&k->json, 0, "error", msg, sizeof(msg)) == 0) {
			if (json_long(&k->json, json_get(&k->json, 0, "cniCode"), &code) < 0 || code <= 0 || code > 999)
				code = status == 503 ? (long)unreachable_code : WEFT_ERR_AGENT_PROTOCOL;
		} else {
			snprintf(msg, sizeof(msg), "HTTP %d without an error message", status);
			code = status == 503 ? (long)unreachable_code : WEFT_ERR_AGENT_PROTOCOL;
		}
		cni_err_set(e, (int)code, "%s", msg);
		cni_err_details(e, "weftd at %s answered HTTP %d to %s %s", c->agent_socket, status, method, path);
		return -1;
	}
	if (parsed < 0) {
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL, "the Weft agent's answer to %s %s is not a JSON object: %s",
			    method, path, err);
		return -1;
	}
	return 0;
}

static int valid_host_ifname(const char *s)
{
	size_t n = strlen(s);
	if (n < 4 || n >= IFNAMSIZ || strncmp(s, "wft", 3))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* hostIfName from an agent answer; "wft..." and a valid interface name, or -1. */
static int answer_host_ifname(const struct call *k, char out[IFNAMSIZ])
{
	return json_get_str(&k->json, 0, "hostIfName", out, IFNAMSIZ) == 0 && valid_host_ifname(out) ? 0 : -1;
}

/* The agent's "ips": [{family, address, prefixLength, gateway}]. */
static int answer_ips(const struct call *k, const char *what, struct podnet *p, struct cni_err *e)
{
	int arr = json_get(&k->json, 0, "ips");
	int n = json_count(&k->json, arr);
	if (json_type(&k->json, arr) != JSON_ARRAY || n < 1 || n > PODNET_MAX_IPS) {
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL,
			    "the Weft agent's answer to %s has no usable \"ips\" (1 to %d expected)", what,
			    PODNET_MAX_IPS);
		return -1;
	}
	p->naddrs = 0;
	for (int i = 0; i < n; i++) {
		int t = json_at(&k->json, arr, i);
		struct pod_addr *ad = &p->addrs[p->naddrs];
		char addr[INET6_ADDRSTRLEN], gw[INET6_ADDRSTRLEN];
		long family = 0, prefix = -1;
		memset(ad, 0, sizeof(*ad));
		if (json_get_str(&k->json, t, "address", addr, sizeof(addr)) < 0 || nl_ip_parse(addr, &ad->ip) < 0 ||
		    json_long(&k->json, json_get(&k->json, t, "family"), &family) < 0 ||
		    family != (ad->ip.family == AF_INET ? 4 : 6) ||
		    json_long(&k->json, json_get(&k->json, t, "prefixLength"), &prefix) < 0 || prefix < 0 ||
		    prefix > (family == 4 ? 32 : 128)) {
			cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL,
				    "the Weft agent's answer to %s: ips[%d] needs family, address and prefixLength",
				    what, i);
			return -1;
		}
		ad->prefix_len = (int)prefix;
		int g = json_get(&k->json, t, "gateway");
		if (g >= 0 && json_type(&k->json, g) == JSON_STRING) {
			if (json_str(&k->json, g, gw, sizeof(gw)) < 0 || nl_ip_parse(gw, &ad->gw) < 0 ||
			    ad->gw.family != ad->ip.family) {
				cni_err_set(
					e, WEFT_ERR_AGENT_PROTOCOL,
					"the Weft agent's answer to %s: ips[%d].gateway is not an address of its family",
					what, i);
				return -1;
			}
		}
		p->naddrs++;
	}
	return 0;
}

/* Undoes an ADD that failed after the agent allocated: the veth goes, the agent forgets. */
static void rollback(const struct cni_ctx *c, const char *host_if)
{
	struct cni_err ignored;
	podnet_remove(host_if, &ignored);
	struct buf b;
	body_plain(&b, c);
	struct call k;
	call_agent(c, "POST", "/v1/cni/del", &b, CNI_ERR_TRY_AGAIN, &k, &ignored);
	call_free(&k);
	buf_free(&b);
}

int cni_add(struct cni_ctx *c, struct cni_err *e)
{
	struct podnet p;
	if (podnet_for(c, &p, e) < 0)
		return -1;

	int rc = -1;
	struct buf b;
	body_plain(&b, c);
	struct call alloc = { 0 }, attach = { 0 };
	char host_if[IFNAMSIZ];
	if (call_agent(c, "POST", "/v1/cni/allocate", &b, CNI_ERR_TRY_AGAIN, &alloc, e) < 0)
		goto out;
	if (answer_host_ifname(&alloc, host_if) < 0) {
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL,
			    "the Weft agent's answer to allocate has no valid \"hostIfName\" (wft...)");
		podnet_host_ifname(c->container_id, c->ifname, host_if);
		goto undo;
	}
	long mtu = 1500;
	int mt = json_get(&alloc.json, 0, "mtu");
	if (mt >= 0 && (json_long(&alloc.json, mt, &mtu) < 0 || mtu < 68 || mtu > 65535)) {
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL, "the Weft agent's answer to allocate has an invalid \"mtu\"");
		goto undo;
	}
	p.mtu = (int)mtu;
	p.host_if = host_if;
	if (answer_ips(&alloc, "allocate", &p, e) < 0)
		goto undo;

	struct podnet_links links;
	if (podnet_add(&p, &links, e) < 0)
		goto undo;

	buf_free(&b);
	body_common(&b, c, 1);
	/* The cookie as a string: JSON numbers lose precision above 2^53. */
	buf_printf(&b, ",\"hostIfIndex\":%d,\"hostMac\":\"%s\",\"podMac\":\"%s\",\"netnsCookie\":\"%llu\"}",
		   links.host_ifindex, links.host_mac, links.pod_mac, (unsigned long long)links.netns_cookie);
	if (call_agent(c, "POST", "/v1/cni/attach", &b, CNI_ERR_TRY_AGAIN, &attach, e) < 0)
		goto undo;
	int result = json_get(&attach.json, 0, "result");
	if (json_type(&attach.json, result) != JSON_OBJECT) {
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL, "the Weft agent's answer to attach has no \"result\" object");
		goto undo;
	}
	const char *text;
	size_t len;
	json_raw(&attach.json, result, &text, &len);
	fwrite(text, 1, len, stdout);
	fputc('\n', stdout);
	if (fflush(stdout) != 0) {
		cni_err_set(e, CNI_ERR_IO, "writing the result to stdout failed");
		goto undo;
	}
	rc = 0;
	goto out;
undo:
	rollback(c, host_if);
out:
	call_free(&alloc);
	call_free(&attach);
	buf_free(&b);
	close(p.netns_fd);
	return rc;
}

int cni_del(struct cni_ctx *c, struct cni_err *e)
{
	char host_if[IFNAMSIZ];
	podnet_host_ifname(c->container_id, c->ifname, host_if);
	struct buf b;
	body_plain(&b, c);
	struct call k;
	int rc = call_agent(c, "POST", "/v1/cni/del", &b, CNI_ERR_TRY_AGAIN, &k, e);
	if (rc == 0) {
		char named[IFNAMSIZ];
		if (answer_host_ifname(&k, named) == 0)
			memcpy(host_if, named, sizeof(named));
		rc = podnet_remove(host_if, e);
	} else {
		/* The agent keeps its allocation until a DEL reaches it (the runtime retries): the
		 * interface goes now all the same. */
		struct cni_err ignored;
		podnet_remove(host_if, &ignored);
	}
	call_free(&k);
	buf_free(&b);
	return rc;
}

/* Major.minor of a cniVersion, as one comparable number (1.1.0 -> 101). */
static int version_num(const char *v)
{
	int major = 0, minor = 0;
	sscanf(v, "%d.%d", &major, &minor);
	return major * 100 + minor;
}

/* Addresses prevResult gives this plugin's container interface (CIDR "a/n" entries whose
 * "interface" is an entry with our name and a sandbox). */
static int prev_result_addrs(const struct cni_ctx *c, int prev, struct pod_addr *out, int max, struct cni_err *e)
{
	const struct json *j = &c->conf;
	int ifaces = json_get(j, prev, "interfaces"), ips = json_get(j, prev, "ips");
	int n = 0;
	for (int i = 0; i < json_count(j, ips); i++) {
		int ip = json_at(j, ips, i);
		long idx;
		if (json_long(j, json_get(j, ip, "interface"), &idx) < 0)
			continue;
		int iface = json_at(j, ifaces, (int)idx);
		char name[IFNAMSIZ + 1], sandbox[8], cidr[INET6_ADDRSTRLEN + 8];
		if (json_get_str(j, iface, "name", name, sizeof(name)) < 0 || strcmp(name, c->ifname))
			continue;
		/* A sandbox too long for the buffer is still a sandbox: only "" or none means host. */
		int sb = json_get(j, iface, "sandbox");
		if (json_type(j, sb) != JSON_STRING || (json_str(j, sb, sandbox, sizeof(sandbox)) == 0 && !sandbox[0]))
			continue;
		struct pod_addr ad = { 0 };
		char *slash = NULL, *end = NULL;
		long prefix = -1;
		if (json_get_str(j, ip, "address", cidr, sizeof(cidr)) == 0 && (slash = strchr(cidr, '/'))) {
			*slash = '\0';
			prefix = strtol(slash + 1, &end, 10);
		}
		if (!slash || end == slash + 1 || *end || nl_ip_parse(cidr, &ad.ip) < 0 || prefix < 0 ||
		    prefix > (ad.ip.family == AF_INET ? 32 : 128)) {
			cni_err_set(e, CNI_ERR_INVALID_CONFIG, "prevResult.ips[%d].address is not an address/prefix",
				    i);
			return -1;
		}
		if (n == max)
			break;
		ad.prefix_len = (int)prefix;
		out[n++] = ad;
	}
	return n;
}

int cni_check(struct cni_ctx *c, struct cni_err *e)
{
	if (version_num(c->cni_version) < 4) {
		cni_err_set(e, CNI_ERR_INCOMPATIBLE_VERSION, "cniVersion %s does not have CHECK (0.4.0 and later do)",
			    c->cni_version);
		return -1;
	}
	int prev = json_get(&c->conf, 0, "prevResult");
	if (json_type(&c->conf, prev) != JSON_OBJECT) {
		cni_err_set(e, CNI_ERR_INVALID_CONFIG,
			    "CHECK needs \"prevResult\" (the result of ADD) in the network configuration");
		return -1;
	}
	struct pod_addr expect[2 * PODNET_MAX_IPS];
	int nprev = prev_result_addrs(c, prev, expect, PODNET_MAX_IPS, e);
	if (nprev < 0)
		return -1;
	struct podnet p;
	if (podnet_for(c, &p, e) < 0)
		return -1;
	int rc = -1;
	struct buf b;
	body_plain(&b, c);
	struct call k;
	char host_if[IFNAMSIZ];
	if (call_agent(c, "POST", "/v1/cni/check", &b, CNI_ERR_TRY_AGAIN, &k, e) < 0)
		goto out;
	if (answer_host_ifname(&k, host_if) < 0) {
		cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL, "the Weft agent's answer to check has no valid \"hostIfName\"");
		goto out;
	}
	p.host_if = host_if;
	if (answer_ips(&k, "check", &p, e) < 0)
		goto out;
	for (int i = 0; i < p.naddrs; i++)
		expect[nprev + i] = p.addrs[i];
	rc = podnet_check(&p, expect, nprev + p.naddrs, e);
out:
	call_free(&k);
	buf_free(&b);
	close(p.netns_fd);
	return rc;
}

int cni_status(struct cni_ctx *c, struct cni_err *e)
{
	struct call k;
	int rc = call_agent(c, "GET", "/healthz", NULL, CNI_ERR_NOT_AVAILABLE, &k, e);
	if (rc < 0 && e->code != CNI_ERR_NOT_AVAILABLE) {
		/* STATUS has two answers: ready, or not (with the agent's reason). */
		char msg[sizeof(e->msg)];
		snprintf(msg, sizeof(msg), "%s", e->msg);
		cni_err_set(e, CNI_ERR_NOT_AVAILABLE, "the Weft agent at %s is not ready: %.400s", c->agent_socket,
			    msg);
	}
	call_free(&k);
	return rc;
}

int cni_gc(struct cni_ctx *c, struct cni_err *e)
{
	struct buf b;
	buf_init(&b);
	body_common(&b, c, 0);
	buf_str(&b, "}");
	struct call k;
	int rc = call_agent(c, "POST", "/v1/cni/gc", &b, CNI_ERR_TRY_AGAIN, &k, e);
	if (rc == 0) {
		int arr = json_get(&k.json, 0, "hostIfNames");
		if (json_type(&k.json, arr) != JSON_ARRAY) {
			cni_err_set(e, WEFT_ERR_AGENT_PROTOCOL,
				    "the Weft agent's answer to gc has no \"hostIfNames\" list");
			rc = -1;
		}
		/* Every released interface is tried; the first failure is reported. */
		for (int i = 0; i < json_count(&k.json, arr); i++) {
			char name[IFNAMSIZ];
			struct cni_err one;
			if (json_str(&k.json, json_at(&k.json, arr, i), name, sizeof(name)) < 0 ||
			    !valid_host_ifname(name)) {
				if (rc == 0)
					cni_err_set(
						e, WEFT_ERR_AGENT_PROTOCOL,
						"the Weft agent's answer to gc: hostIfNames[%d] is not a Weft interface name",
						i);
				rc = -1;
				continue;
			}
			if (podnet_remove(name, &one) < 0) {
				if (rc == 0)
					*e = one;
				rc = -1;
			}
		}
	}
	call_free(&k);
	buf_free(&b);
	return rc;
}
