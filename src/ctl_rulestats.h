/*
 * ctl_rulestats.h - per-rule counts for `amendsctl eval --per-rule` (see ctl_rulestats.c)
 */
#ifndef AMENDS_CTL_RULESTATS_H
#define AMENDS_CTL_RULESTATS_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "match.h"
#include "rules.h"
#include "util.h"
#include "verdict.h"

struct rulestats;

/* A counter per rule of rs, all zero; NULL when out of memory. Free with rulestats_free. */
struct rulestats *rulestats_new(const struct ruleset *rs);
void rulestats_free(struct rulestats *s);

/* Count one message: its hits mr, its verdict v and its labels want (by config category).
 * Returns 0, or -1 when out of memory (the message is then not counted). */
int rulestats_add(struct rulestats *s, const struct config *cfg, const struct ruleset *rs,
		  const struct match_result *mr, const struct verdict *v, const bool *want);

/* The table (rules that matched, most decided-wrong first, then most hits) and the rules that
 * matched nothing, as text to out or as the JSON members "per_rule" and "never_matched"
 * appended to b. Return 0, or -1 when out of memory. */
int rulestats_print(const struct rulestats *s, const struct config *cfg,
		    const struct ruleset *rs, FILE *out);
int rulestats_json(const struct rulestats *s, const struct config *cfg,
		   const struct ruleset *rs, struct strbuf *b);

#endif
