// echo-server: a small epoll TCP server for `make bench`.
//
// Listens on ADDR:PORT and answers every SIZE-byte request (default 64) on a connection with
// SIZE bytes. Many concurrent connections, one thread, level-triggered epoll. Exits cleanly on
// SIGTERM or SIGINT (through a signalfd in the same epoll set).
//
//   echo-server ADDR PORT [--size N] [--backlog N]
//
// stdout: one JSON line {"event":"listening",...} once the socket listens, and one JSON line
// {"event":"exit",...} with counters when it stops. Errors go to stderr, exit status 1.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SIZE 65536
#define MAX_EVENTS 256

struct conn {
	uint32_t in;      // bytes received toward the current request
	uint32_t pending; // reply bytes still to write (only when the socket was full)
	uint8_t active;
	uint8_t want_out; // EPOLLOUT is armed
};

static struct conn *conns;
static int max_fd;
static unsigned long long n_accepted, n_requests, n_errors;

static void die(const char *what)
{
	fprintf(stderr, "echo-server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: echo-server ADDR PORT [--size N (1..%d, default 64)] "
			"[--backlog N (default 4096)]\n", MAX_SIZE);
	exit(2);
}

static void close_conn(int epfd, int fd)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	if (fd < max_fd)
		memset(&conns[fd], 0, sizeof(conns[fd]));
}

// Writes as much of the pending reply as the socket takes. Returns -1 on a fatal error.
static int flush_reply(int epfd, int fd, const char *reply)
{
	struct conn *c = &conns[fd];
	while (c->pending > 0) {
		uint32_t chunk = c->pending > MAX_SIZE ? MAX_SIZE : c->pending;
		ssize_t w = send(fd, reply, chunk, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->want_out) {
					struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
								  .data.fd = fd };
					if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev))
						return -1;
					c->want_out = 1;
				}
				return 0;
			}
			return -1;
		}
		c->pending -= (uint32_t)w;
	}
	if (c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev))
			return -1;
		c->want_out = 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *addr = argv[1];
	long port, size = 64, backlog = 4096;
	if (parse_int(argv[2], 1, 65535, &port))
		usage();
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (parse_int(argv[++i], 1, MAX_SIZE, &size))
				usage();
		} else if (!strcmp(argv[i], "--backlog") && i + 1 < argc) {
			if (parse_int(argv[++i], 1, 1 << 20, &backlog))
				usage();
		} else {
			usage();
		}
	}

	// Room for one state slot per descriptor: raise the soft limit to the hard one.
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	max_fd = (int)(rl.rlim_cur > 1048576 ? 1048576 : rl.rlim_cur);
	conns = calloc((size_t)max_fd, sizeof(*conns));
	char *buf = malloc(MAX_SIZE), *reply = malloc(MAX_SIZE);
	if (!conns || !buf || !reply)
		die("calloc");
	memset(reply, 'r', MAX_SIZE);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		die("sigprocmask");
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "echo-server: bad IPv4 address %s\n", addr);
		return 2;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)))
		die("bind");
	if (listen(lfd, (int)backlog))
		die("listen");

	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev))
		die("epoll_ctl listen");
	ev.data.fd = sfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev))
		die("epoll_ctl signalfd");

	printf("{\"event\":\"listening\",\"addr\":\"%s\",\"port\":%ld,\"size\":%ld,\"pid\":%d}\n",
	       addr, port, size, getpid());
	fflush(stdout);

	struct epoll_event events[MAX_EVENTS];
	int running = 1;
	while (running) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			if (fd == sfd) {
				running = 0;
				continue;
			}
			if (fd == lfd) {
				// Accept everything queued; bounded by the backlog.
				for (long k = 0; k < backlog; k++) {
					int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (cfd < 0) {
						if (errno == EINTR)
							continue;
						if (errno != EAGAIN && errno != EWOULDBLOCK &&
						    errno != ECONNABORTED)
							n_errors++;
						break;
					}
					if (cfd >= max_fd) {
						close(cfd);
						n_errors++;
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					conns[cfd] = (struct conn){ .active = 1 };
					struct epoll_event cev = { .events = EPOLLIN, .data.fd = cfd };
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev)) {
						close(cfd);
						n_errors++;
						continue;
					}
					n_accepted++;
				}
				continue;
			}
			struct conn *c = &conns[fd];
			if (!c->active)
				continue;
			if (events[i].events & EPOLLOUT) {
				if (flush_reply(epfd, fd, reply)) {
					n_errors++;
					close_conn(epfd, fd);
					continue;
				}
			}
			if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
				continue;
			ssize_t r = recv(fd, buf, MAX_SIZE, 0);
			if (r == 0) {
				close_conn(epfd, fd);
				continue;
			}
			if (r < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					continue;
				if (errno != ECONNRESET)
					n_errors++;
				close_conn(epfd, fd);
				continue;
			}
			uint64_t total = (uint64_t)c->in + (uint64_t)r;
			uint64_t complete = total / (uint64_t)size;
			c->in = (uint32_t)(total % (uint64_t)size);
			if (complete) {
				n_requests += complete;
				uint64_t p = (uint64_t)c->pending + complete * (uint64_t)size;
				c->pending = p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
				if (flush_reply(epfd, fd, reply)) {
					n_errors++;
					close_conn(epfd, fd);
				}
			}
		}
	}

	printf("{\"event\":\"exit\",\"accepted\":%llu,\"requests\":%llu,\"errors\":%llu}\n",
	       n_accepted, n_requests, n_errors);
	fflush(stdout);
	return 0;
}
