/*
 * fuzz_draft.c - libFuzzer target: the draft composer and template renderer (R2.1 e, R2.4, R8.3)
 *
 * Input: byte 0 picks the mode (bit 0), the draft kind (bits 1-2) and the detected language
 * (bits 3-5); byte 1 picks the Date the message carries (ordinary and extreme times).
 *  - raw mode: the rest is split at NUL bytes into the fields of a hand-built struct message
 *    (subject, from_name, from_addr, message_id, references, in_reply_to, date, body_new,
 *    body_quoted) and up to three history subjects: everything a stranger controls, unfiltered;
 *  - parse mode: the rest is a whole message, decoded by message_parse() first (the real path).
 * Oracle for every draft composed (RELIABILITY R2.4, R8.3, issue 8 item 4):
 *  - CRLF line ends only, no NUL, no line over 998 octets;
 *  - the header block is printable ASCII (TAB allowed in folds) and holds exactly the
 *    template's header set: Date From To Subject Message-ID MIME-Version Content-Type
 *    Content-Transfer-Encoding Content-Language X-Amends-Draft-Kind once each, In-Reply-To and
 *    References at most once, nothing else (no header injection);
 *  - GMime parses it back to the same header names in the same order, one From and one To
 *    mailbox (a display name cannot add a recipient), a subject of valid UTF-8 without CR/LF
 *    and at most DRAFT_SUBJECT_MAX_CP code points, and a text body of valid UTF-8;
 *  - with FUZZ_DRAFT_DUMP=DIR the drafts are written there for tests/fuzz/check_drafts.py, the
 *    second, strict parser of R2.4 (tests/fuzz/regress.sh runs it).
 *
 * OWNERSHIP  Everything is freed before returning.
 */
#include "fuzz_common.h"
#include "draft.h"
#include "message.h"
#include "util.h"

#include <gmime/gmime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MAX_HEADERS 64

enum { F_SUBJECT, F_FROM_NAME, F_FROM_ADDR, F_MSGID, F_REFS, F_IRT, F_DATE, F_BODY_NEW,
       F_BODY_QUOTED, F_HIST1, F_HIST2, F_HIST3, F_COUNT };

static const char *const langs[] = { "en", "ur", "pa", "fa", "hi", "ur-Latn", "hi-Latn", "und" };
static const enum policy_draft kinds[] = { POLICY_DRAFT_APOLOGY, POLICY_DRAFT_WINBACK,
					   POLICY_DRAFT_PARTWAYS, POLICY_DRAFT_APOLOGY };
/* Date header times: none, ordinary, epoch edges, and the ends of what message.c can give
 * (GDateTime: years 1 to 9999). Beyond that range draft_day() would overflow (not reachable). */
static const time_t dates[] = { 0, 1709615700, 1, -1, 2147483647, -2147483648LL,
				253402300799LL, -62135596800LL };

static const char *const required[] = { "Date", "From", "To", "Subject", "Message-ID",
					"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
					"Content-Language", "X-Amends-Draft-Kind" };
static const char *const optional[] = { "In-Reply-To", "References" };

struct hdrs {
	char *name[FUZZ_MAX_HEADERS];
	size_t n;
};

static void hdrs_free(struct hdrs *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->name[i]);
	h->n = 0;
}

/* Lines: CRLF only, <= 998 octets, no NUL; returns the length of the header block. */
static size_t check_lines(const char *out, size_t len)
{
	size_t hdr_end = 0, start = 0;

	FUZZ_CHECK(memchr(out, '\0', len) == NULL, "the draft contains NUL");
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\r')
			FUZZ_CHECK(i + 1 < len && out[i + 1] == '\n', "bare CR at offset %zu", i);
		if (out[i] != '\n')
			continue;
		FUZZ_CHECK(i > 0 && out[i - 1] == '\r', "bare LF at offset %zu", i);
		FUZZ_CHECK(i - 1 - start <= 998, "a line of %zu octets at offset %zu", i - 1 - start,
			   start);
		if (!hdr_end && i - 1 == start)
			hdr_end = start;
		start = i + 1;
	}
	FUZZ_CHECK(len - start <= 998, "a last line of %zu octets", len - start);
	FUZZ_CHECK(hdr_end > 0, "no blank line after the headers");
	return hdr_end;
}

/* The header block: ASCII, well-formed fields, exactly the template's set. */
static void check_header_set(const char *out, size_t hlen, struct hdrs *h)
{
	size_t counts[UTIL_ARRAY_LEN(required) + UTIL_ARRAY_LEN(optional)] = { 0 };

	for (size_t i = 0; i < hlen; i++) {
		unsigned char c = (unsigned char)out[i];

		FUZZ_CHECK(c == '\r' || c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F),
			   "header byte 0x%02x at offset %zu", c, i);
	}
	for (size_t i = 0; i < hlen; ) {
		const char *eol = memchr(out + i, '\r', hlen - i);
		size_t n = eol ? (size_t)(eol - (out + i)) : hlen - i;

		if (out[i] != ' ' && out[i] != '\t') {
			const char *colon = memchr(out + i, ':', n);

			FUZZ_CHECK(colon && colon > out + i, "header line without a name: \"%.*s\"",
				   (int)(n < 80 ? n : 80), out + i);
			FUZZ_CHECK(h->n < FUZZ_MAX_HEADERS, "more than %d header fields", FUZZ_MAX_HEADERS);
			h->name[h->n++] = util_strndup(out + i, (size_t)(colon - (out + i)));
		}
		i += n + 2;
	}
	for (size_t k = 0; k < h->n; k++) {
		size_t j;

		for (j = 0; j < UTIL_ARRAY_LEN(counts); j++) {
			const char *want = j < UTIL_ARRAY_LEN(required) ? required[j]
					   : optional[j - UTIL_ARRAY_LEN(required)];

			if (!strcmp(h->name[k], want))
				break;
		}
		FUZZ_CHECK(j < UTIL_ARRAY_LEN(counts), "a header outside the template's set: \"%s\"",
			   h->name[k]);
		FUZZ_CHECK(++counts[j] == 1, "header %s appears twice", h->name[k]);
	}
	for (size_t j = 0; j < UTIL_ARRAY_LEN(required); j++)
		FUZZ_CHECK(counts[j] == 1, "header %s missing", required[j]);
}

static void check_mailbox_list(InternetAddressList *l, const char *what)
{
	FUZZ_CHECK(l && internet_address_list_length(l) == 1, "%s: %d addresses, not 1", what,
		   l ? internet_address_list_length(l) : -1);
	FUZZ_CHECK(INTERNET_ADDRESS_IS_MAILBOX(internet_address_list_get_address(l, 0)),
		   "%s is not a mailbox", what);
}

/* The names GMime holds in hl are ours, in our order: the Content-* ones or the others. */
static void check_gmime_headers(GMimeHeaderList *hl, const struct hdrs *h, bool content)
{
	int n = g_mime_header_list_get_count(hl), k = 0;

	for (size_t i = 0; i < h->n; i++) {
		if (!util_ascii_casestarts(h->name[i], "Content-") != !content)
			continue;
		FUZZ_CHECK(k < n, "GMime lost header %s", h->name[i]);
		const char *name = g_mime_header_get_name(g_mime_header_list_get_header_at(hl, k));

		FUZZ_CHECK(name && !strcasecmp(name, h->name[i]), "GMime header %d is %s, we wrote %s",
			   k, name ? name : "(null)", h->name[i]);
		k++;
	}
	FUZZ_CHECK(k == n, "GMime sees %d %s header fields, we wrote %d", n,
		   content ? "Content-*" : "message", k);
}

/* Is [s, s+n) empty, or does it start or end with '.' or hold ".."? (not a dot-atom) */
/* GMime reads back what we wrote: the same header names, one To, a clean subject and body. */
static void check_gmime(const char *out, size_t len, const struct hdrs *h)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(out, len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);

	FUZZ_CHECK(m != NULL, "GMime cannot parse the draft");
	GMimeObject *body = g_mime_message_get_mime_part(m);

	FUZZ_CHECK(body && GMIME_IS_TEXT_PART(body), "the body is not one text part");
	/* GMime files Content-* under the body part and the rest under the message */
	check_gmime_headers(g_mime_object_get_header_list(GMIME_OBJECT(m)), h, false);
	check_gmime_headers(g_mime_object_get_header_list(body), h, true);
	check_mailbox_list(g_mime_message_get_from(m), "From");
	InternetAddressList *to = g_mime_message_get_to(m);

	/* draft.c refuses addresses that are not dot-atoms ("a.@b", "a@b..c"): To always parses
	 * to exactly one mailbox. */
	check_mailbox_list(to, "To");
	FUZZ_CHECK(internet_address_list_length(g_mime_message_get_cc(m)) == 0 &&
		   internet_address_list_length(g_mime_message_get_bcc(m)) == 0, "Cc or Bcc appeared");

	const char *subj = g_mime_message_get_subject(m);

	FUZZ_CHECK(subj && g_utf8_validate(subj, -1, NULL), "subject not valid UTF-8");
	FUZZ_CHECK(!strpbrk(subj, "\r\n"), "subject contains CR/LF");
	FUZZ_CHECK(g_utf8_strlen(subj, -1) <= DRAFT_SUBJECT_MAX_CP, "subject of %ld code points",
		   (long)g_utf8_strlen(subj, -1));

	char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(body));

	FUZZ_CHECK(text && g_utf8_validate(text, -1, NULL), "the body is not valid UTF-8");
	g_free(text);
	g_object_unref(m);
	g_object_unref(p);
	g_object_unref(st);
}

/* With FUZZ_DRAFT_DUMP=DIR every draft is also written to DIR for the second, strict parser
 * (tests/fuzz/check_drafts.py, Python email.policy.strict: RELIABILITY R2.4). */
static void dump_draft(const char *out, size_t len)
{
	static unsigned long seq;
	const char *dir = getenv("FUZZ_DRAFT_DUMP");
	struct strbuf path;
	FILE *f;

	if (!dir || !*dir)
		return;
	strbuf_init(&path, 0);
	strbuf_printf(&path, "%s/draft-%06lu.eml", dir, seq++);
	f = path.s ? fopen(path.s, "wb") : NULL;
	FUZZ_CHECK(f != NULL, "cannot create a file in %s", dir);
	FUZZ_CHECK(fwrite(out, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path.s);
	strbuf_free(&path);
}

static void compose_and_check(const struct config *cfg, const struct draft_request *req)
{
	char *out = NULL, *err = NULL;
	size_t len = 0;
	struct hdrs h = { .n = 0 };

	if (draft_compose(cfg, req, &out, &len, &err) < 0) {
		/* refusing is allowed (no usable address, too large); failing silently is not */
		FUZZ_CHECK(err != NULL, "draft_compose failed without a reason");
		free(err);
		return;
	}
	FUZZ_CHECK(out != NULL && err == NULL, "draft_compose succeeded without output");
	size_t hlen = check_lines(out, len);

	check_header_set(out, hlen, &h);
	check_gmime(out, len, &h);
	dump_draft(out, len);
	hdrs_free(&h);
	free(out);
}

static void fill_counts(const struct config *cfg, const uint8_t *data, size_t size,
			struct tally_count *v, struct tally_counts *c)
{
	c->v = v;
	c->n = 0;
	for (size_t i = 0; i < cfg->n_categories && i < CONFIG_MAX_CATEGORIES; i++) {
		v[c->n].category = cfg->categories[i].name;
		v[c->n].count = size > i ? data[i] % 8 : 0;
		v[c->n].first_seen = v[c->n].last_seen = 1709615700;
		c->n++;
	}
}

static void run_raw(const struct config *cfg, struct draft_request *req, const uint8_t *data,
		    size_t size, time_t date_t)
{
	const uint8_t *f[F_COUNT];
	size_t flen[F_COUNT];
	char *s[F_COUNT] = { NULL };
	size_t n = fuzz_split(data, size, 0, f, flen, F_COUNT);
	struct message m;
	struct tally_incident inc[3];
	struct tally_history hist = { inc, 0 };
	struct tally_count cv[CONFIG_MAX_CATEGORIES];
	struct tally_counts counts;

	for (size_t i = 0; i < F_COUNT; i++)
		s[i] = i < n ? fuzz_strndup(f[i], flen[i]) : fuzz_strndup((const uint8_t *)"", 0);
	memset(&m, 0, sizeof(m));
	m.subject = s[F_SUBJECT];
	m.from_name = s[F_FROM_NAME];
	m.from_addr = s[F_FROM_ADDR];
	m.to_addr = (char *)"support@shop.example";
	m.message_id = s[F_MSGID];
	m.references = s[F_REFS];
	m.in_reply_to = s[F_IRT];
	m.date = s[F_DATE];
	m.date_t = date_t;
	m.content_type = (char *)"text/plain";
	m.body_new = s[F_BODY_NEW];
	m.body_new_len = strlen(s[F_BODY_NEW]);
	m.body_quoted = s[F_BODY_QUOTED];
	m.body_quoted_len = strlen(s[F_BODY_QUOTED]);
	for (size_t k = 0; k < 3 && F_HIST1 + k < n; k++) {
		inc[k] = (struct tally_incident){ .when = 1709615700 - (time_t)k * 86400,
			.message_id = s[F_MSGID], .subject = s[F_HIST1 + k],
			.categories = (char *)"complaint", .rules = (char *)"R" };
		hist.n++;
	}
	fill_counts(cfg, data, size, cv, &counts);
	req->msg = &m;
	req->sender = m.from_addr;
	req->counts = &counts;
	req->history = hist.n ? &hist : NULL;
	compose_and_check(cfg, req);
	for (size_t i = 0; i < F_COUNT; i++)
		free(s[i]);
}

static void run_parsed(const struct config *cfg, struct draft_request *req, const uint8_t *data,
		       size_t size)
{
	struct message_limits lim;
	struct message *m = NULL;

	message_limits_default(&lim);
	FUZZ_CHECK(message_parse((const char *)data, size, &lim, &m) == 0 && m,
		   "message_parse failed");
	req->msg = m;
	req->sender = m->from_addr;
	compose_and_check(cfg, req);
	message_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct config *cfg = fuzz_config();
	struct draft_request req;

	if (size < 2)
		return 0;
	memset(&req, 0, sizeof(req));
	req.kind = kinds[(data[0] >> 1) & 3];
	req.lang = langs[(data[0] >> 3) & 7];
	req.now = 1709700000;
	req.queue_id = "FUZZ";
	if (data[0] & 1)
		run_parsed(cfg, &req, data + 2, size - 2);
	else
		run_raw(cfg, &req, data + 2, size - 2, dates[data[1] % UTIL_ARRAY_LEN(dates)]);
	return 0;
}
