#!/usr/bin/env python3
"""Writes the .dspack test vectors of Formats/dspack.md §12 into this directory (or OUT_DIR).

usage: make_vectors.py [OUT_DIR]

The valid pack is written here from the spec alone (struct, hashlib's SHA-256, xxhash's XXH3-64),
not by dsconvert, so that every reader tested against it is checked against a second writer.
Each corrupted variant changes one thing, and the code a reader MUST give for it is written below
by hand from §7.1 / §7.2 (never taken from a reader's output). The signed variants are signed
with `openssl pkeyutl -sign -rawin` (OpenSSL 3, Ed25519) and the keys in this directory, which are
test keys, published on purpose: never trust them.

Outputs: the .dspack files, manifest.json (file, stage, code, entry for every vector) and
README.md. The script is deterministic (Ed25519 signatures are too), so its output equals the
committed files byte for byte; DSPackVectorTests checks that.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else HERE
PAGE = 4096
NO = 0xFFFFFFFF
PREAMBLE = struct.Struct("<8sHHIQQQQQQ")
ENTRY = struct.Struct("<QQQIIBBBBIIiiI8QQ")


def align(x):
    return (x + PAGE - 1) // PAGE * PAGE


def bf16(*xs):
    return b"".join(struct.pack("<f", x)[2:] for x in xs)  # exact: every value is a bfloat16


# (name, dtype code, shape, role, data). Roles §4: 1 embedding, 4 attention, 12 scale, 13 buffer.
TENSORS = [
    ("model.embed_tokens.weight", 6, [2, 3], 1, bf16(1.0, -2.0, 0.5, 0.0, -0.25, 3.0)),
    # E4M3FN: 0x38 = 1.0, 0xB8 = -1.0, 0x40 = 2.0, 0x30 = 0.5, 0x7E = 448, 0x01 = 2^-9, 0x00, 0x80 = -0
    ("model.layers.0.self_attn.q_proj.weight", 14, [2, 4], 4, bytes([0x38, 0xB8, 0x40, 0x30, 0x7E, 0x01, 0x00, 0x80])),
    ("model.layers.0.self_attn.q_proj.weight_scale_inv", 9, [1, 1], 12, struct.pack("<f", 0.125)),
    ("step", 11, [], 13, struct.pack("<q", -7)),
    ("empty", 5, [0, 4], 0, b""),
    ("nibbles", 21, [4], 0, bytes([0x21, 0x43])),  # F4: four elements, two per byte, low bits first
]
FILES = [
    ("config.json", b'{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16"}\n'),
    ("generation_config.json", b'{"bos_token_id": 1, "eos_token_id": 2}\n'),
]
METADATA = {
    "writer": "Formats/testdata/make_vectors.py",
    "architecture": "llama",
    "model_dtype": "bfloat16",
    "quantization": {"method": "fp8", "config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                                  "weight_block_size": [128, 128]}},
    "parallel": {"world_size": 1, "rank": 0, "tp_size": 1, "tp_rank": 0, "pp_size": 1, "pp_rank": 0, "ep_size": 1, "ep_rank": 0},
    "files": {"config": "config.json", "generation_config": "generation_config.json"},
    "source": {"format": "safetensors", "index": False, "index_metadata": None,
               "shards": [{"name": "model.safetensors", "tensors": len(TENSORS), "metadata": {"format": "pt"}}]},
}


class Pack:
    """The valid pack, as its parts, so that variants can change one value and re-serialize."""

    def __init__(self):
        self.metadata = json.dumps(METADATA, separators=(",", ":")).encode()
        self.pool = b"".join(n.encode() + b"\0" for n, *_ in TENSORS) + b"".join(n.encode() + b"\0" for n, _ in FILES)
        names = [t[0] for t in TENSORS]
        header_end = 64 + (len(TENSORS) + len(FILES)) * 128 + len(self.pool) + len(self.metadata)
        self.data_offset = align(header_end + 32)
        at, name_at, self.rows, self.blobs = self.data_offset, 0, [], []
        for name, dtype, shape, role, data in TENSORS:
            ws = NO
            if name.endswith(".weight") and name + "_scale_inv" in names:
                ws = names.index(name + "_scale_inv")
            parts = name.split(".")
            layer = int(parts[parts.index("layers") + 1]) if "layers" in parts else -1
            self.rows.append(dict(off=at, size=len(data), xxh=xxhash.xxh3_64_intdigest(data), name_off=name_at,
                                  name_len=len(name.encode()), kind=0, dtype=dtype, ndim=len(shape), role=role,
                                  ws=ws, isc=NO, layer=layer, expert=-1, flags=0, shape=shape, reserved=0))
            self.blobs.append((at, data))
            name_at += len(name.encode()) + 1
            at = align(at + len(data))
        for name, data in FILES:
            self.rows.append(dict(off=at, size=len(data), xxh=xxhash.xxh3_64_intdigest(data), name_off=name_at,
                                  name_len=len(name.encode()), kind=1, dtype=1, ndim=1, role=0, ws=NO, isc=NO,
                                  layer=-1, expert=-1, flags=0, shape=[len(data)], reserved=0))
            self.blobs.append((at, data))
            name_at += len(name.encode()) + 1
            at = align(at + len(data))
        self.data_size = at - self.data_offset
        self.version = (1, 0)
        self.flags = 0

    def header(self):
        h = PREAMBLE.pack(b"\x89DSPACK\n", self.version[0], self.version[1], 128, len(self.rows), len(self.pool),
                          len(self.metadata), self.data_offset, self.data_size, self.flags)
        for r in self.rows:
            shape = list(r["shape"]) + [0] * (8 - len(r["shape"]))
            h += ENTRY.pack(r["off"], r["size"], r["xxh"], r["name_off"], r["name_len"], r["kind"], r["dtype"], r["ndim"],
                            r["role"], r["ws"], r["isc"], r["layer"], r["expert"], r["flags"], *shape, r["reserved"])
        return h + self.pool + self.metadata

    def bytes(self):
        h = self.header()
        out = bytearray(h + hashlib.sha256(h).digest())
        out += bytes(self.data_offset + self.data_size - len(out))
        for at, data in self.blobs:
            out[at:at + len(data)] = data
        return out


def header_end(b):
    _, _, _, esize, count, pool, meta = struct.unpack_from("<8sHHIQQQ", b, 0)
    return 64 + count * esize + pool + meta


def redigest(b):
    """Recomputes the digest after a header edit, so that the checks after step 5 are reached."""
    h = header_end(b)
    b[h:h + 32] = hashlib.sha256(bytes(b[:h])).digest()
    return b


def sign(b, key):
    """Appends the §2.7 trailer: Ed25519 over b"dspack-sig-v1:" + the header digest."""
    h = header_end(b)
    message = b"dspack-sig-v1:" + bytes(b[h:h + 32])
    with tempfile.TemporaryDirectory() as t:
        m = os.path.join(t, "message")
        with open(m, "wb") as f:
            f.write(message)
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", m],
                             check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    assert len(sig) == 64 and len(der) == 44, (len(sig), len(der))
    return b + b"DSPKSIG\0" + struct.pack("<II", 1, 128) + der[-32:] + sig + bytes(16)


vectors = []  # (file, bytes, stage, code, entry, description, pubkey)


def add(name, data, stage, code, description, entry=None, pubkey=None):
    vectors.append((name, bytes(data), stage, code, entry, description, pubkey))


def variant(edit):
    p = Pack()
    edit(p)
    return p.bytes()


def patch(b, at, fmt, value):
    b = bytearray(b)
    struct.pack_into(fmt, b, at, value)
    return b


good = Pack().bytes()
he = header_end(good)
doff = Pack().data_offset
rows = Pack().rows
row = lambda i: 64 + 128 * i  # noqa: E731
embed, q, scale, step, empty, nibbles, config, gen = range(8)
key = os.path.join(HERE, "test-key.pem")
other = os.path.join(HERE, "other-key.pem")
signed = sign(good, key)

add("valid.dspack", good, "verify", None, "a valid pack: six tensors (BF16, F8_E4M3 with its F32 scale, an I64 scalar, an empty F16 [0, 4], F4) and two embedded files")
add("signed.dspack", signed, "verify", None, "valid.dspack signed with test-key.pem (test-key.pub); verifies with --pubkey test-key.pub", pubkey="test-key.pub")

# §7.1, in the order of its steps.
add("empty.dspack", b"", "open", "truncated", "0 bytes (step 1)")
add("short.dspack", good[:40], "open", "truncated", "the first 40 bytes: shorter than the preamble (step 1)")
add("bad-magic.dspack", patch(good, 1, "<B", ord("d")), "open", "bad_magic", "magic byte 1 'D' changed to 'd' (step 2)")
add("text-mode.dspack", good[:7] + b"\r" + good[7:], "open", "bad_magic", "the magic's line feed turned into CR LF, as a text-mode copy does (step 2)")
add("version-2.dspack", patch(good, 8, "<H", 2), "open", "unsupported_version", "version_major 2 (step 3)")
add("entry-size-100.dspack", patch(good, 12, "<I", 100), "open", "header_size", "entry_size 100, below 128 (step 4)")
add("metadata-size-huge.dspack", patch(good, 32, "<Q", 1 << 40), "open", "header_size", "metadata_size 2^40: the header reaches past the file (step 4)")
add("metadata-size-overflow.dspack", patch(good, 32, "<Q", (1 << 64) - 1), "open", "header_size", "metadata_size 2^64 - 1: header_end overflows 64 bits (step 4)")
add("entry-count-minus-one.dspack", patch(good, 16, "<Q", len(rows) - 1), "open", "header_digest", "entry_count one less: the digest is looked for elsewhere (step 5)")
add("header-flip.dspack", patch(good, row(q) + 20, "<B", good[row(q) + 20] ^ 0x01), "open", "header_digest", "one bit of an entry's XXH3-64 in the table flipped (step 5)")
add("metadata-flip.dspack", patch(good, he - 2, "<B", good[he - 2] ^ 0x20), "open", "header_digest", "one bit of the metadata flipped (step 5)")
add("digest-flip.dspack", patch(good, he + 31, "<B", good[he + 31] ^ 0x80), "open", "header_digest", "one bit of the stored digest flipped (step 5)")
add("flags-set.dspack", redigest(patch(good, 56, "<Q", 1)), "open", "header_invalid", "preamble flags 1, digest rewritten (step 6)")
add("data-offset-wrong.dspack", redigest(patch(good, 40, "<Q", doff + PAGE)), "open", "header_invalid", "data_offset one page too far, digest rewritten (step 6)")
add("data-size-odd.dspack", redigest(patch(good, 48, "<Q", Pack().data_size - 8)), "open", "header_invalid", "data_size not a multiple of 4096, digest rewritten (step 6)")
add("truncated-data.dspack", good[:-PAGE], "open", "truncated", "the last page of the data region cut off (step 6)")
add("padding-nonzero.dspack", patch(good, he + 40, "<B", 1), "open", "padding_nonzero", "a byte of the padding after the digest set (step 7)")
add("metadata-array.dspack", variant(lambda p: setattr(p, "metadata", json.dumps([METADATA], separators=(",", ":")).encode())), "open", "metadata_invalid",
    "the metadata is a JSON array, not an object (step 8)")
add("metadata-not-json.dspack", variant(lambda p: setattr(p, "metadata", p.metadata[:-1] + b",")), "open", "metadata_invalid",
    "the metadata's closing brace replaced by a comma (step 8)")


def row_edit(i, **kw):
    def e(p):
        p.rows[i].update(kw)
    return e


add("dtype-reserved.dspack", variant(row_edit(step, dtype=22)), "open", "entry_invalid", "the scalar's dtype code 22, reserved (step 9)", entry="step")
add("size-mismatch.dspack", variant(row_edit(embed, size=10)), "open", "entry_invalid", "BF16 [2, 3] with data_size 10, not 12 (step 9)", entry="model.embed_tokens.weight")
add("ndim-9.dspack", variant(row_edit(nibbles, ndim=9)), "open", "entry_invalid", "ndim 9 (step 9)", entry="nibbles")
add("shape-past-ndim.dspack", variant(row_edit(step, shape=[0, 5])), "open", "entry_invalid",
    "the scalar has ndim 0 but shape[1] = 5 (step 9)", entry="step")
add("kind-2.dspack", variant(row_edit(empty, kind=2)), "open", "entry_invalid", "kind 2 (step 9)", entry="empty")
add("entry-flags.dspack", variant(row_edit(embed, flags=4)), "open", "entry_invalid", "an entry's flags 4 (step 9)", entry="model.embed_tokens.weight")
add("duplicate-name.dspack", variant(row_edit(step, name_off=rows[nibbles]["name_off"], name_len=rows[nibbles]["name_len"], dtype=21, shape=[16])),
    "open", "entry_invalid", "the scalar renamed 'nibbles' (F4 [16], 8 bytes): two tensors of one name (step 9)", entry="nibbles")
add("name-not-utf8.dspack", variant(lambda p: setattr(p, "pool", p.pool.replace(b"step", b"st\xffp"))), "open", "entry_invalid",
    "a name with the byte 0xFF: not UTF-8 (step 9)")
add("name-unterminated.dspack", variant(row_edit(step, name_len=rows[step]["name_len"] + 1)), "open", "entry_invalid",
    "a name that runs over its NUL (step 9)")
add("scale-is-file.dspack", variant(row_edit(q, ws=config)), "open", "entry_invalid",
    "weight_scale points at the config.json file entry (step 9)", entry="model.layers.0.self_attn.q_proj.weight")
add("scale-is-self.dspack", variant(row_edit(q, ws=q)), "open", "entry_invalid", "weight_scale points at the entry itself (step 9)",
    entry="model.layers.0.self_attn.q_proj.weight")
add("file-with-slash.dspack", variant(lambda p: setattr(p, "pool", p.pool.replace(b"generation_config.json", b"generation/config.json"))),
    "open", "entry_invalid", "an embedded file named 'generation/config.json' (step 9)", entry="generation/config.json")
add("tensor-after-file.dspack", variant(lambda p: p.rows.__setitem__(gen, dict(p.rows[gen], kind=0))), "open", "entry_invalid",
    "the last file entry turned into a tensor: a tensor after a file (step 9)", entry="generation_config.json")
add("misaligned.dspack", variant(row_edit(q, off=rows[q]["off"] + 64)), "open", "entry_misaligned",
    "the FP8 weight's data offset 64 bytes past its page (step 9)", entry="model.layers.0.self_attn.q_proj.weight")
add("out-of-bounds.dspack", variant(row_edit(gen, off=doff + Pack().data_size)), "open", "entry_out_of_bounds",
    "the last file's data at the end of the data region (step 9)", entry="generation_config.json")
add("offset-huge.dspack", variant(row_edit(embed, off=1 << 62)), "open", "entry_out_of_bounds",
    "a data offset of 2^62 (step 9)", entry="model.embed_tokens.weight")
add("overlap.dspack", variant(row_edit(scale, off=rows[q]["off"])), "open", "entry_overlap",
    "the scale's data offset equal to the weight's before it (step 9)", entry="model.layers.0.self_attn.q_proj.weight_scale_inv")
add("appended-byte.dspack", good + b"\0", "open", "trailer_invalid", "one zero byte after the data region (step 10)")
add("trailer-algorithm-2.dspack", patch(signed, len(good) + 8, "<I", 2), "open", "trailer_invalid", "signed.dspack with trailer algorithm 2 (step 10)")
add("trailer-reserved.dspack", patch(signed, len(good) + 127, "<B", 1), "open", "trailer_invalid", "signed.dspack with a reserved trailer byte set (step 10)")

# §7.2: these open, and verify names the entry.
add("tensor-flip.dspack", patch(good, rows[q]["off"] + 3, "<B", good[rows[q]["off"] + 3] ^ 0x04), "verify", "checksum_mismatch",
    "one bit of the FP8 weight's data flipped", entry="model.layers.0.self_attn.q_proj.weight")
add("file-flip.dspack", patch(good, rows[config]["off"] + 5, "<B", good[rows[config]["off"] + 5] ^ 0x01), "verify", "checksum_mismatch",
    "one bit of the embedded config.json flipped", entry="config.json")
add("gap-nonzero.dspack", patch(good, rows[embed]["off"] + 100, "<B", 0x5A), "verify", "padding_nonzero",
    "a byte in the zero gap after the BF16 tensor set", entry="model.embed_tokens.weight")
add("tail-nonzero.dspack", patch(good, len(good) - 1, "<B", 1), "verify", "padding_nonzero",
    "the last byte of the data region (after the last entry) set", entry="generation_config.json")
add("signed-tensor-flip.dspack", patch(signed, rows[embed]["off"], "<B", signed[rows[embed]["off"]] ^ 0x01), "verify", "checksum_mismatch",
    "signed.dspack with one bit of a tensor flipped (the signature still verifies: it covers the header)", entry="model.embed_tokens.weight")

# §7.2 signatures: the trailer's signature, and the key a deployment trusts.
add("signed-bad-signature.dspack", patch(signed, len(good) + 48 + 10, "<B", signed[len(good) + 58] ^ 0x01), "signature", "signature_invalid",
    "signed.dspack with one bit of the signature flipped")
add("signed-bad-key.dspack", patch(signed, len(good) + 16, "<B", signed[len(good) + 16] ^ 0x01), "signature", "signature_invalid",
    "signed.dspack with one bit of the trailer's public key flipped")
add("signed-other-key.dspack", sign(good, other), "signature", "key_mismatch",
    "valid.dspack signed with other-key.pem: a good signature, but not by test-key.pub", pubkey="test-key.pub")
add("valid.dspack", good, "signature", "unsigned", "valid.dspack required to be signed by test-key.pub", pubkey="test-key.pub")

os.makedirs(OUT, exist_ok=True)
manifest = []
seen = {}
for name, data, stage, code, entry, description, pubkey in vectors:
    if name in seen:
        assert seen[name] == data, name
    else:
        seen[name] = data
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    manifest.append({"file": name, "stage": stage, "code": code, "entry": entry, "pubkey": pubkey, "bytes": len(data),
                     "description": description})
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"spec": "Formats/dspack.md 1.0", "vectors": manifest}, f, indent=1)
    f.write("\n")

readme = ["# .dspack test vectors", "",
          "Written by [`make_vectors.py`](make_vectors.py) (`python3 Formats/testdata/make_vectors.py`; needs `xxhash` and",
          "the `openssl` command), from [`../dspack.md`](../dspack.md) alone: the valid pack is not written by dsconvert.",
          "[`manifest.json`](manifest.json) lists every vector with the code a reader MUST give (spec §11), by stage:", "",
          "- `open`: opening (§7.1) MUST fail with `code`; `entry` is the entry at fault when there is one.",
          "- `verify`: the file opens; verifying (§7.2) MUST report exactly one failure, `code` naming `entry` (for a",
          "  non-zero gap, the entry before it); `code: null` means verify passes.",
          "- `signature`: the file opens, and verifying it with its signature (against the trusted key `pubkey` when",
          "  given) MUST report exactly `code`. Readers that do not check signatures skip this stage.",
          "  `verify` rows with a `pubkey` are verified against that key too.", "",
          "`test-key.pem` / `other-key.pem` are Ed25519 test keys made with `openssl genpkey -algorithm ed25519` and",
          "published on purpose; `test-key.pub` is test-key's public key. Never trust them.", "",
          "Checked by `swift test` (DSPackVectorTests): the Swift reader, the Python reader and the C reader each give",
          "every code of the manifest, and re-running this script reproduces every file byte for byte.", "",
          "| file | bytes | stage | code | entry | what changed |", "|---|---|---|---|---|---|"]
for m in manifest:
    readme.append(f"| `{m['file']}` | {m['bytes']} | {m['stage']}{' (`--pubkey ' + m['pubkey'] + '`)' if m['pubkey'] else ''} | "
                  f"{'`' + m['code'] + '`' if m['code'] else 'passes'} | {('`' + m['entry'] + '`') if m['entry'] else ''} | {m['description']} |")
with open(os.path.join(OUT, "README.md"), "w") as f:
    f.write("\n".join(readme) + "\n")
print(f"{len(seen)} files, {sum(len(d) for d in seen.values())} bytes, {len(manifest)} manifest rows in {OUT}")
