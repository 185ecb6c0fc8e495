/*
 * verdict.h - hits -> per-category scores -> the categories present
 *
 * Category score = sum of the scores of the distinct rules that hit. A category is present when
 * its score reaches the category's threshold from the config.
 */
#ifndef AMENDS_VERDICT_H
#define AMENDS_VERDICT_H

#include <stdbool.h>
#include "config.h"
#include "rules.h"
#include "match.h"

struct verdict {
	double score[CONFIG_MAX_CATEGORIES];
	bool hit[CONFIG_MAX_CATEGORIES];     /* some rule of this category hit */
	bool present[CONFIG_MAX_CATEGORIES];
	unsigned present_mask;               /* bit i = category i present */
	size_t n_categories;
};

void verdict_compute(const struct config *cfg, const struct ruleset *rs,
		     const struct match_result *mr, struct verdict *v);

#endif
