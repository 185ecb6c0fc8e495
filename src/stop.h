/*
 * stop.h - a prompt stop of the daemon (stop.c says how and why)
 */
#ifndef AMENDS_STOP_H
#define AMENDS_STOP_H

#include <stdbool.h>
#include <stddef.h>

/* Right after smfi_opensocket, before any other socket listens: note the address of
 * libmilter's listening socket (found by SO_ACCEPTCONN), so that stop_tick can connect to it. */
void stop_remember_listener(void);
/* Called every tick (a fraction of a second) by a thread of ours while smfi_main runs: once
 * libmilter is stopping, wake its listener (once). Cheap when not stopping. */
void stop_tick(void);
/* After smfi_main returns: wait until in_progress() says 0, polling every 10 ms, at most max_ms.
 * true when nothing was left in progress. */
bool stop_drain(size_t (*in_progress)(void), unsigned max_ms);

#endif
