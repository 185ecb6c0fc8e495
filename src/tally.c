/*
 * tally.c - the tally interface: spec parsing, sender keys, per-thread connections, dispatch
 *
 * "sqlite:/path/tally.db", "redis:host:port", "redis:[v6addr]:port" or "redis:unix:/path" picks
 * a backend (tally_sqlite.c, tally_redis.c) behind a table of functions. One struct tally is
 * shared by every milter thread; a call that needs a connection checks one out of the tally's
 * pool (at most the backend's max_conns open, TALLY_POOL_MAX idle, each closed once unused
 * for more than TALLY_POOL_IDLE_S, at the next call of the tally) and gives it back, so a
 * thread never shares a connection while it uses it, and connections outlive the per-session
 * libmilter threads. The pool mutex is held
 * only to push, pop or wait for a free connection, never during an operation.
 *
 * OWNERSHIP  tally_open() returns a handle for tally_close(); count, history and top arrays are
 *            malloc'd for the caller and released with the matching *_free function.
 * DIAGNOSTICS  hard errors (bad spec, unusable database) come back from tally_open() in *err;
 *              per-call failures return -1 with a short reason in tally_error() (per thread).
 */
#include "tally_int.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "stats.h"
#include "util.h"


static atomic_uint_fast64_t tally_next_id = 1;
static _Thread_local char tally_errbuf[256];

/* ---- errors --------------------------------------------------------------------------------- */

void tally_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* A truncated reason is still a reason: the result is deliberately not checked. */
	(void)vsnprintf(tally_errbuf, sizeof(tally_errbuf), fmt, ap);
	va_end(ap);
}

const char *tally_error(void)
{
	return tally_errbuf[0] ? tally_errbuf : "no error";
}

/* ---- the connection pool ------------------------------------------------------------------ */

/* Every call that needs a connection checks one out of the tally's pool and gives it back, so
 * a connection (and its prepared statements, page cache and schema) outlives the libmilter
 * thread of one SMTP session. Still one thread at a time per connection: it is off the pool
 * while in use. A backend may bound how many exist (max_conns): each costs memory (SQLite:
 * ~200 KiB of statements, lookaside and schema, plus its page cache), and with a connection
 * per concurrent call 64 sessions kept 64 of them, a quarter of the daemon's heap, whose
 * pages the malloc arenas of 64 threads then held on to. */

static long long pool_now_s(void)
{
	return util_now_us() / 1000000;   /* monotonic: a test clock or a clock step cannot age it */
}

/* pool_take_stale - with the pool lock held: move the idle connections unused for more than
 * TALLY_POOL_IDLE_S to stale and return how many. A connection is given back on top of the
 * stack, so the stack is in the order they were given back and the stale ones are its bottom
 * entries; the younger ones move down. (Before, the whole stack went only once its top was
 * stale: a pool that a light load kept using at its top kept the rest of a burst's connections
 * for ever.) They still count as open until pool_close_stale has closed them, so that new ones
 * opened by other threads meanwhile never make more than max_conns exist at once. */
static size_t pool_take_stale(struct tally *t, void *stale[TALLY_POOL_MAX])
{
	long long now = pool_now_s();
	size_t n = 0, keep;

	while (n < t->n_idle && now - t->idle_since[n] > TALLY_POOL_IDLE_S)
		n++;
	if (n == 0)
		return 0;
	keep = t->n_idle - n;
	memcpy(stale, t->idle, n * sizeof(stale[0]));
	memmove(t->idle, t->idle + n, keep * sizeof(t->idle[0]));
	memmove(t->idle_since, t->idle_since + n, keep * sizeof(t->idle_since[0]));
	t->n_idle = keep;
	return n;
}

/* pool_close_stale - with the pool lock held: close what pool_take_stale took, outside the
 * lock (closing a connection may take a while); the lock is held again on return. */
static void pool_close_stale(struct tally *t, void *stale[], size_t n)
{
	pthread_mutex_unlock(&t->pool_lock);
	for (size_t i = 0; i < n; i++) {
		t->be->conn_free(stale[i]);
		stats_tally_pool(-1);
	}
	pthread_mutex_lock(&t->pool_lock);
	t->n_open -= n;
	pthread_cond_broadcast(&t->pool_freed);
}

/* pool_reap - close the stale idle connections on any call, also one that takes no connection
 * (checked at most once a second per tally). SQLite's records and claims go to its writer, not
 * through the pool: only drafts read through it, so the readers a burst opened stayed open
 * until the next draft, however long that was. */
static void pool_reap(struct tally *t)
{
	long long now = pool_now_s(), due = atomic_load_explicit(&t->reap_due, memory_order_relaxed);
	void *stale[TALLY_POOL_MAX];
	size_t n;

	if (now < due || !atomic_compare_exchange_strong(&t->reap_due, &due, now + 1))
		return;
	pthread_mutex_lock(&t->pool_lock);
	n = pool_take_stale(t, stale);
	if (n > 0)
		pool_close_stale(t, stale, n);
	pthread_mutex_unlock(&t->pool_lock);
}

/* pool_closed - a connection that existed is gone (freed, or its open failed) */
static void pool_closed(struct tally *t)
{
	pthread_mutex_lock(&t->pool_lock);
	t->n_open--;
	pthread_cond_signal(&t->pool_freed);
	pthread_mutex_unlock(&t->pool_lock);
}

/* pool_get - an idle connection, or a new one while fewer than max_conns exist, else one given
 * back within TALLY_POOL_WAIT_MS; NULL with the reason set */
static void *pool_get(struct tally *t)
{
	size_t max = t->be->max_conns ? t->be->max_conns : SIZE_MAX;
	void *conn = NULL;
	struct timespec until;
	void *stale[TALLY_POOL_MAX];
	size_t n_stale;
	bool waited = false, make = false;

	/* one lock for the common case: the staleness check shares it with the checkout */
	pthread_mutex_lock(&t->pool_lock);
	n_stale = pool_take_stale(t, stale);
	if (n_stale > 0)
		pool_close_stale(t, stale, n_stale);
	for (;;) {
		if (t->n_idle > 0) {
			conn = t->idle[--t->n_idle];
			break;
		}
		if (t->n_open < max) {
			t->n_open++;
			make = true;
			break;
		}
		/* all in use: wait for one to come back, TALLY_POOL_WAIT_MS in all (the deadline is
		 * read only here, off the common path); an error ends the wait like the deadline */
		if (!waited)
			until = util_deadline_ms(TALLY_POOL_WAIT_MS);
		waited = true;
		if (pthread_cond_timedwait(&t->pool_freed, &t->pool_lock, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&t->pool_lock);
	if (make) {
		conn = t->be->conn_new(t);
		if (!conn)
			pool_closed(t);
		else
			stats_tally_pool(1);
	} else if (!conn) {
		tally_set_error("busy: all %zu connections in use for %d ms", max,
				TALLY_POOL_WAIT_MS);
	}
	return conn;
}

/* pool_put - give conn back after a call that returned rc; returns rc. A connection whose call
 * failed for another reason than contention ("busy: ...", the backends' documented prefix) is
 * closed instead: the next call opens a fresh one (the file may be gone, the connection in an
 * error state). A busy one is fine, and reopening costs more than the call (the open, the
 * schema read and the statements prepared again). */
static int pool_put(struct tally *t, void *conn, int rc)
{
	if (rc >= 0 || strncmp(tally_errbuf, "busy:", 5) == 0) {
		pthread_mutex_lock(&t->pool_lock);
		if (t->n_idle < TALLY_POOL_MAX) {
			t->idle_since[t->n_idle] = pool_now_s();
			t->idle[t->n_idle++] = conn;
			conn = NULL;
			pthread_cond_signal(&t->pool_freed);
		}
		pthread_mutex_unlock(&t->pool_lock);
	}
	if (conn) {
		t->be->conn_free(conn);
		stats_tally_pool(-1);
		pool_closed(t);
	}
	return rc;
}

void *tally_lease_conn(struct tally_lease *l)
{
	if (!l->conn)
		l->conn = pool_get(l->t);
	return l->conn;
}

/* lease_end - give back what the call took; returns rc */
static int lease_end(struct tally_lease *l, int rc)
{
	if (l->conn)
		pool_put(l->t, l->conn, rc);
	l->conn = NULL;
	return rc;
}

/* pool_init - the pool's lock and condition; 0 or -1 */
static int pool_init(struct tally *t)
{
	atomic_init(&t->reap_due, 0);
	if (pthread_mutex_init(&t->pool_lock, NULL) != 0)
		return -1;
	if (pthread_cond_init(&t->pool_freed, NULL) != 0) {
		pthread_mutex_destroy(&t->pool_lock);
		return -1;
	}
	return 0;
}

static void pool_destroy(struct tally *t)
{
	pthread_cond_destroy(&t->pool_freed);
	pthread_mutex_destroy(&t->pool_lock);
}

/* pool_drain - close every idle connection (tally_close: nobody uses the tally any more) */
static void pool_drain(struct tally *t)
{
	pthread_mutex_lock(&t->pool_lock);
	for (size_t i = 0; i < t->n_idle; i++) {
		t->be->conn_free(t->idle[i]);
		stats_tally_pool(-1);
	}
	t->n_open -= t->n_idle;
	t->n_idle = 0;
	pthread_mutex_unlock(&t->pool_lock);
}

/* Connections are no longer per thread; kept for callers written against the old contract. */
void tally_thread_cleanup(void)
{
}

/* ---- open / close --------------------------------------------------------------------------- */

static int clamp_int(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int settings_init(struct tally_settings *s, const struct config *cfg, char **err)
{
	const struct config_tally *c = &cfg->tally;

	s->window_s = (long long)(c->window_days > 0 ? c->window_days : 1) * 86400;
	s->retention_s = (long long)(c->retention_days > 0 ? c->retention_days : 1) * 86400;
	if (s->retention_s < s->window_s)
		s->retention_s = s->window_s;   /* pruning must never eat the counting window */
	s->dedupe_s = (long long)(cfg->policy.dedupe_days > 0 ? cfg->policy.dedupe_days : 0) * 86400;
	s->incidents = clamp_int(c->incidents, 0, 1000);
	/* R7.1: a busy database may hold a message at most a second. */
	s->busy_timeout_ms = clamp_int(c->busy_timeout_ms, 0, 1000);
	/* FULL (the default) makes every committed tally survive a power cut; NORMAL may lose the
	 * last transactions then (never corrupts); EXTRA also syncs the directory. */
	s->sync_durable = true;
	if (!c->sqlite_synchronous || !*c->sqlite_synchronous ||
	    strcasecmp(c->sqlite_synchronous, "full") == 0) {
		s->sync_pragma = "PRAGMA synchronous = FULL";
	} else if (strcasecmp(c->sqlite_synchronous, "normal") == 0) {
		s->sync_pragma = "PRAGMA synchronous = NORMAL";
		s->sync_durable = false;
	} else if (strcasecmp(c->sqlite_synchronous, "extra") == 0) {
		s->sync_pragma = "PRAGMA synchronous = EXTRA";
	} else {
		*err = util_strdup("tally: sqlite_synchronous must be full, extra or normal");
		return -1;
	}
	/* R7.2: at most a second per Redis call. */
	s->redis_timeout_ms = clamp_int(c->redis_timeout_ms, 1, 1000);
	s->redis_prefix = util_strdup(c->redis_prefix ? c->redis_prefix : "amends:");
	s->redis_password = util_strdup(c->redis_password ? c->redis_password : "");
	if (!s->redis_prefix || !s->redis_password) {
		*err = util_strdup("tally: out of memory");
		return -1;
	}
	return 0;
}

static void settings_free(struct tally_settings *s)
{
	free(s->redis_prefix);
	free(s->redis_password);
}

/* tally_new - parse the spec and settings; the store is not opened yet */
static struct tally *tally_new(const struct config *cfg, char **err)
{
	const char *spec = cfg->tally.store ? cfg->tally.store : "";
	struct tally *t;
	const char *where;

	*err = NULL;
	t = calloc(1, sizeof(*t));
	if (!t) {
		*err = util_strdup("tally: out of memory");
		return NULL;
	}
	if (strncmp(spec, "sqlite:", 7) == 0) {
		t->be = &tally_sqlite_backend;
		where = spec + 7;
	} else if (strncmp(spec, "redis:", 6) == 0) {
		t->be = &tally_redis_backend;
		where = spec + 6;
	} else if (strcmp(spec, "none") == 0) {
		*err = util_strdup("tally: store is \"none\" (tally disabled)");
		free(t);
		return NULL;
	} else {
		char buf[200];

		if (snprintf(buf, sizeof(buf), "tally: store \"%.120s\" is neither sqlite:PATH nor "
			     "redis:HOST:PORT / redis:unix:PATH", spec) < 0)
			buf[0] = '\0';
		*err = util_strdup(buf);
		free(t);
		return NULL;
	}
	t->id = atomic_fetch_add(&tally_next_id, 1);
	atomic_init(&t->ready, 0);
	t->where = util_strdup(where);
	if (!t->where || pthread_mutex_init(&t->open_lock, NULL) != 0) {
		free(t->where);
		free(t);
		*err = util_strdup("tally: out of memory");
		return NULL;
	}
	if (pool_init(t) < 0) {
		pthread_mutex_destroy(&t->open_lock);
		free(t->where);
		free(t);
		*err = util_strdup("tally: out of memory");
		return NULL;
	}
	if (settings_init(&t->set, cfg, err) < 0) {
		if (!*err)
			*err = util_strdup("tally: bad settings");
		settings_free(&t->set);
		pthread_mutex_destroy(&t->open_lock);
		pool_destroy(t);
		free(t->where);
		free(t);
		return NULL;
	}
	return t;
}

static void tally_free_unopened(struct tally *t)
{
	settings_free(&t->set);
	pthread_mutex_destroy(&t->open_lock);
	pool_destroy(t);
	free(t->where);
	free(t);
}

struct tally *tally_open(const struct config *cfg, char **err)
{
	struct tally *t = tally_new(cfg, err);

	if (!t)
		return NULL;
	if (t->be->open(t, t->where, err) < 0) {
		if (!*err)
			*err = util_strdup("tally: open failed");
		tally_free_unopened(t);
		return NULL;
	}
	atomic_store(&t->ready, 1);
	return t;
}

/* tally_try_open - open a store that could not be opened before; 0 when it is open */
static int tally_try_open(struct tally *t)
{
	char *err = NULL;
	int rc = 0;

	if (atomic_load(&t->ready))
		return 0;
	/* Retried on every call while broken: a failing open (read-only or full disk) costs well
	 * under a millisecond, and the first message after the fault clears is recorded. */
	pthread_mutex_lock(&t->open_lock);
	if (atomic_load(&t->ready)) {
		rc = 0;
	} else if (t->be->open(t, t->where, &err) < 0) {
		/* the reason for later messages; one cut at 255 bytes still says what failed */
		(void)snprintf(t->open_err, sizeof(t->open_err), "%s", err ? err : "open failed");
		tally_set_error("store not open: %s", t->open_err);
		rc = -1;
	} else {
		atomic_store(&t->ready, 1);
	}
	pthread_mutex_unlock(&t->open_lock);
	free(err);
	return rc;
}

struct tally *tally_open_retrying(const struct config *cfg, char **err)
{
	struct tally *t = tally_new(cfg, err);

	if (!t)
		return NULL;
	if (t->be->open(t, t->where, err) == 0) {
		atomic_store(&t->ready, 1);
		return t;
	}
	/* Soft: a read-only or full state dir must not keep mail from being answered and tagged;
	 * every call retries the open until the fault clears. */
	(void)snprintf(t->open_err, sizeof(t->open_err), "%s", *err ? *err : "open failed");
	return t;
}

void tally_close(struct tally *t)
{
	if (!t)
		return;
	pool_drain(t);
	if (atomic_load(&t->ready))
		t->be->close(t);
	tally_free_unopened(t);
}

const char *tally_backend_name(const struct tally *t)
{
	return t ? t->be->name : "none";
}

/* ---- sender keys ---------------------------------------------------------------------------- */

const char *tally_addr_bare(const char *addr, size_t *len)
{
	const char *b = addr, *e = addr + strlen(addr);

	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e - b >= 2 && *b == '<' && e[-1] == '>') {
		b++;
		e--;
	}
	*len = (size_t)(e - b);
	return b;
}

char *tally_sender_key(const struct config *cfg, const char *addr)
{
	const char *b;
	char *key, *at, *plus;
	size_t i, n;

	if (!addr)
		return NULL;
	b = tally_addr_bare(addr, &n);
	if (n == 0 || n > TALLY_SENDER_MAX)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)b[i];

		if (ch < 0x20 || ch == 0x7f)
			return NULL;
	}
	key = util_strndup(b, n);
	if (!key)
		return NULL;
	util_ascii_lower(key);
	at = strrchr(key, '@');
	if (at == key || (at && at[1] == '\0')) {
		free(key);          /* "@domain" or "user@": not an address */
		return NULL;
	}
	if (cfg && cfg->tally.strip_detail && at) {
		plus = memchr(key, '+', (size_t)(at - key));
		if (plus && plus > key)
			memmove(plus, at, strlen(at) + 1);
	}
	return key;
}

/* sender_ok - a key as tally_sender_key() makes it; anything else is a caller bug or forgery */
static int sender_ok(const char *sender)
{
	size_t n;

	if (!sender || !*sender) {
		tally_set_error("invalid sender");
		return 0;
	}
	n = strnlen(sender, TALLY_SENDER_MAX + 1);
	if (n > TALLY_SENDER_MAX) {
		tally_set_error("sender too long");
		return 0;
	}
	for (; *sender; sender++)
		if ((unsigned char)*sender < 0x20 || *sender == 0x7f) {
			tally_set_error("invalid sender");
			return 0;
		}
	return 1;
}

/* ---- helpers for the backends --------------------------------------------------------------- */

char *tally_field_copy(const char *s, size_t max)
{
	size_t n, outlen, i;
	char *clean, *p;

	if (!s)
		s = "";
	n = strnlen(s, max + 4);
	if (n == 0)
		return util_strdup("");
	clean = util_utf8_sanitize(s, n, &outlen);
	if (!clean)
		return NULL;
	clean[outlen] = '\0';   /* util_utf8_sanitize leaves room; be sure it is terminated */
	if (outlen > max) {
		/* back up to a character boundary so the copy stays valid UTF-8 */
		outlen = max;
		while (outlen > 0 && ((unsigned char)clean[outlen] & 0xC0) == 0x80)
			outlen--;
		clean[outlen] = '\0';
	}
	for (i = 0, p = clean; i < outlen; i++, p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return clean;
}

int tally_counts_push(struct tally_counts *out, const char *category, size_t len, int count,
		      time_t first, time_t last)
{
	struct tally_count *v;
	char *name;

	name = util_strndup(category, len);
	if (!name)
		return -1;
	v = realloc(out->v, (out->n + 1) * sizeof(*v));
	if (!v) {
		free(name);
		return -1;
	}
	out->v = v;
	v[out->n].category = name;
	v[out->n].count = count;
	v[out->n].first_seen = first;
	v[out->n].last_seen = last;
	out->n++;
	return 0;
}

char *tally_event_categories(const struct tally_event *ev)
{
	struct strbuf b;
	size_t i;

	strbuf_init(&b, 0);
	for (i = 0; i < ev->n_categories; i++) {
		if (i)
			strbuf_putc(&b, ',');
		strbuf_append(&b, ev->categories[i], strnlen(ev->categories[i], TALLY_CATEGORY_MAX));
	}
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	return strbuf_take(&b);
}

int tally_incident_fields(const struct tally_event *ev, struct tally_fields *f)
{
	f->message_id = tally_field_copy(ev->message_id, TALLY_FIELD_MAX);
	f->subject = tally_field_copy(ev->subject, TALLY_FIELD_MAX);
	f->rules = tally_field_copy(ev->rules, TALLY_RULES_MAX);
	f->categories = tally_event_categories(ev);
	if (f->message_id && f->subject && f->rules && f->categories)
		return 0;
	tally_incident_fields_free(f);
	tally_set_error("out of memory");
	return -1;
}

void tally_incident_fields_free(struct tally_fields *f)
{
	free(f->message_id);
	free(f->subject);
	free(f->rules);
	free(f->categories);
	memset(f, 0, sizeof(*f));
}

/* event_ok - categories are names from the config: bounded, printable, no separators */
static int event_ok(const struct tally_event *ev)
{
	size_t i;
	const char *c;

	if (!ev || (ev->n_categories && !ev->categories)) {
		tally_set_error("invalid event");
		return 0;
	}
	for (i = 0; i < ev->n_categories; i++) {
		c = ev->categories[i];
		if (!c || !*c || strnlen(c, TALLY_CATEGORY_MAX + 1) > TALLY_CATEGORY_MAX) {
			tally_set_error("invalid category");
			return 0;
		}
		for (; *c; c++)
			if ((unsigned char)*c <= 0x20 || *c == ',' || *c == 0x7f) {
				tally_set_error("invalid category");
				return 0;
			}
	}
	return 1;
}

/* ---- the interface -------------------------------------------------------------------------- */

/* lease_begin - clear the last error, open the store if it is not yet, start the call's lease
 * on t (no connection yet: the backend takes one if it needs one); 0, or -1 with the reason
 * set. Every call that began one ends it with lease_end(). */
static int lease_begin(struct tally *t, struct tally_lease *l)
{
	tally_errbuf[0] = '\0';
	l->t = t;
	l->conn = NULL;
	if (!t) {
		tally_set_error("no tally");
		return -1;
	}
	if (tally_try_open(t) < 0)
		return -1;
	pool_reap(t);
	return 0;
}

int tally_record(struct tally *t, const char *sender, const struct tally_event *ev,
		 struct tally_counts *after)
{
	struct tally_counts tmp = { 0 };
	struct tally_lease l;
	int rc;

	if (after)
		memset(after, 0, sizeof(*after));
	if (!sender_ok(sender) || !event_ok(ev))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	rc = lease_end(&l, t->be->record(t, &l, sender, ev, after ? after : &tmp));
	tally_counts_free(&tmp);
	if (rc < 0 && after)
		tally_counts_free(after);
	return rc;
}

int tally_counts(struct tally *t, const char *sender, time_t now, struct tally_counts *out)
{
	int rc;
	struct tally_lease l;

	memset(out, 0, sizeof(*out));
	if (!sender_ok(sender))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	rc = lease_end(&l, t->be->counts(t, &l, sender, now, out));
	if (rc < 0)
		tally_counts_free(out);
	return rc;
}

int tally_count_of(const struct tally_counts *c, const char *category)
{
	size_t i;

	if (!c || !category)
		return 0;
	for (i = 0; i < c->n; i++)
		if (strcmp(c->v[i].category, category) == 0)
			return c->v[i].count;
	return 0;
}

void tally_counts_free(struct tally_counts *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		free(c->v[i].category);
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

int tally_seen(struct tally *t, const char *sender, time_t *first, time_t *last)
{
	struct tally_lease l;

	*first = *last = 0;
	if (!sender_ok(sender))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	return lease_end(&l, t->be->seen(t, &l, sender, first, last));
}

int tally_history(struct tally *t, const char *sender, size_t max, struct tally_history *out)
{
	int rc;
	struct tally_lease l;

	memset(out, 0, sizeof(*out));
	if (!sender_ok(sender))
		return -1;
	if (max > 1000)
		max = 1000;
	if (max == 0)
		return 0;
	if (lease_begin(t, &l) < 0)
		return -1;
	rc = lease_end(&l, t->be->history(t, &l, sender, max, out));
	if (rc < 0)
		tally_history_free(out);
	return rc;
}

void tally_history_free(struct tally_history *h)
{
	size_t i;

	if (!h)
		return;
	for (i = 0; i < h->n; i++) {
		free(h->v[i].message_id);
		free(h->v[i].subject);
		free(h->v[i].categories);
		free(h->v[i].rules);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

/* kind_ok - draft kinds are short names ("apology") */
static int kind_ok(const char *kind)
{
	if (!kind || !*kind || strnlen(kind, 33) > 32 || strpbrk(kind, ": \t\r\n")) {
		tally_set_error("invalid draft kind");
		return 0;
	}
	return 1;
}

int tally_draft_claim(struct tally *t, const char *sender, const char *kind, time_t now)
{
	struct tally_lease l;

	if (!sender_ok(sender) || !kind_ok(kind))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	return lease_end(&l, t->be->claim(t, &l, sender, kind, now));
}

int tally_draft_unclaim(struct tally *t, const char *sender, const char *kind, time_t when)
{
	struct tally_lease l;

	if (!sender_ok(sender) || !kind_ok(kind))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	return lease_end(&l, t->be->unclaim(t, &l, sender, kind, when));
}

int tally_top(struct tally *t, size_t n, struct tally_sender_summary **out, size_t *nout)
{
	int rc;
	struct tally_lease l;

	*out = NULL;
	*nout = 0;
	if (n > 10000)
		n = 10000;
	if (n == 0)
		return 0;
	if (lease_begin(t, &l) < 0)
		return -1;
	rc = lease_end(&l, t->be->top(t, &l, n, clock_now(), out, nout));
	if (rc < 0) {
		tally_top_free(*out, *nout);
		*out = NULL;
		*nout = 0;
	}
	return rc;
}

void tally_top_free(struct tally_sender_summary *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++)
		free(v[i].sender);
	free(v);
}

int tally_reset(struct tally *t, const char *sender)
{
	struct tally_lease l;

	if (!sender_ok(sender))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	return lease_end(&l, t->be->reset(t, &l, sender));
}

int tally_forget(struct tally *t, const char *sender)
{
	struct tally_lease l;

	if (!sender_ok(sender))
		return -1;
	if (lease_begin(t, &l) < 0)
		return -1;
	return lease_end(&l, t->be->forget(t, &l, sender));
}

int tally_prune(struct tally *t, time_t now)
{
	struct tally_lease l;

	if (lease_begin(t, &l) < 0)
		return -1;
	return lease_end(&l, t->be->prune(t, &l, now));
}
