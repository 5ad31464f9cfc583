/* The agent's API over its unix socket: one HTTP/1.1 request per connection, bounded in
 * time and size. */
#ifndef WEFT_AGENT_CLIENT_H
#define WEFT_AGENT_CLIENT_H

#include <stddef.h>

#include "cni_error.h"

#define AGENT_CONNECT_TIMEOUT_MS 10000
#define AGENT_REPLY_TIMEOUT_MS   30000
#define AGENT_MAX_REPLY          (1u << 20)

enum agent_outcome {
	AGENT_REPLIED = 0, /* reply->status and reply->body are set */
	AGENT_UNREACHABLE, /* no connection (no socket, refused, timed out connecting) */
	AGENT_NO_ANSWER,   /* connected, but no complete answer in time */
	AGENT_BAD_ANSWER,  /* not an HTTP response the plugin understands */
};

struct agent_reply {
	int status;
	char *body; /* NUL-terminated, malloc'd */
	size_t body_len;
};

/* Sends METHOD path with body (may be NULL for no body). why gets a one-line reason when the
 * outcome is not AGENT_REPLIED. */
enum agent_outcome agent_request(const char *socket_path, const char *method, const char *path, const char *body,
				 size_t body_len, struct agent_reply *reply, char *why, size_t whylen);
void agent_reply_free(struct agent_reply *reply);

#endif
