/*
 * util.c - bounded strings, UTF-8 checks, file reading, monotonic time
 *
 * Nothing here logs; every function reports failure through its return value.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void strbuf_init(struct strbuf *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
}

void strbuf_free(struct strbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

void strbuf_reset(struct strbuf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
	b->truncated = false;
}

static int strbuf_grow(struct strbuf *b, size_t need)
{
	size_t ncap;
	char *p;

	if (need + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need + 1) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	p = realloc(b->s, ncap);
	if (!p) {
		b->oom = true;
		return -1;
	}
	b->s = p;
	b->cap = ncap;
	b->s[b->len] = '\0';   /* a grown, still empty buffer is a valid string */
	return 0;
}

int strbuf_append(struct strbuf *b, const char *p, size_t n)
{
	int rc = 0;

	if (b->limit && b->len + n > b->limit) {
		n = b->limit > b->len ? b->limit - b->len : 0;
		b->truncated = true;
		rc = -1;
	}
	if (strbuf_grow(b, b->len + n) < 0)
		return -1;
	if (n)
		memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return rc;
}

int strbuf_puts(struct strbuf *b, const char *s)
{
	return strbuf_append(b, s, strlen(s));
}

int strbuf_putc(struct strbuf *b, char c)
{
	return strbuf_append(b, &c, 1);
}

int strbuf_vprintf(struct strbuf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return strbuf_append(b, small, (size_t)n);
	{
		char *big = malloc((size_t)n + 1);
		int rc;

		if (!big) {
			b->oom = true;
			return -1;
		}
		/* the same format and arguments again: anything but n bytes would append garbage */
		if (vsnprintf(big, (size_t)n + 1, fmt, ap) != n)
			rc = -1;
		else
			rc = strbuf_append(b, big, (size_t)n);
		free(big);
		return rc;
	}
}

int strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strbuf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *strbuf_take(struct strbuf *b)
{
	char *s = b->s;

	if (!s)
		s = util_strdup("");
	b->s = NULL;
	b->len = b->cap = 0;
	b->truncated = false;
	return s;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when invalid. Inline: it runs per letter
 * of Urdu, Persian, Hindi and Punjabi text, and a call each was half of util_utf8_valid's time. */
static inline size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		if (n >= 2 && (p[1] & 0xC0) == 0x80)
			return 2;
		return 0;
	}
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && p[1] < 0xA0)
			return 0;           /* overlong */
		if (c == 0xED && p[1] >= 0xA0)
			return 0;           /* surrogate */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && p[1] < 0x90)
			return 0;
		if (c == 0xF4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

bool util_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t l;

		if (p[i] < 0x80) {
			i++;
			/* ASCII runs eight bytes at a time (most mail is mostly ASCII); tried after an
			 * ASCII byte only, so that Urdu or Hindi text is not tried at every letter */
			while (n - i >= 8) {
				uint64_t w;

				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ULL)
					break;
				i += 8;
			}
			continue;
		}
		l = utf8_seq_len(p + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

char *util_utf8_sanitize(const char *s, size_t n, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	struct strbuf b;
	size_t i = 0;

	strbuf_init(&b, 0);
	if (strbuf_grow(&b, n) < 0)
		return NULL;
	/* Valid runs are copied whole: one append per run, not per code point. */
	while (i < n) {
		size_t run = i, l;

		while (i < n && (l = utf8_seq_len(p + i, n - i)) != 0)
			i += l;
		strbuf_append(&b, s + run, i - run);
		if (i < n) {
			strbuf_append(&b, "\xEF\xBF\xBD", 3);
			i++;
		}
	}
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	if (outlen)
		*outlen = b.len;
	return strbuf_take(&b);
}

int strbuf_json_cstr(struct strbuf *b, const char *s)
{
	if (!s)
		return strbuf_puts(b, "null");
	return strbuf_json_string(b, s, strlen(s));
}

int strbuf_json_string(struct strbuf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	strbuf_putc(b, '"');
	while (i < n) {
		unsigned c = p[i];
		size_t l;

		switch (c) {
		case '"': strbuf_puts(b, "\\\""); i++; continue;
		case '\\': strbuf_puts(b, "\\\\"); i++; continue;
		case '\n': strbuf_puts(b, "\\n"); i++; continue;
		case '\r': strbuf_puts(b, "\\r"); i++; continue;
		case '\t': strbuf_puts(b, "\\t"); i++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7F) {
			strbuf_printf(b, "\\u%04x", c);
			i++;
			continue;
		}
		l = utf8_seq_len(p + i, n - i);
		if (!l) {
			strbuf_puts(b, "\\ufffd");
			i++;
			continue;
		}
		strbuf_append(b, s + i, l);
		i += l;
	}
	return strbuf_putc(b, '"');
}

char *util_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *util_strdup(const char *s)
{
	return util_strndup(s, strlen(s));
}

char *util_abspath(const char *path)
{
	struct strbuf b;
	char *cwd;

	if (path[0] == '/')
		return util_strdup(path);
	if (!(cwd = getcwd(NULL, 0)))
		return NULL;
	strbuf_init(&b, 0);
	strbuf_printf(&b, "%s/%s", cwd, strcmp(path, ".") == 0 ? "" : path);
	free(cwd);
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	if (b.len > 1 && b.s[b.len - 1] == '/')   /* "." gives the directory itself */
		b.s[--b.len] = '\0';
	return strbuf_take(&b);
}

void util_ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

bool util_ascii_casestarts(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

char *util_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

int util_read_file(const char *path, size_t max_bytes, char **out, size_t *outlen)
{
	struct strbuf b;
	char chunk[65536];
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	strbuf_init(&b, 0);
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		if (max_bytes && b.len + (size_t)r > max_bytes) {
			errno = EFBIG;
			goto fail;
		}
		if (strbuf_append(&b, chunk, (size_t)r) < 0) {
			errno = ENOMEM;
			goto fail;
		}
	}
	close(fd);
	if (outlen)
		*outlen = b.len;
	*out = strbuf_take(&b);
	if (!*out) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
fail:
	{
		int e = errno;

		close(fd);
		strbuf_free(&b);
		errno = e;
	}
	return -1;
}

long long util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec util_deadline_ms(long long ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

long long util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void util_seterr(char **err, const char *fmt, ...)
{
	struct strbuf b;
	va_list ap;

	if (!err)
		return;
	free(*err);
	strbuf_init(&b, 1024);
	va_start(ap, fmt);
	strbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	*err = strbuf_take(&b);
}

uint32_t util_hash_str(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}
