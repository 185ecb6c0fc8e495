/*
 * heap.h - the process heap: malloc's settings at start, and its numbers for the stats
 *
 * heap_init() is called once by the daemon's main() before it starts a thread. heap_stats()
 * may be called from any thread at any time (the stats writer does, every few seconds).
 * Both do nothing useful but no harm on a C library without glibc's malloc interface.
 */
#ifndef AMENDS_HEAP_H
#define AMENDS_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* Chunks of this size and larger are mapped and unmapped whole, never carved from an arena. */
#define HEAP_MMAP_THRESHOLD (128 * 1024)

struct heap_stats {
	size_t in_use;          /* bytes handed out by malloc and not freed */
	size_t held;            /* bytes malloc holds from the kernel (arenas and mappings) */
};

/* Fix malloc's mmap threshold at HEAP_MMAP_THRESHOLD; false when this C library cannot. */
bool heap_init(void);

/* Fill *out; false (and zeros) when this C library does not tell. */
bool heap_stats(struct heap_stats *out);

#endif
