/*
 * heap.c - the process heap: malloc's settings at start, and its numbers for the stats
 *
 * glibc's malloc starts with an mmap threshold of 128 KiB and then raises it to the size of
 * every mapped chunk that is freed (up to 32 MiB on 64-bit): after one large message, chunks
 * of that size come out of the arenas instead. The daemon runs a thread per SMTP session, and
 * glibc gives them up to eight arenas per core; each arena's high-water mark then rose a little
 * whenever a large chunk met a fragmented arena, and nothing brought it down. Under a closed
 * loop of 64 sessions the resident size crept up 3% in five minutes while the bytes in use
 * stayed flat; R6.1's soak (the last 20 of 30 minutes may grow less than 5%) failed on it.
 * With the threshold fixed (setting it turns the adjustment off) large chunks are mapped and
 * unmapped whole, and the same load's resident size stayed within 0.6% (RESULTS.md round 12).
 * The price is an mmap/munmap pair per large buffer, which only large messages need.
 *
 * heap_stats() reads mallinfo2(); it takes each arena's lock in turn, briefly, so it is for a
 * periodic reader (the stats snapshot every few seconds), not for the mail path.
 *
 * OWNERSHIP  nothing: no state of its own beyond malloc's.
 */
#include "heap.h"

#include <string.h>
#if defined(HAVE_MALLOPT) || defined(HAVE_MALLINFO2)
#include <malloc.h>
#endif

bool heap_init(void)
{
#if defined(HAVE_MALLOPT) && defined(M_MMAP_THRESHOLD)
	return mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD) == 1;
#else
	return false;
#endif
}

bool heap_stats(struct heap_stats *out)
{
	memset(out, 0, sizeof(*out));
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();

	/* uordblks: arena chunks in use; hblkhd: mapped chunks (all in use); arena: the arenas'
	 * bytes from the kernel, free ones included */
	out->in_use = mi.uordblks + mi.hblkhd;
	out->held = mi.arena + mi.hblkhd;
	return true;
#else
	return false;
#endif
}
