/* test_maildir.c - Maildir++ delivery (R8.4): names, flags, fsync'd tmp->cur, 64 threads x 1000
 * unique files, kill -9 leaves nothing partial, stale tmp/ cleanup; and the IMAP spool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "maildir.h"
#include "spool.h"
#include "util.h"

static char root[256];

static int rm_cb(const char *dir)
{
	/* a bounded tree: maildir root, folders, cur/new/tmp/failed */
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	char p[1024];
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_cb(p);
		else
			unlink(p);
	}
	closedir(d);
	return rmdir(dir);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/amends-md-XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rm_cb(root);
	return 0;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_flags_and_folders(void **state)
{
	static const struct { const char *in, *out; } flags[] = {
		{ "", "D" }, { NULL, "D" }, { "SD", "DS" }, { "DDS", "DS" }, { "TRD", "DRT" },
		{ "F", "DF" }, { "s", NULL }, { "D,S", NULL }, { "D:", NULL },
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(flags); i++) {
		char out[27];
		int rc = maildir_flags_normalize(flags[i].in, out);
		if (!flags[i].out) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(out, flags[i].out);
		}
	}
	static const struct { const char *f; bool ok; } folders[] = {
		{ "", true }, { ".Drafts", true }, { ".Support.Drafts", true }, { ".a-b_c", true },
		{ "Drafts", false }, { ".", false }, { "..", false }, { "../x", false },
		{ ".a/b", false }, { ".a..b", false }, { ".a b", false }, { ".\xd8\xa7", false },
	};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(folders); i++)
		if (maildir_folder_valid(folders[i].f) != folders[i].ok)
			fail_msg("folder '%s'", folders[i].f);
}

static void test_deliver(void **state)
{
	char mdpath[512], p[1024];
	(void)state;
	snprintf(mdpath, sizeof(mdpath), "%s/deep/Maildir", root);
	struct maildir_opts o = { .root = mdpath, .folder = ".Drafts", .flags = "S" };
	char *err = NULL;
	struct maildir *m = maildir_open(&o, &err);
	if (!m)
		fail_msg("open: %s", err);
	const char msg[] = "Subject: x\n\nbody\n";
	char *name = NULL;
	assert_int_equal(maildir_deliver(m, msg, sizeof(msg) - 1, &name, &err), 0);
	size_t nl = strlen(name);
	assert_true(nl > 5);
	assert_string_equal(name + nl - 5, ":2,DS");
	/* <sec>.M<usec>P<pid>Q<n>.<host> */
	assert_non_null(strstr(name, ".M"));
	char pid[32];
	snprintf(pid, sizeof(pid), "P%ldQ", (long)getpid());
	assert_non_null(strstr(name, pid));
	snprintf(p, sizeof(p), "%s/.Drafts/cur/%s", mdpath, name);
	char *text;
	size_t len;
	assert_int_equal(util_read_file(p, 1024, &text, &len), 0);
	assert_string_equal(text, msg);
	free(text);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s/.Drafts/tmp", mdpath);
	assert_int_equal(count_files(p), 0);
	static const char *const dirs[] = { "", "/cur", "/new", "/tmp", "/.Drafts", "/.Drafts/cur",
					    "/.Drafts/new", "/.Drafts/tmp" };
	for (size_t i = 0; i < UTIL_ARRAY_LEN(dirs); i++) {
		snprintf(p, sizeof(p), "%s%s", mdpath, dirs[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	snprintf(p, sizeof(p), "%s/.Drafts/maildirfolder", mdpath);
	assert_int_equal(access(p, F_OK), 0);
	free(name);
	maildir_close(m);

	/* bad options are refused before anything is created */
	struct maildir_opts bad[] = {
		{ .root = "relative/path", .folder = "" },
		{ .root = mdpath, .folder = "../escape" },
		{ .root = mdpath, .folder = ".ok", .flags = "x" },
	};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		err = NULL;
		assert_null(maildir_open(&bad[i], &err));
		assert_non_null(err);
		free(err);
	}
}

struct thread_arg {
	struct maildir *m;
	int n;
	int failures;
};

static void *deliver_many(void *arg)
{
	struct thread_arg *a = arg;
	for (int i = 0; i < a->n; i++) {
		char *err = NULL;
		if (maildir_deliver(a->m, "x\n", 2, NULL, &err) < 0) {
			a->failures++;
			free(err);
		}
	}
	return NULL;
}

/* R8.4: 64 threads x 1000 drafts -> 64,000 distinct files, no collision, nothing in tmp/. */
static void test_threads_unique(void **state)
{
	(void)state;
	int threads = 64, per = 1000;
	const char *env = getenv("AMENDS_TEST_MAILDIR_PER_THREAD");
	if (env && atoi(env) > 0)
		per = atoi(env);
	char mdpath[512], p[1024];
	snprintf(mdpath, sizeof(mdpath), "%s/threads", root);
	struct maildir_opts o = { .root = mdpath, .folder = "", .flags = "D" };
	char *err = NULL;
	struct maildir *m = maildir_open(&o, &err);
	assert_non_null(m);
	pthread_t th[64];
	struct thread_arg args[64];
	for (int i = 0; i < threads; i++) {
		args[i] = (struct thread_arg){ m, per, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, deliver_many, &args[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		failures += args[i].failures;
	}
	assert_int_equal(failures, 0);
	snprintf(p, sizeof(p), "%s/cur", mdpath);
	assert_int_equal(count_files(p), (size_t)threads * per);
	snprintf(p, sizeof(p), "%s/tmp", mdpath);
	assert_int_equal(count_files(p), 0);
	maildir_close(m);
	snprintf(p, sizeof(p), "%s/cur", mdpath);
	rm_cb(p);
}

/* kill -9 while drafts are being written: whatever is in cur/ is complete. */
static void test_kill9(void **state)
{
	(void)state;
	char mdpath[512], p[1024];
	snprintf(mdpath, sizeof(mdpath), "%s/kill", root);
	static char big[64 * 1024];
	memset(big, 'a', sizeof(big));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct maildir_opts o = { .root = mdpath, .folder = ".Drafts" };
		struct maildir *m = maildir_open(&o, NULL);
		for (int i = 0; m && i < 100000; i++)
			maildir_deliver(m, big, sizeof(big), NULL, NULL);
		_exit(0);
	}
	/* let it write three files (bounded: 30 s, for a machine whose fsync crawls) */
	snprintf(p, sizeof(p), "%s/.Drafts/cur", mdpath);
	for (int i = 0; i < 3000 && count_files(p) < 3; i++)
		usleep(10000);
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	assert_true(count_files(p) >= 3);
	DIR *d = opendir(p);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char f[2048];
		snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
		struct stat st;
		assert_int_equal(stat(f, &st), 0);
		assert_int_equal(st.st_size, (off_t)sizeof(big));
	}
	closedir(d);
	snprintf(p, sizeof(p), "%s/.Drafts/new", mdpath);
	assert_int_equal(count_files(p), 0);
}

/* Leftovers in tmp/ older than 36 h go on open; fresh ones stay. */
static void test_clean_tmp(void **state)
{
	(void)state;
	char mdpath[512], p[1024];
	snprintf(mdpath, sizeof(mdpath), "%s/clean", root);
	struct maildir_opts o = { .root = mdpath, .folder = "" };
	struct maildir *m = maildir_open(&o, NULL);
	assert_non_null(m);
	maildir_close(m);
	const char *names[] = { "old.1", "fresh.2", "edge.3" };
	long ages[] = { 37 * 3600, 60, 35 * 3600 };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/tmp/%s", mdpath, names[i]);
		int fd = open(p, O_WRONLY | O_CREAT, 0600);
		assert_true(fd >= 0);
		close(fd);
		struct timespec ts[2] = { { time(NULL) - ages[i], 0 }, { time(NULL) - ages[i], 0 } };
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	m = maildir_open(&o, NULL);
	assert_non_null(m);
	snprintf(p, sizeof(p), "%s/tmp/old.1", mdpath);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/tmp/fresh.2", mdpath);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/tmp/edge.3", mdpath);
	assert_int_equal(access(p, F_OK), 0);
	maildir_close(m);
}

static void test_spool(void **state)
{
	(void)state;
	char sp_path[512], p[1024];
	snprintf(sp_path, sizeof(sp_path), "%s/spool", root);
	char *err = NULL;
	struct spool *s = spool_open(sp_path, &err);
	assert_non_null(s);
	char *n1 = NULL, *n2 = NULL;
	assert_int_equal(spool_put(s, "one\r\n", 5, &n1, &err), 0);
	assert_int_equal(spool_put(s, "two\r\n", 5, &n2, &err), 0);
	/* a spool delivers into new/ without an info suffix */
	assert_null(strchr(n1, ':'));
	snprintf(p, sizeof(p), "%s/new/%s", sp_path, n1);
	assert_int_equal(access(p, F_OK), 0);
	struct spool_entry *v;
	size_t n;
	assert_int_equal(spool_list(s, 1, 100, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, n1);   /* oldest first */
	char *data;
	size_t len;
	assert_int_equal(spool_read(s, &v[1], 100, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(data, "two\r\n", 5);
	free(data);
	/* too large for the reader's cap: an error, not a silent cut */
	assert_int_equal(spool_read(s, &v[1], 3, &data, &len), -1);
	assert_int_equal(spool_done(s, n1), 0);
	assert_int_equal(spool_fail(s, n2), 0);
	spool_list_free(v, n);
	assert_int_equal(spool_list(s, 0, 100, &v, &n), 0);
	assert_int_equal(n, 0);
	spool_list_free(v, n);
	assert_int_equal(spool_list(s, 1, 100, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].state, SPOOL_FAILED);
	spool_list_free(v, n);
	free(n1);
	free(n2);
	spool_close(s);
}

/* Oldest first across the digit-count changes of the unpadded microseconds and counter: as
 * strings "M99876" would sort after "M100023" of the same second (the spool test above failed
 * that way once in CI). */
static void test_spool_order(void **state)
{
	(void)state;
	char sp_path[512], p[1024];
	snprintf(sp_path, sizeof(sp_path), "%s/spool-order", root);
	struct spool *s = spool_open(sp_path, NULL);
	assert_non_null(s);
	static const char *const names[] = {	/* in the order expected */
		"999999999.M999999P7Q1.host", "1700000000.M5P7Q9.host", "1700000000.M5P7Q10.host",
		"1700000000.M40P7Q2.host", "1700000000.M99876P7Q3.host",
		"1700000000.M100023P7Q4.host", "1700000001.M0P7Q5.host",
	};
	static const int order_written[] = { 5, 2, 4, 0, 6, 1, 3 };
	for (size_t i = 0; i < UTIL_ARRAY_LEN(order_written); i++) {
		snprintf(p, sizeof(p), "%s/new/%s", sp_path, names[order_written[i]]);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	struct spool_entry *v;
	size_t n;
	assert_int_equal(spool_list(s, 0, 100, &v, &n), 0);
	assert_int_equal(n, UTIL_ARRAY_LEN(names));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(v[i].name, names[i]);
	spool_list_free(v, n);
	spool_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags_and_folders),
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_threads_unique),
		cmocka_unit_test(test_kill9),
		cmocka_unit_test(test_clean_tmp),
		cmocka_unit_test(test_spool),
		cmocka_unit_test(test_spool_order),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
