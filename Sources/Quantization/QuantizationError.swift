/// Why a tensor could not be quantized or dequantized.
public enum QuantizationError: Error, CustomStringConvertible, Sendable {
    case nonFinite(tensor: String, row: Int, column: Int)
    case unsupportedDType(tensor: String, dtype: String, String)
    case badShape(tensor: String, shape: [Int], String)
    case missingScale(tensor: String, scale: String)
    case nothingQuantized(String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case let .nonFinite(t, r, c):
            return "tensor '\(t)': NaN or infinity near row \(r), column \(c); a quantization scale cannot be computed (the checkpoint is damaged)"
        case let .unsupportedDType(t, d, why):
            return "tensor '\(t)': dtype \(d) \(why)"
        case let .badShape(t, s, why):
            return "tensor '\(t)' \(s): \(why)"
        case let .missingScale(t, s):
            return "tensor '\(t)' is FP8/INT8 but its scale tensor '\(s)' is missing"
        case let .nothingQuantized(msg):
            return msg
        case let .invalidOption(msg):
            return msg
        }
    }
}
