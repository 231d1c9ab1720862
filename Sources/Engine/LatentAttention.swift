import EngineKernels

/// DeepSeek-V3's multi-head latent attention. Queries come from the q LoRA
/// (q_a_proj → q_a_layernorm → q_b_proj) or a plain q_proj; keys and values from one compressed
/// latent per position (kv_a_proj_with_mqa → kv_a_layernorm → kv_b_proj) plus a rope key shared by
/// all heads. The cache holds the normalised latent and the rotated rope key; keys and values are
/// expanded from it for the positions attended to.
final class LatentAttention: @unchecked Sendable {
    let qa: Linear?, qaNorm: [Float], qb: Linear
    let kva: Linear, kvaNorm: [Float], kvb: Linear, o: Linear
    let dims: TransformerConfig.Latent
    let heads: Int
    let scale: Float
    let eps: Float
    let layer: Int

    init(_ r: WeightReader, prefix: String, layer: Int, config c: TransformerConfig) throws {
        let l = c.latent!
        dims = l
        heads = c.heads
        scale = c.attentionScale
        eps = c.rmsEps
        self.layer = layer
        if let rank = l.qLoraRank {
            qa = try r.linear(prefix + ".q_a_proj", rank, c.hidden)
            qaNorm = try r.vector(prefix + ".q_a_layernorm.weight", rank)
            qb = try r.linear(prefix + ".q_b_proj", heads * l.qkDim, rank)
        } else {
            qa = nil
            qaNorm = []
            qb = try r.linear(prefix + ".q_proj", heads * l.qkDim, c.hidden)
        }
        kva = try r.linear(prefix + ".kv_a_proj_with_mqa", l.kvLoraRank + l.ropeDim, c.hidden)
        kvaNorm = try r.vector(prefix + ".kv_a_layernorm.weight", l.kvLoraRank)
        kvb = try r.linear(prefix + ".kv_b_proj", heads * (l.nopeDim + l.valueDim), l.kvLoraRank)
        o = try r.linear(prefix + ".o_proj", c.hidden, heads * l.valueDim)
    }

    func forward(_ h: Matrix, _ s: ForwardStep, into out: Matrix) {
        let m = s.rows, l = dims
        let qk = l.qkDim, kvWidth = l.nopeDim + l.valueDim
        let qm = Matrix(rows: m, cols: heads * qk, uninitialized: ())
        if let qa {
            let a = Matrix(rows: m, cols: qa.outputs, uninitialized: ())
            qa.apply(h.data, rows: m, ldx: h.cols, into: a.data, ldy: a.cols, pool: s.pool)
            rmsNormRows(a.data, rows: m, width: a.cols, ldx: a.cols, weight: qaNorm, eps: eps, into: a.data, ldo: a.cols, pool: s.pool)
            s.observation(layer: layer)?.all(.queryLatent(layer: layer), a.data, width: a.cols, ld: a.cols)
            qb.apply(a.data, rows: m, ldx: a.cols, into: qm.data, ldy: qm.cols, pool: s.pool)
        } else {
            qb.apply(h.data, rows: m, ldx: h.cols, into: qm.data, ldy: qm.cols, pool: s.pool)
        }
        let ckv = Matrix(rows: m, cols: l.kvLoraRank + l.ropeDim, uninitialized: ())
        kva.apply(h.data, rows: m, ldx: h.cols, into: ckv.data, ldy: ckv.cols, pool: s.pool)
        s.pool.forRows(m, width: qm.cols + ckv.cols) { rr in
            for r in rr {
                let b = r / s.tokens, t = r % s.tokens, p = s.start + t
                let latent = s.cache.keys(layer, b), rope = s.cache.values(layer, b)
                s.rotate(qm.row(r), token: t, heads: heads, stride: qk, offset: l.nopeDim, interleaved: l.interleaved)
                kvaNorm.withUnsafeBufferPointer { w in
                    ek_rmsnorm(ckv.row(r), w.baseAddress!, Int32(l.kvLoraRank), eps, latent + p * l.kvLoraRank)
                }
                let kr = rope + p * l.ropeDim
                kr.update(from: ckv.row(r) + l.kvLoraRank, count: l.ropeDim)
                s.rotate(kr, token: t, heads: 1, stride: l.ropeDim, offset: 0, interleaved: l.interleaved)
            }
        }
        if let o = s.observer {
            for b in 0..<s.batch {
                o.observe(.kvLatent(layer: layer), window: b, rows: s.tokens, width: l.kvLoraRank,
                          s.cache.keys(layer, b) + s.start * l.kvLoraRank, ld: l.kvLoraRank)
            }
        }
        // Expand keys and values of every attended position from the cached latents.
        let total = s.start + s.tokens
        var keys: [Matrix] = [], values: [Matrix] = []
        for b in 0..<s.batch {
            let kv = Matrix(rows: total, cols: heads * kvWidth, uninitialized: ())
            kvb.apply(s.cache.keys(layer, b), rows: total, ldx: l.kvLoraRank, into: kv.data, ldy: kv.cols, pool: s.pool)
            // Every row of every head is written: its nope part, then its rope part.
            let k = Matrix(rows: total, cols: heads * qk, uninitialized: ())
            let rope = s.cache.values(layer, b)
            s.pool.forRows(total, width: k.cols) { rr in
                for j in rr {
                    for hh in 0..<heads {
                        (k.row(j) + hh * qk).update(from: kv.row(j) + hh * kvWidth, count: l.nopeDim)
                        (k.row(j) + hh * qk + l.nopeDim).update(from: rope + j * l.ropeDim, count: l.ropeDim)
                    }
                }
            }
            keys.append(k)
            values.append(kv)
        }
        let attn = Matrix(rows: m, cols: heads * l.valueDim, uninitialized: ())
        let tokens = s.tokens
        s.attend(heads: heads, dk: qk, dv: l.valueDim, scale: scale,
                 q: { b, h in (UnsafePointer(qm.row(b * tokens) + h * qk), qm.cols) },
                 k: { b, h in (UnsafePointer(keys[b].data + h * qk), keys[b].cols) },
                 v: { b, h in (UnsafePointer(values[b].data + h * kvWidth + l.nopeDim), values[b].cols) },
                 out: { b, h in (attn.row(b * tokens) + h * l.valueDim, attn.cols) })
        s.observation(layer: layer)?.all(.attentionOutput(layer: layer), attn.data, width: attn.cols, ld: attn.cols)
        o.apply(attn.data, rows: m, ldx: attn.cols, into: out.data, ldy: out.cols, pool: s.pool)
    }
}
