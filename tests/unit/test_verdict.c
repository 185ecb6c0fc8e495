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
static const char rules_text[] =
	"rule R_A\ncategory refund\nscore 2.5\nmatch /a/\n"
	"rule R_B\ncategory refund\nmatch /b/\n"
	"rule C_NEG\ncategory complaint\nscore -3\nmatch /c/\n"
	"rule C_POS\ncategory complaint\nscore 2\nmatch /d/\n"
	"rule AB\ncategory abuse\nscore 0.5\nmatch /e/\n"
	"rule UN\ncategory unethical\nmatch /f/\n";

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

	for (size_t i = 0; i < n; i++)
		hits[i] = (struct match_hit){ .rule = rules[i], .header_index = -1 };
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_config_reordered),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
