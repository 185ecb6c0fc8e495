/*
 * ctl_eval.h - `amendsctl eval DIR`: how good are the rules on a labelled corpus
 *
 * See ctl_eval.c for the options, the text and JSON output and the exit codes.
 */
#ifndef AMENDS_CTL_EVAL_H
#define AMENDS_CTL_EVAL_H

#include "config.h"

/* argv[0] is "eval". Returns the process exit code (0 ok, 1 target missed or error, 2 usage). */
int ctl_eval_main(const struct config *cfg, int argc, char **argv);

#endif
