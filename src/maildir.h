/*
 * maildir.h - durable Maildir++ delivery (drafts into the review mailbox, and the IMAP spool)
 *
 * A message is created with O_EXCL in tmp/ under a unique name
 * (<sec>.M<usec>P<pid>Q<counter>.<host>, the counter atomic across threads), written, fsync'd,
 * renamed into cur/<name>:2,<flags> (or new/<name> for a spool) and the directory fsync'd:
 * only then does it count as written. A crash leaves at most a file in tmp/, which the next
 * maildir_open() removes once older than 36 hours. Paths come from the config only, never from
 * an address. Thread-safe: one struct maildir may be shared by any number of threads.
 *
 * OWNERSHIP  maildir_open() returns a handle closed with maildir_close(). Names returned through
 *            out-parameters are malloc'd (free()). Errors are malloc'd strings (free()).
 */
#ifndef AMENDS_MAILDIR_H
#define AMENDS_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MAILDIR_TMP_MAX_AGE_S (36L * 3600)

struct maildir;

struct maildir_opts {
	const char *root;     /* the Maildir (created when missing, mode 0700) */
	const char *folder;   /* Maildir++ folder ".Drafts", or "" / NULL for the root */
	const char *flags;    /* info flags, e.g. "DS"; D is always added; NULL = "D" */
	bool to_new;          /* deliver into new/ with no info suffix (a spool) */
};

struct maildir *maildir_open(const struct maildir_opts *o, char **err);
void maildir_close(struct maildir *m);
/* Write data durably. Returns 0 and (when name != NULL) the final file name relative to the
 * destination directory; -1 with *err. LF or CRLF line ends are written as given. */
int maildir_deliver(struct maildir *m, const char *data, size_t len, char **name, char **err);
/* A fresh unique base name (no info suffix); malloc'd or NULL. */
char *maildir_unique_name(void);
/* Remove regular files in tmp/ older than max_age_s (relative to now); returns how many. */
int maildir_clean_tmp(struct maildir *m, time_t now, long max_age_s);
/* The destination directory (cur/ or new/) as an open fd, for spool.c to list and move. */
int maildir_dest_fd(const struct maildir *m);
/* The folder directory ("<root>/<folder>") path; belongs to m. */
const char *maildir_path(const struct maildir *m);
/* Is folder a safe Maildir++ folder name ("" or "." + [A-Za-z0-9._-], no ".." )? */
bool maildir_folder_valid(const char *folder);
/* Normalise flags: uppercase letters only, D added, sorted, unique. -1 when flags has others. */
int maildir_flags_normalize(const char *flags, char out[27]);

#endif
