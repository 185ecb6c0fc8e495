/*
 * tally.h - per-sender, per-category history: one interface, two stores
 *
 * Stores: "sqlite:/path/tally.db" (embedded default; WAL, BEGIN IMMEDIATE, a connection per
 * thread) and "redis:host:port" / "redis:[v6]:port" / "redis:unix:/path" (hiredis 0.14; each update one atomic round trip, ~1 s timeouts,
 * a fresh context after any error, reconnect with backoff). The backend is picked from the spec
 * and hidden behind a table of function pointers (tally_sqlite.c, tally_redis.c).
 *
 * Categories are stored by name, so a reordered category list in the config keeps its history.
 * Counts are over the configured window (old trouble fades); incidents keep the last N messages
 * (time, Message-ID, subject, categories, rules) that drafts cite.
 *
 * Thread-safe: one struct tally is shared; calls check a connection out of its pool and return
 * it (SQLite writes go through one writer connection under a mutex).
 * Errors: functions return -1 and a short reason in tally_error() (per thread); soft errors
 * (busy, down, full disk) are counted by the caller and never delay mail beyond the timeouts.
 *
 * OWNERSHIP  tally_open() returns a handle closed with tally_close(). Arrays returned through
 *            out-parameters are malloc'd and freed with the matching *_free function.
 */
#ifndef AMENDS_TALLY_H
#define AMENDS_TALLY_H

#include <stddef.h>
#include <stdbool.h>
#include <time.h>
#include "config.h"

struct tally;

#define TALLY_SENDER_MAX 320        /* longest sender key accepted (RFC 5321 path limits) */

struct tally_event {
	time_t when;
	const char *message_id;     /* may be "" */
	const char *subject;        /* decoded, may be "" */
	const char *const *categories;   /* names of the categories this message carries */
	size_t n_categories;
	const char *rules;          /* comma-separated rule names, may be "" */
};

struct tally_count {
	char *category;
	int count;                  /* messages in the window, this one included */
	time_t first_seen, last_seen;
};

struct tally_counts {
	struct tally_count *v;
	size_t n;
};

struct tally_incident {
	time_t when;
	char *message_id;
	char *subject;
	char *categories;           /* comma-separated */
	char *rules;
};

struct tally_history {
	struct tally_incident *v;   /* newest first */
	size_t n;
};

struct tally_sender_summary {  /* for "amendsctl tally top" */
	char *sender;
	int total;
	time_t last_seen;
};

/* Open the store named by cfg->tally.store. NULL with *err (malloc'd) on a hard error. */
struct tally *tally_open(const struct config *cfg, char **err);
/* Like tally_open(), but a store that cannot be opened now (read-only or full state dir) still
 * yields a handle, with the reason in *err (malloc'd; the caller logs it): every call fails with
 * that reason and retries the open first, so the fault clearing needs no
 * restart. NULL only for a bad spec or settings. What the daemon uses. */
struct tally *tally_open_retrying(const struct config *cfg, char **err);
void tally_close(struct tally *t);
/* The address inside addr, without surrounding blanks and one pair of <>: a pointer into addr
 * and its length in *len (not NUL-terminated). */
const char *tally_addr_bare(const char *addr, size_t *len);
/* Canonical sender key: lowercased, +detail stripped when configured. malloc'd; NULL if invalid. */
char *tally_sender_key(const struct config *cfg, const char *addr);
/* Record one message (a message with no category is not recorded but counts are still read),
 * and return the sender's counts in the window after it. 0 or -1. */
int tally_record(struct tally *t, const char *sender, const struct tally_event *ev,
		 struct tally_counts *after);
/* Counts without recording. */
int tally_counts(struct tally *t, const char *sender, time_t now, struct tally_counts *out);
int tally_count_of(const struct tally_counts *c, const char *category);
void tally_counts_free(struct tally_counts *c);
/* Last N incidents, newest first. */
int tally_history(struct tally *t, const char *sender, size_t max, struct tally_history *out);
void tally_history_free(struct tally_history *h);
/* Atomically: if no draft of this kind went to sender since now - dedupe_days, mark one now and
 * return 1; else 0. -1 on error. */
int tally_draft_claim(struct tally *t, const char *sender, const char *kind, time_t now);
/* Undo a claim whose draft could not be written (so a later message can try again). */
int tally_draft_unclaim(struct tally *t, const char *sender, const char *kind, time_t when);
int tally_top(struct tally *t, size_t n, struct tally_sender_summary **out, size_t *nout);
void tally_top_free(struct tally_sender_summary *v, size_t n);
/* reset: zero the counts but keep the sender known; forget: erase every trace. */
int tally_reset(struct tally *t, const char *sender);
int tally_forget(struct tally *t, const char *sender);
/* Delete data older than the retention period. */
int tally_prune(struct tally *t, time_t now);
/* Sender-level first and last seen (any category): 1 known, 0 unknown, -1 error. */
int tally_seen(struct tally *t, const char *sender, time_t *first, time_t *last);
/* "sqlite" or "redis". */
const char *tally_backend_name(const struct tally *t);
/* Why the last call on this thread failed. */
const char *tally_error(void);
/* Kept for callers of the per-thread design: connections are pooled now, so this does nothing. */
void tally_thread_cleanup(void);

#endif
