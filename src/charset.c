/*
 * charset.c - declared charsets to UTF-8: an allow-list in front of iconv
 *
 * Mail names its charsets; only those on the list below reach iconv (others keep their ASCII
 * and every other byte becomes U+FFFD), so a stranger cannot make us load an arbitrary gconv
 * module. UTF-8 is validated rather than converted; UTF-16 without a byte-order mark is
 * guessed from its bytes; invalid or truncated sequences become U+FFFD.
 *
 * glibc loads a charset's gconv module at iconv_open and unloads it once a few other modules
 * have been released after its last descriptor closed: with mail in several charsets, every few
 * messages paid a dlopen (openat, mmap, relocations) inside the end-of-message callback.
 * iconv_pin keeps one descriptor per charset converted, opened at its first use and never
 * closed, so that each module is loaded once for the life of the process.
 *
 * OWNERSHIP  text is appended to the caller's strbuf; the pinned descriptors are the process's.
 */
#include "charset.h"

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

enum cs_kind { CS_UTF8, CS_ICONV, CS_UTF16, CS_LATIN_DEFAULT };

struct charset {
	const char *name;       /* as declared, lowercased */
	const char *iconv;      /* glibc iconv name */
	enum cs_kind kind;
	int unit;               /* bytes skipped after an invalid sequence */
};

static const struct charset charsets[] = {
	{ "utf-8", "UTF-8", CS_UTF8, 1 }, { "utf8", "UTF-8", CS_UTF8, 1 },
	{ "us-ascii", "UTF-8", CS_UTF8, 1 }, { "ascii", "UTF-8", CS_UTF8, 1 },
	{ "ansi_x3.4-1968", "UTF-8", CS_UTF8, 1 },
	{ "iso-8859-1", "ISO-8859-1", CS_ICONV, 1 }, { "iso-8859-2", "ISO-8859-2", CS_ICONV, 1 },
	{ "iso-8859-3", "ISO-8859-3", CS_ICONV, 1 }, { "iso-8859-4", "ISO-8859-4", CS_ICONV, 1 },
	{ "iso-8859-5", "ISO-8859-5", CS_ICONV, 1 }, { "iso-8859-6", "ISO-8859-6", CS_ICONV, 1 },
	{ "iso-8859-7", "ISO-8859-7", CS_ICONV, 1 }, { "iso-8859-8", "ISO-8859-8", CS_ICONV, 1 },
	{ "iso-8859-8-i", "ISO-8859-8", CS_ICONV, 1 }, { "iso-8859-9", "ISO-8859-9", CS_ICONV, 1 },
	{ "iso-8859-10", "ISO-8859-10", CS_ICONV, 1 }, { "iso-8859-11", "ISO-8859-11", CS_ICONV, 1 },
	{ "iso-8859-13", "ISO-8859-13", CS_ICONV, 1 }, { "iso-8859-14", "ISO-8859-14", CS_ICONV, 1 },
	{ "iso-8859-15", "ISO-8859-15", CS_ICONV, 1 }, { "iso-8859-16", "ISO-8859-16", CS_ICONV, 1 },
	{ "latin1", "ISO-8859-1", CS_ICONV, 1 }, { "latin-1", "ISO-8859-1", CS_ICONV, 1 },
	{ "iso8859-1", "ISO-8859-1", CS_ICONV, 1 }, { "iso_8859-1", "ISO-8859-1", CS_ICONV, 1 },
	{ "iso8859-6", "ISO-8859-6", CS_ICONV, 1 }, { "iso_8859-6", "ISO-8859-6", CS_ICONV, 1 },
	{ "iso-8859-6-i", "ISO-8859-6", CS_ICONV, 1 }, { "arabic", "ISO-8859-6", CS_ICONV, 1 },
	{ "windows-1250", "WINDOWS-1250", CS_ICONV, 1 }, { "windows-1251", "WINDOWS-1251", CS_ICONV, 1 },
	{ "windows-1252", "WINDOWS-1252", CS_ICONV, 1 }, { "windows-1253", "WINDOWS-1253", CS_ICONV, 1 },
	{ "windows-1254", "WINDOWS-1254", CS_ICONV, 1 }, { "windows-1255", "WINDOWS-1255", CS_ICONV, 1 },
	{ "windows-1256", "WINDOWS-1256", CS_ICONV, 1 }, { "windows-1257", "WINDOWS-1257", CS_ICONV, 1 },
	{ "windows-1258", "WINDOWS-1258", CS_ICONV, 1 },
	{ "cp1250", "WINDOWS-1250", CS_ICONV, 1 }, { "cp1251", "WINDOWS-1251", CS_ICONV, 1 },
	{ "cp1252", "WINDOWS-1252", CS_ICONV, 1 }, { "cp1256", "WINDOWS-1256", CS_ICONV, 1 },
	{ "x-cp1256", "WINDOWS-1256", CS_ICONV, 1 }, { "cp1255", "WINDOWS-1255", CS_ICONV, 1 },
	{ "windows-874", "WINDOWS-874", CS_ICONV, 1 }, { "tis-620", "TIS-620", CS_ICONV, 1 },
	{ "koi8-r", "KOI8-R", CS_ICONV, 1 }, { "koi8-u", "KOI8-U", CS_ICONV, 1 },
	{ "ibm866", "IBM866", CS_ICONV, 1 }, { "cp866", "IBM866", CS_ICONV, 1 },
	{ "gb2312", "GBK", CS_ICONV, 1 }, { "gbk", "GBK", CS_ICONV, 1 }, { "gb18030", "GB18030", CS_ICONV, 1 },
	{ "big5", "BIG5", CS_ICONV, 1 }, { "big5-hkscs", "BIG5-HKSCS", CS_ICONV, 1 },
	{ "shift_jis", "SHIFT_JIS", CS_ICONV, 1 }, { "shift-jis", "SHIFT_JIS", CS_ICONV, 1 },
	{ "sjis", "SHIFT_JIS", CS_ICONV, 1 }, { "windows-31j", "CP932", CS_ICONV, 1 },
	{ "euc-jp", "EUC-JP", CS_ICONV, 1 }, { "euc-kr", "EUC-KR", CS_ICONV, 1 },
	{ "ks_c_5601-1987", "CP949", CS_ICONV, 1 }, { "cp949", "CP949", CS_ICONV, 1 },
	{ "utf-16", "UTF-16", CS_UTF16, 2 }, { "utf-16le", "UTF-16LE", CS_UTF16, 2 },
	{ "utf-16be", "UTF-16BE", CS_UTF16, 2 }, { "ucs-2", "UTF-16", CS_UTF16, 2 },
	{ "utf-32", "UTF-32", CS_ICONV, 4 }, { "utf-32le", "UTF-32LE", CS_ICONV, 4 },
	{ "utf-32be", "UTF-32BE", CS_ICONV, 4 },
};

static const struct charset charset_none = { "", "WINDOWS-1252", CS_LATIN_DEFAULT, 1 };

/* charset_lookup - the allow-list entry for a declared name, or NULL (not allowed) */
static const struct charset *charset_lookup(const char *name, size_t n)
{
	char low[40];
	size_t k = 0;

	while (n && (*name == ' ' || *name == '\t' || *name == '"')) {
		name++;
		n--;
	}
	while (n && (name[n - 1] == ' ' || name[n - 1] == '\t' || name[n - 1] == '"'))
		n--;
	if (!n)
		return &charset_none;
	if (n >= sizeof(low))
		return NULL;
	for (k = 0; k < n; k++)
		low[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] - 'A' + 'a' : name[k]);
	low[k] = '\0';
	for (size_t i = 0; i < UTIL_ARRAY_LEN(charsets); i++)
		if (!strcmp(low, charsets[i].name))
			return &charsets[i];
	return NULL;
}

/* Not on the allow-list: keep ASCII, every other byte becomes U+FFFD. */
static void convert_replace(const char *in, size_t n, struct strbuf *out)
{
	size_t i = 0;

	while (i < n) {
		size_t run = 0;

		while (i + run < n && (unsigned char)in[i + run] < 0x80)
			run++;
		strbuf_append(out, in + i, run);
		i += run;
		if (i < n) {
			strbuf_append(out, UTF8_REPLACEMENT, 3);
			i++;
		}
	}
}

/* Valid UTF-8 copied, invalid sequences U+FFFD. */
static void convert_utf8(const char *in, size_t n, struct strbuf *out)
{
	char *clean;
	size_t len;

	if (util_utf8_valid(in, n)) {
		strbuf_append(out, in, n);
		return;
	}
	clean = util_utf8_sanitize(in, n, &len);
	if (!clean) {
		out->oom = true;
		return;
	}
	strbuf_append(out, clean, len);
	free(clean);
}

/* ---- keeping the converters loaded ---------------------------------------------------------- */

#define ICONV_PINS_MAX 64       /* more than the distinct iconv names below */

static const char *pin_name[ICONV_PINS_MAX];  /* static strings (the table's, or literals) */
/* Never used to convert, never closed. volatile: nothing reads them, and without it the
 * compiler drops the stores, so that valgrind calls the descriptors lost. */
static void *volatile pin_cd[ICONV_PINS_MAX];
static atomic_size_t pin_count;                 /* entries below it are published */
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;

static bool pin_known(const char *from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(pin_name[i], from))
			return true;
	return false;
}

/* iconv_pin - after a successful iconv_open of from (a string with static storage): make sure
 * one descriptor for it stays open. Lock-free once it is pinned; a charset that cannot be pinned
 * (no memory, table full) still converts, at the old cost. */
static void iconv_pin(const char *from)
{
	size_t n = atomic_load_explicit(&pin_count, memory_order_acquire);

	if (pin_known(from, n))
		return;
	pthread_mutex_lock(&pin_lock);
	n = atomic_load_explicit(&pin_count, memory_order_relaxed);
	if (!pin_known(from, n) && n < ICONV_PINS_MAX) {
		iconv_t cd = iconv_open("UTF-8", from);

		if (cd != (iconv_t)-1) {
			pin_name[n] = from;
			pin_cd[n] = cd;
			atomic_store_explicit(&pin_count, n + 1, memory_order_release);
		}
	}
	pthread_mutex_unlock(&pin_lock);
}

/* iconv with manual invalid-byte handling: an invalid sequence becomes U+FFFD and `unit` bytes
 * are skipped; an incomplete sequence at the end becomes one U+FFFD. from: a static string. */
static void convert_iconv(const char *from, int unit, const char *in, size_t n, struct strbuf *out)
{
	iconv_t cd = iconv_open("UTF-8", from);
	char *ip = (char *)in;
	size_t il = n;
	char buf[4096];

	if (cd == (iconv_t)-1) {
		convert_replace(in, n, out);
		return;
	}
	iconv_pin(from);
	while (il > 0 && !out->oom) {
		char *op = buf;
		size_t ol = sizeof(buf), before = il;
		size_t r = iconv(cd, &ip, &il, &op, &ol);
		int err = errno;

		strbuf_append(out, buf, (size_t)(op - buf));
		if (r != (size_t)-1)
			continue;
		if (err == E2BIG && (il < before || op > buf))
			continue;
		strbuf_append(out, UTF8_REPLACEMENT, 3);
		if (err != EILSEQ)
			break;                  /* EINVAL: truncated sequence at the end */
		{
			size_t skip = il < (size_t)unit ? il : (size_t)unit;

			ip += skip;
			il -= skip;
		}
		iconv(cd, NULL, NULL, NULL, NULL);
	}
	{
		char *op = buf;
		size_t ol = sizeof(buf);

		if (iconv(cd, NULL, NULL, &op, &ol) != (size_t)-1)
			strbuf_append(out, buf, (size_t)(op - buf));
	}
	iconv_close(cd);
}

/* UTF-16 with or without a BOM: a BOM decides; without one, "utf-16" is guessed from which
 * byte of each pair is usually small (the high byte of Latin, Arabic, Devanagari, Gurmukhi
 * letters is 0x00-0x0A): Windows writes little-endian without a BOM, iconv would assume big. */
static void convert_utf16(const struct charset *cs, const char *in, size_t n, struct strbuf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	const char *from = cs->iconv;

	if (n >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF))) {
		bool le = p[0] == 0xFF;

		if (!strcmp(from, "UTF-16") || (le && !strcmp(from, "UTF-16LE")) ||
		    (!le && !strcmp(from, "UTF-16BE"))) {
			from = le ? "UTF-16LE" : "UTF-16BE";
			in += 2;
			n -= 2;
		}
	} else if (!strcmp(from, "UTF-16")) {
		size_t even = 0, odd = 0, probe = n < 4096 ? n : 4096;

		for (size_t i = 0; i + 1 < probe; i += 2) {
			even += p[i] < 0x20;
			odd += p[i + 1] < 0x20;
		}
		from = odd > even ? "UTF-16LE" : "UTF-16BE";
	}
	convert_iconv(from, 2, in, n, out);
}

bool charset_allowed(const char *name, size_t n)
{
	return charset_lookup(name, n) != NULL;
}

enum charset_result charset_to_utf8(const char *cs, size_t cslen, const char *in, size_t n,
				    struct strbuf *out)
{
	const struct charset *c = charset_lookup(cs, cslen);

	if (!c) {
		convert_replace(in, n, out);
		return CHARSET_REFUSED;
	}
	switch (c->kind) {
	case CS_UTF8:
		convert_utf8(in, n, out);
		return CHARSET_VALID;
	case CS_LATIN_DEFAULT:
		/* no charset declared: UTF-8 if it is, else the usual Western default */
		if (util_utf8_valid(in, n)) {
			strbuf_append(out, in, n);
			return CHARSET_VALID;
		}
		convert_iconv(c->iconv, c->unit, in, n, out);
		return CHARSET_CONVERTED;
	case CS_UTF16:
		convert_utf16(c, in, n, out);
		return CHARSET_CONVERTED;
	case CS_ICONV:
		convert_iconv(c->iconv, c->unit, in, n, out);
		return CHARSET_CONVERTED;
	}
	return CHARSET_CONVERTED;
}
