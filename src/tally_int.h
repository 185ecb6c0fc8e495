/*
 * tally_int.h - what tally.c shares with its backends (tally_sqlite.c, tally_redis.c); private
 *
 * tally.c owns the shared handle, the spec parsing, sender validation and the connection
 * pool; a backend supplies a table of functions. Each gets the call's lease: a backend that
 * needs a connection takes it with tally_lease_conn() and then has it to itself until the call
 * returns (checked out of the pool on first use, given back by tally.c). A call that never asks
 * (an SQLite write, which goes through the one writer connection) never waits for the pool.
 *
 * OWNERSHIP  conn_new() returns a connection owned by tally.c, which gives it back to
 *            conn_free() when a call on it failed, it sat idle too long, or the tally closes.
 * DIAGNOSTICS  backends report a failure with tally_set_error() and return -1.
 */
#ifndef AMENDS_TALLY_INT_H
#define AMENDS_TALLY_INT_H

#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include "tally.h"

/* Bounds on what one incident may store (text written by a stranger). */
#define TALLY_FIELD_MAX 512          /* message id, subject */
#define TALLY_RULES_MAX 1024         /* comma-separated rule names */
#define TALLY_CATEGORY_MAX 64

/* The settings a tally copies from the config at open time (it may outlive a reload). */
struct tally_settings {
	long long window_s;
	long long retention_s;
	long long dedupe_s;
	int incidents;
	int busy_timeout_ms;            /* clamped to 0..1000 */
	const char *sync_pragma;        /* "PRAGMA synchronous = FULL" (default), EXTRA or NORMAL */
	bool sync_durable;              /* FULL or EXTRA: a write is durable before it returns */
	int redis_timeout_ms;           /* clamped to 1..1000 */
	char *redis_prefix;
	char *redis_password;
};

#define TALLY_POOL_MAX 64               /* idle connections a tally keeps */
#define TALLY_POOL_IDLE_S 10            /* an idle connection older than this is closed */
#define TALLY_POOL_WAIT_MS 1000         /* longest wait for a connection when all are in use */

/* A call's claim on one pooled connection, taken on first use; tally.c owns it. */
struct tally_lease {
	struct tally *t;
	void *conn;                     /* NULL until tally_lease_conn() */
};

/* The call's connection (checked out of the pool the first time), or NULL with the reason set:
 * a new connection failed, or all max_conns were in use for TALLY_POOL_WAIT_MS ("busy: ..."). */
void *tally_lease_conn(struct tally_lease *l);

struct tally_backend {
	const char *name;
	/* Shared state from the part of the spec after "sqlite:" / "redis:". */
	int (*open)(struct tally *t, const char *where, char **err);
	void (*close)(struct tally *t);
	/* At most this many connections open at once (0: no bound); a call that needs one more
	 * waits for one to be given back. */
	size_t max_conns;
	/* A new connection, used by one thread at a time; NULL with tally_set_error(). */
	void *(*conn_new)(struct tally *t);
	void (*conn_free)(void *conn);
	int (*record)(struct tally *t, struct tally_lease *l, const char *sender,
		      const struct tally_event *ev, struct tally_counts *after);
	int (*counts)(struct tally *t, struct tally_lease *l, const char *sender, time_t now,
		      struct tally_counts *out);
	int (*seen)(struct tally *t, struct tally_lease *l, const char *sender, time_t *first,
		    time_t *last);
	int (*history)(struct tally *t, struct tally_lease *l, const char *sender, size_t max,
		       struct tally_history *out);
	int (*claim)(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		     time_t now);
	int (*unclaim)(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		       time_t when);
	int (*top)(struct tally *t, struct tally_lease *l, size_t n, time_t now,
		   struct tally_sender_summary **out, size_t *nout);
	int (*reset)(struct tally *t, struct tally_lease *l, const char *sender);
	int (*forget)(struct tally *t, struct tally_lease *l, const char *sender);
	int (*prune)(struct tally *t, struct tally_lease *l, time_t now);
};

struct tally {
	uint64_t id;                    /* unique per process, never reused */
	const struct tally_backend *be;
	struct tally_settings set;
	void *state;                    /* the backend's shared state */
	pthread_mutex_t pool_lock;      /* guards the idle stack and n_open below */
	pthread_cond_t pool_freed;      /* a connection went back to the stack or was closed */
	void *idle[TALLY_POOL_MAX];     /* idle connections, most recently used on top */
	long long idle_since[TALLY_POOL_MAX];   /* CLOCK_MONOTONIC seconds when returned */
	size_t n_idle;
	size_t n_open;                  /* connections that exist, idle or checked out */
	atomic_llong reap_due;          /* pool_reap: when it looks for stale ones next (seconds) */
	/* tally_open_retrying(): the store may not be open yet (be->open failed); every call
	 * retries it under open_lock. */
	atomic_int ready;               /* be->open succeeded; state is valid */
	char *where;                    /* the spec after "sqlite:" / "redis:" */
	pthread_mutex_t open_lock;
	char open_err[256];
};

extern const struct tally_backend tally_sqlite_backend;
extern const struct tally_backend tally_redis_backend;

/* Record why this thread's last call failed (printf-style, truncated to a short line). */
void tally_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An incident's text fields, cleaned and bounded for storage (tally_incident_fields). */
struct tally_fields {
	char *message_id, *subject, *rules, *categories;
};

/* Fill f from ev; 0, or -1 when out of memory (f is then already released). */
int tally_incident_fields(const struct tally_event *ev, struct tally_fields *f);
void tally_incident_fields_free(struct tally_fields *f);
/* Copy s for storage: controls become spaces, invalid UTF-8 becomes U+FFFD, at most max bytes
 * cut on a character boundary; NULL s gives "". NULL only when out of memory. */
char *tally_field_copy(const char *s, size_t max);
/* Append one count to out (the category is copied). 0 or -1 (out of memory). */
int tally_counts_push(struct tally_counts *out, const char *category, size_t len, int count,
		      time_t first, time_t last);
/* Comma-joined categories of an event, each at most TALLY_CATEGORY_MAX bytes; malloc'd. */
char *tally_event_categories(const struct tally_event *ev);

#endif
