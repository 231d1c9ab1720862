/// A row-major f32 activation buffer (rows × cols), owned and zero-initialised.
public final class Matrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let data: UnsafeMutablePointer<Float>

    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        data = .allocate(capacity: max(1, rows * cols))
        data.initialize(repeating: 0, count: max(1, rows * cols))
    }

    /// Not zeroed: for a buffer written in full before it is read (the output of a Linear, whose
    /// tiles store their products), which saves clearing megabytes of logits per forward call.
    public init(rows: Int, cols: Int, uninitialized: Void) {
        self.rows = rows
        self.cols = cols
        data = .allocate(capacity: max(1, rows * cols))
    }

    deinit { data.deallocate() }

    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<Float> { data + r * cols }

    public subscript(r: Int, c: Int) -> Float {
        get { data[r * cols + c] }
        set { data[r * cols + c] = newValue }
    }

    public func zero() { data.update(repeating: 0, count: rows * cols) }

    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: rows * cols)) }
}
