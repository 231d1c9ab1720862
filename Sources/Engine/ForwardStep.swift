import EngineKernels

/// What one forward call shares between layers: the batch geometry, the new positions'
/// rotary tables, the cache and the workers.
struct ForwardStep {
    /// Sequences, each with `tokens` new tokens starting at position `start`.
    let batch: Int
    let tokens: Int
    let start: Int
    let cache: KVCache
    let pool: WorkerPool
    /// Sees the inputs of the quantized linear layers (calibration); nil in a plain forward pass.
    let observer: ActivationObserver?
    /// cos / sin of new token t at frequency i: [t × half + i].
    let cos: [Float]
    let sin: [Float]
    let half: Int

    var rows: Int { batch * tokens }

    init(batch: Int, tokens: Int, start: Int, rope: RopeScaling, cache: KVCache, pool: WorkerPool, observer: ActivationObserver? = nil) {
        self.observer = observer
        self.batch = batch
        self.tokens = tokens
        self.start = start
        self.cache = cache
        self.pool = pool
        let half = rope.dim / 2
        self.half = half
        var c = [Float](repeating: 0, count: tokens * half), s = c
        c.withUnsafeMutableBufferPointer { cp in
            s.withUnsafeMutableBufferPointer { sp in
                for t in 0..<tokens { rope.angles(position: start + t, cos: cp.baseAddress! + t * half, sin: sp.baseAddress! + t * half) }
            }
        }
        cos = c
        sin = s
    }

    /// `layer`'s observation, when there is an observer.
    func observation(layer: Int) -> LayerObservation? {
        observer.map { LayerObservation(observer: $0, layer: layer, batch: batch, tokens: tokens) }
    }

    /// Rotates `heads` vectors of width `stride` (rope part at `offset`) in row r.
    func rotate(_ row: UnsafeMutablePointer<Float>, token t: Int, heads: Int, stride: Int, offset: Int, interleaved: Bool) {
        cos.withUnsafeBufferPointer { c in
            sin.withUnsafeBufferPointer { s in
                for h in 0..<heads {
                    RopeScaling.rotate(row + h * stride + offset, half: half, interleaved: interleaved,
                                       cos: c.baseAddress! + t * half, sin: s.baseAddress! + t * half)
                }
            }
        }
    }

    /// Causal attention for every (sequence, head, query chunk) on the workers. `query(b, h)`
    /// etc. give the first new query row of sequence b / head h and the cached rows.
    func attend(heads: Int, dk: Int, dv: Int, scale: Float,
                q: (Int, Int) -> (UnsafePointer<Float>, Int),
                k: (Int, Int) -> (UnsafePointer<Float>, Int),
                v: (Int, Int) -> (UnsafePointer<Float>, Int),
                out: (Int, Int) -> (UnsafeMutablePointer<Float>, Int)) {
        let chunk = 64
        let chunks = (tokens + chunk - 1) / chunk
        // One scratch per worker, sized for the widest item (the last chunk sees every key).
        let need = ek_attention_scratch(Int32(min(chunk, tokens)), Int32(start + tokens - min(chunk, tokens)), Int32(dk))
        let workers = min(pool.threads, batch * heads * chunks)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: need * workers)
        defer { scratch.deallocate() }
        // The last query chunks see the most keys: they go first, so the workers finish together.
        pool.run(batch * heads * chunks) { item, w in
            let c = chunks - 1 - item / (batch * heads), h = item % heads, b = (item / heads) % batch
            let q0 = c * chunk, nq = min(tokens, q0 + chunk) - q0
            let (qp, ldq) = q(b, h), (kp, ldk) = k(b, h), (vp, ldv) = v(b, h), (op, ldo) = out(b, h)
            ek_attention(Int32(nq), Int32(start + q0), Int32(dk), Int32(dv), scale,
                         qp + q0 * ldq, Int32(ldq), kp, Int32(ldk), vp, Int32(ldv),
                         op + q0 * ldo, Int32(ldo), scratch + w * need)
        }
    }
}

/// RMSNorm of every row of x (width n) into out (may be x), rows spread over the workers.
func rmsNormRows(_ x: UnsafePointer<Float>, rows: Int, width n: Int, ldx: Int, weight: [Float], eps: Float, into out: UnsafeMutablePointer<Float>, ldo: Int, pool: WorkerPool) {
    weight.withUnsafeBufferPointer { w in
        pool.forRows(rows, width: n) { rr in
            for r in rr { ek_rmsnorm(x + r * ldx, w.baseAddress!, Int32(n), eps, out + r * ldo) }
        }
    }
}

/// x += y over rows × width contiguous floats (the residual), rows spread over the workers.
func addRows(_ y: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, rows: Int, width: Int, pool: WorkerPool) {
    pool.forRows(rows, width: width) { rr in
        ek_axpy(Int32(rr.count * width), 1, y + rr.lowerBound * width, x + rr.lowerBound * width)
    }
}
