// CRC-32C's speed over a 1 MiB block (a disk cache block) in memory, through the three-lane
// function the disk cache uses and through a single chain of the crc32 instruction, with the
// shim's own code (doc/BENCHMARKS.md, "What the profiles taught"):
//
//   cc -O2 -I Sources/CCrypto bench/crc32c_speed.c -o /tmp/crc32c_speed && /tmp/crc32c_speed
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec + now.tv_nsec / 1e9;
}

int main(void) {
  if (!ccrypto_crc32c_available()) {
    fprintf(stderr, "this processor has no crc32 instruction (SSE 4.2)\n");
    return 1;
  }
  const size_t size = 1 << 20;
  const int rounds = 2000;
  unsigned char *block = malloc(size);
  for (size_t i = 0; i < size; i++) block[i] = (unsigned char)(i * 31 + 7);
  ccrypto_crc32c_tables tables;
  ccrypto_crc32c_prepare(&tables);

  // Each round continues from the last one's CRC, so no round can be left out.
  uint32_t crc = 0;
  double start = seconds();
  for (int round = 0; round < rounds; round++) crc = ccrypto_crc32c(&tables, crc, block, size);
  double lanes = seconds() - start;
  uint32_t chained = 0;
  start = seconds();
  for (int round = 0; round < rounds; round++) chained = ~(uint32_t)ccrypto_crc32c_chain(~chained, block, size);
  double chain = seconds() - start;

  printf("three lanes: %5.1f GB/s\none chain:   %5.1f GB/s\n", size * (double)rounds / lanes / 1e9,
         size * (double)rounds / chain / 1e9);
  if (crc != chained) {
    fprintf(stderr, "the two disagree: %08x and %08x\n", crc, chained);
    return 1;
  }
  return 0;
}
