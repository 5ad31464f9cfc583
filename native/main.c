/* weft-cni: the CNI plugin (spec 1.1) a container runtime runs from its CNI bin directory.
 * It reads CNI_* from the environment and the network configuration from stdin, does what
 * must happen in network namespaces (veth pair, addresses, routes), and leaves everything
 * else to the node's agent (weftd), which it asks over agentSocket: the agent validates the
 * configuration, allocates addresses, keeps the endpoint, programs the datapath and composes
 * the result. Results and errors go to stdout as the spec describes; exit 0 or 1. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cni.h"

#define CONFIG_MAX       (960u << 10) /* the agent takes request bodies up to 1 MiB */
#define STDIN_TIMEOUT_MS 30000        /* runtimes write the configuration and close stdin at once */
#define CONTAINER_ID_MAX 1024
#define ARGS_MAX         65536

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v ? v : "";
}

/* Reads stdin whole, up to CONFIG_MAX bytes and STDIN_TIMEOUT_MS. */
static char *read_stdin(size_t *len, struct cni_err *e)
{
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (p) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long waited = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		struct pollfd pf = { .fd = 0, .events = POLLIN };
		if (waited >= STDIN_TIMEOUT_MS || poll(&pf, 1, (int)(STDIN_TIMEOUT_MS - waited)) == 0) {
			cni_err_set(e, CNI_ERR_IO, "no end of the network configuration on stdin within %d s",
				    STDIN_TIMEOUT_MS / 1000);
			free(p);
			return NULL;
		}
		if (n == cap) {
			if (cap >= CONFIG_MAX + 1) {
				cni_err_set(e, CNI_ERR_IO, "the network configuration on stdin is larger than %u bytes",
					    CONFIG_MAX);
				free(p);
				return NULL;
			}
			cap *= 2;
			char *q = realloc(p, cap);
			if (!q)
				break;
			p = q;
		}
		ssize_t r = read(0, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cni_err_set(e, CNI_ERR_IO, "reading the network configuration from stdin: %s", strerror(errno));
			free(p);
			return NULL;
		}
		if (r == 0) {
			if (n > CONFIG_MAX) {
				cni_err_set(e, CNI_ERR_IO, "the network configuration on stdin is larger than %u bytes",
					    CONFIG_MAX);
				free(p);
				return NULL;
			}
			*len = n;
			return p;
		}
		n += (size_t)r;
	}
	free(p);
	cni_err_set(e, CNI_ERR_IO, "out of memory reading stdin");
	return NULL;
}

/* Container ids: an alphanumeric first, then alphanumerics, '_', '.', '-' (spec). */
static int valid_container_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CONTAINER_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
			return 0;
	}
	return 1;
}

/* Interface names: 1-15 bytes, not "." or "..", no '/', ':' or whitespace (spec). */
static int valid_ifname(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 15 || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))
			return 0;
	return 1;
}

static int check_env(struct cni_ctx *c, int need_netns, struct cni_err *e)
{
	if (!*c->container_id) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_CONTAINERID is required for %s", c->command);
		return -1;
	}
	if (!valid_container_id(c->container_id)) {
		cni_err_set(
			e, CNI_ERR_INVALID_ENV,
			"CNI_CONTAINERID must start with a letter or digit followed by letters, digits, '_', '.' or '-' (at most %d)",
			CONTAINER_ID_MAX);
		return -1;
	}
	if (!*c->ifname) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_IFNAME is required for %s", c->command);
		return -1;
	}
	if (!valid_ifname(c->ifname)) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_IFNAME \"%.32s\" is not a valid interface name", c->ifname);
		return -1;
	}
	if (need_netns && !*c->netns) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_NETNS is required for %s", c->command);
		return -1;
	}
	if (strlen(c->netns) >= PATH_MAX) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_NETNS is longer than %d bytes", PATH_MAX - 1);
		return -1;
	}
	if (strlen(c->args) > ARGS_MAX) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_ARGS is longer than %d bytes", ARGS_MAX);
		return -1;
	}
	return 0;
}

/* What the plugin itself needs of the configuration; the agent validates the rest. */
static int read_config(struct cni_ctx *c, struct cni_err *e)
{
	char why[160];
	if (json_parse(&c->conf, c->config, c->config_len, why, sizeof(why)) < 0) {
		cni_err_set(e, CNI_ERR_DECODE, "failed to decode the network configuration: %s", why);
		return -1;
	}
	/* From here on errors echo the configuration's version, if it has a usable one. */
	if (json_get_str(&c->conf, 0, "cniVersion", c->cni_version, sizeof(c->cni_version)) < 0 || !c->cni_version[0]) {
		c->cni_version[0] = '\0';
		cni_err_set(e, CNI_ERR_INVALID_CONFIG,
			    "invalid network configuration: \"cniVersion\" must be a non-empty string");
		return -1;
	}
	static const char *required[] = { "name", "type" };
	for (int i = 0; i < 2; i++) {
		char v[256];
		int t = json_get(&c->conf, 0, required[i]);
		if (json_type(&c->conf, t) != JSON_STRING || json_str(&c->conf, t, v, sizeof(v)) < 0 || !v[0]) {
			cni_err_set(e, CNI_ERR_INVALID_CONFIG,
				    "invalid network configuration: \"%s\" must be a non-empty string", required[i]);
			return -1;
		}
	}
	static const char *supported[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };
	int ok = 0;
	for (size_t i = 0; i < sizeof(supported) / sizeof(supported[0]); i++)
		ok |= !strcmp(c->cni_version, supported[i]);
	if (!ok) {
		cni_err_set(e, CNI_ERR_INCOMPATIBLE_VERSION,
			    "cniVersion %s is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
			    c->cni_version);
		return -1;
	}
	int s = json_get(&c->conf, 0, "agentSocket");
	if (s < 0) {
		snprintf(c->agent_socket, sizeof(c->agent_socket), "%s", DEFAULT_AGENT_SOCKET);
	} else if (json_str(&c->conf, s, c->agent_socket, sizeof(c->agent_socket)) < 0 || c->agent_socket[0] != '/') {
		cni_err_set(
			e, CNI_ERR_INVALID_CONFIG,
			"invalid network configuration: \"agentSocket\" must be an absolute path shorter than %zu bytes",
			sizeof(c->agent_socket));
		return -1;
	}
	return 0;
}

int main(void)
{
	struct cni_ctx c = {
		.command = env("CNI_COMMAND"),
		.container_id = env("CNI_CONTAINERID"),
		.netns = env("CNI_NETNS"),
		.ifname = env("CNI_IFNAME"),
		.args = env("CNI_ARGS"),
	};
	struct cni_err e = { 0 };

	if (!strcmp(c.command, "VERSION")) {
		printf("{\"cniVersion\":\"" CNI_SPEC_VERSION "\",\"supportedVersions\":[" CNI_SUPPORTED_VERSIONS
		       "]}\n");
		return fflush(stdout) == 0 ? 0 : 1;
	}

	static const struct {
		const char *name;
		int (*run)(struct cni_ctx *, struct cni_err *);
		int attachment; /* needs CNI_CONTAINERID and CNI_IFNAME */
		int netns;      /* needs CNI_NETNS */
		int since;      /* the first cniVersion (major*100+minor) that has the verb */
	} verbs[] = {
		/* one verb a row: clang-format would pack the short rows two to a line */
		/* clang-format off */
		{ "ADD", cni_add, 1, 1, 0 },
		{ "DEL", cni_del, 1, 0, 0 },
		{ "CHECK", cni_check, 1, 1, 0 }, /* its version rule is in cni_check */
		{ "STATUS", cni_status, 0, 0, 101 },
		{ "GC", cni_gc, 0, 0, 101 },
		/* clang-format on */
	};
	int v = -1;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(c.command, verbs[i].name))
			v = (int)i;

	char *config = NULL;
	if (v < 0) {
		if (*c.command)
			cni_err_set(&e, CNI_ERR_INVALID_ENV,
				    "CNI_COMMAND \"%.32s\" is not one of ADD, DEL, CHECK, STATUS, GC, VERSION",
				    c.command);
		else
			cni_err_set(&e, CNI_ERR_INVALID_ENV, "CNI_COMMAND is not set");
		goto fail;
	}
	if (!(config = read_stdin(&c.config_len, &e)))
		goto fail;
	c.config = config;
	/* The environment is checked first, but its errors echo the configuration's version. */
	struct cni_err conf_err = { 0 };
	int conf_ok = read_config(&c, &conf_err) == 0;
	if (verbs[v].attachment && check_env(&c, verbs[v].netns, &e) < 0)
		goto fail;
	if (!conf_ok) {
		e = conf_err;
		goto fail;
	}
	if (verbs[v].since) {
		int major = 0, minor = 0;
		sscanf(c.cni_version, "%d.%d", &major, &minor);
		if (major * 100 + minor < verbs[v].since) {
			cni_err_set(&e, CNI_ERR_INCOMPATIBLE_VERSION,
				    "cniVersion %s does not have %s (1.1.0 and later do)", c.cni_version, c.command);
			goto fail;
		}
	}
	if (verbs[v].run(&c, &e) < 0)
		goto fail;
	json_free(&c.conf);
	free(config);
	return 0;
fail:
	if (!e.code)
		cni_err_set(&e, WEFT_ERR_INTERFACE, "%s failed", c.command);
	cni_err_print(&e, c.cni_version);
	json_free(&c.conf);
	free(config);
	return 1;
}
