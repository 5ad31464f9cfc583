// loadgen: a small, precise TCP load generator for `make bench`.
//
//   loadgen conn --target IP:PORT [--target IP:PORT ...] [--duration S] [--concurrency C]
//                [--size B] [--timeout-ms T] [--max-conns N]
//     C threads, each in a loop for S seconds: socket, connect, send B bytes, receive B bytes,
//     close. Targets are used round robin. Reports completed connections, rate, errors,
//     connect and transaction latency percentiles, and this process's CPU time per connection
//     (which includes the kernel work done in its context: on veth the forward path through
//     the node namespace runs in the sender's softirq).
//
//   loadgen rr --target IP:PORT [--count N] [--warmup W] [--size B] [--timeout-ms T]
//     One kept connection: W unmeasured then N measured ping-pongs of B bytes each way.
//     Reports round-trip latency percentiles.
//
// Output: one JSON line on stdout. Exit status 0 when the run completed (errors are counted in
// the JSON), 1 when it could not run at all (bad target, no connection), 2 on bad usage.
// Every loop is bounded by the duration or the count, and by a per-socket timeout; a watchdog
// alarm ends the process if the run overshoots its budget by a wide margin.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 64
#define MAX_THREADS 256
#define MAX_SIZE 65536
#define MAX_SAMPLES_PER_THREAD (1u << 21)

static struct sockaddr_in targets[MAX_TARGETS];
static char target_str[MAX_TARGETS][32];
static int n_targets;
static long size = 64;
static long timeout_ms = 2000;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: loadgen conn --target IP:PORT [--target ...] [--duration S (default 3)]\n"
		"                    [--concurrency C (default 2)] [--size B (default 64)]\n"
		"                    [--timeout-ms T (default 2000)] [--max-conns N]\n"
		"       loadgen rr --target IP:PORT [--count N (default 20000)]\n"
		"                  [--warmup W (default 1000)] [--size B] [--timeout-ms T]\n");
	exit(2);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int add_target(const char *s)
{
	if (n_targets >= MAX_TARGETS || strlen(s) >= sizeof(target_str[0]))
		return -1;
	char tmp[32];
	strcpy(tmp, s);
	char *colon = strrchr(tmp, ':');
	if (!colon)
		return -1;
	*colon = 0;
	long port;
	if (parse_long(colon + 1, 1, 65535, &port))
		return -1;
	struct sockaddr_in *sa = &targets[n_targets];
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, tmp, &sa->sin_addr) != 1)
		return -1;
	strcpy(target_str[n_targets], s);
	n_targets++;
	return 0;
}

// A TCP socket with send/receive timeouts (connect honours the send timeout) and no Nagle.
static int make_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

// Sends exactly len bytes. 0 on success, else -1 with errno (ETIMEDOUT on a timeout).
static int send_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

// Receives exactly len bytes. 0 on success, else -1 with errno (EPIPE for an early EOF).
static int recv_all(int fd, char *p, size_t len)
{
	while (len > 0) {
		ssize_t r = recv(fd, p, len, 0);
		if (r == 0) {
			errno = EPIPE;
			return -1;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

// Nearest-rank percentile of sorted samples, in microseconds.
static double pct_us(const uint32_t *s, size_t n, double p)
{
	if (n == 0)
		return -1;
	size_t rank = (size_t)(p * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return s[rank - 1] / 1000.0;
}

// CPU seconds (user, system) this process has used, all threads.
static void cpu_seconds(double *user, double *sys)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru)) {
		*user = *sys = 0;
		return;
	}
	*user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	*sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint32_t clamp_ns(uint64_t ns)
{
	return ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void watchdog(int sig)
{
	(void)sig;
	static const char msg[] = "loadgen: watchdog: run exceeded its time budget\n";
	ssize_t ignored = write(2, msg, sizeof(msg) - 1);
	(void)ignored;
	_exit(1);
}

// ---- conn mode ----

struct worker {
	pthread_t thread;
	int index;
	uint64_t deadline_ns;
	uint64_t max_conns;
	uint64_t ok;
	uint64_t err_socket, err_connect, err_io;
	int first_errno;
	const char *first_err_stage;
	uint32_t *connect_ns, *txn_ns;
	size_t n_samples;
};

static pthread_barrier_t start_barrier;
static atomic_uint_fast64_t started_conns;
static uint64_t run_start_ns;

static void note_err(struct worker *w, const char *stage, int err)
{
	if (!w->first_errno) {
		w->first_errno = err;
		w->first_err_stage = stage;
	}
}

static void *conn_worker(void *arg)
{
	struct worker *w = arg;
	char sbuf[MAX_SIZE], rbuf[MAX_SIZE];
	memset(sbuf, 'q', (size_t)size);
	unsigned next = (unsigned)w->index;
	pthread_barrier_wait(&start_barrier);
	for (;;) {
		uint64_t t0 = now_ns();
		if (t0 >= w->deadline_ns)
			break;
		if (atomic_fetch_add(&started_conns, 1) >= w->max_conns)
			break;
		const struct sockaddr_in *dst = &targets[next++ % (unsigned)n_targets];
		int fd = make_socket();
		if (fd < 0) {
			w->err_socket++;
			note_err(w, "socket", errno);
			// EMFILE and friends: don't spin hot.
			usleep(1000);
			continue;
		}
		if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst))) {
			int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
			w->err_connect++;
			note_err(w, "connect", e);
			close(fd);
			if (e == EADDRNOTAVAIL)
				usleep(1000);
			continue;
		}
		uint64_t t1 = now_ns();
		if (send_all(fd, sbuf, (size_t)size) || recv_all(fd, rbuf, (size_t)size)) {
			w->err_io++;
			note_err(w, "io", errno);
			close(fd);
			continue;
		}
		uint64_t t2 = now_ns();
		close(fd);
		w->ok++;
		if (w->n_samples < MAX_SAMPLES_PER_THREAD) {
			w->connect_ns[w->n_samples] = clamp_ns(t1 - t0);
			w->txn_ns[w->n_samples] = clamp_ns(t2 - t0);
			w->n_samples++;
		}
	}
	return NULL;
}

static int run_conn(double duration_s, long concurrency, long max_conns)
{
	struct worker *ws = calloc((size_t)concurrency, sizeof(*ws));
	if (!ws) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	if (pthread_barrier_init(&start_barrier, NULL, (unsigned)concurrency + 1)) {
		fprintf(stderr, "loadgen: pthread_barrier_init failed\n");
		return 1;
	}
	for (long i = 0; i < concurrency; i++) {
		ws[i].index = (int)i;
		ws[i].max_conns = (uint64_t)max_conns;
		ws[i].connect_ns = malloc(MAX_SAMPLES_PER_THREAD * sizeof(uint32_t));
		ws[i].txn_ns = malloc(MAX_SAMPLES_PER_THREAD * sizeof(uint32_t));
		if (!ws[i].connect_ns || !ws[i].txn_ns) {
			fprintf(stderr, "loadgen: out of memory\n");
			return 1;
		}
	}
	// Threads take the deadline after the barrier releases them.
	for (long i = 0; i < concurrency; i++) {
		ws[i].deadline_ns = UINT64_MAX;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 4 * MAX_SIZE + (256 << 10));
		int rc = pthread_create(&ws[i].thread, &attr, conn_worker, &ws[i]);
		pthread_attr_destroy(&attr);
		if (rc) {
			fprintf(stderr, "loadgen: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	double cu0, cs0, cu1, cs1;
	cpu_seconds(&cu0, &cs0);
	run_start_ns = now_ns();
	uint64_t deadline = run_start_ns + (uint64_t)(duration_s * 1e9);
	for (long i = 0; i < concurrency; i++)
		ws[i].deadline_ns = deadline;
	pthread_barrier_wait(&start_barrier);
	for (long i = 0; i < concurrency; i++)
		pthread_join(ws[i].thread, NULL);
	uint64_t end = now_ns();
	cpu_seconds(&cu1, &cs1);
	double elapsed = (double)(end - run_start_ns) / 1e9;

	uint64_t ok = 0, es = 0, ec = 0, eio = 0;
	size_t ns = 0;
	int first_errno = 0;
	const char *first_stage = NULL;
	for (long i = 0; i < concurrency; i++) {
		ok += ws[i].ok;
		es += ws[i].err_socket;
		ec += ws[i].err_connect;
		eio += ws[i].err_io;
		ns += ws[i].n_samples;
		if (!first_errno && ws[i].first_errno) {
			first_errno = ws[i].first_errno;
			first_stage = ws[i].first_err_stage;
		}
	}
	uint32_t *cs = malloc((ns ? ns : 1) * sizeof(uint32_t));
	uint32_t *ts = malloc((ns ? ns : 1) * sizeof(uint32_t));
	if (!cs || !ts) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	size_t k = 0;
	for (long i = 0; i < concurrency; i++) {
		memcpy(cs + k, ws[i].connect_ns, ws[i].n_samples * sizeof(uint32_t));
		memcpy(ts + k, ws[i].txn_ns, ws[i].n_samples * sizeof(uint32_t));
		k += ws[i].n_samples;
	}
	qsort(cs, ns, sizeof(uint32_t), cmp_u32);
	qsort(ts, ns, sizeof(uint32_t), cmp_u32);

	printf("{\"mode\":\"conn\",\"targets\":[");
	for (int i = 0; i < n_targets; i++)
		printf("%s\"%s\"", i ? "," : "", target_str[i]);
	printf("],\"concurrency\":%ld,\"size\":%ld,\"duration_s\":%.3f,\"count\":%llu,"
	       "\"rate\":%.1f,\"errors\":%llu,\"errors_socket\":%llu,\"errors_connect\":%llu,"
	       "\"errors_io\":%llu,\"first_error\":",
	       concurrency, size, elapsed, (unsigned long long)ok, ok / elapsed,
	       (unsigned long long)(es + ec + eio), (unsigned long long)es,
	       (unsigned long long)ec, (unsigned long long)eio);
	if (first_errno)
		printf("\"%s: %s\"", first_stage, strerror(first_errno));
	else
		printf("null");
	printf(",\"connect_p50_us\":%.1f,\"connect_p99_us\":%.1f,\"connect_max_us\":%.1f,"
	       "\"txn_p50_us\":%.1f,\"txn_p99_us\":%.1f,\"samples\":%zu,"
	       "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_us_per_conn\":%.2f}\n",
	       pct_us(cs, ns, 0.50), pct_us(cs, ns, 0.99), pct_us(cs, ns, 1.0),
	       pct_us(ts, ns, 0.50), pct_us(ts, ns, 0.99), ns, cu1 - cu0, cs1 - cs0,
	       ok ? (cu1 - cu0 + cs1 - cs0) * 1e6 / (double)ok : -1.0);
	fflush(stdout);
	return ok > 0 ? 0 : 1;
}

// ---- rr mode ----

static int run_rr(long count, long warmup)
{
	char sbuf[MAX_SIZE], rbuf[MAX_SIZE];
	memset(sbuf, 'q', (size_t)size);
	uint32_t *lat = malloc((size_t)count * sizeof(uint32_t));
	if (!lat) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	int fd = make_socket();
	if (fd < 0) {
		fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
		return 1;
	}
	if (connect(fd, (const struct sockaddr *)&targets[0], sizeof(targets[0]))) {
		int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
		fprintf(stderr, "loadgen: connect %s: %s\n", target_str[0], strerror(e));
		return 1;
	}
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char peer_str[INET_ADDRSTRLEN] = "?";
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
		inet_ntop(AF_INET, &peer.sin_addr, peer_str, sizeof(peer_str));
	double cu0 = 0, cs0 = 0, cu1, cs1;
	uint64_t t_start = now_ns();
	for (long i = 0; i < warmup + count; i++) {
		if (i == warmup)
			cpu_seconds(&cu0, &cs0);
		uint64_t t0 = now_ns();
		if (send_all(fd, sbuf, (size_t)size) || recv_all(fd, rbuf, (size_t)size)) {
			fprintf(stderr, "loadgen: ping-pong %ld on %s: %s\n", i, target_str[0],
				strerror(errno));
			close(fd);
			return 1;
		}
		uint64_t t1 = now_ns();
		if (i >= warmup)
			lat[i - warmup] = clamp_ns(t1 - t0);
	}
	double elapsed = (double)(now_ns() - t_start) / 1e9;
	cpu_seconds(&cu1, &cs1);
	close(fd);
	double sum = 0;
	for (long i = 0; i < count; i++)
		sum += lat[i];
	qsort(lat, (size_t)count, sizeof(uint32_t), cmp_u32);
	printf("{\"mode\":\"rr\",\"target\":\"%s\",\"peer\":\"%s:%u\",\"size\":%ld,\"count\":%ld,"
	       "\"warmup\":%ld,\"duration_s\":%.3f,\"p50_us\":%.2f,\"p99_us\":%.2f,"
	       "\"min_us\":%.2f,\"max_us\":%.2f,\"mean_us\":%.2f,\"cpu_us_per_rr\":%.2f}\n",
	       target_str[0], peer_str, ntohs(peer.sin_port), size, count, warmup, elapsed,
	       pct_us(lat, (size_t)count, 0.50), pct_us(lat, (size_t)count, 0.99),
	       lat[0] / 1000.0, lat[count - 1] / 1000.0, sum / (double)count / 1000.0,
	       (cu1 - cu0 + cs1 - cs0) * 1e6 / (double)count);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	int conn = !strcmp(mode, "conn"), rr = !strcmp(mode, "rr");
	if (!conn && !rr)
		usage();
	double duration = 3;
	long concurrency = 2, count = 20000, warmup = 1000, max_conns = 100000000;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		int bad;
		if (!strcmp(a, "--target"))
			bad = add_target(v);
		else if (!strcmp(a, "--size"))
			bad = parse_long(v, 1, MAX_SIZE, &size);
		else if (!strcmp(a, "--timeout-ms"))
			bad = parse_long(v, 1, 60000, &timeout_ms);
		else if (conn && !strcmp(a, "--duration"))
			bad = parse_double(v, 0.01, 3600, &duration);
		else if (conn && !strcmp(a, "--concurrency"))
			bad = parse_long(v, 1, MAX_THREADS, &concurrency);
		else if (conn && !strcmp(a, "--max-conns"))
			bad = parse_long(v, 1, 1000000000, &max_conns);
		else if (rr && !strcmp(a, "--count"))
			bad = parse_long(v, 1, 100000000, &count);
		else if (rr && !strcmp(a, "--warmup"))
			bad = parse_long(v, 0, 100000000, &warmup);
		else
			bad = -1;
		if (bad) {
			fprintf(stderr, "loadgen: bad option %s %s\n", a, v);
			usage();
		}
	}
	if (n_targets == 0 || (rr && n_targets != 1)) {
		fprintf(stderr, "loadgen: %s needs %s --target\n", mode, rr ? "exactly one" : "a");
		usage();
	}
	signal(SIGPIPE, SIG_IGN);
	// Watchdog: conn runs take `duration` plus at most one socket timeout; rr runs are bounded
	// by count, so give them a generous budget of 1 ms per ping-pong plus the timeouts.
	double budget = conn ? duration + 2.0 * (double)timeout_ms / 1000.0 + 10
			     : (double)(count + warmup) / 1000.0 + 2.0 * (double)timeout_ms / 1000.0 + 10;
	signal(SIGALRM, watchdog);
	alarm((unsigned)(budget + 1));
	return conn ? run_conn(duration, concurrency, max_conns) : run_rr(count, warmup);
}
