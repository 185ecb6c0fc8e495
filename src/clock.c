/*
 * clock.c - the one wall clock that policy, tally windows, dedupe and pruning read
 *
 * Production: time(NULL). A test fixes it in-process with clock_set(), or for a whole daemon by
 * pointing AMENDS_CLOCK_FILE at a small file holding epoch seconds; the file is read on every
 * call so a test advances time by rewriting it (write a temp file and rename it over, so a
 * reader never sees a half-written number). An unreadable or malformed file falls back to the
 * real clock: a test fixture must never be able to stop the mail path.
 *
 * OWNERSHIP  nothing is allocated.
 * DIAGNOSTICS  none; bad clock files are ignored.
 */
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic long long clock_fixed;   /* 0 = not fixed */

void clock_set(time_t t)
{
	atomic_store(&clock_fixed, (long long)t);
}

/* clock_from_file - epoch seconds from the file named by AMENDS_CLOCK_FILE, or -1 */
static long long clock_from_file(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd;
	char *end;
	long long v;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || v <= 0)
		return -1;
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	return *end ? -1 : v;
}

time_t clock_now(void)
{
	long long fixed = atomic_load(&clock_fixed);
	const char *path;

	if (fixed > 0)
		return (time_t)fixed;
	path = getenv("AMENDS_CLOCK_FILE");
	if (path && *path) {
		long long v = clock_from_file(path);

		if (v > 0)
			return (time_t)v;
	}
	return time(NULL);
}
