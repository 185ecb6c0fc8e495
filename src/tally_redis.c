/*
 * tally_redis.c - the shared tally store for sites with several MX hosts (hiredis 0.14)
 *
 * Every update is one Lua script, sent with EVALSHA (EVAL when the server answers NOSCRIPT),
 * so it is atomic and costs one round trip. Layout, under the configured prefix P:
 *   P s:SENDER:e:CAT   sorted set of events scored by time (exact windowed counts: ZCOUNT)
 *   P s:SENDER:c       set of the categories the sender has
 *   P s:SENDER:i       list of incidents, newest first (LPUSH + LTRIM to N)
 *   P s:SENDER:m       hash: first, last (seen)
 *   P s:SENDER:d:KIND  time of the last draft claim of KIND; P s:SENDER:dk the claimed kinds
 *   P senders          sorted set: sender -> last seen (for top and pruning)
 *   P seq              counter that makes event members unique
 * Per-sender keys EXPIRE after the retention period. Times are the amends clock (clock.h),
 * never Redis's, so tests can move time; EXPIRE is only the garbage collector.
 * The scripts touch keys they build from KEYS[1], which is fine on a single server or a
 * replicated pair but not on Redis Cluster.
 *
 * Failure handling (R7.2): connect and command timeouts from the config (at most 1 s); after
 * any I/O error the context is freed (hiredis cannot reuse it) and a new one is made on the next
 * call; failures start a backoff shared by every thread (100 ms doubling to 60 s after timeouts,
 * to 1 s after refused connections, which cost nothing to retry) during which
 * calls fail at once without touching the network, so a dead or hung Redis costs a message at
 * most one timeout. Updates during an outage are dropped: the call returns -1, the caller counts
 * it and accepts the mail (no queue: a replayed tally could double-count after a partial write).
 *
 * Replies are decoded by the tally_redis_decode_* functions (tally_redis.h): a reply of the
 * wrong shape is an error, never a made-up count; hiredis's reader is guarded against a
 * reply that announces a huge array (tally_redis_reader_guard).
 *
 * OWNERSHIP  the shared state (address, script hashes, backoff) belongs to the tally; each
 *            thread's context belongs to its connection and is freed by conn_free().
 * DIAGNOSTICS  -1 with "redis down: ...", "redis timeout: ...", "redis error: ..." in tally_error().
 */
#include "tally_int.h"
#include "tally_redis.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "util.h"

#define RD_BACKOFF_MIN_MS 100
#define RD_BACKOFF_MAX_MS 60000
/* A refused or reset connection fails at once and costs nothing to retry, so it backs off only
 * to a second: updates resume within about a second of Redis coming back (R7.2). Timeouts,
 * which hold a message for the whole timeout, keep the long backoff. */
#define RD_BACKOFF_FAST_MAX_MS 1000
#define RD_TOP_SCAN 10000        /* senders examined by one "top" (an admin command) */
#define RD_PRUNE_BATCH 1000      /* senders removed by one prune call */
#define RD_SEP '\x1f'            /* field separator inside an incident */

/* ---- scripts -------------------------------------------------------------------------------- */

/* Counts of every category of base b since cut: {cat, n, first, last, ...} sorted by name. */
#define RD_LUA_COUNTS \
	"local out = {}\n" \
	"local cats = redis.call('SMEMBERS', b .. ':c')\n" \
	"table.sort(cats)\n" \
	"for _, c in ipairs(cats) do\n" \
	"  local k = b .. ':e:' .. c\n" \
	"  local n = redis.call('ZCOUNT', k, cut, '+inf')\n" \
	"  if n > 0 then\n" \
	"    local f = redis.call('ZRANGEBYSCORE', k, cut, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)\n" \
	"    local l = redis.call('ZREVRANGEBYSCORE', k, '+inf', cut, 'WITHSCORES', 'LIMIT', 0, 1)\n" \
	"    out[#out + 1] = c; out[#out + 1] = n; out[#out + 1] = f[2]; out[#out + 1] = l[2]\n" \
	"  end\n" \
	"end\n" \
	"return out\n"

/* Delete the events and incidents of base b; with all, the drafts and the sender too. */
#define RD_LUA_WIPE \
	"local function wipe(b, all)\n" \
	"  for _, c in ipairs(redis.call('SMEMBERS', b .. ':c')) do redis.call('DEL', b .. ':e:' .. c) end\n" \
	"  redis.call('DEL', b .. ':c', b .. ':i')\n" \
	"  if all then\n" \
	"    for _, d in ipairs(redis.call('SMEMBERS', b .. ':dk')) do redis.call('DEL', b .. ':d:' .. d) end\n" \
	"    redis.call('DEL', b .. ':dk', b .. ':m')\n" \
	"  end\n" \
	"end\n"

enum rd_script { RS_RECORD, RS_COUNTS, RS_CLAIM, RS_UNCLAIM, RS_RESET, RS_FORGET, RS_TOP, RS_PRUNE,
	RS_COUNT };

static const char *const rd_lua[RS_COUNT] = {
	/* KEYS: base, seq, senders. ARGV: now, cut, expire_s, keep, incident, sender,
	 * retention cut, categories... */
	[RS_RECORD] =
	"local b, now, cut, ex = KEYS[1], ARGV[1], ARGV[2], ARGV[3]\n"
	"local keep = tonumber(ARGV[4])\n"
	"if #ARGV >= 8 then\n"
	"  local seq = redis.call('INCR', KEYS[2])\n"
	"  for i = 8, #ARGV do\n"
	"    local k = b .. ':e:' .. ARGV[i]\n"
	"    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. cut)\n"
	"    redis.call('ZADD', k, now, now .. ':' .. seq)\n"
	"    redis.call('EXPIRE', k, ex)\n"
	"    redis.call('SADD', b .. ':c', ARGV[i])\n"
	"  end\n"
	"  redis.call('EXPIRE', b .. ':c', ex)\n"
	"  if keep > 0 then\n"
	"    redis.call('LPUSH', b .. ':i', ARGV[5])\n"
	"    redis.call('LTRIM', b .. ':i', 0, keep - 1)\n"
	"    redis.call('EXPIRE', b .. ':i', ex)\n"
	"  end\n"
	"  local m = b .. ':m'\n"
	"  local f = tonumber(redis.call('HGET', m, 'first'))\n"
	"  if not f or f > tonumber(now) then redis.call('HSET', m, 'first', now) end\n"
	"  local l = tonumber(redis.call('HGET', m, 'last'))\n"
	"  if not l or l < tonumber(now) then redis.call('HSET', m, 'last', now) end\n"
	"  redis.call('EXPIRE', m, ex)\n"
	"  local s = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[6]))\n"
	"  if not s or s < tonumber(now) then redis.call('ZADD', KEYS[3], now, ARGV[6]) end\n"
	"  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[7])\n"
	"end\n"
	RD_LUA_COUNTS,
	/* KEYS: base. ARGV: cut */
	[RS_COUNTS] =
	"local b, cut = KEYS[1], ARGV[1]\n"
	RD_LUA_COUNTS,
	/* KEYS: claim key, kinds set. ARGV: now, cut, expire_s, kind. Blocked by a claim > cut. */
	[RS_CLAIM] =
	"local v = tonumber(redis.call('GET', KEYS[1]))\n"
	"if v and v > tonumber(ARGV[2]) then return 0 end\n"
	"redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])\n"
	"redis.call('SADD', KEYS[2], ARGV[4])\n"
	"redis.call('EXPIRE', KEYS[2], ARGV[3])\n"
	"return 1\n",
	/* KEYS: claim key. ARGV: when */
	[RS_UNCLAIM] =
	"local v = tonumber(redis.call('GET', KEYS[1]))\n"
	"if v and v == tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end\n"
	"return 1\n",
	/* KEYS: base */
	[RS_RESET] =
	RD_LUA_WIPE
	"wipe(KEYS[1], false)\n"
	"return 1\n",
	/* KEYS: base, senders. ARGV: sender */
	[RS_FORGET] =
	RD_LUA_WIPE
	"wipe(KEYS[1], true)\n"
	"redis.call('ZREM', KEYS[2], ARGV[1])\n"
	"return 1\n",
	/* KEYS: senders. ARGV: sender key prefix, cut, n, scan limit -> {sender, total, last, ...} */
	[RS_TOP] =
	"local ss = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0,"
	"  tonumber(ARGV[4]))\n"
	"local rows = {}\n"
	"for i = 1, #ss, 2 do\n"
	"  local b, tot = ARGV[1] .. ss[i], 0\n"
	"  for _, c in ipairs(redis.call('SMEMBERS', b .. ':c')) do\n"
	"    tot = tot + redis.call('ZCOUNT', b .. ':e:' .. c, ARGV[2], '+inf')\n"
	"  end\n"
	"  if tot > 0 then rows[#rows + 1] = {ss[i], tot, tonumber(ss[i + 1])} end\n"
	"end\n"
	"table.sort(rows, function(x, y)\n"
	"  if x[2] ~= y[2] then return x[2] > y[2] end\n"
	"  if x[3] ~= y[3] then return x[3] > y[3] end\n"
	"  return x[1] < y[1] end)\n"
	"local out = {}\n"
	"for i = 1, math.min(#rows, tonumber(ARGV[3])) do\n"
	"  out[#out + 1] = rows[i][1]; out[#out + 1] = rows[i][2]; out[#out + 1] = rows[i][3]\n"
	"end\n"
	"return out\n",
	/* KEYS: senders. ARGV: sender key prefix, retention cut, batch */
	[RS_PRUNE] =
	RD_LUA_WIPE
	"local ss = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0,"
	"  tonumber(ARGV[3]))\n"
	"for _, s in ipairs(ss) do\n"
	"  wipe(ARGV[1] .. s, true)\n"
	"  redis.call('ZREM', KEYS[1], s)\n"
	"end\n"
	"return #ss\n",
};

/* ---- state ---------------------------------------------------------------------------------- */

struct rd_state {
	char *host;                     /* NULL for a unix socket */
	int port;
	char *unix_path;
	pthread_mutex_t lock;           /* guards everything below */
	long long down_until_ms;        /* monotonic; fail fast before this */
	long backoff_ms;                /* 0 = healthy */
	char sha[RS_COUNT][41];         /* "" until SCRIPT LOAD told us */
};

struct rd_conn {
	redisContext *c;
};

/* rd_args - an argv for redisCommandArgv, with the strings it had to build */
#define RD_ARGS_MAX (16 + CONFIG_MAX_CATEGORIES)
struct rd_args {
	const char *v[RD_ARGS_MAX];
	size_t len[RD_ARGS_MAX];
	char *owned[RD_ARGS_MAX];
	int n;
	bool oom;
};

static void rd_arg(struct rd_args *a, const char *s, size_t len)
{
	if (a->n >= RD_ARGS_MAX) {
		a->oom = true;
		return;
	}
	a->v[a->n] = s;
	a->len[a->n] = len;
	a->owned[a->n] = NULL;
	a->n++;
}

static void rd_arg_str(struct rd_args *a, const char *s)
{
	rd_arg(a, s, strlen(s));
}

/* rd_arg_take - add a malloc'd string (NULL = out of memory); freed by rd_args_free */
static void rd_arg_take(struct rd_args *a, char *s)
{
	if (!s || a->n >= RD_ARGS_MAX) {
		free(s);
		a->oom = true;
		return;
	}
	rd_arg_str(a, s);
	a->owned[a->n - 1] = s;
}

static void rd_arg_fmt(struct rd_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rd_arg_fmt(struct rd_args *a, const char *fmt, ...)
{
	struct strbuf b;
	va_list ap;

	strbuf_init(&b, 0);
	va_start(ap, fmt);
	strbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (b.oom) {
		strbuf_free(&b);
		rd_arg_take(a, NULL);
		return;
	}
	rd_arg_take(a, strbuf_take(&b));
}

static void rd_args_free(struct rd_args *a)
{
	int i;

	for (i = 0; i < a->n; i++)
		free(a->owned[i]);
	a->n = 0;
}

/* ---- connection and backoff ----------------------------------------------------------------- */

static void rd_mark_down_cap(struct rd_state *s, long cap_ms)
{
	pthread_mutex_lock(&s->lock);
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RD_BACKOFF_MIN_MS;
	if (s->backoff_ms > cap_ms)
		s->backoff_ms = cap_ms;
	s->down_until_ms = util_now_ms() + s->backoff_ms;
	pthread_mutex_unlock(&s->lock);
}

static void rd_mark_down(struct rd_state *s)
{
	rd_mark_down_cap(s, RD_BACKOFF_MAX_MS);
}

static void rd_mark_up(struct rd_state *s)
{
	pthread_mutex_lock(&s->lock);
	s->backoff_ms = 0;
	s->down_until_ms = 0;
	pthread_mutex_unlock(&s->lock);
}

/* rd_in_backoff - remaining backoff in ms, 0 when a call may touch the network */
static long long rd_in_backoff(struct rd_state *s)
{
	long long left;

	pthread_mutex_lock(&s->lock);
	left = s->down_until_ms - util_now_ms();
	pthread_mutex_unlock(&s->lock);
	return left > 0 ? left : 0;
}

static void rd_drop(struct rd_conn *rc)
{
	if (rc->c)
		redisFree(rc->c);
	rc->c = NULL;
}

/* rd_io_fail - an I/O error: the context is unusable; start or lengthen the backoff */
static int rd_io_fail(struct rd_state *s, struct rd_conn *rc, const char *what)
{
	const char *why = rc->c && rc->c->errstr[0] ? rc->c->errstr : "connection failed";
	bool timeout = rc->c && rc->c->err == REDIS_ERR_IO &&
		(strstr(why, "temporarily unavailable") || strstr(why, "timed out"));

	tally_set_error("redis %s: %s: %s", timeout ? "timeout" : "down", what, why);
	rd_drop(rc);
	rd_mark_down_cap(s, timeout ? RD_BACKOFF_MAX_MS : RD_BACKOFF_FAST_MAX_MS);
	return -1;
}

static struct timeval rd_tv(const struct tally *t)
{
	struct timeval tv;

	tv.tv_sec = t->set.redis_timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(t->set.redis_timeout_ms % 1000) * 1000;
	return tv;
}

/* rd_connect - make sure rc has a working context (or fail fast while backing off) */
static int rd_connect(struct tally *t, struct rd_conn *rc)
{
	struct rd_state *s = t->state;
	struct timeval tv = rd_tv(t);
	long long left;
	redisReply *r;

	left = rd_in_backoff(s);
	if (left > 0) {
		rd_drop(rc);   /* a context from before the outage is not trusted either */
		tally_set_error("redis down: backing off, next try in %lld ms", left);
		return -1;
	}
	if (rc->c)
		return 0;
	if (s->unix_path)
		rc->c = redisConnectUnixWithTimeout(s->unix_path, tv);
	else
		rc->c = redisConnectWithTimeout(s->host, s->port, tv);
	if (!rc->c || rc->c->err)
		return rd_io_fail(s, rc, "connect");
	tally_redis_reader_guard(rc->c->reader);
	if (redisSetTimeout(rc->c, tv) != REDIS_OK)
		return rd_io_fail(s, rc, "set timeout");
	/* R7.2: keepalive on every new TCP context (a dead peer is noticed between messages). */
	if (!s->unix_path && redisEnableKeepAlive(rc->c) != REDIS_OK)
		return rd_io_fail(s, rc, "keepalive");
	if (t->set.redis_password[0]) {
		r = redisCommand(rc->c, "AUTH %s", t->set.redis_password);
		if (!r)
			return rd_io_fail(s, rc, "auth");
		if (r->type == REDIS_REPLY_ERROR) {
			tally_set_error("redis error: auth: %.100s", r->str);
			freeReplyObject(r);
			rd_drop(rc);
			rd_mark_down(s);
			return -1;
		}
		freeReplyObject(r);
	}
	return 0;
}

/* rd_command - one command; the reply (never an error reply) in *out. 0, -1, or 1 = NOSCRIPT */
static int rd_command(struct tally *t, struct rd_conn *rc, struct rd_args *a, redisReply **out)
{
	struct rd_state *s = t->state;
	redisReply *r;

	*out = NULL;
	if (!rc)
		return -1;              /* no connection: tally_lease_conn() said why */
	if (a->oom) {
		tally_set_error("out of memory");
		return -1;
	}
	if (rd_connect(t, rc) < 0)
		return -1;
	r = redisCommandArgv(rc->c, a->n, a->v, a->len);
	if (!r)
		return rd_io_fail(s, rc, a->v[0]);
	switch (tally_redis_reply_status(r)) {
	case TALLY_REDIS_NOSCRIPT:
		freeReplyObject(r);
		return 1;
	case TALLY_REDIS_ERROR:
	case TALLY_REDIS_DOWN:
		tally_set_error("redis error: %s: %.200s", a->v[0], r->str);
		/* the hiredis rule: a fresh context after any error */
		rd_drop(rc);
		if (tally_redis_reply_status(r) == TALLY_REDIS_DOWN)
			rd_mark_down(s);
		freeReplyObject(r);
		return -1;
	case TALLY_REDIS_OK:
		break;
	}
	if (s->backoff_ms)   /* racy read is fine: rd_mark_up takes the lock */
		rd_mark_up(s);
	*out = r;
	return 0;
}

/* rd_sha - the script's SHA1, loading it once per process */
static int rd_sha(struct tally *t, struct rd_conn *rc, enum rd_script which, char sha[41])
{
	struct rd_state *s = t->state;
	struct rd_args a = { .n = 0 };
	redisReply *r;
	int rv;

	pthread_mutex_lock(&s->lock);
	memcpy(sha, s->sha[which], 41);
	pthread_mutex_unlock(&s->lock);
	if (sha[0])
		return 0;
	rd_arg_str(&a, "SCRIPT");
	rd_arg_str(&a, "LOAD");
	rd_arg_str(&a, rd_lua[which]);
	rv = rd_command(t, rc, &a, &r);
	rd_args_free(&a);
	if (rv != 0)
		return -1;
	rv = tally_redis_decode_sha(r, sha);
	freeReplyObject(r);
	if (rv < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	memcpy(s->sha[which], sha, 41);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* rd_eval - run a script: a->v[0..2] are reserved for EVALSHA sha numkeys */
static int rd_eval(struct tally *t, struct rd_conn *rc, enum rd_script which, struct rd_args *a,
		   redisReply **out)
{
	char sha[41];
	int rv;

	*out = NULL;
	if (!rc)
		return -1;              /* no connection: tally_lease_conn() said why */
	if (rd_sha(t, rc, which, sha) < 0)
		return -1;
	a->v[0] = "EVALSHA";
	a->len[0] = 7;
	a->v[1] = sha;
	a->len[1] = 40;
	rv = rd_command(t, rc, a, out);
	if (rv == 1) {
		/* The server lost its script cache (restart, SCRIPT FLUSH): EVAL loads it again. */
		a->v[0] = "EVAL";
		a->len[0] = 4;
		a->v[1] = rd_lua[which];
		a->len[1] = strlen(rd_lua[which]);
		rv = rd_command(t, rc, a, out);
		if (rv == 1) {
			tally_set_error("redis error: NOSCRIPT after EVAL");
			rv = -1;
		}
	}
	/* sha is ours and ends here: a must not keep pointing at it */
	a->v[1] = "";
	a->len[1] = 0;
	return rv;
}

/* rd_args_script - start an argv for a script with nkeys keys */
static void rd_args_script(struct rd_args *a, int nkeys)
{
	a->n = 0;
	a->oom = false;
	rd_arg_str(a, "EVALSHA");
	rd_arg_str(a, "");
	rd_arg_fmt(a, "%d", nkeys);
}

static char *rd_key(const struct tally *t, const char *sender, const char *suffix)
{
	struct strbuf b;

	strbuf_init(&b, 0);
	strbuf_printf(&b, "%ss:%s%s", t->set.redis_prefix, sender, suffix);
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	return strbuf_take(&b);
}

/* ---- reply decoding (tally_redis.h) --------------------------------------------------------- */

static const redisReplyObjectFunctions *rd_hiredis_fn;   /* hiredis's own, from its first reader */
static redisReplyObjectFunctions rd_guarded_fn;
static pthread_once_t rd_guard_once = PTHREAD_ONCE_INIT;

static void *rd_create_array(const redisReadTask *task, int elements)
{
	if (elements > TALLY_REDIS_ARRAY_MAX)
		return NULL;   /* hiredis reports "Out of memory" and the reply fails */
	return rd_hiredis_fn->createArray(task, elements);
}

static void rd_guard_init(void)
{
	redisReader *r = redisReaderCreate();

	/* every reader of hiredis 0.14 starts with the same static table: borrow it */
	if (!r)
		return;
	rd_hiredis_fn = r->fn;
	redisReaderFree(r);
	if (rd_hiredis_fn) {
		rd_guarded_fn = *rd_hiredis_fn;
		rd_guarded_fn.createArray = rd_create_array;
	}
}

void tally_redis_reader_guard(redisReader *r)
{
	pthread_once(&rd_guard_once, rd_guard_init);
	/* a reader with other functions than hiredis's is not ours to change */
	if (r && rd_hiredis_fn && r->fn == rd_hiredis_fn)
		r->fn = &rd_guarded_fn;
}

/* Error replies that mean the server cannot work right now (back off, do not hammer it). */
static bool rd_server_state_error(const char *msg)
{
	static const char *const down[] = {
		"LOADING", "BUSY", "MASTERDOWN", "OOM", "READONLY", "NOAUTH", "WRONGPASS", "MISCONF"
	};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(down); i++)
		if (strncmp(msg, down[i], strlen(down[i])) == 0)
			return true;
	return false;
}

enum tally_redis_status tally_redis_reply_status(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ERROR)
		return TALLY_REDIS_OK;
	if (strncmp(r->str, "NOSCRIPT", 8) == 0)
		return TALLY_REDIS_NOSCRIPT;
	return rd_server_state_error(r->str) ? TALLY_REDIS_DOWN : TALLY_REDIS_ERROR;
}

/* rd_number_syntax - s[0..len) is -?DIGITS[.DIGITS][(e|E)[+-]DIGITS]; *integral when only
 * -?DIGITS. strtoll and strtod alone would also take " 1", "+1", "0x1p4", "inf" and "nan". */
static bool rd_number_syntax(const char *s, size_t len, bool *integral)
{
	size_t i = 0, d;

	if (i < len && s[i] == '-')
		i++;
	for (d = i; i < len && isdigit((unsigned char)s[i]); i++)
		;
	if (i == d)
		return false;
	*integral = i == len;
	if (i < len && s[i] == '.')
		for (i++; i < len && isdigit((unsigned char)s[i]); i++)
			;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < len && isdigit((unsigned char)s[i]); i++)
			;
		if (i == d)
			return false;
	}
	return i == len;
}

bool tally_redis_decode_num(const redisReply *r, long long *v)
{
	char buf[64];
	bool integral;
	char *end;
	double d;

	if (r->type == REDIS_REPLY_INTEGER) {
		*v = r->integer;
		return true;
	}
	if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= sizeof(buf) ||
	    !rd_number_syntax(r->str, r->len, &integral))
		return false;
	memcpy(buf, r->str, r->len);
	buf[r->len] = '\0';
	errno = 0;
	if (integral) {
		*v = strtoll(buf, &end, 10);
		return errno == 0;
	}
	d = strtod(buf, &end);   /* "1.7e+09" style, should a server ever format it so */
	if (errno || d < -9e18 || d > 9e18)
		return false;
	*v = (long long)d;
	return true;
}

static int rd_bad(const char *what)
{
	tally_set_error("redis error: unexpected reply to %s", what);
	return -1;
}

static int rd_oom(void)
{
	tally_set_error("out of memory");
	return -1;
}

/* rd_name - a string element usable as a C string of at most max bytes (no NUL inside) */
static bool rd_name(const redisReply *e, size_t max)
{
	return e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= max &&
	       memchr(e->str, '\0', e->len) == NULL;
}

int tally_redis_decode_counts(const redisReply *r, struct tally_counts *out)
{
	size_t i, start = out->n;
	long long n, first, last;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 4)
		return rd_bad("counts");
	for (i = 0; i < r->elements; i += 4) {
		const redisReply *c = r->element[i];

		if (!rd_name(c, TALLY_CATEGORY_MAX) || !tally_redis_decode_num(r->element[i + 1], &n) ||
		    n < 0 || n > INT_MAX || !tally_redis_decode_num(r->element[i + 2], &first) ||
		    !tally_redis_decode_num(r->element[i + 3], &last)) {
			rd_bad("counts");
			goto fail;
		}
		if (tally_counts_push(out, c->str, c->len, (int)n, (time_t)first, (time_t)last) < 0) {
			rd_oom();
			goto fail;
		}
	}
	return 0;
fail:
	/* "on error, out as it was": a half-read reply must not pass for the sender's counts */
	while (out->n > start)
		free(out->v[--out->n].category);
	return -1;
}

int tally_redis_decode_seen(const redisReply *r, time_t *first, time_t *last)
{
	long long f, l;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return rd_bad("HMGET");
	if (r->element[0]->type == REDIS_REPLY_NIL && r->element[1]->type == REDIS_REPLY_NIL)
		return 0;
	if (!tally_redis_decode_num(r->element[0], &f) || !tally_redis_decode_num(r->element[1], &l))
		return rd_bad("HMGET");
	*first = (time_t)f;
	*last = (time_t)l;
	return 1;
}

/* rd_split_incident - parse one stored incident ("ts SEP message-id SEP subject SEP categories
 * SEP rules", see rd_incident); false when it is not one (no fields are allocated then) */
static bool rd_split_incident(const char *s, size_t len, struct tally_incident *in)
{
	const char *f[5], *end = s + len;
	size_t flen[5];
	const char *p = s, *q;
	char num[32];
	bool integral;
	int i;

	/* what rd_incident stores has no NUL and no separator beyond the four */
	if (memchr(s, '\0', len))
		return false;
	for (i = 0; i < 5; i++) {
		q = i < 4 ? memchr(p, RD_SEP, (size_t)(end - p)) : end;
		if (!q)
			return false;
		f[i] = p;
		flen[i] = (size_t)(q - p);
		p = q + (i < 4);
	}
	if (memchr(f[4], RD_SEP, flen[4]))
		return false;
	if (flen[0] == 0 || flen[0] >= sizeof(num) || !rd_number_syntax(f[0], flen[0], &integral) ||
	    !integral)
		return false;
	memcpy(num, f[0], flen[0]);
	num[flen[0]] = '\0';
	errno = 0;
	in->when = (time_t)strtoll(num, NULL, 10);
	if (errno)
		return false;
	in->message_id = util_strndup(f[1], flen[1]);
	in->subject = util_strndup(f[2], flen[2]);
	in->categories = util_strndup(f[3], flen[3]);
	in->rules = util_strndup(f[4], flen[4]);
	return true;
}

int tally_redis_decode_history(const redisReply *r, size_t max, struct tally_history *out)
{
	size_t i, room;

	if (r->type != REDIS_REPLY_ARRAY)
		return rd_bad("LRANGE");
	room = r->elements < max ? r->elements : max;
	out->v = calloc(room ? room : 1, sizeof(*out->v));
	if (!out->v)
		return rd_oom();
	for (i = 0; i < r->elements && out->n < max; i++) {
		const redisReply *e = r->element[i];
		struct tally_incident *in = &out->v[out->n];

		if (e->type != REDIS_REPLY_STRING || !rd_split_incident(e->str, e->len, in))
			continue;   /* a foreign value under our key: skip it, keep the rest */
		out->n++;
		if (!in->message_id || !in->subject || !in->categories || !in->rules) {
			tally_history_free(out);
			return rd_oom();
		}
	}
	return 0;
}

int tally_redis_decode_top(const redisReply *r, struct tally_sender_summary **out, size_t *nout)
{
	long long total, last;
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 3)
		return rd_bad("top");
	*out = calloc(r->elements / 3 + 1, sizeof(**out));
	if (!*out)
		return rd_oom();
	for (i = 0; i < r->elements; i += 3) {
		struct tally_sender_summary *s = &(*out)[*nout];

		if (!rd_name(r->element[i], TALLY_SENDER_MAX) ||
		    !tally_redis_decode_num(r->element[i + 1], &total) || total < 0 ||
		    total > INT_MAX || !tally_redis_decode_num(r->element[i + 2], &last)) {
			rd_bad("top");
			goto fail;
		}
		s->sender = util_strndup(r->element[i]->str, r->element[i]->len);
		if (!s->sender) {
			rd_oom();
			goto fail;
		}
		s->total = (int)total;
		s->last_seen = (time_t)last;
		(*nout)++;
	}
	return 0;
fail:
	tally_top_free(*out, *nout);
	*out = NULL;
	*nout = 0;
	return -1;
}

int tally_redis_decode_int(const redisReply *r, long long *v)
{
	if (!r || r->type != REDIS_REPLY_INTEGER)
		return rd_bad("script");
	*v = r->integer;
	return 0;
}

int tally_redis_decode_sha(const redisReply *r, char sha[41])
{
	size_t i;

	if (!r || r->type != REDIS_REPLY_STRING || r->len != 40)
		return rd_bad("SCRIPT LOAD");
	for (i = 0; i < 40; i++)
		if (!isdigit((unsigned char)r->str[i]) && (r->str[i] < 'a' || r->str[i] > 'f'))
			return rd_bad("SCRIPT LOAD");
	memcpy(sha, r->str, 40);
	sha[40] = '\0';
	return 0;
}

/* rd_parse_counts - decode a counts reply into out and free the reply */
static int rd_parse_counts(redisReply *r, struct tally_counts *out)
{
	int rv = tally_redis_decode_counts(r, out);

	freeReplyObject(r);
	return rv;
}

/* ---- operations ----------------------------------------------------------------------------- */

/* rd_incident - "ts SEP message-id SEP subject SEP categories SEP rules" (fields cleaned) */
static char *rd_incident(const struct tally_event *ev, time_t when)
{
	struct tally_fields f;
	struct strbuf b;

	if (tally_incident_fields(ev, &f) < 0)
		return NULL;
	/* tally_field_copy turned every control (the separator included) into a space */
	strbuf_init(&b, 0);
	strbuf_printf(&b, "%lld%c%s%c%s%c%s%c%s", (long long)when, RD_SEP, f.message_id, RD_SEP,
		      f.subject, RD_SEP, f.categories, RD_SEP, f.rules);
	tally_incident_fields_free(&f);
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	return strbuf_take(&b);
}

static int rd_record(struct tally *t, struct tally_lease *l, const char *sender,
		     const struct tally_event *ev, struct tally_counts *after)
{
	time_t when = ev->when > 0 ? ev->when : clock_now();
	struct rd_args a;
	redisReply *r;
	size_t i;
	int rv;

	rd_args_script(&a, 3);
	rd_arg_take(&a, rd_key(t, sender, ""));
	rd_arg_fmt(&a, "%sseq", t->set.redis_prefix);
	rd_arg_fmt(&a, "%ssenders", t->set.redis_prefix);
	rd_arg_fmt(&a, "%lld", (long long)when);
	rd_arg_fmt(&a, "%lld", (long long)when - t->set.window_s);
	rd_arg_fmt(&a, "%lld", t->set.retention_s);
	rd_arg_fmt(&a, "%d", t->set.incidents);
	rd_arg_take(&a, ev->n_categories ? rd_incident(ev, when) : util_strdup(""));
	rd_arg_str(&a, sender);
	rd_arg_fmt(&a, "%lld", (long long)when - t->set.retention_s);
	for (i = 0; i < ev->n_categories; i++)
		rd_arg_str(&a, ev->categories[i]);
	rv = rd_eval(t, tally_lease_conn(l), RS_RECORD, &a, &r);
	rd_args_free(&a);
	if (rv < 0)
		return -1;
	return rd_parse_counts(r, after);
}

static int rd_counts(struct tally *t, struct tally_lease *l, const char *sender, time_t now,
		     struct tally_counts *out)
{
	struct rd_args a;
	redisReply *r;
	int rv;

	rd_args_script(&a, 1);
	rd_arg_take(&a, rd_key(t, sender, ""));
	rd_arg_fmt(&a, "%lld", (long long)now - t->set.window_s);
	rv = rd_eval(t, tally_lease_conn(l), RS_COUNTS, &a, &r);
	rd_args_free(&a);
	if (rv < 0)
		return -1;
	return rd_parse_counts(r, out);
}

static int rd_seen(struct tally *t, struct tally_lease *l, const char *sender, time_t *first,
		   time_t *last)
{
	struct rd_args a = { .n = 0 };
	redisReply *r;
	int rv;

	rd_arg_str(&a, "HMGET");
	rd_arg_take(&a, rd_key(t, sender, ":m"));
	rd_arg_str(&a, "first");
	rd_arg_str(&a, "last");
	rv = rd_command(t, tally_lease_conn(l), &a, &r);
	rd_args_free(&a);
	if (rv != 0)
		return -1;
	rv = tally_redis_decode_seen(r, first, last);
	freeReplyObject(r);
	return rv;
}

static int rd_history(struct tally *t, struct tally_lease *l, const char *sender, size_t max,
		      struct tally_history *out)
{
	struct rd_args a = { .n = 0 };
	redisReply *r;
	int rv;

	rd_arg_str(&a, "LRANGE");
	rd_arg_take(&a, rd_key(t, sender, ":i"));
	rd_arg_str(&a, "0");
	rd_arg_fmt(&a, "%zu", max - 1);
	rv = rd_command(t, tally_lease_conn(l), &a, &r);
	rd_args_free(&a);
	if (rv != 0)
		return -1;
	rv = tally_redis_decode_history(r, max, out);
	freeReplyObject(r);
	return rv;
}

/* rd_int_script - run a script whose reply is an integer */
static int rd_int_script(struct tally *t, struct tally_lease *l, enum rd_script which,
			 struct rd_args *a, long long *v)
{
	redisReply *r;
	int rv;

	rv = rd_eval(t, tally_lease_conn(l), which, a, &r);
	rd_args_free(a);
	if (rv < 0)
		return -1;
	rv = tally_redis_decode_int(r, v);
	freeReplyObject(r);
	return rv;
}

static int rd_claim(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		    time_t now)
{
	struct rd_args a;
	long long v;
	char *suffix;

	rd_args_script(&a, 2);
	suffix = NULL;
	if (asprintf(&suffix, ":d:%s", kind) < 0)
		suffix = NULL;
	rd_arg_take(&a, suffix ? rd_key(t, sender, suffix) : NULL);
	free(suffix);
	rd_arg_take(&a, rd_key(t, sender, ":dk"));
	rd_arg_fmt(&a, "%lld", (long long)now);
	rd_arg_fmt(&a, "%lld", (long long)now - t->set.dedupe_s);
	/* EXPIRE only collects garbage; the dedupe itself compares times on the amends clock */
	rd_arg_fmt(&a, "%lld", t->set.dedupe_s > 60 ? t->set.dedupe_s : 60);
	rd_arg_str(&a, kind);
	if (rd_int_script(t, l, RS_CLAIM, &a, &v) < 0)
		return -1;
	return v ? 1 : 0;
}

static int rd_unclaim(struct tally *t, struct tally_lease *l, const char *sender, const char *kind,
		      time_t when)
{
	struct rd_args a;
	long long v;
	char *suffix = NULL;

	rd_args_script(&a, 1);
	if (asprintf(&suffix, ":d:%s", kind) < 0)
		suffix = NULL;
	rd_arg_take(&a, suffix ? rd_key(t, sender, suffix) : NULL);
	free(suffix);
	rd_arg_fmt(&a, "%lld", (long long)when);
	return rd_int_script(t, l, RS_UNCLAIM, &a, &v);
}

static int rd_top(struct tally *t, struct tally_lease *l, size_t n, time_t now,
		  struct tally_sender_summary **out, size_t *nout)
{
	struct rd_args a;
	redisReply *r;
	int rv;

	rd_args_script(&a, 1);
	rd_arg_fmt(&a, "%ssenders", t->set.redis_prefix);
	rd_arg_fmt(&a, "%ss:", t->set.redis_prefix);
	rd_arg_fmt(&a, "%lld", (long long)now - t->set.window_s);
	rd_arg_fmt(&a, "%zu", n);
	rd_arg_fmt(&a, "%d", RD_TOP_SCAN);
	rv = rd_eval(t, tally_lease_conn(l), RS_TOP, &a, &r);
	rd_args_free(&a);
	if (rv < 0)
		return -1;
	rv = tally_redis_decode_top(r, out, nout);
	freeReplyObject(r);
	return rv;
}

static int rd_reset(struct tally *t, struct tally_lease *l, const char *sender)
{
	struct rd_args a;
	long long v;

	rd_args_script(&a, 1);
	rd_arg_take(&a, rd_key(t, sender, ""));
	return rd_int_script(t, l, RS_RESET, &a, &v);
}

static int rd_forget(struct tally *t, struct tally_lease *l, const char *sender)
{
	struct rd_args a;
	long long v;

	rd_args_script(&a, 2);
	rd_arg_take(&a, rd_key(t, sender, ""));
	rd_arg_fmt(&a, "%ssenders", t->set.redis_prefix);
	rd_arg_str(&a, sender);
	return rd_int_script(t, l, RS_FORGET, &a, &v);
}

static int rd_prune(struct tally *t, struct tally_lease *l, time_t now)
{
	struct rd_args a;
	long long v;

	rd_args_script(&a, 1);
	rd_arg_fmt(&a, "%ssenders", t->set.redis_prefix);
	rd_arg_fmt(&a, "%ss:", t->set.redis_prefix);
	rd_arg_fmt(&a, "%lld", (long long)now - t->set.retention_s);
	rd_arg_fmt(&a, "%d", RD_PRUNE_BATCH);
	return rd_int_script(t, l, RS_PRUNE, &a, &v);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* rd_parse_where - "host:port", "[v6]:port", "host" (6379) or "unix:/path" */
static int rd_parse_where(struct rd_state *s, const char *where, char **err)
{
	const char *colon, *hb, *he;
	char *end;
	long port = 6379;

	if (strncmp(where, "unix:", 5) == 0) {
		if (where[5] != '/') {
			*err = util_strdup("tally: redis:unix: needs an absolute socket path");
			return -1;
		}
		s->unix_path = util_strdup(where + 5);
		return s->unix_path ? 0 : -1;
	}
	hb = where;
	if (*where == '[') {
		hb = where + 1;
		he = strchr(hb, ']');
		if (!he || (he[1] && he[1] != ':')) {
			*err = util_strdup("tally: redis: bad [address]:port");
			return -1;
		}
		colon = he[1] ? he + 1 : NULL;
	} else {
		colon = strrchr(where, ':');
		he = colon ? colon : where + strlen(where);
	}
	if (he == hb) {
		*err = util_strdup("tally: redis: no host (use redis:HOST:PORT or redis:unix:/PATH)");
		return -1;
	}
	if (colon) {
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno || end == colon + 1 || *end || port < 1 || port > 65535) {
			*err = util_strdup("tally: redis: bad port");
			return -1;
		}
	}
	s->host = util_strndup(hb, (size_t)(he - hb));
	s->port = (int)port;
	return s->host ? 0 : -1;
}

static void rd_close(struct tally *t)
{
	struct rd_state *s = t->state;

	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->host);
	free(s->unix_path);
	free(s);
	t->state = NULL;
}

static int rd_open(struct tally *t, const char *where, char **err)
{
	struct rd_state *s = calloc(1, sizeof(*s));

	if (!s) {
		*err = util_strdup("tally: out of memory");
		return -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	t->state = s;
	if (rd_parse_where(s, where, err) < 0) {
		if (!*err)
			*err = util_strdup("tally: out of memory");
		rd_close(t);
		return -1;
	}
	/* No connection here: a Redis that is down at start must not stop the daemon (fail open). */
	return 0;
}

static void *rd_conn_new(struct tally *t)
{
	struct rd_conn *c = calloc(1, sizeof(*c));

	if (!c)
		tally_set_error("out of memory");
	return c;
}

static void rd_conn_free(void *p)
{
	struct rd_conn *c = p;

	if (!c)
		return;
	rd_drop(c);
	free(c);
}

const struct tally_backend tally_redis_backend = {
	.name = "redis",
	.open = rd_open,
	.close = rd_close,
	.conn_new = rd_conn_new,
	.conn_free = rd_conn_free,
	.record = rd_record,
	.counts = rd_counts,
	.seen = rd_seen,
	.history = rd_history,
	.claim = rd_claim,
	.unclaim = rd_unclaim,
	.top = rd_top,
	.reset = rd_reset,
	.forget = rd_forget,
	.prune = rd_prune,
};
