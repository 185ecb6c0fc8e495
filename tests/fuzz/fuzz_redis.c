/*
 * fuzz_redis.c - libFuzzer target: Redis replies, through hiredis's reader and our decoding
 *
 * RELIABILITY R2.1 (g). Byte 0 sets the run: its low nibble + 1 is the history decoder's
 * maximum; its high nibble k feeds the reader the rest of the input in chunks of 2^(k-1) bytes
 * (k = 0: all at once), so replies split anywhere are parsed too. The reader is hiredis's own,
 * guarded as tally_redis.c guards the reader of every context (tally_redis_reader_guard), and
 * every reply it yields goes through every decoder of tally_redis.h.
 * Oracle: no crash and no leak, and each decoder either fails (-1, out-parameters left empty)
 * or gives exactly what the reply says: its result is compared with a reading of the reply
 * written here from the reply formats in tally_redis.c's scripts (numbers checked with a POSIX
 * regex, not with the decoder's code). A reply of the wrong shape that decodes is a made-up
 * tally; a well-formed one that fails is a lost one. Both fail the oracle.
 *
 * OWNERSHIP  Everything per input is freed (the compiled regexes live until the process ends).
 */
#include "fuzz_common.h"
#include "tally_redis.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define RX_SEP '\x1f'              /* the incident field separator of tally_redis.c */
#define RX_CATEGORY_MAX 64         /* TALLY_CATEGORY_MAX */
#define RX_SCRIPT_DOWN_N 8

static regex_t rx_number, rx_integer, rx_sha;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	fuzz_setup();
	if (regcomp(&rx_number, "^-?[0-9]+(\\.[0-9]*)?([eE][+-]?[0-9]+)?$", REG_EXTENDED | REG_NOSUB) ||
	    regcomp(&rx_integer, "^-?[0-9]+$", REG_EXTENDED | REG_NOSUB) ||
	    regcomp(&rx_sha, "^[0-9a-f]{40}$", REG_EXTENDED | REG_NOSUB))
		fuzz_fail("cannot compile the reference regexes");
	return 0;
}

/* ---- the reference reading ----------------------------------------------------------------- */

/* A copy of a string reply, or NULL when it holds a NUL (no C string can carry it). */
static char *ref_cstr(const redisReply *e)
{
	if (e->type != REDIS_REPLY_STRING || memchr(e->str, '\0', e->len))
		return NULL;
	return fuzz_strndup((const uint8_t *)e->str, e->len);
}

static bool ref_num(const redisReply *e, long long *v)
{
	char *s, *end;
	bool ok = false;

	if (e->type == REDIS_REPLY_INTEGER) {
		*v = e->integer;
		return true;
	}
	if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len >= 64 || !(s = ref_cstr(e)))
		return false;
	errno = 0;
	if (regexec(&rx_integer, s, 0, NULL, 0) == 0) {
		*v = strtoll(s, &end, 10);
		ok = errno == 0;
	} else if (regexec(&rx_number, s, 0, NULL, 0) == 0) {
		double d = strtod(s, &end);

		ok = errno == 0 && d >= -9e18 && d <= 9e18;
		if (ok)
			*v = (long long)d;
	}
	free(s);
	return ok;
}

static bool ref_name(const redisReply *e, size_t max)
{
	return e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= max &&
	       !memchr(e->str, '\0', e->len);
}

static bool same_bytes(const char *s, const redisReply *e)
{
	return strlen(s) == e->len && memcmp(s, e->str, e->len) == 0;
}

/* ---- one decoder each ---------------------------------------------------------------------- */

static void check_num(const redisReply *r)
{
	long long v = 0, want = 0;
	bool ok = tally_redis_decode_num(r, &v), ref = ref_num(r, &want);

	FUZZ_CHECK(ok == ref, "decode_num says %d, the reference %d (type %d)", ok, ref, r->type);
	FUZZ_CHECK(!ok || v == want, "decode_num gave %lld for %lld", v, want);
}

/* The groups of n elements of an array reply whose first is a name of at most max bytes and
 * the rest numbers; -1 when the reply is not such an array. */
static long ref_groups(const redisReply *r, size_t n, size_t max)
{
	long long v;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % n)
		return -1;
	for (size_t i = 0; i < r->elements; i += n) {
		if (!ref_name(r->element[i], max))
			return -1;
		for (size_t j = 1; j < n; j++)
			if (!ref_num(r->element[i + j], &v) || (j == 1 && (v < 0 || v > INT_MAX)))
				return -1;
	}
	return (long)(r->elements / n);
}

static void check_counts(const redisReply *r)
{
	struct tally_counts c = { 0 };
	long want = ref_groups(r, 4, RX_CATEGORY_MAX);
	int rc = tally_redis_decode_counts(r, &c);
	long long n = 0, first = 0, last = 0;

	FUZZ_CHECK((rc == 0) == (want >= 0), "decode_counts returned %d, the reference %ld groups",
		   rc, want);
	FUZZ_CHECK(rc == 0 || (c.n == 0), "decode_counts failed and left %zu counts", c.n);
	FUZZ_CHECK(rc != 0 || c.n == (size_t)want, "%zu counts for %ld groups", c.n, want);
	for (size_t k = 0; rc == 0 && k < c.n; k++) {
		redisReply *const *e = r->element + 4 * k;

		ref_num(e[1], &n);
		ref_num(e[2], &first);
		ref_num(e[3], &last);
		FUZZ_CHECK(same_bytes(c.v[k].category, e[0]), "count %zu: category \"%s\"", k,
			   c.v[k].category);
		FUZZ_CHECK(c.v[k].count == n && c.v[k].first_seen == (time_t)first &&
			   c.v[k].last_seen == (time_t)last, "count %zu: %d %lld %lld for %lld %lld %lld",
			   k, c.v[k].count, (long long)c.v[k].first_seen, (long long)c.v[k].last_seen,
			   n, first, last);
	}
	tally_counts_free(&c);
}

static void check_seen(const redisReply *r)
{
	time_t first = 0, last = 0;
	long long f = 0, l = 0;
	int rc = tally_redis_decode_seen(r, &first, &last), want;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		want = -1;
	else if (r->element[0]->type == REDIS_REPLY_NIL && r->element[1]->type == REDIS_REPLY_NIL)
		want = 0;
	else
		want = ref_num(r->element[0], &f) && ref_num(r->element[1], &l) ? 1 : -1;
	FUZZ_CHECK(rc == want, "decode_seen returned %d, the reference %d", rc, want);
	FUZZ_CHECK(rc != 1 || (first == (time_t)f && last == (time_t)l),
		   "decode_seen gave %lld %lld for %lld %lld", (long long)first, (long long)last, f, l);
}

/* The fields of a stored incident, or false when e is not one. */
static bool ref_incident(const redisReply *e, long long *when, char *field[5])
{
	char *s = ref_cstr(e), *p, *q;
	int i;

	if (!s)
		return false;
	for (i = 0, p = s; i < 4 && (q = strchr(p, RX_SEP)); i++, p = q + 1)
		*q = '\0';
	if (i < 4 || strchr(p, RX_SEP) || regexec(&rx_integer, s, 0, NULL, 0) != 0 ||
	    strlen(s) >= 32) {
		free(s);
		return false;
	}
	errno = 0;
	*when = strtoll(s, NULL, 10);
	if (errno) {
		free(s);
		return false;
	}
	/* field[0] owns the copy; the others point into it */
	field[0] = s;
	for (i = 1, p = s; i < 5; i++) {
		p += strlen(p) + 1;
		field[i] = p;
	}
	return true;
}

static void check_history(const redisReply *r, size_t max)
{
	struct tally_history h = { 0 };
	int rc = tally_redis_decode_history(r, max, &h);
	size_t k = 0;

	FUZZ_CHECK((rc == 0) == (r->type == REDIS_REPLY_ARRAY), "decode_history returned %d for "
		   "type %d", rc, r->type);
	FUZZ_CHECK(rc == 0 || (h.n == 0 && !h.v), "decode_history failed and left %zu", h.n);
	for (size_t i = 0; rc == 0 && i < r->elements && k < max; i++) {
		char *f[5];
		long long when;

		if (!ref_incident(r->element[i], &when, f))
			continue;
		FUZZ_CHECK(k < h.n, "incident %zu (element %zu) left out", k, i);
		FUZZ_CHECK(h.v[k].when == (time_t)when && !strcmp(h.v[k].message_id, f[1]) &&
			   !strcmp(h.v[k].subject, f[2]) && !strcmp(h.v[k].categories, f[3]) &&
			   !strcmp(h.v[k].rules, f[4]), "incident %zu differs from element %zu", k, i);
		free(f[0]);
		k++;
	}
	FUZZ_CHECK(rc != 0 || h.n == k, "%zu incidents decoded, %zu in the reply", h.n, k);
	FUZZ_CHECK(h.n <= max, "%zu incidents for a maximum of %zu", h.n, max);
	tally_history_free(&h);
}

static void check_top(const redisReply *r)
{
	struct tally_sender_summary *v = NULL;
	size_t n = 0;
	long want = ref_groups(r, 3, TALLY_SENDER_MAX);
	int rc = tally_redis_decode_top(r, &v, &n);
	long long total = 0, last = 0;

	FUZZ_CHECK((rc == 0) == (want >= 0), "decode_top returned %d, the reference %ld groups", rc,
		   want);
	FUZZ_CHECK(rc == 0 || (n == 0 && !v), "decode_top failed and left %zu", n);
	FUZZ_CHECK(rc != 0 || n == (size_t)want, "%zu senders for %ld groups", n, want);
	for (size_t k = 0; rc == 0 && k < n; k++) {
		redisReply *const *e = r->element + 3 * k;

		ref_num(e[1], &total);
		ref_num(e[2], &last);
		FUZZ_CHECK(same_bytes(v[k].sender, e[0]) && v[k].total == total &&
			   v[k].last_seen == (time_t)last, "sender %zu differs from the reply", k);
	}
	tally_top_free(v, n);
}

static void check_int_sha_status(const redisReply *r)
{
	static const char *const down[RX_SCRIPT_DOWN_N] = {
		"LOADING", "BUSY", "MASTERDOWN", "OOM", "READONLY", "NOAUTH", "WRONGPASS", "MISCONF"
	};
	enum tally_redis_status st = tally_redis_reply_status(r), want = TALLY_REDIS_OK;
	long long v = 0;
	char sha[41], *s;
	int rc;

	rc = tally_redis_decode_int(r, &v);
	FUZZ_CHECK((rc == 0) == (r->type == REDIS_REPLY_INTEGER) && (rc || v == r->integer),
		   "decode_int returned %d (%lld) for type %d", rc, v, r->type);
	s = r->type == REDIS_REPLY_STRING && r->len == 40 ? ref_cstr(r) : NULL;
	rc = tally_redis_decode_sha(r, sha);
	FUZZ_CHECK((rc == 0) == (s && regexec(&rx_sha, s, 0, NULL, 0) == 0), "decode_sha returned %d",
		   rc);
	FUZZ_CHECK(rc || !strcmp(sha, s), "decode_sha gave %s for %s", sha, s);
	free(s);
	if (r->type == REDIS_REPLY_ERROR) {
		want = TALLY_REDIS_ERROR;
		if (!strncmp(r->str, "NOSCRIPT", 8))
			want = TALLY_REDIS_NOSCRIPT;
		for (int i = 0; i < RX_SCRIPT_DOWN_N && want == TALLY_REDIS_ERROR; i++)
			if (!strncmp(r->str, down[i], strlen(down[i])))
				want = TALLY_REDIS_DOWN;
	}
	FUZZ_CHECK(st == want, "reply status %d, the reference %d", st, want);
}

/* No array longer than the guard allows is ever built, a reply still being read included. */
static void check_arrays(const redisReply *r, int depth)
{
	if (!r || r->type != REDIS_REPLY_ARRAY)
		return;
	FUZZ_CHECK(r->elements <= TALLY_REDIS_ARRAY_MAX, "an array of %zu elements was built",
		   r->elements);
	FUZZ_CHECK(depth < 16, "replies nested %d deep", depth);
	for (size_t i = 0; i < r->elements; i++)
		check_arrays(r->element[i], depth + 1);
}

static void check_reply(const redisReply *r, size_t max)
{
	check_num(r);
	check_counts(r);
	check_seen(r);
	check_history(r, max);
	check_top(r);
	check_int_sha_status(r);
	/* the elements too: HMGET and the counts take numbers out of arrays */
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < r->elements && i < 64; i++)
			check_num(r->element[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *rd;
	size_t max, chunk, off = 1;
	void *reply;

	if (size < 1)
		return 0;
	max = (size_t)(data[0] & 0x0F) + 1;
	chunk = data[0] >> 4 ? (size_t)1 << ((data[0] >> 4) - 1) : size;
	rd = redisReaderCreate();
	if (!rd)
		fuzz_fail("out of memory");
	tally_redis_reader_guard(rd);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;

		FUZZ_CHECK(redisReaderFeed(rd, (const char *)data + off, n) == REDIS_OK || rd->err,
			   "feed failed with no error set");
		off += n;
		for (;;) {
			reply = NULL;
			if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
				FUZZ_CHECK(rd->err && rd->errstr[0] && !reply, "a reader error without a reason");
				off = size;   /* the reader is unusable after an error */
				break;
			}
			if (!reply)
				break;
			check_arrays(reply, 0);
			check_reply(reply, max);
			freeReplyObject(reply);
		}
	}
	if (!rd->err)
		check_arrays(redisReaderGetObject(rd), 0);
	redisReaderFree(rd);
	return 0;
}
