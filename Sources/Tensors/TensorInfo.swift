import Diagnostics

/// One tensor's header entry: its name, type, shape and where its bytes lie in the data buffer.
public struct TensorInfo: Sendable, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range relative to the start of the data buffer (after the header).
    public var dataOffsets: Range<Int>

    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// Number of elements (1 for a scalar of shape []).
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataOffsets.count }

    /// `[7168, 2048]`
    public var shapeText: String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}

/// A tensor to be written: name, type and shape (its offsets are assigned by the writer).
public struct TensorSpec: Sendable, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]

    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Byte size; traps on sub-byte sizes that are not whole (writers validate first).
    public var byteCount: Int { dtype.byteCount(elements: elementCount)! }
}

/// A tensor's bytes in a mapped file, with its header entry (zero-copy).
public struct TensorView: @unchecked Sendable {
    public var info: TensorInfo
    public var bytes: UnsafeRawBufferPointer
    /// The file the bytes come from.
    public var file: String
    /// Keeps the mapping alive as long as the view exists.
    public let owner: AnyObject?

    public init(info: TensorInfo, bytes: UnsafeRawBufferPointer, file: String, owner: AnyObject? = nil) {
        self.info = info
        self.bytes = bytes
        self.file = file
        self.owner = owner
    }

    public var name: String { info.name }
    public var dtype: DType { info.dtype }
    public var shape: [Int] { info.shape }
}

extension TensorView {
    /// The tensor's elements as `T`, zero-copy. `T` must have the dtype's element size (e.g.
    /// `UInt16` or `Float16` for BF16/F16, `Float` for F32, `UInt8` for FP8). safetensors only
    /// aligns the header to 8 bytes, so a tensor after an odd-sized one can start misaligned for
    /// `T`: that is an error here (use `bytes` with `loadUnaligned` instead).
    public func elements<T>(as type: T.Type) throws -> UnsafeBufferPointer<T> {
        guard let size = dtype.byteSize, size == MemoryLayout<T>.stride else {
            throw TensorAccessError(file: file, tensor: name,
                "\(dtype.rawValue) elements are \(dtype.bits) bits; \(T.self) is \(MemoryLayout<T>.stride * 8)")
        }
        guard let base = bytes.baseAddress else { return UnsafeBufferPointer(start: nil, count: 0) }
        guard Int(bitPattern: base) % MemoryLayout<T>.alignment == 0 else {
            throw TensorAccessError(file: file, tensor: name,
                "data is not \(MemoryLayout<T>.alignment)-byte aligned in the file; read it with loadUnaligned")
        }
        return UnsafeBufferPointer(start: base.assumingMemoryBound(to: T.self), count: info.elementCount)
    }
}

/// A typed view was asked for with the wrong element type or alignment (a programming error of
/// the caller, reported as bad input since the file's layout decides alignment).
public struct TensorAccessError: DiagnosticError {
    public var fileName: String
    public var tensorName: String
    public var message: String
    public init(file: String, tensor: String, _ message: String) {
        fileName = file
        tensorName = tensor
        self.message = message
    }
    public var category: ErrorCategory { .input }
    public var code: String { "tensor.bad_access" }
    public var file: String? { fileName }
    public var tensor: String? { tensorName }
}
