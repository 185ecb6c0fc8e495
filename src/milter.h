/*
 * milter.h - the libmilter callbacks and the state they share with the daemon's main
 *
 * The daemon publishes the current configuration and ruleset (and the tally and drafter built
 * for them) as one "generation"; each connection takes a reference at connect and keeps it to
 * close, so a reload never changes the rules under a message in flight.
 *
 * The callbacks reach libmilter only through a small seam (struct milter_mta: getpriv, setpriv,
 * getsymval, chgheader, addheader). The daemon never changes it; tests/fuzz/fuzz_callbacks.c
 * puts an in-memory MTA there and calls the callbacks of milter_desc without a socket. The
 * collection step of the header and body callbacks (milter_collect_*) is public so that the fuzz
 * targets collect exactly as the daemon does.
 */
#ifndef AMENDS_MILTER_H
#define AMENDS_MILTER_H

#include <libmilter/mfapi.h>
#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "rules.h"
#include "util.h"

struct drafter;
struct tally;

struct milter_generation;

/* Build a generation from a config (loads rules, opens tally and drafter). On error returns
 * NULL and leaves problems in d. Takes its own reference to cfg. */
struct milter_generation *milter_generation_new(struct config *cfg, struct diag *d);
/* Make g current (the milter takes over the caller's reference). The old one is released when
 * its last connection closes. */
void milter_generation_publish(struct milter_generation *g);
/* Drop the current generation (shutdown). */
void milter_generation_clear(void);
const struct config *milter_generation_config(const struct milter_generation *g);
const struct ruleset *milter_generation_rules(const struct milter_generation *g);
/* One more reference to g (returned); milter_generation_unref() drops one (NULL is fine). */
struct milter_generation *milter_generation_ref(struct milter_generation *g);
void milter_generation_unref(struct milter_generation *g);
/* The references g has now (tests: a connection that forgot to drop its own shows up here). */
int milter_generation_refs(const struct milter_generation *g);

/* The callback table for smfi_register. */
extern struct smfiDesc milter_desc;

/* ---- the seam to libmilter ---------------------------------------------------------------- */

/* What the callbacks ask of the MTA connection ctx; each returns what the smfi_* function of
 * the same name returns (MI_SUCCESS / MI_FAILURE, the symbol's value or NULL). chgheader with
 * a NULL value deletes occurrence idx (from 1) of the header name. */
struct milter_mta {
	void *(*getpriv)(SMFICTX *ctx);
	int (*setpriv)(SMFICTX *ctx, void *priv);
	const char *(*getsymval)(SMFICTX *ctx, const char *name);
	int (*chgheader)(SMFICTX *ctx, const char *name, int idx, const char *value);
	int (*addheader)(SMFICTX *ctx, const char *name, const char *value);
};

/* Route the callbacks' MTA calls through m (NULL: libmilter's smfi_*, the default). For tests
 * only: call it before any connection exists; m is borrowed until it is replaced. */
void milter_set_mta(const struct milter_mta *m);
/* Connection contexts allocated and not yet freed (close frees them). */
size_t milter_conns_live(void);
/* End-of-message callbacks running now (the work a stop waits for). */
size_t milter_eoms_live(void);

/* ---- the collection step ------------------------------------------------------------------ */

#define MILTER_FORGED_NAMES_MAX 256
#define MILTER_FORGED_PREFIX "X-Amends-"

struct milter_forged {
	char *name;          /* as first seen; MTAs match header names case-insensitively */
	int count;           /* occurrences, so we can delete index count..1 */
};

/* What the header and body callbacks collect from one message. */
struct milter_msg {
	struct strbuf raw;              /* "name: value\r\n"..., a blank line, the body; capped */
	bool in_body;
	bool truncated;                 /* the cap was reached: collecting stopped */
	struct milter_forged forged[MILTER_FORGED_NAMES_MAX];   /* incoming X-Amends-* names */
	size_t n_forged;
	size_t n_forged_other;          /* of them, names not ours (at most MAX - our names) */
	size_t forged_overflow;         /* occurrences that found no slot */
	int subject_count;              /* Subject headers seen (tagged only when exactly one) */
};

/* Start collecting a message of at most cap_bytes (0: no cap) into m, which is zeroed or was
 * used before: what m held is dropped. */
void milter_msg_begin(struct milter_msg *m, size_t cap_bytes);
/* Free what m holds and leave it empty (zeroed state, reusable by milter_msg_begin). */
void milter_msg_reset(struct milter_msg *m);
/* One header as libmilter hands it over (C strings): appended as "name: value\r\n" while under
 * the cap; past it only remembered when forged (X-Amends-*) and counted when a Subject.
 * 0, or -1 when out of memory (the message is then passed on unfiltered). */
int milter_collect_header(struct milter_msg *m, const char *name, const char *value);
/* The end of the header block: the blank line. */
void milter_collect_eoh(struct milter_msg *m);
/* One body chunk, appended while under the cap. 0, or -1 when out of memory. */
int milter_collect_body(struct milter_msg *m, const unsigned char *chunk, size_t len);
/* Whether name is one of the headers amends adds (X-Amends-Status, ...), in any case. */
bool milter_is_our_header(const char *name);

#endif
