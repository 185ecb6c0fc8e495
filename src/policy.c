/*
 * policy.c - from a message's verdict and its sender's tally to "which draft, if any"
 *
 * Two questions, kept apart so the caller can tag and count a message whatever the answers:
 *   policy_suppressed() - may amends ever answer this message? (RFC 3834 section 2, as Sieve
 *       vacation reads it: no answer to automatic mail, lists, bounces, ourselves);
 *   policy_due() - which kinds of draft the default policy calls for, in precedence order
 *       partways > winback > apology; the caller claims the first one the dedupe allows with
 *       tally_draft_claim(), so at most one draft goes out per message.
 * The scenario corpus accepts several readings of the policy; this one drafts an apology only
 * on a message that itself carries a complaint ("the tally, this message included, reaches
 * N") and partways only on a message that carries a problem category, so a thank-you note is
 * never answered with a complaint letter.
 *
 * OWNERSHIP  borrows everything; returns static strings.
 * DIAGNOSTICS  none: a missing tally (store down) just leaves the count-based kinds undue.
 */
#include "policy.h"

#include <string.h>
#include <strings.h>

#include "util.h"

/* The categories the default policy names. The config has no keys for them (yet): a site that
 * renames them keeps tagging but loses these two kinds of draft. */
#define POLICY_CAT_COMPLAINT "complaint"
#define POLICY_CAT_CANCELLATION "cancellation"

static const char *const policy_names[] = {
	[POLICY_DRAFT_NONE] = "none",
	[POLICY_DRAFT_PARTWAYS] = "partways",
	[POLICY_DRAFT_WINBACK] = "winback",
	[POLICY_DRAFT_APOLOGY] = "apology",
};

const char *policy_draft_name(enum policy_draft k)
{
	if ((size_t)k >= UTIL_ARRAY_LEN(policy_names))
		return "none";
	return policy_names[k];
}

enum policy_draft policy_draft_parse(const char *name)
{
	size_t i;

	for (i = 1; name && i < UTIL_ARRAY_LEN(policy_names); i++)
		if (strcasecmp(name, policy_names[i]) == 0)
			return (enum policy_draft)i;
	return POLICY_DRAFT_NONE;
}

/* ---- suppression ---------------------------------------------------------------------------- */

/* first_token - the leading token of a header value, lowercased, without comments or params */
static void first_token(const char *v, char *out, size_t outsz)
{
	size_t n = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	while (*v && *v != ';' && *v != '(' && *v != ' ' && *v != '\t' && *v != ',' &&
	       n + 1 < outsz) {
		char c = *v++;

		out[n++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
	}
	out[n] = '\0';
}

/* has_token - comma/space separated list v contains tok (case-insensitive) */
static bool has_token(const char *v, const char *tok)
{
	size_t tl = strlen(tok);

	while (*v) {
		size_t n;

		while (*v == ',' || *v == ' ' || *v == '\t' || *v == ';')
			v++;
		n = strcspn(v, ", \t;");
		if (n == tl && strncasecmp(v, tok, tl) == 0)
			return true;
		v += n;
	}
	return false;
}

/* header_reason - why this one header forbids an answer, or NULL */
static const char *header_reason(const char *name, const char *value)
{
	char tok[32];

	if (!name)
		return NULL;
	if (!value)
		value = "";
	if (strcasecmp(name, "Auto-Submitted") == 0) {
		/* RFC 3834 3.1.7: anything but "no" is automatic; an empty value is treated as
		 * automatic too (it cannot be "no") */
		first_token(value, tok, sizeof(tok));
		return strcmp(tok, "no") == 0 ? NULL : "auto-submitted";
	}
	if (strcasecmp(name, "Precedence") == 0) {
		first_token(value, tok, sizeof(tok));
		if (!strcmp(tok, "bulk") || !strcmp(tok, "list") || !strcmp(tok, "junk"))
			return "precedence";
		return NULL;
	}
	if (strncasecmp(name, "List-", 5) == 0 && name[5])
		return "list";
	if (strcasecmp(name, "X-Auto-Response-Suppress") == 0)
		return has_token(value, "All") || has_token(value, "OOF") ? "auto-response-suppress" : NULL;
	if (strcasecmp(name, "X-Amends-Draft-Kind") == 0)
		return "own-draft";
	return NULL;
}

/* system_local_part - MAILER-DAEMON, postmaster, LISTSERV, majordomo, *-request, owner-* */
static bool system_local_part(const char *addr)
{
	static const char *const exact[] = { "mailer-daemon", "postmaster", "listserv", "majordomo" };
	const char *at = strrchr(addr, '@');
	size_t n = at ? (size_t)(at - addr) : strlen(addr);
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < UTIL_ARRAY_LEN(exact); i++)
		if (n == strlen(exact[i]) && strncasecmp(addr, exact[i], n) == 0)
			return true;
	if (n > 8 && strncasecmp(addr + n - 8, "-request", 8) == 0)
		return true;
	return n > 6 && strncasecmp(addr, "owner-", 6) == 0;
}

/* bare_addr - addr without surrounding blanks and <>, into buf; false if it does not fit */
static bool bare_addr(const char *addr, char *buf, size_t bufsz)
{
	size_t n;
	const char *b = tally_addr_bare(addr, &n);

	if (n >= bufsz)
		return false;
	memcpy(buf, b, n);
	buf[n] = '\0';
	return true;
}

/* our_address - one of our support addresses or draft identities */
static bool our_address(const struct config *cfg, const char *addr)
{
	size_t i;

	for (i = 0; i < cfg->policy.n_support_addresses; i++)
		if (cfg->policy.support_addresses[i] && *cfg->policy.support_addresses[i] &&
		    strcasecmp(addr, cfg->policy.support_addresses[i]) == 0)
			return true;
	for (i = 0; i < cfg->drafts.n_identities; i++) {
		const char *a = cfg->drafts.identities[i].from_addr;

		if (a && *a && strcasecmp(addr, a) == 0)
			return true;
	}
	return false;
}

/* address_reason - why mail from this address is never answered, or NULL */
static const char *address_reason(const struct config *cfg, const char *addr)
{
	char buf[TALLY_SENDER_MAX + 1];

	if (!addr || !bare_addr(addr, buf, sizeof(buf)) || !buf[0])
		return NULL;
	if (system_local_part(buf))
		return "system-sender";
	if (our_address(cfg, buf))
		return "own-address";
	return NULL;
}

const char *policy_suppressed(const struct config *cfg, const struct message *msg,
			      const char *envfrom, const char *sender)
{
	const char *why;
	size_t i;

	/* NULL = envelope unknown (amendsctl check on a file); "" or "<>" = the null sender */
	if (envfrom) {
		char buf[8];

		if (!*envfrom || (bare_addr(envfrom, buf, sizeof(buf)) && !buf[0]))
			return "null-sender";
	}
	if ((why = address_reason(cfg, envfrom)) || (why = address_reason(cfg, sender)))
		return why;
	if (msg && (why = address_reason(cfg, msg->from_addr)))
		return why;
	if (!msg)
		return NULL;
	/* Every header, not only the first of each name: one "Auto-Submitted: no" must not hide a
	 * second "Auto-Submitted: auto-replied". */
	for (i = 0; i < msg->n_headers; i++)
		if ((why = header_reason(msg->headers[i].name, msg->headers[i].value)))
			return why;
	if (msg->content_type && strcasecmp(msg->content_type, "multipart/report") == 0)
		return "report";
	return NULL;
}

/* ---- due kinds ------------------------------------------------------------------------------ */

static bool verdict_has(const struct config *cfg, const struct verdict *v, const char *cat)
{
	int i = config_category_index(cfg, cat);

	return v && i >= 0 && i < CONFIG_MAX_CATEGORIES && v->present[i];
}

/* partways_due - >= min distinct problem categories whose tallies sum to >= min total, on a
 * message that itself carries a problem category */
static bool partways_due(const struct config *cfg, const struct verdict *v,
			 const struct tally_counts *counts)
{
	const struct config_policy *p = &cfg->policy;
	bool carries = false;
	int distinct = 0, total = 0;
	size_t i;

	if (!counts || p->partways_min_categories <= 0 || p->partways_min_total <= 0)
		return false;
	for (i = 0; i < p->n_problem_categories; i++) {
		int n = tally_count_of(counts, p->problem_categories[i]);

		if (n > 0) {
			distinct++;
			total += n;
		}
		if (verdict_has(cfg, v, p->problem_categories[i]))
			carries = true;
	}
	return carries && distinct >= p->partways_min_categories && total >= p->partways_min_total;
}

size_t policy_due(const struct config *cfg, const struct ruleset *rs, const char *sender,
		  const struct verdict *v, const struct tally_counts *counts,
		  enum policy_draft out[3])
{
	size_t n = 0;

	if (partways_due(cfg, v, counts) && !(rs && sender && rules_is_longstanding(rs, sender)))
		out[n++] = POLICY_DRAFT_PARTWAYS;
	if (cfg->policy.winback && verdict_has(cfg, v, POLICY_CAT_CANCELLATION))
		out[n++] = POLICY_DRAFT_WINBACK;
	if (cfg->policy.apology_complaints > 0 && counts &&
	    verdict_has(cfg, v, POLICY_CAT_COMPLAINT) &&
	    tally_count_of(counts, POLICY_CAT_COMPLAINT) >= cfg->policy.apology_complaints)
		out[n++] = POLICY_DRAFT_APOLOGY;
	return n;
}

int policy_claim(struct tally *t, const char *sender, const enum policy_draft *due, size_t n,
		 time_t now, enum policy_draft *chosen)
{
	size_t i;
	int rc;

	*chosen = POLICY_DRAFT_NONE;
	for (i = 0; i < n; i++) {
		rc = tally_draft_claim(t, sender, policy_draft_name(due[i]), now);
		if (rc < 0)
			return -1;
		if (rc == 1) {
			*chosen = due[i];
			return 0;
		}
	}
	return 0;
}

bool policy_escalate(const struct config *cfg, const struct verdict *v)
{
	const char *cat = cfg->policy.escalate_category;

	return cat && *cat && verdict_has(cfg, v, cat);
}
