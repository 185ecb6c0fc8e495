/*
 * milter.c - libmilter callbacks: collect a message, run the pipeline at EOM, apply the result
 *
 * Per connection we keep a small context (smfi_setpriv); per message we collect the header
 * block and the body up to limits.max_scan_bytes (larger mail is passed on, its headers still
 * handled), remember every incoming X-Amends-* header so it can be deleted (a sender must not
 * forge our verdict), and at EOM hand the bytes to pipeline_run() and turn its result into
 * smfi_chgheader/smfi_addheader calls.
 *
 * Fail open: every internal failure is logged with the queue id, counted, and answered with
 * SMFIS_CONTINUE/ACCEPT. Nothing here ever returns TEMPFAIL, REJECT or DISCARD.
 *
 * OWNERSHIP  The connection context is allocated on the first callback that needs it and freed
 *            in close (the only callback that is always called); per-message state is reset at
 *            EOM and abort. Each message holds one reference to the generation it started on.
 */
#include "milter.h"
#include "pipeline.h"
#include "draft.h"
#include "tally.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#define FORGED_NAMES_MAX 256
#define FORGED_PREFIX "X-Amends-"

struct milter_generation {
	atomic_int refs;
	struct config *cfg;
	struct ruleset *rs;
	struct tally *tally;
	struct drafter *drafter;
};

struct forged {
	char *name;          /* as first seen; MTAs match header names case-insensitively */
	int count;           /* occurrences, so we can delete index count..1 */
};

struct conn {
	struct milter_generation *gen;  /* for the message in progress, or NULL */
	char *envfrom;
	struct strbuf raw;              /* headers + blank line + body, capped */
	bool in_body;
	bool truncated;
	bool noreply_hdr, noreply_body;
	struct forged forged[FORGED_NAMES_MAX];
	size_t n_forged;
	size_t forged_overflow;
	int subject_count;
};

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct milter_generation *gen_current;
/* Negotiated no-reply flags are per connection but the MTA offers the same to every one. */

/* ---- generations ------------------------------------------------------------------------- */

static void generation_unref(struct milter_generation *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	drafter_close(g->drafter);
	tally_close(g->tally);
	rules_unref(g->rs);
	config_unref(g->cfg);
	free(g);
}

struct milter_generation *milter_generation_new(struct config *cfg, struct diag *d)
{
	struct milter_generation *g = calloc(1, sizeof(*g));
	char *err = NULL;

	if (!g) {
		diag_error(d, cfg->path, 0, "out of memory");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->cfg = config_ref(cfg);
	g->rs = rules_load(cfg->rules.dir, cfg, d);
	if (!g->rs)
		goto fail;
	if (cfg->tally.store[0] && strcmp(cfg->tally.store, "none") != 0) {
		g->tally = tally_open_retrying(cfg, &err);
		if (g->tally && err) {
			log_err("tally store %s cannot be opened now (%s): mail is tagged without a "
				"tally until it can; retrying", cfg->tally.store, err);
			free(err);
			err = NULL;
		}
		if (!g->tally) {
			/* A store that cannot open now is retried (tally_open_retrying): an error
			 * here is a hard one (bad spec or settings). */
			diag_error(d, cfg->path, 0, "tally store %s: %s", cfg->tally.store,
				   err ? err : "cannot open");
			free(err);
			goto fail;
		}
	}
	if (cfg->drafts.enabled) {
		g->drafter = drafter_open(cfg, &err);
		if (!g->drafter) {
			diag_error(d, cfg->path, 0, "drafts: %s", err ? err : "cannot open");
			free(err);
			goto fail;
		}
	}
	return g;
fail:
	generation_unref(g);
	return NULL;
}

void milter_generation_publish(struct milter_generation *g)
{
	struct milter_generation *old;

	pthread_mutex_lock(&gen_lock);
	old = gen_current;
	gen_current = g;
	pthread_mutex_unlock(&gen_lock);
	generation_unref(old);
}

void milter_generation_clear(void)
{
	milter_generation_publish(NULL);
}

const struct config *milter_generation_config(const struct milter_generation *g)
{
	return g ? g->cfg : NULL;
}

const struct ruleset *milter_generation_rules(const struct milter_generation *g)
{
	return g ? g->rs : NULL;
}

static struct milter_generation *generation_get(void)
{
	struct milter_generation *g;

	pthread_mutex_lock(&gen_lock);
	g = gen_current;
	if (g)
		atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&gen_lock);
	return g;
}

/* ---- per-connection / per-message state ---------------------------------------------------- */

static void conn_reset_message(struct conn *c)
{
	generation_unref(c->gen);
	c->gen = NULL;
	free(c->envfrom);
	c->envfrom = NULL;
	strbuf_free(&c->raw);
	for (size_t i = 0; i < c->n_forged; i++)
		free(c->forged[i].name);
	c->n_forged = 0;
	c->forged_overflow = 0;
	c->in_body = false;
	c->truncated = false;
	c->subject_count = 0;
}

static struct conn *conn_get(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
		free(c);
		return NULL;
	}
	return c;
}

/* Begin a message: take the current generation and size the collection buffer. */
static int conn_begin_message(struct conn *c)
{
	conn_reset_message(c);
	c->gen = generation_get();
	if (!c->gen)
		return -1;
	strbuf_init(&c->raw, c->gen->cfg->limits.max_scan_bytes);
	return 0;
}

static const char *queue_id(SMFICTX *ctx)
{
	const char *q = smfi_getsymval(ctx, "i");

	return q ? q : "NOQUEUE";
}

/* Log, count and give the fail-open answer. */
static sfsistat fail_open(SMFICTX *ctx, const char *what)
{
	log_err("%s: %s: passing the message on unfiltered", queue_id(ctx), what);
	stats_inc(STATS_INTERNAL_ERRORS);
	return SMFIS_ACCEPT;
}

/* ---- callbacks ----------------------------------------------------------------------------- */

static sfsistat cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			     unsigned long f3, unsigned long *pf0, unsigned long *pf1,
			     unsigned long *pf2, unsigned long *pf3)
{
	struct conn *c = conn_get(ctx);
	unsigned long want = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOUNKNOWN |
			     SMFIP_NODATA;

	(void)f2; (void)f3;
	if (!c)
		return SMFIS_ALL_OPTS;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS);
	if ((f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS)) != (SMFIF_ADDHDRS | SMFIF_CHGHDRS))
		log_warn("MTA does not offer header changes (actions 0x%lx): mail will pass untagged", f0);
	*pf1 = f1 & want;
	/* Skip the body beyond the scan cap, and spare the MTA a reply per header/body chunk. */
	if (f1 & SMFIP_SKIP)
		*pf1 |= SMFIP_SKIP;
	if (f1 & SMFIP_NR_HDR) {
		*pf1 |= SMFIP_NR_HDR;
		c->noreply_hdr = true;
	}
	if (f1 & SMFIP_NR_BODY) {
		*pf1 |= SMFIP_NR_BODY;
		c->noreply_body = true;
	}
	*pf2 = 0;
	*pf3 = 0;
	return SMFIS_CONTINUE;
}

static sfsistat cb_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	(void)host; (void)addr;
	return conn_get(ctx) ? SMFIS_CONTINUE : fail_open(ctx, "out of memory at connect");
}

static sfsistat cb_helo(SMFICTX *ctx, char *helo)
{
	(void)ctx; (void)helo;
	return SMFIS_CONTINUE;
}

static sfsistat cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = conn_get(ctx);
	const char *a = argv && argv[0] ? argv[0] : "";
	size_t n;

	if (!c)
		return fail_open(ctx, "out of memory at MAIL FROM");
	if (conn_begin_message(c) < 0)
		return fail_open(ctx, "no configuration loaded");
	/* "<addr>" -> "addr"; "<>" -> "" */
	if (*a == '<')
		a++;
	n = strlen(a);
	if (n && a[n - 1] == '>')
		n--;
	c->envfrom = util_strndup(a, n);
	if (!c->envfrom)
		return fail_open(ctx, "out of memory at MAIL FROM");
	return SMFIS_CONTINUE;
}

static sfsistat cb_envrcpt(SMFICTX *ctx, char **argv)
{
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

/* The names pipeline.c adds. A flood of other X-Amends-* names must not use up the slots these
 * need: a forged X-Amends-Status left in place would sit above ours and forge the verdict. */
static const char *const our_headers[] = { "X-Amends-Status", "X-Amends-Rules", "X-Amends-Tally",
					   "X-Amends-Draft", "X-Amends-Escalate", "X-Amends-Limits" };

static bool is_our_header(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(our_headers); i++)
		if (strcasecmp(name, our_headers[i]) == 0)
			return true;
	return false;
}

static void remember_forged(struct conn *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_forged; i++)
		if (strcasecmp(c->forged[i].name, name) == 0) {
			c->forged[i].count++;
			return;
		}
	/* The last slots are kept for our own names (each takes at most one). */
	if (c->n_forged == FORGED_NAMES_MAX ||
	    (c->n_forged >= FORGED_NAMES_MAX - UTIL_ARRAY_LEN(our_headers) && !is_our_header(name))) {
		c->forged_overflow++;
		return;
	}
	c->forged[c->n_forged].name = util_strdup(name);
	if (!c->forged[c->n_forged].name) {
		c->forged_overflow++;
		return;
	}
	c->forged[c->n_forged++].count = 1;
}

static sfsistat hdr_reply(struct conn *c, sfsistat rc)
{
	return (c && c->noreply_hdr && rc == SMFIS_CONTINUE) ? SMFIS_NOREPLY : rc;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = smfi_getpriv(ctx);

	if (!c || !c->gen)
		return hdr_reply(c, SMFIS_CONTINUE);
	if (util_ascii_casestarts(name, FORGED_PREFIX))
		remember_forged(c, name);
	if (strcasecmp(name, "Subject") == 0)
		c->subject_count++;
	/* Past the cap we keep reading headers (for forged ones) but stop collecting. */
	if (!c->truncated) {
		strbuf_puts(&c->raw, name);
		strbuf_append(&c->raw, ": ", 2);
		strbuf_puts(&c->raw, value);
		strbuf_append(&c->raw, "\r\n", 2);
		if (c->raw.truncated)
			c->truncated = true;
		if (c->raw.oom)
			return fail_open(ctx, "out of memory collecting headers");
	}
	return hdr_reply(c, SMFIS_CONTINUE);
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c && c->gen && !c->truncated)
		strbuf_append(&c->raw, "\r\n", 2);
	if (c)
		c->in_body = true;
	return SMFIS_CONTINUE;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = smfi_getpriv(ctx);

	if (!c || !c->gen)
		return SMFIS_CONTINUE;
	if (!c->truncated) {
		strbuf_append(&c->raw, (const char *)chunk, len);
		if (c->raw.oom)
			return fail_open(ctx, "out of memory collecting the body");
		if (c->raw.truncated)
			c->truncated = true;
	}
	/* Past the cap: SKIP asks the MTA for no more body. Not when the MTA expects no reply to
	 * body chunks (SMFIP_NR_BODY): an unasked-for reply would be read as the answer to the
	 * next command. libmilter turns SKIP into CONTINUE where SKIP was not negotiated. */
	if (c->truncated)
		return c->noreply_body ? SMFIS_NOREPLY : SMFIS_SKIP;
	return (c->noreply_body) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* Delete every incoming X-Amends-* header, last occurrence first so indexes stay valid. */
static void delete_forged(SMFICTX *ctx, struct conn *c, const char *qid)
{
	for (size_t i = 0; i < c->n_forged; i++) {
		for (int idx = c->forged[i].count; idx >= 1; idx--) {
			if (smfi_chgheader(ctx, c->forged[i].name, idx, NULL) != MI_SUCCESS)
				log_warn("%s: could not delete forged %s[%d]", qid, c->forged[i].name, idx);
			else
				stats_inc(STATS_FORGED_HEADERS_REMOVED);
		}
	}
	if (c->forged_overflow)
		log_warn("%s: %zu more forged X-Amends-* header names than can be tracked", qid,
			 c->forged_overflow);
}

static void apply_result(SMFICTX *ctx, struct conn *c, const struct pipeline_result *res,
			 const char *qid)
{
	for (size_t i = 0; i < res->n_add; i++)
		if (smfi_addheader(ctx, res->add[i].name, res->add[i].value) != MI_SUCCESS)
			log_warn("%s: could not add %s", qid, res->add[i].name);
	if (res->new_subject && c->subject_count == 1 &&
	    smfi_chgheader(ctx, "Subject", 1, res->new_subject) != MI_SUCCESS)
		log_warn("%s: could not tag the subject", qid);
}

static sfsistat cb_eom(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	const char *qid = queue_id(ctx);
	struct pipeline_result res;
	struct pipeline_input in;
	struct pipeline_env env;
	sfsistat rc = SMFIS_CONTINUE;

	if (!c || !c->gen)
		return fail_open(ctx, "no message state at end of message");
	delete_forged(ctx, c, qid);
	if (c->raw.oom) {
		rc = fail_open(ctx, "out of memory");
		goto out;
	}
	env.cfg = c->gen->cfg;
	env.rs = c->gen->rs;
	env.tally = c->gen->tally;
	env.drafter = c->gen->drafter;
	in.queue_id = qid;
	in.envfrom = c->envfrom ? c->envfrom : "";
	in.raw = c->raw.s ? c->raw.s : "";
	in.raw_len = c->raw.len;
	in.truncated = c->truncated;
	if (c->truncated)
		stats_inc(STATS_MESSAGES_OVERSIZE);
	if (pipeline_run(&env, &in, 0, &res) < 0) {
		pipeline_result_free(&res);
		rc = fail_open(ctx, "the pipeline failed");
		goto out;
	}
	apply_result(ctx, c, &res, qid);
	pipeline_result_free(&res);
out:
	conn_reset_message(c);
	return rc;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c)
		conn_reset_message(c);
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);

	if (c) {
		conn_reset_message(c);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

struct smfiDesc milter_desc = {
	.xxfi_name = "amends",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
	.xxfi_connect = cb_connect,
	.xxfi_helo = cb_helo,
	.xxfi_envfrom = cb_envfrom,
	.xxfi_envrcpt = cb_envrcpt,
	.xxfi_header = cb_header,
	.xxfi_eoh = cb_eoh,
	.xxfi_body = cb_body,
	.xxfi_eom = cb_eom,
	.xxfi_abort = cb_abort,
	.xxfi_close = cb_close,
	.xxfi_unknown = NULL,
	.xxfi_data = NULL,
	.xxfi_negotiate = cb_negotiate,
};
