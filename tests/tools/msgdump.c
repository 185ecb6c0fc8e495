/*
 * msgdump.c - print message_parse() output as JSON, one line per file (test helper)
 *
 * Usage: msgdump [-n] FILE...   (-n: no headers list)
 * Used by tests/integration/corpus_decode.sh and for running the decoder over whole corpora
 * under valgrind/ASan. Exit 0 when every file was read and parsed, 1 otherwise.
 *
 * OWNERSHIP  everything is freed before exit (so valgrind reports real leaks only).
 */
#include "message.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSGDUMP_MAX_BYTES (64u * 1024 * 1024)

static void key(struct strbuf *b, const char *k, bool first)
{
	if (!first)
		strbuf_putc(b, ',');
	strbuf_json_string(b, k, strlen(k));
	strbuf_putc(b, ':');
}

static void kstr(struct strbuf *b, const char *k, const char *v, size_t n)
{
	key(b, k, false);
	strbuf_json_string(b, v ? v : "", v ? n : 0);
}

static void kbool(struct strbuf *b, const char *k, bool v)
{
	key(b, k, false);
	strbuf_puts(b, v ? "true" : "false");
}

static void dump_part(struct strbuf *b, const struct message_part *p)
{
	strbuf_printf(b, "{\"index\":%d", p->index);
	key(b, "depth", false);
	strbuf_printf(b, "%d", p->depth);
	kstr(b, "content_type", p->content_type, strlen(p->content_type));
	kstr(b, "charset", p->charset, strlen(p->charset));
	kbool(b, "is_html", p->is_html);
	kbool(b, "in_rfc822", p->in_rfc822);
	kbool(b, "truncated", p->truncated);
	kbool(b, "shadowed", p->shadowed);
	kstr(b, "text", p->text, p->text_len);
	kstr(b, "new_text", p->new_text, p->new_len);
	kstr(b, "quoted_text", p->quoted_text, p->quoted_len);
	strbuf_putc(b, '}');
}

static void dump(struct strbuf *b, const char *file, const struct message *m, bool headers)
{
	char lim[128];

	strbuf_putc(b, '{');
	key(b, "file", true);
	strbuf_json_string(b, file, strlen(file));
	kstr(b, "subject", m->subject, strlen(m->subject));
	kstr(b, "from_addr", m->from_addr, strlen(m->from_addr));
	kstr(b, "from_name", m->from_name, strlen(m->from_name));
	kstr(b, "to_addr", m->to_addr, strlen(m->to_addr));
	kstr(b, "message_id", m->message_id, strlen(m->message_id));
	kstr(b, "date", m->date, strlen(m->date));
	key(b, "date_t", false);
	strbuf_printf(b, "%lld", (long long)m->date_t);
	kstr(b, "content_type", m->content_type, strlen(m->content_type));
	message_limits_str(m->limits_hit, lim, sizeof(lim));
	kstr(b, "limits", lim, strlen(lim));
	if (headers) {
		key(b, "headers", false);
		strbuf_putc(b, '[');
		for (size_t i = 0; i < m->n_headers; i++) {
			if (i)
				strbuf_putc(b, ',');
			strbuf_putc(b, '[');
			strbuf_json_string(b, m->headers[i].name, strlen(m->headers[i].name));
			strbuf_putc(b, ',');
			strbuf_json_string(b, m->headers[i].value, strlen(m->headers[i].value));
			strbuf_putc(b, ']');
		}
		strbuf_putc(b, ']');
	}
	key(b, "parts", false);
	strbuf_putc(b, '[');
	for (size_t i = 0; i < m->n_parts; i++) {
		if (i)
			strbuf_putc(b, ',');
		dump_part(b, &m->parts[i]);
	}
	strbuf_putc(b, ']');
	kstr(b, "body_new", m->body_new, m->body_new_len);
	kstr(b, "body_quoted", m->body_quoted, m->body_quoted_len);
	strbuf_puts(b, "}\n");
}

int main(int argc, char **argv)
{
	struct message_limits lim;
	bool headers = true;
	int status = 0, i = 1;

	message_global_init();
	message_limits_default(&lim);
	if (i < argc && !strcmp(argv[i], "-n")) {
		headers = false;
		i++;
	}
	for (; i < argc; i++) {
		struct message *m = NULL;
		struct strbuf b;
		char *raw = NULL;
		size_t len = 0;

		if (util_read_file(argv[i], MSGDUMP_MAX_BYTES, &raw, &len) < 0) {
			fprintf(stderr, "msgdump: %s: cannot read\n", argv[i]);
			status = 1;
			continue;
		}
		if (message_parse(raw, len, &lim, &m) < 0) {
			fprintf(stderr, "msgdump: %s: message_parse failed\n", argv[i]);
			status = 1;
			free(raw);
			continue;
		}
		strbuf_init(&b, 0);
		dump(&b, argv[i], m, headers);
		fwrite(b.s, 1, b.len, stdout);
		strbuf_free(&b);
		message_free(m);
		free(raw);
	}
	return status;
}
