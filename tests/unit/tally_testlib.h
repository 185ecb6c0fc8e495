/*
 * tally_testlib.h - fixtures shared by the tally, policy and scenario tests
 *
 * A private redis-server on 127.0.0.1 at a free port, in its own temp dir, with persistence off
 * (--save "" --appendonly no); it can be stopped, restarted on the same port, paused (SIGSTOP)
 * and resumed. Temp dirs are removed with everything in them (one level: our files only).
 *
 * OWNERSHIP  every *_start/_new has a matching *_stop/_free.
 */
#ifndef AMENDS_TALLY_TESTLIB_H
#define AMENDS_TALLY_TESTLIB_H

#include <stdbool.h>
#include <sys/types.h>
#include "config.h"

struct tl_redis {
	pid_t pid;          /* 0 when not running */
	int port;
	char dir[256];
};

/* Is redis-server on PATH? */
bool tl_have_redis(void);
/* Start on a free port (or r->port when already set, for a restart); 0 or -1. */
int tl_redis_start(struct tl_redis *r);
/* SIGTERM and wait (bounded); the dir stays for a restart. */
void tl_redis_stop(struct tl_redis *r);
/* Stop and remove the dir. */
void tl_redis_destroy(struct tl_redis *r);
void tl_redis_pause(struct tl_redis *r);
void tl_redis_resume(struct tl_redis *r);
/* FLUSHALL through a fresh connection; 0 or -1. */
int tl_redis_flush(const struct tl_redis *r);

/* mkdtemp under $TMPDIR (or /tmp) into buf; 0 or -1. */
int tl_tmpdir(char *buf, size_t n, const char *tag);
/* Remove the files in dir (one level) and dir. */
void tl_rmdir(const char *dir);

struct ruleset;
/* A ruleset holding only a long-standing list (lowercased, sorted as rules.c keeps it), for
 * policy tests that must not depend on rule files; free with tl_ruleset_free(). */
struct ruleset *tl_ruleset(const char *const *addrs, size_t n);
void tl_ruleset_free(struct ruleset *rs);

/* Built-in defaults with tally.store replaced by spec; NULL on failure. */
struct config *tl_config(const char *spec);

#endif
