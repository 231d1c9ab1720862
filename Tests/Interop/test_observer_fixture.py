"""The committed Tests/Fixtures/observed_inputs.json (what EngineTests/ActivationObserverTests
compares the engine's observer with) is what Tests/Reference/observer_fixture.py computes today
with transformers and the hooks of Formats/python/dshist. Regenerate it with that script if this
fails after an intended change."""
import json
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "Tests" / "Reference" / "observer_fixture.py"


def test_committed_observer_fixture_is_current(tmp_path):
    out = tmp_path / "observed_inputs.json"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, capture_output=True)
    now = json.loads(out.read_text())
    committed = json.loads((ROOT / "Tests" / "Fixtures" / "observed_inputs.json").read_text())
    assert now.keys() == committed.keys()
    for sample, modes in committed["samples"].items():
        for mode, c in modes.items():
            n = now["samples"][sample][mode]
            assert n["routed"] == c["routed"], (sample, mode)
            assert [(i["name"], i["consumers"], i["window_index"]) for i in n["inputs"]] == \
                [(i["name"], i["consumers"], i["window_index"]) for i in c["inputs"]], (sample, mode)
            for a, b in zip(n["inputs"], c["inputs"]):
                for wa, wb in zip(a["windows"], b["windows"]):
                    assert wa["rows"] == wb["rows"]
                    for k in ("max", "sum_abs", "sum_sq"):
                        assert abs(wa[k] - wb[k]) <= 1e-6 * max(abs(wb[k]), 1e-30), (sample, mode, a["name"], k)
