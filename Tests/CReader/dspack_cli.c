/* The test driver of Formats/dspack.h: opens each pack given, lists its entries through the
 * reader's API (find by name, pointer into the mapping, XXH3-64 of the bytes at the pointer,
 * computed here with libxxhash directly) and runs dspack_verify, printing one JSON object per
 * file on its own line:
 *
 *   {"file": PATH, "open": CODE, "message": TEXT, "offset": N|null,
 *    "entries": [{"name", "kind", "dtype", "shape", "offset", "size", "aligned", "found", "xxh3"}],
 *    "verify": [[CODE, ENTRY|null, OFFSET], ...], "verify_entry": [CODE per entry],
 *    "metadata_bytes": N, "signed": BOOL}
 *
 * Built with DSPACK_ED25519_OPENSSL, it also prints "signature": the code of
 * dspack_verify_signature, against the public key of FILE's argument written `FILE=KEY.pub`
 * (a PEM public key), or against none.
 *
 * Built and run by Tests/DSPackTests/DSPackCReaderTests.swift (cc -std=c11 -Wall -Wextra -Werror).
 */
#define DSPACK_IMPLEMENTATION
#include "dspack.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>
#ifdef DSPACK_ED25519_OPENSSL
#include <openssl/pem.h>

/* The raw 32 bytes of a PEM Ed25519 public key file; 0 on failure. */
static int read_pubkey(const char *path, uint8_t out[32]) {
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;
    size_t n = 32;
    int ok;
    if (!f) return 0;
    k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) return 0;
    ok = EVP_PKEY_get_raw_public_key(k, out, &n) == 1 && n == 32;
    EVP_PKEY_free(k);
    return ok;
}
#endif

static void json_string(const char *s, size_t n) {
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int first_failure = 1;

static void on_failure(void *context, dspack_status code, const dspack_entry *e, uint64_t offset) {
    (void)context;
    printf("%s[\"%s\", ", first_failure ? "" : ", ", dspack_code_name(code));
    first_failure = 0;
    if (e) json_string(e->name, e->name_length); else printf("null");
    printf(", %llu]", (unsigned long long)offset);
}

int main(int argc, char **argv) {
    int a, status = 0;
    for (a = 1; a < argc; a++) {
        dspack p;
        char path[4096];
        const char *pubkey = NULL;
        dspack_status s;
        uint64_t i;
        snprintf(path, sizeof path, "%s", argv[a]);
        if (strchr(path, '=')) { pubkey = strchr(argv[a], '=') + 1; *strchr(path, '=') = 0; }
        s = dspack_open(&p, path);
        printf("{\"file\": ");
        json_string(path, strlen(path));
        printf(", \"open\": \"%s\"", dspack_code_name(s));
        if (s != DSPACK_OK) {
            printf(", \"message\": ");
            json_string(p.error, strlen(p.error));
            if (p.error_offset >= 0) printf(", \"offset\": %lld}\n", (long long)p.error_offset);
            else printf(", \"offset\": null}\n");
            status = 1;
            dspack_close(&p);
            continue;
        }
        printf(", \"metadata_bytes\": %llu, \"signed\": %s, \"entries\": [", (unsigned long long)p.metadata_size, p.trailer ? "true" : "false");
        for (i = 0; i < p.entry_count; i++) {
            const dspack_entry *e = &p.entries[i];
            const dspack_entry *f = e->kind == DSPACK_KIND_TENSOR ? dspack_find(&p, e->name) : dspack_find_file(&p, e->name);
            const void *data = dspack_data(&p, e);
            unsigned d;
            printf("%s{\"name\": ", i ? ", " : "");
            json_string(e->name, e->name_length);
            printf(", \"kind\": %u, \"dtype\": \"%s\", \"shape\": [", e->kind, dspack_dtype_name(e->dtype));
            for (d = 0; d < e->ndim; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)e->shape[d]);
            printf("], \"offset\": %llu, \"size\": %llu, \"aligned\": %s, \"found\": %s, \"xxh3\": \"%016llx\"}",
                   (unsigned long long)e->data_offset, (unsigned long long)e->data_size,
                   ((uintptr_t)data % 4096) == 0 ? "true" : "false", f == e ? "true" : "false",
                   (unsigned long long)XXH3_64bits(data, (size_t)e->data_size));
        }
        printf("], \"missing_found\": %s, \"verify_entry\": [", dspack_find(&p, "no such tensor") ? "true" : "false");
        for (i = 0; i < p.entry_count; i++) printf("%s\"%s\"", i ? ", " : "", dspack_code_name(dspack_verify_entry(&p, &p.entries[i])));
        printf("], \"verify\": [");
        first_failure = 1;
        if (dspack_verify(&p, on_failure, NULL) != DSPACK_OK) status = 1;
        printf("]");
#ifdef DSPACK_ED25519_OPENSSL
        {
            uint8_t key[32];
            dspack_status sig;
            if (pubkey && !read_pubkey(pubkey, key)) { fprintf(stderr, "%s: not an Ed25519 PEM public key\n", pubkey); return 2; }
            sig = dspack_verify_signature(&p, pubkey ? key : NULL);
            printf(", \"signature\": \"%s\"", dspack_code_name(sig));
        }
#else
        (void)pubkey;
#endif
        printf("}\n");
        dspack_close(&p);
    }
    return status;
}
