/* The CNI verbs. main.c reads the environment and the configuration into a cni_ctx; each
 * verb does its part in namespaces and asks the agent for the rest. */
#ifndef WEFT_CNI_H
#define WEFT_CNI_H

#include <stddef.h>
#include <sys/un.h>

#include "cni_error.h"
#include "json.h"

#define CNI_SPEC_VERSION       "1.1.0"
#define CNI_SUPPORTED_VERSIONS "\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\""
#define DEFAULT_AGENT_SOCKET   "/var/run/weft/weft.sock"

struct cni_ctx {
	const char *command;
	const char *container_id; /* "" when not given */
	const char *netns;
	const char *ifname;
	const char *args;
	char cni_version[16];
	char agent_socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *config; /* stdin: the network configuration, a JSON object */
	size_t config_len;
	struct json conf;
};

int cni_add(struct cni_ctx *c, struct cni_err *e);
int cni_del(struct cni_ctx *c, struct cni_err *e);
int cni_check(struct cni_ctx *c, struct cni_err *e);
int cni_status(struct cni_ctx *c, struct cni_err *e);
int cni_gc(struct cni_ctx *c, struct cni_err *e);

#endif
