/*
 * draft.h - compose a reply draft in the customer's language and deliver it for review
 *
 * draft_compose() renders a template (conf/templates/<lang>/<kind>) into a complete RFC 5322
 * message: UTF-8 quoted-printable body, RFC 2047 headers, Subject "Re: ...", In-Reply-To and
 * References to thread under the customer's mail, the customer's text quoted below a localized
 * attribution line. Nothing from the incoming mail can create a header line.
 * A drafter delivers: Maildir (tmp -> cur, ":2,D", fsync) or IMAP APPEND with \Draft through a
 * durable local spool and a background worker (imap.c), never slowing mail beyond the
 * configured EOM budget.
 *
 * OWNERSHIP  draft_compose() returns a malloc'd message the caller frees. drafter_open() returns
 *            a handle closed with drafter_close(); drafter_submit() copies what it keeps.
 */
#ifndef AMENDS_DRAFT_H
#define AMENDS_DRAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "config.h"
#include "message.h"
#include "policy.h"
#include "tally.h"

struct drafter;

struct draft_request {
	enum policy_draft kind;
	const char *lang;                    /* detected: en ur pa fa hi ur-Latn hi-Latn */
	const struct message *msg;           /* the customer's decoded message */
	const char *sender;                  /* tally key (lowercased address) */
	const struct tally_counts *counts;   /* may be NULL */
	const struct tally_history *history; /* may be NULL; newest first */
	time_t now;
	const char *queue_id;                /* for logs, may be "" */
	/* When the draft fails after drafter_submit() has returned (it did not wait: the budget
	 * passed, or eom_budget_ms is 0), the writer thread calls late_failure(late_arg), so the
	 * caller can undo what it did for the draft (the pipeline gives its dedupe claim back).
	 * drafter_submit() takes late_arg in every case and frees it with late_free (which may be
	 * NULL) once the draft's outcome is known. All three may be NULL. */
	void (*late_failure)(void *late_arg);
	void *late_arg;
	void (*late_free)(void *late_arg);
};

/* Render. Returns 0 and *out, *outlen; or -1 with *err (malloc'd). The message has CRLF line
 * ends; every header line is ASCII and at most 998 octets. */
int draft_compose(const struct config *cfg, const struct draft_request *req,
		  char **out, size_t *outlen, char **err);
/* Like draft_compose(), also returning (when body != NULL) the plain UTF-8 body before
 * quoted-printable encoding (malloc'd), for `amendsctl draft`. */
int draft_compose_ex(const struct config *cfg, const struct draft_request *req,
		     char **out, size_t *outlen, char **body, char **err);
/* "apology", "winback", "partways" (NULL for NONE); parse returns POLICY_DRAFT_NONE if unknown. */
const char *draft_kind_name(enum policy_draft k);
enum policy_draft draft_kind_parse(const char *name);

/* Helpers, exported for the tests and the fuzz target:
 * draft_clean_line - one line of text from a stranger: invalid UTF-8 replaced, C0/C1 controls,
 *   line/paragraph separators and bidi embeddings/overrides/isolates turned into spaces or
 *   dropped, whitespace collapsed, trimmed, cut at max_cp code points. malloc'd or NULL (OOM). */
char *draft_clean_line(const char *s, size_t len, size_t max_cp);
/* draft_reply_subject - "Re: " + the cleaned original subject without its own Re:/Aw:/Fwd-less
 *   prefixes, at most DRAFT_SUBJECT_MAX_CP code points. malloc'd or NULL. */
#define DRAFT_SUBJECT_MAX_CP 256
char *draft_reply_subject(const char *orig);
/* draft_msgid_valid - a Message-ID body (without <>) we are willing to copy into a header. */
bool draft_msgid_valid(const char *id, size_t len);
#define DRAFT_MAX_REFERENCES 20
/* The reply language for a detected language (fallbacks for romanized text, default_lang when
 * no templates exist). Static or config-owned string. */
const char *draft_reply_lang(const struct config *cfg, const char *detected);

/* The queue between drafter_submit and the writer thread holds at most this many drafts and
 * bytes; a draft past either bound is refused at once (-1, counted as failed). */
#define DRAFT_QUEUE_MAX 256
#define DRAFT_QUEUE_MAX_BYTES ((size_t)4 * 1024 * 1024)

struct drafter *drafter_open(const struct config *cfg, char **err);
/* drafter_close drains the queue: every draft accepted is written (or fails, counted) first. */
void drafter_close(struct drafter *d);
/* For tests only: while held the writer takes no job, so the queue fills up to its bounds. */
void drafter_hold(struct drafter *d, bool hold);
/* Compose and deliver (or spool). 0 when written or durably spooled, -1 on failure (*err).
 * Returns 1 when the draft was queued and not waited for: cfg->drafts.eom_budget_ms is 0 (the
 * default: the reply to the MTA never waits for the disk), or it passed first. The writer
 * thread then finishes the draft, logs and counts the outcome, and on failure calls
 * req->late_failure. The drafter counts STATS_DRAFTS_WRITTEN / _SPOOLED / _FAILED itself. */
int drafter_submit(struct drafter *d, const struct config *cfg, const struct draft_request *req,
		   char **err);

#endif
