/*
 * ctl_rulestats.c - `amendsctl eval --per-rule`: what each rule did on a labelled corpus
 *
 * A category's precision and recall say how good the rules are together; a tuner who wants to
 * know which rule to fix, keep or drop needs them rule by rule. For every rule this counts, over
 * the messages eval ran:
 *   hits       messages the rule matched in (counted or not);
 *   on_label   ... that are labelled with the rule's category;
 *   off_label  ... that are not;
 *   decided_right, decided_wrong
 *              messages whose verdict for the rule's category this rule decided: without its
 *              counted score (and with the hit that would then count in its place, a weaker
 *              rule of its group or a hit its text contains) the category would have been the
 *              other way (a cue that carried the category over its threshold, or an exception
 *              that held it under), and the label agrees (right) or not (wrong) with the
 *              verdict it decided.
 * and lists the rules that matched nothing. An exception (negative score) is "on label" when
 * it matched a message labelled with its category: the case where it can cost a true positive.
 *
 * OWNERSHIP  rulestats_new() allocates; rulestats_free() releases. The ruleset and the config
 *            passed to each call must be the ones given to rulestats_new().
 */
#include "ctl_rulestats.h"
#include "verdict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rule_counts {
	unsigned hits, on_label, off_label, decided_right, decided_wrong;
};

struct rulestats {
	size_t n_rules;
	struct rule_counts *c;      /* n_rules */
	unsigned *last;             /* n_rules: the message (from 1) that last counted a hit */
	unsigned message;           /* messages seen */
};

struct rulestats *rulestats_new(const struct ruleset *rs)
{
	struct rulestats *s = calloc(1, sizeof(*s));
	size_t n = rs->n_rules ? rs->n_rules : 1;

	if (!s)
		return NULL;
	s->n_rules = rs->n_rules;
	s->c = calloc(n, sizeof(*s->c));
	s->last = calloc(n, sizeof(*s->last));
	if (!s->c || !s->last) {
		rulestats_free(s);
		return NULL;
	}
	return s;
}

void rulestats_free(struct rulestats *s)
{
	if (!s)
		return;
	free(s->c);
	free(s->last);
	free(s);
}

/* The score that would count in hit i's place if its rule were gone: the strongest hit it kept
 * from counting, one whose text lies inside or around it (fate j == i) or another rule of its
 * group (verdict_group_winner == i); 0 when none. An approximation: several such hits might
 * all count once i is gone; the strongest alone is taken. */
static double stand_in(const struct ruleset *rs, const struct match_result *mr, const long *fate,
		       size_t i)
{
	double best = 0;

	for (size_t j = 0; j < mr->n_hits; j++) {
		double sj;

		if (j == i || mr->hits[j].rule >= rs->n_rules ||
		    (fate[j] != (long)i && verdict_group_winner(rs, mr, fate, j) != (long)i))
			continue;
		sj = rs->rules[mr->hits[j].rule].score;
		if (fabs(sj) > fabs(best))
			best = sj;
	}
	return best;
}

/* Did counted hit i, of score sc in category c, decide the verdict for c? Without its rule the
 * category's score (with the hit that would stand in for it) would be on the other side of the
 * threshold. */
static bool decided(const struct config *cfg, const struct verdict *v, size_t c, double sc,
		    double stand)
{
	double without = v->score[c] - sc + stand;
	double t = cfg->categories[c].threshold;

	return v->present[c] ? without < t : (v->hit[c] && without >= t);
}

int rulestats_add(struct rulestats *s, const struct config *cfg, const struct ruleset *rs,
		  const struct match_result *mr, const struct verdict *v, const bool *want)
{
	long *fate = mr->n_hits ? verdict_fates(cfg, rs, mr) : NULL;

	if (mr->n_hits && !fate)
		return -1;
	s->message++;
	for (size_t i = 0; i < mr->n_hits; i++) {
		size_t ri = mr->hits[i].rule;
		const struct rule *ru;
		struct rule_counts *rc;
		size_t c;

		if (ri >= s->n_rules)
			continue;
		ru = &rs->rules[ri];
		rc = &s->c[ri];
		c = (size_t)ru->category;
		if (c >= cfg->n_categories || c >= CONFIG_MAX_CATEGORIES)
			continue;
		if (s->last[ri] != s->message) {      /* once per message, however many hits */
			s->last[ri] = s->message;
			rc->hits++;
			if (want[c])
				rc->on_label++;
			else
				rc->off_label++;
		}
		if (fate[i] != VERDICT_COUNTED ||
		    !decided(cfg, v, c, ru->score, stand_in(rs, mr, fate, i)))
			continue;
		if (v->present[c] == want[c])
			rc->decided_right++;
		else
			rc->decided_wrong++;
	}
	free(fate);
	return 0;
}

/* A rule's place in the table: most decided wrongly first (what to fix), then most hits, then
 * the rules' order. The keys travel with the index, so the comparison needs no context. */
struct row {
	unsigned wrong, hits;
	size_t rule;
};

static int row_cmp(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;

	if (a->wrong != b->wrong)
		return a->wrong > b->wrong ? -1 : 1;
	if (a->hits != b->hits)
		return a->hits > b->hits ? -1 : 1;
	return a->rule < b->rule ? -1 : a->rule > b->rule;
}

/* The rules that hit, in table order; *n set. Caller frees. NULL only when out of memory. */
static size_t *rows(const struct rulestats *s, size_t *n)
{
	struct row *t = calloc(s->n_rules ? s->n_rules : 1, sizeof(*t));
	size_t *r = calloc(s->n_rules ? s->n_rules : 1, sizeof(*r));

	*n = 0;
	if (!t || !r) {
		free(t);
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < s->n_rules; i++)
		if (s->c[i].hits)
			t[(*n)++] = (struct row){ s->c[i].decided_wrong, s->c[i].hits, i };
	qsort(t, *n, sizeof(*t), row_cmp);
	for (size_t k = 0; k < *n; k++)
		r[k] = t[k].rule;
	free(t);
	return r;
}

int rulestats_print(const struct rulestats *s, const struct config *cfg,
		    const struct ruleset *rs, FILE *out)
{
	size_t n, never = 0;
	size_t *r = rows(s, &n);

	if (!r)
		return -1;
	(void)fprintf(out, "\nper rule: %zu of %zu rules matched a message (most decided-wrong first)\n"
		"  %-36s %-12s %5s %6s %8s %9s %13s %13s\n", n, s->n_rules, "rule", "category",
		"score", "hits", "on-label", "off-label", "decided-right", "decided-wrong");
	for (size_t k = 0; k < n; k++) {
		const struct rule *ru = &rs->rules[r[k]];
		const struct rule_counts *c = &s->c[r[k]];

		(void)fprintf(out, "  %-36s %-12s %+5g %6u %8u %9u %13u %13u\n", ru->name,
			cfg->categories[ru->category].name, ru->score, c->hits, c->on_label,
			c->off_label, c->decided_right, c->decided_wrong);
	}
	(void)fprintf(out, "rules that matched no message (%zu):", s->n_rules - n);
	for (size_t i = 0; i < s->n_rules; i++)
		if (!s->c[i].hits)
			(void)fprintf(out, "%s%s", never++ % 4 ? " " : "\n  ", rs->rules[i].name);
	(void)fprintf(out, "%s\n", never ? "" : " (none)");
	free(r);
	return 0;
}

int rulestats_json(const struct rulestats *s, const struct config *cfg,
		   const struct ruleset *rs, struct strbuf *b)
{
	size_t n;
	size_t *r = rows(s, &n);
	bool first = true;

	if (!r)
		return -1;
	strbuf_puts(b, "\"per_rule\":[");
	for (size_t k = 0; k < n; k++) {
		const struct rule *ru = &rs->rules[r[k]];
		const struct rule_counts *c = &s->c[r[k]];

		strbuf_puts(b, k ? ",{\"rule\":" : "{\"rule\":");
		strbuf_json_cstr(b, ru->name);
		strbuf_puts(b, ",\"category\":");
		strbuf_json_cstr(b, cfg->categories[ru->category].name);
		strbuf_printf(b, ",\"score\":%g,\"hits\":%u,\"on_label\":%u,\"off_label\":%u,"
			      "\"decided_right\":%u,\"decided_wrong\":%u}", ru->score, c->hits,
			      c->on_label, c->off_label, c->decided_right, c->decided_wrong);
	}
	strbuf_puts(b, "],\"never_matched\":[");
	for (size_t i = 0; i < s->n_rules; i++)
		if (!s->c[i].hits) {
			strbuf_puts(b, first ? "" : ",");
			strbuf_json_cstr(b, rs->rules[i].name);
			first = false;
		}
	strbuf_putc(b, ']');
	free(r);
	return 0;
}
