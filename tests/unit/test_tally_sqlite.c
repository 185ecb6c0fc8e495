/*
 * test_tally_sqlite.c - the SQLite tally store: the shared contract, schema and settings,
 * sender keys, and faults (a database locked by another connection, a full disk)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "stats.h"
#include "tally_contract.h"
#include "tally_int.h"        /* the pool: its bound, and a backend that blocks */
#include "tally_testlib.h"
#include "util.h"

static int sq_prepare(struct tc_fix *f, char *spec, size_t n)
{
	if (tl_tmpdir(f->dir, sizeof(f->dir), "tally") < 0)
		return -1;
	return snprintf(spec, n, "sqlite:%s/tally.db", f->dir) < (int)n ? 0 : -1;
}

static void sq_cleanup(struct tc_fix *f)
{
	tl_rmdir(f->dir);
}

static const struct tc_backend sq_backend = { sq_prepare, sq_cleanup };

static void db_path(const struct tc_fix *f, char *buf, size_t n)
{
	assert_true(snprintf(buf, n, "%s/tally.db", f->dir) < (int)n);
}

static sqlite3_int64 db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	sqlite3_int64 v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void test_schema(void **state)
{
	struct tc_fix *f = *state;
	char path[512];
	sqlite3 *db;
	sqlite3_stmt *st;

	db_path(f, path, sizeof(path));
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 2);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(tc_record(f->t, "s@x.example", TC_T0, "complaint,refund", NULL), 0);
	assert_int_equal(db_int(db, "SELECT count(*) FROM events WHERE sender = 's@x.example'"), 2);
	assert_int_equal(db_int(db, "SELECT sum(n) FROM event_days WHERE sender = 's@x.example'"
			 " AND day = 1800000000 / 86400 AND first = 1800000000 AND last = first"), 2);
	assert_int_equal(db_int(db, "SELECT count(*) FROM incidents"), 1);
	assert_int_equal(db_int(db, "SELECT first_seen FROM senders"), TC_T0);
	sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
	struct tc_fix *f = *state;
	char path[512], *err = NULL;
	sqlite3 *db;
	struct tally *t;

	db_path(f, path, sizeof(path));
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	t = tally_open(f->cfg, &err);
	assert_null(t);
	assert_non_null(err);
	assert_non_null(strstr(err, "newer"));
	free(err);
}

/* The schema amends wrote at user_version 1 (schema step 1), as a file from then has it */
static const char v1_schema[] =
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
	"CREATE INDEX drafts_ts ON drafts(ts);"
	"PRAGMA user_version = 1;";

/* A version 1 file is upgraded at open: its events become per-day counts, and the counts of
 * its window are the same as before, on the window's first day too (T0 - 30 days is 08:00). */
static void test_upgrade_from_v1(void **state)
{
	static const struct { const char *sender, *cat; long long ts; } old[] = {
		{ "u@x.example", "complaint", 1800000000LL - 31 * 86400 },      /* before the window */
		{ "u@x.example", "complaint", 1800000000LL - 30 * 86400 - 5 },  /* its first day, before */
		{ "u@x.example", "complaint", 1800000000LL - 30 * 86400 },      /* its first second */
		{ "u@x.example", "complaint", 1800000000LL - 30 * 86400 + 5 },
		{ "u@x.example", "complaint", 1800000000LL - 10 * 86400 },
		{ "u@x.example", "refund", 1800000000LL - 2 * 86400 },
		{ "v@x.example", "complaint", 1800000000LL - 86400 },
	};
	struct tc_fix *f = *state;
	struct tally_counts c;
	char path[512], sql[256];
	sqlite3 *db;
	size_t i;

	tally_close(f->t);
	f->t = NULL;
	db_path(f, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
	for (i = 0; i < UTIL_ARRAY_LEN(old); i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO events(sender, category, ts) VALUES('%s', '%s', %lld)",
			 old[i].sender, old[i].cat, old[i].ts);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	f->t = tc_open_again(f);
	assert_non_null(f->t);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 2);
	/* one row per sender, category and day; the sender index now leads with the time */
	assert_int_equal(db_int(db, "SELECT count(*) FROM event_days"), 5);
	assert_int_equal(db_int(db, "SELECT n FROM event_days WHERE sender = 'u@x.example'"
				" AND day = (1800000000 - 30 * 86400) / 86400"), 3);
	assert_int_equal(db_int(db, "SELECT name = 'ts' FROM pragma_index_info('events_sender')"
				" WHERE seqno = 1"), 1);
	sqlite3_close(db);

	assert_int_equal(tally_counts(f->t, "u@x.example", TC_T0, &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 3);
	assert_int_equal(tally_count_of(&c, "refund"), 1);
	assert_string_equal(c.v[0].category, "complaint");
	assert_int_equal(c.v[0].first_seen, TC_T0 - 30 * TC_DAY);
	assert_int_equal(c.v[0].last_seen, TC_T0 - 10 * TC_DAY);
	tally_counts_free(&c);
	/* recorded after the upgrade: counted with the old ones */
	assert_int_equal(tc_record(f->t, "u@x.example", TC_T0 + 1, "complaint", &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 3);   /* TC_T0 - 30 days is out now */
	assert_int_equal(c.v[0].first_seen, TC_T0 - 30 * TC_DAY + 5);
	assert_int_equal(c.v[0].last_seen, TC_T0 + 1);
	tally_counts_free(&c);
	assert_int_equal(tally_counts(f->t, "v@x.example", TC_T0, &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 1);
	tally_counts_free(&c);
}

static void test_reopen_keeps_data(void **state)
{
	struct tc_fix *f = *state;
	struct tally *t;

	assert_int_equal(tc_record(f->t, "k@x.example", TC_T0, "complaint", NULL), 0);
	tally_close(f->t);
	f->t = tc_open_again(f);
	assert_non_null(f->t);
	t = f->t;
	{
		struct tally_counts c;

		assert_int_equal(tally_counts(t, "k@x.example", TC_T0, &c), 0);
		assert_int_equal(tally_count_of(&c, "complaint"), 1);
		tally_counts_free(&c);
	}
}

static void test_bad_specs(void **state)
{
	static const char *const bad[] = {
		"", "sqlite:", "none", "mysql://x", "sqlite:/nonexistent-dir/x/tally.db",
	};
	struct tc_fix *f = *state;
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		struct config *cfg = tl_config(bad[i]);
		char *err = NULL;
		struct tally *t;

		assert_non_null(cfg);
		t = tally_open(cfg, &err);
		if (t)
			fail_msg("spec \"%s\" was accepted", bad[i]);
		assert_non_null(err);
		free(err);
		config_unref(cfg);
	}
	/* a bad synchronous level is a hard error too */
	free(f->cfg->tally.sqlite_synchronous);
	f->cfg->tally.sqlite_synchronous = util_strdup("off");
	{
		char *err = NULL;

		assert_null(tally_open(f->cfg, &err));
		free(err);
	}
}

/* A database held by another connection's BEGIN EXCLUSIVE: the tally gives up within about
 * the busy timeout and says why; it works again once the lock is gone. */
static int count_in_store(struct tally *t)
{
	struct tally_counts c;
	int n;

	assert_int_equal(tally_counts(t, "gc@x.example", TC_T0, &c), 0);
	n = tally_count_of(&c, "complaint");
	tally_counts_free(&c);
	return n;
}

static void test_locked(void **state)
{
	struct tc_fix *f = *state;
	char path[512], *err = NULL;
	struct tally *t;
	sqlite3 *db;
	long long t0, ms;
	struct tally_counts c;

	f->cfg->tally.busy_timeout_ms = 300;
	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	assert_int_equal(tc_record(t, "l@x.example", TC_T0, "complaint", NULL), 0);
	db_path(f, path, sizeof(path));
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	t0 = util_now_ms();
	assert_int_equal(tc_record(t, "l@x.example", TC_T0 + 1, "complaint", &c), -1);
	ms = util_now_ms() - t0;
	assert_int_equal(c.n, 0);
	assert_non_null(strstr(tally_error(), "busy"));
	assert_true(ms >= 250);
	assert_true(ms < 1000);
	/* claims fail the same way (the caller then writes no draft) */
	assert_int_equal(tally_draft_claim(t, "l@x.example", "apology", TC_T0), -1);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(tc_record(t, "l@x.example", TC_T0 + 2, "complaint", &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 2);   /* the failed one is not there */
	tally_counts_free(&c);
	tally_close(t);
}

/* The file size limit stands in for a full disk (no tmpfs mount needed): writes fail with
 * -1 and a reason, and the tally recovers without a restart once there is room again. */
static void test_full_disk(void **state)
{
	struct tc_fix *f = *state;
	struct rlimit old, lim;
	struct tally_event ev = { 0 };
	const char *cats[] = { "complaint" };
	char subject[500];
	int i, ok = 0, failed = 0;
	struct tally_counts c;

	memset(subject, 'x', sizeof(subject) - 1);
	subject[sizeof(subject) - 1] = '\0';
	ev.categories = cats;
	ev.n_categories = 1;
	ev.subject = subject;
	ev.message_id = subject;
	assert_int_equal(tc_record(f->t, "d@x.example", TC_T0, "complaint", NULL), 0);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 256 * 1024;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (i = 0; i < 5000 && !failed; i++) {
		ev.when = TC_T0 + 1 + i;
		if (tally_record(f->t, "d@x.example", &ev, NULL) == 0)
			ok++;
		else
			failed++;
	}
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(failed, 1);
	assert_true(strstr(tally_error(), "disk full") || strstr(tally_error(), "io error"));
	ev.when = TC_T0 + 10000;
	assert_int_equal(tally_record(f->t, "d@x.example", &ev, &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), 1 + ok + 1);
	tally_counts_free(&c);
}

static void test_synchronous_normal(void **state)
{
	struct tc_fix *f = *state;
	struct tally *t;
	char *err = NULL;

	free(f->cfg->tally.sqlite_synchronous);
	f->cfg->tally.sqlite_synchronous = util_strdup("normal");
	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	assert_int_equal(tc_record(t, "n@x.example", TC_T0, "refund", NULL), 0);
	tally_close(t);
}

/* ---- durability ------------------------------------------------------------------------------ */

/* Every fdatasync of this process comes here: tally_sqlite.c's, and SQLite's (libsqlite3 calls
 * the libc function; this definition, exported, takes its place). It counts the completed syncs
 * of the file whose device and inode ws_dev/ws_ino name, and keeps that file's size when the
 * last one started, then makes the real call. */
static dev_t ws_dev;
static ino_t ws_ino;             /* 0: count nothing */
static unsigned long ws_done;    /* atomic */
static long long ws_size;        /* atomic: the file's size at the start of the last counted sync */
/* test_sync_descriptors: while ws_slow_ms > 0 each sync of the file sleeps that long first,
 * and the syncs in flight and the descriptors open on the file are counted (atomics) */
static int ws_slow_ms, ws_inflight, ws_inflight_max, ws_fds_max;

static void ws_raise(int *max, int v)
{
	int m = __atomic_load_n(max, __ATOMIC_RELAXED);

	while (v > m && !__atomic_compare_exchange_n(max, &m, v, false, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
}

/* ws_fds - how many of this process's descriptors are open on the watched file now */
static int ws_fds(void)
{
	struct rlimit rl;
	struct stat st;
	int n = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur > 4096)
		rl.rlim_cur = 4096;
	for (int fd = 0; fd < (int)rl.rlim_cur; fd++)
		if (fstat(fd, &st) == 0 && st.st_dev == ws_dev && st.st_ino == ws_ino)
			n++;
	return n;
}

__attribute__((visibility("default"))) int fdatasync(int fd);
__attribute__((visibility("default"))) int fdatasync(int fd)
{
	struct stat st;
	bool wal = __atomic_load_n(&ws_ino, __ATOMIC_ACQUIRE) != 0 && fstat(fd, &st) == 0 &&
		   st.st_dev == ws_dev && st.st_ino == ws_ino;
	int slow = wal ? __atomic_load_n(&ws_slow_ms, __ATOMIC_ACQUIRE) : 0;
	int rc;

	if (slow > 0) {
		struct timespec ts = { 0, slow * 1000000L };

		ws_raise(&ws_inflight_max, __atomic_add_fetch(&ws_inflight, 1, __ATOMIC_RELAXED));
		ws_raise(&ws_fds_max, ws_fds());
		nanosleep(&ts, NULL);
	}
	rc = (int)syscall(SYS_fdatasync, fd);
	if (slow > 0)
		__atomic_sub_fetch(&ws_inflight, 1, __ATOMIC_RELAXED);
	if (wal && rc == 0) {
		__atomic_store_n(&ws_size, (long long)st.st_size, __ATOMIC_RELAXED);
		__atomic_add_fetch(&ws_done, 1, __ATOMIC_RELEASE);
	}
	return rc;
}

static void ws_watch(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	ws_dev = st.st_dev;
	__atomic_store_n(&ws_ino, st.st_ino, __ATOMIC_RELEASE);
}

static long long file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (long long)st.st_size;
}

/* With synchronous FULL (the default) no record returns before the WAL holding it has been
 * synced: the writer commits without the sync and the record's thread syncs the WAL after
 * giving the write turn back (tally_sqlite.c, "durability"). Each of 40 records is followed,
 * inside its call, by a completed fdatasync of the WAL that started when the WAL was already
 * as long as after the commit (a sync made before the commit would have seen it shorter: the
 * WAL only grows here, 40 records being far below a checkpoint). Reset, forget and a draft
 * claim sync too. With NORMAL the records make no sync of their own. */
#define WS_RECORDS 40

static void ws_records(struct tally *t, const char *wal, bool durable)
{
	unsigned long before, syncs = 0;

	for (int i = 0; i < WS_RECORDS; i++) {
		char who[64];

		snprintf(who, sizeof(who), "dur%02d@x.example", i);
		before = __atomic_load_n(&ws_done, __ATOMIC_ACQUIRE);
		assert_int_equal(tc_record(t, who, TC_T0 + i, "refund,complaint", NULL), 0);
		syncs += __atomic_load_n(&ws_done, __ATOMIC_ACQUIRE) - before;
		if (durable) {
			assert_true(__atomic_load_n(&ws_done, __ATOMIC_ACQUIRE) > before);
			assert_true(__atomic_load_n(&ws_size, __ATOMIC_RELAXED) >= file_size(wal));
		}
	}
	if (!durable)   /* a checkpoint (its own thread) may sync the WAL once meanwhile */
		assert_true(syncs <= 2);
}

static void ws_run(struct tc_fix *f, const char *mode)
{
	struct tally *t;
	char *err = NULL, path[512], wal[600];
	bool durable = strcmp(mode, "normal") != 0;
	unsigned long before;

	free(f->cfg->tally.sqlite_synchronous);
	f->cfg->tally.sqlite_synchronous = util_strdup(mode);
	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	db_path(f, path, sizeof(path));
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(tc_record(t, "first@x.example", TC_T0, "refund", NULL), 0);
	ws_watch(wal);   /* the WAL exists once the writer has committed */
	ws_records(t, wal, durable);
	if (durable) {
		before = __atomic_load_n(&ws_done, __ATOMIC_ACQUIRE);
		assert_int_equal(tally_draft_claim(t, "dur00@x.example", "apology", TC_T0), 1);
		assert_true(__atomic_load_n(&ws_done, __ATOMIC_ACQUIRE) > before);
		before = __atomic_load_n(&ws_done, __ATOMIC_ACQUIRE);
		assert_int_equal(tally_reset(t, "dur01@x.example"), 0);
		assert_true(__atomic_load_n(&ws_done, __ATOMIC_ACQUIRE) > before);
		before = __atomic_load_n(&ws_done, __ATOMIC_ACQUIRE);
		assert_int_equal(tally_forget(t, "dur02@x.example"), 0);
		assert_true(__atomic_load_n(&ws_done, __ATOMIC_ACQUIRE) > before);
	}
	__atomic_store_n(&ws_ino, 0, __ATOMIC_RELEASE);
	tally_close(t);
}

static void test_durable_full(void **state)
{
	ws_run(*state, "full");
}

static void test_durable_extra(void **state)
{
	ws_run(*state, "extra");
}

static void test_normal_no_sync(void **state)
{
	ws_run(*state, "normal");
}

/* The syncs of overlapping commits share the writer's one descriptor of the WAL: with each sync
 * slowed to 20 ms and eight threads recording, the next batch commits and starts its sync
 * while the last one's is in flight, and no more descriptors are open on the WAL during them
 * than during a lone sync (the writer's connection, the checkpointer's, the syncs' one). A
 * descriptor per sync in flight made a soak at 64 sessions on a slow disk hold 35 on the
 * tally's files. The first part checks that the syncs did overlap, else nothing was shown. */
#define SD_THREADS 8
#define SD_EACH 6

static void *sd_main(void *arg)
{
	struct tally *t = arg;

	for (int i = 0; i < SD_EACH; i++) {
		if (tc_record(t, "sd@x.example", TC_T0 + i, "complaint", NULL) < 0)
			fprintf(stderr, "sync descriptors: record failed: %s\n", tally_error());
	}
	return NULL;
}

static void test_sync_descriptors(void **state)
{
	struct tc_fix *f = *state;
	struct tally *t;
	char *err = NULL, path[512], wal[600];
	pthread_t th[SD_THREADS];
	struct tally_counts c;
	int lone;

	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	db_path(f, path, sizeof(path));
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(tc_record(t, "first@x.example", TC_T0, "refund", NULL), 0);
	ws_watch(wal);
	ws_inflight_max = ws_fds_max = 0;
	__atomic_store_n(&ws_slow_ms, 20, __ATOMIC_RELEASE);
	assert_int_equal(tc_record(t, "lone@x.example", TC_T0, "refund", NULL), 0);
	lone = ws_fds_max;
	assert_true(lone >= 1);
	for (int i = 0; i < SD_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, sd_main, t), 0);
	for (int i = 0; i < SD_THREADS; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&ws_slow_ms, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&ws_ino, 0, __ATOMIC_RELEASE);
	print_message("syncs in flight at most %d; descriptors on the WAL: %d alone, %d at most\n",
		      ws_inflight_max, lone, ws_fds_max);
	assert_true(ws_inflight_max >= 2);
	assert_int_equal(ws_fds_max, lone);
	assert_int_equal(tally_counts(t, "sd@x.example", TC_T0 + SD_EACH, &c), 0);
	assert_int_equal(tally_count_of(&c, "complaint"), SD_THREADS * SD_EACH);
	tally_counts_free(&c);
	tally_close(t);
}

/* The WAL is folded back into the database file by the checkpoint thread, not by a message's
 * commit (the writer's automatic checkpoint is off): without that thread the file would keep
 * its size until the last connection closes. Records enough WAL pages to cross the threshold,
 * then waits (at most 15 s) for the file to grow. */
static void test_checkpoint_thread(void **state)
{
	struct tc_fix *f = *state;
	struct tally *t;
	char *err = NULL, path[512], wal[600];
	struct stat st0, st;
	int waited = 0;

	free(f->cfg->tally.sqlite_synchronous);
	f->cfg->tally.sqlite_synchronous = util_strdup("normal");
	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	db_path(f, path, sizeof(path));
	assert_int_equal(stat(path, &st0), 0);
	for (int i = 0; i < 600; i++) {
		char who[64];

		snprintf(who, sizeof(who), "c%03d-with-a-longer-local-part@x.example", i);
		assert_int_equal(tc_record(t, who, TC_T0 + i, "refund", NULL), 0);
	}
	for (;;) {
		assert_int_equal(stat(path, &st), 0);
		if (st.st_size > st0.st_size || waited >= 150)
			break;
		usleep(100 * 1000);
		waited++;
	}
	assert_true(st.st_size > st0.st_size);
	/* and the WAL did not grow without bound meanwhile (600 records are ~5,000 pages) */
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size < 64 * 1024 * 1024);
	{
		struct tally_counts c;

		assert_int_equal(tally_counts(t, "c599-with-a-longer-local-part@x.example",
					      TC_T0 + 600, &c), 0);
		assert_int_equal(tally_count_of(&c, "refund"), 1);
		tally_counts_free(&c);
	}
	tally_close(t);
}

/* ---- sender keys ---------------------------------------------------------------------------- */

static void test_sender_key(void **state)
{
	static const struct {
		const char *in;
		bool strip;
		const char *want;   /* NULL = rejected */
	} cases[] = {
		{ "Ayesha.Siddiqui@Example.com", true, "ayesha.siddiqui@example.com" },
		{ "ayesha.siddiqui@example.com", true, "ayesha.siddiqui@example.com" },
		{ "<User@Example.COM>", true, "user@example.com" },
		{ "  user@example.com\t", true, "user@example.com" },
		{ "user+shop@example.com", true, "user@example.com" },
		{ "User+Shop+x@Example.com", true, "user@example.com" },
		{ "user+shop@example.com", false, "user+shop@example.com" },
		{ "+shop@example.com", true, "+shop@example.com" },
		{ "user@example.com+x", true, "user@example.com+x" },
		{ "\xd8\xb9\xd9\x84\xdb\x8c@example.ir", true, "\xd8\xb9\xd9\x84\xdb\x8c@example.ir" },
		{ "MAILER-DAEMON", true, "mailer-daemon" },
		{ "", true, NULL },
		{ "   ", true, NULL },
		{ "<>", true, NULL },
		{ "@example.com", true, NULL },
		{ "user@", true, NULL },
		{ "a\r\nb@example.com", true, NULL },
		{ "a\x7f@example.com", true, NULL },
		{ "a\tb@example.com", true, NULL },
	};
	struct config *cfg = tl_config("sqlite:/unused");
	char longaddr[400];
	size_t i;

	(void)state;
	assert_non_null(cfg);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		char *k;

		cfg->tally.strip_detail = cases[i].strip;
		k = tally_sender_key(cfg, cases[i].in);
		if (!cases[i].want) {
			if (k)
				fail_msg("case %zu \"%s\": got \"%s\", want rejection", i, cases[i].in, k);
		} else {
			if (!k)
				fail_msg("case %zu \"%s\": rejected", i, cases[i].in);
			assert_string_equal(k, cases[i].want);
		}
		free(k);
	}
	memset(longaddr, 'a', 320 - 12);
	strcpy(longaddr + 320 - 12, "@example.com");
	assert_int_equal(strlen(longaddr), 320);
	{
		char *k = tally_sender_key(cfg, longaddr);

		assert_non_null(k);
		free(k);
	}
	memmove(longaddr + 1, longaddr, strlen(longaddr) + 1);
	assert_null(tally_sender_key(cfg, longaddr));
	assert_null(tally_sender_key(cfg, NULL));
	config_unref(cfg);
}

static void test_clock(void **state)
{
	char dir[256], path[512], tmp[520];
	FILE *fp;

	(void)state;
	clock_set(0);
	assert_true(llabs((long long)clock_now() - (long long)time(NULL)) <= 1);
	clock_set(12345);
	assert_int_equal(clock_now(), 12345);
	clock_set(0);
	assert_int_equal(tl_tmpdir(dir, sizeof(dir), "clock"), 0);
	snprintf(path, sizeof(path), "%s/clock", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "1800000000\n");
	fclose(fp);
	setenv("AMENDS_CLOCK_FILE", path, 1);
	assert_int_equal(clock_now(), 1800000000);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	fprintf(fp, "1800086400");
	fclose(fp);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(clock_now(), 1800086400);   /* read again on every call */
	clock_set(7);
	assert_int_equal(clock_now(), 7);           /* the in-process setting wins */
	clock_set(0);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "garbage");
	fclose(fp);
	assert_true(llabs((long long)clock_now() - (long long)time(NULL)) <= 1);
	unsetenv("AMENDS_CLOCK_FILE");
	tl_rmdir(dir);
}

/* ---- group commit ---------------------------------------------------------------------------
 * Sixteen threads record on one handle at once (as the milter threads do), so records share
 * transactions. Each record must still report exactly the count its own commit produced: the
 * counts returned for one sender are 1..N, each once; the store holds N; and claims, which
 * join the batches too, interleave without a deadlock. */
#define GC_THREADS 16
#define GC_EACH 40

struct gc_worker {
	struct tally *t;
	int id;
	int counts[GC_EACH];
	int fails;
	int claims;
};

static void *gc_main(void *arg)
{
	struct gc_worker *w = arg;

	for (int i = 0; i < GC_EACH; i++) {
		struct tally_counts c;

		int rc, tries = 0;

		/* the busy timeout is capped at 1 s: under valgrind sixteen threads can exceed it
		 * waiting their turn, which fails the record cleanly (and nothing is stored) */
		while ((rc = tc_record(w->t, "gc@x.example", TC_T0, "complaint", &c)) < 0 &&
		       !strncmp(tally_error(), "busy:", 5) && ++tries < 100)
			;
		if (rc < 0) {
			fprintf(stderr, "group commit: record failed: %s\n", tally_error());
			w->fails++;
			continue;
		}
		w->counts[i] = tally_count_of(&c, "complaint");
		tally_counts_free(&c);
		if (w->id == 0 && i % 8 == 0) {
			char who[64];

			snprintf(who, sizeof(who), "claim%d@x.example", i);
			if (tally_draft_claim(w->t, who, "apology", TC_T0) == 1)
				w->claims++;
		}
	}
	return NULL;
}

static void test_group_commit(void **state)
{
	struct tc_fix *f = *state;
	static struct gc_worker w[GC_THREADS];
	static unsigned char seen[GC_THREADS * GC_EACH + 1];
	pthread_t th[GC_THREADS];
	uint64_t commits;
	int fails = 0;

	char *err = NULL;
	struct tally *t;

	t = tally_open(f->cfg, &err);
	assert_non_null(t);
	memset(w, 0, sizeof(w));
	memset(seen, 0, sizeof(seen));
	commits = stats_get(STATS_TALLY_COMMITS);
	for (int i = 0; i < GC_THREADS; i++) {
		w[i].t = t;
		w[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, gc_main, &w[i]), 0);
	}
	for (int i = 0; i < GC_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < GC_THREADS; i++)
		fails += w[i].fails;
	assert_int_equal(fails, 0);
	for (int i = 0; i < GC_THREADS; i++) {
		for (int k = 0; k < GC_EACH; k++) {
			int n = w[i].counts[k];

			assert_true(n >= 1 && n <= GC_THREADS * GC_EACH);
			assert_int_equal(seen[n], 0);      /* no two records saw the same count */
			seen[n] = 1;
		}
	}
	assert_int_equal(count_in_store(t), GC_THREADS * GC_EACH);
	assert_int_equal(w[0].claims, (GC_EACH + 7) / 8);
	/* the records were batched: sixteen threads, fewer commits than records (every commit
	 * waits for an fsync, or at least for the others to queue behind the combiner) */
	commits = stats_get(STATS_TALLY_COMMITS) - commits;
	print_message("%d records in %llu commits\n", GC_THREADS * GC_EACH,
		      (unsigned long long)commits);
	assert_true(commits >= 1);
	assert_true(commits < (uint64_t)(GC_THREADS * GC_EACH));
	tally_close(t);
}

/* Claims and unclaims join the group commit as records do (sq_queue_write): made while
 * sixteen threads record without pause, each claim gives 1 the first time for its sender and 0
 * the second, and after an unclaim 1 again; none is lost or doubled in a batch. (What moved
 * them there, claims that waited a second for the write lock on the soak's loaded host while
 * combiners took it one after another, does not happen on a quiet one, so a busy failure is
 * retried here as test_group_commit does: under TSan or valgrind a turn can take that long.) */
#define CL_RECORDERS 16
#define CL_CLAIMS 40

struct cl_state {
	struct tally *t;
	int stop;                     /* atomic */
	int rec_fails;                /* atomic */
};

static void *cl_record_main(void *arg)
{
	struct cl_state *cs = arg;

	for (int i = 0; i < 5000 && !__atomic_load_n(&cs->stop, __ATOMIC_RELAXED); i++) {
		struct tally_counts c;

		if (tc_record(cs->t, "load@x.example", TC_T0, "complaint", &c) < 0)
			__atomic_add_fetch(&cs->rec_fails, 1, __ATOMIC_RELAXED);
		else
			tally_counts_free(&c);
	}
	return NULL;
}

/* A claim (unclaim false) or an unclaim, retried while it fails busy: its result. */
static int cl_claim(struct tally *t, const char *who, bool unclaim, int *busy)
{
	int rc;

	for (int tries = 0; tries < 100; tries++) {
		rc = unclaim ? tally_draft_unclaim(t, who, "apology", TC_T0)
			     : tally_draft_claim(t, who, "apology", TC_T0);
		if (rc >= 0 || strncmp(tally_error(), "busy:", 5))
			return rc;
		++*busy;
	}
	return rc;
}

static void test_claims_under_load(void **state)
{
	struct tc_fix *f = *state;
	static struct cl_state cs;
	pthread_t th[CL_RECORDERS];
	int busy = 0;
	char *err = NULL;

	memset(&cs, 0, sizeof(cs));
	cs.t = tally_open(f->cfg, &err);
	assert_non_null(cs.t);
	for (int i = 0; i < CL_RECORDERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, cl_record_main, &cs), 0);
	for (int i = 0; i < CL_CLAIMS; i++) {
		char who[64];

		snprintf(who, sizeof(who), "claim%d@x.example", i);
		if (cl_claim(cs.t, who, false, &busy) != 1 || cl_claim(cs.t, who, false, &busy) != 0 ||
		    cl_claim(cs.t, who, true, &busy) != 0 || cl_claim(cs.t, who, false, &busy) != 1)
			fail_msg("claim %d: wrong result (%s)", i, tally_error());
	}
	__atomic_store_n(&cs.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < CL_RECORDERS; i++)
		pthread_join(th[i], NULL);
	print_message("%d claims and unclaims under load: %d busy and retried, %d records failed\n",
		      4 * CL_CLAIMS, busy, __atomic_load_n(&cs.rec_fails, __ATOMIC_RELAXED));
	tally_close(cs.t);
}

/* ---- the connection pool ----------------------------------------------------------------------
 * tally.c bounds the connections a backend may have open (max_conns): a call that needs one more
 * waits for one to come back, at most TALLY_POOL_WAIT_MS, then fails "busy:"; a call that needs
 * none (an SQLite write) never waits. A backend that blocks inside its reads shows all of it. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inside, release, made, open, max_open;
} fk = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0 };

static void *fk_conn_new(struct tally *t)
{
	(void)t;
	pthread_mutex_lock(&fk.lock);
	fk.made++;
	if (++fk.open > fk.max_open)
		fk.max_open = fk.open;
	pthread_mutex_unlock(&fk.lock);
	return malloc(1);
}

static void fk_conn_free(void *conn)
{
	pthread_mutex_lock(&fk.lock);
	fk.open--;
	pthread_mutex_unlock(&fk.lock);
	free(conn);
}

/* a read: takes the call's connection, then waits inside until released */
static int fk_counts(struct tally *t, struct tally_lease *l, const char *sender, time_t now,
		     struct tally_counts *out)
{
	(void)t, (void)sender, (void)now, (void)out;
	if (!tally_lease_conn(l))
		return -1;
	pthread_mutex_lock(&fk.lock);
	fk.inside++;
	pthread_cond_broadcast(&fk.cond);
	while (!fk.release)
		pthread_cond_wait(&fk.cond, &fk.lock);
	fk.inside--;
	pthread_mutex_unlock(&fk.lock);
	return 0;
}

/* a write as SQLite's: it goes elsewhere and never asks for a connection */
static int fk_claim(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		    time_t now)
{
	(void)t, (void)l, (void)sender, (void)kind, (void)now;
	return 1;
}

struct fk_reader {
	struct tally *t;
	pthread_t th;
	int rc;
};

static void *fk_reader_main(void *arg)
{
	struct fk_reader *r = arg;
	struct tally_counts c;

	r->rc = tally_counts(r->t, "reader@x.example", TC_T0, &c);
	tally_counts_free(&c);
	return NULL;
}

static void fk_wait_inside(int n)
{
	pthread_mutex_lock(&fk.lock);
	while (fk.inside < n)
		pthread_cond_wait(&fk.cond, &fk.lock);
	pthread_mutex_unlock(&fk.lock);
}

/* pool_gauge - a gauge of the stats snapshot (amends_tally_pool_connections[_peak]) */
static long long pool_gauge(const char *name)
{
	char *body = NULL, *at;
	size_t len = 0;
	long long v = -1;
	FILE *fp = open_memstream(&body, &len);

	assert_non_null(fp);
	stats_write_prometheus(fp);
	assert_int_equal(fclose(fp), 0);
	for (at = body; (at = strstr(at, name)) != NULL; at += strlen(name))
		if ((at == body || at[-1] == '\n') && at[strlen(name)] == ' ')
			v = strtoll(at + strlen(name) + 1, NULL, 10);
	free(body);
	return v;
}

/* fk_install - the fake's connections, reads and claims on t through *fake (open and close stay
 * SQLite's), at most max_conns connections (0: SQLite's bound); reads return at once when
 * release, else wait for fk_release. The counters start from 0. */
static void fk_install(struct tally *t, struct tally_backend *fake, size_t max_conns, int release)
{
	pthread_mutex_lock(&fk.lock);
	fk.made = fk.open = fk.max_open = fk.inside = 0;
	fk.release = release;
	pthread_mutex_unlock(&fk.lock);
	*fake = *t->be;
	if (max_conns)
		fake->max_conns = max_conns;
	fake->conn_new = fk_conn_new;
	fake->conn_free = fk_conn_free;
	fake->counts = fk_counts;
	fake->claim = fk_claim;
	t->be = fake;
}

/* fk_release - let the waiting reads (and every later one) return */
static void fk_release(void)
{
	pthread_mutex_lock(&fk.lock);
	fk.release = 1;
	pthread_cond_broadcast(&fk.cond);
	pthread_mutex_unlock(&fk.lock);
}

/* fk_readers - n threads each reading once on t; returns when all n are inside their read */
static void fk_readers(struct tally *t, struct fk_reader *r, int n)
{
	for (int i = 0; i < n; i++) {
		r[i].t = t;
		assert_int_equal(pthread_create(&r[i].th, NULL, fk_reader_main, &r[i]), 0);
	}
	fk_wait_inside(n);
}

static void test_pool_wait(void **state)
{
	struct tc_fix *f = *state;
	struct tally_backend fake;
	struct fk_reader r[3];
	struct tally_counts c;
	struct timespec a, b;
	char *err = NULL;
	struct tally *t = tally_open(f->cfg, &err);
	double waited_ms;
	int rc;

	assert_non_null(t);
	fk_install(t, &fake, 2, 0);
	fk_readers(t, r, 2);
	/* both connections are in use: a write still goes through at once */
	assert_int_equal(tally_draft_claim(t, "writer@x.example", "apology", TC_T0), 1);
	/* a third read waits its bound, then fails busy (and makes no third connection) */
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = tally_counts(t, "third@x.example", TC_T0, &c);
	clock_gettime(CLOCK_MONOTONIC, &b);
	waited_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	assert_int_equal(rc, -1);
	assert_non_null(strstr(tally_error(), "busy: all 2 connections in use"));
	assert_true(waited_ms >= TALLY_POOL_WAIT_MS - 50 && waited_ms < TALLY_POOL_WAIT_MS + 4000);
	/* one that waits while the first two finish gets a connection they gave back */
	r[2].t = t;
	assert_int_equal(pthread_create(&r[2].th, NULL, fk_reader_main, &r[2]), 0);
	fk_release();
	for (int i = 0; i < 3; i++) {
		pthread_join(r[i].th, NULL);
		assert_int_equal(r[i].rc, 0);
	}
	assert_int_equal(fk.made, 2);
	assert_int_equal(fk.max_open, 2);
	tally_close(t);
	assert_int_equal(fk.open, 0);   /* the pool closed what it kept */
}

/* An idle connection older than TALLY_POOL_IDLE_S is closed by the next checkout, which opens
 * a fresh one; a younger one is reused. The idle stamps are aged by hand (no 10 s sleep). */
static void test_pool_idle(void **state)
{
	struct tc_fix *f = *state;
	struct tally_backend fake;
	struct tally_counts c;
	char *err = NULL;
	struct tally *t = tally_open(f->cfg, &err);
	int made_before_aged;

	assert_non_null(t);
	fk_install(t, &fake, 0, 1);     /* reads return at once */
	assert_int_equal(tally_counts(t, "idle@x.example", TC_T0, &c), 0);
	tally_counts_free(&c);
	assert_int_equal(fk.made, 1);
	assert_int_equal(t->n_idle, 1);
	/* young: reused */
	assert_int_equal(tally_counts(t, "idle@x.example", TC_T0, &c), 0);
	tally_counts_free(&c);
	assert_int_equal(fk.made, 1);
	/* idle exactly TALLY_POOL_IDLE_S: kept. The pool's clock has whole seconds, so a second
	 * that ticks during the call would age it: such a try does not count, and is repeated. */
	for (int tries = 0;; tries++) {
		long long before = util_now_us() / 1000000, after;
		int made = fk.made;

		assert_true(tries < 5);
		t->idle_since[0] = before - TALLY_POOL_IDLE_S;
		assert_int_equal(tally_counts(t, "idle@x.example", TC_T0, &c), 0);
		tally_counts_free(&c);
		after = util_now_us() / 1000000;
		if (after == before) {
			assert_int_equal(fk.made, made);
			break;
		}
	}
	/* just old enough: closed, and the call runs on a new one */
	made_before_aged = fk.made;
	t->idle_since[0] -= TALLY_POOL_IDLE_S + 1;
	assert_int_equal(tally_counts(t, "idle@x.example", TC_T0, &c), 0);
	tally_counts_free(&c);
	assert_int_equal(fk.made, made_before_aged + 1);
	assert_int_equal(fk.open, 1);
	assert_int_equal(t->n_open, 1);
	assert_int_equal(t->n_idle, 1);
	tally_close(t);
	assert_int_equal(fk.open, 0);
}

/* Each idle connection is closed once it has been unused for more than TALLY_POOL_IDLE_S,
 * not only when the whole stack is: of two idle ones, the one given back first goes alone.
 * And any call closes them, also one that takes no connection (SQLite's writes: with SQLite
 * only drafts read through the pool, so a burst's readers stayed open until the next draft). */
static void test_pool_reap(void **state)
{
	struct tc_fix *f = *state;
	struct tally_backend fake;
	struct fk_reader r[2];
	char *err = NULL;
	struct tally *t = tally_open(f->cfg, &err);

	assert_non_null(t);
	stats_reset();
	fk_install(t, &fake, 0, 0);
	fk_readers(t, r, 2);
	/* the gauges count the pool's connections (not SQLite's writer or checkpointer) */
	assert_int_equal(pool_gauge("amends_tally_pool_connections"), 2);
	fk_release();
	for (int i = 0; i < 2; i++) {
		pthread_join(r[i].th, NULL);
		assert_int_equal(r[i].rc, 0);
	}
	assert_int_equal(t->n_idle, 2);
	assert_int_equal(fk.open, 2);
	/* the bottom one stale, the top one young: a write closes the bottom one only; then the
	 * other one, aged the same way */
	for (int left = 1; left >= 0; left--) {
		t->idle_since[0] -= TALLY_POOL_IDLE_S + 2;
		atomic_store(&t->reap_due, 0);
		assert_int_equal(tally_draft_claim(t, "reap@x.example", "apology", TC_T0), 1);
		assert_int_equal(fk.open, left);
		assert_int_equal(t->n_idle, left);
		assert_int_equal(t->n_open, left);
		assert_int_equal(pool_gauge("amends_tally_pool_connections"), left);
	}
	assert_int_equal(pool_gauge("amends_tally_pool_connections_peak"), 2);
	assert_int_equal(fk.made, 2);
	tally_close(t);
}

/* The real thing: 32 threads read and record at once on one handle; at no time are more than
 * SQLite's bound of readers open, and every call succeeds (none waited its full bound). */
#define PB_THREADS 32
#define PB_EACH 150

struct pb_state {
	struct tally *t;
	int fails;                    /* atomic */
	int done;                     /* atomic: threads finished */
};

static void *pb_main(void *arg)
{
	struct pb_state *ps = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;

	for (int i = 0; i < PB_EACH; i++) {
		char who[64];
		struct tally_counts c;
		struct tally_history h;
		time_t first, last;
		int bad = 0;

		snprintf(who, sizeof(who), "pool%u@x.example", (unsigned int)rand_r(&seed) % 20);
		switch (i % 4) {
		case 0:
			bad = tc_record(ps->t, who, TC_T0 + i, "complaint", &c) < 0;
			if (!bad)
				tally_counts_free(&c);
			break;
		case 1:
			bad = tally_counts(ps->t, who, TC_T0 + i, &c) < 0;
			tally_counts_free(&c);
			break;
		case 2:
			bad = tally_seen(ps->t, who, &first, &last) < 0;
			break;
		default:
			bad = tally_history(ps->t, who, 10, &h) < 0;
			tally_history_free(&h);
			break;
		}
		if (bad) {
			print_message("pool: %s\n", tally_error());
			__atomic_add_fetch(&ps->fails, 1, __ATOMIC_RELAXED);
		}
	}
	__atomic_add_fetch(&ps->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static size_t pb_open(struct tally *t)
{
	size_t n;

	pthread_mutex_lock(&t->pool_lock);
	n = t->n_open;
	pthread_mutex_unlock(&t->pool_lock);
	return n;
}

static void test_pool_bound(void **state)
{
	struct tc_fix *f = *state;
	static struct pb_state ps;
	pthread_t th[PB_THREADS];
	size_t most = 0, n;
	char *err = NULL;

	memset(&ps, 0, sizeof(ps));
	stats_reset();
	ps.t = tally_open(f->cfg, &err);
	assert_non_null(ps.t);
	assert_true(ps.t->be->max_conns >= 2 && ps.t->be->max_conns < PB_THREADS);
	for (int i = 0; i < PB_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, pb_main, &ps), 0);
	/* bounded: the threads finish (each call at most TALLY_POOL_WAIT_MS waiting) */
	while (__atomic_load_n(&ps.done, __ATOMIC_ACQUIRE) < PB_THREADS) {
		if ((n = pb_open(ps.t)) > most)
			most = n;
		usleep(200);
	}
	for (int i = 0; i < PB_THREADS; i++)
		pthread_join(th[i], NULL);
	print_message("%d threads: at most %zu of %zu readers open at a sample\n", PB_THREADS, most,
		      ps.t->be->max_conns);
	assert_int_equal(__atomic_load_n(&ps.fails, __ATOMIC_RELAXED), 0);
	assert_true(most >= 1 && most <= ps.t->be->max_conns);
	assert_true(pb_open(ps.t) <= ps.t->be->max_conns);
	/* the gauges: the most open at once, never above the bound; open now, the pool's count */
	assert_true(pool_gauge("amends_tally_pool_connections_peak") >= (long long)most);
	assert_true(pool_gauge("amends_tally_pool_connections_peak") <=
		    (long long)ps.t->be->max_conns);
	assert_int_equal(pool_gauge("amends_tally_pool_connections"), (long long)pb_open(ps.t));
	tally_close(ps.t);
	assert_int_equal(pool_gauge("amends_tally_pool_connections"), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tc_setup, tc_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(tc_test_counts), T(tc_test_window), T(tc_test_window_model),
		T(tc_test_history), T(tc_test_claim),
		T(tc_test_reset_forget), T(tc_test_top), T(tc_test_prune), T(tc_test_threads),
		T(tc_test_bad_input),
		T(test_schema), T(test_newer_schema_refused), T(test_upgrade_from_v1), T(test_reopen_keeps_data),
		T(test_bad_specs), T(test_locked), T(test_full_disk), T(test_synchronous_normal),
		T(test_group_commit), T(test_claims_under_load), T(test_checkpoint_thread),
		T(test_durable_full), T(test_durable_extra), T(test_normal_no_sync),
		T(test_sync_descriptors),
		T(test_pool_wait), T(test_pool_idle), T(test_pool_reap), T(test_pool_bound),
		cmocka_unit_test(test_sender_key),
		cmocka_unit_test(test_clock),
	};

	tc_be = &sq_backend;
	return cmocka_run_group_tests_name("tally_sqlite", tests, NULL, NULL);
}
