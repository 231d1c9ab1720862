/// A distinct input tensor of the linear layers `quantize` quantizes (attention, dense MLP, shared
/// and routed expert projections; not the embedding, lm_head or the MoE router). Layers that read
/// the same tensor share one site: q_a/kv_a (or q/k/v) read the input norm's output, gate/up read
/// the post-attention norm's output.
public enum ObservedSite: Hashable, Sendable {
    /// `input_layernorm`'s output: q_a_proj + kv_a_proj_with_mqa (MLA), q_proj + kv_a (MLA without
    /// the q LoRA) or q/k/v_proj (grouped attention).
    case attentionInput(layer: Int)
    /// `q_a_layernorm`'s output: q_b_proj.
    case queryLatent(layer: Int)
    /// `kv_a_layernorm`'s output (the cached latent of the new positions): kv_b_proj.
    case kvLatent(layer: Int)
    /// The attention heads' output: o_proj.
    case attentionOutput(layer: Int)
    /// `post_attention_layernorm`'s output: gate/up of the dense MLP or of the shared experts, and
    /// in `.allExperts` mode of every routed expert too (they all see every token then).
    case mlpInput(layer: Int)
    /// silu(gate) · up of the dense MLP or of the shared experts: down_proj.
    case mlpHidden(layer: Int)
    /// `.routedOnly`: the rows of the post-attention norm's output routed to one expert: its gate/up.
    case expertInput(layer: Int, expert: Int)
    /// silu(gate) · up of one routed expert: its down_proj.
    case expertHidden(layer: Int, expert: Int)
}

/// Which tokens the routed experts are observed on.
public enum ExpertObservation: String, Sendable {
    /// Every token passes through every routed expert for statistics only (llm-compressor's and
    /// ModelOpt's calibration); the layer's output stays the routed one.
    case allExperts = "all"
    /// Only the tokens the router sends to an expert.
    case routedOnly = "routed"
}

/// Sees the input of every quantized linear layer during `Model.forward(…, observer:)`, one call
/// per site and per sequence of the batch (a window), rows in token order. Calls for one site
/// never overlap; calls for different sites may come from several workers at once. The pointers
/// are valid only during the call. Without an observer the forward pass does none of this.
public protocol ActivationObserver: AnyObject {
    var experts: ExpertObservation { get }
    /// `rows` rows of `width` values (row stride `ld`) of `site`'s input from sequence `window` of
    /// the batch. Not called for a site that received no rows in that window (an expert no token
    /// was routed to, in `.routedOnly` mode).
    func observe(_ site: ObservedSite, window: Int, rows: Int, width: Int, _ x: UnsafePointer<Float>, ld: Int)
    /// `tokens` tokens of sequence `window` were routed to `expert` of `layer` (every expert of every
    /// MoE layer, zero included, in either mode).
    func routed(layer: Int, expert: Int, window: Int, tokens: Int)
}

/// One observed input with the modules that read it (names as in the checkpoint).
public struct ObservedLayerInput: Sendable, Equatable {
    public var site: ObservedSite
    /// The input's identity: the norm whose output it is, or the one module reading it.
    public var name: String
    public var consumers: [String]
    /// The routed expert this input belongs to, if any.
    public var expert: (layer: Int, index: Int)? {
        switch site {
        case let .expertInput(l, e), let .expertHidden(l, e): return (l, e)
        default: return nil
        }
    }

    public static func == (a: ObservedLayerInput, b: ObservedLayerInput) -> Bool {
        a.site == b.site && a.name == b.name && a.consumers == b.consumers
    }
}

extension Model {
    /// Every site an observer sees in `mode`, in forward order, named after the checkpoint's
    /// modules.
    public func observedInputs(_ mode: ExpertObservation) -> [ObservedLayerInput] {
        var out: [ObservedLayerInput] = []
        for (l, layer) in layers.enumerated() {
            let p = "model.layers.\(l)"
            switch layer.mixer {
            case let .latent(a):
                let q = a.qa != nil ? "q_a_proj" : "q_proj"
                out.append(ObservedLayerInput(site: .attentionInput(layer: l), name: p + ".input_layernorm",
                                         consumers: [p + ".self_attn.\(q)", p + ".self_attn.kv_a_proj_with_mqa"]))
                if a.qa != nil {
                    out.append(ObservedLayerInput(site: .queryLatent(layer: l), name: p + ".self_attn.q_a_layernorm",
                                             consumers: [p + ".self_attn.q_b_proj"]))
                }
                out.append(ObservedLayerInput(site: .kvLatent(layer: l), name: p + ".self_attn.kv_a_layernorm",
                                         consumers: [p + ".self_attn.kv_b_proj"]))
            case .grouped:
                out.append(ObservedLayerInput(site: .attentionInput(layer: l), name: p + ".input_layernorm",
                                         consumers: ["q_proj", "k_proj", "v_proj"].map { p + ".self_attn." + $0 }))
            }
            out.append(ObservedLayerInput(site: .attentionOutput(layer: l), name: p + ".self_attn.o_proj", consumers: [p + ".self_attn.o_proj"]))
            switch layer.ffn {
            case .dense:
                out.append(ObservedLayerInput(site: .mlpInput(layer: l), name: p + ".post_attention_layernorm",
                                         consumers: [p + ".mlp.gate_proj", p + ".mlp.up_proj"]))
                out.append(ObservedLayerInput(site: .mlpHidden(layer: l), name: p + ".mlp.down_proj", consumers: [p + ".mlp.down_proj"]))
            case let .experts(f):
                let e = p + ".mlp.experts."
                var normConsumers: [String] = []
                if f.shared != nil { normConsumers += [p + ".mlp.shared_experts.gate_proj", p + ".mlp.shared_experts.up_proj"] }
                if mode == .allExperts {
                    normConsumers += f.experts.indices.flatMap { [e + "\($0).gate_proj", e + "\($0).up_proj"] }
                }
                if !normConsumers.isEmpty {
                    out.append(ObservedLayerInput(site: .mlpInput(layer: l), name: p + ".post_attention_layernorm", consumers: normConsumers))
                }
                if f.shared != nil {
                    out.append(ObservedLayerInput(site: .mlpHidden(layer: l), name: p + ".mlp.shared_experts.down_proj",
                                             consumers: [p + ".mlp.shared_experts.down_proj"]))
                }
                for x in f.experts.indices {
                    if mode == .routedOnly {
                        out.append(ObservedLayerInput(site: .expertInput(layer: l, expert: x), name: e + "\(x).gate_proj",
                                                 consumers: [e + "\(x).gate_proj", e + "\(x).up_proj"]))
                    }
                    out.append(ObservedLayerInput(site: .expertHidden(layer: l, expert: x), name: e + "\(x).down_proj", consumers: [e + "\(x).down_proj"]))
                }
            }
        }
        return out
    }

    /// Routed experts per MoE layer (layer index → expert count), for counting routed tokens.
    public var routedExperts: [(layer: Int, experts: Int)] {
        layers.enumerated().compactMap { l, layer in
            if case let .experts(f) = layer.ffn { return (l, f.experts.count) }
            return nil
        }
    }
}

/// The observer with the geometry of one layer's forward call: what the layer's parts need to
/// report their inputs window by window.
struct LayerObservation {
    let observer: ActivationObserver
    let layer: Int
    /// Sequences in the batch and new tokens per sequence (rows b × tokens … are sequence b's).
    let batch: Int
    let tokens: Int

    /// Rows of every sequence of the batch (batch × tokens rows).
    func all(_ site: ObservedSite, _ x: UnsafePointer<Float>, width: Int, ld: Int) {
        for b in 0..<batch {
            observer.observe(site, window: b, rows: tokens, width: width, x + b * tokens * ld, ld: ld)
        }
    }

    /// Gathered rows: row i of x holds batch row `sources[i]` (increasing), so each sequence's
    /// rows are one run.
    func gathered(_ site: ObservedSite, sources: [Int], _ x: UnsafePointer<Float>, width: Int, ld: Int) {
        var i = 0
        while i < sources.count {
            let b = sources[i] / tokens
            var j = i + 1
            while j < sources.count && sources[j] / tokens == b { j += 1 }
            observer.observe(site, window: b, rows: j - i, width: width, x + i * ld, ld: ld)
            i = j
        }
    }
}
