/*
 * log.c - syslog or stderr, with a level filter
 *
 * The settings are written by log_open()/log_set_level() before threads start, then only read.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static bool log_stderr = true;
static enum log_level log_level = LOG_LEVEL_INFO;
static char log_ident[64] = "amends";

static const struct { const char *name; int fac; } facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

int log_open(const char *ident, bool to_stderr, const char *facility)
{
	int fac = -1;
	size_t i;

	for (i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (facility && strcasecmp(facility, facilities[i].name) == 0)
			fac = facilities[i].fac;
	if (facility && fac < 0)
		return -1;
	if (fac < 0)
		fac = LOG_MAIL;
	/* our own program names; a longer ident would only be cut */
	(void)snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "amends");
	log_stderr = to_stderr;
	if (!to_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, fac);
	return 0;
}

void log_set_level(enum log_level lvl) { log_level = lvl; }
enum log_level log_get_level(void) { return log_level; }

int log_level_parse(const char *name)
{
	if (!name) return -1;
	if (!strcasecmp(name, "err") || !strcasecmp(name, "error")) return LOG_LEVEL_ERR;
	if (!strcasecmp(name, "warning") || !strcasecmp(name, "warn")) return LOG_LEVEL_WARN;
	if (!strcasecmp(name, "info") || !strcasecmp(name, "notice")) return LOG_LEVEL_INFO;
	if (!strcasecmp(name, "debug")) return LOG_LEVEL_DEBUG;
	return -1;
}

void log_close(void)
{
	if (!log_stderr)
		closelog();
}

__attribute__((format(printf, 2, 0)))
static void log_v(enum log_level lvl, const char *fmt, va_list ap, int err)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char line[2048];
	int n;

	if (lvl > log_level)
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* a message longer than line is cut, above or here: still worth logging */
	if (err && (size_t)n < sizeof(line))
		(void)snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(err));
	/* A stranger's bytes may reach a log line: keep it one printable line. */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (log_stderr) {
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		/* at most 26 bytes for any year an int holds: strftime cannot run out of room */
		(void)strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
		/* a log line that cannot be written has nowhere else to go */
		(void)fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, log_ident, (int)getpid(), tag[lvl],
			      line);
	} else {
		syslog(prio[lvl], "%s", line);
	}
}

#define LOG_FN(fn, lvl, witherr) \
	void fn(const char *fmt, ...) \
	{ \
		int e = errno; \
		va_list ap; \
		va_start(ap, fmt); \
		log_v(lvl, fmt, ap, (witherr) ? e : 0); \
		va_end(ap); \
		errno = e; \
	}

LOG_FN(log_err, LOG_LEVEL_ERR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
LOG_FN(log_err_errno, LOG_LEVEL_ERR, 1)
LOG_FN(log_warn_errno, LOG_LEVEL_WARN, 1)
