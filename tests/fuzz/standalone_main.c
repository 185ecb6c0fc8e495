/*
 * standalone_main.c - replay saved fuzz inputs without libFuzzer (make check, valgrind, gdb)
 *
 * Linked with one fuzz target as tests/fuzz/replay_<name>. Usage: replay_<name> PATH...
 * Each PATH is a file (one input) or a directory (every regular file in it, in name order).
 * Calls LLVMFuzzerInitialize() once when the target defines it, then LLVMFuzzerTestOneInput()
 * on each input; an oracle failure aborts (under ASan the report says where). Names each input
 * before running it and prints a total, so a CI log shows what ran and what failed.
 *
 * OWNERSHIP  Each input is read, run and freed before the next.
 * DIAGNOSTICS  Exit 0 when every input ran; 1 when a path cannot be read; 2 on usage errors.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define REPLAY_MAX_INPUT (64u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;

	if (util_read_file(path, REPLAY_MAX_INPUT, &buf, &len) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* a private copy of exactly len bytes, so ASan sees a read past the end of the input */
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy) {
		free(buf);
		fprintf(stderr, "replay: %s: out of memory\n", path);
		return -1;
	}
	memcpy(copy, buf, len);
	free(buf);
	/* named before it runs: a crash report then follows the name of its input */
	printf("replay: %s (%zu bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
	return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_dir(const char *dir, size_t *count)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, name_cmp), rc = 0;
	size_t ran = 0;

	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct strbuf p;
		struct stat st;

		strbuf_init(&p, 0);
		strbuf_printf(&p, "%s/%s", dir, ents[i]->d_name);
		if (ents[i]->d_name[0] != '.' && p.s && stat(p.s, &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(p.s) < 0)
				rc = -1;
			else
				ran++;
		}
		strbuf_free(&p);
		free(ents[i]);
	}
	free(ents);
	*count += ran;
	return rc;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE-OR-DIR...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			rc = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &count) < 0)
				rc = 1;
		} else if (run_file(argv[i]) < 0) {
			rc = 1;
		} else {
			count++;
		}
	}
	printf("replay: %zu inputs ran\n", count);
	return rc;
}
