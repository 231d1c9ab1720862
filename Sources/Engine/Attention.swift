import EngineKernels

/// Grouped-query attention (llama, qwen2): q/k/v projections (qwen2 with biases), rotary
/// embedding on pairs (i, i + d/2), kvHeads shared by groups of query heads, output projection.
final class Attention: @unchecked Sendable {
    let q: Linear, k: Linear, v: Linear, o: Linear
    let heads: Int, kvHeads: Int, headDim: Int
    let scale: Float
    let layer: Int

    init(_ r: WeightReader, prefix: String, layer: Int, config c: TransformerConfig, bias: Bool) throws {
        heads = c.heads
        kvHeads = c.kvHeads
        headDim = c.headDim
        scale = c.attentionScale
        self.layer = layer
        q = try r.linear(prefix + ".q_proj", heads * headDim, c.hidden, bias: bias)
        k = try r.linear(prefix + ".k_proj", kvHeads * headDim, c.hidden, bias: bias)
        v = try r.linear(prefix + ".v_proj", kvHeads * headDim, c.hidden, bias: bias)
        o = try r.linear(prefix + ".o_proj", c.hidden, heads * headDim, bias: bias && r.has(prefix + ".o_proj.bias"))
    }

    /// out (rows × hidden) = attention of h's rows.
    func forward(_ h: Matrix, _ s: ForwardStep, into out: Matrix) {
        let m = s.rows
        // Written in full by the products (and attention) before they are read.
        let qm = Matrix(rows: m, cols: heads * headDim, uninitialized: ())
        let km = Matrix(rows: m, cols: kvHeads * headDim, uninitialized: ())
        let vm = Matrix(rows: m, cols: kvHeads * headDim, uninitialized: ())
        q.apply(h.data, rows: m, ldx: h.cols, into: qm.data, ldy: qm.cols, pool: s.pool)
        k.apply(h.data, rows: m, ldx: h.cols, into: km.data, ldy: km.cols, pool: s.pool)
        v.apply(h.data, rows: m, ldx: h.cols, into: vm.data, ldy: vm.cols, pool: s.pool)
        let width = kvHeads * headDim
        s.pool.forRows(m, width: qm.cols + 2 * width) { rr in
            for r in rr {
                let b = r / s.tokens, t = r % s.tokens
                let kc = s.cache.keys(self.layer, b), vc = s.cache.values(self.layer, b)
                s.rotate(qm.row(r), token: t, heads: heads, stride: headDim, offset: 0, interleaved: false)
                s.rotate(km.row(r), token: t, heads: kvHeads, stride: headDim, offset: 0, interleaved: false)
                (kc + (s.start + t) * width).update(from: km.row(r), count: width)
                (vc + (s.start + t) * width).update(from: vm.row(r), count: width)
            }
        }
        let attn = Matrix(rows: m, cols: heads * headDim, uninitialized: ())
        let group = heads / kvHeads, d = headDim, cache = s.cache, layer = layer, tokens = s.tokens
        s.attend(heads: heads, dk: d, dv: d, scale: scale,
                 q: { b, h in (UnsafePointer(qm.row(b * tokens) + h * d), qm.cols) },
                 k: { b, h in (UnsafePointer(cache.keys(layer, b) + (h / group) * d), width) },
                 v: { b, h in (UnsafePointer(cache.values(layer, b) + (h / group) * d), width) },
                 out: { b, h in (attn.row(b * tokens) + h * d, attn.cols) })
        s.observation(layer: layer)?.all(.attentionOutput(layer: layer), attn.data, width: attn.cols, ld: attn.cols)
        o.apply(attn.data, rows: m, ldx: attn.cols, into: out.data, ldy: out.cols, pool: s.pool)
    }
}
