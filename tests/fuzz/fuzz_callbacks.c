/*
 * fuzz_callbacks.c - libFuzzer target: the milter callbacks in any order (RELIABILITY R2.1 f)
 *
 * The input is a program for an MTA with three connections at once. Each op is one byte, its low
 * nibble the callback and its high nibble the connection, then the op's arguments (strings are
 * a length byte, or 255 and a 2-byte little-endian length, then that many bytes; libmilter hands
 * C strings over, so a string ends at its first NUL for the callbacks as it would):
 *   0 negotiate ACTIONS(1) PROTOCOL(3)   1 connect HOST   2 helo NAME   3 envfrom ADDR
 *   4 envrcpt ADDR   5 header NAME VALUE   6 eoh   7 body LEN(2) BYTES   8 eom   9 abort
 *   10 close   11 reload WHICH(1): no generation / the default one / one with a 700-byte cap
 *   12 faults BITS(1): setpriv fails, chgheader fails, addheader fails, no queue id
 *   13 header VALUE NAME-INDEX(1), the name from a table (X-Amends-* in several cases, Subject,
 *      From, ...)   14 flood N(1): 2N distinct X-Amends-Fuzz-K headers   15 header "Subject" VALUE
 * The callbacks are milter.c's own (milter_desc), reached through the seam of milter.h with an
 * in-memory MTA (struct fake) that keeps each message's header list and applies the deletions,
 * additions and changes the callbacks ask for, as Postfix does (names match in any case; a
 * deletion of an occurrence that is not there does nothing). The generations have the shipped
 * rules with subject tags, no tally and no drafts. At the end every connection is closed, as
 * libmilter always does.
 * Oracles:
 *  - no callback answers REJECT, TEMPFAIL or DISCARD; NOREPLY only where negotiated; negotiation
 *    asks for nothing the MTA did not offer;
 *  - the connection contexts alive are exactly those the MTA holds a pointer to, after every op;
 *    after the final closes none is alive and each generation has only the references the
 *    harness and the "current" slot hold (a message that kept one would show here);
 *  - an EOM answers CONTINUE when a message is open (MAIL FROM answered CONTINUE), else ACCEPT;
 *  - after an EOM, no incoming X-Amends-* header is left (when more distinct X-Amends-* names
 *    came than milter.c tracks, only the other names may stay: ours never; nothing is checked
 *    when the faults op made the MTA refuse changes), every header added is X-Amends-*, added
 *    once, one line of printable ASCII, and a changed Subject is one line; header changes only
 *    happen at the EOM of an open message.
 *
 * FUZZ_TRACE=1 in the environment prints each op and, at each EOM, its answer and the headers
 * it leaves ("+" marks ours), to see what a seed or a regression input does.
 *
 * OWNERSHIP  The generations live until the process ends; everything per input is freed.
 */
#include "fuzz_common.h"
#include "milter.h"
#include "rules.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CB_SLOTS 3
#define CB_MAX_OPS 1024
#define CB_MAX_EOMS 32             /* each runs the whole pipeline: keep an input fast */
#define CB_SMALL_CAP 700
#define CB_FLOOD_NAMES_OK (MILTER_FORGED_NAMES_MAX - 6)   /* other X-Amends-* names tracked */
#define CB_FLOOD_MAX 1024          /* flood headers per input */

enum { OP_NEGOTIATE, OP_CONNECT, OP_HELO, OP_ENVFROM, OP_ENVRCPT, OP_HEADER, OP_EOH, OP_BODY,
       OP_EOM, OP_ABORT, OP_CLOSE, OP_RELOAD, OP_FAULTS, OP_HEADER_NAMED, OP_FLOOD, OP_SUBJECT };

enum { FAULT_SETPRIV = 1, FAULT_CHGHEADER = 2, FAULT_ADDHEADER = 4, FAULT_NO_QID = 8 };

static const char *const names[] = {
	"X-Amends-Status", "x-amends-status", "X-AMENDS-RULES", "X-Amends-Tally", "X-Amends-Draft",
	"X-Amends-Escalate", "X-Amends-Limits", "X-Amends-Other", "X-Amends-", "x-AmEnDs-LiMiTs",
	"Subject", "SUBJECT", "From", "Message-ID", "Content-Type", "To", "Auto-Submitted",
	"List-Id", "Precedence", "Reply-To", "MIME-Version", "Content-Transfer-Encoding",
};

struct hdr {
	char *name, *value;
	bool ours;                 /* added (or changed) by the milter at this EOM */
};

struct fake {
	void *priv;                /* what smfi_setpriv stored */
	unsigned faults;
	bool nr_hdr, nr_body;      /* negotiated no-reply */
	bool open;                 /* MAIL FROM answered CONTINUE, no EOM/abort/close since */
	struct hdr *h;             /* the message's headers as the MTA holds them */
	size_t n_h;
	/* distinct incoming X-Amends-* names other than ours, counted up to one past what milter.c
	 * tracks (past that, such names may stay); they point at names in h[] (only EOM deletes
	 * entries of h[], and the count is read before it) */
	const char *other[CB_FLOOD_NAMES_OK + 1];
	size_t n_other;
	char qid[16];
};

static struct fake slots[CB_SLOTS];
static struct milter_generation *gen_big, *gen_small;
static int current;        /* 0 none, 1 gen_big, 2 gen_small */
static unsigned flood_left;
static FILE *trace_fp;     /* FUZZ_TRACE: a copy of the real stderr */

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	va_list ap;

	if (!trace_fp)
		return;
	va_start(ap, fmt);
	vfprintf(trace_fp, fmt, ap);
	va_end(ap);
	fflush(trace_fp);
}

/* ---- the MTA ------------------------------------------------------------------------------- */

static struct fake *fake_of(SMFICTX *ctx)
{
	return (struct fake *)(void *)ctx;
}

static void *f_getpriv(SMFICTX *ctx)
{
	return fake_of(ctx)->priv;
}

static int f_setpriv(SMFICTX *ctx, void *priv)
{
	struct fake *f = fake_of(ctx);

	if (f->faults & FAULT_SETPRIV)
		return MI_FAILURE;
	f->priv = priv;
	return MI_SUCCESS;
}

static const char *f_getsymval(SMFICTX *ctx, const char *name)
{
	struct fake *f = fake_of(ctx);

	return strcmp(name, "i") == 0 && !(f->faults & FAULT_NO_QID) ? f->qid : NULL;
}

static void hdr_push(struct fake *f, const char *name, const char *value, bool ours)
{
	struct hdr *h = realloc(f->h, (f->n_h + 1) * sizeof(*h));

	if (!h)
		fuzz_fail("out of memory");
	f->h = h;
	h[f->n_h].name = fuzz_strndup((const uint8_t *)name, strlen(name));
	h[f->n_h].value = fuzz_strndup((const uint8_t *)value, strlen(value));
	h[f->n_h].ours = ours;
	f->n_h++;
	if (ours || !util_ascii_casestarts(name, MILTER_FORGED_PREFIX) ||
	    milter_is_our_header(name) || f->n_other == UTIL_ARRAY_LEN(f->other))
		return;
	for (size_t i = 0; i < f->n_other; i++)
		if (strcasecmp(f->other[i], name) == 0)
			return;
	f->other[f->n_other++] = h[f->n_h - 1].name;
}

static void hdrs_clear(struct fake *f)
{
	for (size_t i = 0; i < f->n_h; i++) {
		free(f->h[i].name);
		free(f->h[i].value);
	}
	free(f->h);
	f->h = NULL;
	f->n_h = 0;
	f->n_other = 0;
}

static int f_chgheader(SMFICTX *ctx, const char *name, int idx, const char *value)
{
	struct fake *f = fake_of(ctx);
	int seen = 0;

	FUZZ_CHECK(f->open, "chgheader %s outside a message", name);
	if (f->faults & FAULT_CHGHEADER)
		return MI_FAILURE;
	if (value)
		fuzz_check_header_value(name, value);
	for (size_t i = 0; i < f->n_h; i++) {
		if (strcasecmp(f->h[i].name, name) != 0 || ++seen != idx)
			continue;
		free(f->h[i].value);
		if (value) {
			f->h[i].value = fuzz_strndup((const uint8_t *)value, strlen(value));
			f->h[i].ours = true;
		} else {
			free(f->h[i].name);
			memmove(&f->h[i], &f->h[i + 1], (f->n_h - i - 1) * sizeof(*f->h));
			f->n_h--;
		}
		return MI_SUCCESS;
	}
	if (value)
		hdr_push(f, name, value, true);
	return MI_SUCCESS;
}

static int f_addheader(SMFICTX *ctx, const char *name, const char *value)
{
	struct fake *f = fake_of(ctx);

	FUZZ_CHECK(f->open, "addheader %s outside a message", name);
	FUZZ_CHECK(util_ascii_casestarts(name, MILTER_FORGED_PREFIX), "added header \"%s\"", name);
	fuzz_check_header_value(name, value);
	for (const char *p = value; *p; p++)
		FUZZ_CHECK((unsigned char)*p < 0x80, "%s: non-ASCII value", name);
	for (size_t i = 0; i < f->n_h; i++)
		FUZZ_CHECK(!f->h[i].ours || strcasecmp(f->h[i].name, name) != 0, "%s added twice",
			   name);
	if (f->faults & FAULT_ADDHEADER)
		return MI_FAILURE;
	hdr_push(f, name, value, true);
	return MI_SUCCESS;
}

static const struct milter_mta fake_mta = {
	.getpriv = f_getpriv,
	.setpriv = f_setpriv,
	.getsymval = f_getsymval,
	.chgheader = f_chgheader,
	.addheader = f_addheader,
};

/* ---- set-up -------------------------------------------------------------------------------- */

static struct milter_generation *make_generation(struct config *cfg, size_t cap)
{
	struct milter_generation *g;
	struct diag d;

	struct strbuf dir;

	cfg->limits.max_scan_bytes = cap;
	cfg->drafts.enabled = false;
	free(cfg->tally.store);
	cfg->tally.store = fuzz_strndup((const uint8_t *)"none", 4);
	strbuf_init(&dir, 0);
	strbuf_printf(&dir, "%s/rules", fuzz_srcdir());
	if (dir.oom)
		fuzz_fail("out of memory");
	free(cfg->rules.dir);
	cfg->rules.dir = strbuf_take(&dir);
	fuzz_config_tag_all(cfg);
	diag_init(&d);
	g = milter_generation_new(cfg, &d);
	if (!g || !milter_generation_rules(g)->n_rules) {
		diag_print(&d, stderr);
		fuzz_fail("cannot build a generation with the shipped rules of %s", cfg->rules.dir);
	}
	diag_free(&d);
	return g;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config *small;
	struct diag d;

	(void)argc; (void)argv;
	gen_big = make_generation(fuzz_config(), fuzz_config()->limits.max_scan_bytes);
	diag_init(&d);
	small = config_load(NULL, &d);
	if (!small)
		fuzz_fail("the built-in default config does not load");
	diag_free(&d);
	gen_small = make_generation(small, CB_SMALL_CAP);
	config_unref(small);   /* the generation holds its own reference */
	milter_set_mta(&fake_mta);
	if (getenv("FUZZ_TRACE"))
		trace_fp = fdopen(dup(STDERR_FILENO), "w");
	for (int i = 0; i < CB_SLOTS; i++)
		snprintf(slots[i].qid, sizeof(slots[i].qid), "FUZZQ%d", i);
	return 0;
}

/* ---- the program --------------------------------------------------------------------------- */

struct reader {
	const uint8_t *p;
	size_t left;
};

static unsigned take_byte(struct reader *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

/* The next *len bytes (fewer when the input ends first: *len says how many), NUL-terminated,
 * malloc'd. */
static char *take_bytes(struct reader *r, size_t *len)
{
	char *s;

	if (*len > r->left)
		*len = r->left;
	s = fuzz_strndup(r->p, *len);
	r->p += *len;
	r->left -= *len;
	return s;
}

/* A string: a length byte, or 255 and a 2-byte length (little-endian), then the bytes. */
static char *take_str(struct reader *r)
{
	size_t len = take_byte(r);

	if (len == 255) {
		len = take_byte(r);
		len |= (size_t)take_byte(r) << 8;
	}
	return take_bytes(r, &len);
}

static void check_answer(const char *what, sfsistat rc)
{
	FUZZ_CHECK(rc == SMFIS_CONTINUE || rc == SMFIS_ACCEPT || rc == SMFIS_NOREPLY ||
		   rc == SMFIS_SKIP, "%s answered %d", what, rc);
}

static void check_live(void)
{
	size_t held = 0;

	for (int i = 0; i < CB_SLOTS; i++)
		held += slots[i].priv != NULL;
	FUZZ_CHECK(milter_conns_live() == held, "%zu connection contexts alive, the MTA holds %zu",
		   milter_conns_live(), held);
}

static SMFICTX *ctx_of(struct fake *f)
{
	return (SMFICTX *)(void *)f;
}

static void message_over(struct fake *f)
{
	f->open = false;
	hdrs_clear(f);
}

/* After an EOM of an open message: nothing forged is left (unless the MTA refused to delete). */
static void check_forged_gone(const struct fake *f, size_t distinct_other)
{
	if (f->faults & FAULT_CHGHEADER)
		return;
	for (size_t i = 0; i < f->n_h; i++) {
		const struct hdr *h = &f->h[i];

		if (h->ours || !util_ascii_casestarts(h->name, MILTER_FORGED_PREFIX))
			continue;
		FUZZ_CHECK(!milter_is_our_header(h->name), "forged %s: %s was left in place", h->name,
			   h->value);
		FUZZ_CHECK(distinct_other > CB_FLOOD_NAMES_OK,
			   "forged %s left in place (%zu other X-Amends-* names)", h->name,
			   distinct_other);
	}
}

static void op_eom(struct fake *f)
{
	SMFICTX *ctx = ctx_of(f);
	bool was_open = f->open;
	size_t other = f->n_other;
	sfsistat rc;

	rc = milter_desc.xxfi_eom(ctx);
	trace("  eom -> %d\n", rc);
	for (size_t i = 0; i < f->n_h; i++)
		trace("  %s%s: %s\n", f->h[i].ours ? "+ " : "  ", f->h[i].name, f->h[i].value);
	FUZZ_CHECK(rc == (was_open ? SMFIS_CONTINUE : SMFIS_ACCEPT),
		   "EOM answered %d with %s message", rc, was_open ? "an open" : "no");
	if (was_open)
		check_forged_gone(f, other);
	message_over(f);
}

static void op_header(struct fake *f, const char *name, const char *value)
{
	sfsistat rc = milter_desc.xxfi_header(ctx_of(f), (char *)name, (char *)value);

	check_answer("header", rc);
	FUZZ_CHECK(rc != SMFIS_NOREPLY || f->nr_hdr, "NOREPLY to a header, not negotiated");
	/* ACCEPT here would be out of memory, which a fuzz run does not reach */
	if (f->open)
		hdr_push(f, name, value, false);
}

static void op_negotiate(struct fake *f, struct reader *r)
{
	unsigned long f0 = take_byte(r), f1 = take_byte(r), p0 = 0, p1 = 0, p2 = 0, p3 = 0;
	sfsistat rc;

	f1 |= (unsigned long)take_byte(r) << 8;
	f1 |= (unsigned long)take_byte(r) << 16;
	if (f0 & 0x80)   /* the high bit stands for SMFIF_SETSYMLIST (0x100) */
		f0 = (f0 & 0x7F) | SMFIF_SETSYMLIST;
	rc = milter_desc.xxfi_negotiate(ctx_of(f), f0, f1, 0, 0, &p0, &p1, &p2, &p3);
	FUZZ_CHECK(rc == SMFIS_CONTINUE || rc == SMFIS_ALL_OPTS, "negotiate answered %d", rc);
	if (rc != SMFIS_CONTINUE)
		return;
	FUZZ_CHECK((p0 & ~f0) == 0 && (p1 & ~f1) == 0 && p2 == 0 && p3 == 0,
		   "negotiate asked 0x%lx/0x%lx of 0x%lx/0x%lx", p0, p1, f0, f1);
	f->nr_hdr |= (p1 & SMFIP_NR_HDR) != 0;
	f->nr_body |= (p1 & SMFIP_NR_BODY) != 0;
}

static void op_envfrom(struct fake *f, struct reader *r)
{
	char *addr = take_str(r);
	char *argv[] = { addr, NULL };
	sfsistat rc;

	message_over(f);   /* a new MAIL FROM starts a new message, whatever came before */
	rc = milter_desc.xxfi_envfrom(ctx_of(f), argv);
	check_answer("envfrom", rc);
	f->open = rc == SMFIS_CONTINUE;
	free(addr);
}

static void op_body(struct fake *f, struct reader *r)
{
	size_t len = take_byte(r);
	char *chunk;
	sfsistat rc;

	len |= (size_t)take_byte(r) << 8;
	chunk = take_bytes(r, &len);
	rc = milter_desc.xxfi_body(ctx_of(f), (unsigned char *)chunk, len);
	check_answer("body", rc);
	FUZZ_CHECK(rc != SMFIS_NOREPLY || f->nr_body, "NOREPLY to a body chunk, not negotiated");
	free(chunk);
}

static void op_close(struct fake *f)
{
	check_answer("close", milter_desc.xxfi_close(ctx_of(f)));
	/* the context is gone: a setpriv(NULL) that failed leaves a dangling pointer the MTA
	 * would not use again (libmilter frees its own context after close) */
	f->priv = NULL;
	f->nr_hdr = f->nr_body = false;
	message_over(f);
}

static void op_reload(unsigned which)
{
	switch (which % 3) {
	case 0:
		milter_generation_clear();
		break;
	case 1:
		milter_generation_publish(milter_generation_ref(gen_big));
		break;
	default:
		milter_generation_publish(milter_generation_ref(gen_small));
		break;
	}
	current = (int)(which % 3);
}

static void op_flood(struct fake *f, unsigned n)
{
	char name[32];

	n = 2 * n < flood_left ? 2 * n : flood_left;
	flood_left -= n;
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "X-Amends-Fuzz-%u", i);
		op_header(f, name, "flood");
	}
}

/* run_op - one op of the program; false when the program should stop */
static bool run_op(struct reader *r, unsigned *eoms)
{
	unsigned op = take_byte(r);
	struct fake *f = &slots[(op >> 4) % CB_SLOTS];
	char *a, *b;

	trace("op %u on connection %ld\n", op & 0x0F, (long)(f - slots));
	switch (op & 0x0F) {
	case OP_NEGOTIATE:
		op_negotiate(f, r);
		break;
	case OP_CONNECT:
		a = take_str(r);
		check_answer("connect", milter_desc.xxfi_connect(ctx_of(f), a, NULL));
		free(a);
		break;
	case OP_HELO:
		a = take_str(r);
		check_answer("helo", milter_desc.xxfi_helo(ctx_of(f), a));
		free(a);
		break;
	case OP_ENVFROM:
		op_envfrom(f, r);
		break;
	case OP_ENVRCPT: {
		char *argv[] = { take_str(r), NULL };

		check_answer("envrcpt", milter_desc.xxfi_envrcpt(ctx_of(f), argv));
		free(argv[0]);
		break;
	}
	case OP_HEADER:
		a = take_str(r);
		b = take_str(r);
		op_header(f, a, b);
		free(a);
		free(b);
		break;
	case OP_EOH:
		check_answer("eoh", milter_desc.xxfi_eoh(ctx_of(f)));
		break;
	case OP_BODY:
		op_body(f, r);
		break;
	case OP_EOM:
		op_eom(f);
		if (++*eoms >= CB_MAX_EOMS)
			return false;
		break;
	case OP_ABORT:
		check_answer("abort", milter_desc.xxfi_abort(ctx_of(f)));
		message_over(f);
		break;
	case OP_CLOSE:
		op_close(f);
		break;
	case OP_RELOAD:
		op_reload(take_byte(r));
		break;
	case OP_FAULTS:
		f->faults = take_byte(r);
		break;
	case OP_HEADER_NAMED:
		a = take_str(r);
		op_header(f, names[take_byte(r) % UTIL_ARRAY_LEN(names)], a);
		free(a);
		break;
	case OP_FLOOD:
		op_flood(f, take_byte(r));
		break;
	default:
		a = take_str(r);
		op_header(f, "Subject", a);
		free(a);
		break;
	}
	check_live();
	return r->left > 0;
}

/* The end of a session: libmilter closes every connection; nothing may be left behind. */
static void finish(void)
{
	for (int i = 0; i < CB_SLOTS; i++) {
		slots[i].faults = 0;
		op_close(&slots[i]);
	}
	FUZZ_CHECK(milter_conns_live() == 0, "%zu connection contexts alive after close",
		   milter_conns_live());
	FUZZ_CHECK(milter_generation_refs(gen_big) == 1 + (current == 1) &&
		   milter_generation_refs(gen_small) == 1 + (current == 2),
		   "generation references %d and %d after every close (current %d)",
		   milter_generation_refs(gen_big), milter_generation_refs(gen_small), current);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader r = { data, size };
	unsigned eoms = 0;

	op_reload(1);   /* every input starts with the default generation current */
	flood_left = CB_FLOOD_MAX;
	fuzz_quiet_stderr(true);
	for (unsigned n = 0; n < CB_MAX_OPS && r.left > 0; n++)
		if (!run_op(&r, &eoms))
			break;
	finish();
	fuzz_quiet_stderr(false);
	return 0;
}
