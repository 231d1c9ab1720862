import Diagnostics

/// Why a tensor could not be quantized or dequantized.
public enum QuantizationError: DiagnosticError {
    case nonFinite(tensor: String, row: Int, column: Int)
    case unsupportedDType(tensor: String, dtype: String, String)
    case badShape(tensor: String, shape: [Int], String)
    case missingScale(tensor: String, scale: String)
    case nothingQuantized(String)
    /// A value passed to the library is out of range or contradicts another (the CLI names the flag).
    case invalidOption(String)
    /// A quantized input dsconvert must not convert (ambiguous scales, orphans, unsupported encodings).
    case invalidQuantizedInput(tensor: String, String, at: StoredAt?)
    /// A scale or value that would make the conversion silently wrong (NaN, inf, zero, negative
    /// scale; FP8 NaN code): element `index` of the tensor, at byte `offset` of `file` when known.
    case invalidValue(tensor: String, index: Int, String, file: String?, offset: Int?)
    /// `--act static --ranges FILE` that does not fit this model: inputs missing, extra or renamed.
    case rangesMismatch(file: String, String)
    /// The SmoothQuant factors of a ranges file that do not fit this model: a norm it does not
    /// have (or under another name), s of the wrong length, readers that differ from the model's.
    case smoothingMismatch(file: String, tensor: String, String)

    public var category: ErrorCategory {
        if case .invalidOption = self { return .usage }
        return .input
    }

    public var code: String {
        switch self {
        case .nonFinite: return "quantization.non_finite"
        case .unsupportedDType: return "quantization.unsupported_dtype"
        case .badShape: return "quantization.bad_shape"
        case .missingScale: return "quantization.missing_scale"
        case .nothingQuantized: return "quantization.nothing_quantized"
        case .invalidOption: return "usage.invalid_option"
        case .invalidQuantizedInput: return "quantization.invalid_quantized_input"
        case .invalidValue: return "quantization.invalid_value"
        case .rangesMismatch: return "quantization.ranges_mismatch"
        case .smoothingMismatch: return "quantization.smoothing_mismatch"
        }
    }

    public var tensor: String? {
        switch self {
        case let .nonFinite(t, _, _), let .unsupportedDType(t, _, _), let .badShape(t, _, _), let .missingScale(t, _),
             let .invalidQuantizedInput(t, _, _), let .invalidValue(t, _, _, _, _), let .smoothingMismatch(_, t, _):
            return t
        case .nothingQuantized, .invalidOption, .rangesMismatch:
            return nil
        }
    }

    public var file: String? {
        switch self {
        case let .invalidQuantizedInput(_, _, at): return at?.file
        case let .invalidValue(_, _, _, file, _): return file
        case let .rangesMismatch(file, _), let .smoothingMismatch(file, _, _): return file
        default: return nil
        }
    }

    public var offset: Int? {
        switch self {
        case let .invalidQuantizedInput(_, _, at): return at?.offset
        case let .invalidValue(_, _, _, _, offset): return offset
        default: return nil
        }
    }

    public var message: String {
        switch self {
        case let .nonFinite(_, r, c):
            return "NaN or infinity near row \(r), column \(c); a quantization scale cannot be computed (the checkpoint is damaged)"
        case let .unsupportedDType(_, d, why):
            return "dtype \(d) \(why)"
        case let .badShape(_, s, why):
            return "shape \(s): \(why)"
        case let .missingScale(_, s):
            return "is FP8/INT8 but its scale tensor '\(Diagnostic.escaped(s))' is missing"
        case let .nothingQuantized(msg), let .invalidOption(msg), let .invalidQuantizedInput(_, msg, _), let .rangesMismatch(_, msg), let .smoothingMismatch(_, _, msg):
            return msg
        case let .invalidValue(_, i, msg, _, _):
            return "element \(i): \(msg)"
        }
    }
}
