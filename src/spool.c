/*
 * spool.c - the durable local queue of drafts waiting for IMAP APPEND
 *
 * The spool reuses maildir.c's tmp -> new delivery (same O_EXCL, fsync and rename discipline),
 * so a draft that spool_put() accepted survives a crash, a reboot and a down IMAP server.
 *
 * OWNERSHIP  See spool.h.
 * DIAGNOSTICS  -1 with a malloc'd *err or errno; nothing here logs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildir.h"
#include "spool.h"
#include "util.h"

struct spool {
	struct maildir *md;
	int failed_fd;
};

struct spool *spool_open(const char *dir, char **err)
{
	struct maildir_opts o = { .root = dir, .folder = "", .flags = NULL, .to_new = true };
	struct spool *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->failed_fd = -1;
	s->md = maildir_open(&o, err);
	if (!s->md)
		goto fail;
	int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		goto fail_errno;
	if (mkdirat(root, "failed", 0700) < 0 && errno != EEXIST) {
		close(root);
		goto fail_errno;
	}
	s->failed_fd = openat(root, "failed", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(root);
	if (s->failed_fd < 0)
		goto fail_errno;
	return s;
fail_errno:
	if (err) {
		struct strbuf b;
		strbuf_init(&b, 512);
		strbuf_printf(&b, "%s: %s", dir, strerror(errno));
		*err = strbuf_take(&b);
	}
fail:
	spool_close(s);
	return NULL;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	maildir_close(s->md);
	if (s->failed_fd >= 0)
		close(s->failed_fd);
	free(s);
}

const char *spool_path(const struct spool *s)
{
	return maildir_path(s->md);
}

int spool_put(struct spool *s, const char *data, size_t len, char **name, char **err)
{
	return maildir_deliver(s->md, data, len, name, err);
}

/* The sort key of a name "<sec>.M<usec>P<pid>Q<n>.<host>" (maildir_unique_name): its seconds,
 * microseconds and counter as numbers, since the microseconds are not zero-padded ("M99876"
 * sorts after "M100023" of the same second as a string). A field that is missing is -1, so a
 * name maildir.c did not make sorts first; strtoll saturates a number too large, which only
 * sorts that name last. Parsed once per entry, not in every comparison. */
static void spool_name_order(const char *name, long long order[3])
{
	const char *dot = strchr(name, '.');

	order[0] = name[0] >= '0' && name[0] <= '9' ? strtoll(name, NULL, 10) : -1;
	order[1] = order[2] = -1;
	for (const char *p = dot ? dot + 1 : ""; *p && *p != '.'; p++) {
		int k = *p == 'M' ? 1 : *p == 'Q' ? 2 : 0;

		if (k && p[1] >= '0' && p[1] <= '9' && order[k] < 0)
			order[k] = strtoll(p + 1, NULL, 10);
	}
}

/* Oldest first, then the whole name. */
static int spool_entry_cmp(const void *a, const void *b)
{
	const struct spool_entry *x = a, *y = b;
	if (x->state != y->state)
		return (int)x->state - (int)y->state;
	for (int i = 0; i < 3; i++)
		if (x->order[i] != y->order[i])
			return x->order[i] < y->order[i] ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The entries found so far, growing: at most max. */
struct spool_listing {
	struct spool_entry *v;
	size_t n, cap, max;
};

static int spool_scan(int dirfd, enum spool_state st, struct spool_listing *l)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -1;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -1;
	}
	rewinddir(dir);
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(dir)) != NULL && l->n < l->max) {
		struct stat sb;
		if (de->d_name[0] == '.' || fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (l->n == l->cap) {
			size_t nc = l->cap ? l->cap * 2 : 32;
			struct spool_entry *nv = realloc(l->v, nc * sizeof(*nv));
			if (!nv) {
				rc = -1;
				break;
			}
			l->v = nv;
			l->cap = nc;
		}
		char *name = util_strdup(de->d_name);
		if (!name) {
			rc = -1;
			break;
		}
		struct spool_entry *e = &l->v[l->n++];

		*e = (struct spool_entry){ .name = name, .state = st, .size = sb.st_size,
					   .mtime = sb.st_mtime };
		spool_name_order(name, e->order);
	}
	closedir(dir);
	return rc;
}

int spool_list(struct spool *s, int with_failed, size_t max, struct spool_entry **out,
	       size_t *n)
{
	struct spool_listing l = { .v = NULL, .n = 0, .cap = 0, .max = max };
	int rc = spool_scan(maildir_dest_fd(s->md), SPOOL_WAITING, &l);
	if (rc == 0 && with_failed)
		rc = spool_scan(s->failed_fd, SPOOL_FAILED, &l);
	if (rc < 0) {
		spool_list_free(l.v, l.n);
		return -1;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), spool_entry_cmp);
	*out = l.v;
	*n = l.n;
	return 0;
}

void spool_list_free(struct spool_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

int spool_read(struct spool *s, const struct spool_entry *e, size_t max_bytes, char **data,
	       size_t *len)
{
	int dfd = e->state == SPOOL_FAILED ? s->failed_fd : maildir_dest_fd(s->md);
	int fd = openat(dfd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	struct strbuf b;
	strbuf_init(&b, max_bytes);
	char buf[8192];
	ssize_t r;
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (strbuf_append(&b, buf, (size_t)r) < 0) {
			errno = b.oom ? ENOMEM : EFBIG;
			r = -1;
			break;
		}
	}
	int e2 = errno;
	close(fd);
	if (r < 0) {
		strbuf_free(&b);
		errno = e2;
		return -1;
	}
	*len = b.len;
	*data = strbuf_take(&b);
	return *data ? 0 : -1;
}

int spool_done(struct spool *s, const char *name)
{
	int dfd = maildir_dest_fd(s->md);
	if (unlinkat(dfd, name, 0) < 0)
		return -1;
	return fsync(dfd);
}

int spool_fail(struct spool *s, const char *name)
{
	int dfd = maildir_dest_fd(s->md);
	if (renameat(dfd, name, s->failed_fd, name) < 0)
		return -1;
	fsync(s->failed_fd);
	return fsync(dfd);
}
