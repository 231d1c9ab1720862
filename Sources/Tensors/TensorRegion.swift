import Diagnostics

/// A slice of a tensor along one dimension — the sharder's primitive: a tensor-parallel rank
/// holds rows (column-parallel) or columns (row-parallel) of each weight, an expert-parallel rank
/// whole experts. A plan entry with a region reads only those elements and writes them as a
/// tensor of its own.
public struct TensorRegion: Sendable, Hashable, CustomStringConvertible {
    public var dimension: Int
    public var range: Range<Int>

    public init(dimension: Int, range: Range<Int>) {
        self.dimension = dimension
        self.range = range
    }

    public var description: String { "dim \(dimension) [\(range.lowerBound), \(range.upperBound))" }

    /// Throws unless the region lies inside a tensor of `shape` and is not empty.
    public func validate(_ shape: [Int], tensor: String) throws {
        guard dimension >= 0, dimension < shape.count else {
            throw TensorRegionError(tensor: tensor, "a region along \(description) of a \(shape.count)-D tensor \(shape)")
        }
        guard range.lowerBound >= 0, range.upperBound <= shape[dimension], !range.isEmpty else {
            throw TensorRegionError(tensor: tensor, "region \(description) is empty or outside the tensor's shape \(shape)")
        }
    }

    /// The region's own shape.
    public func shape(of full: [Int]) -> [Int] {
        var s = full
        s[dimension] = range.count
        return s
    }

    /// The matching region of a block-scale grid (one scale per `blocks[d]` elements along each
    /// dimension d of the weight): refuses a cut inside a block, except at the tensor's end.
    public func scaleGrid(weightShape: [Int], blocks: [Int], tensor: String) throws -> TensorRegion {
        try validate(weightShape, tensor: tensor)
        let b = blocks[dimension], n = weightShape[dimension]
        for edge in [range.lowerBound, range.upperBound] where edge % b != 0 && edge != n {
            throw TensorRegionError(tensor: tensor, "region \(description) cuts inside a \(b)-wide scale block at \(edge) (cuts must be multiples of \(b), or the end \(n))")
        }
        return TensorRegion(dimension: dimension, range: (range.lowerBound / b)..<((range.upperBound + b - 1) / b))
    }

    /// The region's bytes as runs of contiguous bytes of the full tensor (row-major): one run for
    /// a slice along dimension 0, one per outer index otherwise. `body` gets (offset in the full
    /// tensor, length) in order; the runs concatenated are the region, row-major.
    public func forEachRun(shape: [Int], elementSize: Int, _ body: (Int, Int) throws -> Void) rethrows {
        let inner = shape[(dimension + 1)...].reduce(1, *) * elementSize
        let outer = shape[..<dimension].reduce(1, *)
        let stride = shape[dimension] * inner
        if dimension == 0 {
            try body(range.lowerBound * inner, range.count * inner)
            return
        }
        for o in 0..<outer { try body(o * stride + range.lowerBound * inner, range.count * inner) }
    }

    /// Copies the region of `full` (a whole tensor of `shape`) into `out`, which must hold
    /// `shape(of:)`'s elements.
    public func gather(_ full: UnsafeRawBufferPointer, shape: [Int], elementSize: Int, into out: UnsafeMutableRawPointer) {
        var at = 0
        forEachRun(shape: shape, elementSize: elementSize) { off, len in
            (out + at).copyMemory(from: full.baseAddress! + off, byteCount: len)
            at += len
        }
    }
}

/// A region that does not fit its tensor or its scale grid.
public struct TensorRegionError: DiagnosticError {
    public var tensorName: String
    public var message: String
    public init(tensor: String, _ message: String) {
        tensorName = tensor
        self.message = message
    }
    public var category: ErrorCategory { .input }
    public var code: String { "tensor.bad_region" }
    public var tensor: String? { tensorName }
}
