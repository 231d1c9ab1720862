import Tensors

/// The fixed parts of the format (Formats/dspack.md §1–§4): magic, sizes, alignment, the codes of
/// element types, and the byte layout of the preamble and of an entry row.
public enum DSPackLayout {
    public static let magic: [UInt8] = [0x89, 0x44, 0x53, 0x50, 0x41, 0x43, 0x4B, 0x0A]
    public static let trailerMagic: [UInt8] = Array("DSPKSIG".utf8) + [0]
    public static let versionMajor: UInt16 = 1
    public static let versionMinor: UInt16 = 0
    public static let preambleSize = 64
    public static let entrySize = 128
    public static let digestSize = 32
    public static let trailerSize = 128
    public static let alignment = 4096
    public static let maxDims = 8
    public static let noIndex: UInt32 = 0xFFFF_FFFF

    /// The next multiple of 4096 at or above `x`.
    @inline(__always) public static func align(_ x: Int) -> Int { (x + alignment - 1) & ~(alignment - 1) }

    /// §3: the dtype codes, in table order (the code is the index).
    public static let dtypes: [DType] = [
        .bool, .u8, .i8, .i16, .u16, .f16, .bf16, .i32, .u32, .f32, .f64, .i64, .u64, .c64,
        .f8e4m3, .f8e5m2, .f8e4m3fnuz, .f8e5m2fnuz, .f8e8m0, .f6e2m3, .f6e3m2, .f4,
    ]
    public static func code(of dtype: DType) -> UInt8 { UInt8(dtypes.firstIndex(of: dtype)!) }

    public enum Kind: UInt8, Sendable { case tensor = 0, file = 1 }

    /// §4: tensor roles (descriptive; unknown codes read as unspecified).
    public enum Role: UInt8, Sendable, CaseIterable {
        case unspecified = 0, embedding, lmHead, norm, attention, mlp, expert, sharedExpert, router,
             routerBias, mtpProjection, bias, quantizationParameter, buffer
    }

    /// `(layer, expert)` numbers in a tensor name (`model.layers.3.mlp.experts.17.up_proj.weight`:
    /// 3 and 17), -1 when absent.
    public static func layerAndExpert(of name: String) -> (Int32, Int32) {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        func number(after key: String) -> Int32 {
            guard let k = parts.firstIndex(where: { $0 == key }), k + 1 < parts.count,
                  parts[k + 1].allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int32(parts[k + 1]) else { return -1 }
            return v
        }
        return (number(after: "layers"), number(after: "experts"))
    }
}

/// One row of the entry table (§2.2), decoded.
public struct DSPackEntry: Sendable, Hashable {
    public var dataOffset: Int
    public var dataSize: Int
    public var xxh3: UInt64
    public var name: String
    public var kind: DSPackLayout.Kind
    public var dtype: DType
    public var shape: [Int]
    public var role: UInt8
    public var weightScale: UInt32
    public var inputScale: UInt32
    public var layer: Int32
    public var expert: Int32

    public init(dataOffset: Int, dataSize: Int, xxh3: UInt64, name: String, kind: DSPackLayout.Kind, dtype: DType, shape: [Int],
                role: UInt8 = 0, weightScale: UInt32 = DSPackLayout.noIndex, inputScale: UInt32 = DSPackLayout.noIndex,
                layer: Int32 = -1, expert: Int32 = -1) {
        self.dataOffset = dataOffset
        self.dataSize = dataSize
        self.xxh3 = xxh3
        self.name = name
        self.kind = kind
        self.dtype = dtype
        self.shape = shape
        self.role = role
        self.weightScale = weightScale
        self.inputScale = inputScale
        self.layer = layer
        self.expert = expert
    }
}

/// Little-endian appends and loads for the header.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { append(v) }
    mutating func u32(_ v: UInt32) { append(v) }
    mutating func u64(_ v: UInt64) { append(v) }
    mutating func i32(_ v: Int32) { append(UInt32(bitPattern: v)) }
    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeRawBufferPointer {
    /// The offset of the first non-zero byte in `range`, or nil (eight bytes at a time).
    func firstNonZero(in range: Range<Int>) -> Int? {
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            if loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { break }
            i += 8
        }
        while i < range.upperBound {
            if self[i] != 0 { return i }
            i += 1
        }
        return nil
    }
}
