import Diagnostics

/// How one tensor of a checkpoint is divided between tensor-parallel ranks, from its name alone
/// (Hugging Face naming of llama / qwen2 / deepseek_v3). A linear weight is stored `[out, in]`:
/// column-parallel layers split dim 0 (their output), row-parallel layers split dim 1 (their input).
/// These are the splits vLLM, SGLang and DeepSeek-V3's inference/convert.py make (docs/architecture.md).
public enum SplitRole: Equatable, Sendable {
    /// q/k/v, q_b_proj, kv_b_proj, gate/up, embed_tokens and lm_head: split along dim 0.
    case column
    /// o_proj, down_proj: split along dim 1 (dim 0 for a per-channel scale is not split).
    case row
    /// Norms, the router and its correction bias, q_a_proj, kv_a_proj_with_mqa, per-tensor scales.
    case replicated
    /// A routed expert's tensor: whole on its expert-parallel rank, or split like a dense MLP
    /// (`inner` says how) when expert parallelism is 1.
    case expert(index: Int, inner: InnerRole)

    public enum InnerRole: Equatable, Sendable { case column, row, replicated }
}

/// What a tensor is besides its role: the weight, its bias, or one of its quantization scales.
public enum TensorPart: Equatable, Sendable {
    case weight
    case bias
    /// Block FP8 `weight_scale_inv`: a `[ceil(out/block), ceil(in/block)]` grid cut with the weight.
    case blockScale
    /// `weight_scale` of shape `[out]` or `[out, 1]`: follows the output dim.
    case channelScale
    /// A scalar (or one-element) scale: replicated.
    case tensorScale
}

public enum ShardRules {
    static let columnSuffixes = ["q_proj", "k_proj", "v_proj", "q_b_proj", "kv_b_proj", "gate_proj", "up_proj", "w1", "w3", "embed_tokens", "lm_head"]
    static let rowSuffixes = ["o_proj", "down_proj", "w2"]

    /// The role of a tensor named `name` (the `.weight`, `.bias` or scale suffix stripped).
    /// The name's components are views into it (no strings are made): the memory-fit search
    /// classifies every tensor of a 92k-tensor checkpoint.
    public static func role(of name: String) -> SplitRole {
        let module = moduleSubstring(name)
        let parts = module.utf8.split(separator: 0x2E)
        func part(_ i: Int) -> Substring { module[parts[i].startIndex..<parts[i].endIndex] }
        let last = parts.isEmpty ? module : part(parts.count - 1)
        let inner: SplitRole.InnerRole
        if columnSuffixes.contains(where: { last == $0 }) { inner = .column }
        else if rowSuffixes.contains(where: { last == $0 }) { inner = .row }
        else { inner = .replicated }
        if let i = parts.firstIndex(where: { $0.elementsEqual("experts".utf8) }), i + 1 < parts.count, let idx = Int(part(i + 1)) {
            return .expert(index: idx, inner: inner)
        }
        switch inner {
        case .column: return .column
        case .row: return .row
        case .replicated: return .replicated
        }
    }

    static let moduleSuffixes = [".weight_scale_inv", ".weight_scale", ".input_scale", ".weight", ".bias", ".e_score_correction_bias"]

    /// `moduleName` as a view into `name`.
    static func moduleSubstring(_ name: String) -> Substring {
        for suffix in moduleSuffixes where name.hasSuffix(suffix) {
            return name.dropLast(suffix.count)
        }
        return name[...]
    }

    /// Which part of its module a tensor is, from its final name component and rank.
    public static func part(of name: String, rank: Int) -> TensorPart {
        if name.hasSuffix(".weight_scale_inv") { return .blockScale }
        if name.hasSuffix(".weight_scale") || name.hasSuffix(".input_scale") {
            return rank == 0 || name.hasSuffix(".input_scale") ? .tensorScale : .channelScale
        }
        if name.hasSuffix(".bias") { return .bias }
        return .weight
    }

    /// The module a tensor belongs to: its name without the final `.weight`/`.bias`/scale part.
    public static func moduleName(_ name: String) -> String { String(moduleSubstring(name)) }

    /// The dimension of a tensor that tensor parallelism splits, or nil when it is replicated.
    /// For an expert's tensor, `expertParallel` > 1 means it is held whole (nil).
    public static func splitDim(name: String, rank: Int, expertParallel: Int) -> Int? {
        splitDim(role: role(of: name), name: name, rank: rank, expertParallel: expertParallel)
    }

    /// `splitDim` for a tensor whose role (`role(of: name)`) is known already.
    public static func splitDim(role r: SplitRole, name: String, rank: Int, expertParallel: Int) -> Int? {
        let inner: SplitRole.InnerRole
        switch r {
        case .column: inner = .column
        case .row: inner = .row
        case .replicated: return nil
        case .expert(_, let i):
            if expertParallel > 1 { return nil }
            inner = i
        }
        switch (inner, part(of: name, rank: rank)) {
        case (.replicated, _), (_, .tensorScale): return nil
        case (.column, _): return 0
        case (.row, .bias), (.row, .channelScale): return nil
        case (.row, _): return rank >= 2 ? 1 : nil
        }
    }
}

/// One rank's piece of a dimension divided into equal parts.
public struct SliceRange: Equatable, Sendable {
    public var offset: Int
    public var length: Int
    public init(offset: Int, length: Int) { self.offset = offset; self.length = length }

    /// Part `index` of `parts` of a dimension of `size` (which `parts` must divide).
    public static func part(_ index: Int, of parts: Int, size: Int) -> SliceRange {
        precondition(parts > 0 && size % parts == 0 && (0..<parts).contains(index))
        let n = size / parts
        return SliceRange(offset: index * n, length: n)
    }
}
