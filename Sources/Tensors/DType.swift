/// Every element type the safetensors format (Python package 0.8) names.
///
/// The raw value is the header spelling. Sub-byte types (F4, F6_*) pack several values per byte;
/// their byte size is `numel × bits / 8`, which must be whole.
public enum DType: String, CaseIterable, Sendable, Hashable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8"
    case i16 = "I16", u16 = "U16"
    case f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case f64 = "F64", i64 = "I64", u64 = "U64"
    case c64 = "C64"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"
    case f8e4m3fnuz = "F8_E4M3FNUZ", f8e5m2fnuz = "F8_E5M2FNUZ"
    case f8e8m0 = "F8_E8M0"
    case f6e2m3 = "F6_E2M3", f6e3m2 = "F6_E3M2"
    case f4 = "F4"

    /// Storage bits per element.
    public var bits: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2, .f8e4m3fnuz, .f8e5m2fnuz, .f8e8m0: return 8
        case .i16, .u16, .f16, .bf16: return 16
        case .i32, .u32, .f32: return 32
        case .f64, .i64, .u64, .c64: return 64
        case .f6e2m3, .f6e3m2: return 6
        case .f4: return 4
        }
    }

    /// Whole bytes per element (nil for the sub-byte types).
    public var byteSize: Int? { bits % 8 == 0 ? bits / 8 : nil }

    /// True for the floating-point types dsconvert converts (F32, F16, BF16, F8_E4M3, F8_E5M2).
    public var isConvertibleFloat: Bool {
        switch self {
        case .f32, .f16, .bf16, .f8e4m3, .f8e5m2, .f64: return true
        default: return false
        }
    }

    /// True for the 8-bit float formats.
    public var isFP8: Bool { self == .f8e4m3 || self == .f8e5m2 || self == .f8e4m3fnuz || self == .f8e5m2fnuz }

    /// The PyTorch name (`torch.bfloat16`, …) used in config.json's `torch_dtype`.
    public var torchName: String? {
        switch self {
        case .f32: return "float32"
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        case .f64: return "float64"
        default: return nil
        }
    }

    /// The dtype for a config.json `torch_dtype` value (`bfloat16`, `float16`, `float32`, with or
    /// without a `torch.` prefix).
    public init?(torchName: String) {
        let n = torchName.hasPrefix("torch.") ? String(torchName.dropFirst(6)) : torchName
        switch n {
        case "float32", "float": self = .f32
        case "float16", "half": self = .f16
        case "bfloat16": self = .bf16
        case "float64", "double": self = .f64
        default: return nil
        }
    }

    /// Bytes for `count` elements, or nil when a sub-byte type does not fill whole bytes.
    public func byteCount(elements count: Int) -> Int? {
        let (bitsTotal, overflow) = count.multipliedReportingOverflow(by: bits)
        if overflow || bitsTotal % 8 != 0 { return nil }
        return bitsTotal / 8
    }
}
