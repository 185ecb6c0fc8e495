/*
 * log.h - logging to syslog, or to stderr when the daemon runs in the foreground or a CLI runs
 *
 * Everything below the daemon logs through here, never through printf or syslog directly, so
 * that tests and amendsctl can capture or silence it. Per-message lines start with the MTA queue
 * id. Thread-safe: settings are written once before threads start.
 */
#ifndef AMENDS_LOG_H
#define AMENDS_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_ERR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* ident: program name; to_stderr: log to stderr instead of syslog; facility: a syslog facility name
 * ("mail", "daemon", "local0".."local7"); returns -1 for an unknown facility name. */
int log_open(const char *ident, bool to_stderr, const char *facility);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "err", "warning", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *name);
void log_close(void);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Appends ": strerror(errno)". */
void log_err_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
