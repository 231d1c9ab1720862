#!/usr/bin/env python3
"""Runs the reference scripts of this directory inside one long-lived Python process.

Starting Python with numpy and ml_dtypes costs seconds (importing ml_dtypes alone takes over
two on these machines), and the Swift tests call the references dozens of times. The test
support (Tests/TestSupport/ReferenceServer.swift) starts this server once per test process and
sends it one request per reference call; each request runs the script exactly as
`python3 SCRIPT ARGS...` would (fresh module namespace, `__name__ == "__main__"`, `sys.argv`
set, standard output and error captured, `sys.exit` status returned). Only imported library
modules (numpy, ml_dtypes, safetensors, st_common) are shared between calls.

Protocol, one JSON object per line:
    request  {"script": "/abs/path/quant_reference.py", "args": ["fp8-block", "IN", "OUT"]}
    response {"status": 0, "stdout": "...", "stderr": "..."}
The server exits when its standard input closes.
"""

import io
import json
import os
import runpy
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def run(script, args):
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdout, sys.stderr, list(sys.path)
    sys.argv = [script] + list(args)
    sys.path.insert(0, os.path.dirname(script))
    sys.stdout, sys.stderr = out, err
    status = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code
        else:
            err.write(f"{e.code}\n")
            status = 1
    except BaseException:  # a bug in the script: report it like the interpreter would
        traceback.print_exc(file=err)
        status = 1
    finally:
        sys.argv, sys.stdout, sys.stderr, path = saved
        sys.path[:] = path
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main():
    # The protocol owns the original standard output; anything else that writes to file
    # descriptor 1 (a C extension, a stray print before redirection) goes to standard error.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.path.insert(0, HERE)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            resp = run(req["script"], req.get("args", []))
        except Exception:  # a malformed request: answer it rather than hang the caller
            resp = {"status": 1, "stdout": "", "stderr": traceback.format_exc()}
        protocol.write(json.dumps(resp) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
