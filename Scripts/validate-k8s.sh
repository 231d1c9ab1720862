#!/usr/bin/env bash
# Validates the Kubernetes example (docs/kubernetes/*.yaml) against the Kubernetes API
# schemas with the PyPI package kubernetes-validate (installed here if missing), in strict
# mode (unknown fields are errors), for the newest Kubernetes version the package knows and
# for 1.33 (the first release where Job's backoffLimitPerIndex is GA). Then checks what a
# schema cannot: that the pieces of the example agree with each other. Opt-in, like
# Scripts/slurm-e2e.sh.
#
#   Scripts/validate-k8s.sh [FILE.yaml ...]
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
if [ $# -gt 0 ]; then files=("$@"); else files=("$repo"/docs/kubernetes/*.yaml); fi

if ! "$PYTHON" -c "import kubernetes_validate" 2>/dev/null; then
  echo "installing kubernetes-validate" >&2
  "$PYTHON" -m pip install -q --disable-pip-version-check kubernetes-validate >&2
fi
latest=$("$PYTHON" -c "from kubernetes_validate.utils import latest_version; print(latest_version())")
echo "kubernetes-validate $("$PYTHON" -m kubernetes_validate --version)" >&2

status=0
for v in "$latest" 1.33.0; do
  for f in "${files[@]}"; do
    if "$PYTHON" -m kubernetes_validate --strict -k "$v" "$f"; then :; else status=1; fi
  done
done

# The validator must reject a broken manifest, or the checks above prove nothing.
broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
sed 's/^  completionMode: Indexed/  completionMode: Indexed\n  completionz: 8/' "$repo/docs/kubernetes/quantize-indexed-job.yaml" > "$broken"
if "$PYTHON" -m kubernetes_validate --strict --quiet -k "$latest" "$broken" >/dev/null 2>&1; then
  echo "FAIL: kubernetes-validate accepted a Job with an unknown field (completionz)" >&2; status=1
else
  echo "ok: a Job with an unknown field is rejected" >&2
fi

# Consistency of the example itself.
"$PYTHON" - "$repo/docs/kubernetes/quantize-indexed-job.yaml" <<'PY' || status=1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
pvc = by[("PersistentVolumeClaim", "dsconvert-data")]
q = by[("Job", "dsconvert-fp8-quantize")]["spec"]
m = by[("Job", "dsconvert-fp8-merge")]["spec"]
errors = []
def check(ok, what):
    if not ok: errors.append(what)
check("ReadWriteMany" in pvc["spec"]["accessModes"], "the PVC must be ReadWriteMany (pods on several nodes)")
check(q.get("completionMode") == "Indexed", "the quantize Job must be Indexed")
c = q["template"]["spec"]["containers"][0]
env = {e["name"]: e for e in c.get("env", [])}
check(str(q["completions"]) == env["DSCONVERT_JOBS"]["value"], "DSCONVERT_JOBS must equal completions")
check(env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
      == "metadata.annotations['batch.kubernetes.io/job-completion-index']", "JOB_COMPLETION_INDEX source")
args = c["args"]
check(args[:4] == ["quantize", "--fp8", "/data/model", "/data/out"], "quantize arguments")
check(args[args.index("--jobs") + 1] == "$(DSCONVERT_JOBS)", "--jobs must come from DSCONVERT_JOBS")
check(args[args.index("--job-index") + 1] == "$(JOB_COMPLETION_INDEX)", "--job-index must come from JOB_COMPLETION_INDEX")
check(q["template"]["spec"]["restartPolicy"] == "Never", "backoffLimitPerIndex needs restartPolicy Never")
mc = m["template"]["spec"]["containers"][0]
check(mc["command"] + mc["args"] == ["dsconvert", "merge-index", "/data/out"], "merge arguments")
for name, spec in (("quantize", q), ("merge", m)):
    vols = spec["template"]["spec"]["volumes"]
    check([v["persistentVolumeClaim"]["claimName"] for v in vols] == ["dsconvert-data"], f"{name} must mount the PVC")
    mounts = spec["template"]["spec"]["containers"][0]["volumeMounts"]
    check([x["mountPath"] for x in mounts] == ["/data"], f"{name} must mount it at /data")
steps = {d["kind"] + "/" + d["metadata"]["name"]: d["metadata"]["labels"].get("dsconvert.step") for d in docs}
check(steps == {"PersistentVolumeClaim/dsconvert-data": "quantize", "Job/dsconvert-fp8-quantize": "quantize",
                "Job/dsconvert-fp8-merge": "merge"}, f"dsconvert.step labels: {steps}")
for e in errors: print("FAIL:", e, file=sys.stderr)
if not errors: print("ok: the PVC, the Indexed Job and the merge Job agree", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

if [ "$status" = 0 ]; then echo "PASS"; else echo "FAIL"; fi
exit "$status"
