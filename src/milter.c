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
 * Every libmilter call goes through the seam `mta` (milter.h: struct milter_mta), which is
 * libmilter's smfi_* unless a test put its own there; the collection step (milter_collect_*)
 * is public, so the fuzz targets (tests/fuzz/fuzz_callbacks.c, fuzz_milter.c) run this code.
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


struct milter_generation {
	atomic_int refs;
	struct config *cfg;
	struct ruleset *rs;
	struct tally *tally;
	struct drafter *drafter;
};

struct conn {
	struct milter_generation *gen;  /* for the message in progress, or NULL */
	char *envfrom;
	struct milter_msg msg;          /* collected while gen is set */
	bool noreply_hdr, noreply_body;
};

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct milter_generation *gen_current;
static atomic_size_t conns_live;
static atomic_size_t eoms_live;   /* cb_eom calls running */
/* Negotiated no-reply flags are per connection but the MTA offers the same to every one. */

/* ---- the seam to libmilter ----------------------------------------------------------------- */

/* libmilter's prototypes take char * where they only read: the casts below drop nothing. */
static void *lm_getpriv(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

static int lm_setpriv(SMFICTX *ctx, void *priv)
{
	return smfi_setpriv(ctx, priv);
}

static const char *lm_getsymval(SMFICTX *ctx, const char *name)
{
	return smfi_getsymval(ctx, (char *)name);
}

static int lm_chgheader(SMFICTX *ctx, const char *name, int idx, const char *value)
{
	return smfi_chgheader(ctx, (char *)name, idx, (char *)value);
}

static int lm_addheader(SMFICTX *ctx, const char *name, const char *value)
{
	return smfi_addheader(ctx, (char *)name, (char *)value);
}

static const struct milter_mta lm_mta = {
	.getpriv = lm_getpriv,
	.setpriv = lm_setpriv,
	.getsymval = lm_getsymval,
	.chgheader = lm_chgheader,
	.addheader = lm_addheader,
};

static const struct milter_mta *mta = &lm_mta;

void milter_set_mta(const struct milter_mta *m)
{
	mta = m ? m : &lm_mta;
}

size_t milter_conns_live(void)
{
	return atomic_load(&conns_live);
}

size_t milter_eoms_live(void)
{
	return atomic_load(&eoms_live);
}

/* ---- generations ------------------------------------------------------------------------- */

void milter_generation_unref(struct milter_generation *g)
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
	milter_generation_unref(g);
	return NULL;
}

void milter_generation_publish(struct milter_generation *g)
{
	struct milter_generation *old;

	pthread_mutex_lock(&gen_lock);
	old = gen_current;
	gen_current = g;
	pthread_mutex_unlock(&gen_lock);
	milter_generation_unref(old);
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

struct milter_generation *milter_generation_ref(struct milter_generation *g)
{
	if (g)
		atomic_fetch_add(&g->refs, 1);
	return g;
}

int milter_generation_refs(const struct milter_generation *g)
{
	return g ? atomic_load(&((struct milter_generation *)g)->refs) : 0;
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

/* ---- the collection step ------------------------------------------------------------------- */

void milter_msg_reset(struct milter_msg *m)
{
	strbuf_free(&m->raw);
	strbuf_init(&m->raw, 0);
	for (size_t i = 0; i < m->n_forged; i++)
		free(m->forged[i].name);
	m->n_forged = 0;
	m->n_forged_other = 0;
	m->forged_overflow = 0;
	m->in_body = false;
	m->truncated = false;
	m->subject_count = 0;
}

void milter_msg_begin(struct milter_msg *m, size_t cap_bytes)
{
	milter_msg_reset(m);
	strbuf_init(&m->raw, cap_bytes);
}

/* The names pipeline.c adds. A flood of other X-Amends-* names must not use up the slots these
 * need: a forged X-Amends-Status left in place would sit above ours and forge the verdict. */
static const char *const our_headers[] = { "X-Amends-Status", "X-Amends-Rules", "X-Amends-Tally",
					   "X-Amends-Draft", "X-Amends-Escalate", "X-Amends-Limits" };

bool milter_is_our_header(const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(our_headers); i++)
		if (strcasecmp(name, our_headers[i]) == 0)
			return true;
	return false;
}

static void remember_forged(struct milter_msg *m, const char *name)
{
	size_t i;
	bool ours;

	for (i = 0; i < m->n_forged; i++)
		if (strcasecmp(m->forged[i].name, name) == 0) {
			m->forged[i].count++;
			return;
		}
	/* Other names get all slots but one per name of ours, whichever came first: each of ours
	 * takes at most one, so ours always find a slot (counting the reserve from the end of the
	 * array instead let ours that came early take ordinary slots and then shrink the others'
	 * share). */
	ours = milter_is_our_header(name);
	if (!ours && m->n_forged_other == MILTER_FORGED_NAMES_MAX - UTIL_ARRAY_LEN(our_headers)) {
		m->forged_overflow++;
		return;
	}
	m->forged[m->n_forged].name = util_strdup(name);
	if (!m->forged[m->n_forged].name) {
		m->forged_overflow++;
		return;
	}
	m->forged[m->n_forged++].count = 1;
	m->n_forged_other += !ours;
}

int milter_collect_header(struct milter_msg *m, const char *name, const char *value)
{
	if (util_ascii_casestarts(name, MILTER_FORGED_PREFIX))
		remember_forged(m, name);
	if (strcasecmp(name, "Subject") == 0)
		m->subject_count++;
	/* Past the cap we keep reading headers (for forged ones) but stop collecting. */
	if (!m->truncated) {
		strbuf_puts(&m->raw, name);
		strbuf_append(&m->raw, ": ", 2);
		strbuf_puts(&m->raw, value);
		strbuf_append(&m->raw, "\r\n", 2);
		if (m->raw.truncated)
			m->truncated = true;
		if (m->raw.oom)
			return -1;
	}
	return 0;
}

void milter_collect_eoh(struct milter_msg *m)
{
	if (!m->truncated) {
		strbuf_append(&m->raw, "\r\n", 2);
		if (m->raw.truncated)      /* the blank line itself can reach the cap */
			m->truncated = true;
	}
	m->in_body = true;
}

int milter_collect_body(struct milter_msg *m, const unsigned char *chunk, size_t len)
{
	if (m->truncated)
		return 0;
	strbuf_append(&m->raw, (const char *)chunk, len);
	if (m->raw.oom)
		return -1;
	if (m->raw.truncated)
		m->truncated = true;
	return 0;
}

/* ---- per-connection / per-message state ---------------------------------------------------- */

static void conn_reset_message(struct conn *c)
{
	milter_generation_unref(c->gen);
	c->gen = NULL;
	free(c->envfrom);
	c->envfrom = NULL;
	milter_msg_reset(&c->msg);
}

/* Free a connection context (the message in progress too). */
static void conn_free(struct conn *c)
{
	conn_reset_message(c);
	free(c);
	atomic_fetch_sub(&conns_live, 1);
}

static struct conn *conn_get(SMFICTX *ctx)
{
	struct conn *c = mta->getpriv(ctx);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	atomic_fetch_add(&conns_live, 1);
	if (mta->setpriv(ctx, c) != MI_SUCCESS) {
		conn_free(c);
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
	milter_msg_begin(&c->msg, c->gen->cfg->limits.max_scan_bytes);
	return 0;
}

static const char *queue_id(SMFICTX *ctx)
{
	const char *q = mta->getsymval(ctx, "i");

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

static sfsistat hdr_reply(struct conn *c, sfsistat rc)
{
	return (c && c->noreply_hdr && rc == SMFIS_CONTINUE) ? SMFIS_NOREPLY : rc;
}

static sfsistat cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = mta->getpriv(ctx);

	if (!c || !c->gen)
		return hdr_reply(c, SMFIS_CONTINUE);
	if (milter_collect_header(&c->msg, name, value) < 0)
		return fail_open(ctx, "out of memory collecting headers");
	return hdr_reply(c, SMFIS_CONTINUE);
}

static sfsistat cb_eoh(SMFICTX *ctx)
{
	struct conn *c = mta->getpriv(ctx);

	if (c && c->gen)
		milter_collect_eoh(&c->msg);
	return SMFIS_CONTINUE;
}

static sfsistat cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct conn *c = mta->getpriv(ctx);

	if (!c || !c->gen)
		return SMFIS_CONTINUE;
	if (milter_collect_body(&c->msg, chunk, len) < 0)
		return fail_open(ctx, "out of memory collecting the body");
	/* Past the cap: SKIP asks the MTA for no more body. Not when the MTA expects no reply to
	 * body chunks (SMFIP_NR_BODY): an unasked-for reply would be read as the answer to the
	 * next command. libmilter turns SKIP into CONTINUE where SKIP was not negotiated. */
	if (c->msg.truncated)
		return c->noreply_body ? SMFIS_NOREPLY : SMFIS_SKIP;
	return (c->noreply_body) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

/* Delete every incoming X-Amends-* header, last occurrence first so indexes stay valid. */
static void delete_forged(SMFICTX *ctx, const struct milter_msg *m, const char *qid)
{
	for (size_t i = 0; i < m->n_forged; i++) {
		for (int idx = m->forged[i].count; idx >= 1; idx--) {
			if (mta->chgheader(ctx, m->forged[i].name, idx, NULL) != MI_SUCCESS)
				log_warn("%s: could not delete forged %s[%d]", qid, m->forged[i].name, idx);
			else
				stats_inc(STATS_FORGED_HEADERS_REMOVED);
		}
	}
	if (m->forged_overflow)
		log_warn("%s: %zu more forged X-Amends-* header names than can be tracked", qid,
			 m->forged_overflow);
}

static void apply_result(SMFICTX *ctx, const struct milter_msg *m,
			 const struct pipeline_result *res, const char *qid)
{
	for (size_t i = 0; i < res->n_add; i++)
		if (mta->addheader(ctx, res->add[i].name, res->add[i].value) != MI_SUCCESS)
			log_warn("%s: could not add %s", qid, res->add[i].name);
	if (res->new_subject && m->subject_count == 1 &&
	    mta->chgheader(ctx, "Subject", 1, res->new_subject) != MI_SUCCESS)
		log_warn("%s: could not tag the subject", qid);
}

static sfsistat eom_run(SMFICTX *ctx)
{
	struct conn *c = mta->getpriv(ctx);
	const char *qid = queue_id(ctx);
	struct pipeline_result res;
	struct pipeline_input in;
	struct pipeline_env env;
	sfsistat rc = SMFIS_CONTINUE;

	if (!c || !c->gen)
		return fail_open(ctx, "no message state at end of message");
	delete_forged(ctx, &c->msg, qid);
	if (c->msg.raw.oom) {
		rc = fail_open(ctx, "out of memory");
		goto out;
	}
	env.cfg = c->gen->cfg;
	env.rs = c->gen->rs;
	env.tally = c->gen->tally;
	env.drafter = c->gen->drafter;
	in.queue_id = qid;
	in.envfrom = c->envfrom ? c->envfrom : "";
	in.raw = c->msg.raw.s ? c->msg.raw.s : "";
	in.raw_len = c->msg.raw.len;
	in.truncated = c->msg.truncated;
	if (c->msg.truncated)
		stats_inc(STATS_MESSAGES_OVERSIZE);
	if (pipeline_run(&env, &in, 0, &res) < 0) {
		pipeline_result_free(&res);
		rc = fail_open(ctx, "the pipeline failed");
		goto out;
	}
	apply_result(ctx, &c->msg, &res, qid);
	pipeline_result_free(&res);
out:
	conn_reset_message(c);
	return rc;
}

/* The end of message, counted while it runs: a stop waits for these (stop_drain), as
 * libmilter sends their replies; a message still between callbacks when libmilter stops is
 * never read further, whatever we wait for. */
static sfsistat cb_eom(SMFICTX *ctx)
{
	sfsistat rc;

	atomic_fetch_add(&eoms_live, 1);
	rc = eom_run(ctx);
	atomic_fetch_sub(&eoms_live, 1);
	return rc;
}

static sfsistat cb_abort(SMFICTX *ctx)
{
	struct conn *c = mta->getpriv(ctx);

	if (c)
		conn_reset_message(c);
	return SMFIS_CONTINUE;
}

static sfsistat cb_close(SMFICTX *ctx)
{
	struct conn *c = mta->getpriv(ctx);

	if (c) {
		conn_free(c);
		mta->setpriv(ctx, NULL);
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
