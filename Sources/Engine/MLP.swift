import EngineKernels

/// SwiGLU feed-forward: down(silu(gate(x)) · up(x)).
final class MLP: @unchecked Sendable {
    let gate: Linear, up: Linear, down: Linear
    var intermediate: Int { gate.outputs }

    init(_ r: WeightReader, prefix: String, hidden: Int, intermediate: Int) throws {
        gate = try r.linear(prefix + ".gate_proj", intermediate, hidden)
        up = try r.linear(prefix + ".up_proj", intermediate, hidden)
        down = try r.linear(prefix + ".down_proj", hidden, intermediate)
    }

    /// out (rows × hidden, row stride ldo) = MLP of x's rows, on all workers. `hidden` (an
    /// observer's) sees down_proj's input, silu(gate) · up, with its row stride.
    func forward(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, into out: UnsafeMutablePointer<Float>, ldo: Int, pool: WorkerPool,
                 hidden: ((UnsafePointer<Float>, Int) -> Void)? = nil) {
        let g = Matrix(rows: m, cols: intermediate, uninitialized: ()), u = Matrix(rows: m, cols: intermediate, uninitialized: ())
        gate.apply(x, rows: m, ldx: ldx, into: g.data, ldy: g.cols, pool: pool)
        up.apply(x, rows: m, ldx: ldx, into: u.data, ldy: u.cols, pool: pool)
        let width = intermediate
        pool.forRows(m, width: width) { rr in
            ek_silu_mul(g.data + rr.lowerBound * width, u.data + rr.lowerBound * width, Int32(rr.count * width))
        }
        hidden?(g.data, g.cols)
        down.apply(g.data, rows: m, ldx: g.cols, into: out, ldy: ldo, pool: pool)
    }

    /// The same on the calling thread, with one worker's scratch.
    func forwardSerial(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, into out: UnsafeMutablePointer<Float>, ldo: Int, scratch: UnsafeMutablePointer<Float>,
                       hidden: ((UnsafePointer<Float>, Int) -> Void)? = nil) {
        let g = hiddenSerial(x, rows: m, ldx: ldx, scratch: scratch)
        hidden?(g.data, g.cols)
        down.applySerial(g.data, rows: m, ldx: g.cols, into: out, ldy: ldo, scratch: scratch)
    }

    /// down_proj's input, silu(gate(x)) · up(x), on the calling thread.
    func hiddenSerial(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, scratch: UnsafeMutablePointer<Float>) -> Matrix {
        let g = Matrix(rows: m, cols: intermediate, uninitialized: ()), u = Matrix(rows: m, cols: intermediate, uninitialized: ())
        gate.applySerial(x, rows: m, ldx: ldx, into: g.data, ldy: g.cols, scratch: scratch)
        up.applySerial(x, rows: m, ldx: ldx, into: u.data, ldy: u.cols, scratch: scratch)
        ek_silu_mul(g.data, u.data, Int32(m * intermediate))
        return g
    }
}
