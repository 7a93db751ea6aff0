// OpenSSL's libcrypto (SHA-256, HMAC), zlib (CRC-32, gzip) and CRC-32C as Swift sees them. Imported by Digests only.
#ifndef BKLOGFS_CCRYPTO_SHIM_H
#define BKLOGFS_CCRYPTO_SHIM_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <zlib.h>

// inflateInit2 is a macro (it passes zlib's version and struct size): Swift cannot call it.
// 16 + MAX_WBITS: a gzip stream, header and trailer checked.
static inline int ccrypto_inflate_init_gzip(z_stream *stream) {
  return inflateInit2(stream, 16 + MAX_WBITS);
}

// A zlib stream (RFC 1950): header, Adler-32 trailer, and the id of a preset dictionary when one was used.
static inline int ccrypto_inflate_init_zlib(z_stream *stream) {
  return inflateInit(stream);
}

// deflateInit is a macro too.
static inline int ccrypto_deflate_init_zlib(z_stream *stream, int level) {
  return deflateInit(stream, level);
}

// CRC-32C (Castagnoli) with the SSE 4.2 instruction, about twice as fast as zlib's CRC-32: the disk
// cache checksums every block it writes and reads. Call ccrypto_crc32c only where
// ccrypto_crc32c_available() says the processor has the instruction.
#if defined(__x86_64__)
#include <cpuid.h>
#include <stdint.h>
#include <string.h>

static inline int ccrypto_crc32c_available(void) {
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  return (ecx & bit_SSE4_2) != 0;
}

// The crc32 instruction takes three cycles and can start one each cycle: a single chain of them
// runs at a third of the speed the processor allows. Long buffers are therefore cut into three
// lanes of CCRYPTO_CRC32C_LANE bytes, checksummed at once as three independent chains, and
// joined: the CRC of A followed by B is the CRC of A carried over |B| zero bytes, xor the CRC of B
// from a zero state (the CRC is linear in its state). Carrying a state over LANE zero bytes is
// itself linear, so it is a table lookup per byte of the state (`ccrypto_crc32c_tables`), built
// once by running the instruction over zeros from each of the 32 one-bit states.
#define CCRYPTO_CRC32C_LANE 8192

typedef struct {
  uint32_t carry[4][256];
} ccrypto_crc32c_tables;

__attribute__((target("sse4.2"))) static inline uint64_t ccrypto_crc32c_chain(uint64_t state,
                                                                              const unsigned char *bytes,
                                                                              size_t length) {
  for (; length >= 8; bytes += 8, length -= 8) {
    uint64_t word;
    memcpy(&word, bytes, 8);
    state = __builtin_ia32_crc32di(state, word);
  }
  for (; length > 0; bytes++, length--) state = __builtin_ia32_crc32qi((uint32_t)state, *bytes);
  return state;
}

static inline void ccrypto_crc32c_prepare(ccrypto_crc32c_tables *tables) {
  static const unsigned char zeros[CCRYPTO_CRC32C_LANE];
  uint32_t basis[32];
  for (int bit = 0; bit < 32; bit++) {
    basis[bit] = (uint32_t)ccrypto_crc32c_chain((uint64_t)1 << bit, zeros, sizeof zeros);
  }
  for (int lane = 0; lane < 4; lane++) {
    for (uint32_t byte = 0; byte < 256; byte++) {
      uint32_t state = byte << (8 * lane), carried = 0;
      for (int bit = 0; bit < 32; bit++) {
        if (state & ((uint32_t)1 << bit)) carried ^= basis[bit];
      }
      tables->carry[lane][byte] = carried;
    }
  }
}

static inline uint32_t ccrypto_crc32c_carry(const ccrypto_crc32c_tables *tables, uint32_t state) {
  return tables->carry[0][state & 0xff] ^ tables->carry[1][(state >> 8) & 0xff] ^
         tables->carry[2][(state >> 16) & 0xff] ^ tables->carry[3][state >> 24];
}

// `tables` must have been filled by ccrypto_crc32c_prepare.
__attribute__((target("sse4.2"))) static inline uint32_t ccrypto_crc32c(const ccrypto_crc32c_tables *tables,
                                                                         uint32_t crc, const void *data,
                                                                         size_t length) {
  const unsigned char *bytes = (const unsigned char *)data;
  uint64_t state = (uint32_t)~crc;
  const size_t lane = CCRYPTO_CRC32C_LANE;
  for (; length >= 3 * lane; bytes += 3 * lane, length -= 3 * lane) {
    uint64_t second = 0, third = 0;
    for (size_t at = 0; at < lane; at += 8) {
      uint64_t a, b, c;
      memcpy(&a, bytes + at, 8);
      memcpy(&b, bytes + lane + at, 8);
      memcpy(&c, bytes + 2 * lane + at, 8);
      state = __builtin_ia32_crc32di(state, a);
      second = __builtin_ia32_crc32di(second, b);
      third = __builtin_ia32_crc32di(third, c);
    }
    state = ccrypto_crc32c_carry(tables, (uint32_t)state) ^ (uint32_t)second;
    state = ccrypto_crc32c_carry(tables, (uint32_t)state) ^ (uint32_t)third;
  }
  return ~(uint32_t)ccrypto_crc32c_chain(state, bytes, length);
}
#else
#include <stdint.h>
typedef struct {
  uint32_t carry[4][256];
} ccrypto_crc32c_tables;
static inline int ccrypto_crc32c_available(void) { return 0; }
static inline void ccrypto_crc32c_prepare(ccrypto_crc32c_tables *tables) { (void)tables; }
static inline uint32_t ccrypto_crc32c(const ccrypto_crc32c_tables *tables, uint32_t crc, const void *data,
                                      size_t length) {
  (void)tables;
  (void)data;
  (void)length;
  return crc;
}
#endif

#endif
