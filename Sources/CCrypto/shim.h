// OpenSSL libcrypto (libssl-dev): SHA-256 through the EVP digest interface.
#include <openssl/evp.h>
#include <openssl/sha.h>
