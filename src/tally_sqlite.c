/*
 * tally_sqlite.c - the embedded tally store: one SQLite file, a connection per thread at a time
 *
 * WAL, so readers never wait for the writer; every write is one BEGIN IMMEDIATE transaction
 * (a deferred one that reads first can fail busy whatever the timeout), with a busy timeout of
 * at most a second. The threads of one process take turns at writing on a mutex (waiting at
 * most the busy timeout for it) before BEGIN: SQLite's own busy handler polls with sleeps of
 * up to 100 ms, so sixteen milter threads contending through it starve one another into
 * second-long waits; queued on the mutex each waits only for the commits ahead of it. The
 * busy timeout still covers other processes (amendsctl tally reset); synchronous FULL by
 * default (a committed tally survives a power cut; NORMAL may lose the last transactions on
 * power loss but never corrupts). The records, draft claims and unclaims of threads that arrive
 * together share one transaction and one fsync, written by one of them (group commit by
 * combining, see sq_queue_write), and none returns before it is durable; with FULL the WAL's
 * fsync is made after the write turn is given back, so the next batch commits meanwhile (see
 * "durability"). Statements are prepared once per connection and reused. The schema is
 * versioned with PRAGMA user_version and upgraded step by step at open; a file from a newer
 * amends is refused.
 *
 * Tables: events (one row per message and category), event_days (per sender, category and day:
 * how many events, the first and last; a windowed count reads these and the events of the
 * window's first day only, so its cost does not grow with a sender's history),
 * incidents (the last N messages per sender, cited by drafts), drafts (last claim per sender
 * and kind, for the dedupe), senders (first and last seen). Pruned by retention, hourly.
 *
 * Every write runs on the process's one writer connection (sq_state.writer, used only under
 * write_lock), whose page cache therefore stays valid; the connections tally.c pools only read.
 * The WAL is checkpointed by a thread of its own (sq_ckpt_main), not in a message's commit.
 *
 * OWNERSHIP  the shared state is the path, the write lock, the writer and the checkpoint thread
 *            with its connection (stopped and closed by sq_close());
 *            each pooled connection owns its sqlite3 handle and statements, closed by conn_free().
 * DIAGNOSTICS  busy, full disk and I/O errors return -1 with "busy: ...", "disk full: ..." or
 *              "io error: ..." in tally_error(); the caller counts the failure and accepts the mail.
 */
#include "tally_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#define SQ_PRUNE_EVERY_S 3600
#define SQ_BATCH_MAX 64           /* records in one group commit at most */
/* Reading connections (tally.c's pool) open at once. A read is a few index lookups (tens of
 * microseconds of CPU), so more readers than a few per core only add memory: each holds
 * ~200 KiB of statements, lookaside and schema besides its cache. Before this bound, 64
 * sessions kept 64 readers (a quarter of the heap, spread over the malloc arenas of 64
 * threads, whose high-water marks then crept up for the length of a soak). Writes never take
 * a reader: they go to the writer below, and a call waiting for its commit holds no reader. */
#define SQ_READERS_MAX 8
/* Page caches, in KiB. A reader's cache is emptied at the start of each read transaction
 * whenever the writer has committed since its last one (WAL; under load, every time), so it
 * only ever holds one query's pages: a count over a long history fills it and the memory
 * stays with the thread's malloc arena. Kept small: at most SQ_READERS_MAX x 256 KiB. The
 * writer's cache stays valid between its transactions (SQLite's default size). */
#define SQ_READER_CACHE_KIB 256
#define SQ_WRITER_CACHE_KIB 2000

#define SQ_DAY_S 86400

/* sq_day - the day (UTC) of ts, rounding down also before 1970, as schema step 2 does */
static sqlite3_int64 sq_day(sqlite3_int64 ts)
{
	return ts >= 0 ? ts / SQ_DAY_S : (ts - (SQ_DAY_S - 1)) / SQ_DAY_S;
}

/* Schema steps: step i takes user_version i to i+1. Append, never edit a released step. */
static const char *const sq_schema[] = {
	/* 1: initial schema */
	"CREATE TABLE senders(sender TEXT PRIMARY KEY, first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX senders_last ON senders(last_seen);"
	"CREATE TABLE events(id INTEGER PRIMARY KEY, sender TEXT NOT NULL, category TEXT NOT NULL,"
	"  ts INTEGER NOT NULL, message_id TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX events_sender ON events(sender, category, ts);"
	"CREATE INDEX events_ts ON events(ts);"
	"CREATE TABLE incidents(id INTEGER PRIMARY KEY, sender TEXT NOT NULL, ts INTEGER NOT NULL,"
	"  message_id TEXT NOT NULL, subject TEXT NOT NULL, categories TEXT NOT NULL,"
	"  rules TEXT NOT NULL);"
	"CREATE INDEX incidents_sender ON incidents(sender, ts, id);"
	"CREATE INDEX incidents_ts ON incidents(ts);"
	"CREATE TABLE drafts(sender TEXT NOT NULL, kind TEXT NOT NULL, ts INTEGER NOT NULL,"
	"  PRIMARY KEY(sender, kind)) WITHOUT ROWID;"
	"CREATE INDEX drafts_ts ON drafts(ts);",
	/* 2: per-day counts (sq_read_counts), built from the events already there; a count
	 * then reads one row per day of the window and the events of the window's first day,
	 * whose index becomes (sender, ts). */
	"CREATE TABLE event_days(sender TEXT NOT NULL, category TEXT NOT NULL, day INTEGER NOT NULL,"
	"  n INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,"
	"  PRIMARY KEY(sender, category, day)) WITHOUT ROWID;"
	"INSERT INTO event_days(sender, category, day, n, first, last)"
	"  SELECT sender, category, CASE WHEN ts >= 0 THEN ts / 86400 ELSE (ts - 86399) / 86400 END,"
	"  count(*), min(ts), max(ts) FROM events GROUP BY 1, 2, 3;"
	"DROP INDEX events_sender;"
	"CREATE INDEX events_sender ON events(sender, ts);",
};
#define SQ_SCHEMA_VERSION ((int)UTIL_ARRAY_LEN(sq_schema))

enum sq_stmt {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_SENDER_UPSERT, ST_EVENT_INSERT, ST_DAY_UPSERT, ST_INCIDENT_INSERT, ST_INCIDENT_TRIM,
	ST_COUNTS, ST_SEEN, ST_HISTORY, ST_CLAIM, ST_UNCLAIM, ST_TOP,
	ST_DEL_EVENTS, ST_DEL_DAYS, ST_DEL_INCIDENTS, ST_DEL_DRAFTS, ST_DEL_SENDER,
	ST_PRUNE_EVENTS, ST_PRUNE_DAYS, ST_PRUNE_INCIDENTS, ST_PRUNE_DRAFTS, ST_PRUNE_SENDERS,
	ST_COUNT
};

_Static_assert(ST_COUNT < 32, "the statement masks are 32 bits");
#define SQ_ST_BIT(i) ((uint32_t)1 << (i))
/* What a pooled reader prepares: a statement costs ~2 KiB whether it runs or not, and up to
 * SQ_READERS_MAX readers each held all 24 of them. */
#define SQ_READER_STMTS (SQ_ST_BIT(ST_COUNTS) | SQ_ST_BIT(ST_SEEN) | SQ_ST_BIT(ST_HISTORY) | \
			 SQ_ST_BIT(ST_TOP))
#define SQ_ALL_STMTS (SQ_ST_BIT(ST_COUNT) - 1)

static const char *const sq_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SENDER_UPSERT] = "INSERT INTO senders(sender, first_seen, last_seen) VALUES(?1, ?2, ?2)"
		" ON CONFLICT(sender) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),"
		" last_seen = max(last_seen, excluded.last_seen)",
	[ST_EVENT_INSERT] = "INSERT INTO events(sender, category, ts, message_id) VALUES(?1, ?2, ?3, ?4)",
	[ST_DAY_UPSERT] = "INSERT INTO event_days(sender, category, day, n, first, last)"
		" VALUES(?1, ?2, ?3, 1, ?4, ?4) ON CONFLICT(sender, category, day) DO UPDATE SET"
		" n = n + 1, first = min(first, excluded.first), last = max(last, excluded.last)",
	[ST_INCIDENT_INSERT] = "INSERT INTO incidents(sender, ts, message_id, subject, categories, rules)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_INCIDENT_TRIM] = "DELETE FROM incidents WHERE sender = ?1 AND id NOT IN"
		" (SELECT id FROM incidents WHERE sender = ?1 ORDER BY ts DESC, id DESC LIMIT ?2)",
	/* the window [?2, ...): the events of its first day (?2 up to ?3, the end of day ?4), then
	 * the days after it whole */
	[ST_COUNTS] = "SELECT category, sum(n), min(first), max(last) FROM ("
		" SELECT category, count(*) AS n, min(ts) AS first, max(ts) AS last FROM events"
		"  WHERE sender = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY category"
		" UNION ALL SELECT category, n, first, last FROM event_days"
		"  WHERE sender = ?1 AND day > ?4)"
		" GROUP BY category ORDER BY category",
	[ST_SEEN] = "SELECT first_seen, last_seen FROM senders WHERE sender = ?1",
	[ST_HISTORY] = "SELECT ts, message_id, subject, categories, rules FROM incidents"
		" WHERE sender = ?1 ORDER BY ts DESC, id DESC LIMIT ?2",
	[ST_CLAIM] = "INSERT INTO drafts(sender, kind, ts) VALUES(?1, ?2, ?3)"
		" ON CONFLICT(sender, kind) DO UPDATE SET ts = excluded.ts WHERE drafts.ts <= ?4",
	[ST_UNCLAIM] = "DELETE FROM drafts WHERE sender = ?1 AND kind = ?2 AND ts = ?3",
	[ST_TOP] = "SELECT e.sender, count(*) AS n, s.last_seen FROM events e"
		" JOIN senders s ON s.sender = e.sender WHERE e.ts >= ?1"
		" GROUP BY e.sender ORDER BY n DESC, s.last_seen DESC, e.sender LIMIT ?2",
	[ST_DEL_EVENTS] = "DELETE FROM events WHERE sender = ?1",
	[ST_DEL_DAYS] = "DELETE FROM event_days WHERE sender = ?1",
	[ST_DEL_INCIDENTS] = "DELETE FROM incidents WHERE sender = ?1",
	[ST_DEL_DRAFTS] = "DELETE FROM drafts WHERE sender = ?1",
	[ST_DEL_SENDER] = "DELETE FROM senders WHERE sender = ?1",
	[ST_PRUNE_EVENTS] = "DELETE FROM events WHERE ts < ?1",
	/* day ?1 holds the cut: its n still counts pruned events, but no window starts before
	 * the cut (window_days <= retention_days), so no count reads that day whole */
	[ST_PRUNE_DAYS] = "DELETE FROM event_days WHERE day < ?1",
	[ST_PRUNE_INCIDENTS] = "DELETE FROM incidents WHERE ts < ?1",
	[ST_PRUNE_DRAFTS] = "DELETE FROM drafts WHERE ts < ?1",
	[ST_PRUNE_SENDERS] = "DELETE FROM senders WHERE last_seen < ?1",
};

/* The writer's descriptor of the WAL file (sq_wal_get), shared by the syncs in flight */
struct sq_wal {
	int fd;
	atomic_int refs;   /* the writer's, and one per sync in flight; the last closes fd */
};

struct sq_state {
	char *path;
	pthread_mutex_t write_lock;   /* this process's writers take turns (file comment) */
	/* when this process last pruned (event time): hourly per process, not per connection */
	atomic_llong last_prune;
	/* Every write of this process runs on this one connection, under write_lock (opened on
	 * first use): its page cache stays valid, where a cache of a connection is dropped
	 * whenever another connection commits. The pooled connections only read. */
	struct sq_conn *writer;
	/* With synchronous FULL or EXTRA (set.sync_durable) the writer commits at NORMAL, which
	 * leaves out the fsync, and the WAL is synced after the write turn is given back, through
	 * this descriptor of the WAL file (see sq_wal_get): the next transaction need not wait for
	 * the last one's fsync. Opened with the writer's first commit, let go with the writer
	 * (under write_lock); NULL until then. */
	struct sq_wal *wal;
	/* Group commit of tally records (sq_record): the queue of records waiting to be written,
	 * and whether a thread is writing them (the combiner). Under q_lock. */
	pthread_mutex_t q_lock;
	struct sq_member *q_head, *q_tail;
	bool combining;
	/* The checkpointer (sq_ckpt_main): folds the WAL back into the file on its own thread and
	 * connection, so that no message waits for it. Started with the first writer. */
	pthread_mutex_t ckpt_lock;
	pthread_cond_t ckpt_wake;
	pthread_t ckpt_thread;
	bool ckpt_running;            /* the thread exists (written under write_lock) */
	bool ckpt_due;                /* the WAL has grown past SQ_CKPT_PAGES (under ckpt_lock) */
	bool ckpt_stop;               /* sq_close: end the thread (under ckpt_lock) */
};

#define SQ_CKPT_PAGES 1000      /* SQLite's own auto-checkpoint threshold */
#define SQ_CKPT_IDLE_S 5        /* and a passive checkpoint at least this often */

/* One record, on its thread's stack, queued for the combiner (sq_record). The combiner fills in
 * after, rc and err and sets done; or hands its role over by setting combine. Under q_lock. */
/* A write waiting for the group commit: a record (ev), or a claim or an unclaim (kind). */
enum sq_op { SQ_OP_RECORD, SQ_OP_CLAIM, SQ_OP_UNCLAIM };

struct sq_member {
	struct sq_member *next;
	enum sq_op op;
	const char *sender;
	const struct tally_event *ev;    /* SQ_OP_RECORD */
	const char *kind;                /* SQ_OP_CLAIM, SQ_OP_UNCLAIM */
	time_t when;
	struct tally_counts *after;      /* SQ_OP_RECORD: the counts after it */
	int changed;                     /* SQ_OP_CLAIM: 1 claimed, 0 already claimed */
	pthread_cond_t wake;          /* done, or combine */
	bool taken;                   /* in a batch being written: it will be done */
	bool done;
	bool combine;                 /* this thread is the combiner now */
	int rc;
	char err[200];                /* the reason, for the waiter's thread; a longer one is cut */
};

struct sq_conn {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

/* ---- errors --------------------------------------------------------------------------------- */

static const char *sq_class(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "busy";
	case SQLITE_FULL:
		return "disk full";
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
		return "io error";
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return "corrupt";
	case SQLITE_NOMEM:
		return "out of memory";
	default:
		return "error";
	}
}

/* sq_fail - record why, undo an open transaction, return -1 */
static int sq_fail(struct sq_conn *c, const char *what, int rc)
{
	tally_set_error("%s: sqlite %s: %s", sq_class(rc), what,
			c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	if (c->db && !sqlite3_get_autocommit(c->db)) {
		sqlite3_stmt *rb = c->st[ST_ROLLBACK];

		/* A statement that failed may have rolled back already; either way end it. */
		if (rb) {
			(void)sqlite3_step(rb);
			(void)sqlite3_reset(rb);
		} else
			(void)sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return -1;
}

/* sq_run - step a statement that returns no rows, then reset it */
static int sq_run(struct sq_conn *c, enum sq_stmt which)
{
	sqlite3_stmt *st = c->st[which];
	int rc = sqlite3_step(st);

	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, sq_sql[which], rc);
	return 0;
}

static void *sq_conn_new(struct tally *t);
static struct sq_conn *sq_conn_open(struct tally *t, const char *path, int flags,
				    uint32_t prepare);
static int sq_cache_size(sqlite3 *db, int kib);
static void sq_conn_free(void *p);

static void sq_wal_put(struct sq_wal *w);

/* sq_writer_drop - close the writer connection and let go of its WAL descriptor (under
 * write_lock, or at close; a sync in flight keeps the descriptor until it is done); the next
 * write opens both afresh. */
static void sq_writer_drop(struct sq_state *s)
{
	sq_conn_free(s->writer);
	s->writer = NULL;
	sq_wal_put(s->wal);
	s->wal = NULL;
}

/* ---- durability ----------------------------------------------------------------------------- */

/*
 * A commit in WAL mode is durable once its frames in the WAL file are on stable storage. SQLite's
 * FULL does that with an fdatasync of the WAL inside COMMIT, while the write turn is held: every
 * other write of the process waits for it (the reads of the counts included), and a record that
 * arrives during it waits for two. So with FULL or EXTRA the writer commits at NORMAL (no sync:
 * frames written, the write turn given back at once) and the caller then calls fdatasync on the
 * WAL file itself, through a descriptor of its own, before it reports the write: any fdatasync of
 * the inode that starts after the commit's writes returned covers them, whoever calls it, so
 * transactions commit while earlier ones sync. The WAL is not moved while the writer connection is
 * open (SQLite deletes it only at the last close, and a checkpoint that lets the next writer start
 * it over has synced the WAL and the database first, checkpoints running at FULL or NORMAL); the
 * descriptor lives with the writer connection, and the syncs in flight share it (one descriptor
 * however many there are). (The kernel merges flushes requested while one is
 * in flight, so concurrent syncs do not queue one device flush each. Measured with
 * contrib/bench/tallylat: see RESULTS.md, round 11.)
 */

/* sq_sync_dir - fsync the directory holding the file at path; 0 or -1 with errno */
static int sq_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd, rc, err;

	if (!slash)
		(void)snprintf(dir, sizeof(dir), ".");
	else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path) + (slash == path),
			  path) >= (int)sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	err = errno;
	(void)close(fd);
	errno = err;
	return rc;
}

/* sq_wal_get - under write_lock, after a successful COMMIT of the writer: the writer's
 * descriptor of the WAL file for the caller's fdatasync, with a reference the caller gives back
 * with sq_wal_sync (after giving the turn back). Every sync in flight shares the one
 * descriptor: a dup per commit held one more descriptor per sync in flight, and a 30-minute
 * soak at 64 sessions once had 14 of them open at once. The first time, the WAL is opened and its
 * directory synced once (the WAL may have been created by this process: SQLite syncs a new
 * journal's directory at its first sync, which the writer at NORMAL never makes). NULL with
 * tally_set_error() on failure. */
static struct sq_wal *sq_wal_get(struct tally *t)
{
	struct sq_state *s = t->state;
	char path[4096];
	int fd;

	if (!s->wal) {
		if (snprintf(path, sizeof(path), "%s-wal", s->path) >= (int)sizeof(path)) {
			tally_set_error("io error: %s-wal: path too long", s->path);
			return NULL;
		}
		if (!(s->wal = calloc(1, sizeof(*s->wal)))) {
			tally_set_error("io error: %s: out of memory", path);
			return NULL;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || sq_sync_dir(path) < 0) {
			tally_set_error(fd < 0 ? "io error: %s: %s"
					       : "io error: syncing the directory of %s: %s",
					path, strerror(errno));
			if (fd >= 0)
				(void)close(fd);
			free(s->wal);
			s->wal = NULL;
			return NULL;
		}
		s->wal->fd = fd;
		atomic_init(&s->wal->refs, 1);   /* the writer's */
	}
	/* under write_lock while s->wal holds the writer's reference: never from zero */
	atomic_fetch_add(&s->wal->refs, 1);
	return s->wal;
}

/* sq_wal_put - give back a reference to w (NULL: none); the last one closes the descriptor */
static void sq_wal_put(struct sq_wal *w)
{
	if (w && atomic_fetch_sub(&w->refs, 1) == 1) {
		(void)close(w->fd);
		free(w);
	}
}

/* sq_wal_sync - fdatasync the WAL through w (from sq_wal_get) and give w back; 0, or -1 with
 * tally_set_error(): the transaction is committed but not known durable, and is reported as
 * failed. */
static int sq_wal_sync(const char *path, struct sq_wal *w)
{
	int rc = fdatasync(w->fd), err = errno;

	sq_wal_put(w);
	if (rc < 0) {
		tally_set_error("io error: fdatasync %s-wal: %s", path, strerror(err));
		return -1;
	}
	return 0;
}

/* sq_writer_done - give the write turn back; a writer whose transaction failed other than busy
 * is closed, so the next write opens a fresh connection (which re-checks the file) */
static void sq_writer_done(struct sq_state *s, bool failed)
{
	if (failed && strncmp(tally_error(), "busy:", 5) != 0)
		sq_writer_drop(s);
	pthread_mutex_unlock(&s->write_lock);
}

static int sq_write_turn(struct tally *t);

/* sq_busy - the error of a write that did not get its turn within the busy timeout; -1 */
static int sq_busy(struct tally *t)
{
	tally_set_error("busy: sqlite BEGIN: other threads kept the database for %d ms",
			t->set.busy_timeout_ms);
	return -1;
}
static int sq_writer_open(struct tally *t);

/* sq_begin - this process's write turn (at most busy_timeout_ms), then BEGIN IMMEDIATE on the
 * process's writer connection (opened here on first use), which it returns; NULL on failure.
 * On success the caller ends with sq_commit() or sq_abort(), which give the turn back. */
static struct sq_conn *sq_begin(struct tally *t)
{
	struct sq_state *s = t->state;
	int rc;

	rc = sq_write_turn(t);
	if (rc != 0) {
		sq_busy(t);
		return NULL;
	}
	if (sq_writer_open(t) < 0) {
		pthread_mutex_unlock(&s->write_lock);
		return NULL;
	}
	if (sq_run(s->writer, ST_BEGIN) < 0) {
		sq_writer_done(s, true);
		return NULL;
	}
	return s->writer;
}

/* sq_write_turn - take write_lock, waiting at most the busy timeout; 0 or an errno. */
static int sq_write_turn(struct tally *t)
{
	struct sq_state *s = t->state;
	struct timespec until;
	int rc;

	rc = pthread_mutex_trylock(&s->write_lock);
	if (rc == EBUSY) {
		until = util_deadline_ms(t->set.busy_timeout_ms);
		rc = pthread_mutex_timedlock(&s->write_lock, &until);
	}
	return rc;
}

/* sq_commit - COMMIT (a failure rolls back), give the write turn back, and sync the WAL when
 * the settings ask for durability (sq_wal_get) */
static int sq_commit(struct tally *t, struct sq_conn *c)
{
	struct sq_state *s = t->state;
	int rc = sq_run(c, ST_COMMIT);
	struct sq_wal *w = NULL;

	if (rc == 0 && t->set.sync_durable && !(w = sq_wal_get(t)))
		rc = -1;
	sq_writer_done(s, rc < 0);
	return w ? sq_wal_sync(s->path, w) : rc;
}

/* sq_abort - after a failed statement (sq_fail rolled back): give the write turn back */
static int sq_abort(struct tally *t)
{
	struct sq_state *s = t->state;

	sq_writer_done(s, true);
	return -1;
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

/* SQLite folds the WAL back into the database file (a checkpoint: up to SQ_CKPT_PAGES pages
 * copied, then an fsync) in the thread whose commit crosses the threshold: that message waits
 * for it, a stall of milliseconds once per ~100 messages, right where the p99 latency lies. So
 * the writer's automatic checkpoint is off, its WAL hook wakes this thread when the WAL has
 * grown past the threshold, and this thread runs a PASSIVE checkpoint (it never blocks the
 * writer or the readers; what it cannot copy now is copied the next time) on its own
 * connection, and at least every SQ_CKPT_IDLE_S seconds. A failed checkpoint is logged; the
 * WAL then only grows until the next one succeeds: nothing is lost, the data is in the WAL. */
static void *sq_ckpt_main(void *arg)
{
	struct tally *t = arg;
	struct sq_state *s = t->state;
	struct sq_conn *c = NULL;
	bool warned = false;

	for (;;) {
		struct timespec until;
		int rc, wal = 0, done = 0;

		pthread_mutex_lock(&s->ckpt_lock);
		until = util_deadline_ms(SQ_CKPT_IDLE_S * 1000LL);
		while (!s->ckpt_due && !s->ckpt_stop &&
		       pthread_cond_timedwait(&s->ckpt_wake, &s->ckpt_lock, &until) == 0)
			;
		s->ckpt_due = false;
		if (s->ckpt_stop) {
			pthread_mutex_unlock(&s->ckpt_lock);
			break;
		}
		pthread_mutex_unlock(&s->ckpt_lock);
		if (!c)
			c = sq_conn_open(t, s->path, SQLITE_OPEN_READWRITE, 0);
		rc = c ? sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal, &done)
		       : SQLITE_CANTOPEN;
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && !warned) {
			log_warn("tally: %s: WAL checkpoint failed: %s (retried; the WAL grows meanwhile)",
				 s->path, c ? sqlite3_errmsg(c->db) : tally_error());
			warned = true;
		} else if (rc == SQLITE_OK) {
			warned = false;
		}
		if (rc != SQLITE_OK && c) {   /* a fresh connection next time */
			sq_conn_free(c);
			c = NULL;
		}
	}
	sq_conn_free(c);
	return NULL;
}

/* The writer's WAL hook: runs in the committing thread after each commit, under write_lock. */
static int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct sq_state *s = arg;

	(void)db;
	(void)name;
	if (pages >= SQ_CKPT_PAGES) {
		pthread_mutex_lock(&s->ckpt_lock);
		s->ckpt_due = true;
		pthread_cond_signal(&s->ckpt_wake);
		pthread_mutex_unlock(&s->ckpt_lock);
	}
	return SQLITE_OK;
}

/* sq_writer_open - the writer connection, opened on first use (under write_lock), its checkpoints
 * handed to the checkpointer. When that thread cannot be started, SQLite checkpoints as usual. */
static int sq_writer_open(struct tally *t)
{
	struct sq_state *s = t->state;

	if (s->writer)
		return 0;
	if (!(s->writer = sq_conn_open(t, s->path, SQLITE_OPEN_READWRITE, SQ_ALL_STMTS)))
		return -1;
	if (sq_cache_size(s->writer->db, SQ_WRITER_CACHE_KIB) != SQLITE_OK ||
	    (t->set.sync_durable &&     /* the caller syncs the WAL itself: see sq_wal_get */
	     sqlite3_exec(s->writer->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK)) {
		sq_fail(s->writer, "writer setup", sqlite3_errcode(s->writer->db));
		sq_writer_drop(s);
		return -1;
	}
	if (!s->ckpt_running) {
		int rc = pthread_create(&s->ckpt_thread, NULL, sq_ckpt_main, t);

		if (rc != 0) {
			log_warn("tally: %s: no checkpoint thread (%s): messages checkpoint the WAL",
				 s->path, strerror(rc));
			return 0;
		}
		s->ckpt_running = true;
	}
	sqlite3_wal_autocheckpoint(s->writer->db, 0);
	sqlite3_wal_hook(s->writer->db, sq_wal_hook, s);
	return 0;
}

/* ---- schema --------------------------------------------------------------------------------- */

static int sq_user_version(sqlite3 *db, int *v)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* sq_migrate - bring the schema to SQ_SCHEMA_VERSION; hard error text in *err */
static int sq_migrate(sqlite3 *db, const char *path, char **err)
{
	char buf[512];
	int v = 0, rc, i;

	rc = sq_user_version(db, &v);
	if (rc == SQLITE_OK && v == SQ_SCHEMA_VERSION)
		return 0;
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	/* Another process may have migrated while we waited for the lock: read again inside. */
	if (rc == SQLITE_OK)
		rc = sq_user_version(db, &v);
	if (rc == SQLITE_OK && v > SQ_SCHEMA_VERSION) {
		if (snprintf(buf, sizeof(buf), "tally: %s has schema version %d, newer than this amends "
			     "(%d)", path, v, SQ_SCHEMA_VERSION) >= (int)sizeof(buf))
			buf[sizeof(buf) - 1] = '\0';
		*err = util_strdup(buf);
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	for (i = v; rc == SQLITE_OK && i < SQ_SCHEMA_VERSION; i++)
		rc = sqlite3_exec(db, sq_schema[i], NULL, NULL, NULL);
	if (rc == SQLITE_OK && v < SQ_SCHEMA_VERSION) {
		if (snprintf(buf, sizeof(buf), "PRAGMA user_version = %d", SQ_SCHEMA_VERSION) < 0)
			return -1;
		rc = sqlite3_exec(db, buf, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		if (snprintf(buf, sizeof(buf), "tally: %s: schema upgrade failed: %s", path,
			     sqlite3_errmsg(db)) >= (int)sizeof(buf))
			buf[sizeof(buf) - 1] = '\0';
		*err = util_strdup(buf);
		if (!sqlite3_get_autocommit(db))
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void sq_conn_free(void *p)
{
	struct sq_conn *c = p;
	int i;

	if (!c)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

/* SQLite keeps memory statistics by default, under one process-wide mutex taken by every
 * allocation: with a connection per session thread that mutex was a fifth of the daemon's
 * futex calls. Nothing reads the statistics. Must come before SQLite initializes itself (the
 * first open); later it fails with SQLITE_MISUSE and changes nothing, which is harmless. */
static void sq_global_config(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* sq_cache_size - bound db's page cache to kib KiB (a negative cache_size is KiB); SQLITE_* */
static int sq_cache_size(sqlite3 *db, int kib)
{
	char sql[48];

	if (snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", kib) >= (int)sizeof(sql))
		return SQLITE_ERROR;
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* sq_conn_open - a connection with the per-connection settings, and the statements in the mask
 * prepare (bit i: statement i) prepared; the others stay NULL. */
static struct sq_conn *sq_conn_open(struct tally *t, const char *path, int flags,
				    uint32_t prepare)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sq_conn *c;
	int rc, i;

	pthread_once(&once, sq_global_config);

	c = calloc(1, sizeof(*c));
	if (!c) {
		tally_set_error("out of memory");
		return NULL;
	}
	/* NOMUTEX: a connection is used by one thread at a time (tally.c guarantees it). */
	rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sq_fail(c, "open", rc);
		sq_conn_free(c);
		return NULL;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, t->set.busy_timeout_ms);
	rc = sqlite3_exec(c->db, t->set.sync_pragma, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sq_cache_size(c->db, SQ_READER_CACHE_KIB);
	for (i = 0; rc == SQLITE_OK && i < ST_COUNT; i++)
		if (prepare & SQ_ST_BIT(i))
			rc = sqlite3_prepare_v3(c->db, sq_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
						&c->st[i], NULL);
	if (rc != SQLITE_OK) {
		sq_fail(c, "connection setup", rc);
		sq_conn_free(c);
		return NULL;
	}
	return c;
}

/* sq_conn_new - a reader for tally.c's pool: the four read statements only (every write runs on
 * the writer). READWRITE without CREATE: a database deleted under us is an error, not a fresh
 * file. */
static void *sq_conn_new(struct tally *t)
{
	struct sq_state *s = t->state;

	return sq_conn_open(t, s->path, SQLITE_OPEN_READWRITE, SQ_READER_STMTS);
}

#define SQ_SYNC_ALL 4           /* the locks and conditions of struct sq_state, in order */

/* sq_state_free - destroy the first `made` of them (sq_state_new's order), free the state */
static void sq_state_free(struct sq_state *s, int made)
{
	if (made > 3)
		pthread_cond_destroy(&s->ckpt_wake);
	if (made > 2)
		pthread_mutex_destroy(&s->ckpt_lock);
	if (made > 1)
		pthread_mutex_destroy(&s->q_lock);
	if (made > 0)
		pthread_mutex_destroy(&s->write_lock);
	free(s->path);
	free(s);
}

/* sq_state_new - the shared state of a database at path where; NULL with *err set. */
static struct sq_state *sq_state_new(const char *where, char **err)
{
	struct sq_state *s = calloc(1, sizeof(*s));
	int made = 0;

	if (!s || !(s->path = util_strdup(where))) {
		free(s);
		*err = util_strdup("tally: out of memory");
		return NULL;
	}
	atomic_init(&s->last_prune, 0);
	if (pthread_mutex_init(&s->write_lock, NULL) == 0 && ++made &&
	    pthread_mutex_init(&s->q_lock, NULL) == 0 && ++made &&
	    pthread_mutex_init(&s->ckpt_lock, NULL) == 0 && ++made &&
	    pthread_cond_init(&s->ckpt_wake, NULL) == 0)
		return s;
	sq_state_free(s, made);
	*err = util_strdup("tally: cannot create a mutex or condition variable");
	return NULL;
}

static int sq_open(struct tally *t, const char *where, char **err)
{
	struct sq_state *s;
	struct sq_conn *c;
	char buf[512];
	char *mode = NULL;
	int rc;

	if (!*where) {
		*err = util_strdup("tally: sqlite: no database path");
		return -1;
	}
	if (!(s = sq_state_new(where, err)))
		return -1;
	c = sq_conn_open(t, s->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0);
	if (!c) {
		if (snprintf(buf, sizeof(buf), "tally: %s: %s", s->path, tally_error()) >= (int)sizeof(buf))
			buf[sizeof(buf) - 1] = '\0';
		*err = util_strdup(buf);
		goto fail;
	}
	/* WAL is a property of the file: set once here, every later connection inherits it. */
	rc = sqlite3_exec(c->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_stmt *st;

		rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL);
		if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			mode = util_strdup((const char *)sqlite3_column_text(st, 0));
		if (rc == SQLITE_OK)
			sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK || !mode || strcmp(mode, "wal") != 0) {
		if (snprintf(buf, sizeof(buf), "tally: %s: cannot enable WAL: %s", s->path,
			     sqlite3_errmsg(c->db)) >= (int)sizeof(buf))
			buf[sizeof(buf) - 1] = '\0';
		*err = util_strdup(buf);
		free(mode);
		sq_conn_free(c);
		goto fail;
	}
	free(mode);
	rc = sq_migrate(c->db, s->path, err);
	sq_conn_free(c);
	if (rc < 0)
		goto fail;
	t->state = s;
	return 0;
fail:
	sq_state_free(s, SQ_SYNC_ALL);
	return -1;
}

static void sq_close(struct tally *t)
{
	struct sq_state *s = t->state;

	if (!s)
		return;
	if (s->ckpt_running) {
		pthread_mutex_lock(&s->ckpt_lock);
		s->ckpt_stop = true;
		pthread_cond_signal(&s->ckpt_wake);
		pthread_mutex_unlock(&s->ckpt_lock);
		pthread_join(s->ckpt_thread, NULL);
	}
	/* The last close of a WAL database checkpoints what is left (SQLite does it itself). */
	sq_writer_drop(s);
	sq_state_free(s, SQ_SYNC_ALL);
	t->state = NULL;
}

/* ---- reads ---------------------------------------------------------------------------------- */

/* sq_read_counts - counts of every category in the window [now - window, ...) */
static int sq_read_counts(struct tally *t, struct sq_conn *c, const char *sender, time_t now,
			  struct tally_counts *out)
{
	sqlite3_stmt *st = c->st[ST_COUNTS];
	int rc;

	sqlite3_int64 since = (sqlite3_int64)now - t->set.window_s, day = sq_day(since);

	sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_int64(st, 3, (day + 1) * SQ_DAY_S);
	sqlite3_bind_int64(st, 4, day);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *cat = (const char *)sqlite3_column_text(st, 0);

		if (tally_counts_push(out, cat ? cat : "", (size_t)sqlite3_column_bytes(st, 0),
				      sqlite3_column_int(st, 1), (time_t)sqlite3_column_int64(st, 2),
				      (time_t)sqlite3_column_int64(st, 3)) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "counts", rc);
	return 0;
}

static int sq_counts(struct tally *t, struct tally_lease *l, const char *sender, time_t now,
		     struct tally_counts *out)
{
	struct sq_conn *c = tally_lease_conn(l);

	return c ? sq_read_counts(t, c, sender, now, out) : -1;
}

static int sq_seen(struct tally *t, struct tally_lease *l, const char *sender, time_t *first,
		   time_t *last)
{
	struct sq_conn *c = tally_lease_conn(l);
	sqlite3_stmt *st;
	int rc, found = 0;

	if (!c)
		return -1;
	st = c->st[ST_SEEN];
	sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*first = (time_t)sqlite3_column_int64(st, 0);
		*last = (time_t)sqlite3_column_int64(st, 1);
		found = 1;
		rc = SQLITE_DONE;
	}
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "seen", rc);
	return found;
}

static char *sq_col_dup(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return util_strndup(s ? s : "", (size_t)sqlite3_column_bytes(st, col));
}

static int sq_history(struct tally *t, struct tally_lease *l, const char *sender, size_t max,
		      struct tally_history *out)
{
	struct sq_conn *c = tally_lease_conn(l);
	sqlite3_stmt *st;
	int rc = SQLITE_DONE;

	if (!c)
		return -1;
	st = c->st[ST_HISTORY];
	out->v = calloc(max, sizeof(*out->v));
	if (!out->v) {
		tally_set_error("out of memory");
		return -1;
	}
	sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while (out->n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tally_incident *in = &out->v[out->n++];

		in->when = (time_t)sqlite3_column_int64(st, 0);
		in->message_id = sq_col_dup(st, 1);
		in->subject = sq_col_dup(st, 2);
		in->categories = sq_col_dup(st, 3);
		in->rules = sq_col_dup(st, 4);
		if (!in->message_id || !in->subject || !in->categories || !in->rules) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (out->n == max && rc == SQLITE_ROW)
		rc = SQLITE_DONE;
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "history", rc);
	return 0;
}

static int sq_top(struct tally *t, struct tally_lease *l, size_t n, time_t now,
		  struct tally_sender_summary **out, size_t *nout)
{
	struct sq_conn *c = tally_lease_conn(l);
	sqlite3_stmt *st;
	int rc = SQLITE_DONE;

	if (!c)
		return -1;
	st = c->st[ST_TOP];
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		tally_set_error("out of memory");
		return -1;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now - t->set.window_s);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
	while (*nout < n && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tally_sender_summary *s = &(*out)[(*nout)++];

		s->sender = sq_col_dup(st, 0);
		s->total = sqlite3_column_int(st, 1);
		s->last_seen = (time_t)sqlite3_column_int64(st, 2);
		if (!s->sender) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (*nout == n && rc == SQLITE_ROW)
		rc = SQLITE_DONE;
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return sq_fail(c, "top", rc);
	return 0;
}

/* ---- writes --------------------------------------------------------------------------------- */

static int sq_prune_conn(struct tally *t, time_t now)
{
	struct sq_conn *c;
	sqlite3_int64 cut = (sqlite3_int64)now - t->set.retention_s;
	sqlite3_int64 dcut = (sqlite3_int64)now -
		(t->set.dedupe_s > t->set.retention_s ? t->set.dedupe_s : t->set.retention_s);

	if (!(c = sq_begin(t)))
		return -1;
	sqlite3_bind_int64(c->st[ST_PRUNE_EVENTS], 1, cut);
	if (sq_run(c, ST_PRUNE_EVENTS) < 0)
		return sq_abort(t);
	sqlite3_bind_int64(c->st[ST_PRUNE_DAYS], 1, sq_day(cut));
	if (sq_run(c, ST_PRUNE_DAYS) < 0)
		return sq_abort(t);
	sqlite3_bind_int64(c->st[ST_PRUNE_INCIDENTS], 1, cut);
	if (sq_run(c, ST_PRUNE_INCIDENTS) < 0)
		return sq_abort(t);
	sqlite3_bind_int64(c->st[ST_PRUNE_DRAFTS], 1, dcut);
	if (sq_run(c, ST_PRUNE_DRAFTS) < 0)
		return sq_abort(t);
	sqlite3_bind_int64(c->st[ST_PRUNE_SENDERS], 1, cut);
	if (sq_run(c, ST_PRUNE_SENDERS) < 0)
		return sq_abort(t);
	if (sq_commit(t, c) < 0)
		return -1;
	atomic_store(&((struct sq_state *)t->state)->last_prune, (long long)now);
	return 0;
}

/* sq_maybe_prune - prune when the last prune of this process is an hour old; one thread does
 * it (the one that wins the compare-and-swap), a failure lets the next record try again. */
static void sq_maybe_prune(struct tally *t, time_t when)
{
	struct sq_state *s = t->state;
	long long last = atomic_load(&s->last_prune);

	if ((long long)when - last < SQ_PRUNE_EVERY_S ||
	    !atomic_compare_exchange_strong(&s->last_prune, &last, (long long)when))
		return;
	if (sq_prune_conn(t, when) < 0) {
		atomic_store(&s->last_prune, last);
		log_debug("tally: prune skipped: %s", tally_error());
	}
}

static int sq_prune(struct tally *t, struct tally_lease *l, time_t now)
{
	return sq_prune_conn(t, now);
}

/* sq_record_rows - the inserts of one message; inside the caller's transaction */
static int sq_record_rows(struct tally *t, struct sq_conn *c, const char *sender,
			  const struct tally_event *ev, time_t when)
{
	struct tally_fields f;
	sqlite3_stmt *st;
	int rc = -1;
	size_t i;

	if (tally_incident_fields(ev, &f) < 0)
		return sq_fail(c, "record", SQLITE_NOMEM);
	st = c->st[ST_SENDER_UPSERT];
	sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
	if (sq_run(c, ST_SENDER_UPSERT) < 0)
		goto out;
	for (i = 0; i < ev->n_categories; i++) {
		st = c->st[ST_EVENT_INSERT];
		sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ev->categories[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)when);
		sqlite3_bind_text(st, 4, f.message_id, -1, SQLITE_STATIC);
		if (sq_run(c, ST_EVENT_INSERT) < 0)
			goto out;
		st = c->st[ST_DAY_UPSERT];
		sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ev->categories[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, sq_day((sqlite3_int64)when));
		sqlite3_bind_int64(st, 4, (sqlite3_int64)when);
		if (sq_run(c, ST_DAY_UPSERT) < 0)
			goto out;
	}
	if (t->set.incidents > 0) {
		st = c->st[ST_INCIDENT_INSERT];
		sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)when);
		sqlite3_bind_text(st, 3, f.message_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, f.subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, f.categories, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, f.rules, -1, SQLITE_STATIC);
		if (sq_run(c, ST_INCIDENT_INSERT) < 0)
			goto out;
		st = c->st[ST_INCIDENT_TRIM];
		sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, t->set.incidents);
		if (sq_run(c, ST_INCIDENT_TRIM) < 0)
			goto out;
	}
	rc = 0;
out:
	tally_incident_fields_free(&f);
	return rc;
}

/*
 * Group commit by combining. With synchronous=FULL every commit costs an fsync of the WAL, and
 * sixteen milter threads would queue behind it. So a write (a record, a draft claim or an unclaim)
 * is queued, and the first thread to find nobody writing becomes the combiner: it takes
 * write_lock, writes the queued members, its own first (at most SQ_BATCH_MAX), in one transaction,
 * reading each record's counts right after its rows, commits, gives write_lock back and hands the
 * role to the first thread still queued (which writes the members queued meanwhile), or leaves it
 * free; then (FULL, EXTRA) it syncs the WAL (see "durability"), and tells each member its outcome
 * and wakes it. A member sleeps once, on its own condition, until it is done: it does not wait for
 * write_lock, and nothing wakes the other members. Alone (light load), a thread writes and commits
 * its own member, as without batching. Nothing is reported before it is durable: a member is done
 * only after its batch's COMMIT and the sync that follows it, with their outcome - a failure fails
 * every member of the batch, each logged and counted by its own caller. The counts a record
 * returns were read inside the batch's transaction: its own rows and those of the batch members
 * before it, which commit with it or not at all (and a claim sees the claims before it). A member
 * still queued (not taken into a batch) after the busy timeout leaves the queue and fails "busy",
 * as a thread that could not get write_lock in time did before. Only the rare writes (reset,
 * forget, prune) still take the write turn themselves (sq_begin). */

/* sq_claim_rows - the claim statement: m->changed 1 when it took the claim, 0 when a claim of
 * the same kind lies within the dedupe window. In an open transaction. */
static int sq_claim_rows(struct tally *t, struct sq_conn *c, struct sq_member *m)
{
	sqlite3_stmt *st = c->st[ST_CLAIM];

	sqlite3_bind_text(st, 1, m->sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)m->when);
	/* blocked while a claim lies within (now - dedupe, ...] */
	sqlite3_bind_int64(st, 4, (sqlite3_int64)m->when - t->set.dedupe_s);
	if (sq_run(c, ST_CLAIM) < 0)
		return -1;
	m->changed = sqlite3_changes(c->db) > 0;
	return 0;
}

/* sq_member_rows - one queued write's statements, in the batch's transaction. */
static int sq_member_rows(struct tally *t, struct sq_conn *c, struct sq_member *m)
{
	sqlite3_stmt *st;

	switch (m->op) {
	case SQ_OP_RECORD:
		return sq_record_rows(t, c, m->sender, m->ev, m->when) < 0 ||
		       sq_read_counts(t, c, m->sender, m->when, m->after) < 0 ? -1 : 0;
	case SQ_OP_CLAIM:
		return sq_claim_rows(t, c, m);
	case SQ_OP_UNCLAIM:
		st = c->st[ST_UNCLAIM];
		sqlite3_bind_text(st, 1, m->sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, m->kind, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)m->when);
		return sq_run(c, ST_UNCLAIM);
	}
	return -1;
}

/* sq_batch_write - write the rows of batch[0..n) in one transaction and commit; 0 or -1 (every
 * record fails then: a failed statement has rolled the transaction back). Under write_lock. */
static int sq_batch_write(struct tally *t, struct sq_member **batch, size_t n)
{
	struct sq_state *s = t->state;

	if (sq_writer_open(t) < 0 || sq_run(s->writer, ST_BEGIN) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (sq_member_rows(t, s->writer, batch[i]) < 0)
			return -1;      /* tally_record frees the counts of a failed record */
	return sq_run(s->writer, ST_COMMIT);
}

/* sq_combine - write the batch at the head of the queue, whose first record is me (a combiner's
 * record is the head: it found the queue empty, or was handed the role as its head), hand the
 * role on, sync the WAL when the settings ask for it (the next combiner meanwhile writes its
 * batch: sq_wal_get), then tell each member its outcome. Called without q_lock by the combiner
 * (me->combine). */
static void sq_combine(struct tally *t, struct sq_member *me)
{
	struct sq_state *s = t->state;
	struct sq_member *batch[SQ_BATCH_MAX];
	int turn = sq_write_turn(t);
	size_t n = 0;
	int rc;
	struct sq_wal *w = NULL;

	pthread_mutex_lock(&s->q_lock);
	while (s->q_head && n < SQ_BATCH_MAX) {
		struct sq_member *m = s->q_head;

		s->q_head = m->next;
		m->taken = true;
		batch[n++] = m;
	}
	if (!s->q_head)
		s->q_tail = NULL;
	pthread_mutex_unlock(&s->q_lock);
	if (turn != 0) {
		rc = sq_busy(t);
	} else {
		rc = sq_batch_write(t, batch, n);
		if (rc == 0 && t->set.sync_durable && !(w = sq_wal_get(t)))
			rc = -1;
		if (rc < 0 && strncmp(tally_error(), "busy:", 5) != 0)
			sq_writer_drop(s);   /* rolled back; the next batch gets a fresh connection */
		pthread_mutex_unlock(&s->write_lock);
	}
	pthread_mutex_lock(&s->q_lock);
	me->combine = false;
	if (s->q_head) {
		s->q_head->combine = true;
		pthread_cond_signal(&s->q_head->wake);
	} else {
		s->combining = false;
	}
	pthread_mutex_unlock(&s->q_lock);
	if (w)
		rc = sq_wal_sync(s->path, w);
	if (rc == 0)
		stats_inc(STATS_TALLY_COMMITS);
	pthread_mutex_lock(&s->q_lock);
	for (size_t i = 0; i < n; i++) {
		batch[i]->rc = rc;
		if (rc < 0)
			(void)snprintf(batch[i]->err, sizeof(batch[i]->err), "%s", tally_error());
		batch[i]->done = true;
		if (batch[i] != me)
			pthread_cond_signal(&batch[i]->wake);
	}
	pthread_mutex_unlock(&s->q_lock);
}

/* sq_queue_write - queue the write me (op, sender and its fields set) for the group commit and
 * wait until it is durable or failed: 0, or -1 with the reason. Records, claims and unclaims
 * all take this way, in the order they came, so none waits for the write turn by itself (a
 * claim that did was overtaken by one combiner after another on a loaded host and failed busy
 * after a second: the soak's only tally failures). */
static int sq_queue_write(struct tally *t, struct sq_member *me)
{
	struct sq_state *s = t->state;
	struct timespec until;

	if (pthread_cond_init(&me->wake, NULL) != 0) {
		tally_set_error("tally: cannot create a condition variable");
		return -1;
	}
	until = util_deadline_ms(t->set.busy_timeout_ms);
	pthread_mutex_lock(&s->q_lock);
	if (s->q_tail)
		s->q_tail->next = me;
	else
		s->q_head = me;
	s->q_tail = me;
	if (!s->combining)
		s->combining = me->combine = true;
	while (!me->done) {
		if (me->combine) {
			pthread_mutex_unlock(&s->q_lock);
			sq_combine(t, me);     /* me is done after it */
			pthread_mutex_lock(&s->q_lock);
			continue;
		}
		if (me->taken) {
			pthread_cond_wait(&me->wake, &s->q_lock);
		} else if (pthread_cond_timedwait(&me->wake, &s->q_lock, &until) == ETIMEDOUT &&
			   !me->taken && !me->done && !me->combine) {
			/* never taken into a batch in time: leave the queue */
			struct sq_member **pp = &s->q_head, *prev = NULL;

			while (*pp != me) {
				prev = *pp;
				pp = &(*pp)->next;
			}
			*pp = me->next;
			if (s->q_tail == me)
				s->q_tail = prev;
			me->rc = sq_busy(t);
			(void)snprintf(me->err, sizeof(me->err), "%s", tally_error());
			break;
		}
	}
	pthread_mutex_unlock(&s->q_lock);
	pthread_cond_destroy(&me->wake);
	if (me->rc < 0) {
		tally_set_error("%s%s", me->err, strncmp(me->err, "busy:", 5) ? " (group commit)" : "");
		return -1;
	}
	return 0;
}

static int sq_record(struct tally *t, struct tally_lease *l, const char *sender,
		     const struct tally_event *ev, struct tally_counts *after)
{
	time_t when = ev->when > 0 ? ev->when : clock_now();
	struct sq_member me = { .op = SQ_OP_RECORD, .sender = sender, .ev = ev, .when = when,
				.after = after };

	if (ev->n_categories == 0)
		return sq_counts(t, l, sender, when, after);
	if (sq_queue_write(t, &me) < 0)
		return -1;
	sq_maybe_prune(t, when);
	return 0;
}

static int sq_claim(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		    time_t now)
{
	struct sq_member me = { .op = SQ_OP_CLAIM, .sender = sender, .kind = kind, .when = now };

	if (sq_queue_write(t, &me) < 0)
		return -1;
	return me.changed;
}

static int sq_unclaim(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		      time_t when)
{
	struct sq_member me = { .op = SQ_OP_UNCLAIM, .sender = sender, .kind = kind, .when = when };

	return sq_queue_write(t, &me);
}

/* sq_delete_sender - run the given per-sender deletes in one transaction. secure (a privacy
 * request): overwrite the freed pages, then fold the WAL back into the file so no old page with
 * the address lingers there (both best effort after the delete), all within the write turn. */
static int sq_delete_sender(struct tally *t, const char *sender, const enum sq_stmt *which,
			    size_t n, bool secure)
{
	struct sq_conn *c;
	size_t i;
	int rc = 0;
	struct sq_wal *w = NULL;

	if (!(c = sq_begin(t)))
		return -1;
	if (secure)
		(void)sqlite3_exec(c->db, "PRAGMA secure_delete = ON", NULL, NULL, NULL);
	for (i = 0; rc == 0 && i < n; i++) {
		sqlite3_bind_text(c->st[which[i]], 1, sender, -1, SQLITE_STATIC);
		rc = sq_run(c, which[i]);
	}
	if (rc == 0)
		rc = sq_run(c, ST_COMMIT);
	if (rc == 0 && t->set.sync_durable && !(w = sq_wal_get(t)))
		rc = -1;
	if (secure) {
		(void)sqlite3_exec(c->db, "PRAGMA secure_delete = OFF", NULL, NULL, NULL);
		if (rc == 0)
			(void)sqlite3_exec(c->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	}
	sq_writer_done(t->state, rc < 0);
	return w ? sq_wal_sync(((struct sq_state *)t->state)->path, w) : rc;
}

static int sq_reset(struct tally *t, struct tally_lease *l, const char *sender)
{
	/* The sender stays known (first/last seen) and the dedupe stays: a reset must not make
	 * amends write the same customer a second letter within the week. */
	static const enum sq_stmt which[] = { ST_DEL_EVENTS, ST_DEL_DAYS, ST_DEL_INCIDENTS };

	return sq_delete_sender(t, sender, which, UTIL_ARRAY_LEN(which), false);
}

static int sq_forget(struct tally *t, struct tally_lease *l, const char *sender)
{
	static const enum sq_stmt which[] = {
		ST_DEL_EVENTS, ST_DEL_DAYS, ST_DEL_INCIDENTS, ST_DEL_DRAFTS, ST_DEL_SENDER
	};
	/* a privacy request: see sq_delete_sender */
	return sq_delete_sender(t, sender, which, UTIL_ARRAY_LEN(which), true);
}

const struct tally_backend tally_sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.max_conns = SQ_READERS_MAX,
	.conn_new = sq_conn_new,
	.conn_free = sq_conn_free,
	.record = sq_record,
	.counts = sq_counts,
	.seen = sq_seen,
	.history = sq_history,
	.claim = sq_claim,
	.unclaim = sq_unclaim,
	.top = sq_top,
	.reset = sq_reset,
	.forget = sq_forget,
	.prune = sq_prune,
};
