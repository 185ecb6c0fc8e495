/*
 * verdict.h - hits -> per-category scores -> the categories present
 *
 * Category score = sum of the scores of the distinct cues that hit (a rule, or a rule group of
 * which the strongest hit counts), one stretch of text counting once per category (positive
 * hits nested in one another: the highest score). A category is present when
 * its score reaches the category's threshold from the config.
 */
#ifndef AMENDS_VERDICT_H
#define AMENDS_VERDICT_H

#include <stdbool.h>
#include "config.h"
#include "rules.h"
#include "match.h"
#include "util.h"

struct verdict {
	double score[CONFIG_MAX_CATEGORIES];
	bool hit[CONFIG_MAX_CATEGORIES];     /* some rule of this category hit */
	bool present[CONFIG_MAX_CATEGORIES];
	unsigned present_mask;               /* bit i = category i present */
	size_t n_categories;
};

void verdict_compute(const struct config *cfg, const struct ruleset *rs,
		     const struct match_result *mr, struct verdict *v);

/* What verdict_compute made of each hit, for explanations ("why did this match"): fate[i] is
 * VERDICT_COUNTED, VERDICT_NOT_COUNTED (a repeated rule, a weaker rule of a group that counted,
 * or a category the config lacks) or the
 * index of the counted hit of the same category whose text contains hit i's or lies
 * inside it. fate has
 * mr->n_hits entries, caller-owned. Returns 0, or -1 when out of memory (fate untouched). */
#define VERDICT_COUNTED (-1L)
#define VERDICT_NOT_COUNTED (-2L)
int verdict_shadows(const struct config *cfg, const struct ruleset *rs,
		    const struct match_result *mr, long *fate);
/* For hit i left VERDICT_NOT_COUNTED because another rule of its group counted (fate from
 * verdict_shadows): the index of that rule's hit; otherwise -1. */
long verdict_group_winner(const struct ruleset *rs, const struct match_result *mr,
			  const long *fate, size_t i);

/* verdict_shadows into a new array of mr->n_hits entries, or NULL when there is no hit or no
 * memory (an explanation then leaves the counted/not-counted detail out). Caller frees. */
long *verdict_fates(const struct config *cfg, const struct ruleset *rs,
		    const struct match_result *mr);

/* Why hit i counted or not, in the words every explanation uses (amendsctl check and eval, text
 * and JSON). Names point into rs. */
struct verdict_why {
	bool counted;
	const char *same_text_as;     /* the counted rule whose text holds this hit's, or NULL */
	const char *group;            /* this rule's group, when another rule of it counted */
	const char *group_counted_as; /* that rule, or NULL */
};
void verdict_why(const struct ruleset *rs, const struct match_result *mr, const long *fate,
		 size_t i, struct verdict_why *why);
/* Append why as the JSON members ,"counted":..,"same_text_as":..,"group_counted_as":.. */
void verdict_why_json(const struct verdict_why *why, struct strbuf *b);

#endif
