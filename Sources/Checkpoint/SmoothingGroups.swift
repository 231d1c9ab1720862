/// The RMSNorms whose output only linear layers read, and those layers: where SmoothQuant can
/// fold its per-channel factors s (norm weight ÷ s, column j of every reader × s_j; Formats/
/// calibration.md, "SmoothQuant"). Derived from the tensor roles, so calibrate (which measures
/// max|W_j| over the readers) and quantize (which folds into them) agree on the readers; a reader
/// left out would make the folded model wrong, so every reader of the norm's output is listed:
///
/// - `input_layernorm`: q/k/v_proj (grouped attention), or q_a_proj (q_proj without the q LoRA)
///   and kv_a_proj_with_mqa (MLA);
/// - `self_attn.q_a_layernorm` (MLA): q_b_proj;
/// - `self_attn.kv_a_layernorm` (MLA): kv_b_proj (the cached latent is then divided by s and
///   kv_b_proj's columns multiplied: absorbed or not, attention computes the same);
/// - `post_attention_layernorm`: gate/up_proj of the dense MLP, or for MoE the router
///   (`mlp.gate`, kept unquantized but still folded), the shared experts' and every routed
///   expert's gate/up_proj.
///
/// o_proj and down_proj read no norm's output (the attention heads, silu(gate)·up): they have
/// nothing to fold into. A layer the engine does not run (DeepSeek's MTP layer) has its groups
/// listed too; calibrate measures none of them, so none is folded.
public enum SmoothingGroups {
    public struct Group: Sendable, Equatable {
        /// The norm module (`model.layers.0.input_layernorm`); its weight is `norm + ".weight"`.
        public var norm: String
        /// The modules reading the norm's output, in checkpoint order (weights `+ ".weight"`).
        public var readers: [String]
    }

    /// Every group of the checkpoint's tensors. `order` lists the tensor names in storage order;
    /// norms and readers are listed in that order.
    public static func groups(roles: [String: TensorRole], order: [String]) -> [Group] {
        var readers: [String: [String]] = [:]
        var norms: [(layer: Int, norm: String)] = []
        for name in order {
            guard let r = roles[name], r.parameter == "weight", let layer = r.layer else { continue }
            let p = "model.layers.\(layer)"
            switch r.kind {
            case .norm:
                if [p + ".input_layernorm", p + ".post_attention_layernorm", p + ".self_attn.q_a_layernorm", p + ".self_attn.kv_a_layernorm"].contains(r.module) {
                    norms.append((layer, r.module))
                }
            case .attention:
                switch r.projection {
                case "q_proj", "k_proj", "v_proj", "q_a_proj", "kv_a_proj_with_mqa": readers[p + ".input_layernorm", default: []].append(r.module)
                case "q_b_proj": readers[p + ".self_attn.q_a_layernorm", default: []].append(r.module)
                case "kv_b_proj": readers[p + ".self_attn.kv_a_layernorm", default: []].append(r.module)
                default: break
                }
            case .mlp, .sharedExpert, .expert:
                if r.projection == "gate_proj" || r.projection == "up_proj" { readers[p + ".post_attention_layernorm", default: []].append(r.module) }
            case .router:
                readers[p + ".post_attention_layernorm", default: []].append(r.module)
            default: break
            }
        }
        return norms.compactMap { n in
            guard let rs = readers[n.norm], !rs.isEmpty else { return nil }
            return Group(norm: n.norm, readers: rs)
        }
    }
}

extension Checkpoint {
    /// The checkpoint's SmoothQuant groups (`SmoothingGroups`).
    public var smoothingGroups: [SmoothingGroups.Group] {
        SmoothingGroups.groups(roles: roles, order: weights.tensorNames)
    }
}
