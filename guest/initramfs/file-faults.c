/*
 * file-faults: map a file read-only, read one byte of every page, and print how many major page
 * faults that took (getrusage): pages that were not in the page cache and came from the disk.
 * /init's idle-reclaim scenario runs it on a small file it uses often, after Ebb's squeezes, to
 * count what the guest had to read back.
 *
 * Usage: file-faults FILE [PERIOD_SECONDS]
 * Prints: file-faults: FILE pages=N majflt=M   (exit 0), or a line saying what failed (exit 1).
 * With a period it then keeps the file mapped and reads it again every PERIOD_SECONDS until it is
 * killed, as a program keeps using a file it needs (its pages stay recently used).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 2 && argc != 3) {
		printf("file-faults: usage: file-faults FILE [PERIOD_SECONDS]\n");
		return 1;
	}
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
		printf("file-faults: error: %s: %s\n", argv[1], fd < 0 ? strerror(errno) : "empty or unreadable");
		return 1;
	}
	size_t bytes = (size_t)st.st_size;
	long page = sysconf(_SC_PAGESIZE);
	/* No readahead around the faults: each page missing from the cache is one major fault. */
	volatile unsigned char *map = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED || madvise((void *)map, bytes, MADV_RANDOM) != 0) {
		printf("file-faults: error: mmap %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct rusage before, after;
	getrusage(RUSAGE_SELF, &before);
	unsigned sum = 0;
	size_t pages = 0;
	for (size_t offset = 0; offset < bytes; offset += (size_t)page, pages++)
		sum += map[offset];
	getrusage(RUSAGE_SELF, &after);
	printf("file-faults: %s pages=%zu majflt=%ld (sum %u)\n", argv[1], pages, after.ru_majflt - before.ru_majflt, sum & 1);
	if (argc == 3) {
		unsigned period = (unsigned)atoi(argv[2]);
		for (;;) {
			sleep(period ? period : 1);
			for (size_t offset = 0; offset < bytes; offset += (size_t)page)
				sum += map[offset];
		}
	}
	return 0;
}
