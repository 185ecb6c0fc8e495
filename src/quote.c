/*
 * quote.c - split plain text into the customer's new text and quoted/forwarded text
 *
 * One pass over the lines. The first attribution line ("On ... wrote:" and its Urdu, Persian,
 * Punjabi, Hindi, Roman Urdu/Hinglish and a few European forms), Outlook header block or
 * forwarded-message separator starts the quoted tail: it and everything after it is quoted,
 * because top-posting clients put the whole older message there, often without '>' markers.
 * Before that, '>' lines are quoted and the rest is new. Look-ahead is bounded (a few lines),
 * so the time is linear in the text.
 *
 * OWNERSHIP  appends to the caller's strbufs only.
 * DIAGNOSTICS  none; -1 only when a buffer ran out of memory.
 */
#include "quote.h"
#include "util.h"

#include <string.h>

struct line {
	const char *s;
	size_t n;            /* without the LF */
};

/* how many lines an attribution or Outlook block may look ahead */
#define QUOTE_LOOKAHEAD 4
/* an attribution wrapped over lines is at most this long once joined */
#define QUOTE_ATTRIB_MAX 600

/* line endings of attribution lines, compared ASCII-caselessly after trailing blanks; each
 * ends in ':' (ends_attrib relies on it) */
static const char *const attrib_endings[] = {
	"wrote:", "wrote :", "writes:", "a écrit :", "a écrit:", "schrieb:", "escribió:",
	"ने लिखा:", "ने लिखा :", "ने लिखा है:",
	"ਨੇ ਲਿਖਿਆ:", "ਨੇ ਲਿਖਿਆ :",
	"نے لکھا:", "نے لکھا :", "نے لکھا ہے:",
	"نوشت:", "نوشت :", "نوشته:",
	"ne likha:", "ne likha hai:", "ne likhaa:", "nay likha:", "ne likha :",
};

/* words that open an attribution line */
static const char *const attrib_openers[] = {
	"On ", "Le ", "Am ", "El ", "Op ", "Em ", "بتاریخ", "در تاریخ", "مورخه", "تاریخ",
};

/* the words between the dashes of a separator line, ASCII-caseless */
static const char *const separator_cores[] = {
	"original message", "forwarded message", "forwarded message follows", "forwarded e-mail",
	"message transféré", "message d'origine", "weitergeleitete nachricht",
	"ursprüngliche nachricht", "mensaje reenviado", "mensaje original",
	/* Exim's inline bounce: the returned message is older text */
	"this is a copy of the message, including all the headers.",
	"this is a copy of your message, including all the headers.",
	"this is a copy of the message's headers.",
	"پیام بازارسال‌شده", "پیام بازارسال شده", "پیام بازارسالشده", "پیام هدایت‌شده", "پیام اصلی",
	"فارورڈ کردہ پیغام", "فارورڈ شدہ پیغام", "آگے بھیجا گیا پیغام", "اصل پیغام",
	"अग्रेषित संदेश", "आगे भेजा गया संदेश", "फ़ॉरवर्ड किया गया संदेश", "मूल संदेश",
	"ਅੱਗੇ ਭੇਜਿਆ ਸੁਨੇਹਾ", "ਅੱਗੇ ਭੇਜਿਆ ਗਿਆ ਸੁਨੇਹਾ", "ਮੂਲ ਸੁਨੇਹਾ",
};

/* lines that are separators on their own, without dashes */
static const char *const separator_lines[] = {
	"Begin forwarded message:", "Forwarded message:", "Start of forwarded message",
};

/* Outlook reply header block: a From line followed closely by one of these */
static const char *const outlook_from[] = { "From:", "De:", "Von:", "از:", "منجانب:", "प्रेषक:", "ਵੱਲੋਂ:" };
static const char *const outlook_next[] = {
	"Sent:", "Date:", "Envoyé :", "Envoyé:", "Gesendet:", "Enviado:", "ارسال:", "تاریخ:", "بھیجا گیا:",
	"भेजा गया:", "ਭੇਜਿਆ:",
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static struct line trim(struct line l)
{
	while (l.n && is_blank(l.s[0])) {
		l.s++;
		l.n--;
	}
	while (l.n && is_blank(l.s[l.n - 1]))
		l.n--;
	return l;
}

static bool ci_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

static bool starts_ci(struct line l, const char *p)
{
	size_t n = strlen(p);

	return l.n >= n && ci_eq(l.s, p, n);
}

static bool ends_ci(struct line l, const char *p)
{
	size_t n = strlen(p);

	return l.n >= n && ci_eq(l.s + l.n - n, p, n);
}

static bool starts_any(struct line l, const char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (starts_ci(l, list[i]))
			return true;
	return false;
}

static bool ends_any(struct line l, const char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (ends_ci(l, list[i]))
			return true;
	return false;
}

/* Does the (trimmed) line end like an attribution? Most lines do not even end in ':'. */
static bool ends_attrib(struct line l)
{
	return l.n && l.s[l.n - 1] == ':' &&
	       ends_any(l, attrib_endings, UTIL_ARRAY_LEN(attrib_endings));
}

/* A line of at least eight underscores (Outlook's rule above a reply header block) */
static bool underscore_line(struct line l)
{
	return l.n >= 8 && strspn(l.s, "_") >= l.n;
}

static bool is_quote_line(struct line l)
{
	l = trim(l);
	return l.n && l.s[0] == '>';
}

static bool has_at(struct line l)
{
	return memchr(l.s, '@', l.n) != NULL;
}

/* separator line: dashes (or underscores/equals) around a known phrase, or a known line */
static bool separator_line(struct line l)
{
	struct line core;
	size_t lead = 0;

	l = trim(l);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(separator_lines); i++)
		if (l.n == strlen(separator_lines[i]) && ci_eq(l.s, separator_lines[i], l.n))
			return true;
	core = l;
	while (core.n && (core.s[0] == '-' || core.s[0] == '=' || core.s[0] == '_' || core.s[0] == '*')) {
		core.s++;
		core.n--;
		lead++;
	}
	if (lead < 2)
		return false;
	while (core.n && (core.s[core.n - 1] == '-' || core.s[core.n - 1] == '=' || core.s[core.n - 1] == '_' ||
			  core.s[core.n - 1] == '*'))
		core.n--;
	core = trim(core);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(separator_cores); i++)
		if (core.n == strlen(separator_cores[i]) && ci_eq(core.s, separator_cores[i], core.n))
			return true;
	return false;
}

bool quote_is_separator(const char *s, size_t n)
{
	struct line l = trim((struct line){ s, n });

	if (separator_line(l))
		return true;
	return ends_attrib(l) &&
	       (has_at(l) || starts_any(l, attrib_openers, UTIL_ARRAY_LEN(attrib_openers)));
}

/* the lines at and after position pos, up to QUOTE_LOOKAHEAD + 1 of them */
static size_t peek_lines(const char *text, size_t len, size_t pos, struct line *out, size_t max)
{
	size_t k = 0;

	while (k < max && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		out[k++] = (struct line){ text + pos, n };
		pos += n + 1;
	}
	return k;
}

/* An attribution that starts on la[0]: one line ending in "wrote:" that names an address, starts
 * with an opener or is followed by '>' lines; or an opener line wrapped over up to 3 lines. */
static bool attribution_at(const struct line *la, size_t k)
{
	struct line l = trim(la[0]);
	size_t joined;

	if (!l.n)
		return false;
	if (ends_attrib(l)) {
		if (has_at(l) || starts_any(l, attrib_openers, UTIL_ARRAY_LEN(attrib_openers)))
			return true;
		for (size_t i = 1; i < k; i++) {
			if (!trim(la[i]).n)
				continue;
			return is_quote_line(la[i]);
		}
		return false;
	}
	if (!starts_any(l, attrib_openers, UTIL_ARRAY_LEN(attrib_openers)))
		return false;
	joined = l.n;
	for (size_t i = 1; i < k && i < 3; i++) {
		struct line t = trim(la[i]);

		if (!t.n || is_quote_line(t))
			return false;
		joined += 1 + t.n;
		if (joined > QUOTE_ATTRIB_MAX)
			return false;
		if (ends_attrib(t))
			return true;
	}
	return false;
}

/* Outlook: "From: ..." then "Sent:"/"Date:" within the next lines; or a line of underscores
 * right before such a block. */
static bool outlook_at(const struct line *la, size_t k)
{
	struct line l = trim(la[0]);
	size_t from = 0;

	if (underscore_line(l)) {
		from = 1;
		while (from < k && !trim(la[from]).n)
			from++;
		if (from >= k)
			return false;
		l = trim(la[from]);
	}
	if (!starts_any(l, outlook_from, UTIL_ARRAY_LEN(outlook_from)))
		return false;
	for (size_t i = from + 1; i < k && i <= from + 3; i++)
		if (starts_any(trim(la[i]), outlook_next, UTIL_ARRAY_LEN(outlook_next)))
			return true;
	return false;
}

static int put_line(struct strbuf *b, struct line l)
{
	int rc = strbuf_append(b, l.s, l.n);

	if (strbuf_putc(b, '\n') < 0)
		rc = -1;
	return rc;
}

/* Can la[0] begin an attribution or Outlook block? Only then are the lines after it read
 * (attribution_at and outlook_at look at them only when one of these holds). */
static bool may_start_block(struct line l)
{
	l = trim(l);
	return ends_attrib(l) ||
	       starts_any(l, attrib_openers, UTIL_ARRAY_LEN(attrib_openers)) ||
	       starts_any(l, outlook_from, UTIL_ARRAY_LEN(outlook_from)) ||
	       underscore_line(l);
}

int quote_split(const char *text, size_t len, struct strbuf *new_text, struct strbuf *quoted)
{
	size_t pos = 0, pending_blank = 0;
	bool any_new = false;

	while (pos < len) {
		struct line la[QUOTE_LOOKAHEAD + 1];
		size_t k = peek_lines(text, len, pos, la, 1);

		if (may_start_block(la[0]))
			k = peek_lines(text, len, pos, la, UTIL_ARRAY_LEN(la));
		if (separator_line(la[0]) || attribution_at(la, k) || outlook_at(la, k)) {
			/* the tail: every line from here on, as it is, each ended by a LF */
			strbuf_append(quoted, text + pos, len - pos);
			if (text[len - 1] != '\n')
				strbuf_putc(quoted, '\n');
			break;
		}
		pos += la[0].n + 1;
		if (is_quote_line(la[0])) {
			put_line(quoted, la[0]);
			continue;
		}
		if (!trim(la[0]).n) {
			if (any_new)
				pending_blank++;
			continue;
		}
		for (; pending_blank; pending_blank--)
			strbuf_putc(new_text, '\n');
		put_line(new_text, la[0]);
		any_new = true;
	}
	return new_text->oom || quoted->oom ? -1 : 0;
}
