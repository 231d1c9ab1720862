/// What a tensor is in the model, derived from its name and the architecture.
public struct TensorRole: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// Token embedding (also the MTP layer's own copy).
        case embedding
        /// Output projection (`lm_head`, the MTP layer's `shared_head.head`).
        case lmHead
        /// RMSNorm weights.
        case norm
        /// Attention projection (q/k/v/o, MLA's q_a/q_b/kv_a/kv_b).
        case attention
        /// Dense MLP projection (gate/up/down).
        case mlp
        /// Routed expert projection.
        case expert
        /// Shared expert projection.
        case sharedExpert
        /// MoE router weight (`mlp.gate.weight`).
        case router
        /// MoE router correction bias (`mlp.gate.e_score_correction_bias`).
        case routerBias
        /// The MTP layer's `eh_proj`.
        case mtpProjection
        /// A linear layer's bias (qwen2's q/k/v).
        case bias
        /// A quantization tensor: `weight_scale_inv`, `weight_scale`, `input_scale`, `weight_zero_point`.
        case quantizationParameter
        /// Non-parameter buffers some checkpoints store (`rotary_emb.inv_freq`).
        case buffer
    }

    public var kind: Kind
    /// The module name: the tensor name without its last component (`.weight`, `.weight_scale_inv`).
    public var module: String
    /// The last name component (`weight`, `bias`, `weight_scale_inv`, …).
    public var parameter: String
    public var layer: Int?
    public var expert: Int?
    /// The projection's short name (`q_b_proj`, `gate_proj`, …) for linear kinds.
    public var projection: String?

    /// Linear weights dsconvert quantizes unless told otherwise; embeddings, lm_head, norms, the
    /// router and its bias, and the MTP layer's eh_proj are kept (docs/reference.md).
    public var quantizedByDefault: Bool {
        parameter == "weight" && [.attention, .mlp, .expert, .sharedExpert].contains(kind)
    }
}
