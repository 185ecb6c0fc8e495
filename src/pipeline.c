/*
 * pipeline.c - the one pass over a message: decode, normalize, match, decide, tag
 *
 * message_parse -> normalize each rule target -> lang_detect -> match_run -> verdict_compute
 * -> tally_record -> policy (suppression, due kinds, 7-day claim) -> drafter_submit, and the
 * X-Amends-* headers that say all of it. Shared by the daemon (milter.c at EOM), amendsctl
 * check/eval and the tests, so what an admin sees offline is what the milter does.
 * Nothing here knows libmilter. A failure of the tally or the drafter is logged, counted and
 * noted in the result; the message is still tagged.
 *
 * OWNERSHIP  The result owns everything it points to; pipeline_result_free() releases it.
 */
#include "pipeline.h"
#include "draft.h"
#include "lang.h"
#include "log.h"
#include "normalize.h"
#include "clock.h"
#include "stats.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RULES_HEADER_MAX 900    /* X-Amends-Rules stays well under smfi's 2048 per line */
#define SUBJECT_RAW_MAX 4096
#define SUBJECT_LINE_MAX (998 - 9)  /* 9 = strlen("Subject: ") */

static int add_header(struct pipeline_result *res, const char *name, const char *value)
{
	struct pipeline_header *h;

	if (res->n_add >= UTIL_ARRAY_LEN(res->add))
		return -1;
	h = &res->add[res->n_add];
	h->name = util_strdup(name);
	h->value = util_strdup(value);
	if (!h->name || !h->value) {
		free(h->name);
		free(h->value);
		return -1;
	}
	res->n_add++;
	return 0;
}

static void pipeline_message_limits(const struct config *cfg, struct message_limits *lim,
				    unsigned flags)
{
	message_limits_from_config(cfg, lim);
	/* Only amendsctl check shows the HTML alternative of a text/plain part: the daemon does not
	 * decode it (it was 14% of the CPU of multipart/alternative mail), and neither does eval,
	 * which measures what the daemon does (the conversion was 36% of its time on large mail). */
	lim->skip_shadowed = !(flags & PIPELINE_SHOW_SHADOWED);
}

/* ---- normalization of the rule targets ---------------------------------------------------- */

static int norm_target(struct pipeline_result *res, enum rules_target t, const char *s, size_t n)
{
	res->norm[t] = normalize_text(s ? s : "", s ? n : 0, true, &res->norm_len[t]);
	return res->norm[t] ? 0 : -1;
}

static bool ruleset_wants_target(const struct ruleset *rs, enum rules_target t)
{
	for (size_t i = 0; rs && i < rs->n_rules; i++)
		if (rs->rules[i].target == t)
			return true;
	return false;
}

static bool ruleset_wants_header(const struct ruleset *rs, const char *name)
{
	for (size_t i = 0; rs && i < rs->n_rules; i++)
		if (rs->rules[i].target == RULES_TARGET_HEADER && rs->rules[i].header_name &&
		    strcasecmp(rs->rules[i].header_name, name) == 0)
			return true;
	return false;
}

/* Normalize only the headers some rule looks at: most rulesets look at none. */
static int norm_headers(struct pipeline_result *res, const struct ruleset *rs)
{
	const struct message *m = res->msg;
	size_t n = 0;
	/* One pass over the rules, not one per header, when no rule reads headers (the usual). */
	bool any = ruleset_wants_target(rs, RULES_TARGET_HEADER);

	res->norm_header_names = calloc(m->n_headers + 1, sizeof(char *));
	res->norm_header_values = calloc(m->n_headers + 1, sizeof(char *));
	if (!res->norm_header_names || !res->norm_header_values)
		return -1;
	for (size_t i = 0; any && i < m->n_headers; i++) {
		if (!ruleset_wants_header(rs, m->headers[i].name))
			continue;
		res->norm_header_names[n] = util_strdup(m->headers[i].name);
		res->norm_header_values[n] = normalize_text(m->headers[i].value,
							    strlen(m->headers[i].value), false, NULL);
		if (!res->norm_header_names[n] || !res->norm_header_values[n]) {
			res->n_norm_headers = n + 1;
			return -1;
		}
		n++;
	}
	res->n_norm_headers = n;
	return 0;
}

/* Body and subject always (lang_detect reads them); quoted and from only when a rule reads
 * them, else they are "" (the quoted history of a long thread is often most of the text, and
 * the shipped packs never look at it). Only hits point into these texts. */
static int normalize_targets(struct pipeline_result *res, const struct ruleset *rs)
{
	const struct message *m = res->msg;
	bool quoted = ruleset_wants_target(rs, RULES_TARGET_QUOTED);
	struct strbuf from;
	int rc;

	if (norm_target(res, RULES_TARGET_BODY, m->body_new, m->body_new_len) < 0 ||
	    norm_target(res, RULES_TARGET_SUBJECT, m->subject, strlen(m->subject)) < 0 ||
	    norm_target(res, RULES_TARGET_QUOTED, quoted ? m->body_quoted : NULL,
			quoted ? m->body_quoted_len : 0) < 0)
		return -1;
	if (!ruleset_wants_target(rs, RULES_TARGET_FROM))
		return norm_target(res, RULES_TARGET_FROM, NULL, 0) < 0 ? -1 : norm_headers(res, rs);
	strbuf_init(&from, 0);
	strbuf_printf(&from, "%s <%s>", m->from_name, m->from_addr);
	rc = norm_target(res, RULES_TARGET_FROM, from.s ? from.s : "", from.len);
	strbuf_free(&from);
	if (rc < 0)
		return -1;
	return norm_headers(res, rs);
}

/* ---- the headers we add ------------------------------------------------------------------- */

static void status_header(struct pipeline_result *res, const struct config *cfg)
{
	struct strbuf b;
	bool any = false;

	strbuf_init(&b, 1500);
	for (size_t i = 0; res->have_verdict && i < cfg->n_categories; i++)
		if (res->v.present[i]) {
			strbuf_puts(&b, any ? "," : "Yes; categories=");
			strbuf_puts(&b, cfg->categories[i].name);
			any = true;
		}
	if (!any)
		strbuf_puts(&b, "No");
	strbuf_printf(&b, "; lang=%s", res->lang);
	if (any) {
		bool first = true;

		strbuf_puts(&b, "; score=");
		for (size_t i = 0; i < cfg->n_categories; i++)
			if (res->v.present[i]) {
				strbuf_printf(&b, "%s%s:%.1f", first ? "" : ",", cfg->categories[i].name,
					      res->v.score[i]);
				first = false;
			}
	}
	add_header(res, "X-Amends-Status", b.s);
	strbuf_free(&b);
}

static void rules_header(struct pipeline_result *res, const struct ruleset *rs)
{
	struct strbuf b;

	if (!rs || !res->mr.n_hits)
		return;
	strbuf_init(&b, 0);
	for (size_t i = 0; i < res->mr.n_hits; i++) {
		const char *nm = rs->rules[res->mr.hits[i].rule].name;

		if (b.len + strlen(nm) + 1 > RULES_HEADER_MAX) {
			strbuf_puts(&b, ",...");
			break;
		}
		if (i)
			strbuf_putc(&b, ',');
		strbuf_puts(&b, nm);
	}
	add_header(res, "X-Amends-Rules", b.s);
	strbuf_free(&b);
}

/* X-Amends-Tally: the sender's counts as the store holds them. When the store failed, the
 * policy still decides on this message's own categories, but the header must not pass those off
 * as a stored tally: it says "unrecorded" (the failure is logged and counted). Without a store or
 * a sender there is no tally to report. */
static void tally_header(struct pipeline_result *res, const struct config *cfg)
{
	struct strbuf b;

	if (res->counts_src == PIPELINE_COUNTS_UNRECORDED) {
		add_header(res, "X-Amends-Tally", "unrecorded");
		return;
	}
	if (res->counts_src == PIPELINE_COUNTS_NONE)
		return;
	strbuf_init(&b, 1000);
	for (size_t i = 0; i < cfg->n_categories; i++) {
		int n = tally_count_of(&res->counts, cfg->categories[i].name);

		if (n > 0)
			strbuf_printf(&b, "%s%s=%d", b.len ? "; " : "", cfg->categories[i].name, n);
	}
	if (b.len)
		add_header(res, "X-Amends-Tally", b.s);
	strbuf_free(&b);
}

static void limits_header(struct pipeline_result *res)
{
	char buf[256];
	unsigned bits = res->msg->limits_hit;
	struct strbuf b;

	strbuf_init(&b, 512);
	if (bits)
		strbuf_puts(&b, message_limits_str(bits, buf, sizeof(buf)));
	if (res->mr.cap_hit)
		strbuf_puts(&b, b.len ? ",rule-text" : "rule-text");
	if (res->mr.deadline_hit)
		strbuf_puts(&b, b.len ? ",rule-deadline" : "rule-deadline");
	if (res->mr.n_limit_rules)
		strbuf_puts(&b, b.len ? ",regex-limit" : "regex-limit");
	if (b.len)
		add_header(res, "X-Amends-Limits", b.s);
	strbuf_free(&b);
}

/* The Subject as written (encoded words kept), unfolded, for the subject tag. */
static char *raw_subject(const char *raw, size_t len)
{
	const char *p = raw, *end = raw + len;
	struct strbuf b;

	while (p < end && *p != '\r' && *p != '\n') {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > 8 && strncasecmp(p, "Subject:", 8) == 0) {
			strbuf_init(&b, SUBJECT_RAW_MAX);
			p += 8;
			for (;;) {
				for (; p < eol; p++)
					if (*p != '\r')
						strbuf_putc(&b, (char)(*p == '\t' ? ' ' : *p));
				if (eol >= end || eol + 1 >= end || (eol[1] != ' ' && eol[1] != '\t'))
					break;
				p = eol + 1;
				eol = memchr(p, '\n', (size_t)(end - p));
				if (!eol)
					eol = end;
			}
			{
				char *s = strbuf_take(&b);
				char *t;

				if (!s)
					return NULL;
				t = util_strdup(util_trim(s));
				free(s);
				return t;
			}
		}
		p = eol + 1;
	}
	return NULL;
}

static void subject_tag(struct pipeline_result *res, const struct config *cfg,
			const struct pipeline_input *in)
{
	struct strbuf b;
	char *subj;

	if (!cfg->milter.subject_tag || !res->have_verdict || !res->v.present_mask)
		return;
	strbuf_init(&b, SUBJECT_RAW_MAX);
	for (size_t i = 0; i < cfg->n_categories; i++)
		if (res->v.present[i] && cfg->categories[i].subject_tag[0])
			strbuf_printf(&b, "%s ", cfg->categories[i].subject_tag);
	if (!b.len) {
		strbuf_free(&b);
		return;
	}
	subj = raw_subject(in->raw, in->raw_len);
	/* Do not stack tags on a message that already carries them (a reply to a tagged one). */
	if (subj && strncmp(subj, b.s, b.len) == 0) {
		free(subj);
		strbuf_free(&b);
		return;
	}
	strbuf_puts(&b, subj ? subj : "");
	free(subj);
	/* The tagged subject is written as one line: past RFC 5322's 998 octets (with "Subject: ")
	 * leave the subject alone rather than cut an encoded word; X-Amends-Status still tells. */
	if (b.len > SUBJECT_LINE_MAX) {
		strbuf_free(&b);
		return;
	}
	for (size_t i = 0; i < b.len; i++)
		if ((unsigned char)b.s[i] < 0x20 || (unsigned char)b.s[i] == 0x7F)
			b.s[i] = ' ';
	res->new_subject = strbuf_take(&b);
}

/* ---- tally, policy, draft ----------------------------------------------------------------- */

static size_t present_names(const struct config *cfg, const struct verdict *v, const char **out)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_categories; i++)
		if (v->present[i])
			out[n++] = cfg->categories[i].name;
	return n;
}

static void rules_csv(const struct ruleset *rs, const struct match_result *mr, struct strbuf *b)
{
	for (size_t i = 0; rs && i < mr->n_hits; i++) {
		if (i)
			strbuf_putc(b, ',');
		strbuf_puts(b, rs->rules[mr->hits[i].rule].name);
	}
}

/* Counts of this message alone, when there is no tally store or it failed. */
static void counts_from_verdict(struct pipeline_result *res, const struct config *cfg)
{
	size_t n = 0;

	res->counts.v = calloc(cfg->n_categories + 1, sizeof(*res->counts.v));
	if (!res->counts.v)
		return;
	for (size_t i = 0; i < cfg->n_categories; i++)
		if (res->v.present[i]) {
			res->counts.v[n].category = util_strdup(cfg->categories[i].name);
			res->counts.v[n].count = 1;
			n++;
		}
	res->counts.n = n;
}

static void record_tally(const struct pipeline_env *env, const struct pipeline_input *in,
			 struct pipeline_result *res, time_t now)
{
	const char *cats[CONFIG_MAX_CATEGORIES];
	struct tally_event ev;
	struct strbuf rules;

	strbuf_init(&rules, 4096);
	rules_csv(env->rs, &res->mr, &rules);
	ev.when = now;
	ev.message_id = res->msg->message_id;
	ev.subject = res->msg->subject;
	ev.categories = cats;
	ev.n_categories = present_names(env->cfg, &res->v, cats);
	ev.rules = rules.s ? rules.s : "";
	if (tally_record(env->tally, res->sender, &ev, &res->counts) < 0) {
		res->failures |= PIPELINE_FAIL_TALLY;
		stats_inc(STATS_TALLY_FAILURES);
		log_err("%s: tally: not recorded for %s: %s", in->queue_id, res->sender, tally_error());
		tally_counts_free(&res->counts);
		counts_from_verdict(res, env->cfg);
		res->counts_src = PIPELINE_COUNTS_UNRECORDED;
	} else {
		res->counts_src = PIPELINE_COUNTS_STORED;
		stats_inc(STATS_TALLY_OK);
	}
	strbuf_free(&rules);
}

/* What the drafter's writer needs to give a claim back when a draft it was left to write fails
 * (drafter_submit() did not wait). The tally outlives the drafter: a generation closes its
 * drafter, whose writer finishes every queued draft, before its tally. */
struct unclaim {
	struct tally *tally;
	char *sender;
	const char *kind;          /* static (policy_draft_name) */
	time_t when;
	char qid[64];
};

static void unclaim_free(void *arg)
{
	struct unclaim *u = arg;

	if (u) {
		free(u->sender);
		free(u);
	}
}

/* On the drafter's writer thread: the draft failed after the reply; the next message of this
 * sender may try again (as when the failure is known before the reply). */
static void unclaim_late(void *arg)
{
	struct unclaim *u = arg;

	if (tally_draft_unclaim(u->tally, u->sender, u->kind, u->when) < 0)
		log_err("%s: draft %s for %s not written (after the reply), and its claim could not "
			"be given back: %s", u->qid, u->kind, u->sender, tally_error());
	else
		log_err("%s: draft %s for %s not written (after the reply); claim given back",
			u->qid, u->kind, u->sender);
}

/* A claim to give back later, or NULL (no tally; out of memory: then a late failure keeps the
 * claim, as before this existed, and is still logged and counted by the drafter). */
static struct unclaim *unclaim_new(const struct pipeline_env *env, const struct pipeline_input *in,
				   const struct pipeline_result *res, time_t now)
{
	struct unclaim *u;

	if (!env->tally || !(u = calloc(1, sizeof(*u))))
		return NULL;
	u->tally = env->tally;
	u->sender = util_strdup(res->sender);
	u->kind = policy_draft_name(res->draft);
	u->when = now;
	/* a queue id is short; a cut one only shortens a log line */
	(void)snprintf(u->qid, sizeof(u->qid), "%s", in->queue_id ? in->queue_id : "");
	if (!u->sender) {
		free(u);
		return NULL;
	}
	return u;
}

static void write_draft(const struct pipeline_env *env, const struct pipeline_input *in,
			struct pipeline_result *res, time_t now)
{
	struct tally_history hist = { NULL, 0 };
	struct draft_request req;
	char *err = NULL;

	if (env->tally && tally_history(env->tally, res->sender, (size_t)env->cfg->tally.incidents,
					&hist) < 0)
		log_warn("%s: tally: no history for the draft: %s", in->queue_id, tally_error());
	memset(&req, 0, sizeof(req));
	req.kind = res->draft;
	req.lang = res->lang;
	req.msg = res->msg;
	req.sender = res->sender;
	req.counts = &res->counts;
	req.history = &hist;
	req.now = now;
	req.queue_id = in->queue_id;
	req.late_arg = unclaim_new(env, in, res, now);
	if (req.late_arg) {
		req.late_failure = unclaim_late;
		req.late_free = unclaim_free;
	}
	if (drafter_submit(env->drafter, env->cfg, &req, &err) < 0) {
		res->failures |= PIPELINE_FAIL_DRAFT;   /* the drafter counted it */
		log_err("%s: draft %s for %s not written: %s", in->queue_id,
			policy_draft_name(res->draft), res->sender, err ? err : "unknown error");
		/* Give the claim back so the next message can try again. */
		if (env->tally)
			tally_draft_unclaim(env->tally, res->sender, policy_draft_name(res->draft), now);
	} else {
		res->draft_written = true;
	}
	free(err);
	tally_history_free(&hist);
}

/* Which draft, if any: the first due kind that the 7-day dedupe allows. */
static void decide_draft(const struct pipeline_env *env, const struct pipeline_input *in,
			 struct pipeline_result *res, time_t now, bool dry)
{
	enum policy_draft due[3];
	size_t n;

	n = policy_due(env->cfg, env->rs, res->sender, &res->v, &res->counts, due);
	if (!n)
		return;
	stats_inc(STATS_DRAFTS_DUE);
	res->suppressed = policy_suppressed(env->cfg, res->msg, in->envfrom, res->sender);
	if (res->suppressed) {
		stats_inc(STATS_DRAFTS_SUPPRESSED);
		log_info("%s: no draft for %s: %s", in->queue_id, res->sender, res->suppressed);
		return;
	}
	if (!env->tally || dry) {
		res->draft = due[0];   /* no store to remember drafts: the first due kind */
		return;
	}
	if (policy_claim(env->tally, res->sender, due, n, now, &res->draft) < 0) {
		res->draft = POLICY_DRAFT_NONE;
		res->failures |= PIPELINE_FAIL_TALLY;
		stats_inc(STATS_TALLY_FAILURES);
		log_err("%s: tally: draft claim failed for %s: %s", in->queue_id, res->sender,
			tally_error());
	}
}

static void sender_of(const struct pipeline_env *env, const struct pipeline_input *in,
		      struct pipeline_result *res)
{
	const char *addr = strcmp(env->cfg->tally.sender, "envelope") == 0 ? in->envfrom :
			   res->msg->from_addr;

	res->sender = (addr && *addr) ? tally_sender_key(env->cfg, addr) : NULL;
}

static void tally_policy_draft(const struct pipeline_env *env, const struct pipeline_input *in,
			       unsigned flags, struct pipeline_result *res)
{
	bool dry = (flags & PIPELINE_DRY_RUN) != 0;
	time_t now = clock_now();

	sender_of(env, in, res);
	if (res->sender && env->tally && !dry)
		record_tally(env, in, res, now);
	else if (res->sender && env->tally && tally_counts(env->tally, res->sender, now, &res->counts) == 0)
		res->counts_src = PIPELINE_COUNTS_READ; /* dry run: the store, without this message */
	else
		counts_from_verdict(res, env->cfg);
	if (!res->sender)
		return;
	decide_draft(env, in, res, now, dry);
	if (res->draft && env->drafter && !dry)
		write_draft(env, in, res, now);
}

/* ---- the pass ----------------------------------------------------------------------------- */

static void log_verdict(const struct pipeline_input *in, const struct pipeline_result *res,
			const struct ruleset *rs)
{
	struct strbuf rules;
	const char *status = res->n_add ? res->add[0].value : "";

	if (log_get_level() < LOG_LEVEL_INFO)
		return;
	strbuf_init(&rules, 1024);
	rules_csv(rs, &res->mr, &rules);
	log_info("%s: verdict: %s rules=%s draft=%s%s%s elapsed=%ldus", in->queue_id, status,
		 rules.len ? rules.s : "-", res->draft ? policy_draft_name(res->draft) : "-",
		 res->suppressed ? " suppressed=" : "", res->suppressed ? res->suppressed : "",
		 res->elapsed_us);
	strbuf_free(&rules);
}

int pipeline_run(const struct pipeline_env *env, const struct pipeline_input *in, unsigned flags,
		 struct pipeline_result *res)
{
	const struct config *cfg = env->cfg;
	long long t0 = util_now_us();
	struct message_limits lim;
	struct match_limits mlim;
	struct match_subjects subj;

	memset(res, 0, sizeof(*res));
	res->lang = "und";
	pipeline_message_limits(cfg, &lim, flags);
	if (message_parse(in->raw, in->raw_len, &lim, &res->msg) < 0) {
		res->failures |= PIPELINE_FAIL_PARSE;
		return -1;
	}
	if (in->truncated)
		res->msg->limits_hit |= MESSAGE_LIMIT_SIZE;
	if (normalize_targets(res, env->rs) < 0) {
		res->failures |= PIPELINE_FAIL_PARSE;
		return -1;
	}
	res->lang = lang_detect(res->norm[RULES_TARGET_BODY], res->norm_len[RULES_TARGET_BODY]);
	if (!strcmp(res->lang, "und"))
		res->lang = lang_detect(res->norm[RULES_TARGET_SUBJECT],
					res->norm_len[RULES_TARGET_SUBJECT]);
	if (env->rs) {
		memset(&subj, 0, sizeof(subj));
		for (int t = 0; t < RULES_TARGET_COUNT; t++) {
			subj.text[t] = res->norm[t];
			subj.len[t] = res->norm_len[t];
		}
		subj.header_names = (const char *const *)res->norm_header_names;
		subj.header_values = (const char *const *)res->norm_header_values;
		subj.n_headers = res->n_norm_headers;
		subj.queue_id = in->queue_id;
		match_limits_from_config(cfg, &mlim);
		if (match_run(env->rs, &subj, &mlim, &res->mr) < 0) {
			res->failures |= PIPELINE_FAIL_MATCH;
			log_err("%s: rule matching failed (out of memory?): verdict from what ran",
				in->queue_id);
		}
		verdict_compute(cfg, env->rs, &res->mr, &res->v);
		res->have_verdict = true;
	}
	if (!(flags & PIPELINE_DRY_RUN)) {
		stats_inc(STATS_MESSAGES);
		if (res->msg->limits_hit)
			stats_inc(STATS_LIMIT_HITS);
		for (size_t i = 0; res->have_verdict && i < cfg->n_categories; i++)
			if (res->v.present[i])
				stats_verdict((int)i);
		if (res->have_verdict && res->v.present_mask)
			stats_inc(STATS_MESSAGES_TAGGED);
		for (size_t i = 0; res->have_verdict && i < res->mr.n_hits; i++)
			stats_rule_hit(env->rs->rules[res->mr.hits[i].rule].name);
	}
	if (res->have_verdict)
		tally_policy_draft(env, in, flags, res);

	status_header(res, cfg);
	if (cfg->milter.add_rules_header)
		rules_header(res, env->rs);
	tally_header(res, cfg);
	if (res->draft)
		add_header(res, "X-Amends-Draft", policy_draft_name(res->draft));
	if (res->have_verdict && policy_escalate(cfg, &res->v))
		add_header(res, "X-Amends-Escalate", cfg->policy.escalate_category);
	limits_header(res);
	subject_tag(res, cfg, in);
	res->elapsed_us = (long)(util_now_us() - t0);
	if (!(flags & PIPELINE_DRY_RUN)) {
		stats_latency_us(res->elapsed_us);
		log_verdict(in, res, env->rs);
	}
	return 0;
}

void pipeline_result_free(struct pipeline_result *res)
{
	message_free(res->msg);
	for (int t = 0; t < RULES_TARGET_COUNT; t++)
		free(res->norm[t]);
	for (size_t i = 0; i < res->n_norm_headers; i++) {
		free(res->norm_header_names[i]);
		free(res->norm_header_values[i]);
	}
	free(res->norm_header_names);
	free(res->norm_header_values);
	match_result_free(&res->mr);
	free(res->sender);
	tally_counts_free(&res->counts);
	for (size_t i = 0; i < res->n_add; i++) {
		free(res->add[i].name);
		free(res->add[i].value);
	}
	free(res->new_subject);
	memset(res, 0, sizeof(*res));
}
