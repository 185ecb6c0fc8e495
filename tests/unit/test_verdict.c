/*
 * test_verdict.c - hits -> category scores -> categories present (table-driven)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "verdict.h"
#include "config.h"
#include "diag.h"
#include "util.h"

static struct config *cfg;
static struct ruleset *rs;

/* rules: 0 R_A refund 2.5 | 1 R_B refund 1 | 2 C_NEG complaint -3 | 3 C_POS complaint 2
 *        4 AB abuse 0.5 | 5 UN unethical 1 */
/* rules: 6 AB2 abuse 0.5 | 7 AB3 abuse 0.75 | 8 AB_NEG abuse -0.5 */
/* rules: 9 G1 unethical 0.5, 10 G2 unethical 0.5, 11 G3 unethical 0.75 (group CUE) |
 *        12 GN1 complaint -1, 13 GN2 complaint -2 (group EXC) | 14 U2 unethical 0.5 */
static const char rules_text[] =
	"rule R_A\ncategory refund\nscore 2.5\nmatch /a/\n"
	"rule R_B\ncategory refund\nmatch /b/\n"
	"rule C_NEG\ncategory complaint\nscore -3\nmatch /c/\n"
	"rule C_POS\ncategory complaint\nscore 2\nmatch /d/\n"
	"rule AB\ncategory abuse\nscore 0.5\nmatch /e/\n"
	"rule UN\ncategory unethical\nmatch /f/\n"
	"rule AB2\ncategory abuse\nscore 0.5\nmatch /g/\n"
	"rule AB3\ncategory abuse\nscore 0.75\nmatch /h/\n"
	"rule AB_NEG\ncategory abuse\nscore -0.5\nmatch /i/\n"
	"rule G1\ncategory unethical\nscore 0.5\ngroup CUE\nmatch /j/\n"
	"rule G2\ncategory unethical\nscore 0.5\ngroup CUE\nmatch /k/\n"
	"rule G3\ncategory unethical\nscore 0.75\ngroup CUE\nmatch /l/\n"
	"rule GN1\ncategory complaint\nscore -1\ngroup EXC\nmatch /m/\n"
	"rule GN2\ncategory complaint\nscore -2\ngroup EXC\nmatch /n/\n"
	"rule U2\ncategory unethical\nscore 0.5\nmatch /o/\n";

static int setup(void **state)
{
	struct diag d;

	diag_init(&d);
	cfg = config_load(NULL, &d);
	if (cfg)
		rs = rules_load_buffer("v.rules", rules_text, strlen(rules_text), cfg, &d);
	diag_free(&d);
	return cfg && rs ? 0 : -1;
}

static int teardown(void **state)
{
	rules_unref(rs);
	config_unref(cfg);
	return 0;
}

static void compute(const size_t *rules, size_t n, struct verdict *v)
{
	struct match_result mr = { 0 };
	struct match_hit hits[16];

	/* each hit on its own stretch of text: nesting is test_nested's subject */
	for (size_t i = 0; i < n; i++)
		hits[i] = (struct match_hit){ .rule = rules[i], .offset = 10 * i, .length = 5,
					      .header_index = -1 };
	mr.hits = hits;
	mr.n_hits = n;
	verdict_compute(cfg, rs, &mr, v);
}

static int cat(const char *name)
{
	return config_category_index(cfg, name);
}

static void test_table(void **state)
{
	static const struct {
		size_t rules[6];
		size_t n;
		double refund, complaint, abuse;
		int refund_present, complaint_present, abuse_present;
	} cases[] = {
		{ { 0 }, 0, 0, 0, 0, 0, 0, 0 },                    /* no hits */
		{ { 0 }, 1, 2.5, 0, 0, 1, 0, 0 },                  /* one rule over threshold 1 */
		{ { 0, 1 }, 2, 3.5, 0, 0, 1, 0, 0 },               /* sum */
		{ { 0, 0, 1 }, 3, 3.5, 0, 0, 1, 0, 0 },            /* distinct rules only */
		{ { 2, 3 }, 2, 0, -1, 0, 0, 0, 0 },                /* a negative rule pulls it down */
		{ { 3 }, 1, 0, 2, 0, 0, 1, 0 },
		{ { 2 }, 1, 0, -3, 0, 0, 0, 0 },
		{ { 4 }, 1, 0, 0, 0.5, 0, 0, 0 },                  /* under threshold: hit, absent */
		{ { 4, 0, 3 }, 3, 2.5, 2, 0.5, 1, 1, 0 },
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct verdict v;
		unsigned mask = 0;

		compute(cases[i].rules, cases[i].n, &v);
		assert_int_equal(v.n_categories, cfg->n_categories);
		assert_true(v.score[cat("refund")] == cases[i].refund);
		assert_true(v.score[cat("complaint")] == cases[i].complaint);
		assert_true(v.score[cat("abuse")] == cases[i].abuse);
		assert_int_equal(v.present[cat("refund")], cases[i].refund_present);
		assert_int_equal(v.present[cat("complaint")], cases[i].complaint_present);
		assert_int_equal(v.present[cat("abuse")], cases[i].abuse_present);
		assert_int_equal(v.hit[cat("abuse")], cases[i].abuse != 0);
		for (size_t c = 0; c < v.n_categories; c++)
			if (v.present[c])
				mask |= 1u << c;
		assert_int_equal(v.present_mask, mask);
	}
}

static void test_thresholds(void **state)
{
	size_t abuse_only[] = { 4 }, neg[] = { 2 };
	struct verdict v;
	double old = cfg->categories[cat("abuse")].threshold;
	double oldc = cfg->categories[cat("complaint")].threshold;

	cfg->categories[cat("abuse")].threshold = 0.5;        /* exactly the threshold: present */
	compute(abuse_only, 1, &v);
	assert_true(v.present[cat("abuse")]);
	cfg->categories[cat("abuse")].threshold = 0.51;
	compute(abuse_only, 1, &v);
	assert_false(v.present[cat("abuse")]);
	/* a threshold <= 0 still needs a hit in the category */
	cfg->categories[cat("complaint")].threshold = -5;
	compute(abuse_only, 1, &v);
	assert_false(v.present[cat("complaint")]);
	compute(neg, 1, &v);
	assert_true(v.present[cat("complaint")]);
	cfg->categories[cat("abuse")].threshold = old;
	cfg->categories[cat("complaint")].threshold = oldc;
}

/* A config whose categories are listed in another order: names decide. */
static void test_config_reordered(void **state)
{
	struct config c2 = *cfg;
	size_t hits[] = { 5 };     /* unethical */
	struct match_result mr = { 0 };
	struct match_hit h = { .rule = hits[0], .header_index = -1 };
	struct verdict v;

	c2.categories[0] = cfg->categories[cat("unethical")];
	c2.categories[cat("unethical")] = cfg->categories[0];
	mr.hits = &h;
	mr.n_hits = 1;
	verdict_compute(&c2, rs, &mr, &v);
	assert_true(v.present[0]);
	assert_true(v.score[0] == 1.0);
	assert_int_equal(v.present_mask, 1u);
	/* no ruleset / no result: nothing present */
	verdict_compute(cfg, NULL, &mr, &v);
	assert_int_equal(v.present_mask, 0);
	verdict_compute(cfg, rs, NULL, &v);
	assert_int_equal(v.present_mask, 0);
}

struct span {
	size_t rule, offset, length;
	enum rules_target target;
	int header;
};

static void compute_spans(const struct span *sp, size_t n, struct verdict *v, long *fate)
{
	struct match_result mr = { 0 };
	struct match_hit hits[16];

	for (size_t i = 0; i < n; i++)
		hits[i] = (struct match_hit){ .rule = sp[i].rule, .target = sp[i].target,
					      .offset = sp[i].offset, .length = sp[i].length,
					      .header_index = sp[i].header };
	mr.hits = hits;
	mr.n_hits = n;
	verdict_compute(cfg, rs, &mr, v);
	assert_int_equal(verdict_shadows(cfg, rs, &mr, fate), 0);
}

/* One stretch of text counts once per category: two weak rules on the same word (Urdu and
 * Persian share words), or a word inside a phrase, are one cue; partly overlapping or separate
 * hits are two; other categories, other texts and negative rules are not affected. */
#define BODY RULES_TARGET_BODY
#define SUBJ RULES_TARGET_SUBJECT
#define HDR RULES_TARGET_HEADER

static void test_nested(void **state)
{
	static const struct {
		struct span sp[3];
		size_t n;
		double abuse;
		long fate[3];
	} cases[] = {
		/* the same word twice: one cue, below the threshold */
		{ { { 4, 7, 4, BODY, -1 }, { 6, 7, 4, BODY, -1 } }, 2, 0.5, { -1, 0, 0 } },
		/* a word inside a phrase: the phrase's higher score counts, whatever the order */
		{ { { 6, 8, 2, BODY, -1 }, { 7, 5, 10, BODY, -1 } }, 2, 0.75, { 1, -1, 0 } },
		{ { { 7, 5, 10, BODY, -1 }, { 6, 8, 2, BODY, -1 } }, 2, 0.75, { -1, 0, 0 } },
		/* partly overlapping: two cues */
		{ { { 4, 0, 8, BODY, -1 }, { 6, 5, 8, BODY, -1 } }, 2, 1.0, { -1, -1, 0 } },
		/* adjacent, touching at one end: two cues */
		{ { { 4, 0, 5, BODY, -1 }, { 6, 5, 5, BODY, -1 } }, 2, 1.0, { -1, -1, 0 } },
		/* the same offsets in different texts (body, subject) or headers: two cues */
		{ { { 4, 3, 4, BODY, -1 }, { 6, 3, 4, SUBJ, -1 } }, 2, 1.0, { -1, -1, 0 } },
		{ { { 4, 3, 4, HDR, 0 }, { 6, 3, 4, HDR, 1 } }, 2, 1.0, { -1, -1, 0 } },
		/* a negative rule on the same text still counts */
		{ { { 4, 3, 4, BODY, -1 }, { 8, 3, 4, BODY, -1 } }, 2, 0.0, { -1, -1, 0 } },
		/* zero-length hits stand at one position */
		{ { { 4, 6, 0, BODY, -1 }, { 6, 4, 4, BODY, -1 } }, 2, 0.5, { -1, 0, 0 } },
		{ { { 4, 9, 0, BODY, -1 }, { 6, 4, 4, BODY, -1 } }, 2, 1.0, { -1, -1, 0 } },
		/* a repeated rule is not counted, and shadows nothing */
		{ { { 4, 0, 4, BODY, -1 }, { 4, 20, 4, BODY, -1 }, { 6, 20, 4, BODY, -1 } }, 3, 1.0,
		  { -1, VERDICT_NOT_COUNTED, -1 } },
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct verdict v;
		long fate[3];

		compute_spans(cases[i].sp, cases[i].n, &v, fate);
		assert_true(v.score[cat("abuse")] == cases[i].abuse);
		assert_int_equal(v.present[cat("abuse")], cases[i].abuse >= 1.0);
		assert_true(v.hit[cat("abuse")]);
		for (size_t k = 0; k < cases[i].n; k++)
			assert_int_equal(fate[k], cases[i].fate[k]);
	}
}

/* Nesting is per category: a refund word inside an abuse phrase counts for refund. */
static void test_nested_other_category(void **state)
{
	static const struct span sp[] = { { 7, 0, 20, RULES_TARGET_BODY, -1 },
					  { 1, 5, 4, RULES_TARGET_BODY, -1 } };
	struct verdict v;
	long fate[2];

	compute_spans(sp, 2, &v, fate);
	assert_true(v.score[cat("abuse")] == 0.75);
	assert_true(v.score[cat("refund")] == 1.0);
	assert_int_equal(fate[0], VERDICT_COUNTED);
	assert_int_equal(fate[1], VERDICT_COUNTED);
}

/* A group is one cue: of its rules that hit, on any text, only the strongest counts (the highest
 * score; of exceptions, the most negative), whatever the order of the hits; a rule outside the
 * group is another cue. verdict_group_winner names the member that counted. */
static void test_groups(void **state)
{
	static const struct {
		struct span sp[3];
		size_t n;
		const char *cat;
		double score;
		long fate[3];
		long winner[3];
	} cases[] = {
		/* two weak rules of one group on separate texts: one cue, below the threshold */
		{ { { 9, 0, 4, BODY, -1 }, { 10, 20, 4, BODY, -1 } }, 2, "unethical", 0.5,
		  { -1, VERDICT_NOT_COUNTED }, { -1, 0 } },
		{ { { 9, 0, 4, BODY, -1 }, { 10, 0, 4, SUBJ, -1 } }, 2, "unethical", 0.5,
		  { -1, VERDICT_NOT_COUNTED }, { -1, 0 } },
		/* the stronger member counts, first or last */
		{ { { 10, 0, 4, BODY, -1 }, { 11, 20, 4, BODY, -1 } }, 2, "unethical", 0.75,
		  { VERDICT_NOT_COUNTED, -1 }, { 1, -1 } },
		{ { { 11, 0, 4, BODY, -1 }, { 9, 20, 4, BODY, -1 }, { 10, 40, 4, BODY, -1 } }, 3,
		  "unethical", 0.75, { -1, VERDICT_NOT_COUNTED, VERDICT_NOT_COUNTED }, { -1, 0, 0 } },
		/* a rule outside the group is a second cue */
		{ { { 9, 0, 4, BODY, -1 }, { 14, 20, 4, BODY, -1 } }, 2, "unethical", 1.0,
		  { -1, -1 }, { -1, -1 } },
		{ { { 9, 0, 4, BODY, -1 }, { 10, 20, 4, BODY, -1 }, { 14, 40, 4, BODY, -1 } }, 3,
		  "unethical", 1.0, { -1, VERDICT_NOT_COUNTED, -1 }, { -1, 0, -1 } },
		/* a group of exceptions: the most negative counts once */
		{ { { 3, 0, 4, BODY, -1 }, { 12, 20, 4, BODY, -1 }, { 13, 40, 4, BODY, -1 } }, 3,
		  "complaint", 0.0, { -1, VERDICT_NOT_COUNTED, -1 }, { -1, 2, -1 } },
		/* the same rule twice is not a group repeat */
		{ { { 9, 0, 4, BODY, -1 }, { 9, 20, 4, BODY, -1 } }, 2, "unethical", 0.5,
		  { -1, VERDICT_NOT_COUNTED }, { -1, -1 } },
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		struct match_result mr = { 0 };
		struct match_hit hits[3];
		struct verdict v;
		long fate[3];

		compute_spans(cases[i].sp, cases[i].n, &v, fate);
		assert_true(v.score[cat(cases[i].cat)] == cases[i].score);
		assert_true(v.hit[cat(cases[i].cat)]);
		for (size_t k = 0; k < cases[i].n; k++) {
			hits[k] = (struct match_hit){ .rule = cases[i].sp[k].rule };
			assert_int_equal(fate[k], cases[i].fate[k]);
		}
		mr.hits = hits;
		mr.n_hits = cases[i].n;
		for (size_t k = 0; k < cases[i].n; k++)
			assert_int_equal(verdict_group_winner(rs, &mr, fate, k), cases[i].winner[k]);
	}
	{
		/* one member and U2 reach the threshold of 1: present */
		static const struct span sp[] = { { 10, 0, 4, BODY, -1 }, { 14, 9, 4, BODY, -1 } };
		struct verdict v;
		long fate[2];

		compute_spans(sp, 2, &v, fate);
		assert_true(v.present[cat("unethical")]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_config_reordered),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_nested_other_category),
		cmocka_unit_test(test_groups),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
