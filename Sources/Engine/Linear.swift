import EngineKernels
import Quantization
import Tensors

/// y = x · Wᵀ (+ b) with W read in its stored encoding: each worker decodes a tile of W
/// (`tileRows` output rows × `tileCols` inputs) through the codec into its scratch and multiplies
/// it straight away, so no full-precision copy of W ever exists.
public final class Linear: @unchecked Sendable {
    public static let tileRows = 64
    public static let tileCols = 256
    /// Scratch a worker needs: the decoded tile and its packed copy.
    public static let scratchFloats = 2 * tileRows * tileCols
    /// Rows of x a work item takes at least when `apply` splits the rows between workers.
    static let minChunkRows = 32

    public let weight: StoredWeight
    public let bias: [Float]?
    /// Output features (W's rows).
    public let outputs: Int
    /// Input features (W's columns).
    public let inputs: Int
    /// A weight read from the slices of a tensor-parallel split (TensorParallel.swift): the parts,
    /// in rank order, and how they combine. Empty for a weight read whole.
    enum Split { case none, columns, rows }
    let parts: [Linear]
    let split: Split

    /// Static activation quantization (a W8A8 checkpoint's `input_scale`): applied to x first.
    public let inputQuantizer: ActivationQuantizer?

    /// How a product with fewer than `packedMinRows` rows of x (decode) reads W: straight from
    /// its stored bytes where a kernel decodes the encoding in registers (BF16; E4M3 with
    /// multiplied tensor, channel or block scales and no zero point), else through the f32 tile.
    enum RowsPath { case tile, bf16, e4m3(srows: Int32, sstride: Int, scols: Int32) }
    let rowsPath: RowsPath
    /// Rows of x from which a tile is packed for the register-blocked kernel.
    static let packedMinRows = 4

    public init(_ weight: StoredWeight, bias: [Float]? = nil, inputQuantizer: ActivationQuantizer? = nil) {
        self.weight = weight
        self.bias = bias
        self.inputQuantizer = inputQuantizer
        outputs = weight.rows
        inputs = weight.cols
        parts = []
        split = .none
        rowsPath = Linear.rowsPath(weight)
    }

    static func rowsPath(_ w: StoredWeight) -> RowsPath {
        let e = w.encoding
        guard w.cols <= Int(Int32.max) else { return .tile }
        switch e.element {
        case .bf16: return .bf16
        case .e4m3 where e.convention == .multiply && !e.hasZeroPoint:
            switch e.scale {
            case .tensor: return .e4m3(srows: 1, sstride: 0, scols: Int32(w.cols))
            case .channel: return .e4m3(srows: 1, sstride: 1, scols: Int32(w.cols))
            case let .block(br, bc) where br <= Int(Int32.max) && bc <= Int(Int32.max):
                return .e4m3(srows: Int32(br), sstride: w.scaleRowLength, scols: Int32(bc))
            default: return .tile
            }
        default: return .tile
        }
    }

    init(parts: [Linear], split: Split, bias: [Float]? = nil) {
        precondition(!parts.isEmpty && split != .none)
        weight = parts[0].weight
        self.bias = bias
        inputQuantizer = nil  // each part quantizes its own input slice
        self.parts = parts
        self.split = split
        outputs = split == .columns ? parts.reduce(0) { $0 + $1.outputs } : parts[0].outputs
        inputs = split == .rows ? parts.reduce(0) { $0 + $1.inputs } : parts[0].inputs
        rowsPath = .tile  // the parts run their own products
    }

    /// x quantized as the static activation scheme says, in a buffer `body` may use (row stride
    /// `inputs`); x itself when there is no input quantizer.
    @inline(__always)
    func withInput(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, _ body: (UnsafePointer<Float>, Int) -> Void) {
        guard let q = inputQuantizer else { return body(x, ldx) }
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: max(1, m * inputs))
        defer { buf.deallocate() }
        q.apply(x, rows: m, cols: inputs, ldx: ldx, into: buf)
        body(UnsafePointer(buf), inputs)
    }

    /// y[m, n] (row stride ldy) = x[m, :] · W[n, :] + b[n] for m < rows, on all workers.
    public func apply(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, pool: WorkerPool) {
        if split != .none {
            return applyParts(x, rows: m, ldx: ldx, into: y, ldy: ldy) { p, x, ldx, y, ldy in p.apply(x, rows: m, ldx: ldx, into: y, ldy: ldy, pool: pool) }
        }
        if inputQuantizer != nil {
            return withInput(x, rows: m, ldx: ldx) { qx, ld in applyPlain(qx, rows: m, ldx: ld, into: y, ldy: ldy, pool: pool) }
        }
        applyPlain(x, rows: m, ldx: ldx, into: y, ldy: ldy, pool: pool)
    }

    private func applyPlain(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, pool: WorkerPool) {
        let nTiles = (outputs + Linear.tileRows - 1) / Linear.tileRows
        // A work item decodes its tile once for all its rows, so rows are split only as far as
        // it takes to give every worker two items (narrow weights: a router, a 128-row q_a).
        let mChunks = max(1, min((2 * pool.threads + nTiles - 1) / nTiles, m / Linear.minChunkRows))
        let chunk = (m + mChunks - 1) / mChunks
        pool.run(nTiles * mChunks) { item, w in
            let t = item % nTiles, c = item / nTiles
            let m0 = c * chunk, m1 = min(m, m0 + chunk)
            if m0 < m1 {
                self.tile(t, x + m0 * ldx, rows: m1 - m0, ldx: ldx, y + m0 * ldy, ldy: ldy, scratch: pool.scratch(w))
            }
        }
    }

    /// The same product on the calling thread only, with worker `w`'s scratch (for callers that
    /// parallelise over something else, such as experts).
    public func applySerial(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutablePointer<Float>) {
        if split != .none {
            return applyParts(x, rows: m, ldx: ldx, into: y, ldy: ldy) { p, x, ldx, y, ldy in p.applySerial(x, rows: m, ldx: ldx, into: y, ldy: ldy, scratch: scratch) }
        }
        let nTiles = (outputs + Linear.tileRows - 1) / Linear.tileRows
        withInput(x, rows: m, ldx: ldx) { qx, ld in
            for t in 0..<nTiles { tile(t, qx, rows: m, ldx: ld, y, ldy: ldy, scratch: scratch) }
        }
    }

    /// Output rows [t·tileRows, …) of W against m rows of x.
    @inline(__always)
    func tile(_ t: Int, _ x: UnsafePointer<Float>, rows m: Int, ldx: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutablePointer<Float>) {
        let n0 = t * Linear.tileRows, n1 = min(outputs, n0 + Linear.tileRows)
        let nb = n1 - n0
        let yt = y + n0
        // Without a bias the first input block's product is stored rather than added, so y is
        // never zeroed first (it may be uninitialised).
        if let b = bias {
            for i in 0..<m { for j in 0..<nb { yt[i * ldy + j] = b[n0 + j] } }
        } else if inputs == 0 {
            for i in 0..<m { (yt + i * ldy).update(repeating: 0, count: nb) }
        }
        if m < Linear.packedMinRows && inputs > 0 {
            let set: Int32 = bias == nil ? 1 : 0
            let raw = weight.data.bytes.baseAddress!
            switch rowsPath {
            case .tile: break
            case .bf16:
                let w = raw.assumingMemoryBound(to: UInt16.self) + n0 * inputs
                return ek_gemm_rows_bf16(Int32(m), Int32(nb), Int32(inputs), x, Int32(ldx), w, inputs, yt, Int32(ldy), set)
            case let .e4m3(srows, sstride, scols):
                let w = raw.assumingMemoryBound(to: UInt8.self) + n0 * inputs
                return weight.scaleValues.withUnsafeBufferPointer { s in
                    ek_gemm_rows_e4m3(Int32(m), Int32(nb), Int32(inputs), x, Int32(ldx), w, inputs, s.baseAddress!,
                                      Int32(n0), srows, sstride, scols, yt, Int32(ldy), set)
                }
            }
        }
        let decoded = scratch, packed = scratch + Linear.tileRows * Linear.tileCols
        var k0 = 0
        while k0 < inputs {
            let k1 = min(inputs, k0 + Linear.tileCols)
            let kb = k1 - k0
            let set: Int32 = k0 == 0 && bias == nil ? 1 : 0
            weight.dequantize(rows: n0..<n1, cols: k0..<k1, into: decoded, leadingDimension: kb)
            if m >= Linear.packedMinRows {
                ek_pack_tile(decoded, Int32(nb), Int32(kb), Int32(kb), packed)
                ek_gemm_packed(Int32(m), Int32(nb), Int32(kb), x + k0, Int32(ldx), packed, yt, Int32(ldy), set)
            } else {
                ek_gemm_rows(Int32(m), Int32(nb), Int32(kb), x + k0, Int32(ldx), decoded, Int32(kb), yt, Int32(ldy), set)
            }
            k0 = k1
        }
    }

    /// Rows `ids` of W decoded into consecutive rows of `out` (the embedding lookup).
    public func gatherRows(_ ids: [Int], into out: UnsafeMutablePointer<Float>, ld: Int) {
        if split != .none { return gatherParts(ids, into: out, ld: ld) }
        for (i, id) in ids.enumerated() {
            weight.dequantize(rows: id..<(id + 1), cols: 0..<inputs, into: out + i * ld, leadingDimension: inputs)
        }
    }
}
