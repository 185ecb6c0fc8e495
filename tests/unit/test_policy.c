/*
 * test_policy.c - the default draft policy, table-driven: each rule, precedence, the
 * long-standing list, the RFC 3834 no-draft matrix (RELIABILITY R8.1) and the dedupe through
 * tally_draft_claim on a real (SQLite) tally
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "policy.h"
#include "tally_int.h"   /* tally_counts_push, to build counts by hand */
#include "tally_testlib.h"
#include "util.h"

#define T0 ((time_t)1800000000)
#define DAY ((time_t)86400)

static struct config *cfg;

static int group_setup(void **state)
{
	(void)state;
	cfg = tl_config("sqlite:/unused");
	return cfg ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	config_unref(cfg);
	return 0;
}

/* ---- message and verdict builders ----------------------------------------------------------- */

#define MAX_HDRS 8

struct fake_msg {
	struct message m;
	struct message_header h[MAX_HDRS];
};

/* hdrs: "Name: value" strings, NULL-terminated */
static void fake_msg(struct fake_msg *f, const char *from, const char *ctype, const char *const *hdrs)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	f->m.from_addr = (char *)(from ? from : "");
	f->m.content_type = (char *)(ctype ? ctype : "text/plain");
	f->m.subject = (char *)"";
	f->m.message_id = (char *)"";
	for (i = 0; hdrs && hdrs[i] && i < MAX_HDRS; i++) {
		const char *colon = strchr(hdrs[i], ':');

		assert_non_null(colon);
		f->h[i].name = util_strndup(hdrs[i], (size_t)(colon - hdrs[i]));
		f->h[i].value = util_strdup(colon + 1 + (colon[1] == ' '));
	}
	f->m.headers = f->h;
	f->m.n_headers = i;
}

static void fake_msg_free(struct fake_msg *f)
{
	size_t i;

	for (i = 0; i < f->m.n_headers; i++) {
		free(f->h[i].name);
		free(f->h[i].value);
	}
}

/* cats: comma-separated category names present in the verdict ("" = none) */
static void fake_verdict(struct verdict *v, const char *cats)
{
	char buf[128], *save = NULL, *p;
	int i;

	memset(v, 0, sizeof(*v));
	v->n_categories = cfg->n_categories;
	snprintf(buf, sizeof(buf), "%s", cats);
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		i = config_category_index(cfg, p);
		assert_true(i >= 0);
		v->present[i] = v->hit[i] = true;
		v->present_mask |= 1u << i;
		v->score[i] = 1.0;
	}
}

/* counts: "complaint=2,refund=1" */
static void fake_counts(struct tally_counts *c, const char *spec)
{
	char buf[128], *save = NULL, *p, *eq;

	memset(c, 0, sizeof(*c));
	snprintf(buf, sizeof(buf), "%s", spec);
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		eq = strchr(p, '=');
		assert_non_null(eq);
		assert_int_equal(tally_counts_push(c, p, (size_t)(eq - p), atoi(eq + 1), T0, T0), 0);
	}
}

/* ---- defaults and names --------------------------------------------------------------------- */

static void test_defaults(void **state)
{
	(void)state;
	/* the default policy of the corpus README: every number comes from here */
	assert_true(cfg->policy.winback);
	assert_int_equal(cfg->policy.apology_complaints, 2);
	assert_int_equal(cfg->policy.partways_min_categories, 2);
	assert_int_equal(cfg->policy.partways_min_total, 5);
	assert_int_equal(cfg->policy.dedupe_days, 7);
	assert_int_equal(cfg->tally.window_days, 30);
	assert_int_equal(cfg->policy.n_problem_categories, 4);
	assert_string_equal(policy_draft_name(POLICY_DRAFT_PARTWAYS), "partways");
	assert_string_equal(policy_draft_name(POLICY_DRAFT_WINBACK), "winback");
	assert_string_equal(policy_draft_name(POLICY_DRAFT_APOLOGY), "apology");
	assert_string_equal(policy_draft_name(POLICY_DRAFT_NONE), "none");
	assert_string_equal(policy_draft_name((enum policy_draft)99), "none");
	assert_int_equal(policy_draft_parse("Apology"), POLICY_DRAFT_APOLOGY);
	assert_int_equal(policy_draft_parse("partways"), POLICY_DRAFT_PARTWAYS);
	assert_int_equal(policy_draft_parse("winback"), POLICY_DRAFT_WINBACK);
	assert_int_equal(policy_draft_parse("none"), POLICY_DRAFT_NONE);
	assert_int_equal(policy_draft_parse("bogus"), POLICY_DRAFT_NONE);
	assert_int_equal(policy_draft_parse(NULL), POLICY_DRAFT_NONE);
}

/* ---- policy_due ----------------------------------------------------------------------------- */

struct due_case {
	const char *name;
	const char *verdict;       /* categories of this message */
	const char *counts;        /* the tally after it, or NULL = tally failed */
	bool longstanding;         /* sender on the list */
	const char *want;          /* due kinds in order, space-separated, "" = none */
};

static const struct due_case due_cases[] = {
	{ "routine mail", "", "", false, "" },
	{ "first complaint", "complaint", "complaint=1", false, "" },
	{ "second complaint: apology", "complaint", "complaint=2", false, "apology" },
	{ "third complaint: still due (dedupe decides)", "complaint", "complaint=3", false, "apology" },
	{ "refund after two complaints: not an apology message", "refund", "complaint=2,refund=1",
	  false, "" },
	{ "thanks after two complaints: nothing", "", "complaint=2", false, "" },
	{ "cancellation at once: winback", "cancellation", "cancellation=1", false, "winback" },
	{ "cancellation without a tally (store down)", "cancellation", NULL, false, "winback" },
	{ "complaint without a tally", "complaint", NULL, false, "" },
	{ "winback beats apology", "complaint,cancellation", "complaint=2,cancellation=1", false,
	  "winback apology" },
	{ "partways: 3 categories, 5", "abuse", "complaint=2,refund=2,abuse=1", false, "partways" },
	{ "partways over apology", "complaint,refund", "complaint=2,refund=1,unethical=2", false,
	  "partways apology" },
	{ "partways needs 5", "abuse", "complaint=2,refund=1,abuse=1", false, "" },
	{ "partways needs 2 categories", "complaint", "complaint=5", false, "apology" },
	{ "cancellation is not a problem category", "cancellation", "complaint=2,cancellation=3",
	  false, "winback" },
	{ "partways only on a problem message", "", "complaint=2,refund=2,abuse=1", false, "" },
	{ "partways on a cancellation that also complains", "complaint,cancellation",
	  "complaint=3,refund=2,cancellation=1", false, "partways winback apology" },
	{ "long-standing: never partways", "abuse", "complaint=2,refund=2,abuse=1", true, "" },
	{ "long-standing: apology still", "complaint", "complaint=2,refund=2,abuse=1", true,
	  "apology" },
	{ "long-standing: winback still", "cancellation", "complaint=2,refund=3,cancellation=1",
	  true, "winback" },
};

static void due_string(const enum policy_draft *k, size_t n, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		strncat(buf, i ? " " : "", len - strlen(buf) - 1);
		strncat(buf, policy_draft_name(k[i]), len - strlen(buf) - 1);
	}
}

static void test_due_table(void **state)
{
	static const char *const ls[] = { "loyal@example.com", "@oldfirm.example" };
	struct ruleset *rs = tl_ruleset(ls, UTIL_ARRAY_LEN(ls));
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(due_cases); i++) {
		const struct due_case *c = &due_cases[i];
		struct verdict v;
		struct tally_counts counts;
		enum policy_draft out[3];
		char got[64];
		size_t n;

		fake_verdict(&v, c->verdict);
		if (c->counts)
			fake_counts(&counts, c->counts);
		n = policy_due(cfg, rs, c->longstanding ? "loyal@example.com" : "new@example.com", &v,
			       c->counts ? &counts : NULL, out);
		due_string(out, n, got, sizeof(got));
		if (strcmp(got, c->want) != 0)
			fail_msg("%s: due \"%s\", want \"%s\"", c->name, got, c->want);
		if (c->counts)
			tally_counts_free(&counts);
	}
	tl_ruleset_free(rs);
}

static void test_longstanding_forms(void **state)
{
	static const char *const ls[] = { "Loyal@Example.com", "@oldfirm.example" };
	struct ruleset *rs = tl_ruleset(ls, UTIL_ARRAY_LEN(ls));
	struct verdict v;
	struct tally_counts counts;
	enum policy_draft out[3];

	(void)state;
	fake_verdict(&v, "abuse");
	fake_counts(&counts, "complaint=3,abuse=2");
	assert_int_equal(policy_due(cfg, rs, "loyal@example.com", &v, &counts, out), 0);
	assert_int_equal(policy_due(cfg, rs, "anyone@oldfirm.example", &v, &counts, out), 0);
	assert_int_equal(policy_due(cfg, rs, "anyone@newfirm.example", &v, &counts, out), 1);
	assert_int_equal(out[0], POLICY_DRAFT_PARTWAYS);
	/* no list at all (rs NULL) and no sender: partways may apply */
	assert_int_equal(policy_due(cfg, NULL, "loyal@example.com", &v, &counts, out), 1);
	assert_int_equal(policy_due(cfg, rs, NULL, &v, &counts, out), 1);
	tally_counts_free(&counts);
	tl_ruleset_free(rs);
}

static void test_due_config_numbers(void **state)
{
	struct verdict v;
	struct tally_counts counts;
	enum policy_draft out[3];
	struct config_policy saved = cfg->policy;

	(void)state;
	fake_verdict(&v, "complaint,cancellation");
	fake_counts(&counts, "complaint=2,refund=1");
	cfg->policy.apology_complaints = 3;
	cfg->policy.winback = false;
	assert_int_equal(policy_due(cfg, NULL, "a@x", &v, &counts, out), 0);
	cfg->policy.apology_complaints = 2;
	cfg->policy.partways_min_total = 3;
	assert_int_equal(policy_due(cfg, NULL, "a@x", &v, &counts, out), 2);
	assert_int_equal(out[0], POLICY_DRAFT_PARTWAYS);
	assert_int_equal(out[1], POLICY_DRAFT_APOLOGY);
	cfg->policy.partways_min_categories = 3;
	assert_int_equal(policy_due(cfg, NULL, "a@x", &v, &counts, out), 1);
	cfg->policy = saved;
	tally_counts_free(&counts);
}

static void test_escalate(void **state)
{
	struct verdict v;

	(void)state;
	fake_verdict(&v, "abuse,complaint");
	assert_true(policy_escalate(cfg, &v));
	fake_verdict(&v, "complaint");
	assert_false(policy_escalate(cfg, &v));
	assert_false(policy_escalate(cfg, NULL));
}

/* ---- suppression: the no-draft matrix (R8.1) ------------------------------------------------ */

struct supp_case {
	const char *name;
	const char *envfrom;       /* NULL = unknown */
	const char *from;
	const char *ctype;
	const char *hdrs[4];
	const char *want;          /* reason, or NULL = drafting allowed */
};

#define OK_FROM "customer@example.com"

static const struct supp_case supp_cases[] = {
	/* the envelope */
	{ "null sender", "", OK_FROM, NULL, { NULL }, "null-sender" },
	{ "null sender <>", "<>", OK_FROM, NULL, { NULL }, "null-sender" },
	{ "envelope MAILER-DAEMON", "MAILER-DAEMON@mx.example", OK_FROM, NULL, { NULL }, "system-sender" },
	{ "envelope owner-list", "owner-list@lists.example", OK_FROM, NULL, { NULL }, "system-sender" },
	{ "envelope list-request", "<shop-request@lists.example>", OK_FROM, NULL, { NULL },
	  "system-sender" },
	/* system senders in From */
	{ "From MAILER-DAEMON", NULL, "MAILER-DAEMON@mx2.shop.example", NULL, { NULL }, "system-sender" },
	{ "From Mailer-Daemon", NULL, "Mailer-Daemon@mail.example", NULL, { NULL }, "system-sender" },
	{ "From mailer-daemon bare", NULL, "mailer-daemon", NULL, { NULL }, "system-sender" },
	{ "From postmaster", NULL, "postmaster@example.com", NULL, { NULL }, "system-sender" },
	{ "From PostMaster", NULL, "PostMaster@example.com", NULL, { NULL }, "system-sender" },
	{ "From LISTSERV", NULL, "LISTSERV@lists.example", NULL, { NULL }, "system-sender" },
	{ "From majordomo", NULL, "majordomo@lists.example", NULL, { NULL }, "system-sender" },
	{ "From x-request", NULL, "shop-talk-request@lists.example", NULL, { NULL }, "system-sender" },
	{ "From X-REQUEST", NULL, "SHOP-REQUEST@lists.example", NULL, { NULL }, "system-sender" },
	{ "From owner-x", NULL, "owner-shop-talk@lists.example", NULL, { NULL }, "system-sender" },
	{ "From Owner-X", NULL, "Owner-Shop@lists.example", NULL, { NULL }, "system-sender" },
	/* Auto-Submitted */
	{ "auto-replied", NULL, OK_FROM, NULL, { "Auto-Submitted: auto-replied" }, "auto-submitted" },
	{ "auto-generated", NULL, OK_FROM, NULL, { "Auto-Submitted: auto-generated" }, "auto-submitted" },
	{ "auto-notified", NULL, OK_FROM, NULL, { "Auto-Submitted: auto-notified" }, "auto-submitted" },
	{ "Auto-Replied (vacation)", NULL, OK_FROM, NULL, { "Auto-Submitted: Auto-Replied (vacation)" },
	  "auto-submitted" },
	{ "auto-generated with params", NULL, OK_FROM, NULL,
	  { "Auto-Submitted: auto-generated; owner-email=\"x@y\"" }, "auto-submitted" },
	{ "AUTO-SUBMITTED name case", NULL, OK_FROM, NULL, { "AUTO-SUBMITTED: auto-replied" },
	  "auto-submitted" },
	{ "second Auto-Submitted after no", NULL, OK_FROM, NULL,
	  { "Auto-Submitted: no", "Subject: hi", "Auto-Submitted: auto-replied" }, "auto-submitted" },
	{ "empty Auto-Submitted", NULL, OK_FROM, NULL, { "Auto-Submitted: " }, "auto-submitted" },
	/* Precedence */
	{ "Precedence bulk", NULL, OK_FROM, NULL, { "Precedence: bulk" }, "precedence" },
	{ "Precedence list", NULL, OK_FROM, NULL, { "Precedence: list" }, "precedence" },
	{ "Precedence junk", NULL, OK_FROM, NULL, { "Precedence: junk" }, "precedence" },
	{ "Precedence BULK", NULL, OK_FROM, NULL, { "Precedence: BULK" }, "precedence" },
	{ "Precedence Junk spaced", NULL, OK_FROM, NULL, { "precedence:   Junk  " }, "precedence" },
	/* the seven List-* headers, and one in lower case */
	{ "List-Id", NULL, OK_FROM, NULL, { "List-Id: <forum.lists.example.pk>" }, "list" },
	{ "List-Unsubscribe", NULL, OK_FROM, NULL, { "List-Unsubscribe: <mailto:u@x>" }, "list" },
	{ "List-Post", NULL, OK_FROM, NULL, { "List-Post: <mailto:p@x>" }, "list" },
	{ "List-Help", NULL, OK_FROM, NULL, { "List-Help: <mailto:h@x>" }, "list" },
	{ "List-Subscribe", NULL, OK_FROM, NULL, { "List-Subscribe: <mailto:s@x>" }, "list" },
	{ "List-Owner", NULL, OK_FROM, NULL, { "List-Owner: <mailto:o@x>" }, "list" },
	{ "List-Archive", NULL, OK_FROM, NULL, { "List-Archive: <https://x>" }, "list" },
	{ "list-id lower", NULL, OK_FROM, NULL, { "list-id: x" }, "list" },
	/* X-Auto-Response-Suppress */
	{ "XARS All", NULL, OK_FROM, NULL, { "X-Auto-Response-Suppress: All" }, "auto-response-suppress" },
	{ "XARS OOF", NULL, OK_FROM, NULL, { "X-Auto-Response-Suppress: OOF" }, "auto-response-suppress" },
	{ "XARS list", NULL, OK_FROM, NULL, { "X-Auto-Response-Suppress: DR, RN, OOF, AutoReply" },
	  "auto-response-suppress" },
	{ "XARS all lower", NULL, OK_FROM, NULL, { "x-auto-response-suppress: all" },
	  "auto-response-suppress" },
	/* reports */
	{ "DSN", NULL, OK_FROM, "multipart/report", { NULL }, "report" },
	{ "MDN", NULL, OK_FROM, "multipart/report", { "Disposition-Notification-To: a@b" }, "report" },
	/* ourselves */
	{ "our own draft", NULL, OK_FROM, NULL, { "X-Amends-Draft-Kind: apology" }, "own-draft" },
	{ "our support address", NULL, "support@shop.example", NULL, { NULL }, "own-address" },
	{ "our support address, other case", NULL, "Support@Shop.Example", NULL, { NULL }, "own-address" },
	{ "our address in the envelope", "<support@shop.example>", OK_FROM, NULL, { NULL },
	  "own-address" },
	/* mail that may be answered */
	{ "plain customer", "customer@example.com", OK_FROM, NULL, { NULL }, NULL },
	{ "envelope unknown", NULL, OK_FROM, NULL, { NULL }, NULL },
	{ "Auto-Submitted: no", NULL, OK_FROM, NULL, { "Auto-Submitted: no" }, NULL },
	{ "Auto-Submitted: No (comment)", NULL, OK_FROM, NULL, { "Auto-Submitted: No (human)" }, NULL },
	{ "Precedence first-class", NULL, OK_FROM, NULL, { "Precedence: first-class" }, NULL },
	{ "XARS DR only", NULL, OK_FROM, NULL, { "X-Auto-Response-Suppress: DR, RN" }, NULL },
	{ "Listing header is not List-", NULL, OK_FROM, NULL, { "Listing: 5" }, NULL },
	{ "requester local part", NULL, "requester@example.com", NULL, { NULL }, NULL },
	{ "postmaster-ish name", NULL, "postmasters@example.com", NULL, { NULL }, NULL },
	{ "owner without dash", NULL, "owner@example.com", NULL, { NULL }, NULL },
	{ "multipart/mixed", NULL, OK_FROM, "multipart/mixed", { NULL }, NULL },
	{ "other X-Amends header", NULL, OK_FROM, NULL, { "X-Amends-Tally: complaint=1" }, NULL },
};

static void test_suppression_matrix(void **state)
{
	size_t i, blocked = 0;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(supp_cases); i++) {
		const struct supp_case *c = &supp_cases[i];
		struct fake_msg f;
		const char *got;
		char *key;

		fake_msg(&f, c->from, c->ctype, c->hdrs);
		key = tally_sender_key(cfg, c->from);
		got = policy_suppressed(cfg, &f.m, c->envfrom, key);
		if (!c->want && got)
			fail_msg("%s: suppressed (%s), want allowed", c->name, got);
		if (c->want && (!got || strcmp(got, c->want) != 0))
			fail_msg("%s: %s, want %s", c->name, got ? got : "allowed", c->want);
		blocked += got != NULL;
		free(key);
		fake_msg_free(&f);
	}
	assert_true(blocked >= 40);   /* R8.1: at least 40 no-draft cases */
}

static void test_suppression_config(void **state)
{
	char *extra[] = { (char *)"help@shop.example" };
	struct fake_msg f;
	char **saved = cfg->policy.support_addresses;
	size_t nsaved = cfg->policy.n_support_addresses;

	(void)state;
	fake_msg(&f, "Help@Shop.Example", NULL, NULL);
	assert_null(policy_suppressed(cfg, &f.m, "x@y", NULL));
	cfg->policy.support_addresses = extra;
	cfg->policy.n_support_addresses = 1;
	assert_string_equal(policy_suppressed(cfg, &f.m, "x@y", NULL), "own-address");
	cfg->policy.support_addresses = saved;
	cfg->policy.n_support_addresses = nsaved;
	/* no message at all: only the addresses count */
	assert_null(policy_suppressed(cfg, NULL, "a@b", "a@b"));
	assert_string_equal(policy_suppressed(cfg, NULL, "", "a@b"), "null-sender");
	fake_msg_free(&f);
}

/* ---- dedupe through the tally --------------------------------------------------------------- */

static void test_claim_dedupe(void **state)
{
	char dir[256], spec[300], *err = NULL;
	struct config *c;
	struct tally *t;
	enum policy_draft chosen;
	const enum policy_draft all[] = { POLICY_DRAFT_PARTWAYS, POLICY_DRAFT_WINBACK,
		POLICY_DRAFT_APOLOGY };
	const char *s = "d@example.com";

	(void)state;
	assert_int_equal(tl_tmpdir(dir, sizeof(dir), "policy"), 0);
	snprintf(spec, sizeof(spec), "sqlite:%s/tally.db", dir);
	c = tl_config(spec);
	t = tally_open(c, &err);
	assert_non_null(t);
	/* first message: partways wins */
	assert_int_equal(policy_claim(t, s, all, 3, T0, &chosen), 0);
	assert_int_equal(chosen, POLICY_DRAFT_PARTWAYS);
	/* a day later everything is due again: partways is deduped, winback goes out */
	assert_int_equal(policy_claim(t, s, all, 3, T0 + DAY, &chosen), 0);
	assert_int_equal(chosen, POLICY_DRAFT_WINBACK);
	assert_int_equal(policy_claim(t, s, all, 3, T0 + 2 * DAY, &chosen), 0);
	assert_int_equal(chosen, POLICY_DRAFT_APOLOGY);
	/* all three drafted this week: nothing */
	assert_int_equal(policy_claim(t, s, all, 3, T0 + 3 * DAY, &chosen), 0);
	assert_int_equal(chosen, POLICY_DRAFT_NONE);
	/* seven days after the first, partways may go again */
	assert_int_equal(policy_claim(t, s, all, 3, T0 + 7 * DAY, &chosen), 0);
	assert_int_equal(chosen, POLICY_DRAFT_PARTWAYS);
	/* nothing due: nothing claimed */
	assert_int_equal(policy_claim(t, "e@example.com", all, 0, T0, &chosen), 0);
	assert_int_equal(chosen, POLICY_DRAFT_NONE);
	/* a failing tally: no draft */
	assert_int_equal(policy_claim(t, "", all, 3, T0, &chosen), -1);
	assert_int_equal(chosen, POLICY_DRAFT_NONE);
	tally_close(t);
	config_unref(c);
	tl_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_due_table),
		cmocka_unit_test(test_longstanding_forms),
		cmocka_unit_test(test_due_config_numbers),
		cmocka_unit_test(test_escalate),
		cmocka_unit_test(test_suppression_matrix),
		cmocka_unit_test(test_suppression_config),
		cmocka_unit_test(test_claim_dedupe),
	};

	return cmocka_run_group_tests_name("policy", tests, group_setup, group_teardown);
}
