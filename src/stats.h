/*
 * stats.h - process-wide counters and a latency histogram, lock-free
 *
 * Every failure that must not be silent (tally, draft, limits, regex limits) is counted here.
 * Read by `amendsctl stats` (the daemon writes a snapshot file) and, when configured, served as
 * Prometheus text on a loopback port.
 */
#ifndef AMENDS_STATS_H
#define AMENDS_STATS_H

#include <stdio.h>
#include <stdint.h>

enum stats_counter {
	STATS_MESSAGES = 0,
	STATS_MESSAGES_TAGGED,       /* some category present */
	STATS_MESSAGES_OVERSIZE,     /* body beyond max_scan_bytes */
	STATS_LIMIT_HITS,            /* any MIME/text limit */
	STATS_RULE_LIMIT_HITS,       /* PCRE2 match/depth/heap limit */
	STATS_RULE_DEADLINE_HITS,    /* messages whose rule phase ran out of time */
	STATS_RULES_SKIPPED,
	STATS_TALLY_OK,
	STATS_TALLY_FAILURES,
	STATS_TALLY_COMMITS,         /* SQLite transactions that committed tally updates (a group
	                              * commit is one: tally_updates / tally_commits per commit) */
	STATS_DRAFTS_DUE,
	STATS_DRAFTS_WRITTEN,
	STATS_DRAFTS_SPOOLED,
	STATS_DRAFTS_FAILED,
	STATS_DRAFTS_SUPPRESSED,
	STATS_INTERNAL_ERRORS,       /* answered CONTINUE/ACCEPT because something failed */
	STATS_RELOADS,
	STATS_RELOAD_FAILURES,
	STATS_FORGED_HEADERS_REMOVED,
	STATS_COUNTER_MAX
};

#define STATS_MAX_CATEGORIES 32

void stats_inc(enum stats_counter c);
void stats_add(enum stats_counter c, uint64_t n);
uint64_t stats_get(enum stats_counter c);
const char *stats_name(enum stats_counter c);
void stats_category(int idx, const char *name);   /* register a category name for its counter */
void stats_verdict(int category_idx);             /* one message had this category */
void stats_latency_us(long us);                   /* pipeline time of one message */
/* The tally pools' open connections (gauges amends_tally_pool_connections and _peak): +1 when
 * a pooled connection is opened, -1 when one is closed */
void stats_tally_pool(int delta);
/* Per-rule hit counters, bounded: at most STATS_MAX_RULES distinct names ever (names stay across
 * reloads, so counters only grow, as Prometheus expects); hits of names beyond the table are
 * counted in amends_rule_hits_dropped_total. register = show the rule with 0 before it hits.
 * Safe from any thread; the name is copied. */
#define STATS_MAX_RULES 2048
void stats_rule_register(const char *name);
void stats_rule_hit(const char *name);
/* Write every counter as Prometheus text exposition format. */
void stats_write_prometheus(FILE *fp);
/* Write a snapshot atomically (tmp + rename) to path; 0 or -1. */
int stats_write_file(const char *path);
void stats_reset(void);   /* tests */

#endif
