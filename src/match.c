/*
 * match.c - run a ruleset over one message's normalized texts, within bounded time
 *
 * Each rule runs on its target text, cut at target_cap_bytes (at a UTF-8 boundary). PCRE2's
 * match limit stops one explosion but restarts at every start position, so a backtracking rule
 * such as (a+)+$ over 50 KB of "aaaaaaaaaaaaa!" still costs hundreds of ms with JIT. Three bounds
 * work together (RELIABILITY R4.1-R4.3):
 *
 *  1. the PCRE2 match/depth/heap limits, per start position (a limit error is a rule timeout:
 *     recorded in limit_rules, counted, logged with the rule's file:line, never "no match");
 *  2. a per-rule time budget (lim->rule_budget_ms, default deadline/10 = 5 ms), enforced by
 *     matching in WINDOWS: pcre2_match() is called on growing prefixes of the text with
 *     PCRE2_PARTIAL_HARD. A complete match in a window is exactly the match a single call would
 *     find (hard partial returns PARTIAL as soon as any attempt touches the window's end, so a
 *     complete result never depended on the text beyond it); PARTIAL gives the start of the
 *     leftmost attempt that needs more text, and the next call resumes there with a longer
 *     window; NOMATCH means no match starts in the window, and the next call starts at its end
 *     (the subject pointer stays at the text start, so lookbehind and \b see earlier text; \G is
 *     refused at load). Between calls the clock is read: a rule over its budget stops and is
 *     recorded like a limit hit. Window sizes: the first is 64 bytes (16 for the interpreter);
 *     then, from the measured cost of the start positions known to have failed, the next window
 *     is what one MATCH_SLICE_US (1 ms) covers - an ordinary rule takes the rest of a 50 KB text
 *     in its second call, a backtracking one advances a few dozen bytes per slice. A partial
 *     result at the window's own start measures nothing (it is often instant), so the window
 *     only doubles then. Overshoot past a budget is one call: about a slice, at worst the
 *     window x the cost of one start position at the match limit (~130 us JIT, ~1.1 ms
 *     interpreter at 100,000).
 *  Budgets and the deadline are read on the monotonic clock, but a stop that comes due is
 *  confirmed with the thread's CPU clock (struct budget): time spent preempted on a loaded
 *  host does not stop a rule, so verdicts do not depend on load; a hard wall limit of
 *  MATCH_HARD_FACTOR spans still bounds the latency.
 *  3. a deadline for the whole phase (lim->deadline_ms), checked between rules and windows;
 *     rules not run are counted in rules_skipped.
 *  Measured (tests/unit/test_match.c, 2 vCPU, idle): the ruleset with (a+)+$ and (\w+\s?)*$
 *  plus ordinary rules over 70 KB of "aaaaaaaaaaaaa!" (cut at the 50 KB cap) runs its whole
 *  phase in ~10 ms with JIT and ~11 ms with the interpreter: each ReDoS rule stops at its 5 ms
 *  budget; the other rules run and hit. (Uncapped and unwindowed it is ~400 ms JIT, seconds
 *  interpreted: with PCRE2_PARTIAL_HARD the JIT costs ~6-13 us per start position here.)
 *
 * Prefilter: before the rules run, each target text is scanned once for the anchors of all
 * rules of that target (rules_anchors.c: literal strings one of which every match of the rule
 * contains, found with one Aho-Corasick automaton per target); a rule none of whose anchors
 * occurs in the capped text cannot match and is skipped (counted in rules_prefiltered). Rules
 * without anchors always run. Header rules look for their anchors in each header value. The
 * test runs the dev corpus with and without it and requires identical hits.
 * A lead rule (every match starts with one of its anchors; rules_anchors.c, LEADS) is not
 * searched at all: its anchored code is tried at each place the scan found a lead, in order
 * (match_leads), each try bounded by the match limits and the budget read between tries. On the
 * bench's big mails this cut matching by a third; with 1,000 generated rules by 60%.
 *
 * Per-thread state (match data, match context with the limits, a 32 KiB -> 1 MiB JIT stack, the
 * prefilter's scratch) lives behind a pthread_key_t with a destructor; no lock is taken while
 * matching.
 *
 * OWNERSHIP  match_run() fills a caller-owned struct match_result, which must be zeroed before
 *            its first use; later calls reuse its arrays. Free with match_result_free().
 * DIAGNOSTICS  A limit or budget stop is logged (warning) with the queue id, rule, file:line and
 *              counted in STATS_RULE_LIMIT_HITS; deadline stops in STATS_RULE_DEADLINE_HITS and
 *              STATS_RULES_SKIPPED. Returns -1 only when out of memory.
 */
#include "match.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MATCH_WHOLE_TEXT_JIT 1024     /* bytes: a text this short is matched in one call */
#define MATCH_FIRST_WINDOW_JIT 64     /* bytes; ordinary rules take the rest in one more call */
#define MATCH_FIRST_WINDOW_INTERP 16  /* the interpreter is about ten times slower per step */
#define MATCH_MIN_WINDOW 8
#define MATCH_SLICE_US 1000           /* target duration of one windowed call */
#define MATCH_JIT_STACK_START ((size_t)32 * 1024)
#define MATCH_JIT_STACK_MAX ((size_t)1024 * 1024)
#define MATCH_LEAD_CLOCK_EVERY 8      /* tries at the leads between two clock reads */
#define MATCH_LEAD_MIN_GAP 16         /* bytes per lead place below which a search is cheaper */
#define MATCH_BUDGET_STOP (-10000)    /* not a PCRE2 code: the rule's time budget ran out */

struct match_tls {
	pcre2_match_data *md;
	pcre2_match_context *mc;
	pcre2_jit_stack *js;
	struct rules_scan scan;    /* prefilter scratch */
	unsigned char *ok;         /* per rule: an anchor of it was found in its text */
	size_t ok_cap;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void tls_free(void *p)
{
	struct match_tls *t = p;

	if (!t)
		return;
	pcre2_match_data_free(t->md);
	pcre2_match_context_free(t->mc);
	pcre2_jit_stack_free(t->js);
	rules_scan_free(&t->scan);
	free(t->ok);
	free(t);
}

static void tls_init_key(void)
{
	tls_key_ok = pthread_key_create(&tls_key, tls_free) == 0;
}

static struct match_tls *tls_get(void)
{
	struct match_tls *t;

	pthread_once(&tls_once, tls_init_key);
	if (!tls_key_ok)
		return NULL;
	t = pthread_getspecific(tls_key);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->md = pcre2_match_data_create(1, NULL);
	t->mc = pcre2_match_context_create(NULL);
	t->js = pcre2_jit_stack_create(MATCH_JIT_STACK_START, MATCH_JIT_STACK_MAX, NULL);
	if (!t->md || !t->mc || !t->js || pthread_setspecific(tls_key, t) != 0) {
		tls_free(t);
		return NULL;
	}
	pcre2_jit_stack_assign(t->mc, NULL, t->js);
	return t;
}

void match_thread_cleanup(void)
{
	pthread_once(&tls_once, tls_init_key);
	if (!tls_key_ok)
		return;
	tls_free(pthread_getspecific(tls_key));
	pthread_setspecific(tls_key, NULL);
}

void match_limits_from_config(const struct config *cfg, struct match_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->match_limit = cfg->rules.match_limit;
	lim->depth_limit = cfg->rules.depth_limit;
	lim->heap_limit_kib = cfg->rules.heap_limit_kib;
	lim->target_cap_bytes = cfg->rules.target_cap_bytes;
	lim->deadline_ms = cfg->rules.deadline_ms;
	lim->rule_budget_ms = cfg->rules.deadline_ms / 10 > 0 ? cfg->rules.deadline_ms / 10 : 1;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* This thread's CPU time. A system call (~1 us), so it is read only when a wall-clock stop
 * comes due, never on the fast path. */
static long long cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * A time budget checked against the cheap monotonic clock. Wall time also counts the time the
 * thread sat preempted, which on a loaded host (16 connections on 2 cores) would stop ordinary
 * rules at random and make verdicts depend on load. So a wall stop is a suspicion, confirmed
 * with the thread's CPU clock: if since the last look the thread ran for at least half of the
 * wall time, the work is really that slow and it stops; otherwise it was preempted and gets
 * another span. A hard wall limit (MATCH_HARD_FACTOR spans) bounds the latency whatever happens.
 */
#define MATCH_HARD_FACTOR 8

struct budget {
	long long stop_us;          /* wall time of the next look */
	long long hard_us;          /* wall time after which it stops regardless */
	long long span_us;
	long long cpu_mark_us;      /* CPU time at the last look (0: none yet) */
	long long wall_mark_us;
};

static void budget_init(struct budget *b, long long now, long long span_us, long long hard_cap_us,
			bool mark_cpu)
{
	b->span_us = span_us;
	b->stop_us = now + span_us;
	b->hard_us = now + span_us * MATCH_HARD_FACTOR;
	if (hard_cap_us && b->hard_us > hard_cap_us)
		b->hard_us = hard_cap_us;
	if (b->stop_us > b->hard_us)
		b->stop_us = b->hard_us;
	b->cpu_mark_us = mark_cpu ? cpu_us() : 0;
	b->wall_mark_us = now;
}

/* Called when now >= b->stop_us: true when the budget is really spent. */
static bool budget_spent(struct budget *b, long long now)
{
	long long cpu;

	if (now >= b->hard_us)
		return true;
	cpu = cpu_us();
	if (b->cpu_mark_us && cpu - b->cpu_mark_us >= (now - b->wall_mark_us) / 2)
		return true;
	b->cpu_mark_us = cpu;
	b->wall_mark_us = now;
	b->stop_us = now + b->span_us < b->hard_us ? now + b->span_us : b->hard_us;
	return false;
}

/* Largest n' <= n that does not split a UTF-8 sequence (looks back at most 3 bytes). */
static size_t utf8_floor(const char *s, size_t n)
{
	size_t k = n;

	while (k > 0 && n - k < 3 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return ((unsigned char)s[k] & 0xC0) == 0x80 ? n : k;
}

/* Smallest n' >= n that does not split a UTF-8 sequence, at most len. */
static size_t utf8_ceil(const char *s, size_t n, size_t len)
{
	while (n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
		n++;
	return n;
}

static bool is_limit_error(int rc)
{
	return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	       rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT ||
	       rc == MATCH_BUDGET_STOP;
}

/* One rule on one text, windowed (see the file comment). Returns 1 on a match (offsets in the match data),
 * 0 for no match, or a negative PCRE2 error / MATCH_BUDGET_STOP. */
static int match_windowed(const struct rule *r, const char *s, size_t len, struct match_tls *t,
			  struct budget *bud, size_t fixed_win)
{
	size_t from = 0, reach = 0, win = fixed_win ? fixed_win
		: r->jit && len <= MATCH_WHOLE_TEXT_JIT ? len
		: !r->jit_partial ? MATCH_FIRST_WINDOW_INTERP : MATCH_FIRST_WINDOW_JIT;
	long long nm_us = 0;      /* time spent on, and number of, start positions known to */
	size_t nm_bytes = 0;      /* fail: only those measure the rule's speed (see below) */

	for (;;) {
		size_t end = len - reach <= win ? len : utf8_ceil(s, reach + win, len);
		uint32_t opts = end < len ? PCRE2_PARTIAL_HARD : 0;
		long long t0 = now_us(), dt, left;
		int rc = pcre2_match(r->code, (PCRE2_SPTR)s, end, from, opts, t->md, t->mc);
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
		size_t scanned = end - from, by_rate;

		if (rc >= 0)          /* 0: ovector too small for the captures, still a match */
			return 1;
		if (rc != PCRE2_ERROR_PARTIAL && (rc != PCRE2_ERROR_NOMATCH || end == len))
			return rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
		dt = now_us() - t0;
		left = bud->stop_us - (t0 + dt);
		if (left <= 0) {
			if (budget_spent(bud, t0 + dt))
				return MATCH_BUDGET_STOP;
			left = bud->stop_us - (t0 + dt);
		}
		reach = end;
		if (fixed_win) {
			from = rc == PCRE2_ERROR_PARTIAL ? ov[0] : end;
			continue;
		}
		if (left > MATCH_SLICE_US)
			left = MATCH_SLICE_US;
		/* Positions before a partial match's start failed for certain: they measure the
		 * speed too (pessimistically, as the partial attempt's time is counted with them). */
		if (rc == PCRE2_ERROR_NOMATCH || ov[0] > from) {
			nm_us += dt;
			nm_bytes += rc == PCRE2_ERROR_NOMATCH ? scanned : ov[0] - from;
		}
		/* Bytes one slice covers at the speed measured so far (unknown: unbounded). */
		by_rate = !nm_bytes ? SIZE_MAX : nm_us <= 0 ? len
			: (size_t)((double)nm_bytes * (double)left / (double)nm_us);
		if (rc == PCRE2_ERROR_PARTIAL && ov[0] == from) {
			/* A partial match where the window began is often instant (the attempt ran
			 * into the window's end) and measures nothing: only double. */
			win = win * 2 < by_rate ? win * 2 : by_rate;
		} else if (rc == PCRE2_ERROR_PARTIAL) {
			from = ov[0];
			win = by_rate;
		} else {
			from = end;
			win = by_rate;
		}
		if (win < MATCH_MIN_WINDOW)
			win = MATCH_MIN_WINDOW;
	}
}

static int push_hit(struct match_result *res, const struct match_hit *h)
{
	if (res->n_hits == res->cap_hits) {
		size_t ncap = res->cap_hits ? res->cap_hits * 2 : 16;
		struct match_hit *nv = realloc(res->hits, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		res->hits = nv;
		res->cap_hits = ncap;
	}
	res->hits[res->n_hits++] = *h;
	return 0;
}

static int push_limit(struct match_result *res, size_t rule)
{
	if (res->n_limit_rules == res->cap_limit_rules) {
		size_t ncap = res->cap_limit_rules ? res->cap_limit_rules * 2 : 8;
		size_t *nv = realloc(res->limit_rules, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		res->limit_rules = nv;
		res->cap_limit_rules = ncap;
	}
	res->limit_rules[res->n_limit_rules++] = rule;
	return 0;
}

static const char *limit_name(int rc)
{
	switch (rc) {
	case PCRE2_ERROR_MATCHLIMIT: return "the PCRE2 match limit";
	case PCRE2_ERROR_DEPTHLIMIT: return "the PCRE2 depth limit";
	case PCRE2_ERROR_HEAPLIMIT: return "the PCRE2 heap limit";
	case PCRE2_ERROR_JIT_STACKLIMIT: return "the JIT stack limit";
	case MATCH_BUDGET_STOP: return "its time budget";
	default: return "an error";
	}
}

/* Per-call state shared by the helpers of match_run. */
struct run {
	const struct ruleset *rs;
	const struct match_subjects *subj;
	const struct match_limits *lim;
	struct match_result *res;
	struct match_tls *t;
	struct budget phase;       /* the whole rule phase */
	bool has_deadline;
	int oom;
};

/*
 * A lead rule (rules_anchors.c, LEADS): every match starts where one of its anchors occurs, and
 * the prefilter's scan recorded those places. So instead of a search through the whole text,
 * the rule's anchored code is tried at each place, in order: the first that matches is the
 * match a search would have found (a search tries the same start positions in the same order,
 * and the others cannot match). Each try is bounded by the match limits, and the budget is
 * checked between tries, as between windows. Returns as match_windowed does; the match data
 * holds the match of the anchored code, whose offsets are those of the whole text.
 */
static int match_leads(struct run *st, size_t i, const char *s, size_t len, struct budget *bud)
{
	const struct rule *r = &st->rs->rules[i];
	struct match_tls *t = st->t;
	const uint32_t *pos;
	size_t n;

	if (rules_scan_leads(&t->scan, i, &pos, &n) < 0) {
		st->oom = 1;
		return match_windowed(r, s, len, t, bud, 0);
	}
	/* Places denser than one per MATCH_LEAD_MIN_GAP bytes (digits in a log) cost more as
	 * tries than one JIT search: search, when the rule has the JIT code for it. */
	if (r->jit_partial && n > len / MATCH_LEAD_MIN_GAP)
		return match_windowed(r, s, len, t, bud, 0);
	for (size_t k = 0; k < n && pos[k] < len; k++) {
		int rc = pcre2_match(r->lead_code, (PCRE2_SPTR)s, len, pos[k], 0, t->md, t->mc);
		long long now;

		if (rc >= 0)
			return 1;
		if (rc != PCRE2_ERROR_NOMATCH)
			return rc;
		/* The clock every MATCH_LEAD_CLOCK_EVERY tries (a try is ~0.1 us, a clock read a
		 * quarter of that): the overshoot is that many tries at the match limit at worst. */
		if ((k + 1) % MATCH_LEAD_CLOCK_EVERY)
			continue;
		now = now_us();
		if (now >= bud->stop_us && budget_spent(bud, now))
			return MATCH_BUDGET_STOP;
	}
	return 0;
}

/* The length rules see of a text of len bytes: cut at the cap, at a UTF-8 boundary. */
static size_t capped_len(const struct match_limits *lim, const char *s, size_t len)
{
	return lim->target_cap_bytes && len > lim->target_cap_bytes
		? utf8_floor(s, lim->target_cap_bytes) : len;
}

/* Run rule i on one text. Returns 1 hit (recorded), 0 none, 2 skipped by the prefilter,
 * -1 stopped (recorded). */
static int run_text(struct run *st, size_t i, enum rules_target tgt, int hdr, const char *s,
		    size_t len, struct budget *bud)
{
	const struct rule *r = &st->rs->rules[i];
	int rc;

	if (!s) {
		s = "";
		len = 0;
	}
	if (capped_len(st->lim, s, len) < len) {
		len = capped_len(st->lim, s, len);
		st->res->cap_hit = true;
	}
	if (r->n_anchors && !st->lim->no_prefilter &&
	    (tgt == RULES_TARGET_HEADER ? !rules_anchors_in(r, s, len) : !st->t->ok[i]))
		return 2;
	if (r->lead && r->lead_code && tgt != RULES_TARGET_HEADER && !st->lim->no_prefilter &&
	    !st->lim->window_bytes && st->t->ok[i] == 1)
		rc = match_leads(st, i, s, len, bud);
	else
		rc = match_windowed(r, s, len, st->t, bud, st->lim->window_bytes);
	if (rc == 1) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->t->md);
		struct match_hit h = { .rule = i, .target = tgt, .offset = ov[0],
				       .length = ov[1] >= ov[0] ? ov[1] - ov[0] : 0,
				       .header_index = hdr };

		if (push_hit(st->res, &h) < 0)
			st->oom = 1;
		return 1;
	}
	if (rc == 0)
		return 0;
	if (push_limit(st->res, i) < 0)
		st->oom = 1;
	stats_inc(STATS_RULE_LIMIT_HITS);
	if (is_limit_error(rc)) {
		log_warn("%s: rule %s (%s:%d) stopped by %s on the %s text (%zu bytes): not matched",
			 st->subj->queue_id ? st->subj->queue_id : "-", r->name, r->file, r->line,
			 limit_name(rc), rules_target_name(tgt), len);
	} else {
		PCRE2_UCHAR msg[128];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		log_warn("%s: rule %s (%s:%d) failed on the %s text: %s",
			 st->subj->queue_id ? st->subj->queue_id : "-", r->name, r->file, r->line,
			 rules_target_name(tgt), (const char *)msg);
	}
	return -1;
}

static void run_rule(struct run *st, size_t i, long long now)
{
	const struct rule *r = &st->rs->rules[i];
	const struct match_subjects *subj = st->subj;
	struct budget bud;

	if (st->lim->rule_budget_ms > 0)
		budget_init(&bud, now, (long long)st->lim->rule_budget_ms * 1000,
			    st->has_deadline ? st->phase.hard_us : 0, false);
	else if (st->has_deadline)
		bud = st->phase;
	else
		budget_init(&bud, now, 3600LL * 1000000, 0, false);
	if (r->target != RULES_TARGET_HEADER) {
		if (run_text(st, i, r->target, -1, subj->text[r->target], subj->len[r->target],
			     &bud) == 2)
			st->res->rules_prefiltered++;
		return;
	}
	for (size_t h = 0; h < subj->n_headers; h++) {
		if (strcasecmp(subj->header_names[h], r->header_name) != 0)
			continue;
		int rc = run_text(st, i, r->target, (int)h, subj->header_values[h],
				  subj->header_values[h] ? strlen(subj->header_values[h]) : 0, &bud);

		if (rc == 1 || rc == -1)
			return;
	}
}

/* Scan each target text once for the anchors of all rules of that target (rules_anchors.c):
 * afterwards t->ok[i] says whether rule i can match at all. */
static int prefilter_scan(struct run *st)
{
	struct match_tls *t = st->t;
	size_t n = st->rs->n_rules;

	if (t->ok_cap < n) {
		unsigned char *ok = malloc(n);

		if (!ok)
			return -1;
		free(t->ok);
		t->ok = ok;
		t->ok_cap = n;
	}
	if (n)
		memset(t->ok, 0, n);   /* t->ok is still NULL for an empty ruleset */
	if (rules_scan_begin(&t->scan, n) < 0)
		return -1;
	for (int tg = 0; tg < RULES_TARGET_COUNT; tg++) {
		const char *s = st->subj->text[tg];
		size_t len = s ? capped_len(st->lim, s, st->subj->len[tg]) : 0;

		if (tg != RULES_TARGET_HEADER &&
		    rules_prefilter_scan(st->rs, (enum rules_target)tg, s ? s : "", len, &t->scan,
					 t->ok) < 0)
			return -1;
	}
	return 0;
}

int match_run(const struct ruleset *rs, const struct match_subjects *subj,
	      const struct match_limits *lim, struct match_result *res)
{
	struct run st = { .rs = rs, .subj = subj, .lim = lim, .res = res };
	long long start = now_us();
	size_t i;

	res->n_hits = 0;
	res->n_limit_rules = 0;
	res->rules_run = res->rules_skipped = res->rules_prefiltered = 0;
	res->deadline_hit = res->cap_hit = false;
	res->elapsed_us = 0;
	if (!rs)
		return 0;
	st.t = tls_get();
	if (!st.t)
		return -1;
	pcre2_set_match_limit(st.t->mc, (uint32_t)lim->match_limit);
	pcre2_set_depth_limit(st.t->mc, (uint32_t)lim->depth_limit);
	pcre2_set_heap_limit(st.t->mc, (uint32_t)lim->heap_limit_kib);
	if (!lim->no_prefilter && prefilter_scan(&st) < 0)
		return -1;
	if (lim->deadline_ms > 0) {
		/* One CPU-clock read per message marks the phase's start. */
		budget_init(&st.phase, start, lim->deadline_ms * 1000LL, 0, true);
		st.has_deadline = true;
	}
	for (i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];
		long long now;

		/* A rule the prefilter rules out costs nothing: not even a clock read (with 1,000
		 * rules those were a tenth of the matching time). It counts as run and prefiltered,
		 * and is never "skipped" by the deadline, since it had nothing to do. */
		if (r->n_anchors && !lim->no_prefilter && r->target != RULES_TARGET_HEADER &&
		    !st.t->ok[i]) {
			res->rules_run++;
			res->rules_prefiltered++;
			continue;
		}
		now = now_us();
		if (st.has_deadline && now >= st.phase.stop_us && budget_spent(&st.phase, now))
			break;
		run_rule(&st, i, now);
		res->rules_run++;
	}
	if (i < rs->n_rules) {
		res->deadline_hit = true;
		res->rules_skipped = rs->n_rules - i;
		stats_inc(STATS_RULE_DEADLINE_HITS);
		stats_add(STATS_RULES_SKIPPED, res->rules_skipped);
		log_warn("%s: rule phase deadline (%ld ms) passed: %zu of %zu rules not run",
			 subj->queue_id ? subj->queue_id : "-", lim->deadline_ms, res->rules_skipped,
			 rs->n_rules);
	}
	res->elapsed_us = (long)(now_us() - start);
	return st.oom ? -1 : 0;
}

void match_result_free(struct match_result *res)
{
	if (!res)
		return;
	free(res->hits);
	free(res->limit_rules);
	memset(res, 0, sizeof(*res));
}
