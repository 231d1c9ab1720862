"""Independent check of `dsconvert shard` (hf layout): gathers the rank folders back into the
global tensors and compares them byte for byte with the source. numpy, ml_dtypes, safetensors.

usage: shard_gather.py SOURCE_DIR OUT_DIR SPEC.json

SPEC: {"tp": T, "pp": P, "ep": E, "placement": "contiguous" | "round-robin", "keep_mtp": bool,
       "layers": [[...layers of stage 0...], ...]  (hand-written expectation, MTP layers included),
       "block": 128, "format": "safetensors" | "dspack"}

With "format": "dspack" (`shard --format dspack`) each rank folder holds exactly model.dspack,
read with the Python reader of Formats/python/dspack (every checksum verified): rank.json,
config.json and the side files come from its embedded files, the tensors from its entries, and
its metadata.parallel names the plan and the rank as Formats/dspack.md §6 says
(world_size = T*P, rank = stage*T + tp_rank, ep_rank the TP rank with EP > 1, else 0); every
other check below is the same.

Checked, from the files alone (safetensors.numpy.load_file, each folder through its own index):
- OUT holds exactly rank-{r:05d}-of-{n:05d} for r < T*P; each has rank.json, config.json equal to
  the source's, the source's side files byte-identical, and an index naming exactly its files;
- rank.json's coordinates (rank = stage*T + tp_rank, ep_rank) and layers are the expected ones;
  every tensor of decoder layer L sits on the stage holding L, the embedding on stage 0, the final
  norm and lm_head on the last; with EP > 1 routed expert e sits whole on TP rank
  `e // (E/EP)` (contiguous) or `e % EP` (round-robin) only, and rank.json's experts are those;
- the split dimension of every tensor follows the rules written out here (independently of
  Sharding/ShardRules.swift): column-parallel q/k/v/q_b/kv_b/gate/up/embed/lm_head on dim 0,
  row-parallel o/down on dim 1, everything else whole; a block-FP8 weight_scale_inv follows its
  weight on the grid, a per-channel weight_scale follows dim 0 only; EP > 1 experts whole;
- gathering the slices (offset/length along the split dim) covers every element exactly once and
  reproduces every source tensor bit for bit; replicas equal the source; nothing else is written
  and only the MTP layers are missing when not kept.
Prints a JSON summary; exit 1 with the problems listed otherwise.
"""
import json
import os
import re
import sys

import ml_dtypes  # noqa: F401  (registers bfloat16 / float8 dtypes for safetensors.numpy)
import numpy as np
from safetensors.numpy import load_file

# safetensors.numpy names FP8 as np.float8_e4m3fn / np.float8_e5m2, which numpy itself lacks:
# ml_dtypes provides them.
for _n in ("float8_e4m3fn", "float8_e5m2"):
    if not hasattr(np, _n):
        setattr(np, _n, getattr(ml_dtypes, _n))

COLUMN = {"q_proj", "k_proj", "v_proj", "q_b_proj", "kv_b_proj", "gate_proj", "up_proj", "embed_tokens", "lm_head"}
ROW = {"o_proj", "down_proj"}
LAYER = re.compile(r"^model\.layers\.(\d+)\.")
EXPERT = re.compile(r"\.mlp\.experts\.(\d+)\.")

problems = []


def problem(msg):
    if len(problems) < 50:
        problems.append(msg)


def load_dir(d):
    """All tensors of a safetensors folder, through its index when it has one."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        files = sorted(set(wm.values()))
    else:
        wm = None
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    out = {}
    for fn in files:
        for k, v in load_file(os.path.join(d, fn)).items():
            if wm is not None and wm.get(k) != fn:
                problem(f"{d}: index places {k} in {wm.get(k)}, found in {fn}")
            out[k] = v
    if wm is not None and set(wm) != set(out):
        problem(f"{d}: index names {sorted(set(wm) ^ set(out))[:5]} that the files do not hold (or the reverse)")
    on_disk = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    if on_disk != files:
        problem(f"{d}: .safetensors files {on_disk} but the index names {files}")
    return out


class PackRank:
    """One rank of `shard --format dspack`: its folder holds exactly model.dspack."""

    def __init__(self, path):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Formats", "python"))
        import dspack  # noqa: E402  (Formats/python/dspack, the spec's reference reader)
        on_disk = sorted(f for f in os.listdir(path) if not f.startswith("."))
        if on_disk != ["model.dspack"]:
            problem(f"{path}: holds {on_disk}, expected only model.dspack")
        self.pack = dspack.open(os.path.join(path, "model.dspack"))
        self.pack.verify()

    def read(self, name):
        return self.pack.file(name) if name in self.pack.file_names() else None

    def tensors(self):
        return {n: np.array(self.pack.array(n)) for n in self.pack.names()}


class FolderRank:
    """One rank folder of the safetensors layout."""

    def __init__(self, path):
        self.path = path

    def read(self, name):
        p = os.path.join(self.path, name)
        if not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def tensors(self):
        return load_dir(self.path)


def module_and_param(name):
    for suffix in ("weight_scale_inv", "weight_scale", "input_scale", "weight", "bias", "e_score_correction_bias"):
        if name.endswith("." + suffix):
            return name[: -len(suffix) - 1], suffix
    return name, ""


def expected_dim(name, shape, ep, source):
    """The split dim of a tensor by the rules above (None: whole)."""
    module, param = module_and_param(name)
    if ep > 1 and EXPERT.search(name):
        return None
    proj = module.split(".")[-1]
    kind = "column" if proj in COLUMN else "row" if proj in ROW else None
    if kind is None or param in ("input_scale", "e_score_correction_bias"):
        return None
    if param == "weight_scale_inv":
        return 0 if kind == "column" else 1
    if param == "weight_scale":
        if int(np.prod(shape)) == 1:
            return None
        return 0 if kind == "column" else None
    if param == "bias":
        return 0 if kind == "column" else None
    return 0 if kind == "column" else (1 if len(shape) >= 2 else None)


def main(argv):
    src_dir, out_dir, spec_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    tp, pp, ep = spec["tp"], spec["pp"], spec["ep"]
    placement, keep_mtp = spec.get("placement", "contiguous"), spec.get("keep_mtp", False)
    n = tp * pp
    source = load_dir(src_dir)
    with open(os.path.join(src_dir, "config.json")) as f:
        config = json.load(f)
    n_layers = config["num_hidden_layers"]
    n_experts = config.get("n_routed_experts") or 0
    stage_layers = [list(s) for s in spec["layers"]]
    stage_of_layer = {l: s for s, ls in enumerate(stage_layers) for l in ls}
    side = sorted(f for f in os.listdir(src_dir) if not f.startswith(".") and not f.endswith(".safetensors")
                  and f not in ("model.safetensors.index.json", "config.json") and os.path.isfile(os.path.join(src_dir, f)))

    want_dirs = [f"rank-{r:05d}-of-{n:05d}" for r in range(n)]
    got_dirs = sorted(d for d in os.listdir(out_dir) if not d.startswith("."))
    if got_dirs != want_dirs:
        problem(f"{out_dir} holds {got_dirs}, expected {want_dirs}")
        return

    packed = spec.get("format", "safetensors") == "dspack"
    pieces = {}  # global name -> [(rank, dim, offset, length, array)]
    copies = {}  # global name -> number of whole copies
    infos = []
    for r, d in enumerate(want_dirs):
        path = os.path.join(out_dir, d)
        rank = PackRank(path) if packed else FolderRank(path)
        raw = rank.read("rank.json")
        if raw is None:
            problem(f"{d}: no rank.json")
            continue
        info = json.loads(raw)
        infos.append(info)
        s, t = r // tp, r % tp
        if packed:
            par = rank.pack.metadata.get("parallel", {})
            want = {"world_size": n, "rank": r, "tp_size": tp, "tp_rank": t, "pp_size": pp, "pp_rank": s,
                    "ep_size": ep, "ep_rank": t if ep > 1 else 0, "expert_placement": placement}
            for key, v in want.items():
                if par.get(key) != v:
                    problem(f"{d}/model.dspack: metadata.parallel.{key} {par.get(key)}, expected {v}")
        for key, want in (("rank", r), ("tp_rank", t), ("pp_stage", s), ("ep_rank", t if ep > 1 else 0)):
            if info.get(key) != want:
                problem(f"{d}/rank.json: {key} {info.get(key)}, expected {want}")
        if info.get("layers") != stage_layers[s]:
            problem(f"{d}/rank.json: layers {info.get('layers')}, expected {stage_layers[s]}")
        cfg = rank.read("config.json")
        if cfg is None or json.loads(cfg) != config:
            problem(f"{d}/config.json differs from the source's (or is missing)")
        for fn in side:
            with open(os.path.join(src_dir, fn), "rb") as a:
                if a.read() != rank.read(fn):
                    problem(f"{d}/{fn} differs from the source's (or is missing)")
        tensors = rank.tensors()
        listed = info.get("tensors", {})
        if set(listed) != set(tensors):
            problem(f"{d}: rank.json lists {len(listed)} tensors, the files hold {len(tensors)}: {sorted(set(listed) ^ set(tensors))[:5]}")
        experts_seen = set()
        for name, arr in tensors.items():
            e = listed.get(name)
            if e is None:
                continue
            g = e["global"]
            if g != name:
                problem(f"{d}: {name} comes from {g} (hf layout keeps names)")
            if g not in source:
                problem(f"{d}: {name}: no source tensor {g}")
                continue
            src = source[g]
            if arr.dtype != src.dtype:
                problem(f"{d}: {name} is {arr.dtype}, source {src.dtype}")
            m = LAYER.match(g)
            layer = int(m.group(1)) if m else None
            if layer is not None:
                if layer >= n_layers and not keep_mtp:
                    problem(f"{d}: {g} is an MTP tensor, written without --keep-mtp")
                want_stage = pp - 1 if layer >= n_layers else stage_of_layer.get(layer)
            elif "embed_tokens" in g:
                want_stage = 0
            else:
                want_stage = pp - 1
            if want_stage != s:
                problem(f"{d}: {g} is on stage {s}, expected stage {want_stage}")
            em = EXPERT.search(g)
            if em:
                x = int(em.group(1))
                experts_seen.add(x)
                if ep > 1:
                    owner = x // (n_experts // ep) if placement == "contiguous" else x % ep
                    if owner != t:
                        problem(f"{d}: expert {x} ({g}) on TP rank {t}, expected {owner} ({placement})")
            dim = expected_dim(g, src.shape, ep, source)
            if e["split_dim"] != dim:
                problem(f"{d}: {g} split_dim {e['split_dim']}, expected {dim}")
                continue
            if dim is None:
                if arr.shape != src.shape or arr.tobytes() != src.tobytes():
                    problem(f"{d}: replica {g} differs from the source")
                copies[g] = copies.get(g, 0) + 1
                continue
            want_shape = list(src.shape)
            want_shape[dim] = e["length"]
            if list(arr.shape) != want_shape:
                problem(f"{d}: {g} shape {list(arr.shape)}, expected {want_shape}")
                continue
            pieces.setdefault(g, []).append((r, dim, e["offset"], e["length"], arr))
        if sorted(experts_seen) != info.get("experts"):
            problem(f"{d}/rank.json: experts {info.get('experts')}, its tensors hold {sorted(experts_seen)}")

    # Gather the split tensors and compare; count every source tensor's holders.
    held = set()
    for info in infos:
        held |= {e["global"] for e in info["tensors"].values()}
    for g, ps in pieces.items():
        src = source[g]
        dim = ps[0][1]
        cover = np.zeros(src.shape[dim], dtype=np.int64)
        full = np.zeros_like(src)
        for (_, _, off, length, arr) in ps:
            cover[off:off + length] += 1
            idx = [slice(None)] * src.ndim
            idx[dim] = slice(off, off + length)
            full[tuple(idx)] = arr
        if not (cover == 1).all():
            problem(f"{g}: slices cover dim {dim} {cover.min()}..{cover.max()} times, not exactly once")
        elif full.tobytes() != src.tobytes():
            problem(f"{g}: the gathered slices differ from the source")
        if len(ps) != tp:
            problem(f"{g}: {len(ps)} slices, expected {tp}")
    for g, c in copies.items():
        want = 1 if (ep > 1 and EXPERT.search(g)) else tp
        if c != want:
            problem(f"{g}: {c} whole copies, expected {want}")
    for g in source:
        m = LAYER.match(g)
        mtp = m is not None and int(m.group(1)) >= n_layers
        if g not in held and not (mtp and not keep_mtp):
            problem(f"{g}: held by no rank")
    print(json.dumps({"ranks": n, "source_tensors": len(source), "gathered": len(pieces), "held": len(held)}))


if __name__ == "__main__":
    main(sys.argv[1:])
    if problems:
        sys.stderr.write("\n".join(problems) + "\n")
        sys.exit(1)
