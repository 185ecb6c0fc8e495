/*
 * fuzz_common.h - what every libFuzzer target under tests/fuzz/ shares
 *
 * Each target defines LLVMFuzzerTestOneInput() (and, when it needs one-time setup such as a
 * ruleset, LLVMFuzzerInitialize()). The same object is linked twice: with -fsanitize=fuzzer as
 * tests/fuzz/fuzz_<name> (make fuzz), and with standalone_main.c as tests/fuzz/replay_<name>,
 * which replays saved inputs in the normal `make check` (tests/integration/fuzz_regress.sh).
 *
 * An oracle failure calls fuzz_fail(): it prints the reason and aborts, which libFuzzer reports
 * as a crash and saves the input.
 *
 * OWNERSHIP  fuzz_config() returns one shared config reference owned by this module (never
 *            dropped: the process ends first). fuzz_srcdir() returns a static string.
 */
#ifndef AMENDS_FUZZ_COMMON_H
#define AMENDS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Print "fuzz oracle: <why>" and abort. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FUZZ_CHECK(cond, ...) do { if (!(cond)) fuzz_fail(__VA_ARGS__); } while (0)

/* Quiet logging (errors only, to stderr) and GMime initialised; idempotent. */
void fuzz_setup(void);
/* The source tree: $top_srcdir (set by make check and the fuzz scripts), else ".". */
const char *fuzz_srcdir(void);
/* The built-in default config (config_load(NULL)) with the shipped templates directory. */
struct config *fuzz_config(void);
/* Turn on every tagging path of cfg: a "[category]" subject tag on each category, subject
 * tagging and the X-Amends-Rules header. */
void fuzz_config_tag_all(struct config *cfg);
/* A NUL-terminated copy of data (malloc'd); aborts when out of memory (a harness problem). */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* A header value we hand to the MTA (smfi_addheader/smfi_chgheader; libmilter checks nothing):
 * "name: value" fits a 998-octet line and the value is one line without control bytes (no
 * header injection, R8.3). Fails the oracle otherwise. */
void fuzz_check_header_value(const char *name, const char *value);

/* Send fd 2 to /dev/null (quiet) or back to where it went. For targets whose code under test
 * logs an error on most inputs (the fail-open lines of milter.c): sanitizer reports still go
 * to the real stderr, and fuzz_fail() restores it before it prints. */
void fuzz_quiet_stderr(bool quiet);

/* Split data at separator bytes into at most max fields (pointers into data, not terminated);
 * returns the number of fields (>= 1). The last field keeps any further separators. */
size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **f, size_t *len,
		  size_t max);

#endif
