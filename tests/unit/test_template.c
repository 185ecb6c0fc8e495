/* test_template.c - template parsing, placeholder checks with file:line:col, rendering, lint */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "template.h"
#include "util.h"

static char *srcdir_path(const char *rel)
{
	const char *top = getenv("top_srcdir");
	struct strbuf b;
	strbuf_init(&b, 0);
	strbuf_printf(&b, "%s/%s", top ? top : ".", rel);
	return strbuf_take(&b);
}

static struct config *test_config(const char *tpl_dir)
{
	struct diag d;
	diag_init(&d);
	struct config *c = config_load(NULL, &d);
	assert_non_null(c);
	diag_free(&d);
	free(c->drafts.templates_dir);
	c->drafts.templates_dir = util_strdup(tpl_dir);
	return c;
}

struct parse_case {
	const char *text;
	int ok;           /* 1 = parses */
	int line, col;    /* first diagnostic */
	const char *needle;
};

static const struct parse_case parse_cases[] = {
	{ "Hello {{customer_name}}\n", 1, 0, 0, NULL },
	{ "Hi {{ agent }} and {{count_complaint}} {{count_total}}\n", 1, 0, 0, NULL },
	{ "# {{nope}} in a comment is fine\nText\n", 1, 0, 0, NULL },
	{ "line one\nab {{nope}}\n", 0, 2, 4, "unknown placeholder {{nope}}" },
	{ "\xd8\xa7\xdb\x8c {{x}}\n", 0, 1, 4, "unknown placeholder {{x}}" },
	{ "ok\n\nnow {{customer_name\n", 0, 3, 5, "unterminated" },
	{ "{{}}\n", 0, 1, 1, "malformed" },
	{ "{{count_nosuch}}\n", 0, 1, 1, "unknown placeholder {{count_nosuch}}" },
	{ "{{customer-name}}\n", 0, 1, 1, "malformed" },
	{ "good\nbad \xff byte\n", 0, 2, 5, "invalid UTF-8" },
	{ "# only a comment\n   \n", 0, 0, 0, "no text" },
	{ "", 0, 0, 0, "no text" },
};

static void test_parse_table(void **state)
{
	struct config *cfg = test_config("/nonexistent");
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(parse_cases); i++) {
		const struct parse_case *pc = &parse_cases[i];
		struct diag d;
		diag_init(&d);
		struct template *t = template_parse(cfg, "t.txt", pc->text, strlen(pc->text), &d);
		if (pc->ok) {
			if (!t)
				fail_msg("case %zu should parse: %s", i, d.n ? d.v[0].text : "?");
			assert_int_equal(d.errors, 0);
		} else {
			if (t)
				fail_msg("case %zu should fail", i);
			assert_true(d.errors > 0);
			assert_string_equal(d.v[0].file, "t.txt");
			assert_int_equal(d.v[0].line, pc->line);
			assert_int_equal(d.v[0].col, pc->col);
			if (!strstr(d.v[0].text, pc->needle))
				fail_msg("case %zu: '%s' lacks '%s'", i, d.v[0].text, pc->needle);
		}
		template_free(t);
		diag_free(&d);
	}
	config_unref(cfg);
}

static void test_render(void **state)
{
	struct config *cfg = test_config("/nonexistent");
	struct diag d;
	(void)state;
	diag_init(&d);
	const char *text = "# comment\nDear {{customer_name}},\n{{subject}}|{{agent}}|{{missing_ok}}\n";
	/* missing_ok is unknown: parse fails; use a known-but-unset name instead */
	struct template *bad = template_parse(cfg, "x", text, strlen(text), &d);
	assert_null(bad);
	diag_free(&d);
	diag_init(&d);
	text = "# comment\nDear {{customer_name}},\n{{subject}}|{{agent}}|{{today}}\n";
	struct template *t = template_parse(cfg, "x", text, strlen(text), &d);
	assert_non_null(t);
	/* a value that looks like a placeholder is inserted verbatim, never expanded */
	struct template_var vars[] = {
		{ "customer_name", "{{agent}}" },
		{ "subject", "S" },
		{ "agent", "A" },
	};
	struct strbuf out;
	strbuf_init(&out, 0);
	assert_int_equal(template_render(t, vars, 3, &out), 0);
	assert_string_equal(out.s, "Dear {{agent}},\nS|A|\n");
	strbuf_free(&out);
	/* a render into a capped buffer reports the cut */
	strbuf_init(&out, 5);
	assert_int_equal(template_render(t, vars, 3, &out), -1);
	strbuf_free(&out);
	template_free(t);
	diag_free(&d);
	config_unref(cfg);
}

/* The shipped templates: all 15 present, clean under lint, and in their own scripts. */
static void test_shipped_templates(void **state)
{
	char *dir = srcdir_path("conf/templates");
	struct config *cfg = test_config(dir);
	struct diag d;
	(void)state;
	diag_init(&d);
	int errors = template_lint(cfg, &d);
	if (d.n)
		diag_print(&d, stderr);
	assert_int_equal(errors, 0);
	assert_int_equal(d.n, 0);
	struct template_set *s = template_set_load(cfg, &d);
	assert_non_null(s);
	/* the first letter of each language's body, to catch a template in the wrong script */
	static const struct { const char *lang; unsigned lo, hi; } script[] = {
		{ "en", 'A', 'z' }, { "ur", 0x600, 0x6ff }, { "fa", 0x600, 0x6ff },
		{ "hi", 0x900, 0x97f }, { "pa", 0xa00, 0xa7f },
	};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(script); i++) {
		for (size_t k = 0; template_kinds[k]; k++) {
			assert_non_null(template_set_get(s, script[i].lang, template_kinds[k]));
			char *p = template_path(cfg, script[i].lang, template_kinds[k]);
			char *text;
			size_t len;
			assert_int_equal(util_read_file(p, 1 << 20, &text, &len), 0);
			size_t letters = 0, in_script = 0;
			for (const unsigned char *q = (const unsigned char *)text; *q; ) {
				if (*q == '#') {          /* skip comment lines */
					while (*q && *q != '\n')
						q++;
					continue;
				}
				unsigned cp = *q;
				int n = 1;
				if (cp >= 0xf0) { cp &= 7; n = 4; }
				else if (cp >= 0xe0) { cp &= 15; n = 3; }
				else if (cp >= 0xc0) { cp &= 31; n = 2; }
				for (int j = 1; j < n && q[j]; j++)
					cp = (cp << 6) | (q[j] & 63);
				q += n;
				if (cp < 'A' || cp == '{' || cp == '}' || cp == '_' || cp == '[' || cp == ']')
					continue;
				letters++;
				in_script += cp >= script[i].lo && cp <= script[i].hi;
			}
			/* placeholders are ASCII: the rest must be overwhelmingly in the script */
			if (in_script * 10 < letters * 8)
				fail_msg("%s: only %zu of %zu letters in script", p, in_script, letters);
			/* every letter needs the signature and the customer's name */
			assert_non_null(strstr(text, "{{signature}}"));
			assert_non_null(strstr(text, "{{customer_name}}"));
			if (strcmp(template_kinds[k], "partways") == 0)
				assert_non_null(strstr(text, "{{history}}"));
			else
				assert_non_null(strstr(text, "{{agent}}"));
			free(text);
			free(p);
		}
	}
	template_set_free(s);
	diag_free(&d);
	config_unref(cfg);
	free(dir);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

/* lint: missing default-language template is an error, others a warning; bad modes warn. */
static void test_lint_problems(void **state)
{
	char tmpl[] = "/tmp/amends-tpl-XXXXXX";
	(void)state;
	assert_non_null(mkdtemp(tmpl));
	char path[512];
	snprintf(path, sizeof(path), "%s/en", tmpl);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/ur", tmpl);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/en/apology", tmpl);
	write_file(path, "Dear {{customer_name}}\nline {{bogus}}\n", 0644);
	snprintf(path, sizeof(path), "%s/en/winback", tmpl);
	write_file(path, "Dear {{customer_name}}\n", 0666);
	snprintf(path, sizeof(path), "%s/ur/apology", tmpl);
	write_file(path, "\xd9\x85\xd8\xad\xd8\xaa\xd8\xb1\xd9\x85 {{customer_name}}\n", 0644);

	struct config *cfg = test_config(tmpl);
	struct diag d;
	diag_init(&d);
	int errors = template_lint(cfg, &d);
	/* en/apology bogus + en/partways missing (default language) */
	assert_int_equal(errors, 2);
	bool saw_bogus = false, saw_mode = false, saw_missing_ur = false;
	for (size_t i = 0; i < d.n; i++) {
		if (strstr(d.v[i].text, "{{bogus}}")) {
			saw_bogus = true;
			assert_int_equal(d.v[i].line, 2);
			assert_int_equal(d.v[i].col, 6);
		}
		if (strstr(d.v[i].text, "world-writable"))
			saw_mode = d.v[i].sev == DIAG_WARNING;
		if (strstr(d.v[i].file, "/ur/winback") && d.v[i].sev == DIAG_WARNING)
			saw_missing_ur = true;
	}
	assert_true(saw_bogus);
	assert_true(saw_mode);
	assert_true(saw_missing_ur);
	diag_free(&d);
	assert_true(template_lang_available(cfg, "ur"));
	assert_false(template_lang_available(cfg, "fa"));
	assert_false(template_lang_available(cfg, "../en"));
	config_unref(cfg);

	const char *files[] = { "en/apology", "en/winback", "ur/apology", "en", "ur" };
	for (size_t i = 0; i < UTIL_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpl, files[i]);
		i < 3 ? unlink(path) : rmdir(path);
	}
	rmdir(tmpl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_shipped_templates),
		cmocka_unit_test(test_lint_problems),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
