// How fast can a disk cache's block files be read back cold? Reads every file named on standard
// input (one path a line) whole, the way DiskBlockCache.get does (a short read of the header, then
// the rest), in one of three ways, and prints the wall time and this process's CPU time:
//
//   buffered   pread(2) through the page cache (what bklogfs does)
//   direct     one O_DIRECT pread of the whole file into an aligned buffer, then a copy of the
//              data out of it (no page cache: no insertion, no second copy of the data in memory)
//   willneed   buffered, after posix_fadvise(POSIX_FADV_WILLNEED) on the next GROUP files
//
// Build and run (as root, to drop the page cache between runs), over a cache directory a mount
// has filled (for example the benchmark's):
//
//   cc -O2 bench/cachefile_read.c -o /tmp/cachefile_read
//   find CACHE_DIR -name '*.blk' | sort > /tmp/blocks
//   for mode in buffered direct willneed; do
//     sync; echo 3 > /proc/sys/vm/drop_caches; /tmp/cachefile_read $mode < /tmp/blocks
//   done
//
// doc/BENCHMARKS.md ("What the profiles taught") has what it measured.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { header_bytes = 100, group = 8, max_files = 1 << 20, max_file = 4 << 20 };

static double ms(struct timeval t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; }

static int read_buffered(int fd, char *into) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  if (st.st_size > max_file) return -1;
  ssize_t head = pread(fd, into, header_bytes, 0);
  if (head < 0) return -1;
  if (st.st_size > header_bytes && pread(fd, into + head, st.st_size - head, head) < 0) return -1;
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  int direct = strcmp(mode, "direct") == 0, willneed = strcmp(mode, "willneed") == 0;
  if (!direct && !willneed && strcmp(mode, "buffered") != 0) {
    fprintf(stderr, "usage: %s buffered|direct|willneed < list-of-files\n", argv[0]);
    return 2;
  }
  static char *names[max_files];
  int count = 0;
  char line[4096];
  while (count < max_files && fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    if (line[0]) names[count++] = strdup(line);
  }
  char *data = malloc(max_file);
  void *aligned = NULL;
  if (!data || posix_memalign(&aligned, 4096, max_file) != 0) return 1;

  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long long bytes = 0;
  int fds[group];
  for (int first = 0; first < count; first += group) {
    int n = first + group <= count ? group : count - first;
    for (int i = 0; i < n; i++) {
      fds[i] = open(names[first + i], O_RDONLY | (direct ? O_DIRECT : 0));
      if (fds[i] < 0) {
        perror(names[first + i]);
        return 1;
      }
      if (willneed) posix_fadvise(fds[i], 0, 0, POSIX_FADV_WILLNEED);
    }
    for (int i = 0; i < n; i++) {
      struct stat st;
      if (fstat(fds[i], &st) != 0 || st.st_size > max_file) return 1;
      if (direct) {
        ssize_t got = pread(fds[i], aligned, (st.st_size + 4095) & ~4095L, 0);
        if (got < 0) {
          perror("pread with O_DIRECT");
          return 1;
        }
        if (got > header_bytes) memcpy(data, (char *)aligned + header_bytes, got - header_bytes);
      } else if (read_buffered(fds[i], data) != 0) {
        perror(names[first + i]);
        return 1;
      }
      bytes += st.st_size;
      close(fds[i]);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  printf("%-8s %d files, %.1f MiB: wall %.1f ms, user %.1f ms, system %.1f ms\n", mode, count,
         bytes / 1048576.0, (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6,
         ms(usage.ru_utime), ms(usage.ru_stime));
  return 0;
}
