#ifndef MYOSICAM_CCRYPTO_SHIM_H
#define MYOSICAM_CCRYPTO_SHIM_H
// Only APIs present in both OpenSSL 1.1.1 and 3.x: Ubuntu 20.04 builds link 1.1.1.
#include <openssl/sha.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#endif
