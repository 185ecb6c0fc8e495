/*
 * imap.c - IMAP APPEND of spooled drafts with the \Draft flag (libetpan), by a background worker
 *
 * Debian 12's libcurl cannot set flags on APPEND, so this uses libetpan's mailimap. Everything
 * network-bound runs in the worker thread: the milter threads only write the spool (spool.c)
 * and kick the worker, so a dead server can never hold a message.
 *
 * OWNERSHIP  See imap.h.
 * DIAGNOSTICS  The worker logs connection trouble (first failure, then every 10th) and every
 *              draft moved to failed/; functions return -1 with a malloc'd *err.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libetpan/libetpan.h>

#include "imap.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#define IMAP_MAX_DRAFT_BYTES (16u * 1024 * 1024)
#define IMAP_MAX_BACKOFF_S 300
#define IMAP_BATCH 256

static void imap_seterr(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void imap_seterr(char **err, const char *fmt, ...)
{
	if (!err)
		return;
	free(*err);
	struct strbuf b;
	strbuf_init(&b, 1024);
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	*err = strbuf_take(&b);
}

int imap_url_parse(const char *url, char **host, unsigned short *port, enum imap_tls *tls,
		   char **err)
{
	const char *p;
	if (util_ascii_casestarts(url, "imaps://")) {
		*tls = IMAP_TLS_IMPLICIT;
		*port = 993;
		p = url + 8;
	} else if (util_ascii_casestarts(url, "imap://")) {
		*tls = IMAP_TLS_STARTTLS;
		*port = 143;
		p = url + 7;
	} else {
		imap_seterr(err, "imap_url must start with imap:// or imaps://");
		return -1;
	}
	const char *h = p, *he;
	if (*p == '[') {
		h = p + 1;
		he = strchr(h, ']');
		if (!he) {
			imap_seterr(err, "imap_url: unterminated [ipv6] host");
			return -1;
		}
		p = he + 1;
	} else {
		he = p + strcspn(p, ":/");
		p = he;
	}
	if (he == h || he - h > 255) {
		imap_seterr(err, "imap_url: missing host");
		return -1;
	}
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (end == p + 1 || v < 1 || v > 65535 || (*end && strcmp(end, "/") != 0)) {
			imap_seterr(err, "imap_url: bad port");
			return -1;
		}
		*port = (unsigned short)v;
	} else if (*p && strcmp(p, "/") != 0) {
		imap_seterr(err, "imap_url: unexpected '%s' (mailbox goes in imap_mailbox)", p);
		return -1;
	}
	*host = util_strndup(h, (size_t)(he - h));
	return *host ? 0 : -1;
}

int imap_password_read(const char *path, char **password, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		imap_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		imap_seterr(err, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		imap_seterr(err, "%s: refusing a password file that group or others can access "
			    "(chmod 600)", path);
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		imap_seterr(err, "%s: password file must be owned by the daemon's user or root", path);
		close(fd);
		return -1;
	}
	char buf[1025];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		imap_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		imap_seterr(err, "%s: empty password file", path);
		return -1;
	}
	*password = util_strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *password ? 0 : -1;
}

void imap_target_free(struct imap_target *t)
{
	if (!t)
		return;
	free(t->host);
	free(t->user);
	free(t->password_file);
	free(t->mailbox);
	memset(t, 0, sizeof(*t));
}

/* A mailbox name we can send as an IMAP astring without quoting trouble. */
static bool imap_mailbox_ok(const char *m)
{
	if (!m || !*m || strlen(m) > 200)
		return false;
	for (const char *p = m; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' ||
		    *p == '\\' || *p == '{')
			return false;
	return true;
}

int imap_target_load(const struct config *cfg, struct imap_target *t, char **err)
{
	memset(t, 0, sizeof(*t));
	const struct config_drafts *d = &cfg->drafts;
	if (!d->imap_url || imap_url_parse(d->imap_url, &t->host, &t->port, &t->tls, err) < 0)
		goto fail;
	if (!imap_mailbox_ok(d->imap_mailbox)) {
		imap_seterr(err, "imap_mailbox must be a plain ASCII mailbox name");
		goto fail;
	}
	t->user = util_strdup(d->imap_user ? d->imap_user : "");
	t->password_file = config_path(cfg, d->imap_password_file ? d->imap_password_file : "");
	t->mailbox = util_strdup(d->imap_mailbox);
	t->timeout_s = 20;
	t->retry_s = d->imap_retry_s > 0 ? d->imap_retry_s : 30;
	if (!t->user || !t->password_file || !t->mailbox) {
		imap_seterr(err, "out of memory");
		goto fail;
	}
	/* check the password file now, so a bad mode is a start-up error, not a silent retry loop */
	char *pw = NULL;
	if (imap_password_read(t->password_file, &pw, err) < 0)
		goto fail;
	explicit_bzero(pw, strlen(pw));
	free(pw);
	return 0;
fail:
	imap_target_free(t);
	return -1;
}

/* ---- one connection ---------------------------------------------------------------------- */

struct imap_conn {
	mailimap *imap;
	const struct imap_target *t;
	bool created;     /* CREATE already tried on this connection */
};

static bool imap_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0;
}

static const char *imap_server_text(mailimap *imap)
{
	return imap && imap->imap_response ? imap->imap_response : "";
}

struct imap_conn *imap_connect(const struct imap_target *t, char **err)
{
	struct imap_conn *c = calloc(1, sizeof(*c));
	char *pw = NULL;
	if (!c)
		return NULL;
	c->t = t;
	c->imap = mailimap_new(0, NULL);
	if (!c->imap)
		goto fail;
	mailimap_set_timeout(c->imap, t->timeout_s);
	int r = t->tls == IMAP_TLS_IMPLICIT ? mailimap_ssl_connect(c->imap, t->host, t->port)
					    : mailimap_socket_connect(c->imap, t->host, t->port);
	if (r != MAILIMAP_NO_ERROR && r != MAILIMAP_NO_ERROR_AUTHENTICATED &&
	    r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
		imap_seterr(err, "connect %s:%u: libetpan error %d", t->host, t->port, r);
		goto fail;
	}
	if (t->tls == IMAP_TLS_STARTTLS) {
		struct mailimap_capability_data *cap = NULL;
		if (mailimap_capability(c->imap, &cap) == MAILIMAP_NO_ERROR && cap)
			mailimap_capability_data_free(cap);
		if (mailimap_has_extension(c->imap, "STARTTLS")) {
			r = mailimap_socket_starttls(c->imap);
			if (r != MAILIMAP_NO_ERROR) {
				imap_seterr(err, "STARTTLS with %s failed (%d)", t->host, r);
				goto fail;
			}
		} else if (!imap_is_loopback(t->host)) {
			imap_seterr(err, "%s offers no STARTTLS: refusing to send the password in clear "
				    "(use imaps://)", t->host);
			goto fail;
		}
	}
	if (imap_password_read(t->password_file, &pw, err) < 0)
		goto fail;
	r = mailimap_login(c->imap, t->user, pw);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (r != MAILIMAP_NO_ERROR) {
		imap_seterr(err, "login as %s at %s refused (%d): %.200s", t->user, t->host, r,
			    imap_server_text(c->imap));
		goto fail;
	}
	return c;
fail:
	imap_disconnect(c);
	return NULL;
}

void imap_disconnect(struct imap_conn *c)
{
	if (!c)
		return;
	if (c->imap) {
		if (c->imap->imap_stream)
			mailimap_logout(c->imap);
		mailimap_free(c->imap);
	}
	free(c);
}

enum imap_result imap_append(struct imap_conn *c, const char *data, size_t len, char **err)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
		struct mailimap_flag *draft = mailimap_flag_new_draft();
		if (!fl || !draft || mailimap_flag_list_add(fl, draft) != MAILIMAP_NO_ERROR) {
			if (draft)
				mailimap_flag_free(draft);
			if (fl)
				mailimap_flag_list_free(fl);
			imap_seterr(err, "out of memory");
			return IMAP_TEMPFAIL;
		}
		int r = mailimap_append(c->imap, c->t->mailbox, fl, NULL, data, len);
		mailimap_flag_list_free(fl);
		if (r == MAILIMAP_NO_ERROR)
			return IMAP_OK;
		if (r != MAILIMAP_ERROR_APPEND) {
			imap_seterr(err, "APPEND to %s: connection error %d", c->t->host, r);
			return IMAP_TEMPFAIL;
		}
		imap_seterr(err, "APPEND to %s refused: %.200s", c->t->mailbox,
			    imap_server_text(c->imap));
		/* most often the mailbox does not exist yet ([TRYCREATE]): create it once */
		if (c->created)
			break;
		c->created = true;
		mailimap_create(c->imap, c->t->mailbox);
	}
	return IMAP_REJECTED;
}

/* ---- the worker -------------------------------------------------------------------------- */

struct imap_reject {
	char name[256];
	int count;
};

struct imap_worker {
	struct imap_target t;
	struct spool *sp;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, kicked;
	unsigned failures;              /* consecutive connection failures */
	struct imap_reject rejects[16]; /* recent refusals per draft */
};

/* Count a refusal for name; returns the new count. */
static int imap_reject_count(struct imap_worker *w, const char *name)
{
	size_t free_slot = 0, oldest = 0;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(w->rejects); i++) {
		if (strcmp(w->rejects[i].name, name) == 0)
			return ++w->rejects[i].count;
		if (!w->rejects[i].name[0])
			free_slot = i;
		if (w->rejects[i].count < w->rejects[oldest].count)
			oldest = i;
	}
	size_t k = w->rejects[free_slot].name[0] ? oldest : free_slot;
	snprintf(w->rejects[k].name, sizeof(w->rejects[k].name), "%s", name);
	w->rejects[k].count = 1;
	return 1;
}

static void imap_reject_forget(struct imap_worker *w, const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(w->rejects); i++)
		if (strcmp(w->rejects[i].name, name) == 0)
			w->rejects[i] = (struct imap_reject){ "", 0 };
}

/* Send what is spooled. Returns -1 when the server is down, 0 when the spool is empty, 1 when
 * another full batch may be waiting (go again now), 2 when refused drafts wait for a retry. */
static int imap_worker_pass(struct imap_worker *w)
{
	struct spool_entry *v = NULL;
	size_t n = 0;
	if (spool_list(w->sp, 0, IMAP_BATCH, &v, &n) < 0) {
		log_warn_errno("imap: cannot list spool %s", spool_path(w->sp));
		return -1;
	}
	if (n == 0)
		return 0;
	char *err = NULL;
	struct imap_conn *c = imap_connect(&w->t, &err);
	if (!c) {
		if (w->failures % 10 == 0)
			log_warn("imap: %s; %zu draft(s) stay spooled, retrying", err, n);
		free(err);
		spool_list_free(v, n);
		return -1;
	}
	int left = 0;
	for (size_t i = 0; i < n; i++) {
		char *data = NULL;
		size_t len = 0;
		if (spool_read(w->sp, &v[i], IMAP_MAX_DRAFT_BYTES, &data, &len) < 0) {
			if (errno != ENOENT)
				log_warn_errno("imap: cannot read spooled draft %s", v[i].name);
			continue;
		}
		enum imap_result r = imap_append(c, data, len, &err);
		free(data);
		if (r == IMAP_OK) {
			if (spool_done(w->sp, v[i].name) < 0)
				log_warn_errno("imap: appended %s but cannot remove it", v[i].name);
			else
				log_info("imap: draft %s appended to %s", v[i].name, w->t.mailbox);
			stats_inc(STATS_DRAFTS_WRITTEN);
			imap_reject_forget(w, v[i].name);
		} else if (r == IMAP_REJECTED &&
			   imap_reject_count(w, v[i].name) >= IMAP_MAX_REJECTS) {
			log_err("imap: %s; draft %s moved to %s/failed", err, v[i].name,
				spool_path(w->sp));
			stats_inc(STATS_DRAFTS_FAILED);
			if (spool_fail(w->sp, v[i].name) < 0)
				log_err_errno("imap: cannot move %s to failed/", v[i].name);
			imap_reject_forget(w, v[i].name);
		} else {
			log_warn("imap: %s; draft %s stays spooled", err, v[i].name);
			left++;
			if (r == IMAP_TEMPFAIL) {
				left = -1;
				break;
			}
		}
		free(err);
		err = NULL;
	}
	free(err);
	imap_disconnect(c);
	spool_list_free(v, n);
	if (left < 0)
		return -1;
	return n == IMAP_BATCH ? 1 : (left > 0 ? 2 : 0);
}

static void *imap_worker_main(void *arg)
{
	struct imap_worker *w = arg;
	/* a server that drops the connection must give EPIPE here, not kill the daemon */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		w->kicked = false;
		pthread_mutex_unlock(&w->mu);
		int r = imap_worker_pass(w);
		pthread_mutex_lock(&w->mu);
		long wait_s;
		if (r < 0) {
			w->failures++;
			wait_s = w->t.retry_s;
			for (unsigned i = 1; i < w->failures && wait_s < IMAP_MAX_BACKOFF_S; i++)
				wait_s *= 2;
			if (wait_s > IMAP_MAX_BACKOFF_S)
				wait_s = IMAP_MAX_BACKOFF_S;
		} else {
			if (w->failures)
				log_info("imap: server %s reachable again", w->t.host);
			w->failures = 0;
			/* refused drafts wait a retry interval; otherwise sleep until kicked (the
			 * hourly pass also picks up drafts another process spooled) */
			wait_s = r == 1 ? 0 : r == 2 ? w->t.retry_s : 3600;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait_s;
		while (!w->stop && !w->kicked && wait_s > 0)
			if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
				break;
		/* a kick during backoff is a new draft, not a sign the server is back: keep
		 * the backoff length, but do try once now */
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct imap_worker *imap_worker_start(const struct config *cfg, struct spool *sp, char **err)
{
	struct imap_worker *w = calloc(1, sizeof(*w));
	if (!w) {
		imap_seterr(err, "out of memory");
		return NULL;
	}
	if (imap_target_load(cfg, &w->t, err) < 0) {
		free(w);
		return NULL;
	}
	w->sp = sp;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	/* libetpan and TLS need more than the milter's small stacks */
	pthread_attr_setstacksize(&attr, 1024 * 1024);
	int rc = pthread_create(&w->thread, &attr, imap_worker_main, w);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		imap_seterr(err, "cannot start the IMAP worker: %s", strerror(rc));
		imap_target_free(&w->t);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return NULL;
	}
	return w;
}

void imap_worker_kick(struct imap_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->kicked = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void imap_worker_stop(struct imap_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	imap_target_free(&w->t);
	free(w);
}
