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

__attribute__((target("sse4.2"))) static inline uint32_t ccrypto_crc32c(uint32_t crc, const void *data,
                                                                         size_t length) {
  const unsigned char *bytes = (const unsigned char *)data;
  uint64_t state = (uint32_t)~crc;
  for (; length >= 8; bytes += 8, length -= 8) {
    uint64_t word;
    memcpy(&word, bytes, 8);
    state = __builtin_ia32_crc32di(state, word);
  }
  for (; length > 0; bytes++, length--) state = __builtin_ia32_crc32qi((uint32_t)state, *bytes);
  return ~(uint32_t)state;
}
#else
#include <stdint.h>
static inline int ccrypto_crc32c_available(void) { return 0; }
static inline uint32_t ccrypto_crc32c(uint32_t crc, const void *data, size_t length) {
  (void)data;
  (void)length;
  return crc;
}
#endif

#endif
