// OpenSSL's libcrypto (SHA-256, HMAC) and zlib (CRC-32) as Swift sees them. Imported by Digests only.
#ifndef BKLOGFS_CCRYPTO_SHIM_H
#define BKLOGFS_CCRYPTO_SHIM_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <zlib.h>

#endif
