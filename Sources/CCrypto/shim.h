// OpenSSL libcrypto (libssl-dev): SHA-256 through the EVP digest interface; Ed25519 keys (PEM)
// and signatures through EVP_PKEY / EVP_DigestSign / EVP_DigestVerify.
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/pem.h>
#include <openssl/err.h>
