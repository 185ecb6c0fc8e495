/*
 * message.c - raw RFC 5322 bytes -> decoded UTF-8 text parts and headers, with GMime 3
 *
 * GMime does the MIME parsing; this file bounds what GMime is given and decodes what it finds.
 *  1. A linear pre-scan (scan_*) follows the header blocks and boundaries just far enough to
 *     enforce our limits *before* GMime runs: header lines past header_count/header_bytes are
 *     left out, the body of a container nested deeper than mime_depth is left out up to the next
 *     enclosing boundary, and the input ends before part mime_parts + 1. GMime 3.2.13 recurses
 *     per nesting level (up to its MAX_LEVEL 1024), its boundary check is linear in the nesting
 *     (a 100,000-level chain takes seconds) and 500,000 header lines take it 2 s: our limits have
 *     to be applied to its input, not to its output. The body of an attachment (a leaf part of
 *     an application/, image/, audio/, video/, font/ or model/ type) is left out too: it is
 *     never read, and GMime need not parse it; so is, when the caller skips shadowed parts,
 *     the body of an HTML alternative after a text/plain one (scan_shadow; when that text/plain
 *     turns out empty, blank or a stub, the HTML is the text after all, and the message is parsed
 *     again with those bodies kept: unshadow_textless_groups, retry_shadowed). Malformed mail may
 *     be read one way by the scan and another by GMime, so after the parse the two are compared
 *     (as many entities; every body left out is an empty attachment, or an empty shadowed HTML
 *     part, to GMime); when they differ the message is parsed again with every body kept
 *     (parse_once). Otherwise ordinary mail reaches GMime unchanged.
 *  2. The GMime tree is walked with an explicit stack (depth and part count checked again).
 *  3. Text parts are read through GMime's transfer-decoding filter up to a byte cap, converted
 *     to UTF-8 (charset.c: allow-listed charsets only; others keep their ASCII, other bytes
 *     U+FFFD), line ends normalised, HTML turned into text (html.c), new and quoted text split
 *     (quote.c).
 *  4. Headers are taken raw and decoded here, one RFC 2047 encoded word at a time (GMime
 *     3.2.13 drops the text after a padded B word, gmime issue #133), through charset.c too. When the top-level header block is plain (split_headers) it is read here and
 *     GMime gets only its Content-* fields and the body: GMime's header objects were most of the
 *     parse. Otherwise GMime reads the headers and they are taken from it.
 *
 * OWNERSHIP  message_parse() returns one struct message that owns every string in it;
 *            message_free() releases it all. No GMime object outlives message_parse().
 * DIAGNOSTICS  Malformed mail is never an error: it yields what could be decoded, and
 *              ->limits_hit tells what was cut. -1 only when memory ran out.
 */
#include "message.h"
#include "charset.h"
#include "config.h"
#include "html.h"
#include "quote.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <gmime/gmime.h>

/* how many raw (transfer-decoded) bytes of a part are read per byte of part_text_bytes:
 * enough for any allow-listed charset's expansion, and for markup around HTML text */
#define RAW_PER_TEXT_PLAIN 4
#define RAW_PER_TEXT_HTML 16

void message_limits_default(struct message_limits *lim)
{
	memset(lim, 0, sizeof(*lim));   /* every flag off, also those added later */
	lim->mime_depth = 64;
	lim->mime_parts = 1000;
	lim->header_bytes = 65536;
	lim->header_value_bytes = 8192;
	lim->header_count = 1000;
	lim->part_text_bytes = 50000;
	lim->message_text_bytes = 524288;
	lim->skip_shadowed = false;
}

void message_limits_from_config(const struct config *cfg, struct message_limits *lim)
{
	memset(lim, 0, sizeof(*lim));
	lim->mime_depth = cfg->limits.mime_depth;
	lim->mime_parts = cfg->limits.mime_parts;
	lim->header_bytes = cfg->limits.header_bytes;
	lim->header_value_bytes = cfg->limits.header_value_bytes;
	lim->header_count = cfg->limits.header_count;
	lim->part_text_bytes = cfg->limits.part_text_bytes;
	lim->message_text_bytes = cfg->limits.message_text_bytes;
	lim->skip_shadowed = false;
}

static pthread_once_t message_once = PTHREAD_ONCE_INIT;

static void message_init_once(void)
{
	g_mime_init();
	html_global_init();
}

void message_global_init(void)
{
	pthread_once(&message_once, message_init_once);
}

/* ---------------------------------------------------------------------------------------------
 * RFC 2047 encoded words, decoded one at a time
 * ------------------------------------------------------------------------------------------- */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode the text of one B word (padding ends it; stray characters are skipped). */
static void decode_b(const char *s, size_t n, struct strbuf *out)
{
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n && s[i] != '='; i++) {
		int v = b64val((unsigned char)s[i]);

		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			strbuf_putc(out, (char)((acc >> bits) & 0xFF));
		}
	}
}

static void decode_q(const char *s, size_t n, struct strbuf *out)
{
	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (s[i] == '_') {
			strbuf_putc(out, ' ');
		} else if (s[i] == '=' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
			   (l = hexval((unsigned char)s[i + 2])) >= 0) {
			strbuf_putc(out, (char)(h * 16 + l));
			i += 2;
		} else {
			strbuf_putc(out, s[i]);
		}
	}
}

struct ew {
	const char *cs;         /* charset name, without an RFC 2231 *language */
	size_t cslen;
	char enc;               /* 'B' or 'Q' */
	const char *text;
	size_t textlen;
	size_t len;             /* whole word, "=?" to "?=" */
};

/* parse_ew - an encoded word at s ("=?cs?B?text?="), or false */
static bool parse_ew(const char *s, size_t n, struct ew *w)
{
	size_t i = 2, cs_end, t;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return false;
	while (i < n && s[i] != '?' && s[i] > ' ' && (unsigned char)s[i] < 0x7f && i < 2 + 64)
		i++;
	if (i >= n || s[i] != '?' || i == 2)
		return false;
	cs_end = i;
	if (i + 2 >= n || s[i + 2] != '?')
		return false;
	w->enc = (char)(s[i + 1] & ~0x20);
	if (w->enc != 'B' && w->enc != 'Q')
		return false;
	t = i + 3;
	for (i = t; i + 1 < n; i++) {
		if (s[i] == '?' && s[i + 1] == '=')
			break;
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
			return false;
	}
	if (i + 1 >= n)
		return false;
	w->cs = s + 2;
	w->cslen = cs_end - 2;
	{
		const char *star = memchr(w->cs, '*', w->cslen);

		if (star)
			w->cslen = (size_t)(star - w->cs);
	}
	w->text = s + t;
	w->textlen = i - t;
	w->len = i + 2;
	return true;
}

static bool all_lwsp(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* Adjacent encoded words in one charset are joined before conversion, so a character split
 * across two words still decodes. */
struct ew_run {
	const char *cs;
	size_t cslen;
	struct strbuf bytes;
};

static void ew_flush(struct ew_run *run, struct strbuf *out, unsigned *limits)
{
	if (run->cs) {
		if (charset_to_utf8(run->cs, run->cslen, run->bytes.s ? run->bytes.s : "",
				    run->bytes.len, out) == CHARSET_REFUSED)
			*limits |= MESSAGE_LIMIT_CHARSET;
		strbuf_reset(&run->bytes);
		run->cs = NULL;
	}
}

/* rfc2047_decode - append value with its encoded words decoded (RFC 2047 6.2: white space
 * between adjacent encoded words is dropped) to out. Other text is copied as it is. */
static void rfc2047_decode(const char *s, size_t n, struct strbuf *out, unsigned *limits)
{
	struct ew_run run = { 0 };
	size_t pos = 0, lit = 0;   /* lit: start of pending literal text */

	strbuf_init(&run.bytes, 0);
	while (pos < n) {
		const char *q = memchr(s + pos, '=', n - pos);
		struct ew w;

		if (!q)
			break;
		pos = (size_t)(q - s);
		if (!parse_ew(q, n - pos, &w)) {
			pos++;
			continue;
		}
		if (!(run.cs && all_lwsp(s + lit, pos - lit))) {
			ew_flush(&run, out, limits);
			strbuf_append(out, s + lit, pos - lit);
		}
		if (run.cs && (run.cslen != w.cslen || strncasecmp(run.cs, w.cs, w.cslen) != 0))
			ew_flush(&run, out, limits);
		if (!run.cs) {
			run.cs = w.cs;
			run.cslen = w.cslen;
		}
		if (w.enc == 'B')
			decode_b(w.text, w.textlen, &run.bytes);
		else
			decode_q(w.text, w.textlen, &run.bytes);
		pos += w.len;
		lit = pos;
	}
	ew_flush(&run, out, limits);
	strbuf_append(out, s + lit, n - lit);
	if (run.bytes.oom)
		out->oom = true;
	strbuf_free(&run.bytes);
}

/* ---------------------------------------------------------------------------------------------
 * header values
 * ------------------------------------------------------------------------------------------- */

/* Back len up so that s[0..len) does not end inside a UTF-8 character. Looks only at the bytes
 * before len: a strbuf cut at its limit has already dropped the byte after the cut (the
 * fuzz_mime regression text-cut-mid-char: reading s[len] saw the NUL and kept a partial char). */
static size_t utf8_cut(const char *s, size_t len)
{
	size_t start = len, need;
	unsigned char c;

	while (start > 0 && len - start < 4 && ((unsigned char)s[start - 1] & 0xC0) == 0x80)
		start--;
	if (start == 0)
		return len;
	c = (unsigned char)s[start - 1];
	need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
	return len - (start - 1) < need ? start - 1 : len;
}

/* Trim ASCII white space at both ends, keeping the string at s (so it can still be freed). */
static char *trim_inplace(char *s)
{
	char *t = util_trim(s);

	if (t != s)
		memmove(s, t, strlen(t) + 1);
	return s;
}

/* Unfold: CR, LF and NUL removed (a fold's white space stays), ends trimmed, at most max bytes
 * kept. Returns a malloc'd string or NULL. */
static char *unfold(const char *raw, size_t max, bool *cut)
{
	size_t n = strlen(raw), j = 0;
	char *v = malloc(n + 1);

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (raw[i] != '\r' && raw[i] != '\n')
			v[j++] = raw[i];
	v[j] = '\0';
	trim_inplace(v);
	j = strlen(v);
	if (j > max) {
		v[max] = '\0';
		*cut = true;
	}
	return v;
}

/* Decode a header value: encoded words, then CR/LF/NUL removed, valid UTF-8, at most max bytes. */
static char *decode_value(const char *v, size_t max, bool *cut, unsigned *limits)
{
	struct strbuf b;
	char *clean;
	size_t len, j = 0;

	strbuf_init(&b, 0);
	rfc2047_decode(v, strlen(v), &b, limits);
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	clean = util_utf8_sanitize(b.s ? b.s : "", b.len, &len);
	strbuf_free(&b);
	if (!clean)
		return NULL;
	for (size_t i = 0; i < len; i++)
		if (clean[i] != '\r' && clean[i] != '\n' && clean[i] != '\0')
			clean[j++] = clean[i];
	clean[j] = '\0';
	if (j > max) {
		j = utf8_cut(clean, max);
		clean[j] = '\0';
		*cut = true;
	}
	return clean;
}

/* The first mailbox of an address list: [start,end) of its text (stops at a ',' outside quotes,
 * comments and angle brackets), the angle-bracket position, and whether there is one. */
struct mailbox_span {
	size_t end, lt, gt;
	bool angle;
	size_t cstart, cend;    /* last comment's content, for "addr (Name)" */
	bool comment;
};

static void mailbox_find(const char *v, struct mailbox_span *mb)
{
	bool quoted = false, in_angle = false;
	int depth = 0;
	size_t i;

	memset(mb, 0, sizeof(*mb));
	for (i = 0; v[i]; i++) {
		char c = v[i];

		if (quoted) {
			if (c == '\\' && v[i + 1])
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (depth > 0) {
			if (c == '\\' && v[i + 1])
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')' && --depth == 0)
				mb->cend = i;
			continue;
		}
		if (c == '"') {
			quoted = true;
		} else if (c == '(') {
			depth = 1;
			mb->cstart = i + 1;
			mb->comment = true;
		} else if (c == '<' && !mb->angle) {
			mb->angle = true;
			in_angle = true;
			mb->lt = i;
		} else if (c == '>' && in_angle) {
			in_angle = false;
			mb->gt = i;
		} else if (c == ',' && !in_angle) {
			break;
		}
	}
	mb->end = i;
	if (mb->angle && mb->gt <= mb->lt)
		mb->gt = i;
	if (mb->comment && mb->cend < mb->cstart)
		mb->cend = i;
}

static char *dup_trimmed(const char *s, size_t n)
{
	char *d = util_strndup(s, n);

	return d ? trim_inplace(d) : NULL;
}

/* Remove one level of surrounding quotes and their backslash escapes, in place. */
static void unquote(char *s)
{
	size_t n = strlen(s), j = 0;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return;
	for (size_t i = 1; i + 1 < n; i++) {
		if (s[i] == '\\' && i + 2 < n)
			i++;
		s[j++] = s[i];
	}
	s[j] = '\0';
}

/* parse_mailbox - addr-spec and decoded display name of the first mailbox in an unfolded raw
 * address header. A group's "name:" prefix is skipped. */
static int parse_mailbox(const char *v, size_t max, char **addr, char **name, unsigned *limits)
{
	struct mailbox_span mb;
	const char *colon;
	char *rawname = NULL;
	bool cut = false;

	colon = strchr(v, ':');
	if (colon && (!strchr(v, '<') || colon < strchr(v, '<')) && (!strchr(v, '"') || colon < strchr(v, '"')))
		v = colon + 1;
	mailbox_find(v, &mb);
	if (mb.angle) {
		*addr = dup_trimmed(v + mb.lt + 1, mb.gt - mb.lt - 1);
		rawname = dup_trimmed(v, mb.lt);
	} else {
		size_t stop = mb.comment ? mb.cstart - 1 : mb.end;

		*addr = dup_trimmed(v, stop);
		rawname = mb.comment ? dup_trimmed(v + mb.cstart, mb.cend - mb.cstart) : util_strdup("");
	}
	if (!*addr || !rawname) {
		free(rawname);
		return -1;
	}
	{
		char *semi = strchr(*addr, ';');

		if (semi)
			*semi = '\0';
		trim_inplace(*addr);
	}
	unquote(rawname);
	*name = decode_value(rawname, max, &cut, limits);
	free(rawname);
	if (cut)
		*limits |= MESSAGE_LIMIT_HEADER_BYTES;
	return *name ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * pre-scan: enforce depth, part and header limits on GMime's input
 * ------------------------------------------------------------------------------------------- */

enum scan_kind { SCAN_LEAF, SCAN_MULTIPART, SCAN_MESSAGE };

struct scan_level {
	char *boundary[2];      /* "--" + boundary, NULL when unknown */
	size_t blen[2];
	int depth;              /* depth of the container entity */
	bool alternative;       /* multipart/alternative */
	bool seen_plain;        /* ... and a child so far was a plain text/plain (scan_shadow) */
};

struct scan_seg {
	size_t off, len;
};

struct scan {
	const char *raw;
	char *work;             /* copy of raw with charset names neutralised, once one is */
	size_t len;
	const struct message_limits *lim;
	unsigned limits;
	struct scan_seg *segs;
	size_t nsegs, capsegs;
	size_t keep_from;       /* start of the input run not yet committed to segs */
	size_t end;             /* where the input given to GMime ends */
	int parts;
	struct scan_level *lv;
	int nlv;
	bool drop_binary;       /* leave attachment bodies out (message_parse checks the result) */
	size_t dropped;         /* attachment bodies left out */
	bool drop_shadowed;     /* leave shadowed HTML bodies out (scan_shadow) */
	size_t dropped_shadow;  /* ... left out */
	bool ambiguous;         /* a container had two Content-Type fields: GMime takes the
				 * last, we cannot know which it will be; nothing more is left out */
	struct strbuf kinds;    /* one letter per entity in document order (ENTITY_*) */
	bool malformed;         /* a header line that is no "name: value" (scan_headers) */
	int parent;             /* the level whose boundary began this header block, or -1 */
	bool oom;
};

struct scan_ct {
	enum scan_kind kind;
	char *boundary[2];
	size_t blen[2];
	bool opaque;            /* a boundary we may read differently from GMime */
	int fields;             /* Content-Type fields seen */
	bool binary;            /* application/, image/, audio/, video/, font/, model/ */
	bool plain, html;       /* text/plain, text/html */
	bool alternative;       /* multipart/alternative */
	bool disposition;       /* a Content-Disposition field */
	bool cut;               /* header lines past the limits were left out */
};

/* Leave [from, to) out of GMime's input. */
static void scan_drop(struct scan *s, size_t from, size_t to)
{
	if (from > s->keep_from) {
		if (s->nsegs == s->capsegs) {
			size_t cap = s->capsegs ? s->capsegs * 2 : 8;
			struct scan_seg *n = realloc(s->segs, cap * sizeof(*n));

			if (!n) {
				s->oom = true;
				return;
			}
			s->segs = n;
			s->capsegs = cap;
		}
		s->segs[s->nsegs++] = (struct scan_seg){ s->keep_from, from - s->keep_from };
	}
	if (to > s->keep_from)
		s->keep_from = to;
}

/* The line at pos: [pos, *eol) without CR LF; returns the start of the next line. */
static size_t scan_line(const struct scan *s, size_t pos, size_t *eol)
{
	const char *nl = memchr(s->raw + pos, '\n', s->len - pos);
	size_t e = nl ? (size_t)(nl - s->raw) : s->len;
	size_t next = nl ? e + 1 : s->len;

	if (e > pos && s->raw[e - 1] == '\r')
		e--;
	*eol = e;
	return next;
}

/* Boundary parameters are collected as GMime would decode them: plain, quoted (backslash
 * escapes), RFC 2231 "boundary*" (charset'lang'%XX) and "boundary*N[*]" continuations. What
 * we cannot be sure GMime reads the same way (encoded words, more than two candidates) makes
 * the multipart opaque: its body is not handed to GMime at all. */
#define SCAN_MAX_CONT 16

struct scan_params {
	struct strbuf cont[SCAN_MAX_CONT];   /* boundary*N pieces */
	bool have_cont;
	char *plain[2];                       /* "boundary" and "boundary*" values */
	int nplain;
	bool opaque;
};

static void pct_decode(const char *v, size_t n, struct strbuf *out)
{
	for (size_t i = 0; i < n; i++) {
		int h, l;

		if (v[i] == '%' && i + 2 < n && (h = hexval((unsigned char)v[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)v[i + 2])) >= 0) {
			strbuf_putc(out, (char)(h * 16 + l));
			i += 2;
		} else {
			strbuf_putc(out, v[i]);
		}
	}
}

/* One parameter value at v[q..n): quoted string (unescaped) or token; *end past it. */
static void param_value(const char *v, size_t n, size_t q, struct strbuf *out, size_t *end)
{
	size_t i;

	if (q < n && v[q] == '"') {
		for (i = q + 1; i < n && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < n)
				i++;
			strbuf_putc(out, v[i]);
		}
		*end = i < n ? i + 1 : n;
		return;
	}
	for (i = q; i < n && v[i] != ';' && v[i] != ' ' && v[i] != '\t'; i++)
		;
	strbuf_append(out, v + q, i - q);
	*end = i;
}

static void params_add_plain(struct scan_params *sp, struct strbuf *val)
{
	char *s = strbuf_take(val);

	if (!s || sp->nplain == 2) {
		free(s);
		sp->opaque = true;
		return;
	}
	sp->plain[sp->nplain++] = s;
}

/* One "name=value" parameter starting at v[p]; returns the position after it. */
static size_t scan_param(const char *v, size_t n, size_t p, struct scan_params *sp)
{
	size_t name_end = p, q, end;
	struct strbuf val;

	while (name_end < n && v[name_end] != '=' && v[name_end] != ';' && v[name_end] != ' ' &&
	       v[name_end] != '\t')
		name_end++;
	q = name_end;
	while (q < n && (v[q] == ' ' || v[q] == '\t'))
		q++;
	if (q >= n || v[q] != '=' || name_end - p < 8 || strncasecmp(v + p, "boundary", 8) != 0)
		return q;
	q++;
	while (q < n && (v[q] == ' ' || v[q] == '\t'))
		q++;
	strbuf_init(&val, 0);
	param_value(v, n, q, &val, &end);
	if (name_end - p == 8) {                         /* boundary= */
		params_add_plain(sp, &val);
	} else if (name_end - p == 9 && v[p + 8] == '*') {  /* boundary*=charset'lang'value */
		const char *s = val.s ? val.s : "", *a = strchr(s, '\''), *b = a ? strchr(a + 1, '\'') : NULL;
		struct strbuf dec;

		strbuf_init(&dec, 0);
		pct_decode(b ? b + 1 : s, strlen(b ? b + 1 : s), &dec);
		params_add_plain(sp, &dec);
		strbuf_free(&dec);
	} else if (v[p + 8] == '*') {                     /* boundary*N= or boundary*N*= */
		size_t k = p + 9, idx = 0;
		bool star = v[name_end - 1] == '*';

		while (k < name_end && v[k] >= '0' && v[k] <= '9' && idx < SCAN_MAX_CONT)
			idx = idx * 10 + (size_t)(v[k++] - '0');
		if (idx >= SCAN_MAX_CONT || k != name_end - (star ? 1 : 0)) {
			sp->opaque = true;
		} else {
			const char *s = val.s ? val.s : "";

			if (star && idx == 0) {
				const char *a = strchr(s, '\''), *b = a ? strchr(a + 1, '\'') : NULL;

				s = b ? b + 1 : s;
			}
			strbuf_reset(&sp->cont[idx]);
			if (star)
				pct_decode(s, strlen(s), &sp->cont[idx]);
			else
				strbuf_puts(&sp->cont[idx], s);
			sp->have_cont = true;
		}
	}
	strbuf_free(&val);
	return end;
}

/* Store one candidate boundary ("--" + b) in ct; false when ct is full. */
static bool ct_add_boundary(struct scan_ct *ct, const char *b, size_t n)
{
	struct strbuf s;

	for (int i = 0; i < 2; i++)
		if (ct->boundary[i] && ct->blen[i] == n + 2 && !memcmp(ct->boundary[i] + 2, b, n))
			return true;
	for (int i = 0; i < 2; i++) {
		if (ct->boundary[i])
			continue;
		strbuf_init(&s, 0);
		strbuf_append(&s, "--", 2);
		strbuf_append(&s, b, n);
		ct->blen[i] = s.len;
		ct->boundary[i] = strbuf_take(&s);
		strbuf_free(&s);
		return ct->boundary[i] != NULL;
	}
	return false;
}

/* The boundary candidates of a multipart Content-Type value v[0..n). */
static void ct_boundaries(const char *v, size_t n, struct scan_ct *ct)
{
	struct scan_params sp;
	size_t i = 0;
	bool quoted = false;

	memset(&sp, 0, sizeof(sp));
	for (int k = 0; k < SCAN_MAX_CONT; k++)
		strbuf_init(&sp.cont[k], 0);
	while (i < n) {
		if (v[i] == '"')
			quoted = !quoted;
		else if (v[i] == '\\' && quoted)
			i++;
		else if (v[i] == ';' && !quoted) {
			i++;
			while (i < n && (v[i] == ' ' || v[i] == '\t'))
				i++;
			i = scan_param(v, n, i, &sp);
			continue;
		}
		i++;
	}
	if (sp.have_cont) {
		struct strbuf all;

		strbuf_init(&all, 0);
		for (int k = 0; k < SCAN_MAX_CONT; k++)
			strbuf_append(&all, sp.cont[k].s ? sp.cont[k].s : "", sp.cont[k].len);
		params_add_plain(&sp, &all);
		strbuf_free(&all);
	}
	for (int k = 0; k < sp.nplain; k++) {
		size_t bl = strlen(sp.plain[k]);

		if (strstr(sp.plain[k], "=?") || (bl && !ct_add_boundary(ct, sp.plain[k], bl)))
			sp.opaque = true;
		free(sp.plain[k]);
	}
	for (int k = 0; k < SCAN_MAX_CONT; k++)
		strbuf_free(&sp.cont[k]);
	if (sp.opaque)
		ct->opaque = true;
}

/* Skip white space and (nested) comments of a header value. */
static size_t skip_cfws(const char *f, size_t n, size_t v)
{
	int depth = 0;

	while (v < n) {
		if (f[v] == '(')
			depth++;
		else if (f[v] == ')' && depth > 0)
			depth--;
		else if (!depth && f[v] != ' ' && f[v] != '\t')
			break;
		v++;
	}
	return v;
}

/* Is the media type (the top-level name, len bytes, as in "image" of image/png) one whose
 * body is never read (walk_tree decodes only text/plain and text/html)? */
static bool is_binary_media(const char *type, size_t len)
{
	static const char *const types[] = { "application", "image", "audio", "video", "font",
					     "model" };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(types); i++)
		if (len == strlen(types[i]) && !strncasecmp(type, types[i], len))
			return true;
	return false;
}

/* Does the value v (n bytes) name the media type mt, whole ("text/plain", not "text/plainer")?
 * What may follow is what ends a token for GMime's content-type parser. */
static bool media_is(const char *v, size_t n, const char *mt)
{
	size_t l = strlen(mt);

	return n >= l && !strncasecmp(v, mt, l) &&
	       (n == l || v[l] == ';' || v[l] == ' ' || v[l] == '\t' || v[l] == '(');
}

/* Classify one Content-Type field (name and value as collected) into ct. */
static void scan_content_type(const char *f, size_t n, struct scan_ct *ct)
{
	const char *colon = memchr(f, ':', n);
	size_t v;

	if (!colon)
		return;
	ct->fields++;
	v = skip_cfws(f, n, (size_t)(colon - f) + 1);
	{
		const char *slash = memchr(f + v, '/', n - v);

		ct->binary = slash && slash + 1 < f + n && is_binary_media(f + v, (size_t)(slash - f - v));
	}
	ct->plain = media_is(f + v, n - v, "text/plain");
	ct->html = media_is(f + v, n - v, "text/html");
	if (n - v >= 10 && !strncasecmp(f + v, "multipart/", 10)) {
		ct->kind = SCAN_MULTIPART;
		ct->alternative = media_is(f + v, n - v, "multipart/alternative");
		ct_boundaries(f + v, n - v, ct);
	} else if (ct->kind == SCAN_LEAF &&
		   ((n - v >= 14 && !strncasecmp(f + v, "message/rfc822", 14)) ||
		    (n - v >= 12 && !strncasecmp(f + v, "message/news", 12)) ||
		    (n - v >= 14 && !strncasecmp(f + v, "message/global", 14)))) {
		ct->kind = SCAN_MESSAGE;
	}
}

/* Is the line at p (n bytes) a header field: a name of printable ASCII, then ':'? GMime 3.2.13
 * reads a header block with any other line differently depending on where its 4 KiB read buffer
 * ends (a Content-Type taken or missed: found by fuzz_mime; with GMime alone, the same input
 * shifted by 0-4,200 bytes gave five different structures), so when anything was left out of
 * such a message it is parsed again whole (message_parse). */
static bool field_line(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f && p[i] != ':')
		i++;
	return i > 0 && i < n && p[i] == ':';
}

/* Is the field at p (n bytes) named name (optional blanks, then ':')? */
static bool is_field(const char *p, size_t n, const char *name)
{
	size_t i = strlen(name);

	if (n <= i || strncasecmp(p, name, i) != 0)
		return false;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

/* GMime decodes some headers itself while parsing (Subject, addresses, RFC 2231 parameters),
 * and hands their charset names to iconv. So that only allow-listed charsets reach iconv, a
 * charset name that is not on the list is overwritten with 'x' in a private copy of the input
 * (same length: no offset moves). Our own decoding then sees "xxx" and gives U+FFFD. */
static void scan_blank_charset(struct scan *s, size_t at, size_t n)
{
	if (!s->work) {
		s->work = malloc(s->len ? s->len : 1);
		if (!s->work) {
			s->oom = true;
			return;
		}
		memcpy(s->work, s->raw, s->len);
	}
	memset(s->work + at, 'x', n);
}

/* cs[0..n) names an allow-listed charset; RFC 2231's "*language" suffix ignored */
static bool charset_allowed_2231(const char *cs, size_t n)
{
	const char *star = memchr(cs, '*', n);

	return charset_allowed(cs, star ? (size_t)(star - cs) : n);
}

/* Neutralise the disallowed charsets of encoded words ("=?cs?") and RFC 2231 values
 * ("*=cs'") in the header line [p, eol). */
static void scan_neutralise(struct scan *s, size_t p, size_t eol)
{
	for (size_t i = p; i + 1 < eol; i++) {
		size_t cs = 0, k;
		char stop;

		if (s->raw[i] == '=' && s->raw[i + 1] == '?') {
			cs = i + 2;
			stop = '?';
		} else if (s->raw[i] == '*' && s->raw[i + 1] == '=') {
			cs = i + 2;
			while (cs < eol && (s->raw[cs] == '"' || s->raw[cs] == ' ' || s->raw[cs] == '\t'))
				cs++;
			stop = '\'';
		} else {
			continue;
		}
		/* a charset is a token: letters, digits and - _ . : * ( ) + (RFC 2978 names) */
		for (k = cs; k < eol && k - cs <= 64 && s->raw[k] != stop; k++) {
			unsigned char c = (unsigned char)s->raw[k];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      (c && strchr("-_.:*()+", c))))
				break;
		}
		if (k < eol && s->raw[k] == stop && k > cs && !charset_allowed_2231(s->raw + cs, k - cs))
			scan_blank_charset(s, cs, k - cs);
	}
}

/* Scan one header block from pos. Header lines past the count/byte limits are dropped. Returns
 * the start of the body; ct gets the container kind and boundaries. */
static size_t scan_headers(struct scan *s, size_t pos, struct scan_ct *ct)
{
	struct strbuf field;
	bool collecting = false, dropping = false;
	size_t bytes = 0, drop_from = 0, field_start = pos;
	int count = 0;

	strbuf_init(&field, s->lim->header_value_bytes + 64);
	while (pos < s->len) {
		size_t eol, next = scan_line(s, pos, &eol);
		bool cont = s->raw[pos] == ' ' || s->raw[pos] == '\t';

		if (eol == pos) {               /* blank line: end of the header block */
			if (collecting)
				scan_content_type(field.s, field.len, ct);
			if (dropping)
				scan_drop(s, drop_from, pos);
			strbuf_free(&field);
			return next;
		}
		if (!cont) {
			count++;
			if (collecting)
				scan_content_type(field.s, field.len, ct);
			collecting = false;
			field_start = pos;
		}
		bytes += next - pos;
		if (!dropping && (count > s->lim->header_count || bytes > s->lim->header_bytes)) {
			s->limits |= count > s->lim->header_count ? MESSAGE_LIMIT_HEADER_COUNT
								 : MESSAGE_LIMIT_HEADER_BYTES;
			dropping = true;
			drop_from = field_start;
			collecting = false;
			ct->cut = true;
		}
		if (!dropping && !cont && !s->malformed && !field_line(s->raw + pos, eol - pos))
			s->malformed = true;
		if (!dropping) {
			scan_neutralise(s, pos, eol);
			if (!cont && is_field(s->raw + pos, eol - pos, "content-type")) {
				collecting = true;
				strbuf_reset(&field);
			}
			if (!cont && is_field(s->raw + pos, eol - pos, "content-disposition"))
				ct->disposition = true;
			if (collecting) {
				strbuf_append(&field, s->raw + pos, eol - pos);
				strbuf_putc(&field, ' ');
			}
		}
		pos = next;
	}
	if (collecting)
		scan_content_type(field.s, field.len, ct);
	if (dropping)
		scan_drop(s, drop_from, s->len);
	strbuf_free(&field);
	return s->len;
}

static void scan_ct_free(struct scan_ct *ct)
{
	free(ct->boundary[0]);
	free(ct->boundary[1]);
}

/* Is line [p, eol) one of the boundaries on the stack? Returns its level or -1; *final when it
 * is a closing delimiter. Trailing white space is allowed, as GMime allows it. */
static int scan_match(const struct scan *s, size_t p, size_t eol, bool *final)
{
	size_t n = eol - p;

	while (n > 2 && (s->raw[p + n - 1] == ' ' || s->raw[p + n - 1] == '\t'))
		n--;
	for (int k = s->nlv - 1; k >= 0; k--) {
		for (int j = 0; j < 2; j++) {
			const char *b = s->lv[k].boundary[j];
			size_t bl = s->lv[k].blen[j];

			if (!b || n < bl || memcmp(s->raw + p, b, bl) != 0)
				continue;
			if (n == bl) {
				*final = false;
				return k;
			}
			if (n == bl + 2 && s->raw[p + bl] == '-' && s->raw[p + bl + 1] == '-') {
				*final = true;
				return k;
			}
		}
	}
	return -1;
}

static void scan_pop(struct scan *s, int keep)
{
	while (s->nlv > keep) {
		s->nlv--;
		free(s->lv[s->nlv].boundary[0]);
		free(s->lv[s->nlv].boundary[1]);
	}
}

/* What the scan and GMime's walk each say of every entity, in document order: the check after
 * a parse with bodies left out compares the two strings. A count of entities and of empty
 * attachments can agree by chance when GMime read the structure otherwise (seen: GMime reads
 * some malformed mail differently when a body left out shifts where its read buffer ends). */
#define ENTITY_LEAF 'L'
#define ENTITY_MULTIPART 'M'
#define ENTITY_MESSAGE 'R'
#define ENTITY_DROPPED 'b'      /* a leaf whose body the scan left out / GMime: empty binary */
#define ENTITY_SHADOW 's'       /* a shadowed HTML body left out / GMime: empty shadowed HTML */

/* scan_kind - set the letter of the entity the scan is in (the last one counted) */
static void scan_kind(struct scan *s, char kind)
{
	size_t at = (size_t)s->parts - 1;

	while (s->kinds.len <= at && !s->kinds.oom)
		strbuf_putc(&s->kinds, ENTITY_LEAF);
	if (s->kinds.len > at)
		s->kinds.s[at] = kind;
}

/* A new entity starts at pos: count it; past mime_parts the input ends here. */
static bool scan_new_part(struct scan *s, size_t pos)
{
	if (++s->parts > s->lim->mime_parts) {
		s->limits |= MESSAGE_LIMIT_PARTS;
		s->end = pos;
		return false;
	}
	scan_kind(s, ENTITY_LEAF);      /* until its header block says otherwise */
	return true;
}

/* scan_shadow - is the entity whose header block gave ct an HTML alternative of a text/plain
 * that came before it in the same multipart/alternative? walk_tree marks such a part shadowed
 * and the daemon never reads it (message_limits.skip_shadowed), so GMime need not parse its
 * body either: usually the larger half of an HTML mail. Also notes a text/plain for the parts
 * after it. Only plain header blocks count: one Content-Type field, no Content-Disposition
 * (an attachment does not shadow), nothing cut by the limits; message_parse checks that GMime
 * saw the part as shadowed. */
static bool scan_shadow(struct scan *s, const struct scan_ct *ct)
{
	struct scan_level *l = s->parent >= 0 ? &s->lv[s->parent] : NULL;

	if (!l || !l->alternative || ct->kind != SCAN_LEAF || ct->fields != 1 || ct->disposition ||
	    ct->cut)
		return false;
	if (ct->plain) {
		l->seen_plain = true;
		return false;
	}
	return ct->html && l->seen_plain && s->drop_shadowed && !s->ambiguous;
}

/* scan_run - walk header blocks and boundaries of the whole input once. */
static void scan_run(struct scan *s)
{
	size_t pos = 0, skip_from = 0;
	int depth = 0;
	bool headers = true, skipping = false;

	s->end = s->len;
	s->parts = 1;
	scan_kind(s, ENTITY_LEAF);      /* the top entity, until its header block says otherwise */
	s->parent = -1;
	while (pos < s->len && !s->oom) {
		if (headers) {
			struct scan_ct ct = { .kind = SCAN_LEAF };

			pos = scan_headers(s, pos, &ct);
			headers = false;
			/* "multipart/..." and "text/plain" in one header block: we descend into the
			 * container, GMime takes the last field and may call it all text, in which a
			 * body we left out would be missing (found by fuzz_mime) */
			if (ct.kind != SCAN_LEAF && ct.fields > 1)
				s->ambiguous = true;
			if (ct.kind == SCAN_MULTIPART)
				scan_kind(s, ENTITY_MULTIPART);
			else if (ct.kind == SCAN_MESSAGE)
				scan_kind(s, ENTITY_MESSAGE);
			if (ct.kind != SCAN_LEAF && (ct.opaque || depth + 1 > s->lim->mime_depth)) {
				s->limits |= MESSAGE_LIMIT_DEPTH;
				skipping = true;
				skip_from = pos;
			} else if (ct.kind == SCAN_LEAF && ct.binary && ct.fields == 1 && s->drop_binary &&
				   !s->ambiguous) {
				/* an attachment's body (PDF, image, ...) is never read: GMime need not
				 * parse it. With two Content-Type fields GMime might read the other:
				 * kept. message_parse checks that GMime saw the same structure. */
				skipping = true;
				skip_from = pos;
				s->dropped++;
				scan_kind(s, ENTITY_DROPPED);
			} else if (scan_shadow(s, &ct)) {
				skipping = true;
				skip_from = pos;
				s->dropped_shadow++;
				scan_kind(s, ENTITY_SHADOW);
			} else if (ct.kind != SCAN_LEAF) {
				struct scan_level *l = &s->lv[s->nlv++];

				l->boundary[0] = ct.boundary[0];
				l->boundary[1] = ct.boundary[1];
				l->blen[0] = ct.blen[0];
				l->blen[1] = ct.blen[1];
				l->depth = depth;
				l->alternative = ct.alternative;
				l->seen_plain = false;
				ct.boundary[0] = ct.boundary[1] = NULL;
				if (ct.kind == SCAN_MESSAGE) {
					depth++;
					headers = true;
					s->parent = -1;
					if (!scan_new_part(s, pos))
						break;
				}
			}
			scan_ct_free(&ct);
			continue;
		}
		if (s->len - pos < 2 || s->raw[pos] != '-' || s->raw[pos + 1] != '-') {
			/* Only a line that starts with "--" can be a boundary: on to the next one
			 * (memchr per line: glibc's memmem is slower than that for "\n--"). */
			const char *p = s->raw + pos, *end = s->raw + s->len, *nl;

			pos = s->len;
			while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
				if (end - nl > 2 && nl[1] == '-' && nl[2] == '-') {
					pos = (size_t)(nl + 1 - s->raw);
					break;
				}
				p = nl + 1;
			}
			continue;
		}
		{
			size_t eol, next = scan_line(s, pos, &eol);
			bool final = false;
			int k;

			if (eol - pos < 3 || s->raw[pos] != '-' || s->raw[pos + 1] != '-' ||
			    (k = scan_match(s, pos, eol, &final)) < 0) {
				pos = next;
				continue;
			}
			if (skipping) {
				scan_drop(s, skip_from, pos);
				skipping = false;
			}
			scan_pop(s, final ? k : k + 1);
			if (!final) {
				depth = s->lv[k].depth + 1;
				headers = true;
				s->parent = k;
				if (!scan_new_part(s, next))
					break;
			} else {
				depth = k > 0 ? s->lv[k - 1].depth + 1 : 0;
			}
			pos = next;
		}
	}
	if (skipping)
		scan_drop(s, skip_from, s->end);
	scan_pop(s, 0);
}

/* ---------------------------------------------------------------------------------------------
 * top-level headers: read here when they are plain, so that GMime does not have to
 *
 * GMime makes a GObject of every header it reads and parses some of them (addresses, dates) on
 * the way in, and all of it is freed again: for most mail, most of the parse. We take only the
 * raw names and values of the top-level headers from it (take_headers decodes them). So when the
 * top-level header block is plain, it is read here and GMime is given only its Content-* fields
 * (the only ones it reads for the MIME structure) and the body. Plain: every line is either
 * "name:value" with a name of printable ASCII other than ':', or a continuation starting with a
 * space or tab; no NUL, no CR except before LF; the block ends at an empty line. Anything else
 * is GMime's to read, as before. The list is what GMime lists: names as written, values raw from
 * after the colon through the line end of their last line, Content-* fields left out (GMime
 * keeps them on the MIME part). message_limits.gmime_headers turns this off: test_message and
 * fuzz_mime compare the two readings.
 * ------------------------------------------------------------------------------------------- */

struct raw_headers {
	struct strbuf b;        /* "name\0value\0" for each header, in order */
	size_t *at;             /* offset of header i's name in b; its value follows the name */
	size_t n, cap;
	bool split;             /* read by split_headers (else to be taken from GMime) */
};

static void raw_headers_free(struct raw_headers *rh)
{
	strbuf_free(&rh->b);
	free(rh->at);
	*rh = (struct raw_headers){ 0 };
}

static int raw_headers_add(struct raw_headers *rh, const char *name, size_t nl, const char *value,
			   size_t vl)
{
	if (rh->n == rh->cap) {
		size_t cap = rh->cap ? rh->cap * 2 : 32;
		size_t *at = realloc(rh->at, cap * sizeof(*at));

		if (!at)
			return -1;
		rh->at = at;
		rh->cap = cap;
	}
	rh->at[rh->n++] = rh->b.len;
	strbuf_append(&rh->b, name, nl);
	strbuf_append(&rh->b, "", 1);
	strbuf_append(&rh->b, value, vl);
	strbuf_append(&rh->b, "", 1);
	return rh->b.oom || rh->b.truncated ? -1 : 0;
}

static const char *raw_header_name(const struct raw_headers *rh, size_t i)
{
	return rh->b.s + rh->at[i];
}

static const char *raw_header_value(const struct raw_headers *rh, size_t i)
{
	const char *name = raw_header_name(rh, i);

	return name + strlen(name) + 1;
}

static bool is_content_field(const char *name, size_t n)
{
	return n >= 8 && !g_ascii_strncasecmp(name, "Content-", 8);
}

/* Where the line at p ends (its LF, or n), or SIZE_MAX when it has a NUL or a bare CR. */
static size_t plain_line_end(const char *b, size_t n, size_t p)
{
	const char *nl = memchr(b + p, '\n', n - p);
	size_t e = nl ? (size_t)(nl - b) : n;

	if (memchr(b + p, '\0', e - p))
		return SIZE_MAX;
	/* the first CR must be the last byte before the LF (then it is the only one) */
	const char *cr = memchr(b + p, '\r', e - p);

	if (cr && (!nl || (size_t)(cr - b) + 1 != e))
		return SIZE_MAX;
	return e;
}

/* Read the plain header block at the start of b[0, n) into rh (rh->split). Returns the offset of
 * the empty line, or SIZE_MAX (rh left empty) when the block is not plain. */
static size_t split_headers(const char *b, size_t n, struct raw_headers *rh)
{
	size_t p = 0, blank = SIZE_MAX;
	size_t hstart = 0, colon = 0;   /* the header being read: its first line, its ':' */
	bool in_header = false;

	while (p < n) {
		size_t e = plain_line_end(b, n, p);

		if (e == SIZE_MAX || e == n)
			goto not_plain;         /* NUL, bare CR, or no end to the header block */
		if (e == p || (e == p + 1 && b[p] == '\r')) {
			blank = p;
			break;
		}
		if (b[p] == ' ' || b[p] == '\t') {
			if (!in_header)
				goto not_plain;
		} else {
			size_t c = p;

			while (c < e && b[c] != ':' && b[c] > 0x20 && b[c] < 0x7f)
				c++;
			if (c == p || c == e || b[c] != ':')
				goto not_plain;
			if (in_header && raw_headers_add(rh, b + hstart, colon - hstart, b + colon + 1,
							 p - colon - 1) < 0)
				goto not_plain;
			in_header = true;
			hstart = p;
			colon = c;
		}
		p = e + 1;
	}
	if (blank == SIZE_MAX || !in_header)
		goto not_plain;
	if (raw_headers_add(rh, b + hstart, colon - hstart, b + colon + 1, blank - colon - 1) < 0)
		goto not_plain;
	rh->split = true;
	return blank;
not_plain:
	raw_headers_free(rh);
	return SIZE_MAX;
}

/* The start of GMime's input after split_headers: the Content-* fields, each with its
 * continuation lines, into st (when there is one); they leave rh's list (GMime lists them on
 * the MIME part, so the message's list never has them). Returns the bytes they take. */
static size_t content_fields_to(struct raw_headers *rh, GMimeStream *st)
{
	size_t w = 0, bytes = 0;

	for (size_t i = 0; i < rh->n; i++) {
		const char *name = raw_header_name(rh, i), *value = raw_header_value(rh, i);
		size_t nl = strlen(name), vl = strlen(value);

		if (!is_content_field(name, nl)) {
			rh->at[w++] = rh->at[i];
			continue;
		}
		bytes += nl + 1 + vl;
		if (st) {
			g_mime_stream_write(st, name, nl);
			g_mime_stream_write(st, ":", 1);
			g_mime_stream_write(st, value, vl);
		}
	}
	rh->n = w;
	return bytes;
}

/* pad_headers - one filler field of n bytes ("X:xxx...\n", n >= 3; nothing for less) into st,
 * so that the body after the Content-* fields starts at the offset it has in the message. GMime
 * 3.2.13 reads some malformed mail differently depending on where its 4 KiB read buffer ends
 * (a part's type flipped between text/plain and text/html when only the top-level header block
 * had been shortened: found by fuzz_mime). With the offsets equal, both readings see the same.
 * The field is GMime's only: headers are taken from rh. */
static void pad_headers(GMimeStream *st, size_t n)
{
	static const char fill[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

	if (n < 3)
		return;
	g_mime_stream_write(st, "X:", 2);
	for (n -= 3; n > 0;) {
		size_t k = n < sizeof(fill) - 1 ? n : sizeof(fill) - 1;

		g_mime_stream_write(st, fill, k);
		n -= k;
	}
	g_mime_stream_write(st, "\n", 1);
}

/* ---------------------------------------------------------------------------------------------
 * a lone text part: decoded here, without a GMime tree
 *
 * Most mail is one text/plain or text/html part. For it GMime would build a parser, a message,
 * a part, a data wrapper, streams and a filter (some twenty GObjects) only for us to read the
 * transfer-decoded body back out. When split_headers has read the header block and the scan
 * kept the body whole, the Content-* fields are read here with GMime's own functions, in
 * GMime's order (the last of each name wins, as each one GMime's part processes replaces the
 * one before, and as the parser takes the last Content-Type to choose the kind of part): the
 * decoded value (g_mime_utils_header_unfold, then g_mime_utils_header_decode_text, as
 * g_mime_header_get_value does), g_mime_content_type_parse, g_mime_content_encoding_from_string,
 * g_mime_content_disposition_parse. The body is everything after the empty line (as GMime's
 * top-level leaf has no boundary to stop at), transfer-decoded with GMime's decoder state
 * machine (g_mime_encoding_step, g_mime_encoding_flush), as its filter stream would. Anything
 * else (multipart, message/rfc822, uuencode, a type the raw and the decoded value disagree on)
 * is GMime's, as before. message_limits.gmime_headers turns split_headers off, and this with
 * it: test_message and fuzz_mime compare the two readings.
 * ------------------------------------------------------------------------------------------- */

struct lone_part {
	GMimeContentType *ct;           /* NULL: no Content-Type (text/plain, as GMime) */
	GMimeContentEncoding enc;
	bool html;
	bool attachment;
	const char *body;               /* into the raw message or the scan's copy */
	size_t body_len;
};

static void lone_part_clear(struct lone_part *lp)
{
	if (lp->ct)
		g_object_unref(lp->ct);
	*lp = (struct lone_part){ 0 };
}

/* A header value as g_mime_header_get_value gives it (unfolded, RFC 2047 decoded); g_free. */
static char *gmime_value(GMimeParserOptions *opts, const char *raw)
{
	char *unfolded = g_mime_utils_header_unfold(raw);
	char *v = g_mime_utils_header_decode_text(opts, unfolded);

	g_free(unfolded);
	return v;
}

/* Is a raw value one line of printable ASCII (and blanks) without an encoded word? Then the
 * decoded value is the raw one without the blanks around it, which GMime's content-type parser
 * skips: parsing the raw value too would tell nothing new (about 10,000 instructions). */
static bool plain_value(const char *raw)
{
	const char *p = raw;

	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n')
			break;
		if ((c < 0x20 && c != '\t') || c > 0x7e || (c == '=' && p[1] == '?'))
			return false;
	}
	return !p[strspn(p, "\r\n")];    /* nothing after the line end */
}

/* Is ct text/plain or text/html? *html says which. */
static bool text_leaf_type(GMimeContentType *ct, bool *html)
{
	*html = g_mime_content_type_is_type(ct, "text", "html");
	return *html || g_mime_content_type_is_type(ct, "text", "plain");
}

/* Is the part whose Content-* fields rh lists (before content_fields_to) a lone text part we
 * can read? Fills lp (its ct is the caller's to release with lone_part_clear) or leaves it
 * clear. */
static bool lone_part_of(const struct raw_headers *rh, GMimeParserOptions *opts,
			 struct lone_part *lp)
{
	const char *ctv = NULL, *ctev = NULL, *cdv = NULL;
	char *v;

	for (size_t i = 0; i < rh->n; i++) {
		const char *name = raw_header_name(rh, i);

		if (!g_ascii_strcasecmp(name, "Content-Type"))
			ctv = raw_header_value(rh, i);
		else if (!g_ascii_strcasecmp(name, "Content-Transfer-Encoding"))
			ctev = raw_header_value(rh, i);
		else if (!g_ascii_strcasecmp(name, "Content-Disposition"))
			cdv = raw_header_value(rh, i);
	}
	*lp = (struct lone_part){ .enc = GMIME_CONTENT_ENCODING_DEFAULT };
	if (ctv) {
		/* the parser chooses the kind of part from the raw value, the part keeps the
		 * decoded one: both must say text/plain or text/html, and the same */
		bool plain = plain_value(ctv), raw_html = false;

		if (!plain) {
			GMimeContentType *raw_ct = g_mime_content_type_parse(opts, ctv);
			bool ok = text_leaf_type(raw_ct, &raw_html);

			g_object_unref(raw_ct);
			if (!ok)
				return false;
		}
		v = gmime_value(opts, ctv);
		lp->ct = g_mime_content_type_parse(opts, v);
		g_free(v);
		if (!text_leaf_type(lp->ct, &lp->html) || (!plain && lp->html != raw_html))
			goto not_lone;
	}
	if (ctev) {
		v = gmime_value(opts, ctev);
		lp->enc = g_mime_content_encoding_from_string(v);
		g_free(v);
		if (lp->enc == GMIME_CONTENT_ENCODING_UUENCODE)
			goto not_lone;  /* its filter looks for the "begin" line itself */
	}
	if (cdv) {
		GMimeContentDisposition *cd;
		const char *disp;

		v = gmime_value(opts, cdv);
		cd = g_mime_content_disposition_parse(opts, v);
		g_free(v);
		disp = cd ? g_mime_content_disposition_get_disposition(cd) : NULL;
		lp->attachment = disp && !g_ascii_strcasecmp(disp, "attachment");
		if (cd)
			g_object_unref(cd);
	}
	return true;
not_lone:
	lone_part_clear(lp);
	return false;
}

/* What message_parse asks of the scan, and what it learns. */
struct scan_result {
	bool drop_binary;       /* in: leave out attachment bodies */
	bool drop_shadowed;     /* in: leave out shadowed HTML bodies (scan_shadow) */
	int parts;              /* out: entities the scan found */
	size_t dropped;         /* out: attachment bodies left out */
	size_t dropped_shadow;  /* out: shadowed HTML bodies left out */
	bool retry_shadowed;    /* out: disagreed over shadowed HTML only: parse again with those
				 * bodies kept (and attachments' still left out) */
	bool malformed;         /* out: a header block the scan cannot vouch for (field_line) */
	char *kinds;            /* out: the scan's letter per entity (ENTITY_*), malloc'd; freed
				 * by parse_once */
	size_t n_kinds;
};

/* message_scan - bound the input; 0, or -1 when out of memory. GMime is to parse *st; or,
 * when the message is a lone text part (lp->body set; *st NULL), nobody is: the body points into
 * raw or into *work (the scan's copy, the caller's to free). */
static int message_scan(const char *raw, size_t len, const struct message_limits *lim,
			GMimeParserOptions *opts, unsigned *limits, struct scan_result *res,
			struct raw_headers *rh, GMimeStream **st, struct lone_part *lp, char **work)
{
	struct scan s = { .raw = raw, .len = len, .lim = lim, .drop_binary = res->drop_binary,
			  .drop_shadowed = res->drop_shadowed };
	int max_levels = lim->mime_depth > 0 ? lim->mime_depth + 2 : 2;

	strbuf_init(&s.kinds, 0);
	*st = NULL;
	*work = NULL;
	s.lv = calloc((size_t)max_levels, sizeof(*s.lv));
	if (!s.lv)
		return -1;
	scan_run(&s);
	res->parts = s.parts;
	res->dropped = s.dropped;
	res->dropped_shadow = s.dropped_shadow;
	res->malformed = s.malformed;
	res->n_kinds = s.kinds.oom ? 0 : s.kinds.len;
	res->kinds = strbuf_take(&s.kinds);
	strbuf_free(&s.kinds);
	if (!s.oom) {
		if (s.end > s.keep_from)
			scan_drop(&s, s.end, s.end);
		const char *in = s.work ? s.work : raw;
		size_t from = 0;    /* of segment 0: where GMime's input goes on after the headers */

		*limits |= s.limits;
		if (s.nsegs && !lim->gmime_headers) {
			from = split_headers(in + s.segs[0].off, s.segs[0].len, rh);
			if (from == SIZE_MAX)
				from = 0;
		}
		if (rh->split && s.nsegs == 1 && !s.dropped && !s.dropped_shadow &&
		    lone_part_of(rh, opts, lp)) {
			/* the body starts after the empty line ("\n" or "\r\n") at from */
			size_t at = from + (in[s.segs[0].off + from] == '\r' ? 2 : 1);

			lp->body = in + s.segs[0].off + at;
			lp->body_len = s.segs[0].len - at;
			content_fields_to(rh, NULL);
			*work = s.work;
			s.work = NULL;
		} else if (!rh->split && s.nsegs == 1 && s.segs[0].off == 0 && s.segs[0].len == len) {
			*st = g_mime_stream_mem_new_with_buffer(in, len);
		} else {
			*st = g_mime_stream_mem_new_with_byte_array(g_byte_array_sized_new((guint)
				(len < G_MAXUINT ? len : G_MAXUINT)));
			if (rh->split) {
				size_t fields = content_fields_to(rh, *st);

				pad_headers(*st, from > fields ? from - fields : 0);
			}
			for (size_t i = 0; i < s.nsegs; i++)
				g_mime_stream_write(*st, in + s.segs[i].off + (i ? 0 : from),
						    s.segs[i].len - (i ? 0 : from));
			g_mime_stream_reset(*st);
		}
	}
	free(s.lv);
	free(s.segs);
	free(s.work);
	return *st || lp->body ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * text parts
 * ------------------------------------------------------------------------------------------- */

struct decoder {
	const struct message_limits *lim;
	struct message *m;
	size_t text_used;       /* decoded text so far, against message_text_bytes */
	size_t cap_parts;
	int visited;            /* entities walked */
	size_t empty_binary;    /* attachments (scan's binary types) with an empty body */
	bool check_empty;       /* the scan left shadowed bodies out: count the two below */
	size_t empty_shadowed;  /* shadowed HTML parts with an empty body */
	size_t empty_text;      /* text parts that are read, with an empty body */
	struct strbuf kinds;    /* GMime's letter per entity walked (ENTITY_*), for the check */
	bool *group_text;       /* per multipart/alternative with a text/plain child: that child
				 * has text (not blank, not a stub), so its HTML alternatives are
				 * shadowed */
	int n_groups, cap_groups;
	bool oom;
};

static size_t mul_cap(size_t a, size_t b)
{
	return a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* Where a text part's content comes from: a part of GMime's tree, or a lone part's body. */
struct leaf_src {
	GMimePart *gp;                  /* NULL: the lone part */
	const struct lone_part *lp;
};

/* Append up to cap bytes in all to raw; *more (and false) when some of buf did not fit. */
static bool append_capped(struct strbuf *raw, const char *buf, size_t n, size_t cap, bool *more)
{
	if (raw->len + n > cap) {
		strbuf_append(raw, buf, cap - raw->len);
		*more = true;
		return false;
	}
	strbuf_append(raw, buf, n);
	return true;
}

#define DECODE_STEP 4096
#define DECODE_RUN 16         /* a run without "=" this long is copied, not stepped */
#define DECODE_DENSE 256      /* input bytes qp_dense takes at a time */

/* Quoted-printable from in[*pos] on, the machine being in state 0: plain bytes as they are and
 * "=XY" with two hex digits as that byte, exactly what the machine makes of them, for about
 * DECODE_DENSE bytes of input; stops before any other "=" (a soft break, junk, or an escape
 * cut by the end of in), which is the machine's to step. Returns the bytes written to out. */
static size_t qp_dense(const char *in, size_t n, size_t *pos, char *out)
{
	size_t i = *pos, end = n - i < DECODE_DENSE ? n : i + DECODE_DENSE, w = 0;
	int hi, lo;

	while (i < end) {
		if (in[i] != '=') {
			out[w++] = in[i++];
			continue;
		}
		if (i + 2 >= n || (hi = hexval((unsigned char)in[i + 1])) < 0 ||
		    (lo = hexval((unsigned char)in[i + 2])) < 0)
			break;
		out[w++] = (char)(hi << 4 | lo);
		i += 3;
	}
	*pos = i;
	return w;
}

/* Transfer-decode in[0..n) with GMime's decoder state machine (dec), appending to raw, at most
 * cap bytes in all; false once past cap. For quoted-printable the machine is only stepped over
 * what needs it (soft breaks and junk): in its state 0 every byte but "=" goes out unchanged
 * and "=XY" becomes its byte (g_mime_encoding_quoted_decode_step), so long runs without "="
 * are copied as they are, found with memchr, and the rest goes through qp_dense. The same
 * output as stepping over everything (the machine keeps its state between steps, and
 * test_qp_as_gmime compares the two); GMime's byte-by-byte loop was a tenth of the pipeline's
 * time for a 300 KB mail. Base64 is stepped in DECODE_STEP blocks. */
static bool decode_into(GMimeEncoding *dec, const char *in, size_t n, struct strbuf *raw,
			size_t cap, bool *more)
{
	char buf[2 * DECODE_STEP];   /* a decoding step's output is below twice its input */
	bool qp = dec->encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
	size_t pos = 0;

	while (pos < n) {
		size_t k, out;

		if (qp && dec->state == 0) {
			const char *eq = memchr(in + pos, '=', n - pos);
			size_t run = eq ? (size_t)(eq - (in + pos)) : n - pos;

			if (run >= DECODE_RUN || !eq) {
				if (!append_capped(raw, in + pos, run, cap, more))
					return false;
				pos += run;
				continue;
			}
			out = qp_dense(in, n, &pos, buf);
			if (out && !append_capped(raw, buf, out, cap, more))
				return false;
			if (pos >= n || in[pos] != '=')
				continue;
			k = n - pos < 3 ? n - pos : 3;    /* "=" and what follows: state 0 after */
		} else if (qp) {
			k = n - pos < 2 ? n - pos : 2;    /* the rest of an escape cut by a read */
		} else {
			k = n - pos < DECODE_STEP ? n - pos : DECODE_STEP;
		}
		out = g_mime_encoding_step(dec, in + pos, k, buf);
		pos += k;
		if (!append_capped(raw, buf, out, cap, more))
			return false;
	}
	return true;
}

/* The end of a decoding: what the machine still holds (GMime's filter's complete()). */
static void decode_flush(GMimeEncoding *dec, struct strbuf *raw, size_t cap, bool *more)
{
	char buf[64];   /* a flush of no input gives back at most a few held bytes */

	append_capped(raw, buf, g_mime_encoding_flush(dec, "", 0, buf), cap, more);
}

/* A uuencoded GMime part, through its data wrapper and GMime's decoding filter (which also
 * finds the "begin" line). GMime's filter stream returns 0 for a block of input that decodes
 * to nothing (4 KB of junk) as if the content had ended: a 0 counts as the end only at the
 * end of the filter stream (or when its source stops moving). */
static void read_filtered(GMimeStream *src, GMimeContentEncoding enc, size_t cap,
			  struct strbuf *raw, bool *more)
{
	GMimeStream *f = g_mime_stream_filter_new(src);
	GMimeFilter *dec = g_mime_filter_basic_new(enc, FALSE);
	gint64 stalled = -1;    /* where the source was at the last empty read */
	char buf[8192];

	g_mime_stream_filter_add(GMIME_STREAM_FILTER(f), dec);
	g_object_unref(dec);
	g_mime_stream_reset(f);
	for (;;) {
		ssize_t n = g_mime_stream_read(f, buf, sizeof(buf));

		if (n == 0) {
			gint64 at = g_mime_stream_tell(src);

			if (g_mime_stream_eos(f) || at == stalled)
				break;
			stalled = at;
			continue;
		}
		if (n < 0 || !append_capped(raw, buf, (size_t)n, cap, more))
			break;
	}
	g_object_unref(f);
}

/* A GMime part's transfer-decoded content: its data wrapper's stream read as it is (7bit,
 * 8bit, binary) or through decode_into (base64, quoted-printable), stopping once past cap. */
static void read_gmime_content(GMimePart *part, size_t cap, struct strbuf *raw, bool *more)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeContentEncoding enc;
	GMimeEncoding dec;
	GMimeStream *src;
	bool coded;
	char in[8192];

	if (!w || !(src = g_mime_data_wrapper_get_stream(w)))
		return;
	enc = g_mime_data_wrapper_get_encoding(w);
	if (enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		read_filtered(src, enc, cap, raw, more);
		return;
	}
	coded = enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE;
	if (coded)
		g_mime_encoding_init_decode(&dec, enc);
	g_mime_stream_reset(src);
	for (;;) {
		ssize_t n = g_mime_stream_read(src, in, sizeof(in));

		if (n <= 0)
			break;
		if (!(coded ? decode_into(&dec, in, (size_t)n, raw, cap, more)
			    : append_capped(raw, in, (size_t)n, cap, more)))
			return;
	}
	if (coded)
		decode_flush(&dec, raw, cap, more);
}

/* A lone part's body, transfer-decoded as a part of GMime's tree is (read_gmime_content),
 * stopping once past cap. */
static void read_lone_content(const struct lone_part *lp, size_t cap, struct strbuf *raw,
			      bool *more)
{
	GMimeEncoding dec;

	if (lp->enc != GMIME_CONTENT_ENCODING_BASE64 &&
	    lp->enc != GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) {
		append_capped(raw, lp->body, lp->body_len, cap, more);
		return;
	}
	g_mime_encoding_init_decode(&dec, lp->enc);
	if (decode_into(&dec, lp->body, lp->body_len, raw, cap, more))
		decode_flush(&dec, raw, cap, more);
}

/* Read a part's transfer-decoded content, at most cap bytes; *more when some was left. */
static void read_content(const struct leaf_src *src, size_t cap, struct strbuf *raw, bool *more)
{
	*more = false;
	if (src->gp)
		read_gmime_content(src->gp, cap, raw, more);
	else
		read_lone_content(src->lp, cap, raw, more);
}

/* CRLF and bare CR become LF, NUL bytes and a leading BOM go; in place. */
static void normalize_text(struct strbuf *b)
{
	size_t j = 0, i = 0;

	if (!b->s)
		return;
	if (b->len >= 3 && !memcmp(b->s, "\xEF\xBB\xBF", 3))
		i = 3;
	/* Whole runs up to the next CR or NUL move at once (strcspn stops at either; the buffer
	 * is NUL-terminated at len): one memmove per line of CRLF text, not a store per byte. */
	while (i < b->len) {
		size_t r = strcspn(b->s + i, "\r");

		if (r > b->len - i)
			r = b->len - i;
		if (r && j != i)
			memmove(b->s + j, b->s + i, r);
		j += r;
		i += r;
		if (i >= b->len)
			break;
		if (b->s[i] == '\r') {
			b->s[j++] = '\n';
			if (i + 1 < b->len && b->s[i + 1] == '\n')
				i++;
		}
		i++;    /* the CR (or CRLF) written as LF, or a NUL dropped */
	}
	b->len = j;
	b->s[j] = '\0';
}

/* Take a strbuf's text without trailing newlines; NULL only when out of memory. */
static char *take_trimmed(struct strbuf *b, size_t *len)
{
	char *s;

	while (b->len && b->s[b->len - 1] == '\n')
		b->len--;
	if (b->s)
		b->s[b->len] = '\0';
	*len = b->len;
	s = strbuf_take(b);
	return s;
}

static struct message_part *new_part(struct decoder *d)
{
	struct message *m = d->m;

	if (m->n_parts == d->cap_parts) {
		size_t cap = d->cap_parts ? d->cap_parts * 2 : 4;
		struct message_part *n = realloc(m->parts, cap * sizeof(*n));

		if (!n)
			return NULL;
		m->parts = n;
		d->cap_parts = cap;
	}
	memset(&m->parts[m->n_parts], 0, sizeof(m->parts[0]));
	return &m->parts[m->n_parts++];
}

/* The text of one part: decoded, converted, HTML rendered, cut at the budget, split. */
static int decode_text(struct decoder *d, const struct leaf_src *src, struct message_part *p,
		       const char *cs)
{
	const struct message_limits *lim = d->lim;
	size_t budget = lim->message_text_bytes > d->text_used ? lim->message_text_bytes - d->text_used : 0;
	size_t limit = lim->part_text_bytes < budget ? lim->part_text_bytes : budget;
	struct strbuf raw, utf, text, nw, qt;
	bool more = false, valid = false;
	enum charset_result conv;
	int rc = 0;

	strbuf_init(&raw, 0);
	strbuf_init(&utf, 0);
	strbuf_init(&text, limit ? limit : 1);
	strbuf_init(&nw, 0);
	strbuf_init(&qt, 0);
	if (limit) {
		read_content(src, mul_cap(limit, p->is_html ? RAW_PER_TEXT_HTML : RAW_PER_TEXT_PLAIN), &raw, &more);
		conv = charset_to_utf8(cs, strlen(cs), raw.s ? raw.s : "", raw.len, &utf);
		if (conv == CHARSET_REFUSED)
			d->m->limits_hit |= MESSAGE_LIMIT_CHARSET;
		valid = conv != CHARSET_CONVERTED;
		normalize_text(&utf);   /* drops CRs, NULs, a BOM: whole characters */
		if (p->is_html) {
			html_to_text(utf.s ? utf.s : "", utf.len, &text);
			valid = false;  /* libxml2's, and cut where the buffer ended */
		} else {
			strbuf_append(&text, utf.s ? utf.s : "", utf.len);
		}
	}
	if (!limit || text.truncated || more) {
		p->truncated = true;
		d->m->limits_hit |= (limit < lim->part_text_bytes && (!limit || text.truncated))
					    ? MESSAGE_LIMIT_MESSAGE_TEXT : MESSAGE_LIMIT_PART_TEXT;
		if (text.s) {
			text.len = utf8_cut(text.s, text.len);
			text.s[text.len] = '\0';
		}
	}
	/* plain text known valid stays so: a cut above ends on a character (utf8_cut) */
	if (text.s && !valid && !util_utf8_valid(text.s, text.len)) {
		char *clean = util_utf8_sanitize(text.s, text.len, &text.len);

		if (clean) {
			free(text.s);
			text.s = clean;
			text.cap = text.len + 1;
		} else {
			text.oom = true;
		}
	}
	d->text_used += text.len;
	if (p->in_rfc822)
		strbuf_append(&qt, text.s ? text.s : "", text.len);
	else
		quote_split(text.s ? text.s : "", text.len, &nw, &qt);
	if (raw.oom || utf.oom || text.oom || nw.oom || qt.oom)
		rc = -1;
	p->text = take_trimmed(&text, &p->text_len);
	p->new_text = take_trimmed(&nw, &p->new_len);
	p->quoted_text = take_trimmed(&qt, &p->quoted_len);
	if (!p->text || !p->new_text || !p->quoted_text)
		rc = -1;
	strbuf_free(&raw);
	strbuf_free(&utf);
	strbuf_free(&text);
	strbuf_free(&nw);
	strbuf_free(&qt);
	return rc;
}

static bool is_attachment(GMimeObject *o)
{
	const char *disp = g_mime_object_get_disposition(o);

	return disp && !strcasecmp(disp, "attachment");
}

static bool is_text_type(GMimeObject *o, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);

	return ct && g_mime_content_type_is_type(ct, "text", subtype);
}

/* Is the part's body empty (as one the scan left out is)? */
static bool is_empty_body(GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *st = w ? g_mime_data_wrapper_get_stream(w) : NULL;

	return !st || g_mime_stream_length(st) == 0;
}

/* Is this a part of one of the scan's binary types whose body is empty (left out by the scan)? */
static bool is_empty_binary(GMimePart *part)
{
	GMimeContentType *ct = g_mime_object_get_content_type((GMimeObject *)part);
	const char *type = ct ? g_mime_content_type_get_media_type(ct) : NULL;

	return type && is_binary_media(type, strlen(type)) && is_empty_body(part);
}

/* Only white space (ASCII, no-break and zero-width spaces): a text/plain alternative like this
 * says nothing, and the HTML beside it must be read instead. */
static bool text_is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' || (c >= '\t' && c <= '\r')) {
			i++;
		} else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0) {
			i += 2;                                 /* U+00A0 */
		} else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
			   ((unsigned char)s[i + 2] >= 0x8B && (unsigned char)s[i + 2] <= 0x8D)) {
			i += 3;                                 /* U+200B..U+200D */
		} else {
			return false;
		}
	}
	return true;
}

/*
 * A stub: a short text/plain alternative that only says to read the HTML ("To view this
 * message, use an HTML-capable mail client", "View this email in your browser"), as web forms,
 * helpdesk tools and mass mailers send. It says nothing either, and the HTML beside it is the
 * text. Only short parts are looked at (STUB_MAX bytes): a long text/plain part that mentions
 * HTML is a message. The phrases are English because the tools that write them are; a
 * customer's own words in any language are longer than the phrase or do not contain it, and a
 * stub that also holds a sentence of the customer's loses nothing: both parts are then read.
 */
#define STUB_MAX 256

static bool text_is_stub(const char *s, size_t n)
{
	static const char *const phrases[] = {
		"html-capable", "html capable", "html-compatible", "html compatible",
		"html version of this", "in html format", "an html message", "an html email",
		"an html e-mail", "is in html", "does not support html", "doesn't support html",
		"does not display html", "cannot display html", "can't display html",
		"unable to display html", "not display html", "enable html", "switch to html",
		"requires html", "view this email in your browser", "view this e-mail in your browser",
		"view this message in your browser", "view it in your browser", "view in browser",
		"view this email online", "view this message online", "view the html",
	};
	unsigned char low[STUB_MAX + 1];

	if (text_is_blank(s, n))
		return true;
	if (n > STUB_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {   /* ASCII case folding; NULs cannot end the search early */
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		low[i] = c ? c : ' ';
	}
	low[n] = '\0';
	for (size_t k = 0; k < sizeof(phrases) / sizeof(phrases[0]); k++)
		if (strstr((const char *)low, phrases[k]))
			return true;
	return false;
}

/* A new multipart/alternative group (see struct decoder); its index, or -1 without memory. */
static int group_new(struct decoder *d)
{
	if (d->n_groups == d->cap_groups) {
		int cap = d->cap_groups ? d->cap_groups * 2 : 4;
		bool *n = realloc(d->group_text, (size_t)cap * sizeof(*n));

		if (!n)
			return -1;
		d->group_text = n;
		d->cap_groups = cap;
	}
	d->group_text[d->n_groups] = false;
	return d->n_groups++;
}

static bool group_has_text(const struct decoder *d, int group)
{
	return group >= 0 && group < d->n_groups && d->group_text[group];
}

/* A text/plain or text/html part that is not an attachment: listed and decoded. shadow: it lies
 * in an alternative to a text/plain part, that of group. A shadowed HTML part is left undecoded
 * (skip_shadowed) only once its group's text/plain is known to have text; otherwise it is
 * decoded, and unshadow_textless_groups() decides after the walk. */
static int visit_text(struct decoder *d, const struct leaf_src *src, bool html, const char *cs,
		      int depth, bool in_rfc822, bool shadow, int group)
{
	struct message_part *p = new_part(d);
	int rc;

	if (!p)
		return -1;
	p->index = (int)d->m->n_parts - 1;
	p->depth = depth;
	p->is_html = html;
	p->in_rfc822 = in_rfc822;
	p->shadowed = shadow && html;
	p->alt_group = p->shadowed ? group : -1;
	p->content_type = util_strdup(html ? "text/html" : "text/plain");
	p->charset = util_strndup(cs ? cs : "", cs ? strnlen(cs, 64) : 0);
	if (!p->content_type || !p->charset)
		return -1;
	util_ascii_lower(p->charset);
	if (p->shadowed && d->lim->skip_shadowed && group_has_text(d, group)) {
		/* Nobody reads it (join_bodies skips it): no charset or HTML conversion, no budget. */
		p->text = util_strdup("");
		p->new_text = util_strdup("");
		p->quoted_text = util_strdup("");
		return p->text && p->new_text && p->quoted_text ? 0 : -1;
	}
	rc = decode_text(d, src, p, cs ? cs : "");
	if (rc == 0 && !html && !shadow && group >= 0 && group < d->n_groups &&
	    !text_is_stub(p->text, p->text_len))
		d->group_text[group] = true;
	return rc;
}

/* After the walk: an HTML part shadowed by a text/plain that turned out empty, blank or a stub
 * ("use an HTML-capable client") is the message's text after all. The number of parts
 * unshadowed. */
static size_t unshadow_textless_groups(struct decoder *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->m->n_parts; i++) {
		struct message_part *p = &d->m->parts[i];

		if (p->shadowed && !group_has_text(d, p->alt_group)) {
			p->shadowed = false;
			n++;
		}
	}
	return n;
}

/* A leaf part: text/plain and text/html that are not attachments are decoded. */
static int visit_leaf(struct decoder *d, GMimeObject *o, int depth, bool in_rfc822, bool shadow,
		      int group)
{
	struct leaf_src src = { .gp = (GMimePart *)o };
	bool html;

	if (GMIME_IS_PART(o) && is_empty_binary((GMimePart *)o)) {
		d->empty_binary++;
		if (d->kinds.len)
			d->kinds.s[d->kinds.len - 1] = ENTITY_DROPPED;
	}
	if (!GMIME_IS_PART(o) || is_attachment(o))
		return 0;
	html = is_text_type(o, "html");
	if (!html && !is_text_type(o, "plain"))
		return 0;
	if (d->check_empty && is_empty_body((GMimePart *)o)) {
		if (shadow && html) {
			d->empty_shadowed++;
			if (d->kinds.len)
				d->kinds.s[d->kinds.len - 1] = ENTITY_SHADOW;
		} else {
			d->empty_text++;
		}
	}
	return visit_text(d, &src, html, g_mime_object_get_content_type_parameter(o, "charset"),
			  depth, in_rfc822, shadow, group);
}

/* The lone part, as walk_tree and visit_leaf would see it: one entity, at depth 0. */
static int visit_lone(struct decoder *d, const struct lone_part *lp)
{
	struct leaf_src src = { .lp = lp };

	d->visited = 1;
	if (d->lim->mime_parts < 1) {
		d->m->limits_hit |= MESSAGE_LIMIT_PARTS;
		return 0;
	}
	if (lp->attachment)
		return 0;
	return visit_text(d, &src, lp->html,
			  lp->ct ? g_mime_content_type_get_parameter(lp->ct, "charset") : NULL,
			  0, false, false, -1);
}

struct walk_item {
	GMimeObject *o;
	int depth;
	bool in_rfc822;
	bool shadow;            /* under a multipart/alternative that has a text/plain child */
	int group;              /* that alternative's group (struct decoder), or -1 */
};

struct walk_stack {
	struct walk_item *v;
	size_t n, cap;
};

static int walk_push(struct walk_stack *st, struct walk_item it)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		struct walk_item *n = realloc(st->v, cap * sizeof(*n));

		if (!n)
			return -1;
		st->v = n;
		st->cap = cap;
	}
	st->v[st->n++] = it;
	return 0;
}

/* A multipart/alternative with a text/plain (non-attachment) child: its other children are
 * alternatives of that text, kept out of body_new/body_quoted. */
static bool alternative_has_plain(GMimeMultipart *mp, int count)
{
	GMimeContentType *ct = g_mime_object_get_content_type((GMimeObject *)mp);

	if (!ct || !g_mime_content_type_is_type(ct, "multipart", "alternative"))
		return false;
	for (int i = 0; i < count; i++) {
		GMimeObject *c = g_mime_multipart_get_part(mp, i);

		if (c && GMIME_IS_PART(c) && is_text_type(c, "plain") && !is_attachment(c))
			return true;
	}
	return false;
}

/* kinds_agree - did GMime's walk see the entities the scan saw? Containers must be the same;
 * a body the scan left out must be an empty attachment (or an empty shadowed HTML part) to
 * GMime; any other leaf may be either. */
static bool kinds_agree(const char *scan, size_t ns, const struct strbuf *gm)
{
	if (ns != gm->len)
		return false;
	for (size_t i = 0; i < ns; i++) {
		char a = scan[i], b = gm->s[i];

		if (a == ENTITY_LEAF ? (b == ENTITY_MULTIPART || b == ENTITY_MESSAGE) : a != b)
			return false;
	}
	return true;
}

/* walk_tree - every part in document order with an explicit stack, depth and count bounded. */
static int walk_tree(struct decoder *d, GMimeObject *top)
{
	struct walk_stack st = { 0 };
	int visited = 0, rc = 0;

	if (top && walk_push(&st, (struct walk_item){ top, 0, false, false, -1 }) < 0)
		return -1;
	while (st.n && rc == 0) {
		struct walk_item it = st.v[--st.n];

		if (++visited > d->lim->mime_parts) {
			d->m->limits_hit |= MESSAGE_LIMIT_PARTS;
			break;
		}
		if (GMIME_IS_MULTIPART(it.o))
			strbuf_putc(&d->kinds, ENTITY_MULTIPART);
		else if (GMIME_IS_MESSAGE_PART(it.o))
			strbuf_putc(&d->kinds, ENTITY_MESSAGE);
		else
			strbuf_putc(&d->kinds, ENTITY_LEAF);
		if (GMIME_IS_MULTIPART(it.o)) {
			GMimeMultipart *mp = (GMimeMultipart *)it.o;
			int count = g_mime_multipart_get_count(mp), room = d->lim->mime_parts - visited;
			int group;
			bool alt;

			if (it.depth + 1 > d->lim->mime_depth) {
				d->m->limits_hit |= MESSAGE_LIMIT_DEPTH;
				continue;
			}
			if (count > room) {
				d->m->limits_hit |= MESSAGE_LIMIT_PARTS;
				count = room;
			}
			alt = alternative_has_plain(mp, count);
			/* inside a shadowed subtree the outer alternative's group still decides */
			group = it.shadow ? it.group : -1;
			if (alt && !it.shadow && (group = group_new(d)) < 0)
				rc = -1;
			for (int i = count - 1; i >= 0 && rc == 0; i--) {
				GMimeObject *c = g_mime_multipart_get_part(mp, i);
				bool sh = it.shadow || (alt && !(GMIME_IS_PART(c) && is_text_type(c, "plain")));

				if (c)
					rc = walk_push(&st, (struct walk_item){ c, it.depth + 1, it.in_rfc822,
										sh, group });
			}
		} else if (GMIME_IS_MESSAGE_PART(it.o)) {
			GMimeMessage *inner = g_mime_message_part_get_message((GMimeMessagePart *)it.o);
			GMimeObject *body = inner ? g_mime_message_get_mime_part(inner) : NULL;

			if (it.depth + 1 > d->lim->mime_depth) {
				d->m->limits_hit |= MESSAGE_LIMIT_DEPTH;
				continue;
			}
			if (body)
				rc = walk_push(&st, (struct walk_item){ body, it.depth + 1, true, it.shadow,
									it.group });
		} else {
			rc = visit_leaf(d, it.o, it.depth, it.in_rfc822, it.shadow, it.group);
		}
	}
	free(st.v);
	d->visited = visited;
	return rc;
}

/* ---------------------------------------------------------------------------------------------
 * headers and the message
 * ------------------------------------------------------------------------------------------- */

static int set_str(char **dst, const char *s)
{
	*dst = util_strdup(s ? s : "");
	return *dst ? 0 : -1;
}

/* Message-ID without angle brackets. */
static char *msgid_of(const char *v)
{
	const char *lt = strchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;

	if (lt && gt)
		return dup_trimmed(lt + 1, (size_t)(gt - lt - 1));
	return dup_trimmed(v, strlen(v));
}

static time_t date_of(const char *v)
{
	GDateTime *dt = g_mime_utils_header_decode_date(v);
	time_t t = 0;

	if (dt) {
		t = (time_t)g_date_time_to_unix(dt);
		g_date_time_unref(dt);
	}
	return t;
}

/* The well-known fields, from the first header of each name (raw, unfolded). */
static int take_field(struct message *m, const char *name, const char *raw, const struct message_limits *lim)
{
	bool cut = false;
	int rc = 0;

	if (!strcasecmp(name, "Subject") && !m->subject) {
		m->subject = decode_value(raw, lim->header_value_bytes, &cut, &m->limits_hit);
		rc = m->subject ? 0 : -1;
	} else if (!strcasecmp(name, "From") && !m->from_addr) {
		rc = parse_mailbox(raw, lim->header_value_bytes, &m->from_addr, &m->from_name, &m->limits_hit);
	} else if (!strcasecmp(name, "To") && !m->to_addr) {
		char *name_unused = NULL;

		rc = parse_mailbox(raw, lim->header_value_bytes, &m->to_addr, &name_unused, &m->limits_hit);
		free(name_unused);
	} else if (!strcasecmp(name, "Message-ID") && !m->message_id) {
		m->message_id = msgid_of(raw);
		rc = m->message_id ? 0 : -1;
	} else if (!strcasecmp(name, "In-Reply-To") && !m->in_reply_to) {
		rc = set_str(&m->in_reply_to, raw);
	} else if (!strcasecmp(name, "References") && !m->references) {
		rc = set_str(&m->references, raw);
	} else if (!strcasecmp(name, "Date") && !m->date) {
		rc = set_str(&m->date, raw);
		m->date_t = date_of(raw);
	}
	if (cut)
		m->limits_hit |= MESSAGE_LIMIT_HEADER_BYTES;
	return rc;
}

/* The top-level headers as GMime read them (when split_headers did not). */
static int gmime_headers(GMimeObject *obj, struct raw_headers *rh)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	int count = hl ? g_mime_header_list_get_count(hl) : 0;

	for (int i = 0; i < count; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		const char *name = h ? g_mime_header_get_name(h) : NULL;
		const char *rawv = h ? g_mime_header_get_raw_value(h) : NULL;

		if (!name)
			continue;
		rawv = rawv ? rawv : "";
		if (raw_headers_add(rh, name, strlen(name), rawv, strlen(rawv)) < 0)
			return -1;
	}
	return 0;
}

/* take_headers - every top-level header (count and bytes limited), decoded. */
static int take_headers(struct message *m, const struct raw_headers *rh,
			const struct message_limits *lim)
{
	int count = rh->n > INT_MAX ? INT_MAX : (int)rh->n;
	size_t bytes = 0;

	if (count <= 0)
		return 0;
	if (count > lim->header_count) {
		m->limits_hit |= MESSAGE_LIMIT_HEADER_COUNT;
		count = lim->header_count;
	}
	m->headers = calloc((size_t)count, sizeof(*m->headers));
	if (!m->headers)
		return -1;
	for (int i = 0; i < count; i++) {
		const char *name = raw_header_name(rh, (size_t)i);
		const char *rawv = raw_header_value(rh, (size_t)i);
		struct message_header *mh = &m->headers[m->n_headers];
		bool cut = false;
		char *raw;

		bytes += strlen(name) + strlen(rawv) + 2;
		if (bytes > lim->header_bytes) {
			m->limits_hit |= MESSAGE_LIMIT_HEADER_BYTES;
			break;
		}
		raw = unfold(rawv, lim->header_value_bytes, &cut);
		mh->name = util_strndup(name, strnlen(name, lim->header_value_bytes));
		mh->value = raw ? decode_value(raw, lim->header_value_bytes, &cut, &m->limits_hit) : NULL;
		if (mh->name && mh->value) {
			m->n_headers++;
			if (take_field(m, name, raw, lim) < 0) {
				free(raw);
				return -1;
			}
		} else {
			free(mh->name);
			free(mh->value);
			free(raw);
			return -1;
		}
		free(raw);
		if (cut)
			m->limits_hit |= MESSAGE_LIMIT_HEADER_BYTES;
	}
	return 0;
}

/* Join the new (or quoted) text of every part that counts, separated by "\n". */
static int join_bodies(struct message *m)
{
	struct strbuf nw, qt;

	strbuf_init(&nw, 0);
	strbuf_init(&qt, 0);
	for (size_t i = 0; i < m->n_parts; i++) {
		const struct message_part *p = &m->parts[i];

		if (p->shadowed)
			continue;
		if (p->new_len && !text_is_blank(p->new_text, p->new_len)) {
			if (nw.len)
				strbuf_putc(&nw, '\n');
			strbuf_append(&nw, p->new_text, p->new_len);
		}
		if (p->quoted_len && !text_is_blank(p->quoted_text, p->quoted_len)) {
			if (qt.len)
				strbuf_putc(&qt, '\n');
			strbuf_append(&qt, p->quoted_text, p->quoted_len);
		}
	}
	m->body_new_len = nw.len;
	m->body_new = strbuf_take(&nw);
	m->body_quoted_len = qt.len;
	m->body_quoted = strbuf_take(&qt);
	strbuf_free(&nw);
	strbuf_free(&qt);
	return m->body_new && m->body_quoted ? 0 : -1;
}

/* Fill the fields no header provided with "". */
static int fill_defaults(struct message *m)
{
	char **f[] = { &m->subject, &m->from_addr, &m->from_name, &m->to_addr, &m->message_id,
		       &m->in_reply_to, &m->references, &m->date, &m->content_type };

	for (size_t i = 0; i < UTIL_ARRAY_LEN(f); i++)
		if (!*f[i] && set_str(f[i], "") < 0)
			return -1;
	return 0;
}

static int top_content_type(struct message *m, GMimeContentType *ct)
{
	char *s;

	if (!ct)
		return set_str(&m->content_type, "text/plain");
	s = g_mime_content_type_get_mime_type(ct);
	m->content_type = util_strndup(s ? s : "text/plain", s ? strnlen(s, 256) : 10);
	g_free(s);
	if (!m->content_type)
		return -1;
	util_ascii_lower(m->content_type);
	return 0;
}

/* One parse. With res->drop_binary the scan leaves attachment bodies out; *agrees then says
 * whether GMime saw the structure the scan saw (as many entities, and every body left out is an
 * empty attachment to GMime), without which the caller parses again, keeping everything. */
static int parse_once(const char *raw, size_t len, const struct message_limits *lim,
		      struct scan_result *res, struct message **out, bool *agrees)
{
	struct message *m;
	struct decoder d = { .lim = lim };
	GMimeParserOptions *opts = NULL;
	GMimeStream *st = NULL;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	GMimeObject *body = NULL;
	struct raw_headers rh = { 0 };
	struct lone_part lone = { 0 };
	char *work = NULL;
	size_t unshadowed;
	bool bad_binary, bad_shadow;
	int rc = -1;

	*out = NULL;
	*agrees = true;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -1;
	d.m = m;
	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	if (message_scan(raw ? raw : "", raw ? len : 0, lim, opts, &m->limits_hit, res, &rh, &st,
			 &lone, &work) < 0)
		goto out;
	if (res->malformed && (res->dropped || res->dropped_shadow)) {
		/* GMime's reading of such a header block depends on its offset, which the bodies
		 * left out changed (field_line): parse it whole, without parsing this first */
		*agrees = false;
		goto out;
	}
	if (!st) {
		m->own_headers = m->own_body = true;
		if (take_headers(m, &rh, lim) < 0 || top_content_type(m, lone.ct) < 0 ||
		    visit_lone(&d, &lone) < 0)
			goto out;
	} else {
		d.check_empty = res->dropped_shadow > 0;
		parser = g_mime_parser_new_with_stream(st);
		g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
		msg = g_mime_parser_construct_message(parser, opts);
	}
	if (msg) {
		body = g_mime_message_get_mime_part(msg);
		m->own_headers = rh.split;
		if ((!rh.split && gmime_headers((GMimeObject *)msg, &rh) < 0) ||
		    take_headers(m, &rh, lim) < 0 ||
		    top_content_type(m, body ? g_mime_object_get_content_type(body) : NULL) < 0 ||
		    walk_tree(&d, body) < 0)
			goto out;
	}
	/* every body left out must be one nobody reads: an attachment, or a shadowed HTML part
	 * (and then no text part that is read may be empty, lest it be one the scan left out, and
	 * no HTML part may be unshadowed by a blank or stub text/plain: its body may be one left
	 * out) */
	unshadowed = unshadow_textless_groups(&d);
	bad_binary = (res->dropped || res->dropped_shadow) &&
		     (d.visited != res->parts || d.empty_binary < res->dropped ||
		      !kinds_agree(res->kinds, res->n_kinds, &d.kinds));
	bad_shadow = res->dropped_shadow &&
		     (d.empty_shadowed < res->dropped_shadow || d.empty_text > 0 || unshadowed > 0);
	if (bad_binary || bad_shadow) {
		*agrees = false;
		res->retry_shadowed = !bad_binary;
		goto out;
	}
	m->bodies_left_out = res->dropped + res->dropped_shadow;
	if (fill_defaults(m) < 0 || join_bodies(m) < 0)
		goto out;
	rc = 0;
out:
	if (msg)
		g_object_unref(msg);
	if (parser)
		g_object_unref(parser);
	if (st)
		g_object_unref(st);
	if (opts)
		g_mime_parser_options_free(opts);
	lone_part_clear(&lone);
	free(work);
	free(d.group_text);
	strbuf_free(&d.kinds);
	free(res->kinds);
	res->kinds = NULL;
	res->n_kinds = 0;
	raw_headers_free(&rh);
	if (rc < 0)
		message_free(m);
	else
		*out = m;
	return rc;
}

int message_parse(const char *raw, size_t len, const struct message_limits *lim, struct message **out)
{
	/* A NUL byte is no part of mail (RFC 5322, 2045), and GMime 3.2.13 reads header lines with
	 * NULs in them differently depending on where its read buffer ends: a body left out before
	 * one shifts that, so such a message is given to GMime whole (found by fuzz_mime). */
	bool nul = memchr(raw, '\0', len) != NULL;
	struct scan_result res = { .drop_binary = !lim->keep_attachment_bodies && !nul,
				   .drop_shadowed = !lim->keep_attachment_bodies && lim->skip_shadowed &&
						    !nul };
	bool agrees;
	int rc;

	message_global_init();
	rc = parse_once(raw, len, lim, &res, out, &agrees);
	if (rc < 0 && !agrees && res.retry_shadowed) {
		/* a text/plain alternative was empty, blank or a stub, so the HTML beside it is
		 * the text, and its body was left out: parse again with the HTML bodies kept */
		res = (struct scan_result){ .drop_binary = !lim->keep_attachment_bodies && !nul };
		rc = parse_once(raw, len, lim, &res, out, &agrees);
	}
	if (rc < 0 && !agrees) {
		/* the scan and GMime read the structure differently (malformed mail): what GMime
		 * would call text may have been left out; parse it again whole */
		res = (struct scan_result){ .drop_binary = false };
		rc = parse_once(raw, len, lim, &res, out, &agrees);
	}
	return rc;
}

void message_free(struct message *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_headers; i++) {
		free(m->headers[i].name);
		free(m->headers[i].value);
	}
	free(m->headers);
	for (size_t i = 0; i < m->n_parts; i++) {
		struct message_part *p = &m->parts[i];

		free(p->content_type);
		free(p->charset);
		free(p->text);
		free(p->new_text);
		free(p->quoted_text);
	}
	free(m->parts);
	free(m->subject);
	free(m->from_addr);
	free(m->from_name);
	free(m->to_addr);
	free(m->message_id);
	free(m->in_reply_to);
	free(m->references);
	free(m->date);
	free(m->content_type);
	free(m->body_new);
	free(m->body_quoted);
	free(m);
}

const char *message_header(const struct message *m, const char *name)
{
	for (size_t i = 0; m && i < m->n_headers; i++)
		if (!strcasecmp(m->headers[i].name, name))
			return m->headers[i].value;
	return NULL;
}

const char *message_limits_str(unsigned bits, char *buf, size_t len)
{
	static const char *const names[] = { "depth", "parts", "header_bytes", "header_count",
					     "part_text", "message_text", "size", "charset" };
	size_t used = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++) {
		int n;

		if (!(bits & (1u << i)))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i]);
		if (n < 0 || (size_t)n >= len - used)
			break;          /* cut: the list stays well-formed up to the last whole name */
		used += (size_t)n;
	}
	buf[used] = '\0';
	return buf;
}
