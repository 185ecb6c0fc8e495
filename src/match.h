/*
 * match.h - run a ruleset over one message's normalized texts, within limits
 *
 * Each rule runs on its target's text, capped at target_cap_bytes; the PCRE2 match context
 * carries match/depth/heap limits; the whole phase has a deadline checked between rules (a match
 * limit alone does not bound time: it restarts at every start position). Rules stopped by a
 * limit or by their time budget (rule_budget_ms; windowed matching, see match.c) are recorded
 * (never silently "no match"); rules not run because of the deadline are counted. match_data and the JIT stack are per thread (match_thread_state).
 *
 * OWNERSHIP  match_run() fills a caller-owned struct match_result, which must be zeroed before
 *            its first use (later calls reuse its arrays); free its contents with
 *            match_result_free(). It keeps a reference to nothing.
 * Texts must be normalized (normalize_text): the prefilter relies on their case folding.
 */
#ifndef AMENDS_MATCH_H
#define AMENDS_MATCH_H

#include <stddef.h>
#include <stdbool.h>
#include "rules.h"

struct match_subjects {
	/* normalized UTF-8 texts; NULL/0 = empty */
	const char *text[RULES_TARGET_COUNT];
	size_t len[RULES_TARGET_COUNT];
	/* for RULES_TARGET_HEADER: normalized decoded header values */
	const char *const *header_names;
	const char *const *header_values;
	size_t n_headers;
	const char *queue_id;      /* for log lines; NULL = "-" */
};

struct match_limits {
	unsigned long match_limit;
	unsigned long depth_limit;
	unsigned long heap_limit_kib;
	size_t target_cap_bytes;
	long deadline_ms;          /* whole phase; <= 0: none */
	long rule_budget_ms;       /* one rule over all its texts; <= 0: only the deadline */
	bool no_prefilter;         /* tests and benchmarks: run every rule */
	size_t window_bytes;       /* tests: fixed window size (0 = adaptive, see match.c) */
};

struct match_hit {
	size_t rule;               /* index into ruleset->rules */
	enum rules_target target;
	size_t offset, length;     /* in the normalized target text */
	int header_index;          /* for header targets, else -1 */
};

struct match_result {
	struct match_hit *hits;    /* at most one per rule (distinct rules) */
	size_t n_hits, cap_hits;
	size_t *limit_rules;       /* rules stopped by a PCRE2 limit */
	size_t n_limit_rules, cap_limit_rules;
	size_t rules_run;          /* rules evaluated (prefiltered ones included) */
	size_t rules_skipped;      /* not run: deadline passed */
	size_t rules_prefiltered;  /* not run: none of its anchors occurs (non-header targets) */
	bool deadline_hit;
	bool cap_hit;              /* some target text was cut at target_cap_bytes */
	long elapsed_us;
};

void match_limits_from_config(const struct config *cfg, struct match_limits *lim);
int match_run(const struct ruleset *rs, const struct match_subjects *subj,
	      const struct match_limits *lim, struct match_result *res);
void match_result_free(struct match_result *res);
/* Free this thread's match data and JIT stack (called by thread exit handlers, and tests). */
void match_thread_cleanup(void);

#endif
