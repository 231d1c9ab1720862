"""Runs the Python .dspack reader (Formats/python/dspack) on every vector of
Formats/testdata/manifest.json and prints, per manifest row, what the reader gave:
{"results": [{"file", "stage", "code", "entry"}]} where for stage "open" `code`/`entry` are the
open error (code null when it opened), and when it opened the [code, entry] failures of
verify(pubkey=<the row's pubkey>), which checks the signature trailer too (needs `cryptography`).

usage: dspack_vectors.py TESTDATA_DIR
"""
import json, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Formats", "python"))
import dspack  # noqa: E402

d = sys.argv[1]
manifest = json.load(open(os.path.join(d, "manifest.json")))
results = []
for v in manifest["vectors"]:
    path = os.path.join(d, v["file"])
    r = {"file": v["file"], "stage": v["stage"]}
    try:
        p = dspack.open(path)
    except dspack.DSPackError as e:
        r.update(code=e.code, entry=e.entry)
        results.append(r)
        continue
    r.update(code=None, entry=None)
    pub = os.path.join(d, v["pubkey"]) if v["pubkey"] else None
    r["failures"] = [[e.code, e.entry] for e in p.verify(raise_on_error=False, pubkey=pub)]
    results.append(r)
print(json.dumps({"results": results}))
