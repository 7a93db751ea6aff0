// What each copy a cold byte must take costs this machine, in CPU seconds per GiB of the receiving
// process (issue 16, target 1: the daemon's CPU per GiB served cold, at most 0.6). It measures the
// parts bklogfs's cold read is made of, each alone, with no FUSE, Swift or libcurl in the way:
//
//   receive        a TCP receive over loopback into one 1 MiB buffer (the sender, a child process,
//                  sends a file from the page cache with sendfile), read sizes 16 KiB and 512 KiB
//   + one file     the same, each 1 MiB block then written (pwrite) to one growing file
//   + a file each  each block written to a file of its own: created, written, closed, renamed into
//                  place, as bklogfs's disk cache does
//   + 8 a file     eight blocks to a file
//   + O_DIRECT     a file each, written with O_DIRECT (past the page cache) from an aligned buffer
//   fresh memory   first touch of newly allocated memory, 1 MiB blocks (no network)
//
// Build and run (the directory is where the block files go, on the disk the cache would use):
//   cc -O2 bench/cost_floor.c -o /tmp/cost_floor && /tmp/cost_floor /var/tmp/cost-floor
// Each figure is the median of 5 runs of 512 MiB.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1 << 20)
#define TOTAL_MIB 512
#define RUNS 5

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void fail(const char *what) {
  perror(what);
  exit(1);
}

enum store { NONE, ONE_FILE, FILE_EACH, EIGHT_A_FILE, FILE_EACH_DIRECT };

static char directory[4096];
static char source[4200];

// Removes the files a run wrote (the directory stays).
static void clean(void) {
  char command[8300];
  snprintf(command, sizeof command, "rm -f '%s'/b* '%s'/t*", directory, directory);
  if (system(command) != 0) fail("rm");
}

// One run: receive TOTAL_MIB from a child sending the source file, storing blocks as `store` says.
// Returns the receiver's CPU seconds per GiB.
static double run(size_t read_size, enum store store) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1) ||
      getsockname(listener, (struct sockaddr *)&address, &length))
    fail("listen");
  pid_t child = fork();
  if (child == 0) {
    int connection = accept(listener, NULL, NULL);
    int file = open(source, O_RDONLY);
    off_t offset = 0;
    while (offset < (off_t)TOTAL_MIB * MIB)
      if (sendfile(connection, file, &offset, (off_t)TOTAL_MIB * MIB - offset) <= 0) _exit(1);
    close(connection);
    _exit(0);
  }
  int receiver = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(receiver, (struct sockaddr *)&address, sizeof address)) fail("connect");
  char *block;  // page-aligned, as O_DIRECT needs
  if (posix_memalign((void **)&block, 4096, MIB)) fail("posix_memalign");
  memset(block, 0, MIB);  // touched before timing: the receive reuses it
  size_t filled = 0, blocks = 0;
  int file = -1;
  char temporary[8192], final[8192];
  double start = cpu_seconds();
  for (;;) {
    size_t want = read_size < MIB - filled ? read_size : MIB - filled;
    ssize_t got = recv(receiver, block + filled, want, 0);
    if (got < 0) fail("recv");
    if (got == 0) break;
    filled += (size_t)got;
    if (filled < MIB) continue;
    if (store == ONE_FILE) {
      if (file < 0) {
        snprintf(final, sizeof final, "%s/b-one", directory);
        if ((file = open(final, O_CREAT | O_WRONLY | O_TRUNC, 0600)) < 0) fail("open");
      }
      if (pwrite(file, block, MIB, (off_t)blocks * MIB) != MIB) fail("pwrite");
    } else if (store == FILE_EACH || store == EIGHT_A_FILE || store == FILE_EACH_DIRECT) {
      size_t per_file = store == EIGHT_A_FILE ? 8 : 1;
      if (blocks % per_file == 0) {
        snprintf(temporary, sizeof temporary, "%s/t%zu", directory, blocks);
        snprintf(final, sizeof final, "%s/b%zu", directory, blocks);
        int direct = store == FILE_EACH_DIRECT ? O_DIRECT : 0;
        if ((file = open(temporary, O_CREAT | O_EXCL | O_WRONLY | direct, 0600)) < 0) fail("open");
      }
      if (pwrite(file, block, MIB, (off_t)(blocks % per_file) * MIB) != MIB) fail("pwrite");
      if (blocks % per_file == per_file - 1) {
        close(file);
        if (rename(temporary, final)) fail("rename");
        file = -1;
      }
    }
    blocks++;
    filled = 0;
  }
  double used = cpu_seconds() - start;
  if (file >= 0) close(file);
  close(receiver);
  close(listener);
  waitpid(child, NULL, 0);
  free(block);
  if (blocks != TOTAL_MIB) {
    fprintf(stderr, "received %zu MiB, not %d\n", blocks, TOTAL_MIB);
    exit(1);
  }
  clean();
  return used / (TOTAL_MIB / 1024.0);
}

// First touch of fresh memory, a page at a time, mapped and unmapped (so every run's memory is new).
// Its arguments are run's, unused.
static double fresh_memory(size_t read_size, enum store store) {
  (void)read_size;
  (void)store;
  char *memory = mmap(NULL, (size_t)TOTAL_MIB * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) fail("mmap");
  double start = cpu_seconds();
  for (size_t i = 0; i < (size_t)TOTAL_MIB * MIB; i += 4096) memory[i] = 1;
  double used = cpu_seconds() - start;
  munmap(memory, (size_t)TOTAL_MIB * MIB);
  return used / (TOTAL_MIB / 1024.0);
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double (*measure)(size_t, enum store), size_t read_size, enum store store) {
  double figures[RUNS];
  for (int i = 0; i < RUNS; i++) figures[i] = measure(read_size, store);
  qsort(figures, RUNS, sizeof figures[0], compare);
  return figures[RUNS / 2];
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIRECTORY   (block files are written there, then removed)\n", argv[0]);
    return 2;
  }
  snprintf(directory, sizeof directory, "%s", argv[1]);
  mkdir(directory, 0700);
  // The sender's source: TOTAL_MIB of random bytes, read once so that it is in the page cache.
  snprintf(source, sizeof source, "%s/source", directory);
  int file = open(source, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  char *buffer = malloc(MIB);
  for (int i = 0; i < TOTAL_MIB; i++) {
    for (int j = 0; j < MIB; j++) buffer[j] = (char)rand();
    if (write(file, buffer, MIB) != MIB) fail("write");
  }
  close(file);
  free(buffer);
  signal(SIGPIPE, SIG_IGN);

  printf("CPU seconds per GiB, median of %d runs of %d MiB\n", RUNS, TOTAL_MIB);
  double receive_small = median(run, 16 << 10, NONE);
  double receive = median(run, 512 << 10, NONE);
  printf("  %.2f  receive, 16 KiB reads\n", receive_small);
  printf("  %.2f  receive, 512 KiB reads\n", receive);
  double one = median(run, 512 << 10, ONE_FILE);
  double each = median(run, 512 << 10, FILE_EACH);
  double eight = median(run, 512 << 10, EIGHT_A_FILE);
  printf("  %.2f  receive + write to one file             (the write: %.2f)\n", one, one - receive);
  printf("  %.2f  receive + write a file each block       (the write: %.2f)\n", each, each - receive);
  printf("  %.2f  receive + write a file each 8 blocks    (the write: %.2f)\n", eight, eight - receive);
  double direct = median(run, 512 << 10, FILE_EACH_DIRECT);
  printf("  %.2f  receive + a file each block, O_DIRECT    (the write: %.2f)\n", direct, direct - receive);
  printf("  %.2f  first touch of fresh memory\n", median(fresh_memory, 0, NONE));
  unlink(source);
  return 0;
}
