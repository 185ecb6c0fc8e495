/*
 * clock.h - the one wall clock that policy, tally windows, dedupe and pruning read
 *
 * In production it is time(NULL). Tests set it: when the environment variable AMENDS_CLOCK_FILE
 * names a file, every call reads the epoch seconds written in that file (so a test advances time
 * by rewriting it, without restarting the daemon); clock_set() fixes it in-process.
 */
#ifndef AMENDS_CLOCK_H
#define AMENDS_CLOCK_H

#include <time.h>

time_t clock_now(void);
/* Fix the clock in this process (0 = back to the real clock). */
void clock_set(time_t t);

#endif
