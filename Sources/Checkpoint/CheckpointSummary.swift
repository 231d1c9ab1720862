import JSON
import SafeTensors

/// Totals `inspect` reports for a checkpoint, from headers only.
public struct CheckpointSummary: Sendable {
    /// Stored values; scales, other quantization parameters and buffers (`rotary_emb.inv_freq`) excluded.
    public var parameterCount: Int
    public var tensorCount: Int
    public var shardCount: Int
    /// Tensor data bytes by dtype, largest first.
    public var bytesByDType: [(DType, bytes: Int, tensors: Int)]
    public var totalTensorBytes: Int
    public var totalFileBytes: Int

    public init(_ ckpt: Checkpoint) {
        var params = 0
        var byType: [DType: (Int, Int)] = [:]
        let w = ckpt.weights
        for name in w.tensorNames {
            let info = w.info(name)!
            let isQuantParam = ckpt.roles[name].map { $0.kind == .quantizationParameter || $0.kind == .buffer }
                ?? ["weight_scale_inv", "weight_scale", "input_scale", "weight_zero_point", "input_zero_point"].contains { name.hasSuffix("." + $0) }
            if !isQuantParam { params += info.elementCount }
            let cur = byType[info.dtype] ?? (0, 0)
            byType[info.dtype] = (cur.0 + info.byteCount, cur.1 + 1)
        }
        parameterCount = params
        tensorCount = ckpt.weights.tensorCount
        shardCount = ckpt.weights.files.count
        bytesByDType = byType.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.bytes > $1.bytes }
        totalTensorBytes = ckpt.weights.totalTensorBytes
        totalFileBytes = ckpt.weights.totalFileBytes
    }

    /// The config values `inspect` shows, in a fixed order, where present.
    public static func keyConfigValues(_ config: ModelConfig) -> [(String, JSONValue)] {
        let keys = [
            "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
            "intermediate_size", "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
            "n_group", "topk_group", "first_k_dense_replace", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
            "qk_rope_head_dim", "v_head_dim", "num_nextn_predict_layers", "max_position_embeddings", "rope_theta",
            "tie_word_embeddings", "torch_dtype", "dtype",
        ]
        var out: [(String, JSONValue)] = []
        for k in keys { if let v = config.json[k], v != .null { out.append((k, v)) } }
        if out.first(where: { $0.0 == "rope_theta" }) == nil, let t = config.ropeTheta { out.append(("rope_theta", .double(t))) }
        if let s = config.ropeScaling { out.append(("rope_scaling", s)) }
        return out
    }
}
