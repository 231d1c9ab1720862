"""A reader of .dspack files (Formats/dspack.md, version 1.0), written from the spec alone.

numpy is the only required dependency; torch, ml_dtypes and xxhash are used when installed:

    import dspack
    pack = dspack.open("model.dspack")      # header digest checked before any offset is trusted
    tensors = pack.tensors()                 # name -> numpy array viewing the mapping (no copy)
    tensors = dspack.load("model.dspack")   # same; torch tensors when torch is installed
    pack.verify()                            # every entry's XXH3-64 and every gap (needs `xxhash`)
    pack.file("config.json")                 # embedded side files, bytes (XXH3 checked when possible)

Element types: F8_E4M3 / F8_E5M2 / BF16 come back as ml_dtypes' float8_e4m3fn / float8_e5m2 /
bfloat16 when ml_dtypes is installed, otherwise as raw uint8 / uint16 arrays; `Tensor.dtype_name`
always gives the spec's name. With `as_torch=True` they become torch.float8_e4m3fn,
torch.float8_e5m2 and torch.bfloat16. Sub-byte types (F4, F6_*) and F8_E8M0 / FNUZ types are
returned as raw uint8 bytes.

Errors raise `DSPackError` with `.code` one of the spec's §11 codes, `.entry` the entry's name
when one is at fault and `.offset` the byte offset.
"""
from __future__ import annotations

import builtins
import hashlib
import json
import mmap
import os
import struct

import numpy as np

__all__ = ["DSPackError", "DSPack", "Tensor", "open", "load", "DTYPES"]

MAGIC = b"\x89DSPACK\n"
TRAILER_MAGIC = b"DSPKSIG\x00"
PAGE = 4096
NO_SCALE = 0xFFFFFFFF

# code -> (name, bits)
DTYPES = {
    0: ("BOOL", 8), 1: ("U8", 8), 2: ("I8", 8), 3: ("I16", 16), 4: ("U16", 16),
    5: ("F16", 16), 6: ("BF16", 16), 7: ("I32", 32), 8: ("U32", 32), 9: ("F32", 32),
    10: ("F64", 64), 11: ("I64", 64), 12: ("U64", 64), 13: ("C64", 64),
    14: ("F8_E4M3", 8), 15: ("F8_E5M2", 8), 16: ("F8_E4M3FNUZ", 8), 17: ("F8_E5M2FNUZ", 8),
    18: ("F8_E8M0", 8), 19: ("F6_E2M3", 6), 20: ("F6_E3M2", 6), 21: ("F4", 4),
}

_NUMPY = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": "<i2", "U16": "<u2", "F16": "<f2",
    "I32": "<i4", "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8",
    "C64": "<c8",
}
try:  # optional: exact numpy dtypes for BF16 / FP8
    import ml_dtypes as _ml
    _NUMPY.update({"BF16": _ml.bfloat16, "F8_E4M3": _ml.float8_e4m3fn, "F8_E5M2": _ml.float8_e5m2,
                   "F8_E4M3FNUZ": _ml.float8_e4m3fnuz, "F8_E5M2FNUZ": _ml.float8_e5m2fnuz})
    if hasattr(_ml, "float8_e8m0fnu"):
        _NUMPY["F8_E8M0"] = _ml.float8_e8m0fnu
except ImportError:  # pragma: no cover - depends on the host
    _ml = None
_RAW = {"BF16": "<u2", "F8_E4M3": np.uint8, "F8_E5M2": np.uint8, "F8_E4M3FNUZ": np.uint8,
        "F8_E5M2FNUZ": np.uint8, "F8_E8M0": np.uint8}

_PREAMBLE = struct.Struct("<8sHHIQQQQQQ")   # 64 bytes
_ENTRY = struct.Struct("<QQQIIBBBBIIiiI8QQ")  # 128 bytes


class DSPackError(Exception):
    """A .dspack that is not valid: `.code` is one of Formats/dspack.md §11's codes."""

    def __init__(self, code, message, entry=None, offset=None):
        where = ""
        if entry is not None:
            where += f" (entry {entry!r})"
        if offset is not None:
            where += f" at byte {offset}"
        super().__init__(f"{code}: {message}{where}")
        self.code, self.entry, self.offset = code, entry, offset


class Tensor:
    """One entry of the table (a tensor, kind 0, or an embedded file, kind 1)."""

    __slots__ = ("index", "name", "kind", "dtype_code", "dtype_name", "shape", "data_offset",
                 "data_size", "xxh3", "role", "weight_scale", "input_scale", "layer", "expert")

    def __repr__(self):
        return f"Tensor({self.name!r}, {self.dtype_name}, {list(self.shape)}, offset={self.data_offset})"


def _align(x):
    return (x + PAGE - 1) & ~(PAGE - 1)


class DSPack:
    """An open .dspack: validated header (spec §7.1) over a read-only memory map."""

    def __init__(self, path):
        self.path = os.fspath(path)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self.file_size = os.fstat(fd).st_size
            if self.file_size < 64:
                raise DSPackError("truncated", f"the file is {self.file_size} bytes, shorter than the 64-byte preamble")
            self._mmap = mmap.mmap(fd, self.file_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        self._buf = memoryview(self._mmap)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening, spec §7.1 in its order ------------------------------------------------------
    def _open(self):
        buf, size = self._buf, self.file_size
        (magic, vmaj, vmin, entry_size, entry_count, pool_size, meta_size, data_offset,
         data_size, flags) = _PREAMBLE.unpack_from(buf, 0)
        if magic != MAGIC:
            raise DSPackError("bad_magic", f"magic is {bytes(magic)!r}, not {MAGIC!r}", offset=0)
        if vmaj != 1:
            raise DSPackError("unsupported_version", f"major version {vmaj} (this reader reads 1)", offset=8)
        self.version = (vmaj, vmin)
        if entry_size < 128 or entry_size % 8:
            raise DSPackError("header_size", f"entry_size {entry_size} is not a multiple of 8 of at least 128", offset=12)
        header_end = 64 + entry_count * entry_size + pool_size + meta_size  # Python ints: no overflow
        if header_end >= 1 << 64 or header_end + 32 > size:
            raise DSPackError("header_size", f"the header and digest end at byte {header_end + 32}, past the end of the {size}-byte file")
        digest = hashlib.sha256(buf[:header_end]).digest()
        if digest != bytes(buf[header_end:header_end + 32]):
            raise DSPackError("header_digest", "SHA-256 of the header differs from the stored digest", offset=header_end)
        self.header_digest = digest
        # From here on the header is trusted.
        if flags != 0:
            raise DSPackError("header_invalid", f"flags are {flags:#x}, not 0", offset=56)
        if data_offset != _align(header_end + 32):
            raise DSPackError("header_invalid", f"data_offset {data_offset} is not align(header_end + 32) = {_align(header_end + 32)}", offset=40)
        if data_size % PAGE:
            raise DSPackError("header_invalid", f"data_size {data_size} is not a multiple of 4096", offset=48)
        data_end = data_offset + data_size
        if data_end > size:
            raise DSPackError("truncated", f"the data region ends at byte {data_end}, past the end of the {size}-byte file")
        pad = buf[header_end + 32:data_offset]
        if any(pad):
            first = next(i for i, b in enumerate(pad) if b)
            raise DSPackError("padding_nonzero", "the padding after the header digest is not zero", offset=header_end + 32 + first)
        meta_start = 64 + entry_count * entry_size + pool_size
        try:
            self.metadata = json.loads(bytes(buf[meta_start:header_end]).decode("utf-8"),
                                       object_pairs_hook=_no_duplicates)
        except (ValueError, UnicodeDecodeError) as e:
            raise DSPackError("metadata_invalid", f"the metadata is not JSON: {e}", offset=meta_start) from None
        if not isinstance(self.metadata, dict):
            raise DSPackError("metadata_invalid", "the metadata is not a JSON object", offset=meta_start)
        self.data_offset, self.data_size = data_offset, data_size
        self.entries = self._read_entries(entry_count, entry_size, 64 + entry_count * entry_size, pool_size)
        self._tensors = {e.name: e for e in self.entries if e.kind == 0}
        self._files = {e.name: e for e in self.entries if e.kind == 1}
        self.trailer = self._read_trailer(data_end)

    def _read_entries(self, count, entry_size, pool_start, pool_size):
        buf = self._buf
        pool = bytes(buf[pool_start:pool_start + pool_size])
        entries, seen = [], (set(), set())
        previous_end = self.data_offset
        data_end = self.data_offset + self.data_size
        raw_rows, saw_file = [], False
        for i in range(count):
            row_at = 64 + i * entry_size
            raw_rows.append((row_at, _ENTRY.unpack_from(buf, row_at),
                             bytes(buf[row_at + 128:row_at + entry_size])))
        for i, (row_at, row, extra) in enumerate(raw_rows):
            (off, dsize, xxh, name_off, name_len, kind, dtype, ndim, role, wscale, iscale,
             layer, expert, eflags, *rest) = row
            shape, reserved = rest[:8], rest[8]

            def bad(msg, code="entry_invalid", name=None):
                return DSPackError(code, f"entry {i}: {msg}", entry=name, offset=row_at)

            if name_len == 0 or name_off + name_len + 1 > pool_size:
                raise bad(f"name bytes [{name_off}, {name_off + name_len}] outside the {pool_size}-byte string pool or empty")
            raw_name = pool[name_off:name_off + name_len]
            if b"\x00" in raw_name or pool[name_off + name_len] != 0:
                raise bad("name contains NUL or is not followed by NUL")
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                raise bad("name is not valid UTF-8") from None
            if kind not in (0, 1):
                raise bad(f"kind {kind} is neither 0 (tensor) nor 1 (file)", name=name)
            if dtype not in DTYPES:
                raise bad(f"dtype code {dtype} is reserved", name=name)
            if ndim > 8:
                raise bad(f"ndim {ndim} is above 8", name=name)
            if any(shape[ndim:]):
                raise bad("shape dimensions past ndim are not 0", name=name)
            if eflags != 0 or reserved != 0:
                raise bad("flags or reserved field is not 0", name=name)
            if kind == 1:
                if dtype != 1 or ndim != 1 or shape[0] != dsize or role != 0:
                    raise bad("a file entry must be U8 with ndim 1, shape [data_size] and role 0", name=name)
                if "/" in name or name in (".", ".."):
                    raise bad("file name contains '/' or is '.' or '..'", name=name)
                saw_file = True
            elif saw_file:
                raise bad("a tensor after a file entry (tensors come first)", name=name)
            dname, bits = DTYPES[dtype]
            elements = 1
            for d in shape[:ndim]:
                elements *= d
            if (elements * bits) % 8 or elements * bits // 8 != dsize:
                raise bad(f"data_size {dsize} is not {list(shape[:ndim])} x {bits} bits", name=name)
            for which, idx in (("weight_scale", wscale), ("input_scale", iscale)):
                if idx != NO_SCALE and (idx >= count or idx == i or raw_rows[idx][1][5] != 0):
                    raise bad(f"{which} {idx} is not the index of another tensor entry", name=name)
            names = seen[kind]
            if name in names:
                raise bad(f"duplicate {'tensor' if kind == 0 else 'file'} name", name=name)
            names.add(name)
            if off % PAGE:
                raise bad(f"data offset {off} is not a multiple of 4096", "entry_misaligned", name)
            if off < self.data_offset or off + dsize > data_end:
                raise bad(f"data [{off}, {off + dsize}) lies outside the data region [{self.data_offset}, {data_end})",
                          "entry_out_of_bounds", name)
            if off < previous_end:
                raise bad(f"data offset {off} is before the previous entry's aligned end {previous_end}", "entry_overlap", name)
            previous_end = _align(off + dsize)
            e = Tensor()
            e.index, e.name, e.kind, e.dtype_code, e.dtype_name = i, name, kind, dtype, dname
            e.shape, e.data_offset, e.data_size, e.xxh3, e.role = tuple(shape[:ndim]), off, dsize, xxh, role
            e.weight_scale = None if wscale == NO_SCALE else wscale
            e.input_scale = None if iscale == NO_SCALE else iscale
            e.layer = None if layer == -1 else layer
            e.expert = None if expert == -1 else expert
            entries.append(e)
        return entries

    def _read_trailer(self, data_end):
        rest = self.file_size - data_end
        if rest == 0:
            return None
        if rest != 128:
            raise DSPackError("trailer_invalid", f"{rest} bytes follow the data region; a trailer is exactly 128", offset=data_end)
        t = bytes(self._buf[data_end:data_end + 128])
        magic, algorithm, tsize = struct.unpack_from("<8sII", t, 0)
        if magic != TRAILER_MAGIC or algorithm != 1 or tsize != 128 or any(t[112:128]):
            raise DSPackError("trailer_invalid", "the signature trailer's magic, algorithm, size or reserved bytes are wrong", offset=data_end)
        return {"public_key": t[16:48], "signature": t[48:112]}

    # -- access ---------------------------------------------------------------------------------
    def names(self):
        return list(self._tensors)

    def entry(self, name):
        return self._tensors[name]

    def raw(self, name):
        """The tensor's bytes: a memoryview of the mapping (no copy)."""
        e = self._tensors[name]
        return self._buf[e.data_offset:e.data_offset + e.data_size]

    def array(self, name, raw=False):
        """The tensor as a read-only numpy array viewing the mapping (no copy)."""
        e = self._tensors[name]
        dt = _RAW.get(e.dtype_name) if raw else None
        dt = dt or _NUMPY.get(e.dtype_name) or _RAW.get(e.dtype_name)
        if dt is None:  # sub-byte and unsupported types: raw bytes
            return np.frombuffer(self._mmap, dtype=np.uint8, count=e.data_size, offset=e.data_offset)
        dt = np.dtype(dt)
        a = np.frombuffer(self._mmap, dtype=dt, count=e.data_size // dt.itemsize, offset=e.data_offset)
        return a.reshape(e.shape)

    def torch(self, name):
        """The tensor as a torch tensor sharing the mapping's memory (read-only mapping: do not write)."""
        import torch
        import warnings
        e = self._tensors[name]
        tdt = _torch_dtype(torch, e.dtype_name)
        raw = np.frombuffer(self._mmap, dtype=np.uint8, count=e.data_size, offset=e.data_offset)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns that the buffer is not writable
            t = torch.frombuffer(raw, dtype=torch.uint8) if e.data_size else torch.empty(0, dtype=torch.uint8)
        if tdt is None:
            return t
        return t.view(tdt).reshape(e.shape)

    def tensors(self, as_torch=False):
        return {n: (self.torch(n) if as_torch else self.array(n)) for n in self._tensors}

    def file_names(self):
        return list(self._files)

    def file(self, name):
        """An embedded file's bytes (its XXH3-64 checked when `xxhash` is installed, spec §7)."""
        e = self._files[name]
        data = bytes(self._buf[e.data_offset:e.data_offset + e.data_size])
        h = _xxh3()
        if h is not None and h(data) != e.xxh3:
            raise DSPackError("checksum_mismatch", "the embedded file does not match its XXH3-64", entry=name, offset=e.data_offset)
        return data

    def config(self):
        """The embedded config.json as a dict, or None."""
        name = self.metadata.get("files", {}).get("config")
        return json.loads(self.file(name)) if name in self._files else None

    # -- verification, spec §7.2 ---------------------------------------------------------------
    def verify(self, raise_on_error=True, pubkey=None):
        """Checks every entry's XXH3-64 and that every gap and the tail of the data region are
        zero, then the signature trailer (spec §7.2; see `verify_signature`). Returns the list of
        failures (DSPackError); raises the first when asked and any."""
        h = _xxh3()
        if h is None:
            raise ImportError("verify() needs the `xxhash` package (pip install xxhash)")
        failures = []
        cursor, previous = self.data_offset, None
        for e in self.entries:
            if _nonzero(self._buf, cursor, e.data_offset):
                failures.append(DSPackError("padding_nonzero", f"bytes [{cursor}, {e.data_offset}) after {previous!r} are not zero",
                                            entry=previous, offset=cursor))
            if h(self._buf[e.data_offset:e.data_offset + e.data_size]) != e.xxh3:
                failures.append(DSPackError("checksum_mismatch", "the data does not match its XXH3-64", entry=e.name, offset=e.data_offset))
            cursor, previous = e.data_offset + e.data_size, e.name
        end = self.data_offset + self.data_size
        if _nonzero(self._buf, cursor, end):
            failures.append(DSPackError("padding_nonzero", f"bytes [{cursor}, {end}) after {previous!r} are not zero",
                                        entry=previous, offset=cursor))
        if self.trailer is not None or pubkey is not None:
            if pubkey is not None or _ed25519() is not None:
                e = self.verify_signature(pubkey)
                if e is not None:
                    failures.append(e)
        if failures and raise_on_error:
            raise failures[0]
        return failures

    def verify_signature(self, pubkey=None):
        """The signature checks of spec §7.2, with the `cryptography` package: the trailer's
        Ed25519 signature of b"dspack-sig-v1:" + header digest against the trailer's key
        (`signature_invalid`); given `pubkey` (a PEM public key file, or its raw 32 bytes), that
        the pack is signed (`unsigned`) by that key (`key_mismatch`). Returns the DSPackError or
        None. `verify()` calls it when the pack has a trailer and `cryptography` is installed,
        and always when a `pubkey` is given."""
        ed = _ed25519()
        if ed is None:
            raise ImportError("checking signatures needs the `cryptography` package (pip install cryptography)")
        end = self.data_offset + self.data_size
        trusted = None
        if pubkey is not None:
            if isinstance(pubkey, (bytes, bytearray)) and len(pubkey) == 32:
                trusted = bytes(pubkey)
            else:
                from cryptography.hazmat.primitives import serialization
                with builtins.open(pubkey, "rb") as f:
                    k = serialization.load_pem_public_key(f.read())
                if not isinstance(k, ed.Ed25519PublicKey):
                    raise ValueError(f"{pubkey} is not an Ed25519 public key")
                trusted = k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if self.trailer is None:
            if trusted is None:
                return None
            return DSPackError("unsigned", "the pack has no signature trailer, and a signed pack is required", offset=end)
        key, sig = bytes(self.trailer["public_key"]), bytes(self.trailer["signature"])
        if trusted is not None and key != trusted:
            return DSPackError("key_mismatch", f"signed by public key {key.hex()}, not by the required {trusted.hex()}", offset=end)
        from cryptography.exceptions import InvalidSignature
        try:
            ed.Ed25519PublicKey.from_public_bytes(key).verify(sig, b"dspack-sig-v1:" + self.header_digest)
        except (InvalidSignature, ValueError):
            return DSPackError("signature_invalid", "the Ed25519 signature does not verify against the header digest", offset=end)
        return None

    def close(self):
        try:
            self._buf.release()
            self._mmap.close()
        except (AttributeError, BufferError):
            pass  # arrays still view the mapping; it is unmapped when the last one is gone

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _nonzero(buf, start, end):
    if end <= start:
        return False
    return np.frombuffer(buf[start:end], dtype=np.uint8).any()


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _ed25519():
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        return None
    return ed25519


def _xxh3():
    try:
        import xxhash
    except ImportError:
        return None
    return xxhash.xxh3_64_intdigest


def _torch_dtype(torch, name):
    table = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
             "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32",
             "F32": "float32", "F64": "float64", "I64": "int64", "U64": "uint64",
             "C64": "complex64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
             "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
             "F8_E8M0": "float8_e8m0fnu"}
    return getattr(torch, table.get(name, ""), None) if name in table else None


def open(path):  # noqa: A001 - mirrors the builtin on purpose: dspack.open(path)
    """Opens and validates a pack (spec §7.1)."""
    return DSPack(path)


def load(path, as_torch=None, verify=False):
    """name -> tensor for every tensor of the pack, viewing the mapping without a copy.
    `as_torch`: torch tensors (default: when torch is importable), else numpy arrays."""
    pack = DSPack(path)
    if verify:
        pack.verify()
    if as_torch is None:
        try:
            import torch  # noqa: F401
            as_torch = True
        except ImportError:
            as_torch = False
    return pack.tensors(as_torch=as_torch)
