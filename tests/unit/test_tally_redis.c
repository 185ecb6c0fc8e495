/*
 * test_tally_redis.c - the Redis tally store against a real, private redis-server: the shared
 * contract, spec parsing, the script cache, and faults (stopped, paused with SIGSTOP, restarted)
 *
 * Exits 77 (skip) when redis-server is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "tally_contract.h"
#include "tally_testlib.h"
#include "util.h"

static struct tl_redis server;

static int rd_prepare(struct tc_fix *f, char *spec, size_t n)
{
	if (!server.pid && tl_redis_start(&server) < 0)
		return -1;
	if (tl_redis_flush(&server) < 0)
		return -1;
	return snprintf(spec, n, "redis:127.0.0.1:%d", server.port) < (int)n ? 0 : -1;
}

static void rd_cleanup(struct tc_fix *f)
{
	(void)f;
	tl_redis_resume(&server);   /* a failed test must not leave the server paused */
	if (!server.pid)
		(void)tl_redis_start(&server);
}

static const struct tc_backend rd_backend = { rd_prepare, rd_cleanup };

/* fail_fast_calls - n records; every one refused by the backoff must not have touched the
 * network: well under the command timeout (300 ms here; the bound leaves room for a loaded
 * machine or valgrind). The backoff may expire in between, so at least min of them must have
 * been refused that way. */
static void fail_fast_calls(struct tally *t, const char *sender, int n, int min)
{
	int i, fast = 0;

	for (i = 0; i < n; i++) {
		long long t0 = util_now_ms();

		assert_int_equal(tc_record(t, sender, TC_T0, "complaint", NULL), -1);
		if (strstr(tally_error(), "backing off")) {
			assert_true(util_now_ms() - t0 < 150);
			fast++;
		}
	}
	assert_true(fast >= min);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static redisReply *side_command(const char *cmd)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", server.port, tv);
	redisReply *r = NULL;

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	r = redisCommand(c, cmd);
	redisFree(c);
	assert_non_null(r);
	return r;
}

static void test_keys_and_expiry(void **state)
{
	struct tc_fix *f = *state;
	redisReply *r;

	assert_int_equal(tc_record(f->t, "k@x.example", TC_T0, "complaint", NULL), 0);
	r = side_command("ZCARD amends:s:k@x.example:e:complaint");
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	r = side_command("TTL amends:s:k@x.example:e:complaint");
	assert_true(r->integer > 89 * 86400 && r->integer <= 90 * 86400);
	freeReplyObject(r);
	r = side_command("LLEN amends:s:k@x.example:i");
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
}

/* SCRIPT FLUSH (or a restarted server) loses the cached scripts: EVAL takes over. */
static void test_noscript(void **state)
{
	struct tc_fix *f = *state;
	struct tally_counts c;

	assert_int_equal(tc_record(f->t, "n@x.example", TC_T0, "refund", NULL), 0);
	freeReplyObject(side_command("SCRIPT FLUSH"));
	assert_int_equal(tc_record(f->t, "n@x.example", TC_T0 + 1, "refund", &c), 0);
	assert_int_equal(tally_count_of(&c, "refund"), 2);
	tally_counts_free(&c);
	assert_int_equal(tally_draft_claim(f->t, "n@x.example", "winback", TC_T0), 1);
}

static void test_specs(void **state)
{
	static const struct {
		const char *spec;
		bool ok;
	} cases[] = {
		{ "redis:127.0.0.1:6379", true },
		{ "redis:localhost", true },
		{ "redis:[::1]:6379", true },
		{ "redis:unix:/run/redis/redis.sock", true },
		{ "redis:", false },
		{ "redis::6379", false },
		{ "redis:host:0", false },
		{ "redis:host:65536", false },
		{ "redis:host:12x", false },
		{ "redis:[::1", false },
		{ "redis:unix:relative.sock", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct config *cfg = tl_config(cases[i].spec);
		char *err = NULL;
		struct tally *t;

		assert_non_null(cfg);
		t = tally_open(cfg, &err);   /* parses only: never connects */
		if ((t != NULL) != cases[i].ok)
			fail_msg("spec \"%s\": %s", cases[i].spec, t ? "accepted" : err);
		assert_string_equal(tally_backend_name(t), t ? "redis" : "none");
		tally_close(t);
		free(err);
		config_unref(cfg);
	}
}

/* record until it works again (bounded); returns the tries used or -1 */
static int record_until_ok(struct tally *t, const char *sender, time_t when, long max_ms)
{
	long long end = util_now_ms() + max_ms;
	int tries = 0;

	while (util_now_ms() < end) {
		tries++;
		if (tc_record(t, sender, when, "complaint", NULL) == 0)
			return tries;
		sleep_ms(50);
	}
	return -1;
}

/* Redis stopped: -1 at once (connection refused), then fail fast during the backoff without
 * touching the network; after a restart the updates resume and the count is exact. */
static void test_stopped(void **state)
{
	struct tc_fix *f = *state;
	long long t0, ms;
	int i, ok = 1;

	assert_int_equal(tc_record(f->t, "s@x.example", TC_T0, "complaint", NULL), 0);
	tl_redis_stop(&server);
	t0 = util_now_ms();
	assert_int_equal(tc_record(f->t, "s@x.example", TC_T0, "complaint", NULL), -1);
	ms = util_now_ms() - t0;
	assert_true(ms <= 1000);
	assert_non_null(strstr(tally_error(), "redis"));
	fail_fast_calls(f->t, "s@x.example", 20, 1);
	/* everything fails, nothing blocks: counts, claims too */
	{
		struct tally_counts c;

		assert_int_equal(tally_counts(f->t, "s@x.example", TC_T0, &c), -1);
		assert_int_equal(tally_draft_claim(f->t, "s@x.example", "apology", TC_T0), -1);
	}
	/* the data died with the server (no persistence): start again, and updates resume */
	assert_int_equal(tl_redis_start(&server), 0);
	t0 = util_now_ms();
	assert_true(record_until_ok(f->t, "s@x.example", TC_T0 + 1, 3000) > 0);
	assert_true(util_now_ms() - t0 < 2000);   /* R7.2: resumed within 2 s */
	for (i = 0; i < 9; i++)
		ok += tc_record(f->t, "s@x.example", TC_T0 + 2, "complaint", NULL) == 0;
	{
		struct tally_counts c;

		assert_int_equal(tally_counts(f->t, "s@x.example", TC_T0 + 2, &c), 0);
		assert_int_equal(tally_count_of(&c, "complaint"), ok);
		assert_int_equal(ok, 10);
		tally_counts_free(&c);
	}
}

/* Redis hung (SIGSTOP): a call returns within about the timeout, the next ones fail fast. */
static void test_paused(void **state)
{
	struct tc_fix *f = *state;
	struct tally *t;
	char *err = NULL;
	long long t0, ms;

	f->cfg->tally.redis_timeout_ms = 300;
	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	assert_int_equal(tc_record(t, "p@x.example", TC_T0, "complaint", NULL), 0);
	tl_redis_pause(&server);
	t0 = util_now_ms();
	assert_int_equal(tc_record(t, "p@x.example", TC_T0, "complaint", NULL), -1);
	ms = util_now_ms() - t0;
	assert_true(ms >= 250);
	assert_true(ms < 900);
	assert_non_null(strstr(tally_error(), "timeout"));
	fail_fast_calls(t, "p@x.example", 5, 1);
	tl_redis_resume(&server);
	assert_true(record_until_ok(t, "p@x.example", TC_T0 + 1, 3000) > 0);
	{
		struct tally_counts c;

		assert_int_equal(tally_counts(t, "p@x.example", TC_T0 + 1, &c), 0);
		/* the timed-out call may or may not have reached the server before the pause;
		 * the script is atomic, so it counted fully or not at all */
		assert_true(tally_count_of(&c, "complaint") >= 2 && tally_count_of(&c, "complaint") <= 3);
		tally_counts_free(&c);
	}
	tally_close(t);
}

static void test_password_rejected(void **state)
{
	struct tc_fix *f = *state;
	struct tally *t;
	char *err = NULL;

	/* the server has no password: AUTH fails, and the tally says so instead of hanging */
	free(f->cfg->tally.redis_password);
	f->cfg->tally.redis_password = util_strdup("secret");
	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	assert_int_equal(tc_record(t, "a@x.example", TC_T0, "complaint", NULL), -1);
	assert_non_null(strstr(tally_error(), "auth"));
	tally_close(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tc_setup, tc_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(tc_test_counts), T(tc_test_window), T(tc_test_window_model),
		T(tc_test_history), T(tc_test_claim),
		T(tc_test_reset_forget), T(tc_test_top), T(tc_test_prune), T(tc_test_threads),
		T(tc_test_bad_input),
		T(test_keys_and_expiry), T(test_noscript), T(test_stopped), T(test_paused),
		T(test_password_rejected),
		cmocka_unit_test(test_specs),
	};
	int rc;

	if (!tl_have_redis()) {
		fprintf(stderr, "SKIP: redis-server is not installed (Debian package redis-server)\n");
		return 77;
	}
	if (tl_redis_start(&server) < 0) {
		fprintf(stderr, "redis-server did not start\n");
		return 1;
	}
	tc_be = &rd_backend;
	rc = cmocka_run_group_tests_name("tally_redis", tests, NULL, NULL);
	tl_redis_destroy(&server);
	return rc;
}
