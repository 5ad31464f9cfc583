#define _GNU_SOURCE /* strcasestr */
#include "agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline)
{
	long long left = deadline - now_ms();
	return left < 0 ? 0 : (int)left;
}

/* Connects, retrying only while the listener's backlog is full (EAGAIN), until the deadline. */
static int connect_unix(const char *path, char *why, size_t whylen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(why, whylen, "socket path is longer than %zu bytes", sizeof(sa.sun_path) - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	long long deadline = now_ms() + AGENT_CONNECT_TIMEOUT_MS;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			snprintf(why, whylen, "socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int r = poll(&p, 1, remaining(deadline));
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				return fd;
			err = r == 0 ? ETIMEDOUT : soerr ? soerr : errno;
		}
		close(fd);
		if (err != EAGAIN || remaining(deadline) == 0) {
			if (err == EAGAIN || err == ETIMEDOUT)
				snprintf(why, whylen, "no connection within %d s", AGENT_CONNECT_TIMEOUT_MS / 1000);
			else
				snprintf(why, whylen, "%s", strerror(err));
			return -1;
		}
		struct timespec pause = { 0, 20 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
}

static int send_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return -1;
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		if (poll(&pf, 1, remaining(deadline)) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* Finds the header block's end ("\r\n\r\n"); returns the body offset or 0. */
static size_t header_end(const char *p, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (p[i - 3] == '\r' && p[i - 2] == '\n' && p[i - 1] == '\r' && p[i] == '\n')
			return i + 1;
	return 0;
}

/* The value of header name in the header block, or NULL (copied into out). */
static const char *header(const char *head, size_t n, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *line = memchr(head, '\n', n); /* skip the status line */
	while (line && (size_t)(line + 1 - head) < n) {
		line++;
		const char *eol = memchr(line, '\n', n - (size_t)(line - head));
		if (!eol)
			break;
		if ((size_t)(eol - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			size_t len = (size_t)(eol - v);
			while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == ' '))
				len--;
			if (len >= cap)
				len = cap - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return out;
		}
		line = eol;
	}
	return NULL;
}

/* Decodes a chunked body in place. Returns 1 when complete, 0 when more is needed, -1 if bad. */
static int dechunk(const char *in, size_t n, struct buf *out)
{
	size_t i = 0;
	for (;;) {
		const char *eol = memchr(in + i, '\n', n - i);
		if (!eol)
			return 0;
		char *end;
		unsigned long size = strtoul(in + i, &end, 16);
		if (end == in + i)
			return -1;
		i = (size_t)(eol - in) + 1;
		if (size == 0)
			return 1;
		if (size > AGENT_MAX_REPLY || n - i < size + 2)
			return size > AGENT_MAX_REPLY ? -1 : 0;
		buf_add(out, in + i, size);
		i += size + 2;
	}
}

enum agent_outcome agent_request(const char *socket_path, const char *method, const char *path, const char *body,
				 size_t body_len, struct agent_reply *reply, char *why, size_t whylen)
{
	memset(reply, 0, sizeof(*reply));
	int fd = connect_unix(socket_path, why, whylen);
	if (fd < 0)
		return AGENT_UNREACHABLE;

	long long deadline = now_ms() + AGENT_REPLY_TIMEOUT_MS;
	enum agent_outcome outcome = AGENT_NO_ANSWER;
	struct buf req, in, dec;
	buf_init(&req);
	buf_init(&in);
	buf_init(&dec);
	buf_printf(&req, "%s %s HTTP/1.1\r\nHost: weft\r\nUser-Agent: weft-cni\r\nConnection: close\r\n", method, path);
	if (body)
		buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n", body_len);
	buf_str(&req, "\r\n");
	if (body)
		buf_add(&req, body, body_len);
	if (req.failed) {
		snprintf(why, whylen, "request too large");
		outcome = AGENT_BAD_ANSWER;
		goto out;
	}
	if (send_all(fd, req.p, req.len, deadline) < 0) {
		snprintf(why, whylen, "sending the request: %s", strerror(errno));
		goto out;
	}

	size_t body_at = 0;
	long content_length = -1;
	int chunked = 0, eof = 0;
	char chunk[16384];
	for (;;) {
		if (!body_at && (body_at = header_end(in.p ? in.p : "", in.len))) {
			char v[64];
			if (header(in.p, body_at, "Content-Length", v, sizeof(v)))
				content_length = strtol(v, NULL, 10);
			if (header(in.p, body_at, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked"))
				chunked = 1;
		}
		if (body_at) {
			size_t have = in.len - body_at;
			if (chunked) {
				buf_free(&dec);
				int r = dechunk(in.p + body_at, have, &dec);
				if (r < 0) {
					snprintf(why, whylen, "malformed chunked body");
					outcome = AGENT_BAD_ANSWER;
					goto out;
				}
				if (r == 1)
					break;
			} else if (content_length >= 0 && have >= (size_t)content_length) {
				break;
			}
		}
		if (eof)
			break;
		if (in.len > AGENT_MAX_REPLY + 16384) {
			snprintf(why, whylen, "answer larger than %u bytes", AGENT_MAX_REPLY);
			outcome = AGENT_BAD_ANSWER;
			goto out;
		}
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, remaining(deadline));
		if (r == 0) {
			snprintf(why, whylen, "no answer within %d s", AGENT_REPLY_TIMEOUT_MS / 1000);
			goto out;
		}
		if (r < 0 && errno != EINTR) {
			snprintf(why, whylen, "poll: %s", strerror(errno));
			goto out;
		}
		ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0) {
			snprintf(why, whylen, "reading the answer: %s", strerror(errno));
			goto out;
		}
		if (got == 0)
			eof = 1;
		else
			buf_add(&in, chunk, (size_t)got);
		if (in.failed) {
			snprintf(why, whylen, "out of memory reading the answer");
			outcome = AGENT_BAD_ANSWER;
			goto out;
		}
	}
	if (!body_at) {
		snprintf(why, whylen, in.len ? "the answer is not HTTP" : "the connection closed without an answer");
		outcome = in.len ? AGENT_BAD_ANSWER : AGENT_NO_ANSWER;
		goto out;
	}
	int major, minor, status;
	if (sscanf(in.p, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 599) {
		snprintf(why, whylen, "the answer has no HTTP status line");
		outcome = AGENT_BAD_ANSWER;
		goto out;
	}
	const char *b = chunked ? (dec.p ? dec.p : "") : in.p + body_at;
	size_t blen = chunked ? dec.len : in.len - body_at;
	if (!chunked && content_length >= 0) {
		if (blen < (size_t)content_length) {
			snprintf(why, whylen, "the answer ends after %zu of %ld body bytes", blen, content_length);
			outcome = AGENT_BAD_ANSWER;
			goto out;
		}
		blen = (size_t)content_length;
	}
	if (blen > AGENT_MAX_REPLY) {
		snprintf(why, whylen, "answer larger than %u bytes", AGENT_MAX_REPLY);
		outcome = AGENT_BAD_ANSWER;
		goto out;
	}
	reply->body = malloc(blen + 1);
	if (!reply->body) {
		snprintf(why, whylen, "out of memory");
		outcome = AGENT_BAD_ANSWER;
		goto out;
	}
	memcpy(reply->body, b, blen);
	reply->body[blen] = '\0';
	reply->body_len = blen;
	reply->status = status;
	outcome = AGENT_REPLIED;
out:
	close(fd);
	buf_free(&req);
	buf_free(&in);
	buf_free(&dec);
	return outcome;
}

void agent_reply_free(struct agent_reply *reply)
{
	free(reply->body);
	reply->body = NULL;
	reply->body_len = 0;
}
