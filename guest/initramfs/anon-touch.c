/*
 * anon-touch: map, touch and unmap anonymous memory, the way most programs use and free memory
 * (malloc's large blocks are private anonymous mappings). /init's reclaim scenario runs it so
 * that the memory the guest frees is ordinary anonymous memory, not tmpfs (Shmem).
 *
 * Usage: anon-touch MIB [HOLD_SECONDS]
 * Prints, on stdout, one line per stage with a stable prefix:
 *   anon-touch: touched N MiB in S s
 *   anon-touch: freed N MiB
 * and exits 0, or 1 with a line saying what failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_count(const char *text, const char *what)
{
	char *end = NULL;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < 0 || value > (1L << 20)) {
		printf("anon-touch: error: bad %s '%s'\n", what, text);
		exit(1);
	}
	return value;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || argc > 3) {
		printf("anon-touch: usage: anon-touch MIB [HOLD_SECONDS]\n");
		return 1;
	}
	long mib = parse_count(argv[1], "size");
	long hold = argc == 3 ? parse_count(argv[2], "hold") : 0;
	size_t bytes = (size_t)mib << 20;
	long page = sysconf(_SC_PAGESIZE);

	double start = now_seconds();
	unsigned char *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (memory == MAP_FAILED) {
		printf("anon-touch: error: mmap %ld MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	/* One write per page makes the kernel allocate it; a non-zero byte keeps it from being
	 * mistaken for a page that was never written. */
	for (size_t offset = 0; offset < bytes; offset += (size_t)page)
		memory[offset] = (unsigned char)(offset / (size_t)page) | 1;
	printf("anon-touch: touched %ld MiB in %.3f s\n", mib, now_seconds() - start);
	if (hold > 0)
		sleep((unsigned)hold);
	if (munmap(memory, bytes) != 0) {
		printf("anon-touch: error: munmap: %s\n", strerror(errno));
		return 1;
	}
	printf("anon-touch: freed %ld MiB\n", mib);
	return 0;
}
