import Checkpoint
import JSON

/// The hyperparameters a forward pass needs, read from config.json for the three architectures
/// in both config styles (released: `rope_theta` + `rope_scaling`, `torch_dtype`; transformers 5:
/// `rope_parameters`, `dtype`). Anything the engine does not implement is refused by name rather
/// than guessed.
public struct TransformerConfig: Sendable {
    public enum Family: String, Sendable { case llama, qwen2, deepseekV3 = "deepseek_v3" }

    /// Multi-head latent attention (DeepSeek-V3).
    public struct Latent: Sendable {
        /// nil: a plain `q_proj` instead of the q LoRA.
        public var qLoraRank: Int?
        public var kvLoraRank: Int
        public var nopeDim: Int
        public var ropeDim: Int
        public var valueDim: Int
        /// Rope pairs are (2i, 2i+1) (DeepSeek's layout) rather than (i, i + d/2).
        public var interleaved: Bool
        public var qkDim: Int { nopeDim + ropeDim }
    }

    /// DeepSeek-V3's mixture of experts.
    public struct Experts: Sendable {
        public var routed: Int
        public var shared: Int
        public var perToken: Int
        public var groups: Int
        public var groupsKept: Int
        public var normalize: Bool
        public var scaling: Float
        public var intermediate: Int
        /// Layers below this index use the dense MLP.
        public var firstDense: Int
        public var layerFrequency: Int
    }

    public var family: Family
    public var hidden: Int
    public var layers: Int
    public var vocab: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var intermediate: Int
    public var rmsEps: Float
    public var tiedEmbeddings: Bool
    public var maxPositions: Int
    public var rope: RopeScaling
    public var latent: Latent?
    public var experts: Experts?
    /// Softmax scale of attention scores.
    public var attentionScale: Float
    /// `quantization_config.weight_block_size`, (128, 128) when absent.
    public var weightBlock: (rows: Int, cols: Int)

    public init(_ config: ModelConfig) throws {
        let path = config.path
        func need(_ key: String) throws -> Int {
            guard let v = config.int(key) else { throw EngineError.config(path: path, "'\(key)' is missing or not an integer") }
            guard v > 0 else { throw EngineError.config(path: path, "'\(key)' is \(v); it must be positive") }
            return v
        }
        let arch: Architecture
        do { arch = try Architecture.detect(config) } catch {
            throw EngineError.config(path: path, "the engine runs deepseek_v3, qwen2 and llama; this config has model_type \(config.modelType.map { "'\($0)'" } ?? "missing") and architectures \(config.architectures)")
        }
        switch arch {
        case .llama: family = .llama
        case .qwen2: family = .qwen2
        case .deepseekV3: family = .deepseekV3
        }
        hidden = try need("hidden_size")
        layers = try need("num_hidden_layers")
        vocab = try need("vocab_size")
        heads = try need("num_attention_heads")
        kvHeads = config.json["num_key_value_heads"].flatMap { $0 == .null ? nil : $0.intValue } ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw EngineError.config(path: path, "num_attention_heads \(heads) is not a multiple of num_key_value_heads \(kvHeads)")
        }
        if let hd = config.json["head_dim"], hd != .null {
            guard let v = hd.intValue, v > 0 else { throw EngineError.config(path: path, "'head_dim' is not a positive integer") }
            headDim = v
        } else {
            guard hidden % heads == 0 else { throw EngineError.config(path: path, "hidden_size \(hidden) is not a multiple of num_attention_heads \(heads) and there is no head_dim") }
            headDim = hidden / heads
        }
        intermediate = try need("intermediate_size")
        rmsEps = Float(config.double("rms_norm_eps") ?? 1e-6)
        tiedEmbeddings = config.json["tie_word_embeddings"]?.boolValue ?? false
        maxPositions = try need("max_position_embeddings")
        if let act = config.string("hidden_act") ?? config.string("hidden_activation"), act != "silu" {
            throw EngineError.config(path: path, "hidden_act '\(act)' is not implemented (the engine runs silu)")
        }
        if let b = config.json["mlp_bias"]?.boolValue, b {
            throw EngineError.config(path: path, "mlp_bias true is not implemented")
        }
        if config.json["pretraining_tp"]?.intValue.map({ $0 > 1 }) == true {
            throw EngineError.config(path: path, "pretraining_tp > 1 is not implemented")
        }
        if family == .qwen2, config.json["use_sliding_window"]?.boolValue == true {
            throw EngineError.config(path: path, "use_sliding_window true is not implemented")
        }

        let theta = config.ropeTheta ?? 10000
        var ropeDim = headDim
        if family == .deepseekV3 {
            let qLora: Int?
            if let v = config.json["q_lora_rank"], v != .null {
                guard let r = v.intValue, r > 0 else { throw EngineError.config(path: path, "'q_lora_rank' is not a positive integer or null") }
                qLora = r
            } else { qLora = nil }
            let l = Latent(qLoraRank: qLora, kvLoraRank: try need("kv_lora_rank"), nopeDim: try need("qk_nope_head_dim"),
                           ropeDim: try need("qk_rope_head_dim"), valueDim: try need("v_head_dim"),
                           interleaved: config.json["rope_interleave"]?.boolValue ?? true)
            latent = l
            ropeDim = l.ropeDim
            guard l.ropeDim % 2 == 0 else { throw EngineError.config(path: path, "qk_rope_head_dim \(l.ropeDim) is odd") }
            if let s = config.string("scoring_func"), s != "sigmoid" {
                throw EngineError.config(path: path, "scoring_func '\(s)' is not implemented (DeepSeek-V3 routes with sigmoid scores); refusing to guess")
            }
            if let t = config.string("topk_method"), t != "noaux_tc" {
                throw EngineError.config(path: path, "topk_method '\(t)' is not implemented (DeepSeek-V3 uses noaux_tc); refusing to guess")
            }
            let routed = try need("n_routed_experts")
            let groups = config.int("n_group") ?? 1
            let kept = config.int("topk_group") ?? groups
            let perToken = try need("num_experts_per_tok")
            guard groups > 0, routed % groups == 0, kept > 0, kept <= groups, routed / groups >= 2 || groups == 1, perToken <= kept * (routed / groups) else {
                throw EngineError.config(path: path, "n_routed_experts \(routed), n_group \(groups), topk_group \(kept), num_experts_per_tok \(perToken) do not form a valid grouped top-k")
            }
            experts = Experts(routed: routed, shared: config.int("n_shared_experts") ?? 0, perToken: perToken,
                              groups: groups, groupsKept: kept, normalize: config.json["norm_topk_prob"]?.boolValue ?? true,
                              scaling: Float(config.double("routed_scaling_factor") ?? 1),
                              intermediate: try need("moe_intermediate_size"),
                              firstDense: config.int("first_k_dense_replace") ?? 0,
                              layerFrequency: config.int("moe_layer_freq") ?? 1)
            guard experts!.layerFrequency == 1 else { throw EngineError.config(path: path, "moe_layer_freq \(experts!.layerFrequency) is not implemented (1 only)") }
        } else {
            latent = nil
            experts = nil
            if let p = config.double("partial_rotary_factor"), p != 1 {
                throw EngineError.config(path: path, "partial_rotary_factor \(p) is not implemented")
            }
        }
        rope = try RopeScaling(config: config, theta: theta, dim: ropeDim)
        if let l = latent {
            var s = 1 / Float(l.qkDim).squareRoot()
            if case let .yarn(y) = rope.kind, y.mscaleAllDim != 0 {
                let m = RopeScaling.yarnMscale(y.factor, y.mscaleAllDim)
                s = s * Float(m) * Float(m)
            }
            attentionScale = s
        } else {
            attentionScale = 1 / Float(headDim).squareRoot()
        }
        if let bs = config.quantizationConfig?["weight_block_size"]?.arrayValue {
            guard bs.count == 2, let r = bs[0].intValue, let c = bs[1].intValue, r > 0, c > 0 else {
                throw EngineError.config(path: path, "quantization_config.weight_block_size must be two positive integers")
            }
            weightBlock = (r, c)
        } else {
            weightBlock = (128, 128)
        }
    }

    /// Whether layer `l` routes through experts.
    public func isMoE(_ l: Int) -> Bool {
        guard let e = experts else { return false }
        return l >= e.firstDense && (l - e.firstDense) % e.layerFrequency == 0
    }
}
