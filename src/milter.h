/*
 * milter.h - the libmilter callbacks and the state they share with the daemon's main
 *
 * The daemon publishes the current configuration and ruleset (and the tally and drafter built
 * for them) as one "generation"; each connection takes a reference at connect and keeps it to
 * close, so a reload never changes the rules under a message in flight.
 */
#ifndef AMENDS_MILTER_H
#define AMENDS_MILTER_H

#include <libmilter/mfapi.h>
#include "config.h"
#include "rules.h"

struct drafter;
struct tally;

struct milter_generation;

/* Build a generation from a config (loads rules, opens tally and drafter). On error returns
 * NULL and leaves problems in d. Takes its own reference to cfg. */
struct milter_generation *milter_generation_new(struct config *cfg, struct diag *d);
/* Make g current (the milter takes over the caller's reference). The old one is released when
 * its last connection closes. */
void milter_generation_publish(struct milter_generation *g);
/* Drop the current generation (shutdown). */
void milter_generation_clear(void);
const struct config *milter_generation_config(const struct milter_generation *g);
const struct ruleset *milter_generation_rules(const struct milter_generation *g);

/* The callback table for smfi_register. */
extern struct smfiDesc milter_desc;

#endif
