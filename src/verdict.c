/*
 * verdict.c - hits -> per-category scores -> the categories present
 *
 * A category's score is the sum of the scores of the distinct cues that hit, where a cue is a
 * rule (it counts once even if it hit twice) or a group of rules ("group NAME" in the rule
 * files: one cue written as several rules, of which the strongest that hit counts: the highest
 * score, or for exceptions the most negative), and one stretch of text counts once per
 * category: when the hit of one positive rule of a category lies inside another's in the same
 * text, only the higher score counts. Weak rules (0.5) are meant to add up when two different
 * cues occur; the same word matched by two rule files (Urdu and Persian share much of their
 * vocabulary) or by a word rule and a phrase rule around it is one cue, not two. Negative rules
 * (exceptions such as "no complaints at all") always count, once per rule or group.
 *
 * A category is present when at least one of its rules hit and its score reaches the
 * category's threshold: a negative-score rule can pull a category below its threshold, and a
 * category nobody hit is never present, whatever its threshold.
 *
 * The ruleset names categories by index into the config it was loaded with; when the config in
 * hand lists categories differently (a config reload ahead of the rules), the name decides.
 *
 * OWNERSHIP  verdict_compute() fills a caller-owned struct verdict; nothing to free.
 *            verdict_shadows() fills a caller-owned array of mr->n_hits entries.
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

/* Is one hit's text inside the other's (the same word matched twice, a word and a phrase
 * around it)? Partly overlapping hits are two cues: "3 baar complaint" and "complaint ki"
 * share a word but each says something the other does not. A zero-length hit (a
 * lookaround-only pattern) covers the one position it stands at. */
static bool hits_nested(const struct match_hit *a, const struct match_hit *b)
{
	size_t ae = a->offset + (a->length ? a->length : 1);
	size_t be = b->offset + (b->length ? b->length : 1);

	if (a->target != b->target || a->header_index != b->header_index)
		return false;
	return (a->offset <= b->offset && be <= ae) || (b->offset <= a->offset && ae <= be);
}

/* Positive hits first, higher scores first, then the others, most negative first; ties in
 * match order. The greedy pass below then keeps the strongest hit of each rule group and the
 * best-scoring hit of each nested stretch. */
struct order_key {
	double score;
	size_t hit;
};

static int order_cmp(const void *pa, const void *pb)
{
	const struct order_key *a = pa, *b = pb;

	if ((a->score > 0) != (b->score > 0))
		return a->score > 0 ? -1 : 1;
	if (a->score != b->score)
		return (a->score > b->score) == (a->score > 0) ? -1 : 1;
	return a->hit < b->hit ? -1 : a->hit > b->hit;
}

/*
 * For each hit, what became of it: VERDICT_COUNTED, VERDICT_NOT_COUNTED (a repeat of a rule, a
 * weaker rule of a group that counted, or a category the config lacks), or the index of the
 * counted hit of the same category whose text it nests with. Returns -1 when out of memory
 * (then nothing is filled).
 */
static int classify(const struct config *cfg, const struct ruleset *rs,
		    const struct match_result *mr, long *fate, int *cat_of)
{
	size_t n_keys = rs->n_rules + rs->n_groups;
	struct order_key *ord = calloc(mr->n_hits, sizeof(*ord));
	unsigned char *seen = calloc(n_keys ? n_keys : 1, 1);
	size_t n = 0;

	if (!ord || !seen) {
		free(ord);
		free(seen);
		return -1;
	}
	for (size_t i = 0; i < mr->n_hits; i++) {
		size_t ri = mr->hits[i].rule;

		fate[i] = VERDICT_NOT_COUNTED;
		cat_of[i] = -1;
		if (ri >= rs->n_rules)
			continue;
		cat_of[i] = category_in_config(cfg, rs, rs->rules[ri].category);
		if (cat_of[i] < 0 || (size_t)cat_of[i] >= cfg->n_categories ||
		    cat_of[i] >= CONFIG_MAX_CATEGORIES) {
			cat_of[i] = -1;
			continue;
		}
		ord[n++] = (struct order_key){ rs->rules[ri].score, i };
	}
	qsort(ord, n, sizeof(*ord), order_cmp);
	for (size_t k = 0; k < n; k++) {
		size_t i = ord[k].hit, key = rules_count_key(rs, mr->hits[i].rule);

		if (seen[key])
			continue;     /* the rule's or its group's strongest hit came first */
		seen[key] = 1;
		fate[i] = VERDICT_COUNTED;
		if (ord[k].score <= 0)
			continue;
		for (size_t j = 0; j < k; j++) {
			size_t h = ord[j].hit;

			if (cat_of[h] == cat_of[i] && fate[h] == VERDICT_COUNTED &&
			    hits_nested(&mr->hits[h], &mr->hits[i])) {
				fate[i] = (long)h;
				break;
			}
		}
	}
	free(ord);
	free(seen);
	return 0;
}

int verdict_shadows(const struct config *cfg, const struct ruleset *rs,
		    const struct match_result *mr, long *fate)
{
	int *cat_of;
	int rc;

	if (!rs || !mr || !mr->n_hits)
		return 0;
	cat_of = calloc(mr->n_hits, sizeof(*cat_of));
	if (!cat_of)
		return -1;
	rc = classify(cfg, rs, mr, fate, cat_of);
	free(cat_of);
	return rc;
}

long verdict_group_winner(const struct ruleset *rs, const struct match_result *mr,
			  const long *fate, size_t i)
{
	size_t ri;
	int g;

	if (!rs || !mr || i >= mr->n_hits || fate[i] != VERDICT_NOT_COUNTED)
		return -1;
	ri = mr->hits[i].rule;
	if (ri >= rs->n_rules || (g = rs->rules[ri].group_id) < 0)
		return -1;
	for (size_t j = 0; j < mr->n_hits; j++) {
		size_t rj = mr->hits[j].rule;

		if (fate[j] != VERDICT_NOT_COUNTED && rj < rs->n_rules && rj != ri &&
		    rs->rules[rj].group_id == g)
			return (long)j;
	}
	return -1;
}

long *verdict_fates(const struct config *cfg, const struct ruleset *rs,
		    const struct match_result *mr)
{
	long *fate;

	if (!rs || !mr || !mr->n_hits)
		return NULL;
	fate = calloc(mr->n_hits, sizeof(*fate));
	if (fate && verdict_shadows(cfg, rs, mr, fate) < 0) {
		free(fate);
		fate = NULL;
	}
	return fate;
}

void verdict_why(const struct ruleset *rs, const struct match_result *mr, const long *fate,
		 size_t i, struct verdict_why *why)
{
	long w;

	memset(why, 0, sizeof(*why));
	why->counted = fate[i] == VERDICT_COUNTED;
	if (fate[i] >= 0) {
		why->same_text_as = rs->rules[mr->hits[fate[i]].rule].name;
	} else if ((w = verdict_group_winner(rs, mr, fate, i)) >= 0) {
		why->group = rs->rules[mr->hits[i].rule].group;
		why->group_counted_as = rs->rules[mr->hits[w].rule].name;
	}
}

void verdict_why_json(const struct verdict_why *why, struct strbuf *b)
{
	strbuf_printf(b, ",\"counted\":%s,\"same_text_as\":", why->counted ? "true" : "false");
	strbuf_json_cstr(b, why->same_text_as);
	strbuf_puts(b, ",\"group_counted_as\":");
	strbuf_json_cstr(b, why->group_counted_as);
}

/* Nothing can nest and no group has two rules hit (may_nest), or out of memory for the pass:
 * every distinct rule counts (out of memory, a category may then score a shared word or a
 * group twice; never fewer categories). */
static void sum_plain(const struct config *cfg, const struct ruleset *rs,
		      const struct match_result *mr, struct verdict *v)
{
	for (size_t i = 0; i < mr->n_hits; i++) {
		size_t ri = mr->hits[i].rule;
		bool repeat = false;
		int c;

		for (size_t j = 0; j < i && !repeat; j++)
			repeat = mr->hits[j].rule == ri;
		if (ri >= rs->n_rules || repeat)
			continue;
		c = category_in_config(cfg, rs, rs->rules[ri].category);
		if (c < 0 || (size_t)c >= v->n_categories)
			continue;
		v->score[c] += rs->rules[ri].score;
		v->hit[c] = true;
	}
}

/* Does the plain sum (each distinct rule once) fall short? When two positive hits of one
 * category in one text might nest, or two rules of one group hit. Most messages have neither,
 * and then the plain sum is the answer without the pass's allocations. */
static bool may_nest(const struct ruleset *rs, const struct match_result *mr)
{
	for (size_t i = 0; i < mr->n_hits; i++) {
		const struct match_hit *a = &mr->hits[i];
		const struct rule *ra;

		if (a->rule >= rs->n_rules)
			continue;
		ra = &rs->rules[a->rule];
		for (size_t j = i + 1; j < mr->n_hits; j++) {
			const struct match_hit *b = &mr->hits[j];
			const struct rule *rb;

			if (b->rule >= rs->n_rules || b->rule == a->rule)
				continue;
			rb = &rs->rules[b->rule];
			if (ra->group_id >= 0 && rb->group_id == ra->group_id)
				return true;
			if (ra->score > 0 && rb->score > 0 && rb->category == ra->category &&
			    b->target == a->target && b->header_index == a->header_index)
				return true;
		}
	}
	return false;
}

void verdict_compute(const struct config *cfg, const struct ruleset *rs,
		     const struct match_result *mr, struct verdict *v)
{
	long *fate;
	int *cat_of;

	memset(v, 0, sizeof(*v));
	v->n_categories = cfg->n_categories < CONFIG_MAX_CATEGORIES ? cfg->n_categories
								   : CONFIG_MAX_CATEGORIES;
	if (!rs || !mr || !mr->n_hits)
		return;
	fate = may_nest(rs, mr) ? calloc(mr->n_hits, sizeof(*fate)) : NULL;
	cat_of = fate ? calloc(mr->n_hits, sizeof(*cat_of)) : NULL;
	if (!fate || !cat_of || classify(cfg, rs, mr, fate, cat_of) < 0) {
		sum_plain(cfg, rs, mr, v);
	} else {
		for (size_t i = 0; i < mr->n_hits; i++) {
			int c = cat_of[i];

			if (c < 0 || (size_t)c >= v->n_categories)
				continue;
			v->hit[c] = true;     /* a shadowed hit still hit its category */
			if (fate[i] == VERDICT_COUNTED)
				v->score[c] += rs->rules[mr->hits[i].rule].score;
		}
	}
	free(fate);
	free(cat_of);
	for (size_t c = 0; c < v->n_categories; c++) {
		v->present[c] = v->hit[c] && v->score[c] >= cfg->categories[c].threshold;
		if (v->present[c])
			v->present_mask |= 1u << c;
	}
}
