/*
 * fuzz_rules.c - libFuzzer target: the rule-file parser, the linter and matching (R2.1 c)
 *
 * The input is one rule file, loaded with rules_load_buffer() for the built-in default config.
 * Oracle: never crashes; every diagnostic names the file and a line (>= 1), has text, and there
 * are at most 200 of them (+1 for "too many"); a file with errors gives no ruleset, a ruleset
 * comes with no errors and only compiled, named, categorised rules. A ruleset of up to 8 rules
 * is also linted (same diagnostic rules) and run over the input's own normalized text under the
 * default match limits, so a pattern the fuzzer writes meets text it writes (ReDoS shows up as
 * a libFuzzer timeout). Lint may add file-less warnings about the whole set (no JIT). The run
 * is repeated without the prefilter (no anchors, no lead places: every rule searched): when
 * neither run met a limit, both must give the same hits at the same offsets, so a wrong anchor
 * or lead (rules_anchors.c) shows up as a finding.
 *
 * Most inputs load with rules.unsafe_rules "contain", so that the fuzzer's backtracking patterns
 * meet the match limits at run time. Small inputs of odd length load with "refuse" (the
 * default): a ruleset that load accepts must then draw no unsafe-rule finding from lint (the
 * static checks and the limit probes are the same code, so lint and load must agree). Large
 * inputs stay "contain" because refusing runs every rule over the probes at load, up to ~1 ms
 * each for a rule that nears the match limit.
 *
 * OWNERSHIP  Everything is freed before returning.
 */
#include "fuzz_common.h"
#include "match.h"
#include "normalize.h"
#include "rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_RULES_FILE "fuzz.rules"
#define FUZZ_LINT_MAX_RULES 8
#define FUZZ_REFUSE_MAX_BYTES 2048

/* A lint finding about a rule that can backtrack catastrophically (not the timed one: timing
 * is the machine's, not the rule's). */
static bool unsafe_finding(const struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const char *t = d->v[i].text ? d->v[i].text : "";

		if (strstr(t, "nested unbounded quantifiers") || strstr(t, "alternatives that can") ||
		    strstr(t, "stops at a PCRE2 limit"))
			return true;
	}
	return false;
}

/* lint may add warnings about the whole set (no JIT): those name no file */
static void check_diag(const struct diag *d, bool global_warnings)
{
	FUZZ_CHECK(d->n <= 201, "%zu diagnostics, more than 200", d->n);
	for (size_t i = 0; i < d->n; i++) {
		const struct diag_entry *e = &d->v[i];

		if (e->file && *e->file && e->line >= 1 && e->text && *e->text)
			continue;
		if (global_warnings && e->sev == DIAG_WARNING && e->text && *e->text)
			continue;
		diag_print(d, stderr);
		fuzz_fail("diagnostic %zu lacks a file, a line or text: \"%s:%d: %s\"", i,
			  e->file ? e->file : "(null)", e->line, e->text ? e->text : "(null)");
	}
}

static void check_ruleset(const struct ruleset *rs, const struct config *cfg)
{
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];

		FUZZ_CHECK(r->name && *r->name && r->code && r->pattern, "rule %zu incomplete", i);
		FUZZ_CHECK(r->category >= 0 && (size_t)r->category < cfg->n_categories,
			   "rule %s has category %d", r->name, r->category);
		FUZZ_CHECK((int)r->target < RULES_TARGET_COUNT,
			   "rule %s has target %d", r->name, (int)r->target);
		FUZZ_CHECK(r->target != RULES_TARGET_HEADER || (r->header_name && *r->header_name),
			   "rule %s: header target without a name", r->name);
		FUZZ_CHECK(r->line >= 1 && r->pattern_line >= 1, "rule %s without a line", r->name);
	}
}

/* The hits of a run with the prefilter (mr) and of one without it must be the same, unless a
 * limit or the deadline stopped a rule in either (then they may differ by that rule). */
static void same_without_prefilter(const struct ruleset *rs, const struct match_subjects *subj,
				   const struct match_limits *lim, const struct match_result *mr)
{
	struct match_limits all = *lim;
	struct match_result m2;

	if (mr->n_limit_rules || mr->deadline_hit)
		return;
	all.no_prefilter = true;
	memset(&m2, 0, sizeof(m2));
	FUZZ_CHECK(match_run(rs, subj, &all, &m2) == 0, "match_run without prefilter failed");
	if (!m2.n_limit_rules && !m2.deadline_hit) {
		FUZZ_CHECK(m2.n_hits == mr->n_hits, "%zu hits with the prefilter, %zu without",
			   mr->n_hits, m2.n_hits);
		for (size_t i = 0; i < mr->n_hits; i++) {
			const struct match_hit *a = &mr->hits[i], *b = &m2.hits[i];

			if (a->rule != b->rule || a->target != b->target || a->offset != b->offset ||
			    a->length != b->length || a->header_index != b->header_index)
				fuzz_fail("hit %zu: rule %s at %zu+%zu with the prefilter, rule %s at "
					  "%zu+%zu without", i, rs->rules[a->rule].name,
					  (size_t)a->offset, (size_t)a->length, rs->rules[b->rule].name,
					  (size_t)b->offset, (size_t)b->length);
		}
	}
	match_result_free(&m2);
}

static void match_self(const struct ruleset *rs, const struct config *cfg, const uint8_t *data,
		       size_t size)
{
	size_t n = 0;
	char *text = normalize_text((const char *)data, size, true, &n);
	const char *hname = "subject";
	struct match_subjects subj;
	struct match_limits lim;
	struct match_result mr;

	FUZZ_CHECK(text != NULL, "normalize_text failed");
	memset(&subj, 0, sizeof(subj));
	for (int t = 0; t < RULES_TARGET_COUNT; t++) {
		subj.text[t] = text;
		subj.len[t] = n;
	}
	subj.header_names = &hname;
	subj.header_values = (const char *const *)&text;
	subj.n_headers = 1;
	match_limits_from_config(cfg, &lim);
	memset(&mr, 0, sizeof(mr));
	FUZZ_CHECK(match_run(rs, &subj, &lim, &mr) == 0, "match_run failed");
	FUZZ_CHECK(mr.n_hits <= rs->n_rules, "%zu hits from %zu rules", mr.n_hits, rs->n_rules);
	for (size_t i = 0; i < mr.n_hits; i++) {
		const struct match_hit *h = &mr.hits[i];

		FUZZ_CHECK(h->rule < rs->n_rules, "hit of rule %zu", h->rule);
		FUZZ_CHECK(h->offset <= n && h->length <= n - h->offset, "hit outside its text");
	}
	same_without_prefilter(rs, &subj, &lim, &mr);
	match_result_free(&mr);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = fuzz_config();
	struct diag d;
	struct ruleset *rs;

	/* one process, one thread: the flag is set before each load and read by it and lint */
	cfg->rules.refuse_unsafe = size <= FUZZ_REFUSE_MAX_BYTES && (size & 1);
	diag_init(&d);
	rs = rules_load_buffer(FUZZ_RULES_FILE, (const char *)data, size, cfg, &d);
	check_diag(&d, false);
	FUZZ_CHECK(!rs == (d.errors > 0), "ruleset %s with %zu errors", rs ? "returned" : "refused",
		   d.errors);
	if (rs) {
		check_ruleset(rs, cfg);
		if (rs->n_rules <= FUZZ_LINT_MAX_RULES) {
			struct diag lint;

			diag_init(&lint);
			rules_lint(rs, cfg, &lint);
			check_diag(&lint, true);
			if (cfg->rules.refuse_unsafe && unsafe_finding(&lint)) {
				diag_print(&lint, stderr);
				fuzz_fail("load accepted rules that lint calls unsafe");
			}
			diag_free(&lint);
			match_self(rs, cfg, data, size);
		}
		rules_unref(rs);
	}
	diag_free(&d);
	return 0;
}
