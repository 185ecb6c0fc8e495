/*
 * tally_contract.h - what every tally store must do, as cmocka tests run on each backend
 *
 * test_tally_sqlite.c and test_tally_redis.c set tc_be (how to make a fresh, empty store) and
 * list these tests with tc_setup/tc_teardown; the same assertions then hold on both stores.
 */
#ifndef AMENDS_TALLY_CONTRACT_H
#define AMENDS_TALLY_CONTRACT_H

#include <stddef.h>
#include "config.h"
#include "tally.h"

#define TC_T0 ((time_t)1800000000)   /* 2027-01-15: the fixed clock of these tests */
#define TC_DAY ((time_t)86400)

struct tc_fix {
	struct config *cfg;
	struct tally *t;
	char dir[256];
};

struct tc_backend {
	/* Write the store spec for a fresh, empty store into spec; 0 or -1. */
	int (*prepare)(struct tc_fix *f, char *spec, size_t n);
	void (*cleanup)(struct tc_fix *f);
};

extern const struct tc_backend *tc_be;

int tc_setup(void **state);
int tc_teardown(void **state);
/* Open a second handle on the same store (a second daemon). */
struct tally *tc_open_again(struct tc_fix *f);
/* Record one event now (clock), categories comma-separated. */
int tc_record(struct tally *t, const char *sender, time_t when, const char *cats,
	      struct tally_counts *after);

void tc_test_counts(void **state);
void tc_test_window(void **state);
void tc_test_window_model(void **state);
void tc_test_history(void **state);
void tc_test_claim(void **state);
void tc_test_reset_forget(void **state);
void tc_test_top(void **state);
void tc_test_prune(void **state);
void tc_test_threads(void **state);
void tc_test_bad_input(void **state);

#endif
