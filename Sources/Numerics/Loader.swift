/// Reads elements of one float format as f32, eight lanes or one at a time. Kernels are generic
/// over a loader so the compiler emits one specialised loop per input format.
public protocol FloatLoader {
    static var format: FloatFormat { get }
    static func load8(_ p: UnsafeRawPointer, _ i: Int) -> Vector.F
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float
}

public enum BF16Loader: FloatLoader {
    public static var format: FloatFormat { .bf16 }
    @inlinable @inline(__always) public static func load8(_ p: UnsafeRawPointer, _ i: Int) -> Vector.F { Vector.loadBF16(p, i) }
    @inlinable @inline(__always) public static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        FloatBits.bf16ToF32(p.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
    }
}

public enum F16Loader: FloatLoader {
    public static var format: FloatFormat { .f16 }
    @inlinable @inline(__always) public static func load8(_ p: UnsafeRawPointer, _ i: Int) -> Vector.F { Vector.loadF16(p, i) }
    @inlinable @inline(__always) public static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        FloatBits.f16ToF32(p.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
    }
}

public enum F32Loader: FloatLoader {
    public static var format: FloatFormat { .f32 }
    @inlinable @inline(__always) public static func load8(_ p: UnsafeRawPointer, _ i: Int) -> Vector.F { Vector.loadF32(p, i) }
    @inlinable @inline(__always) public static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)
    }
}
