/*
 * tally_redis.h - how the Redis tally store reads replies (tally_redis.c); for its fuzz target
 *
 * What comes back from Redis is decoded, never trusted: a reply of the wrong shape, a number
 * that is not one or is out of range, a name with a NUL in it, is an error (-1 and a reason in
 * tally_error()), never a made-up count. tests/fuzz/fuzz_redis.c feeds these functions whatever
 * hiredis's reader, guarded as tally_redis.c guards it, makes of random bytes.
 *
 * OWNERSHIP  The decoders borrow the reply (the caller frees it with freeReplyObject()); what
 *            they return through out-parameters is malloc'd and freed with the matching
 *            tally_*_free(). On error they leave the out-parameters empty.
 */
#ifndef AMENDS_TALLY_REDIS_H
#define AMENDS_TALLY_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "tally.h"

/* Elements one array of a reply may have. Our largest reply is "tally top" (3 per sender, at
 * most 10,000 senders scanned); hiredis 0.14 has no limit of its own, so the 13 bytes
 * "*2147483647\r\n" would make it allocate 16 GiB. */
#define TALLY_REDIS_ARRAY_MAX 100000

/* Make reader r refuse arrays longer than TALLY_REDIS_ARRAY_MAX (the reply then fails as out
 * of memory, which the caller takes as a broken connection). */
void tally_redis_reader_guard(redisReader *r);

enum tally_redis_status {
	TALLY_REDIS_OK,                /* an answer (any type but an error reply) */
	TALLY_REDIS_NOSCRIPT,          /* the server lost the script: send it again */
	TALLY_REDIS_ERROR,             /* an error reply */
	TALLY_REDIS_DOWN,              /* an error that means the server cannot work now: back off */
};
enum tally_redis_status tally_redis_reply_status(const redisReply *r);

/* An integer reply, or a string holding a number (scores come back as strings: "1700000000",
 * "1.7e+09"); false for anything else, other spellings ("0x10", " 1", "inf") included. */
bool tally_redis_decode_num(const redisReply *r, long long *v);
/* {category, count, first, last, ...} appended to out. 0 or -1 (out as it was). */
int tally_redis_decode_counts(const redisReply *r, struct tally_counts *out);
/* HMGET first last: 1 (times set), 0 (sender unknown: both nil), -1. */
int tally_redis_decode_seen(const redisReply *r, time_t *first, time_t *last);
/* LRANGE of incidents, at most max of them, into out (empty on entry). A stored value that
 * is not an incident is skipped (a foreign value under our key); a reply that is not a list
 * is an error. 0 or -1. */
int tally_redis_decode_history(const redisReply *r, size_t max, struct tally_history *out);
/* {sender, total, last, ...} into *out / *nout (NULL / 0 on entry). 0 or -1. */
int tally_redis_decode_top(const redisReply *r, struct tally_sender_summary **out,
			   size_t *nout);
/* A script's integer reply. 0 or -1. */
int tally_redis_decode_int(const redisReply *r, long long *v);
/* SCRIPT LOAD: 40 lowercase hex digits into sha (NUL-terminated). 0 or -1. */
int tally_redis_decode_sha(const redisReply *r, char sha[41]);

#endif
