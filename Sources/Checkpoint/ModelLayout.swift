/// Names the role of each tensor of a deepseek_v3, qwen2 or llama checkpoint (Hugging Face
/// names), so the quantization plan never has to guess.
public struct ModelLayout: Sendable {
    public let architecture: Architecture

    public init(architecture: Architecture) { self.architecture = architecture }

    static let attentionProjections: Set<String> = [
        "q_proj", "k_proj", "v_proj", "o_proj",
        "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj",
    ]
    /// Multi-head latent attention (DeepSeek) only.
    static let mlaProjections: Set<String> = ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj"]
    /// The MTP layer's norms (DeepSeek) only.
    static let mtpNorms: Set<String> = ["enorm", "hnorm"]
    static let mlpProjections: Set<String> = ["gate_proj", "up_proj", "down_proj"]
    static let quantizationParameters: Set<String> = ["weight_scale_inv", "weight_scale", "input_scale", "weight_zero_point", "input_zero_point"]
    static let layerNorms: Set<String> = ["input_layernorm", "post_attention_layernorm", "enorm", "hnorm"]

    /// The role of `name`, or nil when the name does not fit the architecture.
    /// `name` cut at every "." with empty parts kept: `split(separator: ".",
    /// omittingEmptySubsequences: false)`, found by bytes for an ASCII name (where every "." is a
    /// character of its own, so the parts are the same) instead of by grapheme clusters.
    static func components(_ name: String) -> [Substring] {
        let u = name.utf8
        guard !u.contains(where: { $0 >= 0x80 }) else { return name.split(separator: ".", omittingEmptySubsequences: false) }
        var parts: [Substring] = []
        parts.reserveCapacity(8)
        var start = u.startIndex
        var i = start
        while i != u.endIndex {
            if u[i] == 0x2E {
                parts.append(name[start..<i])
                start = u.index(after: i)
            }
            i = u.index(after: i)
        }
        parts.append(name[start...])
        return parts
    }

    public func role(of name: String) -> TensorRole? {
        let parts = ModelLayout.components(name)
        guard parts.count >= 2 else { return nil }
        let lastDot = name.index(before: parts[parts.count - 1].startIndex)
        let parameter = String(name[name.index(after: lastDot)...])
        let module = String(name[..<lastDot])
        var role = TensorRole(kind: .norm, module: module, parameter: parameter, layer: nil, expert: nil, projection: nil)
        let isQuantParam = ModelLayout.quantizationParameters.contains(parameter)
        func linear(_ kind: TensorRole.Kind, _ projection: String?) -> TensorRole? {
            role.kind = isQuantParam ? .quantizationParameter : kind
            role.projection = projection
            if !isQuantParam && parameter == "bias" {
                guard architecture == .qwen2 || kind == .attention else { return nil }
                role.kind = .bias
                return role
            }
            return isQuantParam || parameter == "weight" ? role : nil
        }
        // A module that is not a linear layer (norm, embedding, router, lm_head) can still carry
        // quantization tensors in a checkpoint; they get the quantization-parameter role here and
        // the classifier (Quantization's TensorClassification) decides whether they are legitimate.
        func plain(_ kind: TensorRole.Kind, _ params: Set<String> = ["weight"]) -> TensorRole? {
            if isQuantParam { role.kind = .quantizationParameter; return role }
            guard params.contains(parameter) else { return nil }
            role.kind = kind
            return role
        }
        // `rotary_emb.inv_freq`: a non-persistent buffer older exports (Llama family) saved; the
        // model recomputes it, transformers ignores it when loading.
        func buffer() -> TensorRole? {
            guard parameter == "inv_freq" else { return nil }
            role.kind = .buffer
            return role
        }

        switch parts[0] {
        case "lm_head":
            return parts.count == 2 ? plain(.lmHead) : nil
        case "model":
            break
        default:
            return nil
        }
        guard parts.count >= 3 else { return nil }
        if parts.count == 3 {
            switch parts[1] {
            case "embed_tokens": return plain(.embedding)
            case "norm": return plain(.norm)
            case "rotary_emb": return buffer()
            default: return nil
            }
        }
        guard parts[1] == "layers", let layer = Int(parts[2]), layer >= 0 else { return nil }
        role.layer = layer
        let rest = parts[3..<(parts.count - 1)].map(String.init)  // between layer index and parameter
        guard let head = rest.first else { return nil }
        switch head {
        case _ where rest.count == 1 && ModelLayout.layerNorms.contains(head):
            if ModelLayout.mtpNorms.contains(head) && architecture != .deepseekV3 { return nil }
            return plain(.norm)
        case "self_attn":
            guard rest.count == 2 else { return nil }
            if rest[1] == "rotary_emb" { return buffer() }
            if rest[1] == "q_a_layernorm" || rest[1] == "kv_a_layernorm" {
                return architecture == .deepseekV3 ? plain(.norm) : nil
            }
            guard ModelLayout.attentionProjections.contains(rest[1]) else { return nil }
            if ModelLayout.mlaProjections.contains(rest[1]) && architecture != .deepseekV3 { return nil }
            return linear(.attention, rest[1])
        case "mlp":
            if rest.count == 2 && ModelLayout.mlpProjections.contains(rest[1]) { return linear(.mlp, rest[1]) }
            guard architecture == .deepseekV3 else { return nil }
            if rest.count == 2 && rest[1] == "gate" {
                if parameter == "e_score_correction_bias" { role.kind = .routerBias; return role }
                return plain(.router)
            }
            if rest.count == 3 && rest[1] == "shared_experts" && ModelLayout.mlpProjections.contains(rest[2]) {
                return linear(.sharedExpert, rest[2])
            }
            if rest.count == 4 && rest[1] == "experts", let e = Int(rest[2]), e >= 0, ModelLayout.mlpProjections.contains(rest[3]) {
                role.expert = e
                return linear(.expert, rest[3])
            }
            return nil
        case "embed_tokens" where architecture == .deepseekV3 && rest.count == 1:
            return plain(.embedding)
        case "eh_proj" where architecture == .deepseekV3 && rest.count == 1:
            return linear(.mtpProjection, "eh_proj")
        case "shared_head" where architecture == .deepseekV3 && rest.count == 2:
            if rest[1] == "norm" { return plain(.norm) }
            if rest[1] == "head" { return linear(.lmHead, "head") }
            return nil
        default:
            return nil
        }
    }
}
