/*
 * draft.c - compose a reply draft in the customer's language and hand it to a writer thread
 *
 * Composition: every field taken from the customer's mail (subject, display name, address,
 * Message-ID, References, date, text) is cleaned first - invalid UTF-8 replaced, controls and
 * bidi overrides removed, lengths capped - and then written only through encoders that cannot
 * produce a line break: RFC 2047 Q encoded words for non-ASCII text, msg-ids that pass a strict
 * character check, a quoted-printable body. So no input can add a header line, and every header
 * line is ASCII and at most 78 octets (References at most ~260).
 * Delivery: drafter_submit() composes in the calling milter thread (CPU only; templates are
 * preloaded), queues the message to one writer thread (Maildir, or the IMAP spool) and waits for
 * it at most eom_budget_ms (default 0: not at all, so no fsync of a draft delays the reply to
 * the MTA); the writer finishes, logs and counts, and tells the submitter's late_failure
 * callback about a failure nobody waited for.
 *
 * OWNERSHIP  See draft.h. A queued job is shared by the submitter and the writer through a
 *            reference count; whoever drops the last reference frees it.
 * DIAGNOSTICS  draft_compose() returns -1 with a malloc'd *err; the writer logs each outcome
 *              with the queue id and counts it in stats.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <utf8proc.h>

#include "draft.h"
#include "imap.h"
#include "log.h"
#include "maildir.h"
#include "spool.h"
#include "stats.h"
#include "template.h"
#include "util.h"

#define DRAFT_NAME_MAX_CP 100         /* display names */
#define DRAFT_HISTORY_MAX 10          /* incidents listed in {{history}} */
#define DRAFT_HISTORY_SUBJECT_CP 100
#define DRAFT_QUOTE_MAX_BYTES 16384
#define DRAFT_QUOTE_MAX_LINES 300
#define DRAFT_MSGID_MAX 250
#define DRAFT_MAX_BYTES ((size_t)1024 * 1024)  /* whole draft: a hard cap on every strbuf */
#define DRAFT_HDR_WIDTH 76             /* fold before this column (RFC 5322 says 78) */
/* Drafts queued for the writer: nobody waits for them by default (eom_budget_ms 0), so a burst
 * of draft-due mail queues; bounded in count and in bytes (DRAFT_QUEUE_MAX, _BYTES in draft.h;
 * a draft quotes up to 16 KiB). Past either bound a draft is refused at once: counted, logged,
 * its claim given back. */

static const char *const draft_kind_names[] = {
	[POLICY_DRAFT_PARTWAYS] = "partways",
	[POLICY_DRAFT_WINBACK] = "winback",
	[POLICY_DRAFT_APOLOGY] = "apology",
};

const char *draft_kind_name(enum policy_draft k)
{
	if ((int)k <= 0 || (size_t)k >= UTIL_ARRAY_LEN(draft_kind_names))
		return NULL;
	return draft_kind_names[k];
}

enum policy_draft draft_kind_parse(const char *name)
{
	for (size_t i = 1; name && i < UTIL_ARRAY_LEN(draft_kind_names); i++)
		if (strcmp(draft_kind_names[i], name) == 0)
			return (enum policy_draft)i;
	return POLICY_DRAFT_NONE;
}

/* ---- per-language words ------------------------------------------------------------------ */

struct draft_words {
	const char *lang;
	const char *customer;      /* {{customer_name}} when the mail has no display name */
	const char *no_subject;
	const char *attrib_date;   /* "{D}" and "{N}" replaced */
	const char *attrib;
	bool rtl;
};

static const struct draft_words draft_words_table[] = {
	{ "en", "customer", "(no subject)", "On {D}, {N} wrote:", "{N} wrote:", false },
	{ "ur", "گاہک", "(بغیر عنوان)", "بتاریخ {D}، {N} نے لکھا:", "{N} نے لکھا:", true },
	{ "pa", "ਗਾਹਕ", "(ਬਿਨਾਂ ਵਿਸ਼ੇ)", "{D} ਨੂੰ {N} ਨੇ ਲਿਖਿਆ:", "{N} ਨੇ ਲਿਖਿਆ:", false },
	{ "fa", "مشتری", "(بدون موضوع)", "در تاریخ {D}، {N} نوشت:", "{N} نوشت:", true },
	{ "hi", "ग्राहक", "(बिना विषय)", "{D} को {N} ने लिखा:", "{N} ने लिखा:", false },
};

static const struct draft_words *draft_words_for(const char *lang)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(draft_words_table); i++)
		if (strcmp(draft_words_table[i].lang, lang) == 0)
			return &draft_words_table[i];
	return &draft_words_table[0];
}

const char *draft_reply_lang(const struct config *cfg, const char *detected)
{
	const char *l = detected ? detected : "";
	if (strcmp(l, "ur-Latn") == 0 && cfg->drafts.fallback_ur_latn)
		l = cfg->drafts.fallback_ur_latn;
	else if (strcmp(l, "hi-Latn") == 0 && cfg->drafts.fallback_hi_latn)
		l = cfg->drafts.fallback_hi_latn;
	/* hand back the static (or config-owned) string, never the caller's */
	for (size_t i = 0; template_langs[i]; i++)
		if (strcmp(template_langs[i], l) == 0 && template_lang_available(cfg, l))
			return template_langs[i];
	for (size_t i = 0; i < cfg->drafts.n_identities; i++)
		if (strcmp(cfg->drafts.identities[i].lang, l) == 0 && template_lang_available(cfg, l))
			return cfg->drafts.identities[i].lang;
	return cfg->drafts.default_lang ? cfg->drafts.default_lang : "en";
}

/* ---- cleaning text from strangers -------------------------------------------------------- */

/* What to do with one code point of untrusted text. */
enum draft_cp_class { DRAFT_CP_KEEP, DRAFT_CP_SPACE, DRAFT_CP_DROP, DRAFT_CP_NEWLINE };

static enum draft_cp_class draft_cp_classify(int32_t cp)
{
	if (cp == '\n')
		return DRAFT_CP_NEWLINE;
	if (cp == '\t' || cp == '\r' || cp == 0x2028 || cp == 0x2029 || cp == 0x85)
		return DRAFT_CP_SPACE;
	if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
		return DRAFT_CP_SPACE;
	/* bidi embeddings, overrides and isolates can reorder what a reviewer sees (and Trojan
	 * Source the quote); ZWNJ/ZWJ/LRM/RLM are ordinary in Persian and Urdu and stay */
	if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff ||
	    (cp >= 0xfff9 && cp <= 0xfffb))
		return DRAFT_CP_DROP;
	return DRAFT_CP_KEEP;
}

/* Clean s into b. multiline keeps '\n' (quote text); otherwise everything is one line with
 * single spaces. Stops after max_cp code points (0 = no cap); sets *cut when it did. */
static void draft_clean_into(struct strbuf *b, const char *s, size_t len, size_t max_cp,
			     bool multiline, bool *cut)
{
	size_t slen = 0;
	char *u = util_utf8_sanitize(s ? s : "", s ? len : 0, &slen);
	if (!u)
		return;
	/* Kept text is appended in runs: u[run, run + run_len) is kept and not yet written. */
	size_t ncp = 0, run = 0, run_len = 0;
	bool pending_space = false, at_start = true;
#define DRAFT_FLUSH_RUN() do { if (run_len) { strbuf_append(b, u + run, run_len); run_len = 0; } } while (0)
	for (size_t i = 0; i < slen; ) {
		unsigned char c0 = (unsigned char)u[i];
		int32_t cp = c0;
		utf8proc_ssize_t k = 1;
		if (c0 >= 0x80) {
			k = utf8proc_iterate((const utf8proc_uint8_t *)u + i,
					     (utf8proc_ssize_t)(slen - i), &cp);
			if (k <= 0) {        /* cannot happen after sanitize; stay safe */
				DRAFT_FLUSH_RUN();
				i++;
				continue;
			}
		}
		enum draft_cp_class c = draft_cp_classify(cp);
		if (c == DRAFT_CP_NEWLINE && !multiline)
			c = DRAFT_CP_SPACE;
		if (c == DRAFT_CP_DROP) {
			DRAFT_FLUSH_RUN();
			i += (size_t)k;
			continue;
		}
		if (max_cp && ncp >= max_cp) {
			if (cut)
				*cut = true;
			break;
		}
		if (c == DRAFT_CP_SPACE || (cp == ' ' && !multiline)) {
			DRAFT_FLUSH_RUN();
			if (multiline && cp != '\r')
				strbuf_putc(b, ' ');
			else if (!multiline)
				pending_space = !at_start;
			i += (size_t)k;
			ncp++;
			continue;
		}
		if (pending_space) {
			DRAFT_FLUSH_RUN();
			strbuf_putc(b, ' ');
			pending_space = false;
		}
		if (!run_len)
			run = i;
		run_len += (size_t)k;
		at_start = false;
		i += (size_t)k;
		ncp++;
	}
	DRAFT_FLUSH_RUN();
#undef DRAFT_FLUSH_RUN
	free(u);
}

char *draft_clean_line(const char *s, size_t len, size_t max_cp)
{
	struct strbuf b;
	strbuf_init(&b, DRAFT_MAX_BYTES);
	draft_clean_into(&b, s, len, max_cp, false, NULL);
	/* a cut can leave a trailing space from the input's collapsed run: none is kept, since
	 * spaces are only written before the next kept character */
	return strbuf_take(&b);
}

/* Length of a leading reply marker ("Re:", "RE :", "Aw:", "Re[2]:") at s, or 0. */
static size_t draft_re_prefix(const char *s)
{
	static const char *const pfx[] = { "re", "aw", "sv", "antw" };
	for (size_t i = 0; i < UTIL_ARRAY_LEN(pfx); i++) {
		if (!util_ascii_casestarts(s, pfx[i]))
			continue;
		const char *p = s + strlen(pfx[i]);
		if (*p == '[') {
			const char *q = p + 1;
			while (*q >= '0' && *q <= '9')
				q++;
			if (*q != ']' || q == p + 1)
				continue;
			p = q + 1;
		}
		while (*p == ' ')
			p++;
		if (*p != ':')
			continue;
		p++;
		while (*p == ' ')
			p++;
		return (size_t)(p - s);
	}
	return 0;
}

/* The cleaned original subject without reply markers; malloc'd. */
static char *draft_base_subject(const char *orig, size_t max_cp)
{
	char *c = draft_clean_line(orig ? orig : "", orig ? strlen(orig) : 0, 0);
	if (!c)
		return NULL;
	size_t off = 0, k;
	for (int i = 0; i < 32 && (k = draft_re_prefix(c + off)) > 0; i++)
		off += k;
	char *r = draft_clean_line(c + off, strlen(c + off), max_cp);
	free(c);
	return r;
}

char *draft_reply_subject(const char *orig)
{
	char *base = draft_base_subject(orig, DRAFT_SUBJECT_MAX_CP - 4);
	if (!base)
		return NULL;
	struct strbuf b;
	strbuf_init(&b, DRAFT_MAX_BYTES);
	strbuf_puts(&b, *base ? "Re: " : "Re:");
	strbuf_puts(&b, base);
	free(base);
	return strbuf_take(&b);
}

static bool draft_msgid_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+/=?^_`{|}~.@-", c) != NULL;
}

bool draft_msgid_valid(const char *id, size_t len)
{
	if (!id || len == 0 || len > DRAFT_MSGID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!draft_msgid_char((unsigned char)id[i]))
			return false;
	return true;
}

/* An addr-spec we can put in To/From as is: printable ASCII, one '@', no specials. */
static bool draft_addr_valid(const char *a)
{
	size_t n = a ? strlen(a) : 0;
	if (n < 3 || n > 254)
		return false;
	const char *at = strchr(a, '@');
	if (!at || at == a || !at[1] || strchr(at + 1, '@'))
		return false;
	for (const char *p = a; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c >= 0x7f || strchr("()<>,;:\\\"[]", c))
			return false;
	}
	/* Both halves must be dot-atoms (RFC 5322 3.4.1): no leading, trailing or doubled dot,
	 * or the address would need quoting and a reader could not parse the To line. */
	if (a[0] == '.' || at[-1] == '.' || at[1] == '.' || a[n - 1] == '.' || strstr(a, ".."))
		return false;
	return true;
}

/* ---- header encoding --------------------------------------------------------------------- */

struct draft_hdr {
	struct strbuf *b;
	size_t col;          /* octets on the current line */
};

static void draft_hdr_begin(struct draft_hdr *h, struct strbuf *b, const char *name)
{
	h->b = b;
	strbuf_puts(b, name);
	strbuf_putc(b, ':');
	h->col = strlen(name) + 1;
}

/* One token, preceded by a space or by a fold when the line would get too long. */
static void draft_hdr_token(struct draft_hdr *h, const char *tok, size_t len)
{
	if (h->col + 1 + len > DRAFT_HDR_WIDTH && h->col > 1) {
		strbuf_puts(h->b, "\r\n ");
		h->col = 1;
	} else {
		strbuf_putc(h->b, ' ');
		h->col++;
	}
	strbuf_append(h->b, tok, len);
	h->col += len;
}

static void draft_hdr_end(struct draft_hdr *h)
{
	strbuf_puts(h->b, "\r\n");
}

/* Characters that may stand for themselves in a Q encoded word, in any header position
 * (RFC 2047 5(3), the strictest rule: phrases). */
static bool draft_q_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

/* Write text as Q encoded words, each <= 75 octets and never splitting a UTF-8 character
 * (GMime 3.2.13 mis-decodes padded B words, so Q it is). */
static void draft_hdr_encoded(struct draft_hdr *h, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char word[80];
	const size_t open = 10; /* "=?UTF-8?Q?" ... "?=" */
	size_t i = 0;
	while (i < len) {
		size_t w = 0;
		/* fill the current line when a useful word fits there, else a whole folded line */
		size_t avail = DRAFT_HDR_WIDTH > h->col + 1 ? DRAFT_HDR_WIDTH - h->col - 1 : 0;
		if (avail < open + 2 + 12 || avail > 75)
			avail = 75;
		size_t room = avail - 2;
		memcpy(word, "=?UTF-8?Q?", open);
		w = open;
		/* Where the last space of this word was encoded: a full word is cut there, so words of
		 * the text are not split across encoded words (RFC 2047 readers join them anyway, but
		 * some, e.g. CPython's address parser (gh-128110), show a space at the fold). */
		size_t sp_i = 0, sp_w = 0;
		while (i < len) {
			size_t cl = 1;
			unsigned char c = (unsigned char)s[i];
			if (c >= 0xf0)
				cl = 4;
			else if (c >= 0xe0)
				cl = 3;
			else if (c >= 0xc0)
				cl = 2;
			if (i + cl > len)
				cl = len - i;
			size_t need = 0;
			for (size_t j = 0; j < cl; j++) {
				unsigned char x = (unsigned char)s[i + j];
				need += (draft_q_plain(x) || x == ' ') ? 1 : 3;
			}
			if (w + need > room) {
				if (sp_w > open) {
					w = sp_w;
					i = sp_i;
				}
				break;
			}
			for (size_t j = 0; j < cl; j++) {
				unsigned char x = (unsigned char)s[i + j];
				if (x == ' ') {
					word[w++] = '_';
					sp_i = i + j + 1;
					sp_w = w;
				} else if (draft_q_plain(x)) {
					word[w++] = (char)x;
				} else {
					word[w++] = '=';
					word[w++] = hex[x >> 4];
					word[w++] = hex[x & 15];
				}
			}
			i += cl;
		}
		word[w++] = '?';
		word[w++] = '=';
		draft_hdr_token(h, word, w);
	}
}

static bool draft_is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Unstructured text (already one clean line): plain words when safe, else encoded words. */
static void draft_hdr_text(struct draft_hdr *h, const char *s)
{
	bool encode = !draft_is_ascii(s) || strstr(s, "=?") != NULL;
	for (const char *p = s; !encode && *p; ) {
		size_t wl = strcspn(p, " ");
		if (wl > DRAFT_HDR_WIDTH - 2)
			encode = true;
		p += wl;
		while (*p == ' ')
			p++;
	}
	if (encode) {
		draft_hdr_encoded(h, s, strlen(s));
		return;
	}
	for (const char *p = s; *p; ) {
		size_t wl = strcspn(p, " ");
		if (wl)
			draft_hdr_token(h, p, wl);
		p += wl;
		while (*p == ' ')
			p++;
	}
}

static bool draft_atext_word(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-/=?^_`{|}~ ", c)))
			return false;
	}
	return true;
}

/* "Name <addr>" or "addr": the name as atoms, a quoted string or encoded words. */
static void draft_hdr_mailbox(struct draft_hdr *h, const char *name, const char *addr)
{
	if (name && *name) {
		if (draft_is_ascii(name) && draft_atext_word(name) && !strstr(name, "=?") &&
		    strlen(name) < 60) {
			draft_hdr_text(h, name);
		} else if (draft_is_ascii(name) && !strstr(name, "=?") && strlen(name) < 60) {
			struct strbuf q;
			strbuf_init(&q, 256);
			strbuf_putc(&q, '"');
			for (const char *p = name; *p; p++) {
				if (*p == '"' || *p == '\\')
					strbuf_putc(&q, '\\');
				strbuf_putc(&q, *p);
			}
			strbuf_putc(&q, '"');
			draft_hdr_token(h, q.s, q.len);
			strbuf_free(&q);
		} else {
			draft_hdr_encoded(h, name, strlen(name));
		}
		struct strbuf a;
		strbuf_init(&a, 512);
		strbuf_printf(&a, "<%s>", addr);
		draft_hdr_token(h, a.s, a.len);
		strbuf_free(&a);
	} else {
		draft_hdr_token(h, addr, strlen(addr));
	}
}

/* ---- ids and dates ----------------------------------------------------------------------- */

/* Valid <id> tokens of a References/In-Reply-To value, in order, at most max kept (the first
 * one and the newest max-1, as RFC 5322 3.6.4 suggests trimming). Returns how many. */
static size_t draft_parse_ids(const char *s, char **ids, size_t max)
{
	size_t n = 0;
	if (!s || max == 0)
		return 0;
	/* bounded by the header length: one pass */
	for (const char *p = s; (p = strchr(p, '<')) != NULL; ) {
		const char *e = strchr(p + 1, '>');
		if (!e)
			break;
		const char *lt = memchr(p + 1, '<', (size_t)(e - p - 1));
		if (lt) {            /* "<a <b>": restart at the inner '<' */
			p = lt;
			continue;
		}
		size_t len = (size_t)(e - p - 1);
		if (draft_msgid_valid(p + 1, len)) {
			char *id = util_strndup(p + 1, len);
			if (!id)
				break;
			if (n < max) {
				ids[n++] = id;
			} else if (max < 2) {
				free(id);
			} else {
				/* keep ids[0]; slide the rest */
				free(ids[1]);
				memmove(ids + 1, ids + 2, (max - 2) * sizeof(*ids));
				ids[max - 1] = id;
			}
		}
		p = e + 1;
	}
	return n;
}

static const char *const draft_wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const draft_mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* RFC 5322 date-time in local time with its numeric zone. */
static void draft_rfc5322_date(struct strbuf *b, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	strbuf_printf(b, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", draft_wday[tm.tm_wday % 7],
		      tm.tm_mday, draft_mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		      tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

/* The numeric zone at the end of a raw Date value ("+0500"), in seconds; 0 if none. */
static long draft_date_zone(const char *raw)
{
	if (!raw)
		return 0;
	const char *best = NULL;
	for (const char *p = raw; *p; p++)
		if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
		    p[2] <= '9' && p[3] >= '0' && p[3] <= '9' && p[4] >= '0' && p[4] <= '9' &&
		    !(p[5] >= '0' && p[5] <= '9'))
			best = p;
	if (!best)
		return 0;
	long h = (best[1] - '0') * 10 + (best[2] - '0');
	long m = (best[3] - '0') * 10 + (best[4] - '0');
	if (h > 14 || m > 59)
		return 0;
	long s = (h * 60 + m) * 60;
	return *best == '-' ? -s : s;
}

/* "YYYY-MM-DD" (with_time: "YYYY-MM-DD HH:MM +hhmm") of t in the given zone. */
static void draft_day(struct strbuf *b, time_t t, long zone_s, bool with_time)
{
	time_t local = t + zone_s;
	struct tm tm;
	gmtime_r(&local, &tm);
	strbuf_printf(b, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	if (with_time) {
		long z = zone_s < 0 ? -zone_s : zone_s;
		strbuf_printf(b, " %02d:%02d %c%02ld%02ld", tm.tm_hour, tm.tm_min,
			      zone_s < 0 ? '-' : '+', z / 3600, (z / 60) % 60);
	}
}

/* ---- body -------------------------------------------------------------------------------- */

/* Quoted-printable, CRLF line ends, lines <= 76 octets. Leading "." and "From " are encoded
 * so no transport or mbox can mangle the draft. */
static void draft_qp(struct strbuf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char line[80];   /* one output line: at most 76 octets; "=\r\n" or "\r\n" follows it */
	size_t i = 0;
	while (i <= len) {
		const char *eol = memchr(s + i, '\n', len - i);
		size_t le = eol ? (size_t)(eol - s) : len;
		if (!eol && i == len)
			break;
		size_t col = 0;
		for (size_t j = i; j < le; j++) {
			unsigned char c = (unsigned char)s[j];
			bool last = j + 1 == le;
			bool enc = c == '=' || c < 0x20 || c >= 0x7f;
			if ((c == ' ' || c == '\t') && last)
				enc = true;
			if (j == i && (c == '.' || (c == 'F' && le - j >= 5 &&
						    memcmp(s + j, "From ", 5) == 0)))
				enc = true;
			if (c == '\t' && !last)
				enc = false;
			size_t w = enc ? 3 : 1;
			/* room for this char and, unless it ends the line, a soft break "=" */
			if (col + w > (last ? 76u : 75u)) {
				strbuf_append(out, line, col);
				strbuf_append(out, "=\r\n", 3);
				col = 0;
			}
			if (enc) {
				line[col] = '=';
				line[col + 1] = hex[c >> 4];
				line[col + 2] = hex[c & 15];
			} else {
				line[col] = (char)c;
			}
			col += w;
		}
		strbuf_append(out, line, col);
		strbuf_append(out, "\r\n", 2);
		if (!eol)
			break;
		i = le + 1;
	}
}

static bool draft_cp_rtl(int32_t cp)
{
	const utf8proc_property_t *p = utf8proc_get_property(cp);
	return p->bidi_class == UTF8PROC_BIDI_CLASS_R || p->bidi_class == UTF8PROC_BIDI_CLASS_AL;
}

static bool draft_cp_ltr(int32_t cp)
{
	return utf8proc_get_property(cp)->bidi_class == UTF8PROC_BIDI_CLASS_L;
}

/* For a right-to-left letter: give every line whose first strong character is not RTL (a Latin
 * name, a date, a list item) a leading RLM, so a client that picks each paragraph's direction
 * from its first strong character (HTML dir=auto, Thunderbird, Gmail) keeps it right-aligned. */
static void draft_rtl_lines(struct strbuf *out, const char *s, size_t len)
{
	static const char rlm[] = "\xe2\x80\x8f";
	for (size_t i = 0; i < len; ) {
		const char *eol = memchr(s + i, '\n', len - i);
		size_t le = eol ? (size_t)(eol - s) : len;
		bool need = false;
		for (size_t j = i; j < le; ) {
			int32_t cp;
			utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + j,
							      (utf8proc_ssize_t)(le - j), &cp);
			if (k <= 0)
				break;
			if (draft_cp_rtl(cp))
				break;
			if (draft_cp_ltr(cp) || (j + (size_t)k >= le)) {
				need = true;
				break;
			}
			j += (size_t)k;
		}
		if (need)
			strbuf_puts(out, rlm);
		strbuf_append(out, s + i, le - i);
		if (eol)
			strbuf_putc(out, '\n');
		i = le + 1;
	}
}

/* The customer's own text to quote: the first text/plain part's new text, else the first
 * HTML part's, else the joined body. */
static void draft_quote_source(const struct message *m, const char **p, size_t *n)
{
	*p = m->body_new ? m->body_new : "";
	*n = m->body_new ? m->body_new_len : 0;
	const struct message_part *html = NULL;
	for (size_t i = 0; m->parts && i < m->n_parts; i++) {
		const struct message_part *pt = &m->parts[i];
		if (pt->in_rfc822 || !pt->new_text || pt->new_len == 0)
			continue;
		if (!pt->is_html) {
			*p = pt->new_text;
			*n = pt->new_len;
			return;
		}
		if (!html)
			html = pt;
	}
	if (html) {
		*p = html->new_text;
		*n = html->new_len;
	}
}

static void draft_quote(struct strbuf *out, const struct message *m)
{
	const char *src;
	size_t srclen;
	draft_quote_source(m, &src, &srclen);
	struct strbuf t;
	strbuf_init(&t, (size_t)DRAFT_QUOTE_MAX_BYTES * 2);
	bool cut = false;
	draft_clean_into(&t, src, srclen < DRAFT_QUOTE_MAX_BYTES ? srclen : DRAFT_QUOTE_MAX_BYTES,
			 0, true, &cut);
	cut |= srclen > DRAFT_QUOTE_MAX_BYTES;
	/* drop trailing blank lines */
	while (t.len && (t.s[t.len - 1] == '\n' || t.s[t.len - 1] == ' '))
		t.s[--t.len] = '\0';
	size_t lines = 0;
	for (size_t i = 0; t.s && i < t.len && lines < DRAFT_QUOTE_MAX_LINES; lines++) {
		const char *eol = memchr(t.s + i, '\n', t.len - i);
		size_t le = eol ? (size_t)(eol - t.s) : t.len;
		strbuf_puts(out, le > i ? "> " : ">");
		strbuf_append(out, t.s + i, le - i);
		strbuf_putc(out, '\n');
		i = le + 1;
		if (!eol)
			i = t.len;
		if (lines + 1 == DRAFT_QUOTE_MAX_LINES && i < t.len)
			cut = true;
	}
	if (cut)
		strbuf_puts(out, "> [...]\n");
	strbuf_free(&t);
}

/* Replace "{D}" and "{N}" in a static attribution pattern. */
static void draft_attribution(struct strbuf *out, const struct draft_words *w,
			      const struct message *m, const char *who)
{
	struct strbuf d;
	strbuf_init(&d, 128);
	if (m->date_t > 0)
		draft_day(&d, m->date_t, draft_date_zone(m->date), true);
	const char *pat = d.len ? w->attrib_date : w->attrib;
	for (const char *p = pat; *p; p++) {
		if (p[0] == '{' && (p[1] == 'D' || p[1] == 'N') && p[2] == '}') {
			strbuf_puts(out, p[1] == 'D' ? d.s : who);
			p += 2;
		} else {
			strbuf_putc(out, *p);
		}
	}
	strbuf_putc(out, '\n');
	strbuf_free(&d);
}

/* "  - YYYY-MM-DD — subject" lines, oldest first. */
static void draft_history(struct strbuf *out, const struct draft_request *req,
			  const struct draft_words *w, size_t *count)
{
	const struct tally_history *h = req->history;
	size_t n = h ? h->n : 0;
	if (n > DRAFT_HISTORY_MAX)
		n = DRAFT_HISTORY_MAX;
	*count = n;
	for (size_t k = n; k-- > 0; ) {
		const struct tally_incident *in = &h->v[k];
		char *subj = draft_base_subject(in->subject ? in->subject : "",
						DRAFT_HISTORY_SUBJECT_CP);
		strbuf_puts(out, "  - ");
		draft_day(out, in->when, 0, false);
		strbuf_printf(out, " \xe2\x80\x94 %s\n", subj && *subj ? subj : w->no_subject);
		free(subj);
	}
	if (n == 0) {   /* no tally history: the one message we have */
		char *subj = draft_base_subject(req->msg->subject, DRAFT_HISTORY_SUBJECT_CP);
		strbuf_puts(out, "  - ");
		draft_day(out, req->msg->date_t > 0 ? req->msg->date_t : req->now, 0, false);
		strbuf_printf(out, " \xe2\x80\x94 %s\n", subj && *subj ? subj : w->no_subject);
		free(subj);
		*count = 1;
	}
	/* the placeholder sits on its own line in the templates: no trailing newline */
	if (out->len && out->s[out->len - 1] == '\n')
		out->s[--out->len] = '\0';
}

/* ---- composing --------------------------------------------------------------------------- */

struct draft_ctx {
	const struct config *cfg;
	const struct draft_request *req;
	const struct config_identity *id;
	const struct draft_words *words;
	const char *lang;
	const char *kind;
	char *name;          /* cleaned display name ("" if none) */
	char *addr;          /* validated customer address */
	char *subject;       /* "Re: ..." */
};

static int draft_ctx_init(struct draft_ctx *c, const struct config *cfg,
			  const struct draft_request *req, char **err)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->req = req;
	c->kind = draft_kind_name(req->kind);
	if (!c->kind || !req->msg) {
		util_seterr(err, "no draft kind or message");
		return -1;
	}
	c->lang = draft_reply_lang(cfg, req->lang);
	c->id = config_identity(cfg, c->lang);
	if (!c->id && cfg->drafts.default_lang)
		c->id = config_identity(cfg, cfg->drafts.default_lang);
	if (!c->id || !draft_addr_valid(c->id->from_addr)) {
		util_seterr(err, "no usable drafts identity for language %s", c->lang);
		return -1;
	}
	c->words = draft_words_for(c->lang);
	const char *fa = req->msg->from_addr ? req->msg->from_addr : "";
	c->addr = draft_clean_line(fa, strlen(fa), 254);
	if (!c->addr || !draft_addr_valid(c->addr)) {
		util_seterr(err, "the customer's address is not one a draft can go to");
		return -1;
	}
	const char *fn = req->msg->from_name ? req->msg->from_name : "";
	c->name = draft_clean_line(fn, strlen(fn), DRAFT_NAME_MAX_CP);
	c->subject = draft_reply_subject(req->msg->subject);
	if (!c->name || !c->subject) {
		util_seterr(err, "out of memory");
		return -1;
	}
	/* a display name that is just the address in quotes adds nothing */
	if (strcmp(c->name, c->addr) == 0)
		c->name[0] = '\0';
	return 0;
}

static void draft_ctx_free(struct draft_ctx *c)
{
	free(c->name);
	free(c->addr);
	free(c->subject);
}

static int draft_body(struct draft_ctx *c, const struct template *tpl, struct strbuf *body,
		      char **err)
{
	const struct draft_request *req = c->req;
	struct strbuf hist, date, today, sig, cnt_total, hcount;
	strbuf_init(&hist, (size_t)64 * 1024);
	strbuf_init(&date, 64);
	strbuf_init(&today, 64);
	strbuf_init(&sig, 4096);
	strbuf_init(&cnt_total, 32);
	strbuf_init(&hcount, 32);
	size_t nh = 0;
	draft_history(&hist, req, c->words, &nh);
	strbuf_printf(&hcount, "%zu", nh);
	draft_day(&date, req->msg->date_t > 0 ? req->msg->date_t : req->now,
		  draft_date_zone(req->msg->date), false);
	draft_day(&today, req->now, 0, false);
	strbuf_puts(&sig, c->id->signature ? c->id->signature : "");
	char *base = draft_base_subject(req->msg->subject, DRAFT_SUBJECT_MAX_CP);

	/* count_<category> for each configured category, plus the fixed names */
	struct template_var vars[32 + CONFIG_MAX_CATEGORIES];
	char counts[CONFIG_MAX_CATEGORIES][24];
	char names[CONFIG_MAX_CATEGORIES][80];
	size_t nv = 0;
	long total = 0;
	for (size_t i = 0; i < c->cfg->n_categories && i < CONFIG_MAX_CATEGORIES; i++) {
		const char *cat = c->cfg->categories[i].name;
		int n = 0;
		for (size_t k = 0; req->counts && k < req->counts->n; k++)
			if (strcmp(req->counts->v[k].category, cat) == 0 && req->counts->v[k].count > 0)
				n = req->counts->v[k].count;
		total += n;
		(void)snprintf(counts[i], sizeof(counts[i]), "%d", n);   /* an int fits in 24 */
		if ((size_t)snprintf(names[i], sizeof(names[i]), "count_%s", cat) >= sizeof(names[i]))
			continue;
		vars[nv++] = (struct template_var){ names[i], counts[i] };
	}
	strbuf_printf(&cnt_total, "%ld", total);
	vars[nv++] = (struct template_var){ "customer_name", *c->name ? c->name : c->words->customer };
	vars[nv++] = (struct template_var){ "customer_email", c->addr };
	vars[nv++] = (struct template_var){ "subject", base && *base ? base : c->words->no_subject };
	vars[nv++] = (struct template_var){ "date", date.s };
	vars[nv++] = (struct template_var){ "today", today.s };
	vars[nv++] = (struct template_var){ "agent", c->id->agent };
	vars[nv++] = (struct template_var){ "signature", sig.s ? sig.s : "" };
	vars[nv++] = (struct template_var){ "history", hist.s ? hist.s : "" };
	vars[nv++] = (struct template_var){ "history_count", hcount.s };
	vars[nv++] = (struct template_var){ "count_total", cnt_total.s };

	struct strbuf letter;
	strbuf_init(&letter, DRAFT_MAX_BYTES);
	int rc = template_render(tpl, vars, nv, &letter);
	while (letter.len && (letter.s[letter.len - 1] == '\n' || letter.s[letter.len - 1] == ' '))
		letter.s[--letter.len] = '\0';
	strbuf_puts(&letter, "\n\n");
	draft_attribution(&letter, c->words, req->msg, *c->name ? c->name : c->addr);
	if (c->words->rtl)
		draft_rtl_lines(body, letter.s, letter.len);
	else
		strbuf_append(body, letter.s, letter.len);
	draft_quote(body, req->msg);
	if (rc < 0 || letter.oom || body->oom || body->truncated) {
		util_seterr(err, "draft too large or out of memory");
		rc = -1;
	}
	strbuf_free(&letter);
	free(base);
	strbuf_free(&hist);
	strbuf_free(&date);
	strbuf_free(&today);
	strbuf_free(&sig);
	strbuf_free(&cnt_total);
	strbuf_free(&hcount);
	return rc;
}

/* A fresh Message-ID at the identity's domain. */
static void draft_new_msgid(struct strbuf *b, const char *from_addr, time_t now)
{
	static atomic_ulong seq;
	unsigned char r[12];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		/* no entropy yet (early boot): time, pid and a counter are still unique */
		unsigned long s = atomic_fetch_add(&seq, 1);
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)((s >> (i % 8 * 8)) ^ ((unsigned long)getpid() >> (i % 4)));
	}
	const char *dom = strchr(from_addr, '@');
	dom = dom ? dom + 1 : "amends.invalid";
	if (!draft_msgid_valid(dom, strlen(dom)) || strlen(dom) > 200)
		dom = "amends.invalid";
	strbuf_printf(b, "<amends.%lld.", (long long)now);
	for (size_t i = 0; i < sizeof(r); i++)
		strbuf_printf(b, "%02x", r[i]);
	strbuf_printf(b, "@%s>", dom);
}

static void draft_headers(struct draft_ctx *c, struct strbuf *h)
{
	const struct message *m = c->req->msg;
	struct draft_hdr hd;

	strbuf_puts(h, "Date: ");
	draft_rfc5322_date(h, c->req->now);
	strbuf_puts(h, "\r\n");

	char *fname = draft_clean_line(c->id->from_name ? c->id->from_name : "",
				       c->id->from_name ? strlen(c->id->from_name) : 0,
				       DRAFT_NAME_MAX_CP);
	draft_hdr_begin(&hd, h, "From");
	draft_hdr_mailbox(&hd, fname ? fname : "", c->id->from_addr);
	draft_hdr_end(&hd);
	free(fname);

	draft_hdr_begin(&hd, h, "To");
	draft_hdr_mailbox(&hd, c->name, c->addr);
	draft_hdr_end(&hd);

	draft_hdr_begin(&hd, h, "Subject");
	/* "Re:" stays literal, so the subject threads even in clients that do not decode */
	draft_hdr_token(&hd, "Re:", 3);
	if (c->subject[3] == ' ')
		draft_hdr_text(&hd, c->subject + 4);
	draft_hdr_end(&hd);

	strbuf_puts(h, "Message-ID: ");
	draft_new_msgid(h, c->id->from_addr, c->req->now);
	strbuf_puts(h, "\r\n");

	char *ids[DRAFT_MAX_REFERENCES];
	size_t n = draft_parse_ids(m->references, ids, DRAFT_MAX_REFERENCES - 1);
	const char *mid = m->message_id ? m->message_id : "";
	/* message.c strips the brackets; a hand-built message may not have */
	size_t midlen = strlen(mid);
	if (midlen >= 2 && mid[0] == '<' && mid[midlen - 1] == '>') {
		mid++;
		midlen -= 2;
	}
	bool have_mid = draft_msgid_valid(mid, midlen);
	if (have_mid) {
		struct strbuf t;
		strbuf_init(&t, 512);
		strbuf_printf(&t, "<%.*s>", (int)midlen, mid);
		strbuf_printf(h, "In-Reply-To: %s\r\n", t.s);
		bool dup = false;
		for (size_t i = 0; i < n; i++)
			dup |= strlen(ids[i]) == midlen && memcmp(ids[i], mid, midlen) == 0;
		if (!dup)
			ids[n++] = util_strndup(mid, midlen);
		strbuf_free(&t);
	} else if (n == 0) {
		/* no Message-ID: thread under what the customer replied to, if anything */
		n = draft_parse_ids(m->in_reply_to, ids, 1);
	}
	if (n > 0) {
		draft_hdr_begin(&hd, h, "References");
		for (size_t i = 0; i < n; i++) {
			if (!ids[i])
				continue;
			struct strbuf t;
			strbuf_init(&t, 512);
			strbuf_printf(&t, "<%s>", ids[i]);
			draft_hdr_token(&hd, t.s, t.len);
			strbuf_free(&t);
			free(ids[i]);
		}
		draft_hdr_end(&hd);
	}
	strbuf_puts(h, "MIME-Version: 1.0\r\n"
		       "Content-Type: text/plain; charset=utf-8\r\n"
		       "Content-Transfer-Encoding: quoted-printable\r\n");
	strbuf_printf(h, "Content-Language: %s\r\n", c->lang);
	strbuf_printf(h, "X-Amends-Draft-Kind: %s\r\n", c->kind);
}

static int draft_compose_with(const struct config *cfg, const struct template_set *set,
			      const struct draft_request *req, char **out, size_t *outlen,
			      char **plain, char **err)
{
	struct draft_ctx c;
	struct template *own = NULL;
	struct strbuf body, msg;
	strbuf_init(&body, DRAFT_MAX_BYTES);
	strbuf_init(&msg, DRAFT_MAX_BYTES * 4);
	int rc = -1;
	if (draft_ctx_init(&c, cfg, req, err) < 0)
		goto out;
	const struct template *tpl = template_set_get(set, c.lang, c.kind);
	if (!tpl) {
		struct diag d;
		diag_init(&d);
		tpl = own = template_load(cfg, c.lang, c.kind, &d);
		if (!tpl) {
			util_seterr(err, "template %s/%s: %s", c.lang, c.kind,
				     d.n ? d.v[0].text : "cannot load");
			diag_free(&d);
			goto out;
		}
		diag_free(&d);
	}
	if (draft_body(&c, tpl, &body, err) < 0)
		goto out;
	draft_headers(&c, &msg);
	strbuf_puts(&msg, "\r\n");
	draft_qp(&msg, body.s, body.len);
	if (msg.oom || msg.truncated) {
		util_seterr(err, "draft too large or out of memory");
		goto out;
	}
	*outlen = msg.len;
	*out = strbuf_take(&msg);
	if (plain)
		*plain = strbuf_take(&body);
	rc = *out ? 0 : -1;
out:
	template_free(own);
	strbuf_free(&body);
	strbuf_free(&msg);
	draft_ctx_free(&c);
	return rc;
}

int draft_compose_ex(const struct config *cfg, const struct draft_request *req,
		     char **out, size_t *outlen, char **body, char **err)
{
	return draft_compose_with(cfg, NULL, req, out, outlen, body, err);
}

int draft_compose(const struct config *cfg, const struct draft_request *req,
		  char **out, size_t *outlen, char **err)
{
	return draft_compose_with(cfg, NULL, req, out, outlen, NULL, err);
}

/* ---- the drafter: one writer thread behind a bounded queue ------------------------------- */

struct draft_job {
	struct draft_job *next;
	char *data;
	size_t len;
	char qid[64];
	char kind[16];
	char lang[16];
	int refs;            /* submitter + writer; under d->mu */
	bool done;
	int rc;
	bool abandoned;      /* the submitter stopped waiting: the writer reports a failure */
	void (*late_failure)(void *arg);
	void *late_arg;
	void (*late_free)(void *arg);
};

struct drafter {
	const struct config *cfg;      /* the config the templates were loaded from */
	bool imap;
	struct maildir *md;
	struct spool *sp;
	struct imap_worker *iw;
	struct template_set *tpl;
	pthread_t writer;
	bool writer_started;
	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_done;
	struct draft_job *head, *tail;
	size_t qlen;
	size_t qbytes;                 /* sum of the queued drafts' sizes */
	bool stop;
	bool hold;                     /* drafter_hold (tests): the writer takes no job */
};

static void draft_job_free(struct draft_job *j)
{
	if (j->late_free)
		j->late_free(j->late_arg);
	free(j->data);
	free(j);
}

/* Drop one reference; frees the job with the last one. Call with d->mu held. */
static void draft_job_unref(struct draft_job *j)
{
	if (--j->refs == 0)
		draft_job_free(j);
}

/* Maildir files conventionally use LF; the composed message is CRLF (for IMAP). */
static size_t draft_crlf_to_lf(char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
			s[w++] = s[i];
	return w;
}

static int draft_write(struct drafter *d, struct draft_job *j)
{
	char *err = NULL, *name = NULL;
	int rc;
	if (d->imap) {
		rc = spool_put(d->sp, j->data, j->len, &name, &err);
		if (rc == 0) {
			stats_inc(STATS_DRAFTS_SPOOLED);
			imap_worker_kick(d->iw);
		}
	} else {
		j->len = draft_crlf_to_lf(j->data, j->len);
		rc = maildir_deliver(d->md, j->data, j->len, &name, &err);
		if (rc == 0)
			stats_inc(STATS_DRAFTS_WRITTEN);
	}
	if (rc == 0) {
		log_info("%s: draft: kind=%s lang=%s %s=%s", j->qid, j->kind, j->lang,
			 d->imap ? "spooled" : "written", name);
	} else {
		stats_inc(STATS_DRAFTS_FAILED);
		log_err("%s: draft: kind=%s lang=%s not written: %s", j->qid, j->kind, j->lang,
			err ? err : "error");
	}
	free(err);
	free(name);
	return rc;
}

static void *draft_writer_main(void *arg)
{
	struct drafter *d = arg;
	pthread_mutex_lock(&d->mu);
	for (;;) {
		while (!d->stop && (!d->head || d->hold))
			pthread_cond_wait(&d->cv_work, &d->mu);
		if (!d->head)
			break;       /* stop, and the queue is drained */
		struct draft_job *j = d->head;
		d->head = j->next;
		if (!d->head)
			d->tail = NULL;
		d->qlen--;
		d->qbytes -= j->len;
		pthread_mutex_unlock(&d->mu);
		int rc = draft_write(d, j);
		pthread_mutex_lock(&d->mu);
		j->rc = rc;
		j->done = true;
		pthread_cond_broadcast(&d->cv_done);
		/* Nobody waits for this outcome: tell the submitter's callback, without our lock
		 * (it may take the tally's). The job stays referenced by us meanwhile. */
		if (rc != 0 && j->abandoned && j->late_failure) {
			pthread_mutex_unlock(&d->mu);
			j->late_failure(j->late_arg);
			pthread_mutex_lock(&d->mu);
		}
		draft_job_unref(j);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

struct drafter *drafter_open(const struct config *cfg, char **err)
{
	struct drafter *d = calloc(1, sizeof(*d));
	char *root = NULL;
	if (!d) {
		util_seterr(err, "out of memory");
		return NULL;
	}
	d->cfg = cfg;
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv_work, NULL);
	pthread_cond_init(&d->cv_done, NULL);
	d->imap = cfg->drafts.delivery && strcmp(cfg->drafts.delivery, "imap") == 0;
	if (d->imap) {
		root = config_path(cfg, cfg->drafts.spool_dir);
		if (!root || !(d->sp = spool_open(root, err)))
			goto fail;
		if (!(d->iw = imap_worker_start(cfg, d->sp, err)))
			goto fail;
	} else {
		root = config_path(cfg, cfg->drafts.maildir);
		struct maildir_opts o = { .root = root, .folder = cfg->drafts.folder,
					  .flags = cfg->drafts.flags, .to_new = false };
		if (!root || !(d->md = maildir_open(&o, err)))
			goto fail;
	}
	struct diag dg;
	diag_init(&dg);
	d->tpl = template_set_load(cfg, &dg);
	for (size_t i = 0; i < dg.n; i++)
		log_warn("drafts: %s:%d: %s", dg.v[i].file, dg.v[i].line, dg.v[i].text);
	diag_free(&dg);
	if (pthread_create(&d->writer, NULL, draft_writer_main, d) != 0) {
		util_seterr(err, "cannot start the draft writer thread");
		goto fail;
	}
	d->writer_started = true;
	free(root);
	return d;
fail:
	free(root);
	drafter_close(d);
	return NULL;
}

void drafter_hold(struct drafter *d, bool hold)
{
	pthread_mutex_lock(&d->mu);
	d->hold = hold;
	pthread_cond_broadcast(&d->cv_work);
	pthread_mutex_unlock(&d->mu);
}

void drafter_close(struct drafter *d)
{
	if (!d)
		return;
	if (d->writer_started) {
		pthread_mutex_lock(&d->mu);
		d->stop = true;
		pthread_cond_broadcast(&d->cv_work);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->writer, NULL);
	}
	imap_worker_stop(d->iw);
	spool_close(d->sp);
	maildir_close(d->md);
	template_set_free(d->tpl);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv_work);
	pthread_cond_destroy(&d->cv_done);
	free(d);
}

int drafter_submit(struct drafter *d, const struct config *cfg, const struct draft_request *req,
		   char **err)
{
	const char *qid = req->queue_id ? req->queue_id : "";
	struct draft_job *j = calloc(1, sizeof(*j));
	if (!j) {
		stats_inc(STATS_DRAFTS_FAILED);
		util_seterr(err, "out of memory");
		if (req->late_free)
			req->late_free(req->late_arg);
		return -1;
	}
	/* the job owns late_arg from here: draft_job_free() releases it */
	j->late_failure = req->late_failure;
	j->late_arg = req->late_arg;
	j->late_free = req->late_free;
	/* templates preloaded for this config; after a reload the new config's are read */
	if (draft_compose_with(cfg, cfg == d->cfg ? d->tpl : NULL, req, &j->data, &j->len, NULL,
			       err) < 0) {
		stats_inc(STATS_DRAFTS_FAILED);
		draft_job_free(j);
		return -1;
	}
	/* labels for the writer's log line only: one cut at the field's size is still useful */
	(void)snprintf(j->qid, sizeof(j->qid), "%s", qid);
	(void)snprintf(j->kind, sizeof(j->kind), "%s", draft_kind_name(req->kind));
	(void)snprintf(j->lang, sizeof(j->lang), "%s", draft_reply_lang(cfg, req->lang));
	j->refs = 2;

	long budget = cfg->drafts.eom_budget_ms > 0 ? cfg->drafts.eom_budget_ms : 0;
	long long deadline = util_now_ms() + budget;
	pthread_mutex_lock(&d->mu);
	if (d->qlen >= DRAFT_QUEUE_MAX || d->qbytes + j->len > DRAFT_QUEUE_MAX_BYTES || d->stop) {
		pthread_mutex_unlock(&d->mu);
		stats_inc(STATS_DRAFTS_FAILED);
		util_seterr(err, "draft writer is %zu drafts behind; dropped", d->qlen);
		draft_job_free(j);
		return -1;
	}
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	d->qlen++;
	d->qbytes += j->len;
	pthread_cond_signal(&d->cv_work);
	while (budget > 0 && !j->done) {
		long long left = deadline - util_now_ms();
		if (left <= 0)
			break;
		struct timespec ts = util_deadline_ms(left);
		pthread_cond_timedwait(&d->cv_done, &d->mu, &ts);
	}
	/* Decided under the lock: either we saw the outcome, or the writer reports it. */
	if (!j->done)
		j->abandoned = true;
	int rc = j->done ? (j->rc == 0 ? 0 : -1) : 1;
	draft_job_unref(j);
	pthread_mutex_unlock(&d->mu);
	if (rc < 0)
		util_seterr(err, "draft could not be written (see the log)");
	else if (rc > 0 && budget > 0)
		log_warn("%s: draft: still being written after %ld ms; the writer finishes it",
			 qid, budget);
	return rc;
}
