/*
 * fuzz_milter.c - libFuzzer target: what the milter does with a message, through pipeline_run()
 *
 * The shipped rules (the rules/ directory) are loaded once in LLVMFuzzerInitialize with the
 * default config plus subject tags on every category, so the tagging paths run. Byte 0 picks
 * the mode:
 *  - bit 0 clear: the rest is the raw message as collected, handed to pipeline_run() whole;
 *  - bit 0 set: the rest is a milter session, split at NUL bytes (libmilter passes C strings):
 *    envelope sender, then header name/value pairs up to an empty name, then body chunks. They
 *    are collected exactly as milter.c's cb_header/cb_eoh/cb_body do ("name: value\r\n", a blank
 *    line, the chunks) into a strbuf capped at max_scan_bytes, or at byte 1 x 64 bytes when
 *    byte 1 is not 0, so truncation (->truncated) is exercised too.
 * The run is a dry run: no tally, no drafter. Oracle: pipeline_run succeeds; at most 16 headers
 * are added, each an X-Amends-* name once, each value a single printable-ASCII line short enough
 * for a 998-octet header line (libmilter does not check: no header injection, R8.3); a new
 * subject has no control characters and fits a line too.
 *
 * OWNERSHIP  The ruleset lives until the process ends; everything per input is freed.
 */
#include "fuzz_common.h"
#include "pipeline.h"
#include "rules.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MILTER_FIELDS 4096
#define FUZZ_HEADER_LINE_MAX 998

static struct ruleset *fuzz_rs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config *cfg = fuzz_config();
	struct diag d;
	struct strbuf dir;

	(void)argc; (void)argv;
	cfg->milter.subject_tag = true;
	cfg->milter.add_rules_header = true;
	for (size_t i = 0; i < cfg->n_categories; i++) {
		struct strbuf tag;

		strbuf_init(&tag, 0);
		strbuf_printf(&tag, "[%s]", cfg->categories[i].name);
		free(cfg->categories[i].subject_tag);
		cfg->categories[i].subject_tag = strbuf_take(&tag);
	}
	strbuf_init(&dir, 0);
	strbuf_printf(&dir, "%s/rules", fuzz_srcdir());
	diag_init(&d);
	fuzz_rs = rules_load(dir.s, cfg, &d);
	if (!fuzz_rs || !fuzz_rs->n_rules) {
		diag_print(&d, stderr);
		fuzz_fail("cannot load the shipped rules from %s", dir.s);
	}
	diag_free(&d);
	strbuf_free(&dir);
	return 0;
}

/* A value we hand to smfi_addheader/smfi_chgheader: one line of printable ASCII. */
static void check_value(const char *name, const char *v)
{
	FUZZ_CHECK(v != NULL, "%s has no value", name);
	size_t len = strlen(v);

	FUZZ_CHECK(strlen(name) + 2 + len <= FUZZ_HEADER_LINE_MAX, "%s: a %zu-octet value", name,
		   len);
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)v[i] >= 0x20 && (unsigned char)v[i] != 0x7F,
			   "%s: control byte 0x%02x at %zu", name, (unsigned char)v[i], i);
}

static void check_result(const struct pipeline_result *res)
{
	FUZZ_CHECK(res->msg && res->lang, "no message or language in the result");
	FUZZ_CHECK(res->n_add <= UTIL_ARRAY_LEN(res->add), "%zu headers added", res->n_add);
	for (size_t i = 0; i < res->n_add; i++) {
		const char *name = res->add[i].name;

		FUZZ_CHECK(name && util_ascii_casestarts(name, "X-Amends-"), "added header \"%s\"",
			   name ? name : "(null)");
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcasecmp(name, res->add[j].name) != 0, "%s added twice", name);
		check_value(name, res->add[i].value);
		FUZZ_CHECK(util_utf8_valid(res->add[i].value, strlen(res->add[i].value)),
			   "%s: invalid UTF-8", name);
		for (const char *p = res->add[i].value; *p; p++)
			FUZZ_CHECK((unsigned char)*p < 0x80, "%s: non-ASCII value", name);
	}
	if (res->new_subject)
		check_value("Subject", res->new_subject);
}

static void run(const char *raw, size_t len, const char *envfrom, bool truncated)
{
	const struct pipeline_env env = { .cfg = fuzz_config(), .rs = fuzz_rs };
	const struct pipeline_input in = { .queue_id = "FUZZ", .envfrom = envfrom, .raw = raw,
					   .raw_len = len, .truncated = truncated };
	struct pipeline_result res;

	FUZZ_CHECK(pipeline_run(&env, &in, PIPELINE_DRY_RUN, &res) == 0,
		   "pipeline_run failed on %zu bytes", len);
	check_result(&res);
	pipeline_result_free(&res);
}

/* Collect as cb_header/cb_eoh/cb_body do (milter.c), then run. */
static void run_session(const uint8_t *data, size_t size, size_t cap)
{
	static const uint8_t *f[FUZZ_MILTER_FIELDS];
	static size_t flen[FUZZ_MILTER_FIELDS];
	size_t n = fuzz_split(data, size, 0, f, flen, FUZZ_MILTER_FIELDS), i = 1;
	char *envfrom = fuzz_strndup(f[0], flen[0]);
	struct strbuf raw;
	bool truncated = false;

	strbuf_init(&raw, cap);
	for (; i + 1 < n && flen[i] > 0; i += 2) {
		if (truncated)
			continue;
		strbuf_append(&raw, (const char *)f[i], flen[i]);
		strbuf_append(&raw, ": ", 2);
		strbuf_append(&raw, (const char *)f[i + 1], flen[i + 1]);
		strbuf_append(&raw, "\r\n", 2);
		truncated = raw.truncated;
	}
	if (!truncated)
		strbuf_append(&raw, "\r\n", 2);
	for (i++; i < n && !truncated; i++) {
		strbuf_append(&raw, (const char *)f[i], flen[i]);
		truncated = raw.truncated;
	}
	FUZZ_CHECK(!raw.oom, "out of memory collecting");
	FUZZ_CHECK(raw.len <= cap || !cap, "collected %zu bytes past the %zu cap", raw.len, cap);
	run(raw.s ? raw.s : "", raw.len, envfrom, truncated);
	strbuf_free(&raw);
	free(envfrom);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!(data[0] & 1)) {
		run((const char *)data + 2, size - 2, "customer@example.com", false);
		return 0;
	}
	size_t cap = data[1] ? (size_t)data[1] * 64 : fuzz_config()->limits.max_scan_bytes;

	run_session(data + 2, size - 2, cap);
	return 0;
}
