/* test_config.c - defaults, every kind of config error with file:line, path resolution */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "config.h"
#include "diag.h"

static char tmpdir[] = "/tmp/amends-test-config-XXXXXX";

static char *write_conf(const char *text)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/amends.conf", tmpdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

static void test_defaults(void **state)
{
	struct diag d;
	struct config *c;

	(void)state;
	diag_init(&d);
	c = config_load(NULL, &d);
	assert_non_null(c);
	assert_int_equal(d.errors, 0);
	assert_int_equal(c->n_categories, 5);
	assert_int_equal(config_category_index(c, "refund"), 3);
	assert_int_equal(config_category_index(c, "nope"), -1);
	assert_int_equal(c->policy.apology_complaints, 2);
	assert_int_equal(c->tally.window_days, 30);
	assert_int_equal(c->limits.mime_depth, 64);
	assert_non_null(config_identity(c, "ur"));
	assert_int_equal(c->policy.n_problem_categories, 4);
	assert_true(strncmp(c->tally.store, "sqlite:", 7) == 0);
	assert_true(c->rules.refuse_unsafe);
	config_unref(c);
	diag_free(&d);
}

static void test_full_file(void **state)
{
	struct diag d;
	struct config *c;
	const char *p = write_conf(
		"state_dir = \"state\";\n"
		"milter = { socket = \"inet:8899@127.0.0.1\"; socket_mode = \"0600\"; timeout_s = 10; };\n"
		"rules = { dir = \"myrules\"; deadline_ms = 20; unsafe_rules = \"contain\"; };\n"
		"categories = ( { name = \"complaint\"; threshold = 2.0; },\n"
		"               { name = \"abuse\"; subject_tag = \"[ABUSE]\"; } );\n"
		"policy = { problem_categories = [\"complaint\", \"abuse\"]; support_addresses = [\"help@x.example\"]; };\n"
		"drafts = { identities = { en = { agent = \"Bob\"; from_addr = \"bob@x.example\"; }; de = { agent = \"Jo\"; }; }; };\n");

	(void)state;
	diag_init(&d);
	c = config_load(p, &d);
	diag_print(&d, stderr);
	assert_non_null(c);
	assert_string_equal(c->milter.socket, "inet:8899@127.0.0.1");
	assert_int_equal(c->milter.socket_mode, 0600);
	assert_int_equal(c->n_categories, 2);
	assert_true(c->categories[0].threshold == 2.0);
	assert_string_equal(c->categories[1].subject_tag, "[ABUSE]");
	assert_non_null(strstr(c->rules.dir, tmpdir));
	assert_false(c->rules.refuse_unsafe);
	assert_non_null(strstr(c->tally.store, "/state/tally.db"));
	assert_string_equal(config_identity(c, "en")->agent, "Bob");
	assert_string_equal(config_identity(c, "de")->agent, "Jo");
	assert_int_equal(c->policy.n_support_addresses, 1);
	config_unref(c);
	diag_free(&d);
}

static void test_errors(void **state)
{
	static const struct { const char *text; int line; const char *needle; } cases[] = {
		{ "milter = { sockett = \"unix:/x\"; };\n", 1, "unknown setting \"sockett\"" },
		{ "\n\nlimits = { mime_depth = 0; };\n", 3, "out of range" },
		/* the tally's waits: at most a second (R7.1), not silently cut to it */
		{ "tally = {\n busy_timeout_ms = 1001;\n};\n", 2, "out of range" },
		{ "tally = {\n\n redis_timeout_ms = 5000;\n};\n", 3, "out of range" },
		{ "milter = {\n timeout_s = \"ten\";\n};\n", 2, "expected an integer" },
		{ "milter = { socket = \"tcp:25\"; };\n", 1, "socket" },
		{ "tally = { sender = \"reply-to\"; };\n", 1, "tally.sender" },
		{ "rules = {\n  dir = \"r\";\n  unsafe_rules = \"warn\";\n};\n", 3, "rules.unsafe_rules" },
		{ "categories = ( { name = \"Bad Name\"; } );\n", 1, "lowercase" },
		{ "categories = ( { name = \"a\"; }, { name = \"a\"; } );\n", 1, "duplicate category" },
		{ "categories = ( { name = \"a234567890123456789012345678901x\"; } );\n", 1, "longer than 31" },
		{ "drafts = { folder = \"../etc\"; };\n", 1, "drafts.folder" },
		{ "drafts = { flags = \"S\"; };\n", 1, "drafts.flags" },
		{ "milter = { socket = \"unix:/x\" \n", 2, "syntax error" },
		{ "bogus = 1;\n", 1, "unknown setting \"bogus\"" },
		{ "policy = { problem_categories = [\"complaint\", \"nonesuch\"]; };\n", 0, "nonesuch" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct diag d;
		const char *p = write_conf(cases[i].text);
		struct config *c;
		int found = 0;

		diag_init(&d);
		c = config_load(p, &d);
		assert_null(c);
		assert_true(d.errors > 0);
		for (size_t k = 0; k < d.n; k++)
			if (strstr(d.v[k].text, cases[i].needle) && d.v[k].line == cases[i].line &&
			    strstr(d.v[k].file, "amends.conf"))
				found = 1;
		if (!found) {
			diag_print(&d, stderr);
			fail_msg("case %zu: expected line %d \"%s\"", i, cases[i].line, cases[i].needle);
		}
		diag_free(&d);
	}
}

static void test_missing_file(void **state)
{
	struct diag d;

	(void)state;
	diag_init(&d);
	assert_null(config_load("/nonexistent/amends.conf", &d));
	assert_int_equal(d.errors, 1);
	assert_non_null(strstr(d.v[0].text, "cannot read"));
	diag_free(&d);
}

static void test_file_mode(void **state)
{
	struct diag d;
	const char *p = write_conf("milter = { timeout_s = 10; };\n");
	struct config *c;

	(void)state;
	chmod(p, 0666);
	diag_init(&d);
	assert_null(config_load(p, &d));
	assert_int_equal(d.errors, 1);
	assert_non_null(strstr(d.v[0].text, "world-writable"));
	diag_free(&d);
	chmod(p, 0664);
	diag_init(&d);
	c = config_load(p, &d);
	assert_non_null(c);
	assert_int_equal(d.warnings, 1);
	assert_non_null(strstr(d.v[0].text, "group-writable"));
	config_unref(c);
	diag_free(&d);
	chmod(p, 0644);
}

static void test_socket_spec(void **state)
{
	(void)state;
	assert_int_equal(config_socket_valid("unix:/run/a.sock"), 0);
	assert_int_equal(config_socket_valid("local:/run/a.sock"), 0);
	assert_int_equal(config_socket_valid("inet:8891@127.0.0.1"), 0);
	assert_int_equal(config_socket_valid("inet:8891"), 0);
	assert_int_equal(config_socket_valid("inet:0@x"), -1);
	assert_int_equal(config_socket_valid("inet:99999@x"), -1);
	assert_int_equal(config_socket_valid("unix:relative"), -1);
	assert_int_equal(config_socket_valid("inet6:8891"), -1);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/amends.conf", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

/* A configuration named by a relative path: its relative paths come out absolute, resolved
 * against its directory once (config_path of one is the same path: a relative base made
 * "conf/conf/templates" of "templates"), and the pidfile too. */
static void test_relative_path(void **state)
{
	struct diag d;
	struct config *c;
	char cwd[512], want[512], rel[300], *again;
	const char *slash = strrchr(tmpdir, '/');

	(void)state;
	write_conf("milter = { pidfile = \"run/amends.pid\"; };\n"
		   "drafts = { templates_dir = \"templates\"; };\n");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/tmp"), 0);
	snprintf(rel, sizeof(rel), "%s/amends.conf", slash + 1);   /* tmpdir is under /tmp */
	diag_init(&d);
	c = config_load(rel, &d);
	diag_print(&d, stderr);
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/templates", tmpdir);
	assert_string_equal(c->drafts.templates_dir, want);
	again = config_path(c, c->drafts.templates_dir);
	assert_string_equal(again, want);
	free(again);
	snprintf(want, sizeof(want), "%s/run/amends.pid", tmpdir);
	assert_string_equal(c->milter.pidfile, want);
	assert_true(c->rules.dir[0] == '/' && c->state_dir[0] == '/');
	config_unref(c);
	diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_socket_spec),
		cmocka_unit_test(test_file_mode),
		cmocka_unit_test(test_relative_path),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
