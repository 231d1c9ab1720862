"""Forward hooks on a transformers model (llama, qwen2, deepseek_v3) that report the input of
every linear layer dsconvert's `quantize` quantizes, one report per distinct input tensor and
per sequence of the batch, with the names dsconvert's engine gives them
(Sources/Engine/ActivationObserver.swift):

  model.layers.L.input_layernorm            q_a_proj + kv_a_proj_with_mqa (or q/k/v_proj)
  model.layers.L.self_attn.q_a_layernorm    q_b_proj
  model.layers.L.self_attn.kv_a_layernorm   kv_b_proj
  model.layers.L.self_attn.o_proj           o_proj
  model.layers.L.post_attention_layernorm   gate/up of the dense MLP or the shared experts, and in
                                            "all" mode of every routed expert
  model.layers.L.mlp.down_proj | .mlp.shared_experts.down_proj
  model.layers.L.mlp.experts.E.gate_proj    "routed" mode: gate/up of expert E on its tokens
  model.layers.L.mlp.experts.E.down_proj    silu(gate) * up of expert E

transformers 5 keeps a MoE layer's routed experts fused (`mlp.experts.gate_up_proj` [E, 2I, H],
`down_proj` [E, H, I]); a pre-hook on `mlp.experts` sees the hidden states and the router's
choice, counts the tokens per expert and computes each expert's down_proj input itself from those
weights: for every token ("all", statistics only; the layer's output is untouched) or for its
routed tokens ("routed").
"""
import torch
import torch.nn.functional as F


def _layers(model):
    return model.model.layers


def _is_moe(layer):
    return hasattr(layer.mlp, "experts")


def observed_inputs(model, expert_mode):
    """[(name, consumers)] in the engine's order."""
    out = []
    for l, layer in enumerate(_layers(model)):
        p = f"model.layers.{l}"
        a = layer.self_attn
        if hasattr(a, "kv_a_proj_with_mqa"):
            q = "q_a_proj" if getattr(a, "q_a_proj", None) is not None else "q_proj"
            out.append((p + ".input_layernorm", [f"{p}.self_attn.{q}", f"{p}.self_attn.kv_a_proj_with_mqa"]))
            if getattr(a, "q_a_proj", None) is not None:
                out.append((p + ".self_attn.q_a_layernorm", [p + ".self_attn.q_b_proj"]))
            out.append((p + ".self_attn.kv_a_layernorm", [p + ".self_attn.kv_b_proj"]))
        else:
            out.append((p + ".input_layernorm", [f"{p}.self_attn.{x}" for x in ("q_proj", "k_proj", "v_proj")]))
        out.append((p + ".self_attn.o_proj", [p + ".self_attn.o_proj"]))
        if not _is_moe(layer):
            out.append((p + ".post_attention_layernorm", [p + ".mlp.gate_proj", p + ".mlp.up_proj"]))
            out.append((p + ".mlp.down_proj", [p + ".mlp.down_proj"]))
            continue
        n = layer.mlp.experts.num_experts
        e = p + ".mlp.experts."
        shared = getattr(layer.mlp, "shared_experts", None) is not None
        cons = [p + ".mlp.shared_experts.gate_proj", p + ".mlp.shared_experts.up_proj"] if shared else []
        if expert_mode == "all":
            cons += [c for x in range(n) for c in (f"{e}{x}.gate_proj", f"{e}{x}.up_proj")]
        if cons:
            out.append((p + ".post_attention_layernorm", cons))
        if shared:
            out.append((p + ".mlp.shared_experts.down_proj", [p + ".mlp.shared_experts.down_proj"]))
        for x in range(n):
            if expert_mode == "routed":
                out.append((f"{e}{x}.gate_proj", [f"{e}{x}.gate_proj", f"{e}{x}.up_proj"]))
            out.append((f"{e}{x}.down_proj", [f"{e}{x}.down_proj"]))
    return out


def attach(model, sink, expert_mode="all"):
    """Installs the hooks; returns the handles (call .remove() on each to detach)."""
    assert expert_mode in ("all", "routed")
    handles = []
    state = {"seq": None}

    def per_window(name, x):
        # x: [B, ..., S, width] for a batch of B sequences of S tokens.
        b = x.shape[0]
        rows = x.reshape(b, -1, x.shape[-1])
        for w in range(b):
            sink.observe(name, w, rows[w])

    def output_hook(name, sets_seq=False):
        def hook(module, args, output):
            if sets_seq:
                state["seq"] = output.shape[1]
            per_window(name, output)
        return hook

    def input_hook(name):
        def hook(module, args):
            per_window(name, args[0])
        return hook

    for l, layer in enumerate(_layers(model)):
        p = f"model.layers.{l}"
        a = layer.self_attn
        handles.append(layer.input_layernorm.register_forward_hook(output_hook(p + ".input_layernorm", sets_seq=True)))
        if hasattr(a, "kv_a_proj_with_mqa"):
            if getattr(a, "q_a_layernorm", None) is not None:
                handles.append(a.q_a_layernorm.register_forward_hook(output_hook(p + ".self_attn.q_a_layernorm")))
            handles.append(a.kv_b_proj.register_forward_pre_hook(input_hook(p + ".self_attn.kv_a_layernorm")))
        handles.append(a.o_proj.register_forward_pre_hook(input_hook(p + ".self_attn.o_proj")))
        moe = _is_moe(layer)
        shared = moe and getattr(layer.mlp, "shared_experts", None) is not None
        if not moe or shared or expert_mode == "all":
            handles.append(layer.post_attention_layernorm.register_forward_hook(output_hook(p + ".post_attention_layernorm")))
        if not moe:
            handles.append(layer.mlp.down_proj.register_forward_pre_hook(input_hook(p + ".mlp.down_proj")))
            continue
        if shared:
            handles.append(layer.mlp.shared_experts.down_proj.register_forward_pre_hook(input_hook(p + ".mlp.shared_experts.down_proj")))
        handles.append(layer.mlp.experts.register_forward_pre_hook(_experts_hook(l, layer.mlp.experts, sink, state, expert_mode)))
    return handles


def _experts_hook(l, experts, sink, state, expert_mode):
    e = f"model.layers.{l}.mlp.experts."

    def hidden(x, k):
        gate, up = F.linear(x, experts.gate_up_proj[k]).chunk(2, dim=-1)
        return experts.act_fn(gate) * up

    def hook(module, args):
        h, top_k_index = args[0], args[1]
        seq = state["seq"]
        n_rows = h.shape[0]
        windows = n_rows // seq
        for k in range(experts.num_experts):
            chosen = (top_k_index == k).any(dim=-1)
            for w in range(windows):
                sink.routed(l, k, w, int(chosen[w * seq:(w + 1) * seq].sum()))
            if expert_mode == "all":
                g = hidden(h, k)
                for w in range(windows):
                    sink.observe(f"{e}{k}.down_proj", w, g[w * seq:(w + 1) * seq])
            else:
                rows = torch.nonzero(chosen).reshape(-1)
                if rows.numel() == 0:
                    continue
                x = h[rows]
                g = hidden(x, k)
                win = rows // seq
                for w in torch.unique(win).tolist():
                    sel = win == w
                    sink.observe(f"{e}{k}.gate_proj", w, x[sel])
                    sink.observe(f"{e}{k}.down_proj", w, g[sel])
    return hook
