/* test_metrics.c - the listen-address rules, the /metrics HTTP server, the snapshot writer and
 * the bounded per-rule hit table of stats.c */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "config.h"
#include "diag.h"
#include "heap.h"
#include "metrics.h"
#include "stats.h"
#include "util.h"
#if defined(HAVE_MALLOPT) && defined(HAVE_MALLINFO2)
#include <malloc.h>
#endif

static char tmpdir[] = "/tmp/amends-test-metrics-XXXXXX";

static int free_port(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	socklen_t len = sizeof(in);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	port = ntohs(in.sin_port);
	close(fd);
	return port;
}

/* load_cfg - a config whose stats go to tmpdir and /metrics to listen ("" = off). */
static struct config *load_cfg(const char *listen)
{
	char path[256];
	struct config *c;
	struct diag d;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/amends.conf", tmpdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "state_dir = \"%s\";\nstats = { prometheus_listen = \"%s\"; };\n", tmpdir, listen);
	fclose(fp);
	diag_init(&d);
	c = config_load(path, &d);
	diag_free(&d);
	assert_non_null(c);
	return c;
}

static int connect_port(int port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* http - send req, return the whole answer (malloc'd; "" when the server just closed). */
static char *http(int port, const char *req)
{
	size_t reqlen = strlen(req);
	struct strbuf b;
	char buf[4096];
	int fd = connect_port(port);
	ssize_t n;

	assert_true(fd >= 0);
	if (reqlen)
		assert_int_equal(send(fd, req, reqlen, MSG_NOSIGNAL), (ssize_t)reqlen);
	strbuf_init(&b, 0);
	for (int i = 0; i < 100; i++) {   /* bounded: 100 reads of at most 4 KiB or 5 s */
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 5000) <= 0)
			break;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		strbuf_append(&b, buf, (size_t)n);
	}
	close(fd);
	if (!b.s)
		strbuf_puts(&b, "");
	return strbuf_take(&b);
}

static void test_parse_listen(void **state)
{
	static const struct { const char *spec; int ok; int family; } cases[] = {
		{ "127.0.0.1:9917", 0, AF_INET },
		{ "127.3.4.5:1", 0, AF_INET },
		{ "localhost:9917", 0, AF_INET },
		{ "LOCALHOST:65535", 0, AF_INET },
		{ "[::1]:9917", 0, AF_INET6 },
		{ "0.0.0.0:9917", -1, 0 },          /* every interface: refused */
		{ "192.0.2.7:9917", -1, 0 },
		{ "[::]:9917", -1, 0 },
		{ "[2001:db8::1]:80", -1, 0 },
		{ "::1:9917", -1, 0 },              /* IPv6 needs brackets */
		{ "example.com:9917", -1, 0 },      /* no name service */
		{ "127.0.0.1", -1, 0 },
		{ "127.0.0.1:", -1, 0 },
		{ "127.0.0.1:0", -1, 0 },
		{ "127.0.0.1:65536", -1, 0 },
		{ "127.0.0.1:99x", -1, 0 },
		{ ":9917", -1, 0 },
		{ "[::1]9917", -1, 0 },
		{ "", -1, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		char *err = NULL;
		int rc = metrics_parse_listen(cases[i].spec, &ss, &len, &err);

		if (rc != cases[i].ok)
			fail_msg("%s: got %d (%s)", cases[i].spec, rc, err ? err : "");
		if (rc == 0) {
			assert_null(err);
			assert_int_equal(ss.ss_family, cases[i].family);
		} else {
			assert_non_null(err);
			assert_non_null(strstr(err, "prometheus_listen"));
		}
		free(err);
	}
}

static void test_refuses_non_loopback(void **state)
{
	struct config *c = load_cfg("0.0.0.0:9917");
	char *err = NULL;

	(void)state;
	assert_int_equal(metrics_start(c, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "loopback"));
	free(err);
	metrics_stop();                           /* nothing running: harmless */
	config_unref(c);
}

static void test_port_in_use(void **state)
{
	int port = free_port(), fd;
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char spec[64], *err = NULL;
	struct config *c;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	assert_int_equal(listen(fd, 1), 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	c = load_cfg(spec);
	assert_int_equal(metrics_start(c, &err), -1);
	assert_non_null(err);
	free(err);
	close(fd);
	config_unref(c);
}

static void test_http(void **state)
{
	static const char big[5000] = { [0 ... 4998] = 'A' };
	int port = free_port(), silent;
	char spec[64], *err = NULL, *r, path[300];
	struct config *c;
	long long t0;

	(void)state;
	stats_reset();
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	c = load_cfg(spec);
	assert_int_equal(metrics_start(c, &err), 0);
	assert_null(err);
	assert_int_equal(metrics_start(c, &err), -1);   /* one instance */
	free(err);
	stats_add(STATS_MESSAGES, 3);
	stats_rule_register("EN_QUIET");
	stats_rule_hit("EN_REFUND");
	stats_rule_hit("EN_REFUND");

	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.0 200 OK\r\n"));
	assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "\namends_messages_total 3\n"));
	assert_non_null(strstr(r, "\namends_rule_hits_total{rule=\"EN_REFUND\"} 2\n"));
	assert_non_null(strstr(r, "\namends_rule_hits_total{rule=\"EN_QUIET\"} 0\n"));
	free(r);
	/* HTTP/1.1 with headers and a query string; bare LF line ends */
	r = http(port, "GET /metrics?x=1 HTTP/1.1\nHost: a\nAccept: */*\n\n");
	assert_non_null(strstr(r, "200 OK"));
	free(r);
	r = http(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "200 OK"));
	assert_null(strstr(r, "amends_messages_total"));
	free(r);
	r = http(port, "GET /etc/passwd HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "404 Not Found"));
	free(r);
	r = http(port, "GET /metrics/../x HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "404 Not Found"));
	free(r);
	r = http(port, "POST /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "405 Method Not Allowed"));
	free(r);
	r = http(port, "\r\n\r\n");
	assert_non_null(strstr(r, "400 Bad Request"));
	free(r);
	/* A request line longer than the bound: answered (404 on the cut path), never overflowed. */
	r = http(port, big);
	assert_null(strstr(r, "200 OK"));
	free(r);

	/* A silent client holds the one worker for at most the I/O timeout, then the next is served. */
	silent = connect_port(port);
	assert_true(silent >= 0);
	t0 = util_now_ms();
	r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
	assert_non_null(strstr(r, "200 OK"));
	assert_true(util_now_ms() - t0 < METRICS_IO_TIMEOUT_MS + 2000);
	free(r);
	close(silent);

	metrics_stop();
	assert_int_equal(connect_port(port), -1);       /* the port is closed */
	metrics_stop();                                  /* twice is harmless */

	/* the final snapshot was written at stop */
	snprintf(path, sizeof(path), "%s/stats", tmpdir);
	{
		char *text;
		size_t len;

		assert_int_equal(util_read_file(path, 1 << 20, &text, &len), 0);
		assert_non_null(strstr(text, "\namends_messages_total 3\n"));
		free(text);
	}
	config_unref(c);
}

static void test_snapshot_without_http(void **state)
{
	struct config *c = load_cfg("");
	char *err = NULL, path[300], *text;
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "%s/stats", tmpdir);
	unlink(path);
	stats_reset();
	stats_add(STATS_DRAFTS_FAILED, 7);
	assert_int_equal(metrics_start(c, &err), 0);
	/* the first snapshot is written at once, not after the first interval */
	for (int i = 0; i < 50 && access(path, R_OK) != 0; i++)
		usleep(20000);
	assert_int_equal(util_read_file(path, 1 << 20, &text, &len), 0);
	assert_non_null(strstr(text, "\namends_drafts_failed_total 7\n"));
	free(text);
	stats_add(STATS_DRAFTS_FAILED, 1);
	metrics_stop();
	assert_int_equal(util_read_file(path, 1 << 20, &text, &len), 0);
	assert_non_null(strstr(text, "\namends_drafts_failed_total 8\n"));
	free(text);
	config_unref(c);
}

static size_t count_rule_lines(char **bodyp)
{
	char *body = NULL;
	size_t blen = 0, lines = 0;
	FILE *mem = open_memstream(&body, &blen);
	const char *p;

	assert_non_null(mem);
	stats_write_prometheus(mem);
	fclose(mem);
	for (p = body; (p = strstr(p, "\namends_rule_hits_total{")); p++)
		lines++;
	*bodyp = body;
	return lines;
}

static void test_label_escaping(void **state)
{
	char *body;

	(void)state;
	stats_rule_hit("Q\"uote\\back\nline\x01");
	(void)count_rule_lines(&body);
	assert_non_null(strstr(body, "\namends_rule_hits_total{rule=\"Q\\\"uote\\\\back\\nline\"} 1\n"));
	free(body);
}

/* Last: it fills the process-wide rule table. */
static void test_rule_table_bounded(void **state)
{
	char name[64], *body;
	size_t before;

	(void)state;
	stats_reset();
	before = count_rule_lines(&body);           /* names registered by earlier tests stay */
	free(body);
	assert_true(before > 0 && before < STATS_MAX_RULES);
	for (int i = 0; i < STATS_MAX_RULES + 100; i++) {
		snprintf(name, sizeof(name), "R_%d", i);
		stats_rule_hit(name);
	}
	stats_rule_hit("R_0");                       /* a known name still counts when full */
	assert_int_equal(count_rule_lines(&body), STATS_MAX_RULES);
	snprintf(name, sizeof(name), "\namends_rule_hits_dropped_total %zu\n", 100 + before);
	assert_non_null(strstr(body, name));
	assert_non_null(strstr(body, "{rule=\"R_0\"} 2\n"));
	free(body);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char path[300];

	(void)state;
	snprintf(path, sizeof(path), "%s/amends.conf", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/stats", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

/* gauge - the value of an unlabelled line "NAME value" in body; -1 when it is not there */
static long long gauge(const char *body, const char *name)
{
	char key[96];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(body, key);
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static long long heap_in_use_now(void)
{
	char *body;
	long long v;

	count_rule_lines(&body);
	v = gauge(body, "amends_heap_in_use_bytes");
	free(body);
	return v;
}

/* The heap gauges: present on glibc, held at least in use, and in use following a large
 * allocation (a mapped chunk, since heap_init fixed the threshold) there and back. Under a
 * sanitizer malloc is not glibc's: mallopt is refused and glibc's numbers do not see it. */
static void test_heap_gauges(void **state)
{
	char *body;
	long long in_use, held, with;
	unsigned char *big;
	struct heap_stats h;

	(void)state;
#if defined(HAVE_MALLOPT) && defined(HAVE_MALLINFO2)
	/* a sanitizer's mallopt refuses it (AMENDS_TEST_SLOW: the sanitizer passes) */
	assert_true(heap_init() || getenv("AMENDS_TEST_SLOW"));
	assert_true(heap_stats(&h));
	count_rule_lines(&body);
	in_use = gauge(body, "amends_heap_in_use_bytes");
	held = gauge(body, "amends_heap_held_bytes");
	free(body);
	assert_true(in_use >= 0 && held >= 0);
	if (getenv("AMENDS_TEST_SLOW"))
		return;                 /* a sanitizer's malloc: glibc's numbers may be all zero */
	assert_true(in_use > 0);
	assert_true(held >= in_use);
	big = malloc(4u << 20);
	assert_non_null(big);
	memset(big, 1, 4u << 20);
	with = heap_in_use_now();
	assert_true(with - in_use >= (4 << 20) - 65536);
	free(big);
	assert_true(heap_in_use_now() < with - (4 << 20) + 65536);
#else
	assert_false(heap_stats(&h));
	count_rule_lines(&body);
	assert_null(strstr(body, "amends_heap_"));
	free(body);
	(void)in_use, (void)held, (void)with, (void)big;
#endif
}

/* The threshold heap_init fixes holds after a large chunk is freed. glibc's own rule would
 * raise it to that chunk's size (1 MiB here), and the next 512 KiB would come out of an arena;
 * fixed at HEAP_MMAP_THRESHOLD it is mapped: mallinfo2's mapped bytes grow by it. */
static void test_heap_threshold_fixed(void **state)
{
	(void)state;
#if defined(HAVE_MALLOPT) && defined(HAVE_MALLINFO2)
	unsigned char *big, *mid;
	size_t mapped;

	if (getenv("AMENDS_TEST_SLOW"))
		skip();                 /* a sanitizer's malloc: not glibc's, whatever mallopt says */
	assert_true(heap_init());
	big = malloc((size_t)1 << 20);
	assert_non_null(big);
	big[0] = 1;
	free(big);                      /* a mapped chunk freed: glibc would raise the threshold */
	mapped = mallinfo2().hblkhd;
	mid = malloc((size_t)512 << 10);
	assert_non_null(mid);
	mid[0] = 1;
	assert_true(mallinfo2().hblkhd >= mapped + ((size_t)512 << 10));
	free(mid);
#else
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_refuses_non_loopback),
		cmocka_unit_test(test_port_in_use),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_snapshot_without_http),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_rule_table_bounded),
		cmocka_unit_test(test_heap_gauges),
		cmocka_unit_test(test_heap_threshold_fixed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
