import JSON
import SafeTensors

/// Checks config.json against the tensors it describes, so that a config that contradicts the
/// weights (and would make transformers or a serving engine build a different model, or fail
/// deep inside loading) is refused before anything is converted.
///
/// What is checked, for the architectures dsconvert knows (each finding names the key, its value
/// and a tensor that disagrees):
/// - size keys (`hidden_size`, `num_hidden_layers`, head counts and dims, `vocab_size`,
///   intermediate sizes, expert counts, LoRA ranks, `num_nextn_predict_layers`, …) are integers,
///   positive where a zero makes no model (`q_lora_rank` may be null: DeepSeek without q LoRA);
/// - `torch_dtype` / `dtype` name a float dtype (bfloat16, float16, float32);
/// - `hidden_size` is the width of every `input_layernorm`, `post_attention_layernorm`,
///   `model.norm` and of the token embedding(s) and `lm_head` (`q_a_layernorm` / `kv_a_layernorm`
///   have the LoRA ranks' widths: `q_lora_rank`, `kv_lora_rank`);
/// - `vocab_size` is the number of embedding and `lm_head` rows;
/// - `intermediate_size` is the dense MLP width, `moe_intermediate_size` the routed experts';
/// - the attention projections have the heads' sizes: q/o = num_attention_heads × head_dim
///   (hidden_size / heads without head_dim), k/v = num_key_value_heads × head_dim; DeepSeek's MLA
///   q_a = q_lora_rank, q_b = heads × (qk_nope + qk_rope), kv_a_proj_with_mqa = kv_lora_rank +
///   qk_rope, kv_b = heads × (qk_nope + v_head), o_proj columns = heads × v_head;
/// - the MoE router has n_routed_experts rows (and its bias n_routed_experts values);
/// - `num_hidden_layers` is the number of stored decoder layers, 0 ..< num_hidden_layers
///   (DeepSeek-V3 also stores its multi-token-prediction layers, recognised by their enorm /
///   hnorm / eh_proj, at indices num_hidden_layers ..< num_hidden_layers +
///   num_nextn_predict_layers; a checkpoint without them is accepted);
/// - `n_routed_experts` is the number of experts stored in every MoE layer;
/// - `model_type` matches the tensor names: qwen2 has q/k/v biases, llama has none unless
///   `attention_bias` is true, deepseek_v3 has MLA's `kv_a_proj_with_mqa`;
/// - `tie_word_embeddings` false (also the default of all three architectures) needs an `lm_head`.
extension Checkpoint {
    /// Every disagreement between config.json and the tensors (empty without a config or a
    /// known architecture).
    public func configProblems() -> [CheckpointError] {
        guard let config, let architecture else { return [] }
        return ConfigValidator(config: config, architecture: architecture, checkpoint: self).problems()
    }

    /// Throws the first disagreement between config.json and the tensors.
    public func validateConfig() throws {
        if let first = configProblems().first { throw first }
    }
}

struct ConfigValidator {
    let config: ModelConfig
    let architecture: Architecture
    let checkpoint: Checkpoint

    /// Size keys: must be integers; `positive` ones above zero.
    static let positiveKeys = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                               "vocab_size", "intermediate_size", "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok",
                               "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "q_lora_rank", "n_group", "topk_group"]
    static let nonNegativeKeys = ["num_nextn_predict_layers", "first_k_dense_replace", "n_shared_experts"]

    func problems() -> [CheckpointError] {
        var out: [CheckpointError] = []
        let path = config.path
        func mismatch(_ key: String, _ tensor: String?, _ why: String) {
            out.append(.configMismatch(path: path, key: key, value: config.json[key].map(JSONWriter.compact) ?? "(absent)", tensor: tensor, why))
        }
        // 1. Types and ranges of the size keys.
        var bad = Set<String>()
        for key in Self.positiveKeys + Self.nonNegativeKeys {
            guard let v = config.json[key], v != .null else { continue }
            let minimum = Self.positiveKeys.contains(key) ? 1 : 0
            guard let i = v.intValue else {
                mismatch(key, nil, "must be an integer")
                bad.insert(key)
                continue
            }
            if i < minimum {
                mismatch(key, nil, minimum == 1 ? "must be a positive integer" : "must not be negative")
                bad.insert(key)
            }
        }
        for key in ["torch_dtype", "dtype"] {
            guard let v = config.json[key], v != .null else { continue }
            guard let name = v.stringValue, let d = DType(torchName: name), [.bf16, .f16, .f32].contains(d) else {
                mismatch(key, nil, "is not a model dtype dsconvert reads (bfloat16, float16, float32)")
                continue
            }
        }
        func size(_ key: String) -> Int? { bad.contains(key) ? nil : config.int(key) }

        // 2. Widths and counts implied by the layout.
        let w = checkpoint.weights
        let hidden = size("hidden_size"), vocab = size("vocab_size")
        let inter = size("intermediate_size"), moeInter = size("moe_intermediate_size")
        let qLora = size("q_lora_rank"), kvLora = size("kv_lora_rank")
        var layers = Set<Int>()
        var expertsByLayer: [Int: Set<Int>] = [:]
        var firstExpertTensor: [Int: String] = [:]
        var hasLMHead = false
        var biases: [String] = []
        var attentionModules: [Int: Set<String>] = [:]
        var mtpLayers = Set<Int>()
        let heads = size("num_attention_heads"), kvHeads = size("num_key_value_heads")
        let headDim = size("head_dim") ?? (hidden != nil && heads != nil && hidden! % heads! == 0 ? hidden! / heads! : nil)
        let nope = size("qk_nope_head_dim"), rope = size("qk_rope_head_dim"), vHead = size("v_head_dim")
        /// The config key, size, dimension and formula an attention projection's shape must match.
        func attentionShape(_ p: String) -> (String, Int, Int, String)? {
            switch (architecture, p) {
            case (.deepseekV3, "q_a_proj"): return qLora.map { ("q_lora_rank", $0, 0, "q_lora_rank") }
            case (.deepseekV3, "q_b_proj"), (.deepseekV3, "q_proj"):
                guard let heads, let nope, let rope else { return nil }
                return ("num_attention_heads", heads * (nope + rope), 0, "num_attention_heads × (qk_nope_head_dim + qk_rope_head_dim)")
            case (.deepseekV3, "kv_a_proj_with_mqa"):
                guard let kvLora, let rope else { return nil }
                return ("kv_lora_rank", kvLora + rope, 0, "kv_lora_rank + qk_rope_head_dim")
            case (.deepseekV3, "kv_b_proj"):
                guard let heads, let nope, let vHead else { return nil }
                return ("num_attention_heads", heads * (nope + vHead), 0, "num_attention_heads × (qk_nope_head_dim + v_head_dim)")
            case (.deepseekV3, "o_proj"):
                guard let heads, let vHead else { return nil }
                return ("num_attention_heads", heads * vHead, 1, "num_attention_heads × v_head_dim")
            case (_, "q_proj"):
                guard let heads, let headDim else { return nil }
                return ("num_attention_heads", heads * headDim, 0, "num_attention_heads × head_dim")
            case (_, "k_proj"), (_, "v_proj"):
                guard let kvHeads, let headDim else { return nil }
                return ("num_key_value_heads", kvHeads * headDim, 0, "num_key_value_heads × head_dim")
            case (_, "o_proj"):
                guard let heads, let headDim else { return nil }
                return ("num_attention_heads", heads * headDim, 1, "num_attention_heads × head_dim")
            default:
                return nil
            }
        }
        // A rank of a shard output stores slices and a part of the layers and experts: its
        // shapes are checked as the global shapes its rank.json gives (each slice against them),
        // and a missing layer, expert or lm_head is another rank's.
        var globalShapes: [String: [Int]] = [:]
        if let rank = checkpoint.rank {
            for (name, slice) in rank.tensors {
                globalShapes[name] = slice.globalShape
                guard let info = w.info(name) else {
                    out.append(.configMismatch(path: rank.path, key: "tensors", value: name, tensor: name, "is listed in rank.json but not stored in this rank"))
                    continue
                }
                if info.shape != slice.localShape {
                    out.append(.configMismatch(path: rank.path, key: "tensors", value: name, tensor: name,
                                               "is stored with shape \(info.shape), but rank.json makes it \(slice.localShape) (a slice of \(slice.global) \(slice.globalShape))"))
                }
            }
            if let stray = w.tensorNames.first(where: { globalShapes[$0] == nil }) {
                out.append(.configMismatch(path: rank.path, key: "tensors", value: stray, tensor: stray, "is stored in this rank but rank.json does not list it"))
            }
        }
        let partial = checkpoint.rank != nil
        for name in w.tensorNames {
            guard let role = checkpoint.roles[name], let info = w.info(name) else { continue }
            if let l = role.layer {
                layers.insert(l)
                if role.kind == .mtpProjection || (role.kind == .norm && (role.module.hasSuffix(".enorm") || role.module.hasSuffix(".hnorm"))) {
                    mtpLayers.insert(l)
                }
            }
            let shape = globalShapes[name] ?? info.shape
            let isWeight = role.parameter == "weight"
            switch role.kind {
            case .norm where isWeight:
                let m = role.module
                if m.hasSuffix(".input_layernorm") || m.hasSuffix(".post_attention_layernorm") || m == "model.norm" {
                    if let hidden, shape != [hidden] { mismatch("hidden_size", name, "the norm has shape \(shape), not [\(hidden)]") }
                } else if m.hasSuffix(".q_a_layernorm"), let qLora, shape != [qLora] {
                    mismatch("q_lora_rank", name, "the norm has shape \(shape), not [\(qLora)]")
                } else if m.hasSuffix(".kv_a_layernorm"), let kvLora, shape != [kvLora] {
                    mismatch("kv_lora_rank", name, "the norm has shape \(shape), not [\(kvLora)]")
                }
            case .embedding where isWeight, .lmHead where isWeight:
                if role.kind == .lmHead && role.module == "lm_head" { hasLMHead = true }
                guard shape.count == 2 else { break }
                if let hidden, shape[1] != hidden { mismatch("hidden_size", name, "shape \(shape) has \(shape[1]) columns, not \(hidden)") }
                if let vocab, shape[0] != vocab { mismatch("vocab_size", name, "shape \(shape) has \(shape[0]) rows, not \(vocab)") }
            case .mlp where isWeight:
                guard shape.count == 2, let inter else { break }
                let width = role.projection == "down_proj" ? shape[1] : shape[0]
                if width != inter { mismatch("intermediate_size", name, "the dense MLP projection has shape \(shape), not \(inter) wide") }
            case .expert where isWeight:
                if let l = role.layer, let e = role.expert {
                    expertsByLayer[l, default: []].insert(e)
                    if firstExpertTensor[l] == nil { firstExpertTensor[l] = name }
                }
                guard shape.count == 2, let moeInter else { break }
                let width = role.projection == "down_proj" ? shape[1] : shape[0]
                if width != moeInter { mismatch("moe_intermediate_size", name, "the expert projection has shape \(shape), not \(moeInter) wide") }
            case .bias:
                biases.append(name)
            case .attention where isWeight:
                if let l = role.layer, let p = role.projection { attentionModules[l, default: []].insert(p) }
                if shape.count == 2, let p = role.projection, let (key, want, dim, formula) = attentionShape(p) {
                    if shape[dim] != want {
                        mismatch(key, name, "\(p) has \(shape[dim]) \(dim == 0 ? "rows" : "columns") (shape \(shape)), not \(formula) = \(want)")
                    }
                }
            case .router where isWeight:
                if let n = size("n_routed_experts"), shape.count == 2, shape[0] != n {
                    mismatch("n_routed_experts", name, "the router has shape \(shape), not \(n) rows")
                }
            case .routerBias:
                if let n = size("n_routed_experts"), shape != [n] {
                    mismatch("n_routed_experts", name, "the router bias has shape \(shape), not [\(n)]")
                }
            default:
                break
            }
        }

        // 3. Layer and expert counts.
        if let n = size("num_hidden_layers"), !layers.isEmpty {
            // DeepSeek's MTP layers are told apart by their own tensors (enorm, hnorm, eh_proj).
            let mtpStored = architecture == .deepseekV3 ? mtpLayers : []
            let mtp = architecture == .deepseekV3 ? (size("num_nextn_predict_layers") ?? 0) : 0
            let regular = layers.subtracting(mtpStored)
            func example(_ l: Int) -> String? { w.tensorNames.first { checkpoint.roles[$0]?.layer == l } }
            if let extra = regular.sorted().first(where: { $0 >= n }) {
                mismatch("num_hidden_layers", example(extra), "the checkpoint stores decoder layer \(extra) (layers \(IndexRanges.text(regular.sorted())))\(mtpStored.isEmpty ? "" : " besides the MTP layer(s) \(IndexRanges.text(mtpStored.sorted()))"), more than \(n)")
            } else if !partial, let missing = (0..<n).first(where: { !regular.contains($0) }) {
                mismatch("num_hidden_layers", nil, "the checkpoint has no layer \(missing) (it stores layers \(IndexRanges.text(regular.sorted())))")
            } else if let bad = mtpStored.sorted().first(where: { $0 < n || $0 >= n + mtp }) {
                mismatch("num_hidden_layers", example(bad), "the multi-token-prediction layer is stored at index \(bad), but num_hidden_layers = \(n) and num_nextn_predict_layers = \(mtp) put MTP layers at \(mtp == 0 ? "none" : IndexRanges.text(Array(n..<(n + mtp))))")
            }
        }
        if let n = size("n_routed_experts") {
            for (l, experts) in expertsByLayer.sorted(by: { $0.key < $1.key }) where partial ? experts.max()! >= n : experts.count != n || experts.max()! != n - 1 {
                let beyond = experts.filter { $0 >= n }.min()
                let tensor = beyond.flatMap { e in w.tensorNames.first { checkpoint.roles[$0]?.layer == l && checkpoint.roles[$0]?.expert == e } } ?? firstExpertTensor[l]
                mismatch("n_routed_experts", tensor, "layer \(l) stores \(experts.count) experts (indices \(IndexRanges.text(experts.sorted()))), not \(n)")
                break
            }
        }

        // 4. Names the model type implies.
        switch architecture {
        case .qwen2:
            for (l, projections) in attentionModules.sorted(by: { $0.key < $1.key }) where projections.contains("q_proj") {
                let missing = ["q_proj", "k_proj", "v_proj"].map { "model.layers.\(l).self_attn.\($0).bias" }.filter { !w.contains($0) }
                if let m = missing.first {
                    mismatch("model_type", "model.layers.\(l).self_attn.q_proj.weight", "qwen2 attention has q/k/v biases, but '\(m)' is not in the checkpoint (llama tensors?)")
                    break
                }
            }
        case .llama:
            if config.json["attention_bias"]?.boolValue != true, let b = biases.first {
                mismatch("model_type", b, "llama attention has no biases unless attention_bias is true (qwen2 tensors?)")
            }
        case .deepseekV3:
            if let (l, _) = attentionModules.sorted(by: { $0.key < $1.key }).first(where: { !$0.value.contains("kv_a_proj_with_mqa") }) {
                let example = w.tensorNames.first { checkpoint.roles[$0]?.layer == l && checkpoint.roles[$0]?.kind == .attention }
                mismatch("model_type", example, "deepseek_v3 attention is multi-head latent attention, but layer \(l) has no self_attn.kv_a_proj_with_mqa")
            }
        }

        // 5. Tied embeddings.
        let tied = config.json["tie_word_embeddings"]?.boolValue ?? false
        if !tied && !hasLMHead && w.tensorCount > 0 && !partial {
            mismatch("tie_word_embeddings", nil, (config.json["tie_word_embeddings"] == nil ? "absent (\(architecture.rawValue)'s default is false)" : "false") + ", but the checkpoint has no lm_head.weight: transformers would initialise the output projection at random")
        }
        return out
    }
}
