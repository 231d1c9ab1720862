#!/usr/bin/env python3
"""Python `re` verdicts for a table of patterns and names (the semantics of --ignore / --filter).

usage: regex_reference.py TABLE.json

TABLE.json is {"patterns": [...], "names": [...]}. A pattern "re:X" is applied as
re.match(X, name) (compressed-tensors' reading of an ignore-list entry); any other pattern P as
re.search(P, name). Prints {"results": [{"pattern": P, "error": text} or
{"pattern": P, "matches": [bool per name]}]}.
"""
import json
import re
import sys
import warnings


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        table = json.load(f)
    results = []
    for p in table["patterns"]:
        anchored = p.startswith("re:")
        body = p[3:] if anchored else p
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rx = re.compile(body)
        except re.error as e:
            results.append({"pattern": p, "error": str(e)})
            continue
        test = rx.match if anchored else rx.search
        results.append({"pattern": p, "matches": [test(n) is not None for n in table["names"]]})
    print(json.dumps({"results": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
