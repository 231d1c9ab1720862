/* dspack.h — a single-header C reader of .dspack files (Formats/dspack.md, version 1.0).
 *
 * Opens a pack by memory map, performs every open-time check of spec §7.1 in the spec's order
 * (the header's SHA-256 digest before any offset from the header is used), finds tensors and
 * embedded files by name, hands out pointers into the mapping (each tensor starts at a 4096-byte
 * boundary of the file, hence of the mapping), and verifies one entry or the whole pack (§7.2:
 * every XXH3-64 and every zero gap).
 *
 * Use: in exactly one C file
 *
 *     #define DSPACK_IMPLEMENTATION
 *     #include "dspack.h"
 *
 * and link libxxhash (`-lxxhash`, Debian's libxxhash-dev; or define XXH_INLINE_ALL before the
 * include to compile xxHash in). Other files include dspack.h without the define.
 *
 * SHA-256: a small embedded FIPS 180-4 implementation is used by default, so that libxxhash is
 * the only library needed; define DSPACK_SHA256_OPENSSL (and link `-lcrypto`) to use OpenSSL's
 * SHA256() instead. The header digest is the only SHA-256 a reader computes (a few hundred KiB
 * for the largest checkpoints), so the embedded one's speed does not matter.
 *
 * Signatures: the trailer's structure is checked on open (§7.1 step 10) and exposed as
 * `dspack.trailer`. Define DSPACK_ED25519_OPENSSL (and link `-lcrypto`, OpenSSL 1.1.1 or later)
 * for dspack_verify_signature(), the Ed25519 checks of §7.2.
 *
 * Errors: every function returns a `dspack_status` (DSPACK_OK = 0, or DSPACK_E_<CODE> for the
 * code of spec §11); `dspack_code_name()` spells the code as the spec does. After a failed open,
 * `p->error` holds a message, `p->error_offset` the byte offset (or -1) and `p->error_entry` the
 * entry index (or -1).
 *
 * Tested by Tests/CReader/dspack_cli.c, which `swift test` compiles with cc and runs on packs
 * dsconvert writes and on the vectors of Formats/testdata/ (DSPackCReaderTests).
 */
#ifndef DSPACK_H
#define DSPACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dspack_status {
    DSPACK_OK = 0,
    DSPACK_E_TRUNCATED,
    DSPACK_E_BAD_MAGIC,
    DSPACK_E_UNSUPPORTED_VERSION,
    DSPACK_E_HEADER_SIZE,
    DSPACK_E_HEADER_DIGEST,
    DSPACK_E_HEADER_INVALID,
    DSPACK_E_PADDING_NONZERO,
    DSPACK_E_METADATA_INVALID,
    DSPACK_E_ENTRY_INVALID,
    DSPACK_E_ENTRY_MISALIGNED,
    DSPACK_E_ENTRY_OUT_OF_BOUNDS,
    DSPACK_E_ENTRY_OVERLAP,
    DSPACK_E_TRAILER_INVALID,
    DSPACK_E_CHECKSUM_MISMATCH,
    DSPACK_E_SIGNATURE_INVALID,
    DSPACK_E_UNSIGNED,
    DSPACK_E_KEY_MISMATCH,
    /* Not in §11: the operating system refused (open, fstat, mmap, out of memory), or a name
     * that is not in the pack was asked for. */
    DSPACK_E_IO,
    DSPACK_E_NOT_FOUND
} dspack_status;

enum { DSPACK_KIND_TENSOR = 0, DSPACK_KIND_FILE = 1 };

/* §3 element type codes. */
enum {
    DSPACK_BOOL = 0, DSPACK_U8, DSPACK_I8, DSPACK_I16, DSPACK_U16, DSPACK_F16, DSPACK_BF16,
    DSPACK_I32, DSPACK_U32, DSPACK_F32, DSPACK_F64, DSPACK_I64, DSPACK_U64, DSPACK_C64,
    DSPACK_F8_E4M3, DSPACK_F8_E5M2, DSPACK_F8_E4M3FNUZ, DSPACK_F8_E5M2FNUZ, DSPACK_F8_E8M0,
    DSPACK_F6_E2M3, DSPACK_F6_E3M2, DSPACK_F4, DSPACK_DTYPE_COUNT
};

#define DSPACK_NO_INDEX 0xFFFFFFFFu

/* One row of the entry table (§2.2), decoded. `name` points into the mapping's string pool and
 * is NUL-terminated. */
typedef struct dspack_entry {
    const char *name;
    uint32_t name_length;
    uint32_t index;          /* row in the entry table */
    uint8_t kind, dtype, ndim, role;
    uint32_t weight_scale, input_scale;   /* entry indices or DSPACK_NO_INDEX */
    int32_t layer, expert;               /* -1 when none */
    uint64_t shape[8];
    uint64_t data_offset, data_size, xxh3;
} dspack_entry;

typedef struct dspack {
    /* the mapping */
    const uint8_t *base;
    uint64_t size;
    /* the header, valid after a successful open */
    uint16_t version_major, version_minor;
    uint64_t entry_count;
    dspack_entry *entries;
    const char *metadata;      /* the JSON text (not NUL-terminated) */
    uint64_t metadata_size;
    const uint8_t *header_digest;  /* 32 bytes */
    uint64_t data_offset, data_size;
    const uint8_t *trailer;    /* the 128-byte signature trailer, or NULL */
    /* the last error */
    char error[256];
    int64_t error_offset;
    int64_t error_entry;
    /* private: name lookup (open addressing over entry indices) */
    uint32_t *slots_;
    uint64_t slot_mask_;
    int fd_;
} dspack;

/* Maps `path` and runs the checks of §7.1. On failure everything is released and `p->error` says
 * why; `dspack_close` is harmless either way. */
dspack_status dspack_open(dspack *p, const char *path);
void dspack_close(dspack *p);

/* The tensor (kind 0) or embedded file (kind 1) of that name, or NULL. */
const dspack_entry *dspack_find(const dspack *p, const char *name);
const dspack_entry *dspack_find_file(const dspack *p, const char *name);

/* A pointer to an entry's data inside the mapping (4096-aligned; valid until dspack_close). */
const void *dspack_data(const dspack *p, const dspack_entry *e);

/* The entry's XXH3-64 against the table: DSPACK_OK or DSPACK_E_CHECKSUM_MISMATCH. */
dspack_status dspack_verify_entry(const dspack *p, const dspack_entry *e);

/* Called by dspack_verify for each failure: the code, the entry concerned (the entry whose data
 * is wrong, or the entry before a non-zero gap; NULL before the first entry), the byte offset of
 * the first wrong byte (checksums: the entry's data offset). */
typedef void (*dspack_failure_fn)(void *context, dspack_status code, const dspack_entry *entry, uint64_t offset);

/* §7.2 (without the signature): every entry's XXH3-64 and that every gap and the tail of the
 * data region are zero, in file order; every failure is reported to `on_failure` (may be NULL).
 * Returns the first failure's code or DSPACK_OK. */
dspack_status dspack_verify(const dspack *p, dspack_failure_fn on_failure, void *context);

#ifdef DSPACK_ED25519_OPENSSL
/* §7.2's signature checks: the trailer's Ed25519 signature of "dspack-sig-v1:" + the header
 * digest, against the trailer's key (DSPACK_E_SIGNATURE_INVALID); given `trusted_key` (the 32
 * raw bytes of the Ed25519 public key a deployment trusts; NULL for none), that the pack is
 * signed (DSPACK_E_UNSIGNED) by that key (DSPACK_E_KEY_MISMATCH). An unsigned pack passes when
 * no key is given. */
dspack_status dspack_verify_signature(const dspack *p, const uint8_t *trusted_key);
#endif

/* The spec's spelling of a code ("header_digest"); "ok" for DSPACK_OK. */
const char *dspack_code_name(dspack_status code);

/* The spec's name of a dtype code ("BF16") and its bits per element; NULL / 0 when reserved. */
const char *dspack_dtype_name(uint8_t dtype);
unsigned dspack_dtype_bits(uint8_t dtype);

#ifdef __cplusplus
}
#endif
#endif /* DSPACK_H */

/* ============================================================================================ */
#ifdef DSPACK_IMPLEMENTATION
#ifndef DSPACK_IMPLEMENTATION_DONE
#define DSPACK_IMPLEMENTATION_DONE

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#ifdef DSPACK_SHA256_OPENSSL
#include <openssl/sha.h>
#endif
#ifdef DSPACK_ED25519_OPENSSL
#include <openssl/evp.h>
#endif

static const char *const dspack__codes[] = {
    "ok", "truncated", "bad_magic", "unsupported_version", "header_size", "header_digest",
    "header_invalid", "padding_nonzero", "metadata_invalid", "entry_invalid", "entry_misaligned",
    "entry_out_of_bounds", "entry_overlap", "trailer_invalid", "checksum_mismatch",
    "signature_invalid", "unsigned", "key_mismatch", "io", "not_found",
};

const char *dspack_code_name(dspack_status code) {
    unsigned c = (unsigned)code;
    return c < sizeof dspack__codes / sizeof dspack__codes[0] ? dspack__codes[c] : "unknown";
}

static const struct { const char *name; unsigned bits; } dspack__dtypes[DSPACK_DTYPE_COUNT] = {
    {"BOOL", 8}, {"U8", 8}, {"I8", 8}, {"I16", 16}, {"U16", 16}, {"F16", 16}, {"BF16", 16},
    {"I32", 32}, {"U32", 32}, {"F32", 32}, {"F64", 64}, {"I64", 64}, {"U64", 64}, {"C64", 64},
    {"F8_E4M3", 8}, {"F8_E5M2", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"F8_E8M0", 8},
    {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"F4", 4},
};

const char *dspack_dtype_name(uint8_t d) { return d < DSPACK_DTYPE_COUNT ? dspack__dtypes[d].name : NULL; }
unsigned dspack_dtype_bits(uint8_t d) { return d < DSPACK_DTYPE_COUNT ? dspack__dtypes[d].bits : 0; }

static uint16_t dspack__u16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }
static uint32_t dspack__u32(const uint8_t *b) {
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}
static uint64_t dspack__u64(const uint8_t *b) { return (uint64_t)dspack__u32(b) | ((uint64_t)dspack__u32(b + 4) << 32); }
static uint64_t dspack__align(uint64_t x) { return (x + 4095u) & ~(uint64_t)4095u; }

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------------ */
#ifdef DSPACK_SHA256_OPENSSL
static void dspack__sha256(const uint8_t *data, size_t n, uint8_t out[32]) { SHA256(data, n, out); }
#else
static const uint32_t dspack__k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
#define DSPACK__ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void dspack__sha256_block(uint32_t h[8], const uint8_t *blk) {
    uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = ((uint32_t)blk[4 * i] << 24) | ((uint32_t)blk[4 * i + 1] << 16) | ((uint32_t)blk[4 * i + 2] << 8) | blk[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = DSPACK__ROR(w[i - 15], 7) ^ DSPACK__ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = DSPACK__ROR(w[i - 2], 17) ^ DSPACK__ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; k = h[7];
    for (i = 0; i < 64; i++) {
        t1 = k + (DSPACK__ROR(e, 6) ^ DSPACK__ROR(e, 11) ^ DSPACK__ROR(e, 25)) + ((e & f) ^ (~e & g)) + dspack__k[i] + w[i];
        t2 = (DSPACK__ROR(a, 2) ^ DSPACK__ROR(a, 13) ^ DSPACK__ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}
static void dspack__sha256(const uint8_t *data, size_t n, uint8_t out[32]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t tail[128];
    size_t full = n & ~(size_t)63, rest = n - full, tn;
    uint64_t bits = (uint64_t)n * 8;
    size_t i;
    for (i = 0; i < full; i += 64) dspack__sha256_block(h, data + i);
    memset(tail, 0, sizeof tail);
    if (rest) memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    tn = rest + 1 + 8 <= 64 ? 64 : 128;
    for (i = 0; i < 8; i++) tail[tn - 1 - i] = (uint8_t)(bits >> (8 * i));
    dspack__sha256_block(h, tail);
    if (tn == 128) dspack__sha256_block(h, tail + 64);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24); out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8); out[4 * i + 3] = (uint8_t)h[i];
    }
}
#undef DSPACK__ROR
#endif

/* ---- UTF-8 and JSON syntax ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or > U+10FFFF), 0 if invalid. */
static size_t dspack__utf8_char(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] >= 0xA0) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

static int dspack__utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0, k;
    while (i < n) {
        if (!(k = dspack__utf8_char(s + i, n - i))) return 0;
        i += k;
    }
    return 1;
}

/* A recursive-descent check that [s, e) is one RFC 8259 JSON value (the metadata's syntax; a C
 * reader does not need the values). Depth is bounded. */
typedef struct { const uint8_t *s, *e; int depth; } dspack__json;

static void dspack__ws(dspack__json *j) {
    while (j->s < j->e && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++;
}
static int dspack__hex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int dspack__json_string(dspack__json *j) {
    if (j->s >= j->e || *j->s != '"') return 0;
    j->s++;
    while (j->s < j->e) {
        uint8_t c = *j->s;
        if (c == '"') { j->s++; return 1; }
        if (c < 0x20) return 0;
        if (c == '\\') {
            if (++j->s >= j->e) return 0;
            c = *j->s;
            if (c == 'u') {
                int i;
                for (i = 1; i <= 4; i++) if (j->s + i >= j->e || !dspack__hex(j->s[i])) return 0;
                j->s += 5;
            } else if (strchr("\"\\/bfnrt", c) && c) {
                j->s++;
            } else return 0;
        } else {
            size_t k = dspack__utf8_char(j->s, (size_t)(j->e - j->s));
            if (!k) return 0;
            j->s += k;
        }
    }
    return 0;
}
static int dspack__json_value(dspack__json *j);
static int dspack__json_number(dspack__json *j) {
    const uint8_t *s = j->s;
    if (s < j->e && *s == '-') s++;
    if (s >= j->e) return 0;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') { while (s < j->e && *s >= '0' && *s <= '9') s++; }
    else return 0;
    if (s < j->e && *s == '.') {
        s++;
        if (s >= j->e || *s < '0' || *s > '9') return 0;
        while (s < j->e && *s >= '0' && *s <= '9') s++;
    }
    if (s < j->e && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < j->e && (*s == '+' || *s == '-')) s++;
        if (s >= j->e || *s < '0' || *s > '9') return 0;
        while (s < j->e && *s >= '0' && *s <= '9') s++;
    }
    j->s = s;
    return 1;
}
static int dspack__json_word(dspack__json *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->e - j->s) < n || memcmp(j->s, w, n)) return 0;
    j->s += n;
    return 1;
}
static int dspack__json_value(dspack__json *j) {
    dspack__ws(j);
    if (j->s >= j->e) return 0;
    switch (*j->s) {
    case '{':
    case '[': {
        uint8_t close = *j->s == '{' ? '}' : ']';
        int object = close == '}';
        if (++j->depth > 256) return 0;
        j->s++;
        dspack__ws(j);
        if (j->s < j->e && *j->s == close) { j->s++; j->depth--; return 1; }
        for (;;) {
            if (object) {
                dspack__ws(j);
                if (!dspack__json_string(j)) return 0;
                dspack__ws(j);
                if (j->s >= j->e || *j->s != ':') return 0;
                j->s++;
            }
            if (!dspack__json_value(j)) return 0;
            dspack__ws(j);
            if (j->s >= j->e) return 0;
            if (*j->s == ',') { j->s++; continue; }
            if (*j->s == close) { j->s++; j->depth--; return 1; }
            return 0;
        }
    }
    case '"': return dspack__json_string(j);
    case 't': return dspack__json_word(j, "true");
    case 'f': return dspack__json_word(j, "false");
    case 'n': return dspack__json_word(j, "null");
    default: return dspack__json_number(j);
    }
}
/* 1 when [s, s + n) is exactly one JSON object (surrounding white space allowed). */
static int dspack__json_object(const uint8_t *s, size_t n) {
    dspack__json j;
    j.s = s; j.e = s + n; j.depth = 0;
    dspack__ws(&j);
    if (j.s >= j.e || *j.s != '{') return 0;
    if (!dspack__json_value(&j)) return 0;
    dspack__ws(&j);
    return j.s == j.e;
}

/* ---- opening -------------------------------------------------------------------------------- */

static dspack_status dspack__fail(dspack *p, dspack_status code, int64_t offset, int64_t entry, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(p->error, sizeof p->error, "%s: ", dspack_code_name(code));
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof p->error) vsnprintf(p->error + n, sizeof p->error - (size_t)n, fmt, ap);
    va_end(ap);
    p->error_offset = offset;
    p->error_entry = entry;
    return code;
}

static uint64_t dspack__name_hash(const char *s, size_t n, uint8_t kind) {
    return XXH3_64bits_withSeed(s, n, kind);
}

/* Inserts entry i into the name table; 0 when an entry of the same kind and name is already there. */
static int dspack__insert(dspack *p, uint32_t i) {
    const dspack_entry *e = &p->entries[i];
    uint64_t s = dspack__name_hash(e->name, e->name_length, e->kind) & p->slot_mask_;
    for (;; s = (s + 1) & p->slot_mask_) {
        uint32_t v = p->slots_[s];
        if (v == DSPACK_NO_INDEX) { p->slots_[s] = i; return 1; }
        {
            const dspack_entry *o = &p->entries[v];
            if (o->kind == e->kind && o->name_length == e->name_length && !memcmp(o->name, e->name, e->name_length)) return 0;
        }
    }
}

static const dspack_entry *dspack__lookup(const dspack *p, const char *name, uint8_t kind) {
    size_t n;
    uint64_t s;
    if (!p->slots_ || !name) return NULL;
    n = strlen(name);
    for (s = dspack__name_hash(name, n, kind) & p->slot_mask_;; s = (s + 1) & p->slot_mask_) {
        uint32_t v = p->slots_[s];
        if (v == DSPACK_NO_INDEX) return NULL;
        {
            const dspack_entry *o = &p->entries[v];
            if (o->kind == kind && o->name_length == n && !memcmp(o->name, name, n)) return o;
        }
    }
}

const dspack_entry *dspack_find(const dspack *p, const char *name) { return dspack__lookup(p, name, DSPACK_KIND_TENSOR); }
const dspack_entry *dspack_find_file(const dspack *p, const char *name) { return dspack__lookup(p, name, DSPACK_KIND_FILE); }

const void *dspack_data(const dspack *p, const dspack_entry *e) { return p->base + e->data_offset; }

static int dspack__nonzero(const uint8_t *b, uint64_t start, uint64_t end, uint64_t *first) {
    uint64_t i;
    for (i = start; i < end; i++) if (b[i]) { *first = i; return 1; }
    return 0;
}

void dspack_close(dspack *p) {
    if (p->base && p->size) munmap((void *)p->base, (size_t)p->size);
    if (p->fd_ >= 0) close(p->fd_);
    free(p->entries);
    free(p->slots_);
    p->base = NULL;
    p->size = 0;
    p->entries = NULL;
    p->slots_ = NULL;
    p->fd_ = -1;
}

static dspack_status dspack__check(dspack *p) {
    const uint8_t *b = p->base;
    uint64_t size = p->size, entry_size, count, pool_size, meta_size, header_end, flags, previous_end, data_end;
    uint64_t pool_start, meta_start, i, first, rest;
    uint8_t digest[32];
    int saw_file = 0;

    /* 1–3 */
    if (size < 64) return dspack__fail(p, DSPACK_E_TRUNCATED, -1, -1, "%llu bytes, shorter than the 64-byte preamble", (unsigned long long)size);
    if (memcmp(b, "\x89" "DSPACK\n", 8)) return dspack__fail(p, DSPACK_E_BAD_MAGIC, 0, -1, "not a .dspack file (wrong magic)");
    p->version_major = dspack__u16(b + 8);
    p->version_minor = dspack__u16(b + 10);
    if (p->version_major != 1) return dspack__fail(p, DSPACK_E_UNSUPPORTED_VERSION, 8, -1, "format version %u.%u; this reader reads version 1", p->version_major, p->version_minor);
    /* 4: every length is checked against the file before anything past the preamble is read */
    entry_size = dspack__u32(b + 12);
    count = dspack__u64(b + 16);
    pool_size = dspack__u64(b + 24);
    meta_size = dspack__u64(b + 32);
    if (entry_size < 128 || entry_size % 8) return dspack__fail(p, DSPACK_E_HEADER_SIZE, 12, -1, "entry_size %llu is not a multiple of 8 of at least 128", (unsigned long long)entry_size);
    if (count > (UINT64_MAX - 64) / entry_size) return dspack__fail(p, DSPACK_E_HEADER_SIZE, 16, -1, "entry_count %llu overflows", (unsigned long long)count);
    header_end = 64 + count * entry_size;
    if (pool_size > UINT64_MAX - header_end) return dspack__fail(p, DSPACK_E_HEADER_SIZE, 24, -1, "string_pool_size overflows");
    header_end += pool_size;
    if (meta_size > UINT64_MAX - header_end) return dspack__fail(p, DSPACK_E_HEADER_SIZE, 32, -1, "metadata_size overflows");
    header_end += meta_size;
    if (header_end > size || size - header_end < 32)
        return dspack__fail(p, DSPACK_E_HEADER_SIZE, 16, -1, "the header's lengths reach past the end of the %llu-byte file", (unsigned long long)size);
    /* 5: the digest; only from here on are the header's values trusted */
    dspack__sha256(b, (size_t)header_end, digest);
    if (memcmp(digest, b + header_end, 32))
        return dspack__fail(p, DSPACK_E_HEADER_DIGEST, (int64_t)header_end, -1, "the SHA-256 of the header [0, %llu) differs from the stored digest", (unsigned long long)header_end);
    p->header_digest = b + header_end;
    /* 6 */
    p->data_offset = dspack__u64(b + 40);
    p->data_size = dspack__u64(b + 48);
    flags = dspack__u64(b + 56);
    if (flags) return dspack__fail(p, DSPACK_E_HEADER_INVALID, 56, -1, "flags 0x%llx are not 0", (unsigned long long)flags);
    if (p->data_offset != dspack__align(header_end + 32)) return dspack__fail(p, DSPACK_E_HEADER_INVALID, 40, -1, "data_offset %llu is not align(header_end + 32)", (unsigned long long)p->data_offset);
    if (p->data_size % 4096) return dspack__fail(p, DSPACK_E_HEADER_INVALID, 48, -1, "data_size %llu is not a multiple of 4096", (unsigned long long)p->data_size);
    if (p->data_offset > size || p->data_size > size - p->data_offset)
        return dspack__fail(p, DSPACK_E_TRUNCATED, (int64_t)size, -1, "the data region ends past the end of the %llu-byte file", (unsigned long long)size);
    data_end = p->data_offset + p->data_size;
    /* 7 */
    if (dspack__nonzero(b, header_end + 32, p->data_offset, &first))
        return dspack__fail(p, DSPACK_E_PADDING_NONZERO, (int64_t)first, -1, "byte %llu of the padding after the header digest is not zero", (unsigned long long)first);
    /* 8 */
    meta_start = header_end - meta_size;
    p->metadata = (const char *)b + meta_start;
    p->metadata_size = meta_size;
    if (!dspack__utf8_valid(b + meta_start, (size_t)meta_size) || !dspack__json_object(b + meta_start, (size_t)meta_size))
        return dspack__fail(p, DSPACK_E_METADATA_INVALID, (int64_t)meta_start, -1, "the metadata is not a JSON object");
    /* 9 */
    pool_start = 64 + count * entry_size;
    p->entry_count = count;
    p->entries = (dspack_entry *)calloc(count ? (size_t)count : 1, sizeof(dspack_entry));
    {
        uint64_t slots = 16;
        while (slots < 2 * count) slots <<= 1;
        p->slots_ = (uint32_t *)malloc((size_t)slots * sizeof(uint32_t));
        p->slot_mask_ = slots - 1;
        if (!p->entries || !p->slots_) return dspack__fail(p, DSPACK_E_IO, -1, -1, "out of memory for %llu entries", (unsigned long long)count);
        memset(p->slots_, 0xFF, (size_t)slots * sizeof(uint32_t));
    }
    if (count >= DSPACK_NO_INDEX) return dspack__fail(p, DSPACK_E_ENTRY_INVALID, 16, -1, "%llu entries are more than scale indices can name", (unsigned long long)count);
    previous_end = p->data_offset;
    for (i = 0; i < count; i++) {
        const uint8_t *r = b + 64 + i * entry_size;
        dspack_entry *e = &p->entries[i];
        uint64_t name_off = dspack__u32(r + 24), name_len = dspack__u32(r + 28), elements = 1, bits, d;
        int overflow = 0;
        int64_t at = (int64_t)(64 + i * entry_size);
        e->index = (uint32_t)i;
        e->data_offset = dspack__u64(r);
        e->data_size = dspack__u64(r + 8);
        e->xxh3 = dspack__u64(r + 16);
        e->kind = r[32]; e->dtype = r[33]; e->ndim = r[34]; e->role = r[35];
        e->weight_scale = dspack__u32(r + 36);
        e->input_scale = dspack__u32(r + 40);
        e->layer = (int32_t)dspack__u32(r + 44);
        e->expert = (int32_t)dspack__u32(r + 48);
        if (name_len == 0 || name_off + name_len >= pool_size || b[pool_start + name_off + name_len] != 0 ||
            memchr(b + pool_start + name_off, 0, (size_t)name_len) || !dspack__utf8_valid(b + pool_start + name_off, (size_t)name_len))
            return dspack__fail(p, DSPACK_E_ENTRY_INVALID, at, (int64_t)i, "entry %llu: the name is empty, outside the string pool, not NUL-terminated or not UTF-8", (unsigned long long)i);
        e->name = (const char *)b + pool_start + name_off;
        e->name_length = (uint32_t)name_len;
#define DSPACK__BAD(...) return dspack__fail(p, DSPACK_E_ENTRY_INVALID, at, (int64_t)i, __VA_ARGS__)
        if (e->kind > 1) DSPACK__BAD("entry '%s': kind %u is neither 0 (tensor) nor 1 (file)", e->name, e->kind);
        if (e->dtype >= DSPACK_DTYPE_COUNT) DSPACK__BAD("entry '%s': dtype code %u is reserved", e->name, e->dtype);
        if (e->ndim > 8) DSPACK__BAD("entry '%s': ndim %u is above 8", e->name, e->ndim);
        for (d = 0; d < 8; d++) {
            e->shape[d] = dspack__u64(r + 56 + 8 * d);
            if (d < e->ndim) {
                if (e->shape[d] && elements > UINT64_MAX / e->shape[d]) overflow = 1;
                elements *= e->shape[d];
            } else if (e->shape[d]) DSPACK__BAD("entry '%s': shape[%llu] beyond ndim is not 0", e->name, (unsigned long long)d);
        }
        bits = dspack__dtypes[e->dtype].bits;
        if (overflow || elements > UINT64_MAX / bits || (elements * bits) % 8 || elements * bits / 8 != e->data_size)
            DSPACK__BAD("entry '%s': data_size %llu does not match its shape and dtype %s", e->name, (unsigned long long)e->data_size, dspack__dtypes[e->dtype].name);
        if (dspack__u32(r + 52) || dspack__u64(r + 120)) DSPACK__BAD("entry '%s': flags or reserved bytes are not 0", e->name);
        if (e->kind == DSPACK_KIND_FILE) {
            if (e->dtype != DSPACK_U8 || e->ndim != 1 || e->role != 0 || memchr(e->name, '/', name_len) ||
                !strcmp(e->name, ".") || !strcmp(e->name, ".."))
                DSPACK__BAD("entry '%s': a file entry must be U8 of one dimension, role 0, with a plain file name", e->name);
            saw_file = 1;
        } else if (saw_file) DSPACK__BAD("entry '%s': a tensor after a file entry (tensors come first)", e->name);
        if (e->weight_scale != DSPACK_NO_INDEX && (e->weight_scale >= count || e->weight_scale == i || b[64 + e->weight_scale * entry_size + 32] != 0))
            DSPACK__BAD("entry '%s': weight_scale %u is not another tensor entry", e->name, e->weight_scale);
        if (e->input_scale != DSPACK_NO_INDEX && (e->input_scale >= count || e->input_scale == i || b[64 + e->input_scale * entry_size + 32] != 0))
            DSPACK__BAD("entry '%s': input_scale %u is not another tensor entry", e->name, e->input_scale);
        if (!dspack__insert(p, (uint32_t)i)) DSPACK__BAD("entry '%s': a second %s of this name", e->name, e->kind ? "file" : "tensor");
#undef DSPACK__BAD
        if (e->data_offset % 4096)
            return dspack__fail(p, DSPACK_E_ENTRY_MISALIGNED, at, (int64_t)i, "entry '%s': data offset %llu is not a multiple of 4096", e->name, (unsigned long long)e->data_offset);
        if (e->data_offset < p->data_offset || e->data_offset > data_end || e->data_size > data_end - e->data_offset)
            return dspack__fail(p, DSPACK_E_ENTRY_OUT_OF_BOUNDS, at, (int64_t)i, "entry '%s': data at %llu (%llu bytes) lies outside the data region [%llu, %llu)", e->name,
                                (unsigned long long)e->data_offset, (unsigned long long)e->data_size, (unsigned long long)p->data_offset, (unsigned long long)data_end);
        if (e->data_offset < previous_end)
            return dspack__fail(p, DSPACK_E_ENTRY_OVERLAP, at, (int64_t)i, "entry '%s': data starts at %llu, before the previous entry's aligned end %llu", e->name,
                                (unsigned long long)e->data_offset, (unsigned long long)previous_end);
        previous_end = dspack__align(e->data_offset + e->data_size);
    }
    /* 10 */
    rest = size - data_end;
    p->trailer = NULL;
    if (rest) {
        const uint8_t *t = b + data_end;
        if (rest != 128 || memcmp(t, "DSPKSIG\0", 8) || dspack__u32(t + 8) != 1 || dspack__u32(t + 12) != 128 ||
            dspack__nonzero(t, 112, 128, &first))
            return dspack__fail(p, DSPACK_E_TRAILER_INVALID, (int64_t)data_end, -1, "the %llu bytes after the data region are not a signature trailer", (unsigned long long)rest);
        p->trailer = t;
    }
    return DSPACK_OK;
}

dspack_status dspack_open(dspack *p, const char *path) {
    struct stat st;
    dspack_status s;
    memset(p, 0, sizeof *p);
    p->fd_ = -1;
    p->error_offset = p->error_entry = -1;
#ifdef O_CLOEXEC
    p->fd_ = open(path, O_RDONLY | O_CLOEXEC);
#else
    p->fd_ = open(path, O_RDONLY);
#endif
    if (p->fd_ < 0) return dspack__fail(p, DSPACK_E_IO, -1, -1, "cannot open %s: %s", path, strerror(errno));
    if (fstat(p->fd_, &st) != 0) { s = dspack__fail(p, DSPACK_E_IO, -1, -1, "cannot stat %s: %s", path, strerror(errno)); dspack_close(p); return s; }
    if (!S_ISREG(st.st_mode)) { s = dspack__fail(p, DSPACK_E_IO, -1, -1, "%s is not a regular file", path); dspack_close(p); return s; }
    p->size = (uint64_t)st.st_size;
    if (p->size >= 64) {
        void *m = mmap(NULL, (size_t)p->size, PROT_READ, MAP_SHARED, p->fd_, 0);
        if (m == MAP_FAILED) { p->size = 0; s = dspack__fail(p, DSPACK_E_IO, -1, -1, "cannot map %s: %s", path, strerror(errno)); dspack_close(p); return s; }
        p->base = (const uint8_t *)m;
    }
    s = dspack__check(p);
    if (s != DSPACK_OK) {
        char error[256];
        int64_t off = p->error_offset, entry = p->error_entry;
        memcpy(error, p->error, sizeof error);
        dspack_close(p);
        memset(p, 0, sizeof *p);
        p->fd_ = -1;
        memcpy(p->error, error, sizeof error);
        p->error_offset = off;
        p->error_entry = entry;
    }
    return s;
}

/* ---- verifying ------------------------------------------------------------------------------ */

dspack_status dspack_verify_entry(const dspack *p, const dspack_entry *e) {
    return XXH3_64bits(p->base + e->data_offset, (size_t)e->data_size) == e->xxh3 ? DSPACK_OK : DSPACK_E_CHECKSUM_MISMATCH;
}

dspack_status dspack_verify(const dspack *p, dspack_failure_fn on_failure, void *context) {
    dspack_status result = DSPACK_OK;
    uint64_t cursor = p->data_offset, end = p->data_offset + p->data_size, first, i;
    const dspack_entry *previous = NULL;
#define DSPACK__REPORT(code, entry, offset) do { if (result == DSPACK_OK) result = (code); if (on_failure) on_failure(context, (code), (entry), (offset)); } while (0)
    for (i = 0; i < p->entry_count; i++) {
        const dspack_entry *e = &p->entries[i];
        if (dspack__nonzero(p->base, cursor, e->data_offset, &first)) DSPACK__REPORT(DSPACK_E_PADDING_NONZERO, previous, first);
        if (dspack_verify_entry(p, e) != DSPACK_OK) DSPACK__REPORT(DSPACK_E_CHECKSUM_MISMATCH, e, e->data_offset);
        cursor = e->data_offset + e->data_size;
        previous = e;
    }
    if (dspack__nonzero(p->base, cursor, end, &first)) DSPACK__REPORT(DSPACK_E_PADDING_NONZERO, previous, first);
#undef DSPACK__REPORT
    return result;
}

#ifdef DSPACK_ED25519_OPENSSL
dspack_status dspack_verify_signature(const dspack *p, const uint8_t *trusted_key) {
    uint8_t message[14 + 32];
    EVP_PKEY *key;
    EVP_MD_CTX *md;
    int ok;
    if (!p->trailer) return trusted_key ? DSPACK_E_UNSIGNED : DSPACK_OK;
    if (trusted_key && memcmp(trusted_key, p->trailer + 16, 32)) return DSPACK_E_KEY_MISMATCH;
    memcpy(message, "dspack-sig-v1:", 14);
    memcpy(message + 14, p->header_digest, 32);
    key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p->trailer + 16, 32);
    if (!key) return DSPACK_E_SIGNATURE_INVALID;
    md = EVP_MD_CTX_new();
    ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1 &&
         EVP_DigestVerify(md, p->trailer + 48, 64, message, sizeof message) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return ok ? DSPACK_OK : DSPACK_E_SIGNATURE_INVALID;
}
#endif

#endif /* DSPACK_IMPLEMENTATION_DONE */
#endif /* DSPACK_IMPLEMENTATION */
