/*
 * spool.h - the durable local queue of drafts waiting for IMAP APPEND
 *
 * The spool directory is laid out like a maildir: tmp/ (being written), new/ (waiting), and
 * failed/ (the server refused them for good; kept for a person to look at, never deleted).
 * A draft is written tmp -> new with fsync of file and directory (maildir.c) before
 * spool_put() returns, and removed only after the IMAP server answered OK (spool_done()).
 * Names sort by time, so the worker sends the oldest first.
 *
 * OWNERSHIP  spool_open() returns a handle closed with spool_close(). spool_list() fills a
 *            malloc'd array freed with spool_list_free(). Thread-safe.
 */
#ifndef AMENDS_SPOOL_H
#define AMENDS_SPOOL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

struct spool;

enum spool_state { SPOOL_WAITING, SPOOL_FAILED };

struct spool_entry {
	char *name;
	enum spool_state state;
	off_t size;
	time_t mtime;
	long long order[3];     /* sort key from the name: seconds, microseconds, counter */
};

struct spool *spool_open(const char *dir, char **err);
void spool_close(struct spool *s);
const char *spool_path(const struct spool *s);
/* Write a draft durably into new/. 0 (and *name, malloc'd, when name != NULL) or -1 with *err. */
int spool_put(struct spool *s, const char *data, size_t len, char **name, char **err);
/* List new/ (and failed/ when with_failed), oldest first, at most max entries. 0 or -1. */
int spool_list(struct spool *s, int with_failed, size_t max, struct spool_entry **out,
	       size_t *n);
void spool_list_free(struct spool_entry *v, size_t n);
/* Read one waiting (or failed) draft; at most max_bytes. 0 or -1 (errno). */
int spool_read(struct spool *s, const struct spool_entry *e, size_t max_bytes, char **data,
	       size_t *len);
/* Delivered: remove it (and fsync the directory). 0 or -1. */
int spool_done(struct spool *s, const char *name);
/* Refused for good: move it to failed/. 0 or -1. */
int spool_fail(struct spool *s, const char *name);

#endif
