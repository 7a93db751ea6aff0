// OpenSSL's libcrypto (SHA-256, HMAC) and zlib (CRC-32) as Swift sees them. Imported by Digests only.
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

#endif
