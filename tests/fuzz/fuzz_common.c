/*
 * fuzz_common.c - shared set-up and oracle helpers of the fuzz targets (see fuzz_common.h)
 *
 * OWNERSHIP  The config of fuzz_config() lives until the process ends.
 * DIAGNOSTICS  Set-up failures (no templates, a broken default config) are harness bugs: they
 *              print the reason and abort.
 */
#include "fuzz_common.h"
#include "log.h"
#include "message.h"
#include "rules.h"
#include "template.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_HEADER_LINE_MAX 998

/* libFuzzer's and the sanitizers' own call (weak: the replay drivers may run without them) */
void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

static int fuzz_stderr_fd = -1;    /* a copy of the real stderr, once fuzz_quiet_stderr ran */
static int fuzz_null_fd = -1;

void fuzz_quiet_stderr(bool quiet)
{
	if (fuzz_stderr_fd < 0) {
		fuzz_stderr_fd = dup(STDERR_FILENO);
		fuzz_null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fuzz_stderr_fd < 0 || fuzz_null_fd < 0)
			fuzz_fail("cannot set up a quiet stderr: %s", strerror(errno));
		if (__sanitizer_set_report_fd)
			__sanitizer_set_report_fd((void *)(intptr_t)fuzz_stderr_fd);
	}
	fflush(stderr);
	if (dup2(quiet ? fuzz_null_fd : fuzz_stderr_fd, STDERR_FILENO) < 0)
		abort();
}

void fuzz_fail(const char *fmt, ...)
{
	char msg[1024];   /* the values quoted in a reason may be megabytes: the log keeps 1 KiB */
	va_list ap;

	if (fuzz_stderr_fd >= 0)
		fuzz_quiet_stderr(false);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fuzz oracle: %s\n", msg);
	abort();
}

void fuzz_check_header_value(const char *name, const char *v)
{
	FUZZ_CHECK(v != NULL, "%s has no value", name);
	size_t len = strlen(v);

	FUZZ_CHECK(strlen(name) + 2 + len <= FUZZ_HEADER_LINE_MAX, "%s: a %zu-octet value", name,
		   len);
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)v[i] >= 0x20 && (unsigned char)v[i] != 0x7F,
			   "%s: control byte 0x%02x at %zu", name, (unsigned char)v[i], i);
}

void fuzz_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	log_open("amends-fuzz", true, NULL);
	/* limit hits and decode problems are logged as warnings: expected, and too many to read */
	log_set_level(LOG_LEVEL_ERR);
	message_global_init();
	/* PCRE2's JIT reads past the subject in aligned 16-byte loads (harmless, within a page),
	 * which memcheck reports: under valgrind the rules run in the interpreter */
	const char *preload = getenv("LD_PRELOAD");

	if (preload && strstr(preload, "vgpreload"))
		rules_set_jit(false);
}

const char *fuzz_srcdir(void)
{
	const char *s = getenv("top_srcdir");

	return s && *s ? s : ".";
}

struct config *fuzz_config(void)
{
	static struct config *cfg;
	struct diag d;
	struct strbuf b;

	if (cfg)
		return cfg;
	fuzz_setup();
	diag_init(&d);
	cfg = config_load(NULL, &d);
	if (!cfg) {
		diag_print(&d, stderr);
		fuzz_fail("the built-in default config does not load");
	}
	diag_free(&d);
	strbuf_init(&b, 0);
	strbuf_printf(&b, "%s/conf/templates", fuzz_srcdir());
	free(cfg->drafts.templates_dir);
	cfg->drafts.templates_dir = strbuf_take(&b);
	if (!cfg->drafts.templates_dir)
		fuzz_fail("out of memory");
	if (!template_lang_available(cfg, "en"))
		fuzz_fail("no templates in %s: set top_srcdir to the source tree",
			  cfg->drafts.templates_dir);
	return cfg;
}

void fuzz_config_tag_all(struct config *cfg)
{
	cfg->milter.subject_tag = true;
	cfg->milter.add_rules_header = true;
	for (size_t i = 0; i < cfg->n_categories; i++) {
		struct strbuf tag;

		strbuf_init(&tag, 0);
		strbuf_printf(&tag, "[%s]", cfg->categories[i].name);
		if (tag.oom)
			fuzz_fail("out of memory");
		free(cfg->categories[i].subject_tag);
		cfg->categories[i].subject_tag = strbuf_take(&tag);
	}
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		fuzz_fail("out of memory copying %zu bytes", size);
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **f, size_t *len,
		  size_t max)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i < size && n + 1 < max; i++) {
		if (data[i] != sep)
			continue;
		f[n] = data + start;
		len[n++] = i - start;
		start = i + 1;
	}
	f[n] = data + start;
	len[n++] = size - start;
	return n;
}
