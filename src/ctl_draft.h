/*
 * ctl_draft.h - `amendsctl draft` (render a draft offline) and `amendsctl drafts` (the spool)
 */
#ifndef AMENDS_CTL_DRAFT_H
#define AMENDS_CTL_DRAFT_H

#include "config.h"

int ctl_draft_main(const struct config *cfg, int argc, char **argv);
int ctl_drafts_main(const struct config *cfg, int argc, char **argv);

#endif
