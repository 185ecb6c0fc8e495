/*
 * policy.h - from a message's verdict and its sender's tally to "which draft, if any"
 *
 * Defaults (every number in the config): winback as soon as a cancellation is seen; apology when
 * the complaint tally reaches 2; partways when >= 2 distinct problem categories sum to >= 5, never
 * for long-standing customers. At most one draft per message, in precedence
 * partways > winback > apology; policy_due() lists the due kinds in that order and the caller takes
 * the first one the 7-day dedupe allows (tally_draft_claim). RFC 3834 suppression (auto-submitted,
 * bulk/list, bounces, our own addresses and drafts) is policy_suppressed().
 */
#ifndef AMENDS_POLICY_H
#define AMENDS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "rules.h"
#include "message.h"
#include "verdict.h"
#include "tally.h"

enum policy_draft {
	POLICY_DRAFT_NONE = 0,
	POLICY_DRAFT_PARTWAYS,
	POLICY_DRAFT_WINBACK,
	POLICY_DRAFT_APOLOGY,
};

const char *policy_draft_name(enum policy_draft k);
enum policy_draft policy_draft_parse(const char *name);
/* Returns NULL when drafting is allowed, else a static reason ("auto-submitted", "list", ...). */
const char *policy_suppressed(const struct config *cfg, const struct message *msg,
			      const char *envfrom, const char *sender);
/* Fill out[] (up to 3) with the due kinds in precedence order; returns how many. */
size_t policy_due(const struct config *cfg, const struct ruleset *rs, const char *sender,
		  const struct verdict *v, const struct tally_counts *counts,
		  enum policy_draft out[3]);
/* Take the kinds of due[] in order and claim the first one the dedupe allows
 * (tally_draft_claim at now): *chosen is that kind, or NONE when every due kind was drafted
 * for this sender within dedupe_days. Returns 0, or -1 when the tally failed (then *chosen is
 * NONE: without a claim no draft is written, so a store outage never multiplies letters). */
int policy_claim(struct tally *t, const char *sender, const enum policy_draft *due, size_t n,
		 time_t now, enum policy_draft *chosen);
/* Does the verdict carry the escalation category (cfg->policy.escalate_category, "abuse")?
 * The caller then adds "X-Amends-Escalate: <category>". */
bool policy_escalate(const struct config *cfg, const struct verdict *v);

#endif
