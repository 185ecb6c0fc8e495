/*
 * test_scenarios.c - the tally + policy half of the scenario acceptance test
 *
 * Replays every ../shared/corpus/dev/scenarios/NAME/expect.tsv with the LABELLED categories
 * (not the rules) through tally_record -> policy_suppressed / policy_due -> policy_claim, one
 * day apart per message, and checks the draft column exactly, on SQLite and (when redis-server
 * is installed) on Redis. The headers policy_suppressed needs come from the scenario's own
 * .eml files through a minimal header reader here (no MIME decoding: the headers that matter
 * are ASCII), so this test does not depend on message.c or the rules.
 * The whole path through the daemon is tested later by the integration suite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "policy.h"
#include "tally_testlib.h"
#include "util.h"

#define T0 ((time_t)1800000000)
#define DAY ((time_t)86400)
#define MAX_ROWS 16
#define MAX_HDRS 200

static char scen_dir[1024];
static struct tl_redis server;

/* ---- a minimal header reader ---------------------------------------------------------------- */

struct mini_msg {
	struct message m;
	struct message_header h[MAX_HDRS];
	char *envfrom;             /* from Return-Path when present, else the From address */
};

/* trim_dup - a malloc'd copy of s without blanks at either end */
static char *trim_dup(const char *s)
{
	char *tmp = util_strdup(s), *out;

	if (!tmp)
		return NULL;
	out = util_strdup(util_trim(tmp));   /* util_trim may return a pointer into tmp */
	free(tmp);
	return out;
}

/* addr_of - the addr-spec in a From/Return-Path value: inside the last <...>, else trimmed */
static char *addr_of(const char *v)
{
	const char *lt = strrchr(v, '<'), *gt;
	if (lt && (gt = strchr(lt, '>')))
		return util_strndup(lt + 1, (size_t)(gt - lt - 1));
	return trim_dup(v);
}

static void mini_parse(struct mini_msg *mm, const char *raw, size_t len)
{
	const char *p = raw, *end = raw + len;
	struct strbuf cur;
	size_t n = 0;

	memset(mm, 0, sizeof(*mm));
	strbuf_init(&cur, 0);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol ? (size_t)(eol - p) : (size_t)(end - p);

		if (l && p[l - 1] == '\r')
			l--;
		if ((l == 0 || (*p != ' ' && *p != '\t')) && cur.len) {
			const char *colon = memchr(cur.s, ':', cur.len);

			if (colon && n < MAX_HDRS) {
				mm->h[n].name = util_strndup(cur.s, (size_t)(colon - cur.s));
				mm->h[n].value = trim_dup(colon + 1);
				n++;
			}
			strbuf_reset(&cur);
		}
		if (l == 0)
			break;
		if (*p == ' ' || *p == '\t')
			strbuf_putc(&cur, ' ');
		strbuf_append(&cur, p, l);
		p = eol ? eol + 1 : end;
	}
	strbuf_free(&cur);
	mm->m.headers = mm->h;
	mm->m.n_headers = n;
	mm->m.subject = (char *)"";
	mm->m.message_id = (char *)"";
	{
		const char *from = message_header(&mm->m, "From");
		const char *ct = message_header(&mm->m, "Content-Type");
		const char *rp = message_header(&mm->m, "Return-Path");

		mm->m.from_addr = from ? addr_of(from) : util_strdup("");
		mm->m.content_type = util_strndup(ct ? ct : "text/plain",
						  strcspn(ct ? ct : "text/plain", "; \t"));
		util_ascii_lower(mm->m.content_type);
		mm->envfrom = rp ? addr_of(rp) : util_strdup(mm->m.from_addr);
	}
}

static void mini_free(struct mini_msg *mm)
{
	size_t i;

	for (i = 0; i < mm->m.n_headers; i++) {
		free(mm->h[i].name);
		free(mm->h[i].value);
	}
	free(mm->m.from_addr);
	free(mm->m.content_type);
	free(mm->envfrom);
}

/* ---- scenario files ------------------------------------------------------------------------- */

struct row {
	char file[64];
	char cats[128];
	char draft[32];
};

static size_t read_expect(const char *dir, struct row *rows)
{
	char path[1200], *text = NULL, *line, *save = NULL;
	size_t len, n = 0;

	assert_true(snprintf(path, sizeof(path), "%s/expect.tsv", dir) < (int)sizeof(path));
	assert_int_equal(util_read_file(path, 1 << 16, &text, &len), 0);
	for (line = strtok_r(text, "\n", &save); line && n < MAX_ROWS; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "file\t", 5) == 0 || !*line)
			continue;
		assert_int_equal(sscanf(line, "%63[^\t]\t%127[^\t]\t%31s", rows[n].file, rows[n].cats,
					rows[n].draft), 3);
		n++;
	}
	free(text);
	return n;
}

static struct ruleset *longstanding_ruleset(void)
{
	char path[1200], *text = NULL, *line, *save = NULL;
	const char *addrs[64];
	struct ruleset *rs;
	size_t len, n = 0;

	assert_true(snprintf(path, sizeof(path), "%s/longstanding.txt", scen_dir) < (int)sizeof(path));
	assert_int_equal(util_read_file(path, 1 << 16, &text, &len), 0);
	for (line = strtok_r(text, "\n", &save); line && n < 64; line = strtok_r(NULL, "\n", &save)) {
		line = util_trim(line);
		if (*line && *line != '#')
			addrs[n++] = line;
	}
	rs = tl_ruleset(addrs, n);
	assert_non_null(rs);
	assert_true(rs->n_longstanding >= 1);
	free(text);
	return rs;
}

/* ---- the replay ----------------------------------------------------------------------------- */

/* replay one scenario on an empty store; append mismatches to errs */
static void replay(const struct config *cfg, struct tally *t, const struct ruleset *rs,
		   const char *name, struct strbuf *errs, size_t *checked)
{
	struct row rows[MAX_ROWS];
	char dir[1200], path[1300];
	size_t n, i;

	assert_true(snprintf(dir, sizeof(dir), "%s/%s", scen_dir, name) < (int)sizeof(dir));
	n = read_expect(dir, rows);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		const char *cats[8];
		struct tally_event ev = { 0 };
		struct tally_counts after;
		struct verdict v;
		struct mini_msg mm;
		enum policy_draft due[3], chosen = POLICY_DRAFT_NONE;
		const char *why, *got;
		char *raw = NULL, *key, catbuf[128], *save = NULL, *c;
		size_t len, ndue;
		time_t now = T0 + (time_t)i * DAY;

		assert_true(snprintf(path, sizeof(path), "%s/%s", dir, rows[i].file) < (int)sizeof(path));
		assert_int_equal(util_read_file(path, 1 << 22, &raw, &len), 0);
		mini_parse(&mm, raw, len);
		free(raw);
		memset(&v, 0, sizeof(v));
		v.n_categories = cfg->n_categories;
		snprintf(catbuf, sizeof(catbuf), "%s", rows[i].cats);
		for (c = strtok_r(catbuf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
			int idx;

			if (!strcmp(c, "none"))
				continue;
			idx = config_category_index(cfg, c);
			assert_true(idx >= 0);
			v.present[idx] = true;
			cats[ev.n_categories++] = c;
		}
		clock_set(now);
		key = tally_sender_key(cfg, mm.m.from_addr);
		assert_non_null(key);
		ev.when = now;
		ev.categories = cats;
		ev.message_id = rows[i].file;
		ev.subject = name;
		assert_int_equal(tally_record(t, key, &ev, &after), 0);
		why = policy_suppressed(cfg, &mm.m, mm.envfrom, key);
		if (!why) {
			ndue = policy_due(cfg, rs, key, &v, &after, due);
			assert_int_equal(policy_claim(t, key, due, ndue, now, &chosen), 0);
		}
		got = chosen == POLICY_DRAFT_NONE ? "-" : policy_draft_name(chosen);
		if (strcmp(got, rows[i].draft) != 0)
			strbuf_printf(errs, "  %s/%s: draft %s, want %s (suppressed: %s)\n", name,
				      rows[i].file, got, rows[i].draft, why ? why : "no");
		(*checked)++;
		tally_counts_free(&after);
		free(key);
		mini_free(&mm);
	}
}

/* run_all - every scenario, each on a fresh store made by fresh() */
static void run_all(const char *(*fresh)(char *spec, size_t n, char *dir, size_t dn))
{
	struct ruleset *rs = longstanding_ruleset();
	struct dirent **names = NULL;
	struct strbuf errs;
	size_t checked = 0, scenarios = 0;
	int n, i;

	strbuf_init(&errs, 0);
	n = scandir(scen_dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		char spec[600], dir[256] = "", probe[1300], *err = NULL;
		struct config *cfg;
		struct tally *t;

		assert_true(snprintf(probe, sizeof(probe), "%s/%s/expect.tsv", scen_dir, names[i]->d_name) < (int)sizeof(probe));
		if (names[i]->d_name[0] == '.' || access(probe, R_OK) != 0)
			continue;
		assert_non_null(fresh(spec, sizeof(spec), dir, sizeof(dir)));
		cfg = tl_config(spec);
		assert_non_null(cfg);
		t = tally_open(cfg, &err);
		if (!t)
			fail_msg("tally_open: %s", err);
		replay(cfg, t, rs, names[i]->d_name, &errs, &checked);
		scenarios++;
		tally_close(t);
		config_unref(cfg);
		if (dir[0])
			tl_rmdir(dir);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	tl_ruleset_free(rs);
	clock_set(0);
	if (errs.len)
		fail_msg("%zu scenarios, %zu messages; mismatches:\n%s", scenarios, checked, errs.s);
	strbuf_free(&errs);
	assert_true(scenarios >= 15);
	assert_true(checked >= 40);
}

static const char *fresh_sqlite(char *spec, size_t n, char *dir, size_t dn)
{
	if (tl_tmpdir(dir, dn, "scen") < 0 || snprintf(spec, n, "sqlite:%s/tally.db", dir) >= (int)n)
		return NULL;
	return spec;
}

static const char *fresh_redis(char *spec, size_t n, char *dir, size_t dn)
{
	(void)dir;
	(void)dn;
	if (tl_redis_flush(&server) < 0 || snprintf(spec, n, "redis:127.0.0.1:%d", server.port) >= (int)n)
		return NULL;
	return spec;
}

static void test_scenarios_sqlite(void **state)
{
	(void)state;
	run_all(fresh_sqlite);
}

static void test_scenarios_redis(void **state)
{
	(void)state;
	if (!server.pid)
		skip();
	run_all(fresh_redis);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenarios_sqlite),
		cmocka_unit_test(test_scenarios_redis),
	};
	const char *top = getenv("top_srcdir");
	int rc;

	snprintf(scen_dir, sizeof(scen_dir), "%s/../shared/corpus/dev/scenarios", top ? top : ".");
	if (access(scen_dir, R_OK) != 0) {
		fprintf(stderr, "SKIP: %s not found (set top_srcdir)\n", scen_dir);
		return 77;
	}
	if (tl_have_redis() && tl_redis_start(&server) < 0)
		fprintf(stderr, "redis-server did not start: Redis half skipped\n");
	else if (!tl_have_redis())
		fprintf(stderr, "redis-server not installed: Redis half skipped\n");
	rc = cmocka_run_group_tests_name("scenarios", tests, NULL, NULL);
	tl_redis_destroy(&server);
	return rc;
}
