/*
 * ctl_tally.h - `amendsctl tally show ADDRESS | top [N] | reset ADDRESS | forget ADDRESS [--json]`
 *
 * Reads and edits the per-sender tally on whichever store the config names (SQLite or Redis).
 * argv starts at the subcommand's name ("tally"). Returns the process exit status: 0 done,
 * 1 store error, 2 usage.
 */
#ifndef AMENDS_CTL_TALLY_H
#define AMENDS_CTL_TALLY_H

#include "config.h"

int ctl_tally_main(const struct config *cfg, int argc, char **argv);

#endif
