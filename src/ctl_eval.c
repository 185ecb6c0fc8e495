/*
 * ctl_eval.c - `amendsctl eval DIR`: precision, recall and F1 of the rules on a labelled corpus
 *
 * SYNOPSIS
 *   amendsctl [-c FILE] eval DIR [--json] [--per-rule] [--rules RULEDIR] [--deadline-ms N]
 *             [--min-f1 X] [--min-f1-latn X] [--max-fp X] [--min-lang X]
 *             [--min-cat-f1 CATEGORY=X]...
 *
 * DIR is laid out like ../shared/corpus/dev: DIR/labels.tsv (tab-separated, a header line
 * starting with "file", then: file, lang, categories, encoding, note) and DIR/messages/FILE.
 * categories is a comma-separated list of config categories or "none"; a note starting with
 * "hard negative" marks a hard negative. Every message goes through pipeline_run() in dry-run
 * mode (decode -> normalize -> lang -> match -> verdict; no tally, no drafts), exactly what the
 * milter does, and the verdict's categories and detected language are compared with the labels.
 * Messages are grouped by their LABELLED language.
 *
 * Per language x category: precision P = tp/(tp+fp), recall R = tp/(tp+fn), F1 = 2PR/(P+R);
 * P (R) is 1 when its denominator is 0, F1 is 0 when P+R is 0. Macro-F1 of a language is the
 * mean F1 over all configured categories. The false-positive rate is the share of `none`
 * messages given any category (hard negatives included; they are also counted apart).
 * Language accuracy is the share of messages whose detected language equals the label.
 *
 * Text output: a summary table (Markdown, pasteable into a README), the per-category detail,
 * the false-positive and language figures, then one line per miss / false hit / wrong language
 * with the rules involved and the text they matched, with --per-rule a table of what each rule
 * did (ctl_rulestats.c), then the targets.
 *
 * JSON output (--json): one document, stable field names:
 *   { "corpus": DIR, "rules_dir": str, "rules": n, "messages": n, "errors": n,
 *     "categories": [name...],
 *     "languages": [ { "lang", "messages", "macro_f1",
 *                      "categories": { name: {"tp","fp","fn","precision","recall","f1"} },
 *                      "none", "none_fp", "none_fp_rate", "hard_negatives", "hard_negative_fp",
 *                      "lang_correct", "lang_accuracy" } ],
 *     "overall": { "none", "none_fp", "none_fp_rate", "hard_negatives", "hard_negative_fp",
 *                  "lang_correct", "lang_accuracy", "rules_limited", "rules_skipped" },
 *     "mismatches": [ { "file", "lang", "detected_lang", "hard_negative",
 *                       "expected": [cat...], "got": [cat...],
 *                       "misses": [ {"category","score","threshold",
 *                                    "rules": [{"rule","score","target","match",
 *                                               "counted","same_text_as","group_counted_as"}]} ],
 *                       "false_hits": [ same as misses ] } ],
 *     with --per-rule: "per_rule": [ {"rule","category","score","hits","on_label","off_label",
 *                                    "decided_right","decided_wrong"} ],
 *                      "never_matched": [rule...],
 *     "targets": { "min_f1", "min_f1_latn", "max_fp", "min_lang" (null when not given),
 *                  "min_cat_f1": { name: X }, "passed": bool, "failures": [text...] } }
 * Rates are numbers in 0..1. --min-f1 applies to every language whose code does not end in
 * "-Latn", --min-f1-latn to those that do. --min-cat-f1 CATEGORY=X (repeatable) applies to a
 * category's F1 over all languages pooled (the **all** row): a per-language macro-F1 can hide
 * one category collapsing, and one language's cell of one category (two to four messages in
 * the held-out sets) is too small to hold to a floor of its own.
 *
 * TIME  The milter's per-message deadline (rules.deadline_ms, and the per-rule budget derived from
 * it) measures wall time, so on a loaded machine (make -j, CI) rules could stop early and the
 * figures would change from run to run. eval measures the rules, not the machine: it runs with
 * the deadline raised to --deadline-ms (default EVAL_DEADLINE_MS) when the config's is lower.
 * The PCRE2 match/depth/heap limits stay as configured; every stop is still reported.
 *
 * EXIT  0 evaluated and every given target met; 1 a target missed, the rules failed to load,
 * or a message or labels.tsv could not be read; 2 usage.
 * OWNERSHIP  Everything is allocated and freed here; the config is borrowed.
 */
#include "ctl_eval.h"
#include "ctl.h"
#include "ctl_rulestats.h"
#include "pipeline.h"
#include "rules.h"
#include "util.h"
#include "verdict.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_MAX_LANGS 32
#define EVAL_LANG_LEN 24
#define EVAL_MAX_LABELS (16u << 20)
#define EVAL_MAX_MESSAGE (64u << 20)
#define EVAL_MATCH_SHOW 60            /* bytes of matched text shown per hit */
#define EVAL_DEADLINE_MS 5000L        /* per message; the per-rule budget is a tenth of it */

/* The order the corpus uses; other codes found in labels.tsv follow in order of appearance. */
static const char *const eval_known_langs[] = { "en", "ur", "pa", "fa", "hi", "ur-Latn",
						"hi-Latn" };

struct eval_counts {
	unsigned tp, fp, fn;
};

struct eval_lang {
	char code[EVAL_LANG_LEN];
	unsigned messages, none, none_fp, hard, hard_fp, lang_ok;
	struct eval_counts cat[CONFIG_MAX_CATEGORIES];
};

struct eval_opts {
	const char *dir;
	const char *rules_dir;
	bool json;
	bool per_rule;                                  /* --per-rule */
	double min_f1, min_f1_latn, max_fp, min_lang;   /* NAN = not given */
	double min_cat_f1[CONFIG_MAX_CATEGORIES];       /* by config index; NAN = not given */
	long deadline_ms;
};

struct eval_state {
	const struct config *cfg;
	const struct ruleset *rs;
	struct eval_lang langs[EVAL_MAX_LANGS];
	size_t n_langs;
	unsigned messages, errors, rules_limited, rules_skipped;
	bool first_mismatch;
	struct strbuf text;   /* mismatch lines (text mode) */
	struct strbuf json;   /* mismatch objects (json mode) */
	struct rulestats *per_rule;   /* --per-rule, else NULL */
};

/* One labelled message: the parsed line of labels.tsv. */
struct eval_label {
	const char *file;
	const char *lang;
	bool want[CONFIG_MAX_CATEGORIES];
	bool none;
	bool hard;
};

static double eval_ratio(unsigned num, unsigned den, double if_zero)
{
	return den ? (double)num / den : if_zero;
}

static void eval_prf(const struct eval_counts *c, double *p, double *r, double *f)
{
	*p = eval_ratio(c->tp, c->tp + c->fp, 1.0);
	*r = eval_ratio(c->tp, c->tp + c->fn, 1.0);
	*f = (*p + *r) > 0 ? 2 * *p * *r / (*p + *r) : 0.0;
}

static double eval_macro_f1(const struct eval_state *st, const struct eval_lang *l)
{
	double sum = 0, p, r, f;

	for (size_t c = 0; c < st->cfg->n_categories; c++) {
		eval_prf(&l->cat[c], &p, &r, &f);
		sum += f;
	}
	return st->cfg->n_categories ? sum / (double)st->cfg->n_categories : 0.0;
}

static bool eval_is_latn(const char *code)
{
	size_t n = strlen(code);

	return n >= 5 && !strcmp(code + n - 5, "-Latn");
}

/* eval_lang_get - the stats slot of a language code, created on first use; NULL when full. */
static struct eval_lang *eval_lang_get(struct eval_state *st, const char *code)
{
	for (size_t i = 0; i < st->n_langs; i++)
		if (!strcmp(st->langs[i].code, code))
			return &st->langs[i];
	if (st->n_langs >= EVAL_MAX_LANGS || strlen(code) >= EVAL_LANG_LEN)
		return NULL;
	/* fits: the length was checked just above */
	(void)snprintf(st->langs[st->n_langs].code, EVAL_LANG_LEN, "%s", code);
	return &st->langs[st->n_langs++];
}

static void eval_state_init(struct eval_state *st, const struct config *cfg,
			    const struct ruleset *rs)
{
	memset(st, 0, sizeof(*st));
	st->cfg = cfg;
	st->rs = rs;
	st->first_mismatch = true;
	strbuf_init(&st->text, 0);
	strbuf_init(&st->json, 0);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(eval_known_langs); i++)
		(void)eval_lang_get(st, eval_known_langs[i]);
}

/* ---------------------------------------------------------------- labels.tsv */

/* eval_split - cut line at tabs into at most max fields; returns the field count. */
static size_t eval_split(char *line, char **field, size_t max)
{
	size_t n = 0;

	while (n < max) {
		char *tab = strchr(line, '\t');

		field[n++] = line;
		if (!tab)
			break;
		*tab = '\0';
		line = tab + 1;
	}
	return n;
}

/* eval_safe_name - a message file name must stay inside DIR/messages. */
static bool eval_safe_name(const char *s)
{
	return s[0] && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\');
}

/* eval_parse_label - fill lab from one data line; 0, or -1 with a message on stderr. */
static int eval_parse_label(const struct config *cfg, char *line, int lineno, struct eval_label *lab)
{
	char *f[5], *cats, *tok, *save = NULL;
	size_t n = eval_split(line, f, 5);

	memset(lab, 0, sizeof(*lab));
	if (n < 3 || !eval_safe_name(util_trim(f[0])) || !*util_trim(f[1])) {
		(void)fprintf(stderr, "amendsctl: labels.tsv:%d: expected file, lang, categories\n",
			      lineno);
		return -1;
	}
	lab->file = f[0];
	lab->lang = f[1];
	lab->hard = n >= 5 && util_ascii_casestarts(util_trim(f[4]), "hard negative");
	cats = util_trim(f[2]);
	if (!strcmp(cats, "none") || !*cats) {
		lab->none = true;
		return 0;
	}
	for (tok = strtok_r(cats, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int c = config_category_index(cfg, util_trim(tok));

		if (c < 0) {
			(void)fprintf(stderr, "amendsctl: labels.tsv:%d: unknown category \"%s\"\n",
				      lineno, tok);
			return -1;
		}
		lab->want[c] = true;
	}
	return 0;
}

/* ---------------------------------------------------------------- one message */

static size_t eval_utf8_cut(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len <= max)
		return len;
	i = max;
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}

/* eval_hit_match - the matched text of a hit (may be empty when texts were not kept). */
static const char *eval_hit_match(const struct pipeline_result *r, const struct match_hit *h,
				  size_t *len)
{
	const char *t = NULL;
	size_t tl = 0;

	*len = 0;
	if (h->target == RULES_TARGET_HEADER) {
		if (h->header_index >= 0 && (size_t)h->header_index < r->n_norm_headers) {
			t = r->norm_header_values[h->header_index];
			tl = t ? strlen(t) : 0;
		}
	} else if (h->target < RULES_TARGET_COUNT) {
		t = r->norm[h->target];
		tl = r->norm_len[h->target];
	}
	if (!t || h->offset > tl || h->length > tl - h->offset)
		return "";
	*len = eval_utf8_cut(t + h->offset, h->length, EVAL_MATCH_SHOW);
	return t + h->offset;
}

/* eval_text_rules - " RULE(+1) «text», ..." for the hits of category c, or " (no rule hit)";
 * fate from verdict_fates (may be NULL). */
static void eval_text_rules(struct eval_state *st, const struct pipeline_result *r, size_t c,
			    const long *fate)
{
	bool any = false;

	for (size_t i = 0; i < r->mr.n_hits; i++) {
		const struct match_hit *h = &r->mr.hits[i];
		const struct rule *ru = &st->rs->rules[h->rule];
		size_t ml;
		const char *m;
		struct verdict_why why;

		if ((size_t)ru->category != c)
			continue;
		m = eval_hit_match(r, h, &ml);
		strbuf_printf(&st->text, "%s %s(%+g", any ? "," : "", ru->name, ru->score);
		if (fate)
			verdict_why(st->rs, &r->mr, fate, i, &why);
		if (fate && why.same_text_as)     /* verdict.c: one stretch of text counts once */
			strbuf_printf(&st->text, ", same text as %s", why.same_text_as);
		else if (fate && why.group)
			strbuf_printf(&st->text, ", group %s counted as %s", why.group,
				      why.group_counted_as);
		strbuf_puts(&st->text, ") \"");
		for (size_t k = 0; k < ml; k++)
			strbuf_putc(&st->text, (char)(m[k] == '\n' ? ' ' : m[k]));
		strbuf_putc(&st->text, '"');
		any = true;
	}
	if (!any)
		strbuf_puts(&st->text, " (no rule hit)");
}

/* eval_json_rules - the "rules" array of category c: each hit, and (fate from verdict_fates,
 * may be NULL) whether it counted, as amendsctl check --json says it. */
static void eval_json_rules(struct eval_state *st, const struct pipeline_result *r, size_t c,
			    const long *fate)
{
	bool any = false;

	strbuf_puts(&st->json, "\"rules\":[");
	for (size_t i = 0; i < r->mr.n_hits; i++) {
		const struct match_hit *h = &r->mr.hits[i];
		const struct rule *ru = &st->rs->rules[h->rule];
		size_t ml;
		const char *m;

		if ((size_t)ru->category != c)
			continue;
		m = eval_hit_match(r, h, &ml);
		strbuf_puts(&st->json, any ? ",{\"rule\":" : "{\"rule\":");
		strbuf_json_string(&st->json, ru->name, strlen(ru->name));
		strbuf_printf(&st->json, ",\"score\":%g,\"target\":\"%s\",\"match\":", ru->score,
			      rules_target_name(h->target));
		strbuf_json_string(&st->json, m, ml);
		if (fate) {
			struct verdict_why why;

			verdict_why(st->rs, &r->mr, fate, i, &why);
			verdict_why_json(&why, &st->json);
		}
		strbuf_putc(&st->json, '}');
		any = true;
	}
	strbuf_putc(&st->json, ']');
}

static void eval_json_cats(struct eval_state *st, const bool *set)
{
	bool first = true;

	strbuf_putc(&st->json, '[');
	for (size_t c = 0; c < st->cfg->n_categories; c++)
		if (set[c]) {
			strbuf_printf(&st->json, "%s\"%s\"", first ? "" : ",", st->cfg->categories[c].name);
			first = false;
		}
	strbuf_putc(&st->json, ']');
}

/* eval_json_wrong - the "misses" or "false_hits" array: categories where got != want. */
static void eval_json_wrong(struct eval_state *st, const struct pipeline_result *r,
			    const bool *want, const bool *got, bool misses, const long *fate)
{
	bool first = true;

	strbuf_puts(&st->json, misses ? ",\"misses\":[" : ",\"false_hits\":[");
	for (size_t c = 0; c < st->cfg->n_categories; c++) {
		if (want[c] == got[c] || want[c] != misses)
			continue;
		strbuf_puts(&st->json, first ? "{\"category\":" : ",{\"category\":");
		strbuf_json_string(&st->json, st->cfg->categories[c].name,
				   strlen(st->cfg->categories[c].name));
		strbuf_printf(&st->json, ",\"score\":%g,\"threshold\":%g,", r->v.score[c],
			      st->cfg->categories[c].threshold);
		eval_json_rules(st, r, c, fate);
		strbuf_putc(&st->json, '}');
		first = false;
	}
	strbuf_putc(&st->json, ']');
}

/* eval_record_mismatch - describe a message whose categories or language were wrong. */
static void eval_record_mismatch(struct eval_state *st, const struct eval_label *lab,
				 const struct pipeline_result *r, const bool *got, bool lang_ok)
{
	const struct config *cfg = st->cfg;
	long *fate = verdict_fates(st->cfg, st->rs, &r->mr);

	for (size_t c = 0; c < cfg->n_categories; c++) {
		if (lab->want[c] == got[c])
			continue;
		strbuf_printf(&st->text, "%-5s %s %-7s %-12s score %g/%g:", lab->want[c] ? "MISS" : "FALSE",
			      lab->file, lab->lang, cfg->categories[c].name, r->v.score[c],
			      cfg->categories[c].threshold);
		eval_text_rules(st, r, c, fate);
		strbuf_puts(&st->text, lab->hard ? "  [hard negative]\n" : "\n");
	}
	if (!lang_ok)
		strbuf_printf(&st->text, "LANG  %s %-7s detected %s\n", lab->file, lab->lang,
			      r->lang ? r->lang : "und");

	strbuf_puts(&st->json, st->first_mismatch ? "{\"file\":" : ",{\"file\":");
	st->first_mismatch = false;
	strbuf_json_string(&st->json, lab->file, strlen(lab->file));
	strbuf_puts(&st->json, ",\"lang\":");
	strbuf_json_string(&st->json, lab->lang, strlen(lab->lang));
	strbuf_puts(&st->json, ",\"detected_lang\":");
	strbuf_json_string(&st->json, r->lang ? r->lang : "und", strlen(r->lang ? r->lang : "und"));
	strbuf_printf(&st->json, ",\"hard_negative\":%s,\"expected\":", lab->hard ? "true" : "false");
	eval_json_cats(st, lab->want);
	strbuf_puts(&st->json, ",\"got\":");
	eval_json_cats(st, got);
	eval_json_wrong(st, r, lab->want, got, true, fate);
	eval_json_wrong(st, r, lab->want, got, false, fate);
	strbuf_putc(&st->json, '}');
	free(fate);
}

/* eval_score - add one message's outcome to the counters. */
static void eval_score(struct eval_state *st, struct eval_lang *l, const struct eval_label *lab,
		       const struct pipeline_result *r)
{
	bool got[CONFIG_MAX_CATEGORIES] = { false };
	bool any = false, wrong = false, lang_ok;

	for (size_t c = 0; c < st->cfg->n_categories; c++) {
		got[c] = r->have_verdict && r->v.present[c];
		any |= got[c];
		if (got[c] && lab->want[c])
			l->cat[c].tp++;
		else if (got[c])
			l->cat[c].fp++;
		else if (lab->want[c])
			l->cat[c].fn++;
		wrong |= got[c] != lab->want[c];
	}
	l->messages++;
	if (lab->none) {
		l->none++;
		l->none_fp += any;
		l->hard += lab->hard;
		l->hard_fp += lab->hard && any;
	}
	if (st->per_rule && r->have_verdict &&
	    rulestats_add(st->per_rule, st->cfg, st->rs, &r->mr, &r->v, lab->want) < 0)
		st->errors++;     /* out of memory: the per-rule counts would be short */
	lang_ok = r->lang && !strcmp(r->lang, lab->lang);
	l->lang_ok += lang_ok;
	st->rules_limited += (unsigned)r->mr.n_limit_rules;
	st->rules_skipped += (unsigned)r->mr.rules_skipped;
	if (wrong || !lang_ok)
		eval_record_mismatch(st, lab, r, got, lang_ok);
}

/* eval_message - run one labelled message through the pipeline; 0 or -1 (counted as error). */
static int eval_message(struct eval_state *st, const char *dir, const struct eval_label *lab)
{
	struct pipeline_env env = { st->cfg, st->rs, NULL, NULL };
	struct pipeline_input in;
	struct pipeline_result res;
	struct eval_lang *l = eval_lang_get(st, lab->lang);
	struct strbuf path;
	char *raw = NULL;
	size_t len;
	int rc = -1;

	strbuf_init(&path, 4096);
	if (!l) {
		(void)fprintf(stderr, "amendsctl: %s: too many or too long language codes\n",
			      lab->file);
		goto out;
	}
	if (strbuf_printf(&path, "%s/messages/%s", dir, lab->file) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: path too long\n", lab->file);
		goto out;
	}
	if (util_read_file(path.s, EVAL_MAX_MESSAGE, &raw, &len) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: %s\n", path.s, strerror(errno));
		goto out;
	}
	memset(&in, 0, sizeof(in));
	in.queue_id = "eval";
	in.envfrom = "";
	in.raw = raw;
	in.raw_len = len;
	if (pipeline_run(&env, &in, PIPELINE_DRY_RUN | PIPELINE_EXPLAIN, &res) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: the pipeline failed\n", path.s);
		pipeline_result_free(&res);
		goto out;
	}
	eval_score(st, l, lab, &res);
	pipeline_result_free(&res);
	st->messages++;
	rc = 0;
out:
	free(raw);
	strbuf_free(&path);
	return rc;
}

/* eval_corpus - read DIR/labels.tsv and evaluate every line; -1 when labels.tsv is unusable. */
static int eval_corpus(struct eval_state *st, const char *dir)
{
	struct strbuf path;
	char *buf = NULL, *line, *next;
	size_t len;
	int lineno = 0, rc = -1;

	strbuf_init(&path, 4096);
	if (strbuf_printf(&path, "%s/labels.tsv", dir) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: path too long\n", dir);
		goto out;
	}
	if (util_read_file(path.s, EVAL_MAX_LABELS, &buf, &len) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: %s\n", path.s, strerror(errno));
		goto out;
	}
	for (line = buf; line && *line; line = next) {
		struct eval_label lab;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		if (!*util_trim(line) || line[0] == '#' || (lineno == 1 && !strncmp(line, "file\t", 5)))
			continue;
		if (eval_parse_label(st->cfg, line, lineno, &lab) < 0 || eval_message(st, dir, &lab) < 0)
			st->errors++;
	}
	rc = 0;
out:
	free(buf);
	strbuf_free(&path);
	return rc;
}

/* ---------------------------------------------------------------- reports */

static void eval_overall(const struct eval_state *st, struct eval_lang *all)
{
	memset(all, 0, sizeof(*all));
	for (size_t i = 0; i < st->n_langs; i++) {
		const struct eval_lang *l = &st->langs[i];

		all->messages += l->messages;
		all->none += l->none;
		all->none_fp += l->none_fp;
		all->hard += l->hard;
		all->hard_fp += l->hard_fp;
		all->lang_ok += l->lang_ok;
		for (size_t c = 0; c < st->cfg->n_categories && c < CONFIG_MAX_CATEGORIES; c++) {
			all->cat[c].tp += l->cat[c].tp;
			all->cat[c].fp += l->cat[c].fp;
			all->cat[c].fn += l->cat[c].fn;
		}
	}
}

static void eval_print_table(const struct eval_state *st)
{
	const struct config *cfg = st->cfg;
	struct eval_lang all;
	double p, r, f;

	printf("| lang | msgs |");
	for (size_t c = 0; c < cfg->n_categories; c++)
		printf(" %s F1 |", cfg->categories[c].name);
	printf(" macro-F1 | FP on none | lang detected |\n|---|---|");
	for (size_t c = 0; c < cfg->n_categories; c++)
		printf("---|");
	printf("---|---|---|\n");
	for (size_t i = 0; i < st->n_langs; i++) {
		const struct eval_lang *l = &st->langs[i];

		if (!l->messages)
			continue;
		printf("| %s | %u |", l->code, l->messages);
		for (size_t c = 0; c < cfg->n_categories; c++) {
			eval_prf(&l->cat[c], &p, &r, &f);
			printf(" %.2f |", f);
		}
		printf(" **%.3f** | %u/%u | %u/%u |\n", eval_macro_f1(st, l), l->none_fp, l->none,
		       l->lang_ok, l->messages);
	}
	eval_overall(st, &all);
	printf("| **all** | %u |", all.messages);
	for (size_t c = 0; c < cfg->n_categories; c++) {
		eval_prf(&all.cat[c], &p, &r, &f);
		printf(" %.2f |", f);
	}
	printf(" | %u/%u (%.1f%%) | %u/%u (%.1f%%) |\n", all.none_fp, all.none,
	       100 * eval_ratio(all.none_fp, all.none, 0), all.lang_ok, all.messages,
	       100 * eval_ratio(all.lang_ok, all.messages, 0));
}

static void eval_print_text(const struct eval_state *st, const struct eval_opts *o)
{
	const struct config *cfg = st->cfg;
	struct eval_lang all;
	double p, r, f;

	printf("amendsctl eval %s: %u messages, %zu rules from %s%s\n\n", o->dir, st->messages,
	       st->rs ? st->rs->n_rules : 0, o->rules_dir, st->errors ? " (SOME MESSAGES FAILED)" : "");
	eval_print_table(st);
	printf("\nper category: precision recall F1 (tp fp fn)\n");
	for (size_t i = 0; i < st->n_langs; i++) {
		const struct eval_lang *l = &st->langs[i];

		for (size_t c = 0; l->messages && c < cfg->n_categories; c++) {
			eval_prf(&l->cat[c], &p, &r, &f);
			printf("  %-8s %-13s P %.2f  R %.2f  F1 %.2f  (%u %u %u)\n", l->code,
			       cfg->categories[c].name, p, r, f, l->cat[c].tp, l->cat[c].fp, l->cat[c].fn);
		}
	}
	eval_overall(st, &all);
	printf("\nfalse positives on none: %u/%u = %.1f%% (hard negatives %u/%u)\n", all.none_fp,
	       all.none, 100 * eval_ratio(all.none_fp, all.none, 0), all.hard_fp, all.hard);
	printf("language detection: %u/%u = %.1f%%\n", all.lang_ok, all.messages,
	       100 * eval_ratio(all.lang_ok, all.messages, 0));
	if (st->rules_limited || st->rules_skipped)
		printf("WARNING: %u rule run(s) stopped by a PCRE2 limit or time budget, %u skipped at the deadline\n",
		       st->rules_limited, st->rules_skipped);
	if (st->errors)
		printf("errors: %u message(s) could not be evaluated\n", st->errors);
	printf("\nmisses (MISS), false hits (FALSE) and wrong languages (LANG):\n%s",
	       st->text.len ? st->text.s : "  (none)\n");
	if (st->per_rule && rulestats_print(st->per_rule, cfg, st->rs, stdout) < 0)
		printf("\nper rule: out of memory\n");
}

static void eval_json_num(struct strbuf *b, const char *name, double v)
{
	if (isnan(v))
		strbuf_printf(b, "\"%s\":null", name);
	else
		strbuf_printf(b, "\"%s\":%.4f", name, v);
}

static void eval_json_lang(struct strbuf *b, const struct eval_state *st, const struct eval_lang *l)
{
	double p, r, f;

	strbuf_puts(b, "{\"lang\":");
	strbuf_json_string(b, l->code, strlen(l->code));
	strbuf_printf(b, ",\"messages\":%u,", l->messages);
	eval_json_num(b, "macro_f1", eval_macro_f1(st, l));
	strbuf_puts(b, ",\"categories\":{");
	for (size_t c = 0; c < st->cfg->n_categories; c++) {
		eval_prf(&l->cat[c], &p, &r, &f);
		strbuf_printf(b, "%s\"%s\":{\"tp\":%u,\"fp\":%u,\"fn\":%u,", c ? "," : "",
			      st->cfg->categories[c].name, l->cat[c].tp, l->cat[c].fp, l->cat[c].fn);
		eval_json_num(b, "precision", p);
		strbuf_putc(b, ',');
		eval_json_num(b, "recall", r);
		strbuf_putc(b, ',');
		eval_json_num(b, "f1", f);
		strbuf_putc(b, '}');
	}
	strbuf_printf(b, "},\"none\":%u,\"none_fp\":%u,", l->none, l->none_fp);
	eval_json_num(b, "none_fp_rate", eval_ratio(l->none_fp, l->none, 0));
	strbuf_printf(b, ",\"hard_negatives\":%u,\"hard_negative_fp\":%u,\"lang_correct\":%u,",
		      l->hard, l->hard_fp, l->lang_ok);
	eval_json_num(b, "lang_accuracy", eval_ratio(l->lang_ok, l->messages, 0));
	strbuf_putc(b, '}');
}

/* eval_targets - check the given targets; failures go to fail (one text per line). */
static bool eval_targets(const struct eval_state *st, const struct eval_opts *o, struct strbuf *fail)
{
	struct eval_lang all;
	double fp, acc;

	for (size_t i = 0; i < st->n_langs; i++) {
		const struct eval_lang *l = &st->langs[i];
		double want = eval_is_latn(l->code) ? o->min_f1_latn : o->min_f1;
		double got = eval_macro_f1(st, l);

		if (l->messages && !isnan(want) && got < want)
			strbuf_printf(fail, "macro-F1 %s %.3f < %.2f\n", l->code, got, want);
	}
	eval_overall(st, &all);
	fp = eval_ratio(all.none_fp, all.none, 0);
	acc = eval_ratio(all.lang_ok, all.messages, 0);
	if (!isnan(o->max_fp) && fp > o->max_fp)
		strbuf_printf(fail, "false positives on none %.3f > %.2f\n", fp, o->max_fp);
	if (!isnan(o->min_lang) && acc < o->min_lang)
		strbuf_printf(fail, "language detection %.3f < %.2f\n", acc, o->min_lang);
	for (size_t c = 0; c < st->cfg->n_categories && c < CONFIG_MAX_CATEGORIES; c++) {
		double p, r, f;

		if (isnan(o->min_cat_f1[c]))
			continue;
		eval_prf(&all.cat[c], &p, &r, &f);
		if (f < o->min_cat_f1[c])
			strbuf_printf(fail, "%s F1 (all languages) %.3f < %.2f\n",
				      st->cfg->categories[c].name, f, o->min_cat_f1[c]);
	}
	if (st->errors)
		strbuf_printf(fail, "%u message(s) could not be evaluated\n", st->errors);
	return fail->len == 0;
}

static void eval_print_json(const struct eval_state *st, const struct eval_opts *o,
			    const struct strbuf *fail, bool passed)
{
	struct strbuf b;
	struct eval_lang all;
	bool first = true;

	strbuf_init(&b, 0);
	strbuf_puts(&b, "{\"corpus\":");
	strbuf_json_string(&b, o->dir, strlen(o->dir));
	strbuf_puts(&b, ",\"rules_dir\":");
	strbuf_json_string(&b, o->rules_dir, strlen(o->rules_dir));
	strbuf_printf(&b, ",\"rules\":%zu,\"messages\":%u,\"errors\":%u,\"categories\":[",
		      st->rs ? st->rs->n_rules : 0, st->messages, st->errors);
	for (size_t c = 0; c < st->cfg->n_categories; c++)
		strbuf_printf(&b, "%s\"%s\"", c ? "," : "", st->cfg->categories[c].name);
	strbuf_puts(&b, "],\"languages\":[");
	for (size_t i = 0; i < st->n_langs; i++) {
		if (!st->langs[i].messages)
			continue;
		strbuf_puts(&b, first ? "" : ",");
		eval_json_lang(&b, st, &st->langs[i]);
		first = false;
	}
	eval_overall(st, &all);
	strbuf_printf(&b, "],\"overall\":{\"none\":%u,\"none_fp\":%u,", all.none, all.none_fp);
	eval_json_num(&b, "none_fp_rate", eval_ratio(all.none_fp, all.none, 0));
	strbuf_printf(&b, ",\"hard_negatives\":%u,\"hard_negative_fp\":%u,\"lang_correct\":%u,",
		      all.hard, all.hard_fp, all.lang_ok);
	eval_json_num(&b, "lang_accuracy", eval_ratio(all.lang_ok, all.messages, 0));
	strbuf_printf(&b, ",\"rules_limited\":%u,\"rules_skipped\":%u},\"mismatches\":[",
		      st->rules_limited, st->rules_skipped);
	strbuf_append(&b, st->json.s ? st->json.s : "", st->json.len);
	strbuf_putc(&b, ']');
	if (st->per_rule) {
		strbuf_putc(&b, ',');
		if (rulestats_json(st->per_rule, st->cfg, st->rs, &b) < 0)
			strbuf_puts(&b, "\"per_rule\":null,\"never_matched\":null");
	}
	strbuf_puts(&b, ",\"targets\":{");
	eval_json_num(&b, "min_f1", o->min_f1);
	strbuf_putc(&b, ',');
	eval_json_num(&b, "min_f1_latn", o->min_f1_latn);
	strbuf_putc(&b, ',');
	eval_json_num(&b, "max_fp", o->max_fp);
	strbuf_putc(&b, ',');
	eval_json_num(&b, "min_lang", o->min_lang);
	strbuf_puts(&b, ",\"min_cat_f1\":{");
	first = true;
	for (size_t c = 0; c < st->cfg->n_categories && c < CONFIG_MAX_CATEGORIES; c++) {
		if (isnan(o->min_cat_f1[c]))
			continue;
		strbuf_puts(&b, first ? "" : ",");
		eval_json_num(&b, st->cfg->categories[c].name, o->min_cat_f1[c]);
		first = false;
	}
	strbuf_printf(&b, "},\"passed\":%s,\"failures\":[", passed ? "true" : "false");
	first = true;
	for (const char *s = fail->s; s && *s;) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);

		strbuf_puts(&b, first ? "" : ",");
		strbuf_json_string(&b, s, n);
		first = false;
		s += n + (nl != NULL);
	}
	strbuf_puts(&b, "]}}\n");
	(void)fwrite(b.s, 1, b.len, stdout);
	strbuf_free(&b);
}

/* ---------------------------------------------------------------- main */

static int eval_usage(void)
{
	(void)fprintf(stderr, "usage: amendsctl eval DIR [--json] [--per-rule] [--rules DIR] [--deadline-ms N] "
			"[--min-f1 X] [--min-f1-latn X] [--max-fp X] [--min-lang X] "
			"[--min-cat-f1 CATEGORY=X]...\n");
	return 2;
}

/* eval_number - parse a target in 0..1; false when it is not one. */
static bool eval_number(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= 1))
		return false;
	*out = v;
	return true;
}

/* eval_cat_floor - "CATEGORY=X" for --min-cat-f1; false when the category is not in the
 * config or X is not a number in 0..1. */
static bool eval_cat_floor(const struct config *cfg, const char *arg, struct eval_opts *o)
{
	const char *eq = strchr(arg, '=');
	char name[64];
	int c;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name))
		return false;
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	c = config_category_index(cfg, name);
	if (c < 0 || c >= CONFIG_MAX_CATEGORIES)
		return false;
	return eval_number(eq + 1, &o->min_cat_f1[c]);
}

static int eval_parse_args(const struct config *cfg, int argc, char **argv, struct eval_opts *o)
{
	static const char *const num_opts[] = { "--min-f1", "--min-f1-latn", "--max-fp", "--min-lang" };
	double *num_dst[] = { &o->min_f1, &o->min_f1_latn, &o->max_fp, &o->min_lang };

	o->min_f1 = o->min_f1_latn = o->max_fp = o->min_lang = NAN;
	for (size_t c = 0; c < CONFIG_MAX_CATEGORIES; c++)
		o->min_cat_f1[c] = NAN;
	o->deadline_ms = EVAL_DEADLINE_MS;
	for (int i = 1; i < argc; i++) {
		size_t k;

		if (!strcmp(argv[i], "--json")) {
			o->json = true;
			continue;
		}
		if (!strcmp(argv[i], "--per-rule")) {
			o->per_rule = true;
			continue;
		}
		if (!strcmp(argv[i], "--rules") && i + 1 < argc) {
			o->rules_dir = argv[++i];
			continue;
		}
		if (!strcmp(argv[i], "--min-cat-f1")) {
			if (i + 1 >= argc || !eval_cat_floor(cfg, argv[++i], o)) {
				(void)fprintf(stderr, "amendsctl: --min-cat-f1 needs CATEGORY=X, a "
					      "category of the configuration and X between 0 and 1\n");
				return -1;
			}
			continue;
		}
		if (!strcmp(argv[i], "--deadline-ms") && i + 1 < argc) {
			char *end;

			errno = 0;
			o->deadline_ms = strtol(argv[++i], &end, 10);
			if (errno || *end || o->deadline_ms < 1 || o->deadline_ms > 600000)
				return -1;
			continue;
		}
		for (k = 0; k < UTIL_ARRAY_LEN(num_opts); k++)
			if (!strcmp(argv[i], num_opts[k]))
				break;
		if (k < UTIL_ARRAY_LEN(num_opts)) {
			if (i + 1 >= argc || !eval_number(argv[++i], num_dst[k])) {
				(void)fprintf(stderr, "amendsctl: %s needs a number "
					      "between 0 and 1\n", num_opts[k]);
				return -1;
			}
			continue;
		}
		if (argv[i][0] == '-' || o->dir)
			return -1;
		o->dir = argv[i];
	}
	return o->dir ? 0 : -1;
}

int ctl_eval_main(const struct config *cfg, int argc, char **argv)
{
	struct eval_opts o;
	struct config ecfg;
	struct eval_state st;
	struct ruleset *rs;
	struct strbuf fail;
	struct diag d;
	bool passed;

	memset(&o, 0, sizeof(o));
	if (eval_parse_args(cfg, argc, argv, &o) < 0)
		return eval_usage();
	if (!o.rules_dir)
		o.rules_dir = cfg->rules.dir;
	/* A shallow copy that only changes the deadline; every pointer stays cfg's. */
	memcpy(&ecfg, cfg, sizeof(ecfg));
	if (ecfg.rules.deadline_ms < o.deadline_ms)
		ecfg.rules.deadline_ms = o.deadline_ms;
	cfg = &ecfg;
	diag_init(&d);
	rs = rules_load(o.rules_dir, cfg, &d);
	if (!rs) {
		diag_print(&d, stderr);
		diag_free(&d);
		return 1;
	}
	diag_free(&d);
	eval_state_init(&st, cfg, rs);
	if (o.per_rule && !(st.per_rule = rulestats_new(rs))) {
		(void)fprintf(stderr, "amendsctl: out of memory\n");
		rules_unref(rs);
		strbuf_free(&st.text);
		strbuf_free(&st.json);
		return 1;
	}
	if (eval_corpus(&st, o.dir) < 0) {
		rulestats_free(st.per_rule);
		rules_unref(rs);
		strbuf_free(&st.text);
		strbuf_free(&st.json);
		return 1;
	}
	strbuf_init(&fail, 0);
	passed = eval_targets(&st, &o, &fail);
	if (o.json) {
		eval_print_json(&st, &o, &fail, passed);
	} else {
		eval_print_text(&st, &o);
		printf("\ntargets: %s\n%s", passed ? "met" : "MISSED", fail.len ? fail.s : "");
	}
	strbuf_free(&fail);
	strbuf_free(&st.text);
	strbuf_free(&st.json);
	rulestats_free(st.per_rule);
	rules_unref(rs);
	return passed ? 0 : 1;
}
