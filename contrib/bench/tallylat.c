/*
 * tallylat.c - the tally store alone: latency of tally_record at a fixed offered rate
 *
 * The p99 of `make bench`'s fixed-rate phase holds the whole pipeline, the milter protocol and
 * the host's noise; this measures the one part that waits for the disk. THREADS threads (as
 * milter threads would) record at RATE records/s in all, Poisson arrivals (fixed seeds), for
 * SECONDS; each record's latency is taken from its scheduled arrival to tally_record's return
 * (so a record that waited behind others counts its wait). Senders: 500 addresses, one or two
 * categories per record. The store is the built-in default config's SQLite settings
 * (synchronous full) unless a config file is given.
 *
 * Usage: contrib/bench/tallylat STORE RATE SECONDS [THREADS [CONFIG]]
 *        e.g. tallylat sqlite:/tmp/x/tally.db 400 8      (the directory must exist)
 * Prints: n=... p50=... p90=... p99=... max=... ms, failures=...
 *
 * OWNERSHIP  everything lives until main returns.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "diag.h"
#include "tally.h"
#include "util.h"

#define TL_THREADS_MAX 64
#define TL_SAMPLES_MAX 200000   /* per thread: a bounded run */

struct tl_thread {
	pthread_t th;
	unsigned seed;
	double *lat;                 /* ms, TL_SAMPLES_MAX */
	size_t n;
	unsigned failures;
};

static struct tally *tl_tally;
static double tl_rate_each, tl_seconds;

static double tl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tl_sleep_until(double t)
{
	double left = t - tl_now();

	if (left > 0)
		usleep((useconds_t)(left * 1e6));
}

static void *tl_main(void *arg)
{
	static const char *const cats[] = { "complaint", "refund" };
	struct tl_thread *w = arg;
	double start = tl_now(), next = start;

	for (;;) {
		double u = ((double)rand_r(&w->seed) + 1.0) / ((double)RAND_MAX + 2.0);
		struct tally_event ev = { 0 };
		struct tally_counts c;
		char who[64];

		next += -log(u) / tl_rate_each;
		if (next - start > tl_seconds || w->n == TL_SAMPLES_MAX)
			break;
		tl_sleep_until(next);
		snprintf(who, sizeof(who), "s%d@bench.example", rand_r(&w->seed) % 500);
		ev.when = time(NULL);
		ev.categories = cats;
		ev.n_categories = 1 + (size_t)(rand_r(&w->seed) % 2);
		ev.message_id = "<bench@bench.example>";
		ev.subject = "bench";
		ev.rules = "R1";
		if (tally_record(tl_tally, who, &ev, &c) == 0)
			tally_counts_free(&c);
		else
			w->failures++;
		w->lat[w->n++] = (tl_now() - next) * 1000.0;
	}
	return NULL;
}

static int tl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static struct tl_thread w[TL_THREADS_MAX];
	struct config *cfg;
	struct diag d;
	char *err = NULL;
	double *all;
	size_t n = 0;
	unsigned failures = 0;
	int threads;

	if (argc < 4) {
		fprintf(stderr, "usage: %s STORE RATE SECONDS [THREADS [CONFIG]]\n", argv[0]);
		return 2;
	}
	threads = argc > 4 ? atoi(argv[4]) : 16;
	if (threads < 1 || threads > TL_THREADS_MAX || atof(argv[2]) <= 0 || atof(argv[3]) <= 0) {
		fprintf(stderr, "%s: RATE and SECONDS > 0, THREADS 1..%d\n", argv[0], TL_THREADS_MAX);
		return 2;
	}
	tl_rate_each = atof(argv[2]) / threads;
	tl_seconds = atof(argv[3]);
	diag_init(&d);
	cfg = config_load(argc > 5 ? argv[5] : NULL, &d);
	diag_print(&d, stderr);
	diag_free(&d);
	if (!cfg)
		return 1;
	free(cfg->tally.store);
	cfg->tally.store = util_strdup(argv[1]);
	if (!cfg->tally.store || !(tl_tally = tally_open(cfg, &err))) {
		fprintf(stderr, "%s: %s\n", argv[0], err ? err : "out of memory");
		return 1;
	}
	for (int i = 0; i < threads; i++) {
		w[i].seed = 7919u * (unsigned)i + 1;
		w[i].lat = malloc(TL_SAMPLES_MAX * sizeof(double));
		if (!w[i].lat || pthread_create(&w[i].th, NULL, tl_main, &w[i]) != 0) {
			fprintf(stderr, "%s: cannot start thread %d\n", argv[0], i);
			return 1;
		}
	}
	for (int i = 0; i < threads; i++)
		pthread_join(w[i].th, NULL);
	for (int i = 0; i < threads; i++)
		n += w[i].n;
	all = malloc((n ? n : 1) * sizeof(double));
	if (!all)
		return 1;
	n = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + n, w[i].lat, w[i].n * sizeof(double));
		n += w[i].n;
		failures += w[i].failures;
		free(w[i].lat);
	}
	if (!n) {
		fprintf(stderr, "%s: no record made\n", argv[0]);
		return 1;
	}
	qsort(all, n, sizeof(double), tl_cmp);
	printf("n=%zu p50=%.3f p90=%.3f p99=%.3f max=%.3f ms, failures=%u\n", n, all[n / 2],
	       all[n * 9 / 10], all[n * 99 / 100], all[n - 1], failures);
	free(all);
	tally_close(tl_tally);
	config_unref(cfg);
	return failures ? 1 : 0;
}
