/*
 * verdict.c - hits -> per-category scores -> the categories present
 *
 * A category's score is the sum of the scores of the distinct rules that hit (a rule counts
 * once even if it were listed twice). A category is present when at least one of its rules hit
 * and its score reaches the category's threshold: a negative-score rule ("no complaints at all")
 * can pull a category below its threshold, and a category nobody hit is never present, whatever
 * its threshold.
 *
 * The ruleset names categories by index into the config it was loaded with; when the config in
 * hand lists categories differently (a config reload ahead of the rules), the name decides.
 *
 * OWNERSHIP  verdict_compute() fills a caller-owned struct verdict; nothing to free.
 */
#include "verdict.h"

#include <stdlib.h>
#include <string.h>

/* The config's index for the ruleset's category c, or -1. */
static int category_in_config(const struct config *cfg, const struct ruleset *rs, int c)
{
	if (c < 0 || (size_t)c >= rs->n_categories)
		return -1;
	if ((size_t)c < cfg->n_categories && !strcmp(cfg->categories[c].name, rs->category_names[c]))
		return c;
	return config_category_index(cfg, rs->category_names[c]);
}

void verdict_compute(const struct config *cfg, const struct ruleset *rs,
		     const struct match_result *mr, struct verdict *v)
{
	unsigned char *seen = NULL;

	memset(v, 0, sizeof(*v));
	v->n_categories = cfg->n_categories < CONFIG_MAX_CATEGORIES ? cfg->n_categories
								   : CONFIG_MAX_CATEGORIES;
	if (!rs || !mr || !mr->n_hits)
		return;
	seen = calloc(rs->n_rules ? rs->n_rules : 1, 1);
	for (size_t i = 0; i < mr->n_hits; i++) {
		size_t ri = mr->hits[i].rule;
		int c;

		if (ri >= rs->n_rules || (seen && seen[ri]))
			continue;
		if (seen)
			seen[ri] = 1;
		c = category_in_config(cfg, rs, rs->rules[ri].category);
		if (c < 0 || (size_t)c >= v->n_categories)
			continue;
		v->score[c] += rs->rules[ri].score;
		v->hit[c] = true;
	}
	free(seen);
	for (size_t c = 0; c < v->n_categories; c++) {
		v->present[c] = v->hit[c] && v->score[c] >= cfg->categories[c].threshold;
		if (v->present[c])
			v->present_mask |= 1u << c;
	}
}
