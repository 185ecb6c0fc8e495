/*
 * ctl_check.c - `amendsctl check [--json] [--rules DIR] FILE...`: the pipeline, offline, explained
 *
 * Runs exactly what the milter runs at end of message (pipeline_run, dry run: no tally writes,
 * no drafts) and shows: the detected language, each decoded part (new and quoted text), the
 * categories and scores, every hit (rule, category, score, target, offset, the matched text
 * with context), limits hit, and the headers the milter would add.
 *
 * JSON output (--json), one document per file, stable field names:
 *   { "file", "lang", "subject", "from": {"addr","name"}, "message_id", "limits": [..],
 *     "parts": [{"index","type","charset","html","rfc822","truncated","shadowed","text",
 *                "new_text","quoted_text"}],   (shadowed: an HTML alternative whose text/plain
 *                twin is what the rules read)
 *     "categories": [..], "scores": {cat: n}, "hits": [{"rule","category","score","target",
 *     "header","offset","length","match","context","file","line"}],
 *     "rules_limited": [names], "rules_skipped": n, "deadline_hit": bool,
 *     "headers": [{"name","value"}] }
 * With several files, --json prints one document per line (JSON Lines).
 */
#include "ctl.h"
#include "log.h"
#include "pipeline.h"
#include "rules.h"
#include "util.h"
#include "verdict.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define CHECK_MAX_FILE (64u << 20)
#define CONTEXT_BYTES 40

/* Move back/forward to a UTF-8 boundary so context never splits a character. */
static size_t utf8_back(const char *s, size_t i)
{
	while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
		i--;
	return i;
}

static size_t utf8_fwd(const char *s, size_t len, size_t i)
{
	while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
		i++;
	return i;
}

static const char *hit_text(const struct pipeline_result *r, const struct match_hit *h, size_t *len)
{
	if (h->target == RULES_TARGET_HEADER && h->header_index >= 0 &&
	    (size_t)h->header_index < r->n_norm_headers) {
		*len = strlen(r->norm_header_values[h->header_index]);
		return r->norm_header_values[h->header_index];
	}
	*len = r->norm_len[h->target];
	return r->norm[h->target] ? r->norm[h->target] : "";
}

static void json_part(struct strbuf *b, const struct message_part *p)
{
	strbuf_printf(b, "{\"index\":%d,\"type\":", p->index);
	strbuf_json_string(b, p->content_type, strlen(p->content_type));
	strbuf_puts(b, ",\"charset\":");
	strbuf_json_string(b, p->charset, strlen(p->charset));
	strbuf_printf(b, ",\"html\":%s,\"rfc822\":%s,\"truncated\":%s,\"shadowed\":%s,\"text\":",
		      p->is_html ? "true" : "false", p->in_rfc822 ? "true" : "false",
		      p->truncated ? "true" : "false", p->shadowed ? "true" : "false");
	strbuf_json_string(b, p->text ? p->text : "", p->text_len);
	strbuf_puts(b, ",\"new_text\":");
	strbuf_json_string(b, p->new_text ? p->new_text : "", p->new_len);
	strbuf_puts(b, ",\"quoted_text\":");
	strbuf_json_string(b, p->quoted_text ? p->quoted_text : "", p->quoted_len);
	strbuf_putc(b, '}');
}

static void json_hits(struct strbuf *b, const struct config *cfg, const struct ruleset *rs,
		      const struct pipeline_result *r)
{
	long *fate = r->have_verdict ? verdict_fates(cfg, rs, &r->mr) : NULL;

	strbuf_puts(b, ",\"hits\":[");
	for (size_t i = 0; i < r->mr.n_hits; i++) {
		const struct match_hit *h = &r->mr.hits[i];
		const struct rule *ru = &rs->rules[h->rule];
		size_t tl, a, z;
		const char *t = hit_text(r, h, &tl);

		a = utf8_back(t, h->offset > CONTEXT_BYTES ? h->offset - CONTEXT_BYTES : 0);
		z = utf8_fwd(t, tl, h->offset + h->length + CONTEXT_BYTES < tl ?
				     h->offset + h->length + CONTEXT_BYTES : tl);
		strbuf_puts(b, i ? ",{\"rule\":" : "{\"rule\":");
		strbuf_json_string(b, ru->name, strlen(ru->name));
		strbuf_puts(b, ",\"category\":");
		strbuf_json_string(b, cfg->categories[ru->category].name,
				   strlen(cfg->categories[ru->category].name));
		strbuf_printf(b, ",\"score\":%g,\"target\":\"%s\",\"header\":", ru->score,
			      rules_target_name(h->target));
		if (ru->header_name)
			strbuf_json_string(b, ru->header_name, strlen(ru->header_name));
		else
			strbuf_puts(b, "null");
		strbuf_printf(b, ",\"offset\":%zu,\"length\":%zu,\"match\":", h->offset, h->length);
		strbuf_json_string(b, t + h->offset, h->length);
		strbuf_puts(b, ",\"context\":");
		strbuf_json_string(b, t + a, z - a);
		strbuf_puts(b, ",\"file\":");
		strbuf_json_string(b, ru->file, strlen(ru->file));
		strbuf_printf(b, ",\"line\":%d", ru->line);
		if (fate) {
			struct verdict_why why;

			verdict_why(rs, &r->mr, fate, i, &why);
			verdict_why_json(&why, b);
		}
		strbuf_putc(b, '}');
	}
	strbuf_puts(b, "]");
	free(fate);
}

static void print_json(const char *file, const struct config *cfg, const struct ruleset *rs,
		       const struct pipeline_result *r)
{
	const struct message *m = r->msg;
	struct strbuf b;
	char lim[256];
	bool first = true;

	strbuf_init(&b, 0);
	strbuf_puts(&b, "{\"file\":");
	strbuf_json_string(&b, file, strlen(file));
	strbuf_printf(&b, ",\"lang\":\"%s\"", r->lang ? r->lang : "und");
	if (m) {
		strbuf_puts(&b, ",\"subject\":");
		strbuf_json_string(&b, m->subject, strlen(m->subject));
		strbuf_puts(&b, ",\"from\":{\"addr\":");
		strbuf_json_string(&b, m->from_addr, strlen(m->from_addr));
		strbuf_puts(&b, ",\"name\":");
		strbuf_json_string(&b, m->from_name, strlen(m->from_name));
		strbuf_puts(&b, "},\"message_id\":");
		strbuf_json_string(&b, m->message_id, strlen(m->message_id));
		message_limits_str(m->limits_hit, lim, sizeof(lim));
		strbuf_puts(&b, ",\"limits\":[");
		for (char *tok = strtok(lim, ","); tok; tok = strtok(NULL, ",")) {
			strbuf_puts(&b, first ? "" : ",");
			strbuf_json_string(&b, tok, strlen(tok));
			first = false;
		}
		strbuf_puts(&b, "],\"parts\":[");
		for (size_t i = 0; i < m->n_parts; i++) {
			if (i)
				strbuf_putc(&b, ',');
			json_part(&b, &m->parts[i]);
		}
		strbuf_putc(&b, ']');
	}
	strbuf_puts(&b, ",\"categories\":[");
	first = true;
	for (size_t i = 0; r->have_verdict && i < cfg->n_categories; i++)
		if (r->v.present[i]) {
			strbuf_printf(&b, "%s\"%s\"", first ? "" : ",", cfg->categories[i].name);
			first = false;
		}
	strbuf_puts(&b, "],\"scores\":{");
	first = true;
	for (size_t i = 0; r->have_verdict && i < cfg->n_categories; i++)
		if (r->v.hit[i]) {
			strbuf_printf(&b, "%s\"%s\":%g", first ? "" : ",", cfg->categories[i].name,
				      r->v.score[i]);
			first = false;
		}
	strbuf_putc(&b, '}');
	if (rs) {
		json_hits(&b, cfg, rs, r);
		strbuf_puts(&b, ",\"rules_limited\":[");
		for (size_t i = 0; i < r->mr.n_limit_rules; i++) {
			const char *nm = rs->rules[r->mr.limit_rules[i]].name;

			strbuf_puts(&b, i ? "," : "");
			strbuf_json_string(&b, nm, strlen(nm));
		}
		strbuf_printf(&b, "],\"rules_skipped\":%zu,\"deadline_hit\":%s", r->mr.rules_skipped,
			      r->mr.deadline_hit ? "true" : "false");
	}
	strbuf_puts(&b, ",\"headers\":[");
	for (size_t i = 0; i < r->n_add; i++) {
		strbuf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
		strbuf_json_string(&b, r->add[i].name, strlen(r->add[i].name));
		strbuf_puts(&b, ",\"value\":");
		strbuf_json_string(&b, r->add[i].value, strlen(r->add[i].value));
		strbuf_putc(&b, '}');
	}
	strbuf_puts(&b, "]}\n");
	(void)fwrite(b.s, 1, b.len, stdout);
	strbuf_free(&b);
}

static void print_indented(const char *label, const char *s, size_t n)
{
	printf("    %s:\n", label);
	if (!n) {
		printf("      (none)\n");
		return;
	}
	printf("      | ");
	for (size_t i = 0; i < n; i++) {
		putchar(s[i]);
		if (s[i] == '\n' && i + 1 < n)
			printf("      | ");
	}
	putchar('\n');
}

static void print_text(const char *file, const struct config *cfg, const struct ruleset *rs,
		       const struct pipeline_result *r)
{
	const struct message *m = r->msg;
	long *fate;
	char lim[256];

	printf("== %s\n", file);
	printf("language: %s\n", r->lang ? r->lang : "und");
	if (m) {
		printf("subject:  %s\nfrom:     %s <%s>\n", m->subject, m->from_name, m->from_addr);
		if (m->limits_hit)
			printf("limits:   %s (scanned as far as the limits)\n",
			       message_limits_str(m->limits_hit, lim, sizeof(lim)));
		for (size_t i = 0; i < m->n_parts; i++) {
			const struct message_part *p = &m->parts[i];

			printf("part %d: %s; charset=%s%s%s%s\n", p->index, p->content_type,
			       p->charset[0] ? p->charset : "(none)", p->is_html ? "; html->text" : "",
			       p->in_rfc822 ? "; inside message/rfc822" : "",
			       p->truncated ? "; truncated" : "");
			print_indented("new text", p->new_text ? p->new_text : "", p->new_len);
			print_indented("quoted text", p->quoted_text ? p->quoted_text : "", p->quoted_len);
		}
	}
	if (r->have_verdict) {
		printf("scores:  ");
		for (size_t i = 0; i < cfg->n_categories; i++)
			if (r->v.hit[i])
				printf(" %s=%g%s", cfg->categories[i].name, r->v.score[i],
				       r->v.present[i] ? "" : " (below threshold)");
		printf("\n");
	}
	fate = rs && r->have_verdict ? verdict_fates(cfg, rs, &r->mr) : NULL;
	for (size_t i = 0; rs && i < r->mr.n_hits; i++) {
		const struct match_hit *h = &r->mr.hits[i];
		const struct rule *ru = &rs->rules[h->rule];
		size_t tl;
		const char *t = hit_text(r, h, &tl);
		struct verdict_why why;

		printf("hit: %s (%s %+g) in %s at %zu: \"%.*s\"  [%s:%d]", ru->name,
		       cfg->categories[ru->category].name, ru->score, rules_target_name(h->target),
		       h->offset, (int)h->length, t + h->offset, ru->file, ru->line);
		if (fate)
			verdict_why(rs, &r->mr, fate, i, &why);
		if (fate && why.same_text_as)
			printf("  (same text as %s: not counted again)", why.same_text_as);
		else if (fate && why.group)
			printf("  (group %s: counted once, as %s)", why.group, why.group_counted_as);
		putchar('\n');
	}
	free(fate);
	for (size_t i = 0; rs && i < r->mr.n_limit_rules; i++)
		printf("limit: rule %s stopped by a PCRE2 limit\n", rs->rules[r->mr.limit_rules[i]].name);
	if (r->mr.rules_skipped)
		printf("deadline: %zu rule(s) not run\n", r->mr.rules_skipped);
	for (size_t i = 0; i < r->n_add; i++)
		printf("%s: %s\n", r->add[i].name, r->add[i].value);
	printf("\n");
}

static int check_file(const char *file, const struct config *cfg, const struct ruleset *rs,
		      bool json)
{
	struct pipeline_env env = { cfg, rs, NULL, NULL };
	struct pipeline_input in;
	struct pipeline_result res;
	size_t len;
	char *raw;

	if (util_read_file(file, CHECK_MAX_FILE, &raw, &len) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: %s\n", file, strerror(errno));
		return -1;
	}
	memset(&in, 0, sizeof(in));
	in.queue_id = "check";
	in.envfrom = "";
	in.raw = raw;
	in.raw_len = len;
	if (pipeline_run(&env, &in, PIPELINE_DRY_RUN | PIPELINE_EXPLAIN | PIPELINE_SHOW_SHADOWED,
			 &res) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: the pipeline failed\n", file);
		pipeline_result_free(&res);
		free(raw);
		return -1;
	}
	if (json)
		print_json(file, cfg, rs, &res);
	else
		print_text(file, cfg, rs, &res);
	pipeline_result_free(&res);
	free(raw);
	return 0;
}

int ctl_check_main(const struct config *cfg, int argc, char **argv)
{
	static const char usage[] = "usage: amendsctl check [--json] [--rules DIR] FILE...\n";
	const char *dir = cfg->rules.dir;
	struct ruleset *rs = NULL;
	bool json = false;
	int i, rc = 0, nfiles = 0;
	struct diag d;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--rules") && i + 1 < argc)
			dir = argv[++i];
		else if (argv[i][0] == '-' && argv[i][1]) {
			(void)fputs(usage, stderr);
			return 2;
		} else
			nfiles++;
	}
	if (!nfiles) {
		(void)fputs(usage, stderr);
		return 2;
	}
	diag_init(&d);
	rs = rules_load(dir, cfg, &d);
	if (!rs) {
		diag_print(&d, stderr);
		diag_free(&d);
		return 1;
	}
	diag_free(&d);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--rules") && i + 1 < argc) {
			i++;
			continue;
		}
		if (check_file(argv[i], cfg, rs, json) < 0)
			rc = 1;
	}
	rules_unref(rs);
	return rc;
}
