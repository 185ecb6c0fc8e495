/*
 * util.h - small string and memory helpers shared by every module
 *
 * A strbuf is a growable, always NUL-terminated, length-carrying byte string with an optional
 * hard cap: appends beyond the cap are dropped and remembered in ->truncated, so text from a
 * stranger can never grow a buffer without bound.
 *
 * OWNERSHIP  strbuf_init() owns nothing; strbuf_free() releases ->s. strbuf_take() hands ->s to
 *            the caller (free()) and resets the buffer.
 */
#ifndef AMENDS_UTIL_H
#define AMENDS_UTIL_H

#include <stddef.h>
#include <time.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

struct strbuf {
	char *s;          /* NUL-terminated; never NULL after the first append */
	size_t len;
	size_t cap;       /* allocated */
	size_t limit;     /* 0 = unbounded; else len never exceeds limit */
	bool truncated;   /* an append was cut at limit */
	bool oom;         /* an allocation failed; the buffer keeps what it had */
};

void strbuf_init(struct strbuf *b, size_t limit);
void strbuf_free(struct strbuf *b);
void strbuf_reset(struct strbuf *b);
/* Append n bytes; returns 0, or -1 when cut at the limit or out of memory. */
int strbuf_append(struct strbuf *b, const char *p, size_t n);
int strbuf_puts(struct strbuf *b, const char *s);
int strbuf_putc(struct strbuf *b, char c);
int strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Returns the string (caller frees with free()); "" when empty; NULL only when out of memory. */
char *strbuf_take(struct strbuf *b);
/* Append s as a JSON string literal (quotes included), escaping controls and invalid UTF-8. */
int strbuf_json_string(struct strbuf *b, const char *s, size_t n);
/* Append the C string s as a JSON string, or null when s is NULL. */
int strbuf_json_cstr(struct strbuf *b, const char *s);

/* Set *err (when err is not NULL) to a malloc'd formatted message, freeing what it held:
 * callers start from NULL. Used by every module that hands an error string up. */
void util_seterr(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* xstrdup-style helpers that return NULL on allocation failure (never abort). */
char *util_strndup(const char *s, size_t n);
char *util_strdup(const char *s);
/* path made absolute against the working directory now (an absolute one copied; "." is the
 * directory itself): malloc'd, NULL when out of memory or the directory cannot be named. Not
 * canonical: ".." and symbolic links stay. */
char *util_abspath(const char *path);
/* ASCII-only lowercasing, in place. */
void util_ascii_lower(char *s);
bool util_ascii_casestarts(const char *s, const char *prefix);
/* Strip ASCII whitespace at both ends, in place; returns s. */
char *util_trim(char *s);
/* Read a whole file into a NUL-terminated buffer (free()). Returns 0, -1 with errno on error.
 * Files larger than max_bytes fail with EFBIG. */
int util_read_file(const char *path, size_t max_bytes, char **out, size_t *outlen);
/* Is the UTF-8 valid? */
bool util_utf8_valid(const char *s, size_t n);
/* Copy s replacing invalid UTF-8 sequences with U+FFFD; returns malloc'd string or NULL. */
char *util_utf8_sanitize(const char *s, size_t n, size_t *outlen);
/* FNV-1a hash of a NUL-terminated string (hash tables of words and rule names). */
uint32_t util_hash_str(const char *s);
/* Monotonic milliseconds, for deadlines (not the policy clock: see clock.h). */
long long util_now_ms(void);
/* The CLOCK_REALTIME time ms milliseconds from now: the deadline for pthread_cond_timedwait and
 * pthread_mutex_timedlock, which measure against that clock. */
struct timespec util_deadline_ms(long long ms);
long long util_now_us(void);

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
