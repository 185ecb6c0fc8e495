/*
 * pipeline.h - the one pass over a message, shared by the daemon, amendsctl and the tests
 *
 * message (decode) -> normalize -> lang -> rules (match) -> verdict -> tally -> policy -> draft,
 * and the headers to add. No libmilter type appears here: milter.c turns the result into
 * smfi_* calls, amendsctl check prints it.
 *
 * OWNERSHIP  pipeline_run() fills a caller-owned result; free it with pipeline_result_free().
 *            The env is borrowed for the call (the caller holds the config/ruleset references).
 */
#ifndef AMENDS_PIPELINE_H
#define AMENDS_PIPELINE_H

#include <stddef.h>
#include <stdbool.h>
#include "config.h"
#include "rules.h"
#include "message.h"
#include "match.h"
#include "verdict.h"
#include "tally.h"
#include "policy.h"

struct drafter;

struct pipeline_env {
	const struct config *cfg;
	const struct ruleset *rs;     /* NULL: no rules (verdict No) */
	struct tally *tally;          /* NULL: no tally */
	struct drafter *drafter;      /* NULL: no drafts */
};

struct pipeline_input {
	const char *queue_id;         /* "" when unknown */
	const char *envfrom;          /* envelope sender without <>, "" for the null sender */
	const char *raw;              /* headers + blank line + body, as collected */
	size_t raw_len;
	bool truncated;               /* the body was cut at max_scan_bytes */
};

enum {
	PIPELINE_DRY_RUN = 1 << 0,    /* no tally writes, no drafts (amendsctl check) */
	PIPELINE_EXPLAIN = 1 << 1,    /* keep the normalized texts for explanations */
	PIPELINE_SHOW_SHADOWED = 1 << 2, /* decode HTML alternatives of a text/plain too (for
					  * display: they are never matched) */
};

struct pipeline_header {
	char *name;
	char *value;                  /* single line, ASCII-safe, injection-free */
};

enum {
	PIPELINE_FAIL_PARSE = 1 << 0,
	PIPELINE_FAIL_MATCH = 1 << 1,
	PIPELINE_FAIL_TALLY = 1 << 2,
	PIPELINE_FAIL_DRAFT = 1 << 3,
};

/* Where pipeline_result.counts came from: X-Amends-Tally reports only a store's counts. */
enum pipeline_counts_src {
	PIPELINE_COUNTS_NONE = 0,     /* no store or no sender: this message's own categories */
	PIPELINE_COUNTS_STORED,       /* the store, this message included */
	PIPELINE_COUNTS_READ,         /* the store, without this message (dry run) */
	PIPELINE_COUNTS_UNRECORDED,   /* the store failed: this message's own categories */
};

struct pipeline_result {
	struct message *msg;
	const char *lang;             /* static string from lang_detect */
	char *norm[RULES_TARGET_COUNT];   /* normalized target texts */
	size_t norm_len[RULES_TARGET_COUNT];
	char **norm_header_names, **norm_header_values;
	size_t n_norm_headers;
	struct match_result mr;
	struct verdict v;
	bool have_verdict;
	char *sender;                 /* tally key, may be NULL */
	struct tally_counts counts;   /* what the policy decides on; see counts_src */
	enum pipeline_counts_src counts_src;
	const char *suppressed;       /* why no draft may be written, or NULL */
	enum policy_draft draft;      /* the draft claimed for this message */
	bool draft_written;
	struct pipeline_header add[16];
	size_t n_add;
	char *new_subject;            /* when subject tagging changes it, else NULL */
	unsigned failures;            /* PIPELINE_FAIL_* */
	long elapsed_us;
};

int pipeline_run(const struct pipeline_env *env, const struct pipeline_input *in, unsigned flags,
		 struct pipeline_result *res);
void pipeline_result_free(struct pipeline_result *res);

#endif
