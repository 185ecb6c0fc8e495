/*
 * ctl.h - what amendsctl's subcommands share: the loaded config and common option parsing
 *
 * Each subcommand lives in its own ctl_*.c and is called with the config already loaded
 * (-c FILE before the subcommand) and argv starting at the subcommand's name.
 *
 * OUTPUT  Subcommands write to stdout without checking each call (the (void) casts): a failed
 *         write leaves stdout's error flag set, and amendsctl's main checks it once after the
 *         subcommand returns (stdout_status() in amendsctl.c), exiting 1 when output was lost.
 *         Messages to stderr are best effort: there is nowhere left to report their failure.
 */
#ifndef AMENDS_CTL_H
#define AMENDS_CTL_H

#include "config.h"

int ctl_check_main(const struct config *cfg, int argc, char **argv);
int ctl_lint_main(const struct config *cfg, int argc, char **argv);
int ctl_stats_main(const struct config *cfg, int argc, char **argv);
/* in ctl_eval.c, ctl_tally.c, ctl_draft.c */
int ctl_eval_main(const struct config *cfg, int argc, char **argv);
int ctl_tally_main(const struct config *cfg, int argc, char **argv);
int ctl_draft_main(const struct config *cfg, int argc, char **argv);
int ctl_drafts_main(const struct config *cfg, int argc, char **argv);

#endif
