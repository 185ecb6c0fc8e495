/*
 * metrics.c - the stats snapshot writer and the loopback /metrics server (see metrics.h)
 *
 * Two threads, both optional to the mail path: nothing here can hold, delay or reject a message.
 * The HTTP side is deliberately small: HTTP/1.0, one connection at a time, a request of at most
 * METRICS_MAX_REQUEST bytes read within METRICS_IO_TIMEOUT_MS, the answer written within the
 * same deadline, then the connection is closed. No files are served and nothing is executed;
 * the only path answered is /metrics (GET or HEAD).
 *
 * OWNERSHIP  One process-wide instance (struct metrics_state M), created by metrics_start and
 *            torn down by metrics_stop. Copies of the config strings it needs live in M.
 * DIAGNOSTICS  Start-up problems are returned as a message; runtime failures are logged through
 *              log.h, once per streak (a full disk must not flood syslog every 5 s).
 */
#include "metrics.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct metrics_state {
	bool running;
	bool stop;                 /* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* CLOCK_MONOTONIC; wakes the writer at stop */
	pthread_t writer;
	pthread_t server;
	bool have_server;
	int listen_fd;
	int wake[2];               /* written at stop: wakes the server's poll */
	char *stats_file;
	char *listen;
};

static struct metrics_state M = { .listen_fd = -1, .wake = { -1, -1 } };

static char *errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* errmsg - a malloc'd message (NULL only when out of memory). */
static char *errmsg(const char *fmt, ...)
{
	struct strbuf sb;
	va_list ap;

	strbuf_init(&sb, 1024);
	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	return strbuf_take(&sb);
}

/* ---- the listen address ------------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

/* split_host_port - "h:p" or "[h]:p" into host (copied into buf) and port; -1 when malformed. */
static int split_host_port(const char *spec, char *host, size_t hostsz, long *port)
{
	const char *colon, *h = spec;
	size_t hl;
	char *end;

	if (*spec == '[') {
		const char *rb = strchr(spec, ']');

		if (!rb || rb[1] != ':')
			return -1;
		h = spec + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || memchr(spec, ':', (size_t)(colon - spec)))
			return -1;           /* a bare IPv6 address needs brackets */
		hl = (size_t)(colon - spec);
	}
	if (hl == 0 || hl >= hostsz)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	*port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || *port < 1 || *port > 65535)
		return -1;
	return 0;
}

int metrics_parse_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *len,
			 char **err)
{
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
	char host[64];
	long port;

	*err = NULL;
	memset(addr, 0, sizeof(*addr));
	if (!spec || split_host_port(spec, host, sizeof(host), &port) < 0) {
		*err = errmsg("stats.prometheus_listen: expected HOST:PORT such as 127.0.0.1:9917, "
			      "got \"%s\"", spec ? spec : "");
		return -1;
	}
	/* No name service: "localhost" is the only name, and it means 127.0.0.1. */
	if (strcasecmp(host, "localhost") == 0)
		(void)snprintf(host, sizeof(host), "127.0.0.1");   /* fits */
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*len = sizeof(*in);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
	} else {
		*err = errmsg("stats.prometheus_listen: \"%s\" is not an IP address", host);
		return -1;
	}
	if (!is_loopback(addr)) {
		*err = errmsg("stats.prometheus_listen: %s is not a loopback address; /metrics has no "
			      "authentication, so amends serves it on 127.0.0.0/8 or ::1 only", host);
		return -1;
	}
	return 0;
}

static int open_listener(const char *spec, char **err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (metrics_parse_listen(spec, &ss, &len, err) < 0)
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*err = errmsg("stats.prometheus_listen %s: socket: %s", spec, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 8) < 0) {
		*err = errmsg("stats.prometheus_listen %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static long remaining_ms(long long deadline)
{
	long long left = deadline - util_now_ms();

	return left > 0 ? (long)left : 0;
}

/* read_request - read until the blank line that ends the header; returns bytes or -1. */
static ssize_t read_request(int fd, char *buf, size_t cap, long long deadline)
{
	size_t n = 0;

	while (n < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, (int)remaining_ms(deadline)) <= 0)
			return -1;
		r = recv(fd, buf + n, cap - n, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return n ? (ssize_t)n : -1;  /* a client may half-close after its request */
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return (ssize_t)n;
	}
	return (ssize_t)n;                       /* full: parse what we have */
}

static int write_all(int fd, const char *p, size_t n, long long deadline)
{
	while (n) {
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pf, 1, (int)remaining_ms(deadline)) <= 0)
			return -1;
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void respond(int fd, const char *status, const char *extra, const char *body, size_t blen,
		    bool head_only, long long deadline)
{
	char hdr[512];
	int n;

	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
		     status, strncmp(status, "200", 3) ? "text/plain; charset=utf-8" :
		     "text/plain; version=0.0.4; charset=utf-8", blen, extra);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return;
	if (write_all(fd, hdr, (size_t)n, deadline) < 0 || head_only)
		return;
	(void)write_all(fd, body, blen, deadline);
}

static void respond_text(int fd, const char *status, const char *extra, const char *text,
			 bool head_only, long long deadline)
{
	respond(fd, status, extra, text, strlen(text), head_only, deadline);
}

static void serve_metrics(int fd, bool head_only, long long deadline)
{
	char *body = NULL;
	size_t blen = 0;
	FILE *mem = open_memstream(&body, &blen);
	bool lost;

	if (!mem) {
		respond_text(fd, "500 Internal Server Error", "", "out of memory\n", head_only, deadline);
		return;
	}
	stats_write_prometheus(mem);
	/* a write that failed (out of memory) shows in the error flag; fclose may not report it */
	lost = ferror(mem) != 0;
	if (fclose(mem) != 0 || lost || !body) {
		free(body);
		respond_text(fd, "500 Internal Server Error", "", "out of memory\n", head_only, deadline);
		return;
	}
	respond(fd, "200 OK", "", body, blen, head_only, deadline);
	free(body);
}

/* serve_one - one request on fd: "GET /metrics" (any HTTP version, any query) or an error. */
static void serve_one(int fd)
{
	long long deadline = util_now_ms() + METRICS_IO_TIMEOUT_MS;
	char buf[METRICS_MAX_REQUEST + 1];
	char *method, *path, *save = NULL;
	bool head;
	ssize_t n;

	n = read_request(fd, buf, METRICS_MAX_REQUEST, deadline);
	if (n < 0)
		return;                          /* silent client or timeout: just close */
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';        /* the request line only */
	method = strtok_r(buf, " ", &save);
	path = method ? strtok_r(NULL, " ", &save) : NULL;
	if (!method || !path) {
		respond_text(fd, "400 Bad Request", "", "bad request\n", false, deadline);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		respond_text(fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
			     "only GET and HEAD\n", false, deadline);
		return;
	}
	path[strcspn(path, "?#")] = '\0';
	if (strcmp(path, "/metrics") != 0) {
		respond_text(fd, "404 Not Found", "", "try /metrics\n", head, deadline);
		return;
	}
	serve_metrics(fd, head, deadline);
}

static void *server_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = { { .fd = M.listen_fd, .events = POLLIN },
				       { .fd = M.wake[0], .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err_errno("metrics: poll");
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(M.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			/* Out of descriptors: back off instead of spinning on a ready listener. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				(void)poll(&p[1], 1, 100);
			continue;
		}
		serve_one(fd);
		close(fd);
	}
	return NULL;
}

/* ---- the snapshot writer ------------------------------------------------------------------- */

static void write_snapshot(bool *failing)
{
	if (stats_write_file(M.stats_file) < 0) {
		if (!*failing)
			log_warn_errno("metrics: cannot write the stats snapshot %s", M.stats_file);
		*failing = true;
	} else if (*failing) {
		log_info("metrics: writing %s again", M.stats_file);
		*failing = false;
	}
}

static void *writer_thread(void *arg)
{
	bool failing = false, stop;

	(void)arg;
	for (;;) {
		struct timespec until;

		write_snapshot(&failing);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += METRICS_INTERVAL_S;
		pthread_mutex_lock(&M.lock);
		while (!M.stop && pthread_cond_timedwait(&M.cond, &M.lock, &until) == 0)
			;                        /* woken spuriously: wait on until the deadline */
		stop = M.stop;
		pthread_mutex_unlock(&M.lock);
		if (stop)
			break;
	}
	write_snapshot(&failing);                /* the final counters, at stop */
	return NULL;
}

/* ---- start / stop --------------------------------------------------------------------------- */

static void metrics_cleanup(void)
{
	if (M.listen_fd >= 0)
		close(M.listen_fd);
	if (M.wake[0] >= 0)
		close(M.wake[0]);
	if (M.wake[1] >= 0)
		close(M.wake[1]);
	M.listen_fd = M.wake[0] = M.wake[1] = -1;
	free(M.stats_file);
	free(M.listen);
	M.stats_file = M.listen = NULL;
}

/* start_threads - with every signal blocked, so that the threads inherit a full mask and never
 * take SIGTERM/SIGUSR1 meant for libmilter's and the reload thread's sigwait. */
static int start_threads(char **err)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&M.writer, NULL, writer_thread, NULL);
	if (rc == 0 && M.listen_fd >= 0) {
		rc = pthread_create(&M.server, NULL, server_thread, NULL);
		if (rc == 0) {
			M.have_server = true;
		} else {
			pthread_mutex_lock(&M.lock);
			M.stop = true;
			pthread_cond_signal(&M.cond);
			pthread_mutex_unlock(&M.lock);
			pthread_join(M.writer, NULL);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		*err = errmsg("metrics: cannot start a thread: %s", strerror(rc));
	return rc == 0 ? 0 : -1;
}

static int init_sync(void)
{
	pthread_condattr_t ca;

	if (pthread_mutex_init(&M.lock, NULL) != 0)
		return -1;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&M.cond, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&M.lock);
		return -1;
	}
	pthread_condattr_destroy(&ca);
	return 0;
}

int metrics_start(const struct config *cfg, char **err)
{
	*err = NULL;
	if (M.running) {
		*err = errmsg("metrics: already running");
		return -1;
	}
	M.stop = false;
	M.have_server = false;
	errno = 0;
	M.stats_file = util_strdup(cfg->stats.stats_file);
	M.listen = util_strdup(cfg->stats.prometheus_listen);
	if (!M.stats_file || !M.listen || pipe2(M.wake, O_CLOEXEC) < 0) {
		*err = errmsg("metrics: %s", strerror(errno ? errno : ENOMEM));
		metrics_cleanup();
		return -1;
	}
	if (M.listen[0]) {
		M.listen_fd = open_listener(M.listen, err);
		if (M.listen_fd < 0) {
			metrics_cleanup();
			return -1;
		}
	}
	if (init_sync() < 0) {
		*err = errmsg("metrics: cannot create a lock");
		metrics_cleanup();
		return -1;
	}
	if (start_threads(err) < 0) {
		pthread_cond_destroy(&M.cond);
		pthread_mutex_destroy(&M.lock);
		metrics_cleanup();
		return -1;
	}
	M.running = true;
	if (M.listen_fd >= 0)
		log_info("metrics: serving /metrics on %s", M.listen);
	return 0;
}

void metrics_stop(void)
{
	if (!M.running)
		return;
	pthread_mutex_lock(&M.lock);
	M.stop = true;
	pthread_cond_signal(&M.cond);
	pthread_mutex_unlock(&M.lock);
	if (M.have_server) {
		ssize_t w;

		do
			w = write(M.wake[1], "x", 1);
		while (w < 0 && errno == EINTR);
		pthread_join(M.server, NULL);
	}
	pthread_join(M.writer, NULL);
	pthread_cond_destroy(&M.cond);
	pthread_mutex_destroy(&M.lock);
	metrics_cleanup();
	M.running = false;
	M.have_server = false;
}
