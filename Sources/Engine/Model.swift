import Checkpoint
import EngineKernels
import Tensors

/// A decoder-only transformer (llama, qwen2, deepseek_v3) whose weights stay in the store,
/// memory-mapped in their stored encoding. `forward` runs new tokens of a batch of sequences
/// through it, extending the cache.
public final class Model: @unchecked Sendable {
    enum Mixer { case grouped(Attention), latent(LatentAttention) }
    enum FeedForward { case dense(MLP), experts(MixtureOfExperts) }
    struct Layer {
        let inputNorm: [Float]
        let postNorm: [Float]
        let mixer: Mixer
        let ffn: FeedForward
    }

    public let config: TransformerConfig
    public let store: TensorStore
    let embedding: Linear
    let layers: [Layer]
    let norm: [Float]
    let head: Linear

    public convenience init(checkpoint: Checkpoint) throws {
        guard let c = checkpoint.config else {
            throw EngineError.config(path: checkpoint.directory + "/config.json", "missing: the engine needs the model's config.json")
        }
        try self.init(config: TransformerConfig(c), store: checkpoint.weights)
    }

    /// A model cut by `dsconvert shard` (the folder of its rank-… folders), run rank by rank on
    /// each rank's own slices (TensorParallelLayout).
    public convenience init(shardedDirectory directory: String) throws {
        let layout = try TensorParallelLayout(directory: directory)
        try self.init(config: TransformerConfig(layout.config), store: try Checkpoint(path: layout.ranks[0]).weights, layout: layout)
    }

    public init(config c: TransformerConfig, store: TensorStore, layout: TensorParallelLayout? = nil) throws {
        config = c
        self.store = store
        let r = WeightReader(store: store, block: c.weightBlock, layout: layout)
        embedding = try r.table("model.embed_tokens.weight", c.vocab, c.hidden)
        if c.tiedEmbeddings {
            head = embedding
        } else {
            head = try r.table("lm_head.weight", c.vocab, c.hidden)
        }
        norm = try r.vector("model.norm.weight", c.hidden)
        layers = try (0..<c.layers).map { l in
            let p = "model.layers.\(l)"
            let mixer: Mixer
            switch c.family {
            case .deepseekV3: mixer = .latent(try LatentAttention(r, prefix: p + ".self_attn", layer: l, config: c))
            case .qwen2: mixer = .grouped(try Attention(r, prefix: p + ".self_attn", layer: l, config: c, bias: true))
            case .llama: mixer = .grouped(try Attention(r, prefix: p + ".self_attn", layer: l, config: c, bias: r.has(p + ".self_attn.q_proj.bias")))
            }
            let ffn: FeedForward = c.isMoE(l)
                ? .experts(try MixtureOfExperts(r, prefix: p + ".mlp", config: c))
                : .dense(try MLP(r, prefix: p + ".mlp", hidden: c.hidden, intermediate: c.intermediate))
            return Layer(inputNorm: try r.vector(p + ".input_layernorm.weight", c.hidden),
                         postNorm: try r.vector(p + ".post_attention_layernorm.weight", c.hidden),
                         mixer: mixer, ffn: ffn)
        }
    }

    /// Which positions' logits to compute: every new position, each sequence's last, or the
    /// listed rows b × T + t (eval's multiple choice: a batch of choices padded to one length
    /// needs neither the padding's logits nor those before a choice's first token).
    public enum Logits: Sendable, Equatable { case all, last, rows([Int]) }

    /// Runs `tokens[b]` (the same count for every sequence) after the cache's positions and
    /// returns logits: rows b × T + t for `.all`, row b for `.last`, row i for the i-th listed
    /// row of `.rows`, each `vocab` wide.
    /// `observer` sees the input of every quantized linear layer (ActivationObserver.swift); the
    /// logits are the same with or without one.
    public func forward(_ tokens: [[Int]], cache: KVCache, logits want: Logits = .all, pool: WorkerPool,
                        observer: ActivationObserver? = nil) throws -> Matrix {
        let c = config
        guard tokens.count == cache.batch, let t = tokens.first?.count, t > 0, tokens.allSatisfy({ $0.count == t }) else {
            throw EngineError.input("a forward call needs \(cache.batch) sequence(s) of the same, non-zero length")
        }
        if case let .rows(r) = want, let bad = r.first(where: { $0 < 0 || $0 >= cache.batch * t }) {
            throw EngineError.input("logits row \(bad) asked for, outside the \(cache.batch * t) new positions")
        }
        for (b, seq) in tokens.enumerated() {
            if let (i, bad) = seq.enumerated().first(where: { $0.1 < 0 || $0.1 >= c.vocab }) {
                throw EngineError.input("token id \(bad) at sequence \(b), position \(cache.length + i) is outside the vocabulary (0..<\(c.vocab))")
            }
        }
        let start = cache.length
        guard start + t <= c.maxPositions else {
            throw EngineError.input("\(start + t) positions exceed the model's max_position_embeddings \(c.maxPositions)")
        }
        guard start + t <= cache.capacity else {
            throw EngineError.input("\(start + t) positions exceed the cache's capacity \(cache.capacity)")
        }
        let step = ForwardStep(batch: cache.batch, tokens: t, start: start, rope: c.rope, cache: cache, pool: pool, observer: observer)
        let m = step.rows, d = c.hidden
        // Every buffer below is written in full before it is read (gathered rows, norms, products).
        let x = Matrix(rows: m, cols: d, uninitialized: ())
        embedding.gatherRows(tokens.flatMap { $0 }, into: x.data, ld: d)
        let h = Matrix(rows: m, cols: d, uninitialized: ()), y = Matrix(rows: m, cols: d, uninitialized: ())
        for (l, layer) in layers.enumerated() {
            let seen = step.observation(layer: l)
            rmsNormRows(x.data, rows: m, width: d, ldx: d, weight: layer.inputNorm, eps: c.rmsEps, into: h.data, ldo: d, pool: pool)
            seen?.all(.attentionInput(layer: l), h.data, width: d, ld: d)
            switch layer.mixer {
            case let .grouped(a): a.forward(h, step, into: y)
            case let .latent(a): a.forward(h, step, into: y)
            }
            addRows(y.data, into: x.data, rows: m, width: d, pool: pool)
            rmsNormRows(x.data, rows: m, width: d, ldx: d, weight: layer.postNorm, eps: c.rmsEps, into: h.data, ldo: d, pool: pool)
            switch layer.ffn {
            case let .dense(f):
                seen?.all(.mlpInput(layer: l), h.data, width: d, ld: d)
                f.forward(h.data, rows: m, ldx: d, into: y.data, ldo: d, pool: pool,
                          hidden: seen.map { o in { g, ld in o.all(.mlpHidden(layer: l), g, width: f.intermediate, ld: ld) } })
            case let .experts(f): f.forward(h, pool: pool, into: y, observing: seen)
            }
            addRows(y.data, into: x.data, rows: m, width: d, pool: pool)
        }
        cache.length = start + t
        let rows: [Int]
        switch want {
        case .all: rows = Array(0..<m)
        case .last: rows = (0..<cache.batch).map { $0 * t + t - 1 }
        case let .rows(r): rows = r
        }
        let final = Matrix(rows: rows.count, cols: d, uninitialized: ())
        for (i, r) in rows.enumerated() {
            norm.withUnsafeBufferPointer { w in ek_rmsnorm(x.row(r), w.baseAddress!, Int32(d), c.rmsEps, final.row(i)) }
        }
        let out = Matrix(rows: rows.count, cols: c.vocab, uninitialized: ())
        head.apply(final.data, rows: rows.count, ldx: d, into: out.data, ldy: c.vocab, pool: pool)
        return out
    }
}
