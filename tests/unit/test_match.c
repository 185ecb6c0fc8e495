/*
 * test_match.c - matching within limits: targets, caps, limit hits, the ReDoS time bound,
 * windowed matching equal to one plain pcre2_match, JIT and interpreter, threads, prefilter.
 *
 * AMENDS_TEST_SLOW=1 (valgrind, sanitizers) relaxes the time assertions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "match.h"
#include "rules.h"
#include "config.h"
#include "diag.h"
#include "log.h"
#include "normalize.h"
#include "stats.h"
#include "util.h"


/* The budgets are confirmed on the thread's CPU clock, so the bounds are asserted on it too:
 * time spent preempted by other jobs (make -j2 check, a loaded CI) must not fail the test. */
static long long thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct config *cfg;
static bool slow;
static bool valgrind;

/* PCRE2's JIT reads a few bytes past the subject in aligned 16-byte loads (harmless, within a
 * page), which memcheck reports: under valgrind the rules are compiled for the interpreter. */
static bool under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") != NULL;
}

static int setup(void **state)
{
	struct diag d;

	diag_init(&d);
	/* the rules here are meant to backtrack: contain them (the default refuses to load them) */
	cfg = config_load_string("rules = { unsafe_rules = \"contain\"; };", &d);
	diag_free(&d);
	valgrind = under_valgrind();
	slow = valgrind || getenv("AMENDS_TEST_SLOW") != NULL;
	if (valgrind)
		rules_set_jit(false);
	log_set_level(LOG_LEVEL_ERR);     /* limit hits are logged as warnings: expected here */
	return cfg ? 0 : -1;
}

static int teardown(void **state)
{
	config_unref(cfg);
	match_thread_cleanup();
	return 0;
}

static struct ruleset *load(const char *text)
{
	struct diag d;
	struct ruleset *rs;

	diag_init(&d);
	rs = rules_load_buffer("t.rules", text, strlen(text), cfg, &d);
	if (!rs)
		fail_msg("rules do not load: %s", d.n ? d.v[0].text : "?");
	diag_free(&d);
	return rs;
}

static const struct match_hit *hit_of(const struct ruleset *rs, const struct match_result *mr,
				      const char *name)
{
	for (size_t i = 0; i < mr->n_hits; i++)
		if (!strcmp(rs->rules[mr->hits[i].rule].name, name))
			return &mr->hits[i];
	return NULL;
}

static bool limited(const struct ruleset *rs, const struct match_result *mr, const char *name)
{
	for (size_t i = 0; i < mr->n_limit_rules; i++)
		if (!strcmp(rs->rules[mr->limit_rules[i]].name, name))
			return true;
	return false;
}

/* Limits without a clock: results that must be equal may not depend on the machine's load. */
static void exact_limits(struct match_limits *lim)
{
	match_limits_from_config(cfg, lim);
	lim->deadline_ms = 0;
	lim->rule_budget_ms = 0;
}

/* ---- targets, offsets, one hit per rule --------------------------------------------------- */

static void test_targets(void **state)
{
	struct ruleset *rs = load(
		"rule BODY\ncategory refund\nmatch /money back/\n"
		"rule SUBJ\ncategory cancellation\ntarget subject\nmatch /cancel/\n"
		"rule QUOT\ncategory complaint\ntarget quoted\nmatch /worst/\n"
		"rule FROM\ncategory abuse\ntarget from\nmatch /angry@/\n"
		"rule HDR\ncategory complaint\ntarget header:X-Priority\nmatch /^1$/\n"
		"rule HDR2\ncategory complaint\ntarget header:x-mailer\nmatch /outlook/\n"
		"rule NOT_IN_BODY\ncategory complaint\nmatch /worst/\n"
		"rule TWICE\ncategory refund\nmatch /money/\n");
	static const char *const names[] = { "X-Priority", "x-priority", "X-MAILER", "Received" };
	static const char *const values[] = { "3", "1", "microsoft outlook 16", "from x" };
	struct match_subjects s = { .n_headers = 0 };
	struct match_limits lim;
	struct match_result mr = { 0 };
	const struct match_hit *h;

	s.text[RULES_TARGET_BODY] = "i want my money back, money now";
	s.text[RULES_TARGET_SUBJECT] = "please cancel";
	s.text[RULES_TARGET_QUOTED] = "> the worst";
	s.text[RULES_TARGET_FROM] = "joe <angry@example.com>";
	for (int t = 0; t < RULES_TARGET_HEADER; t++)
		s.len[t] = strlen(s.text[t]);
	s.header_names = names;
	s.header_values = values;
	s.n_headers = 4;
	exact_limits(&lim);
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	assert_int_equal(mr.n_hits, 7);
	assert_int_equal(mr.rules_run, 8);
	h = hit_of(rs, &mr, "BODY");
	assert_non_null(h);
	assert_int_equal(h->target, RULES_TARGET_BODY);
	assert_int_equal(h->offset, 10);
	assert_int_equal(h->length, 10);
	assert_int_equal(h->header_index, -1);
	h = hit_of(rs, &mr, "TWICE");            /* the first match only */
	assert_int_equal(h->offset, 10);
	assert_int_equal(hit_of(rs, &mr, "SUBJ")->target, RULES_TARGET_SUBJECT);
	assert_int_equal(hit_of(rs, &mr, "QUOT")->offset, 6);
	assert_int_equal(hit_of(rs, &mr, "FROM")->offset, 5);
	h = hit_of(rs, &mr, "HDR");              /* the second X-Priority header, any case */
	assert_int_equal(h->header_index, 1);
	assert_int_equal(h->target, RULES_TARGET_HEADER);
	assert_int_equal(hit_of(rs, &mr, "HDR2")->header_index, 2);
	assert_null(hit_of(rs, &mr, "NOT_IN_BODY"));
	for (size_t i = 0; i < mr.n_hits; i++)
		for (size_t j = i + 1; j < mr.n_hits; j++)
			assert_int_not_equal(mr.hits[i].rule, mr.hits[j].rule);
	/* absent texts: nothing matches, nothing breaks */
	memset(&s, 0, sizeof(s));
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	assert_int_equal(mr.n_hits, 0);
	assert_int_equal(match_run(NULL, &s, &lim, &mr), 0);
	match_result_free(&mr);
	rules_unref(rs);
}

static void test_cap(void **state)
{
	struct ruleset *rs = load("rule END\ncategory refund\nmatch /zz/\n"
				  "rule ALEF\ncategory refund\nmatch /\xd8\xa7$/\n");
	struct match_subjects s = { .n_headers = 0 };
	struct match_limits lim;
	struct match_result mr = { 0 };
	char text[64];

	/* "aaaa\xd8\xa7\xd8\xa7...zz": a cap of 7 falls inside the second alef */
	strcpy(text, "aaaa\xd8\xa7\xd8\xa7 zz");
	s.text[RULES_TARGET_BODY] = text;
	s.len[RULES_TARGET_BODY] = strlen(text);
	exact_limits(&lim);
	lim.target_cap_bytes = 7;
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	assert_true(mr.cap_hit);
	assert_null(hit_of(rs, &mr, "END"));
	/* cut at 6 (a character boundary), so the first alef ends the text */
	assert_non_null(hit_of(rs, &mr, "ALEF"));
	assert_int_equal(hit_of(rs, &mr, "ALEF")->offset, 4);
	lim.target_cap_bytes = 0;
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	assert_false(mr.cap_hit);
	assert_non_null(hit_of(rs, &mr, "END"));
	assert_null(hit_of(rs, &mr, "ALEF"));
	match_result_free(&mr);
	rules_unref(rs);
}

/* ---- limits and the time bound ------------------------------------------------------------ */

static const char redos_rules[] =
	"rule REDOS1\ncategory abuse\nmatch /(a+)+$/\n"
	"rule REDOS2\ncategory abuse\nmatch /(\\w+\\s?)*$/\n"
	"rule BODY_HIT\ncategory complaint\nmatch /aaaa!aaa/\n"
	"rule SUBJ_HIT\ncategory refund\ntarget subject\nmatch /refund/\n"
	"rule LATE_HIT\ncategory cancellation\nmatch /!a{13}!/\n";

static char *aaaa_text(size_t bytes, size_t *len)
{
	static const char unit[] = "aaaaaaaaaaaaa!";
	char *s = malloc(bytes + 1);

	for (size_t i = 0; i < bytes; i++)
		s[i] = unit[i % (sizeof(unit) - 1)];
	s[bytes] = '\0';
	*len = bytes;
	return s;
}

static void test_limit_recorded(void **state)
{
	struct ruleset *rs = load(redos_rules);
	struct match_subjects s = { .n_headers = 0 };
	struct match_limits lim;
	struct match_result mr = { 0 };
	uint64_t before = stats_get(STATS_RULE_LIMIT_HITS);
	long long t0;
	const char *text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa!";   /* a x 28 + ! (R4.2) */

	s.text[RULES_TARGET_BODY] = text;
	s.len[RULES_TARGET_BODY] = strlen(text);
	s.queue_id = "TESTQ1";
	match_limits_from_config(cfg, &lim);
	if (slow)
		exact_limits(&lim);
	t0 = thread_cpu_ms();
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	if (!slow)
		assert_true(thread_cpu_ms() - t0 <= 5 + 1);
	assert_true(limited(rs, &mr, "REDOS1"));
	assert_null(hit_of(rs, &mr, "REDOS1"));
	assert_true(stats_get(STATS_RULE_LIMIT_HITS) > before);
	assert_int_equal(stats_get(STATS_RULE_LIMIT_HITS) - before, mr.n_limit_rules);
	assert_int_equal(mr.rules_skipped, 0);
	match_result_free(&mr);
	rules_unref(rs);
}

/* R4.3: 70 KB of (a x 13 + !) through the ReDoS rules: the whole phase <= 50 ms, others hit. */
static void redos_bound(bool jit)
{
	struct ruleset *rs;
	struct match_subjects s = { .n_headers = 0 };
	struct match_limits lim;
	struct match_result mr = { 0 };
	size_t len;
	char *text = aaaa_text(70 * 1000, &len);
	long long t0, dt;

	rules_set_jit(jit);
	rs = load(redos_rules);
	rules_set_jit(!valgrind);
	for (size_t i = 0; i < rs->n_rules; i++)
		assert_int_equal(rs->rules[i].jit, jit);
	s.text[RULES_TARGET_BODY] = text;
	s.len[RULES_TARGET_BODY] = len;
	s.text[RULES_TARGET_SUBJECT] = "refund now";
	s.len[RULES_TARGET_SUBJECT] = 10;
	match_limits_from_config(cfg, &lim);
	if (slow) {                 /* same work, more time: the hits can still be checked */
		lim.deadline_ms *= 50;
		lim.rule_budget_ms *= 50;
	}
	t0 = thread_cpu_ms();
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	dt = thread_cpu_ms() - t0;
	fprintf(stderr, "# ReDoS phase (%s): %lld ms CPU, elapsed_us (wall) %ld, stopped %zu, skipped %zu\n",
		jit ? "JIT" : "interpreter", dt, mr.elapsed_us, mr.n_limit_rules, mr.rules_skipped);
	if (!slow)
		assert_true(dt <= 50);
	assert_non_null(hit_of(rs, &mr, "BODY_HIT"));
	assert_non_null(hit_of(rs, &mr, "SUBJ_HIT"));
	assert_non_null(hit_of(rs, &mr, "LATE_HIT"));
	/* With the 50x budgets of slow mode a ReDoS rule may run to the end of the capped text
	 * (and match its trailing a's): only a normal run proves that the budget stops it. */
	if (!slow) {
		assert_true(limited(rs, &mr, "REDOS1"));
		assert_true(limited(rs, &mr, "REDOS2"));
	}
	assert_true(mr.cap_hit);
	assert_int_equal(mr.rules_skipped, 0);
	match_result_free(&mr);
	rules_unref(rs);
	free(text);
}

static void test_redos_bound_jit(void **state)
{
	if (valgrind)
		skip();
	redos_bound(true);
}

static void test_redos_bound_interpreter(void **state)
{
	redos_bound(false);
}

static void test_deadline_skips(void **state)
{
	struct strbuf b;
	struct ruleset *rs;
	struct match_subjects s = { .n_headers = 0 };
	struct match_limits lim;
	struct match_result mr = { 0 };
	size_t len;
	char *text = aaaa_text(50 * 1000, &len);
	uint64_t before = stats_get(STATS_RULES_SKIPPED);

	strbuf_init(&b, 0);
	for (int i = 0; i < 40; i++)
		strbuf_printf(&b, "rule R%d\ncategory abuse\nmatch /(a+)+$/\n", i);
	rs = load(b.s);
	s.text[RULES_TARGET_BODY] = text;
	s.len[RULES_TARGET_BODY] = len;
	match_limits_from_config(cfg, &lim);
	lim.deadline_ms = 20;
	lim.rule_budget_ms = 2;
	long long c0 = thread_cpu_ms();
	assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
	long long cpu = thread_cpu_ms() - c0;
	assert_true(mr.deadline_hit);
	assert_true(mr.rules_skipped > 0);
	assert_int_equal(mr.rules_skipped + mr.rules_run, 40);
	assert_int_equal(stats_get(STATS_RULES_SKIPPED) - before, mr.rules_skipped);
	/* 20 ms + one slice; the slack is for a loaded host (over 40 once, with six CPU-bound
	 * jobs on two cores). Without the deadline these 40 rules take seconds. */
	if (!slow)
		assert_true(cpu <= 80);
	match_result_free(&mr);
	rules_unref(rs);
	strbuf_free(&b);
	free(text);
}

/* ---- windowed matching, and tries at the leads, give exactly what one pcre2_match gives -- */

static void test_windows_equal_plain(void **state)
{
	static const char *const pats[] = {
		"/money back/", "/a+b/", "/a+$/", "/\\bword\\b/", "/(?<=x)yz/", "/x.*?z/s", "/x.*z/",
		"/\\d{3,}/", "/\xd9\xbe\xdb\x8c\xd8\xb3\xdb\x92/", "/(?:ab|abc)d/", "/z$/", "/^a/",
		"/^b/m", "/\\w+ \\w+!$/", "/(?=.*q)a/", "/b\\B/",
		/* lead rules (their matches start at an anchor): tried only there */
		"/(?:my\\s+)?money(?: back)?/", "/(?<=a )sword/", "/\\bwor(?:d|ld)s?\\b/",
		"/(?:aaa|xaa)a*!?/", "/^hel+o/", "/(?:yz|xyz)\\s*a?xyz/", "/zzz(?=-)/",
		/* word-start leads (rules_anchors.c, WORD START): not tried inside a word */
		"/\\b(?:se|do|_x|9z)\\b/", "/\\b(?:se|do)\\s+it/", "/\\bse\\w*/",
		/* a second required set (ALSO): tried only when both occur */
		"/money\\W+back/", "/\\b(?:my|any)\\s+(?:\\w+\\s+){0,2}?back\\b/", "/hel+o\\W+world/",
	};
	static const char *const texts[] = {
		"i want my money back", "aaaaaaaab", "xaaaa", "a sword word", "xyz axyz",
		"x a\nb z", "x...z...z", "12 345678", "\xd9\xbe\xdb\x8c\xd8\xb3\xdb\x92 \xd9\xbe",
		"abcd", "zzz", "aaa", "a\nb", "hello world!", "qa a", "bb",
		"these do", "se dose do it", "do", "_do xse 1se _x 9z a9z", "caf\xc3\xa9se \xc3\xa9 se",
		"\xd8\xa7se\xd8\xa7\x64o", "(se)", "DO it SE",
	};
	struct strbuf rb;
	struct ruleset *rs;
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);

	strbuf_init(&rb, 0);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(pats); i++)
		strbuf_printf(&rb, "rule P%zu\ncategory refund\nmatch %s\n", i, pats[i]);
	rs = load(rb.s);
	{
		size_t leads = 0;

		for (size_t r = 0; r < rs->n_rules; r++)
			leads += rs->rules[r].lead;
		assert_true(leads >= 8);   /* the lead path is really taken below */
	}
	for (size_t t = 0; t < UTIL_ARRAY_LEN(texts); t++) {
		/* pad so that matches sit across many window edges */
		struct strbuf tb;

		strbuf_init(&tb, 0);
		for (int k = 0; k < 5; k++) {
			strbuf_puts(&tb, texts[t]);
			strbuf_puts(&tb, k % 2 ? " " : "-\xd8\xa7-");
		}
		/* w == 0: the prefilter on, so lead rules are tried at their leads only */
		for (size_t w = 0; w <= 33; w += w ? 4 : 1) {
			struct match_subjects s = { .n_headers = 0 };
			struct match_limits lim;
			struct match_result mr = { 0 };

			s.text[RULES_TARGET_BODY] = tb.s;
			s.len[RULES_TARGET_BODY] = tb.len;
			exact_limits(&lim);
			lim.window_bytes = w;
			lim.no_prefilter = w != 0;
			assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
			for (size_t r = 0; r < rs->n_rules; r++) {
				int rc = pcre2_match(rs->rules[r].code, (PCRE2_SPTR)tb.s, tb.len, 0, 0,
						     md, NULL);
				const struct match_hit *h = hit_of(rs, &mr, rs->rules[r].name);
				PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

				if ((rc >= 0) != (h != NULL) ||
				    (h && (h->offset != ov[0] || h->length != ov[1] - ov[0])))
					fail_msg("pattern %s, text \"%s\", window %zu: plain rc %d "
						 "at %zu+%zu, windowed %s at %zu+%zu",
						 pats[r], tb.s, w, rc, rc >= 0 ? (size_t)ov[0] : 0,
						 rc >= 0 ? (size_t)(ov[1] - ov[0]) : 0,
						 h ? "hit" : "none", h ? h->offset : 0, h ? h->length : 0);
			}
			match_result_free(&mr);
		}
		strbuf_free(&tb);
	}
	pcre2_match_data_free(md);
	rules_unref(rs);
	strbuf_free(&rb);
}

/* What the prefilter's scan says of rule 0 over text: ok (0 not run, 1 run, 2 searched) and
 * the places its leads were recorded at, joined as "3,10" in buf. */
static int scan_rule0(const struct ruleset *rs, const char *text, char *buf, size_t size)
{
	struct rules_scan sc = { 0 };
	unsigned char ok[4] = { 0 };
	const uint32_t *pos;
	size_t n, used = 0;

	assert_true(rs->n_rules <= sizeof(ok));
	assert_int_equal(rules_scan_begin(&sc, rs->n_rules), 0);
	assert_int_equal(rules_prefilter_scan(rs, RULES_TARGET_BODY, text, strlen(text), &sc, ok), 0);
	assert_int_equal(rules_scan_leads(&sc, 0, &pos, &n), 0);
	buf[0] = '\0';
	for (size_t k = 0; k < n; k++)
		used += (size_t)snprintf(buf + used, size - used, "%s%u", k ? "," : "", pos[k]);
	rules_scan_free(&sc);
	return ok[0];
}

/* WORD START and ALSO (rules_anchors.c) save work, so the hit tests pass without them: here
 * the scan itself is looked at. A word-start rule gets no place inside a word (after an ASCII
 * letter, digit or "_"; after a non-ASCII letter it does: \b is PCRE2's to judge there), and a
 * rule with a second required part is not run when that part is absent. */
static void test_prefilter_skips(void **state)
{
	struct ruleset *ws = load("rule W\ncategory refund\nmatch /\\b(?:se|do)\\b/\n");
	struct ruleset *al = load("rule A\ncategory refund\n"
				  "match /\\bfee\\s+(?:\\w+\\s+){0,2}?money\\b/\n");
	char got[256];

	(void)state;
	assert_true(ws->rules[0].lead_word);
	assert_int_equal(scan_rule0(ws, "these do, dose se_x 5se caf\xc3\xa9se (se)", got,
				    sizeof(got)), 1);
	assert_string_equal(got, "6,10,15,29,33");
	assert_int_equal(scan_rule0(ws, "these dose", got, sizeof(got)), 1);
	assert_string_equal(got, "6");
	assert_int_equal(scan_rule0(ws, "thesexdo", got, sizeof(got)), 1);   /* occurs, no place */
	assert_string_equal(got, "");

	assert_int_equal(al->rules[0].n_also, 1);
	assert_string_equal(al->rules[0].also[0], "money");
	assert_int_equal(scan_rule0(al, "the fee was high", got, sizeof(got)), 0);
	assert_int_equal(scan_rule0(al, "the fee and the money", got, sizeof(got)), 1);
	assert_string_equal(got, "4");
	assert_int_equal(scan_rule0(al, "money but no f-e-e", got, sizeof(got)), 0);
	rules_unref(ws);
	rules_unref(al);
}

/* A lead rule whose leads occur in more places than are kept (RULES_LEAD_MAX_POS) is searched
 * instead (in windows: its JIT code is for complete matches only); just under the limit it is
 * tried at its leads. Either way the hit is the one plain pcre2_match finds. */
static void test_lead_places_limit(void **state)
{
	static const int reps[] = { 10, RULES_LEAD_MAX_POS - 10, RULES_LEAD_MAX_POS + 10 };
	struct ruleset *rs = load("rule L\ncategory refund\nmatch /\\bab\\s+xyz/\n");
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);

	(void)state;
	assert_true(rs->rules[0].lead);
	assert_false(rs->rules[0].jit_partial);
	for (size_t k = 0; k < UTIL_ARRAY_LEN(reps); k++) {
		struct strbuf tb;
		struct match_subjects s = { .n_headers = 0 };
		struct match_limits lim;
		struct match_result mr = { 0 };
		const struct match_hit *h;
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

		strbuf_init(&tb, 0);
		for (int i = 0; i < reps[k]; i++)
			strbuf_puts(&tb, "ab ");
		strbuf_puts(&tb, "xyz and more");
		s.text[RULES_TARGET_BODY] = tb.s;
		s.len[RULES_TARGET_BODY] = tb.len;
		exact_limits(&lim);
		lim.target_cap_bytes = 0;
		assert_int_equal(match_run(rs, &s, &lim, &mr), 0);
		assert_int_equal(pcre2_match(rs->rules[0].code, (PCRE2_SPTR)tb.s, tb.len, 0, 0, md,
					     NULL), 1);
		h = hit_of(rs, &mr, "L");
		assert_non_null(h);
		assert_int_equal(h->offset, ov[0]);
		assert_int_equal(h->offset, (size_t)(reps[k] - 1) * 3);
		assert_int_equal(h->length, 6);
		match_result_free(&mr);
		strbuf_free(&tb);
	}
	pcre2_match_data_free(md);
	rules_unref(rs);
}

/* ---- JIT and interpreter agree; threads; a small stack ------------------------------------ */

static const char shared_rules[] =
	"rule EN_REFUND\ncategory refund\nscore 2\nmatch /\\b(?:refund|money back)\\b/\n"
	"rule EN_CANCEL\ncategory cancellation\nmatch /\\bcancel(?:led|ling)?\\b/\n"
	"rule UR_REFUND\ncategory refund\nmatch /\xd9\xbe\xdb\x8c\xd8\xb3\xdb\x92 \xd9\x88\xd8\xa7\xd9\xbe\xd8\xb3/\n"
	"rule SUBJ\ncategory complaint\ntarget subject\nmatch /worst/\n"
	"rule REDOS\ncategory abuse\nmatch /(a+)+$/\n"
	"rule NONE\ncategory abuse\nmatch /idiot/\n";

static char shared_body[4096];

static void fill_subjects(struct match_subjects *s)
{
	memset(s, 0, sizeof(*s));
	s->text[RULES_TARGET_BODY] = shared_body;
	s->len[RULES_TARGET_BODY] = strlen(shared_body);
	s->text[RULES_TARGET_SUBJECT] = "the worst";
	s->len[RULES_TARGET_SUBJECT] = 9;
}

static void make_shared_body(void)
{
	snprintf(shared_body, sizeof(shared_body),
		 "hello, i cancelled yesterday and want a refund. "
		 "\xd9\xbe\xdb\x8c\xd8\xb3\xdb\x92 \xd9\x88\xd8\xa7\xd9\xbe\xd8\xb3 "
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
}

static void same_result(const struct match_result *a, const struct match_result *b)
{
	assert_int_equal(a->n_hits, b->n_hits);
	assert_int_equal(a->n_limit_rules, b->n_limit_rules);
	for (size_t i = 0; i < a->n_hits; i++) {
		assert_int_equal(a->hits[i].rule, b->hits[i].rule);
		assert_int_equal(a->hits[i].offset, b->hits[i].offset);
		assert_int_equal(a->hits[i].length, b->hits[i].length);
		assert_int_equal(a->hits[i].target, b->hits[i].target);
	}
}

static void test_jit_and_interpreter(void **state)
{
	struct ruleset *a, *b;
	struct match_subjects s;
	struct match_limits lim;
	struct match_result ra = { 0 }, rb = { 0 };

	make_shared_body();
	a = load(shared_rules);
	rules_set_jit(false);
	b = load(shared_rules);
	rules_set_jit(!valgrind);
	assert_int_equal(a->rules[0].jit, !valgrind);
	assert_false(b->rules[0].jit);
	fill_subjects(&s);
	exact_limits(&lim);
	assert_int_equal(match_run(a, &s, &lim, &ra), 0);
	assert_int_equal(match_run(b, &s, &lim, &rb), 0);
	assert_int_equal(ra.n_hits, 4);
	assert_int_equal(ra.n_limit_rules, 1);
	same_result(&ra, &rb);
	match_result_free(&ra);
	match_result_free(&rb);
	rules_unref(a);
	rules_unref(b);
}

struct thread_arg {
	const struct ruleset *rs;
	const struct match_result *expect;
	int rounds;
	int bad;
};

static void *thread_main(void *p)
{
	struct thread_arg *ta = p;
	struct match_subjects s;
	struct match_limits lim;
	struct match_result mr = { 0 };

	fill_subjects(&s);
	exact_limits(&lim);
	for (int i = 0; i < ta->rounds; i++) {
		if (match_run(ta->rs, &s, &lim, &mr) < 0 || mr.n_hits != ta->expect->n_hits ||
		    mr.n_limit_rules != ta->expect->n_limit_rules) {
			ta->bad++;
			continue;
		}
		for (size_t k = 0; k < mr.n_hits; k++)
			if (mr.hits[k].rule != ta->expect->hits[k].rule ||
			    mr.hits[k].offset != ta->expect->hits[k].offset ||
			    mr.hits[k].length != ta->expect->hits[k].length)
				ta->bad++;
	}
	match_result_free(&mr);
	/* the thread's match data is freed by the key destructor at exit */
	return NULL;
}

static void test_threads(void **state)
{
	struct ruleset *rs;
	struct match_subjects s;
	struct match_limits lim;
	struct match_result expect = { 0 };
	struct thread_arg ta[4];
	pthread_t th[4];

	make_shared_body();
	rs = load(shared_rules);
	fill_subjects(&s);
	exact_limits(&lim);
	assert_int_equal(match_run(rs, &s, &lim, &expect), 0);
	for (int i = 0; i < 4; i++) {
		ta[i] = (struct thread_arg){ .rs = rules_ref(rs), .expect = &expect,
					     .rounds = 1000 };
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, &ta[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(ta[i].bad, 0);
		rules_unref(rs);
	}
	assert_int_equal(atomic_load(&rs->refs), 1);
	match_result_free(&expect);
	rules_unref(rs);
}

static void test_small_stack(void **state)
{
	struct ruleset *rs;
	struct match_subjects s;
	struct match_limits lim;
	struct match_result expect = { 0 };
	struct thread_arg ta;
	pthread_attr_t attr;
	pthread_t th;

	make_shared_body();
	rs = load(shared_rules);
	fill_subjects(&s);
	exact_limits(&lim);
	assert_int_equal(match_run(rs, &s, &lim, &expect), 0);
	ta = (struct thread_arg){ .rs = rs, .expect = &expect, .rounds = 20 };
	pthread_attr_init(&attr);
	assert_int_equal(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
	assert_int_equal(pthread_create(&th, &attr, thread_main, &ta), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	pthread_attr_destroy(&attr);
	assert_int_equal(ta.bad, 0);
	match_result_free(&expect);
	rules_unref(rs);
}

/* ---- prefilter: never changes a result; and what it saves ---------------------------------- */

/* Realistic rules: words and phrases, some alternations, in the five scripts. */
static const char *const vocab[] = {
	"money back", "refund", "chargeback", "worst service", "cancel my account", "never again",
	"fake invoice", "backdated", "idiot", "useless", "switching to", "waive the fee",
	"\xd9\xbe\xdb\x8c\xd8\xb3\xdb\x92 \xd9\x88\xd8\xa7\xd9\xbe\xd8\xb3",      /* ur */
	"\xe0\xa4\xaa\xe0\xa5\x88\xe0\xa4\xb8\xe0\xa5\x87 \xe0\xa4\xb5\xe0\xa4\xbe\xe0\xa4\xaa\xe0\xa4\xb8", /* hi */
	"paise wapas", "bakwas service", "not happy", "broken", "late delivery", "complaint",
};

static struct ruleset *vocab_rules(size_t n)
{
	struct strbuf b;
	struct ruleset *rs;

	strbuf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		const char *w = vocab[i % UTIL_ARRAY_LEN(vocab)];

		if (i % 3 == 2)
			strbuf_printf(&b, "rule V%zu\ncategory complaint\nmatch /\\b(?:%s|%s)\\b/\n", i, w,
				      vocab[(i * 7 + 3) % UTIL_ARRAY_LEN(vocab)]);
		else
			strbuf_printf(&b, "rule V%zu\ncategory complaint\nmatch /\\b%s\\s+%zu\\b/\n", i, w,
				      i);
	}
	rs = load(b.s);
	strbuf_free(&b);
	return rs;
}

static int eml_filter(const struct dirent *de)
{
	size_t n = strlen(de->d_name);

	return n > 4 && !strcmp(de->d_name + n - 4, ".eml");
}

static int subdir_filter(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

struct pf_totals {
	size_t files, prefiltered, hits;
	long long t_on, t_off;
};

/* Every .eml in dir: normalized raw mail as the text of every target (raw mail is enough here:
 * the point is identical results both ways, on as much varied text as possible). */
static void pf_dir(const struct ruleset *rs, const char *dir, struct pf_totals *tot)
{
	struct dirent **list;
	struct match_limits on, off;
	struct match_result ra = { 0 }, rb = { 0 };
	int n = scandir(dir, &list, eml_filter, alphasort);

	if (n < 0)
		return;
	exact_limits(&on);
	off = on;
	off.no_prefilter = true;
	for (int i = 0; i < n; i++) {
		char path[4400], *raw = NULL, *norm;
		size_t len = 0, nlen = 0;
		struct match_subjects s = { .n_headers = 0 };

		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		free(list[i]);
		if (util_read_file(path, 1 << 24, &raw, &len) < 0)
			continue;
		norm = normalize_text(raw, len, true, &nlen);
		assert_non_null(norm);
		for (int t = 0; t < RULES_TARGET_COUNT; t++) {
			s.text[t] = norm;
			s.len[t] = nlen;
		}
		assert_int_equal(match_run(rs, &s, &on, &ra), 0);
		assert_int_equal(match_run(rs, &s, &off, &rb), 0);
		if (ra.n_hits != rb.n_hits)
			fail_msg("%s: %zu hits with the prefilter, %zu without", path, ra.n_hits,
				 rb.n_hits);
		same_result(&ra, &rb);
		tot->t_on += ra.elapsed_us;
		tot->t_off += rb.elapsed_us;
		tot->prefiltered += ra.rules_prefiltered;
		tot->hits += ra.n_hits;
		tot->files++;
		free(norm);
		free(raw);
	}
	free(list);
	match_result_free(&ra);
	match_result_free(&rb);
}

static int heldout_filter(const struct dirent *de)
{
	return !strncmp(de->d_name, "heldout", 7);
}

/* pf_dir over dir/SUB/leaf for every SUB that filter takes (leaf "" : dir/SUB itself). */
static void pf_subdirs(const struct ruleset *rs, const char *dir,
		       int (*filter)(const struct dirent *), const char *leaf,
		       struct pf_totals *tot)
{
	struct dirent **list;
	int n = scandir(dir, &list, filter, alphasort);

	for (int i = 0; i < n; i++) {
		char sub[4400];

		snprintf(sub, sizeof(sub), "%s/%s%s", dir, list[i]->d_name, leaf);
		pf_dir(rs, sub, tot);
		free(list[i]);
	}
	if (n >= 0)
		free(list);
}

/* The dev corpus messages, every scenario's messages and, not under valgrind (time), the
 * held-out sets of tests/data: native-script mail with English nouns in it, the text the leads
 * behind a lookbehind ((?<=\p{Gurmukhi}\s)account...) are for. */
static void pf_corpus(const struct ruleset *rs, const char *what, struct pf_totals *tot)
{
	const char *top = getenv("top_srcdir");
	char dir[4096];

	memset(tot, 0, sizeof(*tot));
	snprintf(dir, sizeof(dir), "%s/../shared/corpus/dev/messages", top ? top : ".");
	pf_dir(rs, dir, tot);
	snprintf(dir, sizeof(dir), "%s/../shared/corpus/dev/scenarios", top ? top : ".");
	pf_subdirs(rs, dir, subdir_filter, "", tot);
	if (!slow) {
		snprintf(dir, sizeof(dir), "%s/tests/data", top ? top : ".");
		pf_subdirs(rs, dir, heldout_filter, "/messages", tot);
	}
	fprintf(stderr, "# prefilter, %s: %zu messages x %zu rules, %zu hits: %lld us with, "
		"%lld us without; %zu rule runs skipped\n", what, tot->files, rs->n_rules, tot->hits,
		tot->t_on, tot->t_off, tot->prefiltered);
}

static void test_prefilter_sound_and_pays(void **state)
{
	struct ruleset *rs = vocab_rules(300);
	struct pf_totals tot;

	pf_corpus(rs, "vocabulary rules", &tot);
	rules_unref(rs);
	if (!tot.files)
		skip();
	assert_true(tot.prefiltered > 0);
}

static struct ruleset *load_dir(const char *dir)
{
	struct diag d;
	struct ruleset *rs;

	diag_init(&d);
	rs = rules_load(dir, cfg, &d);
	if (!rs)
		fail_msg("%s does not load: %s", dir, d.n ? d.v[0].text : "?");
	diag_free(&d);
	return rs;
}

/* The shipped packs, and the generated sets of the benchmark (contrib/bench/gen_rules.py). */
static void test_prefilter_packs_and_generated(void **state)
{
	const char *top = getenv("top_srcdir");
	static const int sizes[] = { 100, 300, 1000 };
	char dir[4096], tmp[] = "/tmp/amends-test-match.XXXXXX";
	struct ruleset *rs;
	struct pf_totals tot;

	snprintf(dir, sizeof(dir), "%s/rules", top ? top : ".");
	rs = load_dir(dir);
	{
		/* Every shipped rule but two (EN_ABUSE_NEG_SLANG: \bf\w*ing; EN_CANCEL_IMPERATIVE:
		 * a sentence start) has leads: a rule the prefilter cannot read ((?s:...), a named
		 * subroutine, an alternative led by a lookbehind and a gap) is searched through
		 * the whole text of every message; two such rules once cost 36 times the matching
		 * of all the others on large mail. */
		size_t unknown = 0;

		for (size_t r = 0; r < rs->n_rules; r++)
			if (!rs->rules[r].lead && strcmp(rs->rules[r].name, "EN_ABUSE_NEG_SLANG") != 0 &&
			    strcmp(rs->rules[r].name, "EN_CANCEL_IMPERATIVE") != 0) {
				unknown++;
				print_message("shipped rule without leads: %s\n", rs->rules[r].name);
			}
		assert_int_equal(unknown, 0);
	}
	pf_corpus(rs, "shipped packs", &tot);
	rules_unref(rs);
	if (!tot.files)
		skip();
	assert_true(tot.prefiltered > 0 && tot.hits > 0);
	if (slow || system("python3 -c '' >/dev/null 2>&1") != 0 || !mkdtemp(tmp))
		return;     /* the generated sets need python3; under valgrind they take too long */
	for (size_t i = 0; i < UTIL_ARRAY_LEN(sizes); i++) {
		char cmd[8400], what[64];

		snprintf(dir, sizeof(dir), "%s/gen-%d", tmp, sizes[i]);
		snprintf(cmd, sizeof(cmd), "python3 '%s/contrib/bench/gen_rules.py' %d '%s'",
			 top ? top : ".", sizes[i], dir);
		assert_int_equal(system(cmd), 0);
		rs = load_dir(dir);
		snprintf(what, sizeof(what), "%d generated rules", sizes[i]);
		pf_corpus(rs, what, &tot);
		assert_true(tot.prefiltered > 0 && tot.hits > 0);
		rules_unref(rs);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
	rmdir(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_prefilter_skips),
		cmocka_unit_test(test_lead_places_limit),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_limit_recorded),
		cmocka_unit_test(test_redos_bound_jit),
		cmocka_unit_test(test_redos_bound_interpreter),
		cmocka_unit_test(test_deadline_skips),
		cmocka_unit_test(test_windows_equal_plain),
		cmocka_unit_test(test_jit_and_interpreter),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_small_stack),
		cmocka_unit_test(test_prefilter_sound_and_pays),
		cmocka_unit_test(test_prefilter_packs_and_generated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
