/*
 * fuzz_mime.c - libFuzzer target: raw message bytes -> message_parse() (RELIABILITY R2.1 a, b)
 *
 * The input is a whole message (headers, blank line, body). It is parsed twice: with the
 * default limits, and (for inputs under 64 KiB) with tiny limits so every limit path is hit
 * on ordinary mail. Oracle: parsing never fails on malformed mail; every decoded string is
 * valid UTF-8 and free of NUL; header-derived strings (addresses and Message-ID: raw bytes)
 * carry no CR/LF and stay within header_value_bytes; counts, depths and text lengths stay
 * within the limits given; the parts' text lengths are the real lengths; and the message is
 * the same whether message.c reads plain top-level headers itself or GMime reads them all
 * (message_limits.gmime_headers), and the same when the daemon leaves attachment and shadowed
 * HTML bodies out of GMime's input as when GMime is given everything (keep_attachment_bodies).
 *
 * OWNERSHIP  Everything parsed is freed before returning (leaks are reported by LeakSanitizer).
 */
#include "fuzz_common.h"
#include "message.h"
#include "../msgdiff.h"
#include "util.h"

#include <string.h>

/* A decoded string: present, valid UTF-8, no NUL inside its stated length. */
static void check_text(const char *what, const char *s, size_t len)
{
	FUZZ_CHECK(s != NULL, "%s is NULL", what);
	FUZZ_CHECK(util_utf8_valid(s, len), "%s is not valid UTF-8", what);
	FUZZ_CHECK(memchr(s, '\0', len) == NULL, "%s contains NUL", what);
	FUZZ_CHECK(s[len] == '\0', "%s is not NUL-terminated at its length", what);
}

/* A header-derived string: one line, within the limit; decoded ones also valid UTF-8. */
static void check_line(const char *what, const char *s, size_t max, bool decoded)
{
	FUZZ_CHECK(s != NULL, "%s is NULL", what);
	size_t len = strlen(s);
	if (decoded)
		check_text(what, s, len);
	FUZZ_CHECK(strpbrk(s, "\r\n") == NULL, "%s contains CR or LF", what);
	FUZZ_CHECK(len <= max, "%s is %zu bytes, over the %zu limit", what, len, max);
}

static void check_parts(const struct message *m, const struct message_limits *lim)
{
	size_t total = 0;

	FUZZ_CHECK(m->n_parts <= (size_t)lim->mime_parts, "%zu parts, limit %d", m->n_parts,
		   lim->mime_parts);
	for (size_t i = 0; i < m->n_parts; i++) {
		const struct message_part *p = &m->parts[i];

		FUZZ_CHECK(p->depth >= 0 && p->depth <= lim->mime_depth, "part %zu at depth %d, limit %d",
			   i, p->depth, lim->mime_depth);
		check_text("part text", p->text, p->text_len);
		check_text("part new_text", p->new_text, p->new_len);
		check_text("part quoted_text", p->quoted_text, p->quoted_len);
		FUZZ_CHECK(p->content_type && p->charset, "part %zu without content type/charset", i);
		FUZZ_CHECK(p->text_len <= lim->part_text_bytes, "part %zu text %zu bytes, limit %zu", i,
			   p->text_len, lim->part_text_bytes);
		total += p->text_len;
	}
	FUZZ_CHECK(total <= lim->message_text_bytes, "message text %zu bytes, limit %zu", total,
		   lim->message_text_bytes);
}

static void check_message(const struct message *m, const struct message_limits *lim)
{
	size_t vmax = lim->header_value_bytes;

	/* addresses and the Message-ID are copied raw (message.h promises no UTF-8 for them) */
	check_line("subject", m->subject, vmax, true);
	check_line("from_addr", m->from_addr, vmax, false);
	check_line("from_name", m->from_name, vmax, true);
	check_line("to_addr", m->to_addr, vmax, false);
	check_line("message_id", m->message_id, vmax, false);
	FUZZ_CHECK(m->in_reply_to && m->references && m->date && m->content_type,
		   "a raw header field is NULL");
	FUZZ_CHECK(m->n_headers <= (size_t)lim->header_count, "%zu headers, limit %d", m->n_headers,
		   lim->header_count);
	for (size_t i = 0; i < m->n_headers; i++) {
		FUZZ_CHECK(m->headers[i].name != NULL, "header %zu has no name", i);
		check_line("header value", m->headers[i].value, vmax, true);
	}
	check_parts(m, lim);
	check_text("body_new", m->body_new, m->body_new_len);
	check_text("body_quoted", m->body_quoted, m->body_quoted_len);
	/* parts are joined with one "\n" each */
	FUZZ_CHECK(m->body_new_len <= lim->message_text_bytes + m->n_parts,
		   "body_new %zu bytes over the message text limit", m->body_new_len);
}

static void parse_one(const uint8_t *data, size_t size, const struct message_limits *lim)
{
	struct message_limits ref = *lim;
	struct message *m = NULL, *g = NULL;
	const char *d;

	FUZZ_CHECK(message_parse((const char *)data, size, lim, &m) == 0 && m,
		   "message_parse failed on %zu bytes (only out of memory may fail)", size);
	check_message(m, lim);
	ref.gmime_headers = true;
	FUZZ_CHECK(message_parse((const char *)data, size, &ref, &g) == 0 && g,
		   "message_parse (GMime reading the headers) failed on %zu bytes", size);
	d = msgdiff(m, g);
	FUZZ_CHECK(d == NULL, "own reading of the top-level headers differs from GMime's: %s", d);
	message_free(m);
	message_free(g);
}

/* The daemon's reading (skip_shadowed: bodies nobody reads left out) is GMime's given all. */
static void compare_left_out(const uint8_t *data, size_t size, const struct message_limits *lim)
{
	struct message_limits daemon = *lim, whole;
	struct message *m = NULL, *w = NULL;
	const char *d;

	daemon.skip_shadowed = true;
	whole = daemon;
	whole.keep_attachment_bodies = true;
	FUZZ_CHECK(message_parse((const char *)data, size, &daemon, &m) == 0 && m,
		   "message_parse (skip_shadowed) failed on %zu bytes", size);
	FUZZ_CHECK(message_parse((const char *)data, size, &whole, &w) == 0 && w,
		   "message_parse (keep_attachment_bodies) failed on %zu bytes", size);
	FUZZ_CHECK(w->bodies_left_out == 0, "%zu bodies left out although kept", w->bodies_left_out);
	w->bodies_left_out = m->bodies_left_out;
	d = msgdiff(m, w);
	FUZZ_CHECK(d == NULL, "with bodies left out the message differs: %s", d);
	message_free(m);
	message_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message_limits lim;

	fuzz_setup();
	message_limits_default(&lim);
	parse_one(data, size, &lim);
	compare_left_out(data, size, &lim);
	if (size < 65536) {
		struct message_limits tiny = {
			.mime_depth = 3, .mime_parts = 5, .header_bytes = 512,
			.header_value_bytes = 128, .header_count = 10, .part_text_bytes = 200,
			.message_text_bytes = 500,
		};

		parse_one(data, size, &tiny);
	}
	return 0;
}
