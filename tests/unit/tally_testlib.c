/*
 * tally_testlib.c - fixtures for the tally tests: a private redis-server, temp dirs, configs
 *
 * Every wait is bounded (a server that will not start fails the test instead of hanging it).
 *
 * OWNERSHIP  see tally_testlib.h.
 */
#include "tally_testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "rules.h"
#include "util.h"

bool tl_have_redis(void)
{
	const char *path = getenv("PATH");
	char buf[4096];
	const char *p, *e;

	for (p = path ? path : "/usr/bin:/bin"; *p; p = *e ? e + 1 : e) {
		e = strchr(p, ':');
		if (!e)
			e = p + strlen(p);
		if (snprintf(buf, sizeof(buf), "%.*s/redis-server", (int)(e - p), p) < (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool redis_ping(int port)
{
	struct timeval tv = { 0, 200000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;
	bool ok = false;

	if (!c)
		return false;
	if (!c->err) {
		redisSetTimeout(c, tv);
		r = redisCommand(c, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
		if (r)
			freeReplyObject(r);
	}
	redisFree(c);
	return ok;
}

int tl_redis_start(struct tl_redis *r)
{
	char port[16];
	int i;

	if (!r->dir[0] && tl_tmpdir(r->dir, sizeof(r->dir), "redis") < 0)
		return -1;
	if (!r->port)
		r->port = free_port();
	if (r->port <= 0)
		return -1;
	snprintf(port, sizeof(port), "%d", r->port);
	r->pid = fork();
	if (r->pid < 0) {
		r->pid = 0;
		return -1;
	}
	if (r->pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--dir", r->dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
		       "--protected-mode", "yes", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {   /* up to 5 s */
		if (redis_ping(r->port))
			return 0;
		sleep_ms(50);
	}
	tl_redis_stop(r);
	return -1;
}

void tl_redis_stop(struct tl_redis *r)
{
	int i, st;

	if (!r->pid)
		return;
	kill(r->pid, SIGCONT);
	kill(r->pid, SIGTERM);
	for (i = 0; i < 100; i++) {
		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			r->pid = 0;
			return;
		}
		sleep_ms(50);
	}
	kill(r->pid, SIGKILL);
	waitpid(r->pid, &st, 0);
	r->pid = 0;
}

void tl_redis_destroy(struct tl_redis *r)
{
	tl_redis_stop(r);
	if (r->dir[0])
		tl_rmdir(r->dir);
	r->dir[0] = '\0';
}

void tl_redis_pause(struct tl_redis *r)
{
	if (r->pid)
		kill(r->pid, SIGSTOP);
}

void tl_redis_resume(struct tl_redis *r)
{
	if (r->pid)
		kill(r->pid, SIGCONT);
}

int tl_redis_flush(const struct tl_redis *r)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
	redisReply *rep;
	int rc = -1;

	if (!c)
		return -1;
	if (!c->err) {
		redisSetTimeout(c, tv);
		rep = redisCommand(c, "FLUSHALL");
		if (rep && rep->type == REDIS_REPLY_STATUS)
			rc = 0;
		if (rep)
			freeReplyObject(rep);
	}
	redisFree(c);
	return rc;
}

int tl_tmpdir(char *buf, size_t n, const char *tag)
{
	const char *tmp = getenv("TMPDIR");

	if (snprintf(buf, n, "%s/amends-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag) >= (int)n)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

void tl_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];

	if (d) {
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
				unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
}

struct config *tl_config(const char *spec)
{
	struct diag d;
	struct config *cfg;

	diag_init(&d);
	cfg = config_load(NULL, &d);
	diag_free(&d);
	if (!cfg)
		return NULL;
	free(cfg->tally.store);
	cfg->tally.store = util_strdup(spec);
	return cfg;
}

static int cmp_icase(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

struct ruleset *tl_ruleset(const char *const *addrs, size_t n)
{
	struct ruleset *rs = calloc(1, sizeof(*rs));
	size_t i;

	if (!rs || !(rs->longstanding = calloc(n ? n : 1, sizeof(char *)))) {
		free(rs);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		rs->longstanding[i] = util_strdup(addrs[i]);
		if (rs->longstanding[i])
			util_ascii_lower(rs->longstanding[i]);
	}
	rs->n_longstanding = n;
	qsort(rs->longstanding, n, sizeof(char *), cmp_icase);
	return rs;
}

void tl_ruleset_free(struct ruleset *rs)
{
	size_t i;

	if (!rs)
		return;
	for (i = 0; i < rs->n_longstanding; i++)
		free(rs->longstanding[i]);
	free(rs->longstanding);
	free(rs);
}
