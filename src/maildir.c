/*
 * maildir.c - durable Maildir++ delivery (drafts into the review mailbox, and the IMAP spool)
 *
 * The directories are opened once and kept as fds, so every later step (openat with O_EXCL,
 * renameat, fsync of the directory) works on the directory the daemon checked at open time,
 * whatever happens to the path later, and needs no path building per message.
 *
 * OWNERSHIP  See maildir.h.
 * DIAGNOSTICS  Functions return -1 with a malloc'd *err; nothing here logs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "maildir.h"
#include "util.h"

struct maildir {
	char *path;        /* root or root/folder */
	int dir_fd, tmp_fd, dest_fd;
	bool to_new;
	char info[32];     /* ":2,DS" or "" */
};

static atomic_ulong maildir_counter;

bool maildir_folder_valid(const char *f)
{
	if (!f || !*f)
		return true;
	if (f[0] != '.' || strlen(f) > 200 || strstr(f, "..") || strcmp(f, ".") == 0)
		return false;
	for (const char *p = f; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

int maildir_flags_normalize(const char *flags, char out[27])
{
	bool have[26] = { false };
	have['D' - 'A'] = true;
	for (const char *p = flags ? flags : ""; *p; p++) {
		if (*p < 'A' || *p > 'Z')
			return -1;
		have[*p - 'A'] = true;
	}
	size_t n = 0;
	for (int i = 0; i < 26; i++)
		if (have[i])
			out[n++] = (char)('A' + i);
	out[n] = '\0';
	return 0;
}

/* mkdir -p with mode 0700 for the parts that do not exist. */
static int maildir_mkdirs(const char *path)
{
	char *p = util_strdup(path);
	if (!p)
		return -1;
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				int e = errno;
				free(p);
				errno = e;
				return -1;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return 0;
}

static int maildir_open_sub(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Create cur/ new/ tmp/ inside dirfd (a maildir or a Maildir++ folder). */
static int maildir_make_three(int dirfd)
{
	static const char *const sub[] = { "cur", "new", "tmp" };
	for (size_t i = 0; i < 3; i++) {
		int fd = maildir_open_sub(dirfd, sub[i]);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

void maildir_close(struct maildir *m)
{
	if (!m)
		return;
	if (m->dir_fd >= 0)
		close(m->dir_fd);
	if (m->tmp_fd >= 0)
		close(m->tmp_fd);
	if (m->dest_fd >= 0)
		close(m->dest_fd);
	free(m->path);
	free(m);
}

struct maildir *maildir_open(const struct maildir_opts *o, char **err)
{
	char flags[27];
	if (!o->root || o->root[0] != '/') {
		util_seterr(err, "maildir path must be absolute");
		return NULL;
	}
	if (!maildir_folder_valid(o->folder)) {
		util_seterr(err, "bad Maildir++ folder name '%s'", o->folder);
		return NULL;
	}
	if (maildir_flags_normalize(o->flags, flags) < 0) {
		util_seterr(err, "bad maildir flags '%s' (uppercase letters only)", o->flags);
		return NULL;
	}
	struct maildir *m = calloc(1, sizeof(*m));
	if (!m) {
		util_seterr(err, "out of memory");
		return NULL;
	}
	m->dir_fd = m->tmp_fd = m->dest_fd = -1;
	m->to_new = o->to_new;
	if (!o->to_new)
		(void)snprintf(m->info, sizeof(m->info), ":2,%s", flags);   /* <= 26 flags: fits */
	int root_fd = -1;
	if (maildir_mkdirs(o->root) < 0 ||
	    (root_fd = open(o->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    maildir_make_three(root_fd) < 0) {
		util_seterr(err, "%s: %s", o->root, strerror(errno));
		goto fail;
	}
	struct strbuf b;
	strbuf_init(&b, PATH_MAX);
	strbuf_puts(&b, o->root);
	if (o->folder && *o->folder) {
		strbuf_printf(&b, "/%s", o->folder);
		m->dir_fd = maildir_open_sub(root_fd, o->folder);
		if (m->dir_fd >= 0) {
			/* Maildir++: the marker file tells Dovecot/Courier this is a folder */
			int mf = openat(m->dir_fd, "maildirfolder", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
			if (mf >= 0)
				close(mf);
		}
		close(root_fd);
	} else {
		m->dir_fd = root_fd;
	}
	root_fd = -1;
	m->path = strbuf_take(&b);
	if (m->dir_fd < 0 || !m->path || maildir_make_three(m->dir_fd) < 0 ||
	    (m->tmp_fd = openat(m->dir_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (m->dest_fd = openat(m->dir_fd, o->to_new ? "new" : "cur",
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		util_seterr(err, "%s/%s: %s", o->root, o->folder ? o->folder : "",
			       strerror(errno));
		goto fail;
	}
	maildir_clean_tmp(m, time(NULL), MAILDIR_TMP_MAX_AGE_S);
	return m;
fail:
	if (root_fd >= 0)
		close(root_fd);
	maildir_close(m);
	return NULL;
}

int maildir_dest_fd(const struct maildir *m)
{
	return m->dest_fd;
}

const char *maildir_path(const struct maildir *m)
{
	return m->path;
}

static char maildir_hostname[256];
static pthread_once_t maildir_host_once = PTHREAD_ONCE_INIT;

/* The host part of unique names, with '/' and ':' escaped as the maildir spec says. */
static void maildir_host_init(void)
{
	char raw[128] = "localhost";
	gethostname(raw, sizeof(raw) - 1);
	raw[sizeof(raw) - 1] = '\0';
	size_t n = 0;
	for (const char *p = raw; *p && n + 5 < sizeof(maildir_hostname); p++) {
		if (*p == '/' || *p == ':') {
			n += (size_t)snprintf(maildir_hostname + n, sizeof(maildir_hostname) - n,
					      "\\%03o", (unsigned char)*p);
		} else if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
			maildir_hostname[n++] = '_';
		} else {
			maildir_hostname[n++] = *p;
		}
	}
	maildir_hostname[n] = '\0';
}

static const char *maildir_host(void)
{
	pthread_once(&maildir_host_once, maildir_host_init);
	return maildir_hostname;
}

char *maildir_unique_name(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	unsigned long q = atomic_fetch_add(&maildir_counter, 1);
	struct strbuf b;
	strbuf_init(&b, 512);
	strbuf_printf(&b, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
		      (long)getpid(), q, maildir_host());
	if (b.truncated || b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	return strbuf_take(&b);
}

static int maildir_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int maildir_deliver(struct maildir *m, const char *data, size_t len, char **name, char **err)
{
	char *base = NULL, *final = NULL;
	int fd = -1;
	for (int tries = 0; tries < 8 && fd < 0; tries++) {
		free(base);
		base = maildir_unique_name();
		if (!base) {
			util_seterr(err, "out of memory");
			return -1;
		}
		fd = openat(m->tmp_fd, base, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		util_seterr(err, "%s/tmp: create: %s", m->path, strerror(errno));
		free(base);
		return -1;
	}
	const char *step = "write";
	if (maildir_write_all(fd, data, len) < 0)
		goto fail;
	step = "fsync";
	if (fsync(fd) < 0)
		goto fail;
	step = "close";
	int cfd = fd;
	fd = -1;
	if (close(cfd) < 0)
		goto fail;
	step = "name";
	struct strbuf b;
	strbuf_init(&b, 1024);
	strbuf_printf(&b, "%s%s", base, m->info);
	if (b.truncated || b.oom || !(final = strbuf_take(&b)))
		goto fail;
	step = "rename";
	if (renameat(m->tmp_fd, base, m->dest_fd, final) < 0)
		goto fail;
	/* the rename is durable only once the destination directory is on disk */
	if (fsync(m->dest_fd) < 0) {
		util_seterr(err, "%s: fsync directory: %s", m->path, strerror(errno));
		free(base);
		free(final);
		return -1;
	}
	free(base);
	if (name)
		*name = final;
	else
		free(final);
	return 0;
fail:
	util_seterr(err, "%s: %s: %s", m->path, step, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlinkat(m->tmp_fd, base, 0);
	free(base);
	free(final);
	return -1;
}

int maildir_clean_tmp(struct maildir *m, time_t now, long max_age_s)
{
	int fd = dup(m->tmp_fd);
	if (fd < 0)
		return 0;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return 0;
	}
	rewinddir(dir);
	int removed = 0;
	struct dirent *de;
	/* bounded: a directory listing is finite; unlink does not add entries */
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(m->tmp_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISREG(st.st_mode) || st.st_mtime > now - max_age_s)
			continue;
		if (unlinkat(m->tmp_fd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}
