/*
 * tally_contract.c - the behaviour every tally store must show, run on SQLite and on Redis
 *
 * Time is the test clock (clock_set), so windows, dedupe and pruning are tested without waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "tally_contract.h"
#include "tally_testlib.h"
#include "util.h"

const struct tc_backend *tc_be;

int tc_setup(void **state)
{
	struct tc_fix *f = calloc(1, sizeof(*f));
	char spec[512];
	char *err = NULL;

	if (!f || tc_be->prepare(f, spec, sizeof(spec)) < 0 || !(f->cfg = tl_config(spec))) {
		free(f);
		return -1;
	}
	f->cfg->tally.incidents = 3;
	clock_set(TC_T0);
	f->t = tally_open(f->cfg, &err);
	if (!f->t) {
		fprintf(stderr, "tally_open: %s\n", err ? err : "?");
		free(err);
		config_unref(f->cfg);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

int tc_teardown(void **state)
{
	struct tc_fix *f = *state;

	tally_close(f->t);
	config_unref(f->cfg);
	tc_be->cleanup(f);
	clock_set(0);
	free(f);
	return 0;
}

struct tally *tc_open_again(struct tc_fix *f)
{
	char *err = NULL;
	struct tally *t = tally_open(f->cfg, &err);

	free(err);
	return t;
}

int tc_record(struct tally *t, const char *sender, time_t when, const char *cats,
	      struct tally_counts *after)
{
	const char *v[8];
	char buf[128], *save = NULL, *p;
	struct tally_event ev = { 0 };

	snprintf(buf, sizeof(buf), "%s", cats);
	for (p = strtok_r(buf, ",", &save); p && ev.n_categories < 8; p = strtok_r(NULL, ",", &save))
		if (strcmp(p, "none") != 0)
			v[ev.n_categories++] = p;
	ev.when = when;
	ev.categories = v;
	ev.message_id = "m@x";
	ev.subject = "subject";
	ev.rules = "R1";
	return tally_record(t, sender, &ev, after);
}

static int count_in(struct tally *t, const char *sender, time_t now, const char *cat)
{
	struct tally_counts c;
	int n;

	assert_int_equal(tally_counts(t, sender, now, &c), 0);
	n = tally_count_of(&c, cat);
	tally_counts_free(&c);
	return n;
}

void tc_test_counts(void **state)
{
	struct tc_fix *f = *state;
	struct tally_counts c;
	time_t first, last;

	assert_int_equal(tc_record(f->t, "a@x.example", TC_T0, "complaint", &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(tally_count_of(&c, "complaint"), 1);
	tally_counts_free(&c);
	assert_int_equal(tc_record(f->t, "a@x.example", TC_T0 + 10, "complaint,refund", &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(tally_count_of(&c, "complaint"), 2);
	assert_int_equal(tally_count_of(&c, "refund"), 1);
	assert_int_equal(tally_count_of(&c, "abuse"), 0);
	/* sorted by name; per-category first and last seen */
	assert_string_equal(c.v[0].category, "complaint");
	assert_int_equal(c.v[0].first_seen, TC_T0);
	assert_int_equal(c.v[0].last_seen, TC_T0 + 10);
	assert_int_equal(c.v[1].first_seen, TC_T0 + 10);
	tally_counts_free(&c);
	/* a message with no category is not recorded but still reads the counts */
	assert_int_equal(tc_record(f->t, "a@x.example", TC_T0 + 20, "none", &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 2);
	tally_counts_free(&c);
	assert_int_equal(tally_seen(f->t, "a@x.example", &first, &last), 1);
	assert_int_equal(first, TC_T0);
	assert_int_equal(last, TC_T0 + 10);
	/* another sender is separate */
	assert_int_equal(count_in(f->t, "b@x.example", TC_T0, "complaint"), 0);
	assert_int_equal(tally_seen(f->t, "b@x.example", &first, &last), 0);
	/* a message whose clock is behind the last one's: it is the first seen now */
	assert_int_equal(tc_record(f->t, "a@x.example", TC_T0 - 5, "complaint", &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 3);
	assert_int_equal(c.v[0].first_seen, TC_T0 - 5);
	assert_int_equal(c.v[0].last_seen, TC_T0 + 10);
	tally_counts_free(&c);
	/* NULL "after" is allowed */
	assert_int_equal(tc_record(f->t, "a@x.example", TC_T0 + 30, "abuse", NULL), 0);
	assert_int_equal(count_in(f->t, "a@x.example", TC_T0 + 30, "abuse"), 1);
}

void tc_test_window(void **state)
{
	struct tc_fix *f = *state;
	struct tally_counts c;
	const time_t w = 30 * TC_DAY;

	assert_int_equal(f->cfg->tally.window_days, 30);
	assert_int_equal(tc_record(f->t, "w@x.example", TC_T0, "complaint", NULL), 0);
	assert_int_equal(tc_record(f->t, "w@x.example", TC_T0 + 10 * TC_DAY, "complaint", NULL), 0);
	assert_int_equal(count_in(f->t, "w@x.example", TC_T0 + 10 * TC_DAY, "complaint"), 2);
	/* exactly 30 days later the first still counts; one second later it has faded */
	assert_int_equal(count_in(f->t, "w@x.example", TC_T0 + w, "complaint"), 2);
	assert_int_equal(count_in(f->t, "w@x.example", TC_T0 + w + 1, "complaint"), 1);
	/* a new message 35 days in: the count is 2 (day 10 and day 35), not 3 */
	assert_int_equal(tc_record(f->t, "w@x.example", TC_T0 + 35 * TC_DAY, "complaint", &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 2);
	assert_int_equal(c.v[0].first_seen, TC_T0 + 10 * TC_DAY);
	tally_counts_free(&c);
	assert_int_equal(count_in(f->t, "w@x.example", TC_T0 + 80 * TC_DAY, "complaint"), 0);
}

/* One recorded event of tc_test_window_model: its sender, category and time */
struct wm_event {
	int sender, cat;
	time_t ts;
};

/* wm_check - the store's counts c for sender at now equal those of the n events in ev */
static void wm_check(const struct tally_counts *c, const struct wm_event *ev, size_t n,
		     int sender, time_t now, time_t window, const char *const *cats, int n_cats)
{
	int k;

	for (k = 0; k < n_cats; k++) {
		int want = 0;
		time_t first = 0, last = 0;
		size_t i, j;

		for (i = 0; i < n; i++) {
			if (ev[i].sender != sender || ev[i].cat != k || ev[i].ts < now - window)
				continue;
			if (!want++ || ev[i].ts < first)
				first = ev[i].ts;
			if (ev[i].ts > last)
				last = ev[i].ts;
		}
		assert_int_equal(tally_count_of(c, cats[k]), want);
		for (j = 0; want && j < c->n; j++)
			if (strcmp(c->v[j].category, cats[k]) == 0) {
				assert_int_equal(c->v[j].first_seen, first);
				assert_int_equal(c->v[j].last_seen, last);
			}
	}
}

/* The windowed counts against a model: a few hundred messages of two senders, at steps from
 * one second to weeks (so that windows start inside days, on their first and last second and
 * on day boundaries), each record's counts and later reads compared with a count over every
 * event recorded; then again after a prune. */
void tc_test_window_model(void **state)
{
	static const char *const cats[] = { "abuse", "complaint", "refund" };
	static const char *const senders[] = { "m0@x.example", "m1@x.example" };
	/* -1: to the next midnight (UTC), so that events fall on a window's first and last day's
	 * boundaries too */
	static const time_t steps[] = { 0, 1, 59, 3600, 86399, 86400, 86401, 3 * 86400 + 7,
					 9 * 86400, 17 * 86400, -1, -1 };
	struct tc_fix *f = *state;
	const time_t window = (time_t)f->cfg->tally.window_days * TC_DAY;
	struct wm_event ev[400];
	struct tally_counts c;
	unsigned seed = 20261130;
	time_t now = TC_T0 - 40 * TC_DAY - TC_T0 % TC_DAY;   /* a midnight */
	time_t cut_at;
	struct tally *t2;
	size_t n = 0;
	int s, k;

	while (n + 2 <= UTIL_ARRAY_LEN(ev)) {
		char cs[64];
		int a, b;

		time_t step = steps[rand_r(&seed) % UTIL_ARRAY_LEN(steps)];

		now += step >= 0 ? step : TC_DAY - now % TC_DAY;
		s = (int)(rand_r(&seed) % 2);
		a = (int)(rand_r(&seed) % 3);
		b = (int)(rand_r(&seed) % 4);   /* 3: one category only */
		snprintf(cs, sizeof(cs), "%s%s%s", cats[a], b < 3 && b != a ? "," : "",
			 b < 3 && b != a ? cats[b] : "");
		assert_int_equal(tc_record(f->t, senders[s], now, cs, &c), 0);
		ev[n++] = (struct wm_event){ s, a, now };
		if (b < 3 && b != a)
			ev[n++] = (struct wm_event){ s, b, now };
		wm_check(&c, ev, n, s, now, window, cats, 3);
		tally_counts_free(&c);
	}
	/* reads later on: the window's start on the first, on the last second of a day and past */
	for (k = 0; k < 40; k++) {
		time_t later = now + (time_t)(rand_r(&seed) % (40 * 86400));

		if (k % 4 == 1)
			later += 86399 - (later - window) % 86400;   /* window starts at 23:59:59 */
		else if (k % 4 == 2)
			later -= (later - window) % 86400;           /* ... at 00:00:00 */
		for (s = 0; s < 2; s++) {
			assert_int_equal(tally_counts(f->t, senders[s], later, &c), 0);
			wm_check(&c, ev, n, s, later, window, cats, 3);
			tally_counts_free(&c);
		}
	}
	cut_at = now + 5 * TC_DAY + 12 * 3600 + 7;
	/* a prune keeps what the window can still see, also when the retention is the window
	 * and the cut falls inside a day (a second handle with those settings prunes) */
	f->cfg->tally.retention_days = f->cfg->tally.window_days;
	t2 = tc_open_again(f);
	assert_non_null(t2);
	assert_int_equal(tally_prune(t2, cut_at), 0);
	tally_close(t2);
	for (k = 0; k < 2; k++)
		for (s = 0; s < 2; s++) {
			assert_int_equal(tally_counts(f->t, senders[s], cut_at + k * 3600, &c), 0);
			wm_check(&c, ev, n, s, cut_at + k * 3600, window, cats, 3);
			tally_counts_free(&c);
		}
}

void tc_test_history(void **state)
{
	struct tc_fix *f = *state;
	struct tally_history h;
	struct tally_event ev = { 0 };
	const char *cats[] = { "complaint", "refund" };
	char subject[2000];
	char mid[32];   /* outlives the loop: ev still points at it below */
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(mid, sizeof(mid), "m%d@x", i);
		ev.when = TC_T0 + i;
		ev.message_id = mid;
		ev.subject = i == 4 ? "bad\r\nBcc: x\x1f\ttab" : "plain";
		ev.categories = cats;
		ev.n_categories = i == 4 ? 2 : 1;
		ev.rules = "EN_COMPLAINT_01,EN_REFUND_02";
		assert_int_equal(tally_record(f->t, "h@x.example", &ev, NULL), 0);
	}
	assert_int_equal(tally_history(f->t, "h@x.example", 10, &h), 0);
	assert_int_equal(h.n, 3);   /* the config keeps the last 3 */
	assert_int_equal(h.v[0].when, TC_T0 + 4);
	assert_string_equal(h.v[0].message_id, "m4@x");
	assert_string_equal(h.v[0].subject, "bad  Bcc: x  tab");
	assert_string_equal(h.v[0].categories, "complaint,refund");
	assert_string_equal(h.v[0].rules, "EN_COMPLAINT_01,EN_REFUND_02");
	assert_int_equal(h.v[1].when, TC_T0 + 3);
	assert_int_equal(h.v[2].when, TC_T0 + 2);
	tally_history_free(&h);
	assert_int_equal(tally_history(f->t, "h@x.example", 1, &h), 0);
	assert_int_equal(h.n, 1);
	tally_history_free(&h);
	/* a stranger's 2000-byte subject of 3-byte characters is cut on a character boundary */
	for (i = 0; i + 3 < (int)sizeof(subject); i += 3)
		memcpy(subject + i, "\xe0\xa4\xb9", 3);
	subject[i] = '\0';
	ev.subject = subject;
	ev.when = TC_T0 + 100;
	assert_int_equal(tally_record(f->t, "h@x.example", &ev, NULL), 0);
	assert_int_equal(tally_history(f->t, "h@x.example", 1, &h), 0);
	assert_true(strlen(h.v[0].subject) <= 512);
	assert_true(strlen(h.v[0].subject) > 500);
	assert_true(util_utf8_valid(h.v[0].subject, strlen(h.v[0].subject)));
	tally_history_free(&h);
	assert_int_equal(tally_history(f->t, "nobody@x.example", 5, &h), 0);
	assert_int_equal(h.n, 0);
	tally_history_free(&h);
}

void tc_test_claim(void **state)
{
	struct tc_fix *f = *state;
	const char *s = "c@x.example";

	assert_int_equal(f->cfg->policy.dedupe_days, 7);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0), 1);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0), 0);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 6 * TC_DAY), 0);
	assert_int_equal(tally_draft_claim(f->t, s, "winback", TC_T0 + TC_DAY), 1);
	assert_int_equal(tally_draft_claim(f->t, "other@x.example", "apology", TC_T0), 1);
	/* seven days later a new one is allowed, and then blocked again */
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 7 * TC_DAY), 1);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 8 * TC_DAY), 0);
	/* unclaim only undoes the matching claim */
	assert_int_equal(tally_draft_unclaim(f->t, s, "apology", TC_T0 + 1), 0);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 8 * TC_DAY), 0);
	assert_int_equal(tally_draft_unclaim(f->t, s, "apology", TC_T0 + 7 * TC_DAY), 0);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 8 * TC_DAY), 1);
	assert_int_equal(tally_draft_claim(f->t, s, "bad kind", TC_T0), -1);
	assert_int_equal(tally_draft_claim(f->t, s, "", TC_T0), -1);
}

void tc_test_reset_forget(void **state)
{
	struct tc_fix *f = *state;
	struct tally_history h;
	time_t first, last;
	const char *s = "r@x.example";

	assert_int_equal(tc_record(f->t, s, TC_T0, "complaint,abuse", NULL), 0);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0), 1);
	assert_int_equal(tc_record(f->t, "keep@x.example", TC_T0, "complaint", NULL), 0);
	assert_int_equal(tally_reset(f->t, s), 0);
	assert_int_equal(count_in(f->t, s, TC_T0, "complaint"), 0);
	assert_int_equal(count_in(f->t, s, TC_T0, "abuse"), 0);
	assert_int_equal(tally_history(f->t, s, 5, &h), 0);
	assert_int_equal(h.n, 0);
	tally_history_free(&h);
	assert_int_equal(tally_seen(f->t, s, &first, &last), 1);      /* still known */
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 1), 0);   /* dedupe kept */
	assert_int_equal(tc_record(f->t, s, TC_T0 + 2, "refund", NULL), 0);
	assert_int_equal(tally_forget(f->t, s), 0);
	assert_int_equal(tally_seen(f->t, s, &first, &last), 0);
	assert_int_equal(count_in(f->t, s, TC_T0 + 2, "refund"), 0);
	assert_int_equal(tally_draft_claim(f->t, s, "apology", TC_T0 + 3), 1);   /* no trace left */
	/* the neighbour is untouched */
	assert_int_equal(count_in(f->t, "keep@x.example", TC_T0, "complaint"), 1);
	/* forgetting an unknown sender is fine */
	assert_int_equal(tally_forget(f->t, "ghost@x.example"), 0);
}

void tc_test_top(void **state)
{
	struct tc_fix *f = *state;
	struct tally_sender_summary *v;
	size_t n;

	assert_int_equal(tc_record(f->t, "one@x.example", TC_T0, "complaint", NULL), 0);
	assert_int_equal(tc_record(f->t, "three@x.example", TC_T0, "complaint,refund", NULL), 0);
	assert_int_equal(tc_record(f->t, "three@x.example", TC_T0 + 1, "abuse", NULL), 0);
	assert_int_equal(tc_record(f->t, "two@x.example", TC_T0 + 2, "refund,unethical", NULL), 0);
	assert_int_equal(tc_record(f->t, "old@x.example", TC_T0 - 40 * TC_DAY, "abuse", NULL), 0);
	assert_int_equal(tally_top(f->t, 10, &v, &n), 0);
	assert_int_equal(n, 3);   /* old@ is outside the window */
	assert_string_equal(v[0].sender, "three@x.example");
	assert_int_equal(v[0].total, 3);
	assert_int_equal(v[0].last_seen, TC_T0 + 1);
	assert_string_equal(v[1].sender, "two@x.example");
	assert_int_equal(v[1].total, 2);
	assert_string_equal(v[2].sender, "one@x.example");
	tally_top_free(v, n);
	assert_int_equal(tally_top(f->t, 1, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].sender, "three@x.example");
	tally_top_free(v, n);
}

void tc_test_prune(void **state)
{
	struct tc_fix *f = *state;
	time_t first, last;

	assert_int_equal(f->cfg->tally.retention_days, 90);
	assert_int_equal(tc_record(f->t, "p@x.example", TC_T0, "complaint", NULL), 0);
	assert_int_equal(tally_draft_claim(f->t, "p@x.example", "apology", TC_T0), 1);
	assert_int_equal(tc_record(f->t, "q@x.example", TC_T0 + 60 * TC_DAY, "refund", NULL), 0);
	assert_int_equal(tally_prune(f->t, TC_T0 + 89 * TC_DAY), 0);
	assert_int_equal(tally_seen(f->t, "p@x.example", &first, &last), 1);
	assert_int_equal(tally_prune(f->t, TC_T0 + 91 * TC_DAY), 0);
	assert_int_equal(tally_seen(f->t, "p@x.example", &first, &last), 0);
	assert_int_equal(tally_seen(f->t, "q@x.example", &first, &last), 1);
	assert_int_equal(count_in(f->t, "q@x.example", TC_T0 + 61 * TC_DAY, "refund"), 1);
}

/* ---- two threads x 500 records: no lost update ------------------------------------------- */

#define TC_THREAD_RECORDS 500

struct tc_worker {
	struct tally *t;
	int ok, failed;
};

static void *tc_worker_main(void *arg)
{
	struct tc_worker *w = arg;
	int i;

	/* A busy store may refuse a record (the daemon counts it and moves on); here each one is
	 * retried a few times so the total is known, and every failure is counted. */
	for (i = 0; i < TC_THREAD_RECORDS; i++) {
		int tries;

		for (tries = 0; tries < 10; tries++) {
			if (tc_record(w->t, "busy@x.example", TC_T0, "complaint", NULL) == 0) {
				w->ok++;
				break;
			}
			w->failed++;
		}
	}
	tally_thread_cleanup();
	return NULL;
}

void tc_test_threads(void **state)
{
	struct tc_fix *f = *state;
	struct tally *second = tc_open_again(f);   /* a second daemon on the same store */
	struct tc_worker w[2] = { { f->t, 0, 0 }, { second, 0, 0 } };
	pthread_t th[2];
	int i;

	assert_non_null(second);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, tc_worker_main, &w[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	tally_close(second);
	/* every reported success is in the store, and nothing else */
	assert_int_equal(count_in(f->t, "busy@x.example", TC_T0, "complaint"), w[0].ok + w[1].ok);
	assert_int_equal(w[0].ok + w[1].ok, 2 * TC_THREAD_RECORDS);
}

void tc_test_bad_input(void **state)
{
	struct tc_fix *f = *state;
	struct tally_counts c;
	const char *badcat[] = { "com,plaint" };
	struct tally_event ev = { .when = TC_T0, .categories = badcat, .n_categories = 1 };
	char longaddr[400];

	assert_int_equal(tc_record(f->t, "", TC_T0, "complaint", &c), -1);
	assert_int_equal(c.n, 0);
	assert_int_equal(tc_record(f->t, NULL, TC_T0, "complaint", NULL), -1);
	assert_int_equal(tc_record(f->t, "a\nb@x", TC_T0, "complaint", NULL), -1);
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	assert_int_equal(tc_record(f->t, longaddr, TC_T0, "complaint", NULL), -1);
	assert_int_equal(tally_record(f->t, "a@x.example", &ev, NULL), -1);
	assert_non_null(strstr(tally_error(), "category"));
	assert_int_equal(tally_record(NULL, "a@x.example", &ev, NULL), -1);
}
