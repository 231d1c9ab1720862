import Diagnostics

/// Why `dsconvert calibrate` cannot calibrate (bad input, exit status 1).
public enum CalibrationError: DiagnosticError, Equatable {
    /// The text gives fewer ids than one `ctx` window.
    case textTooShort(file: String, tokens: Int, context: Int)
    /// An observed input held a NaN or an infinity in a window (0-based).
    case nonFinite(input: String, consumers: [String], window: Int)
    /// `--dump-input` names no observed input of the model.
    case unknownInput(String)
    /// `--smooth` cannot use a weight of the model (quantized, or not shaped as a reader).
    case smoothing(tensor: String, String)

    public var category: ErrorCategory { .input }

    public var code: String {
        switch self {
        case .textTooShort: return "calibrate.text_too_short"
        case .nonFinite: return "calibrate.non_finite"
        case .unknownInput: return "calibrate.unknown_input"
        case .smoothing: return "calibrate.smoothing"
        }
    }

    public var file: String? {
        if case let .textTooShort(file, _, _) = self { return file }
        return nil
    }

    public var tensor: String? {
        switch self {
        case let .nonFinite(input, _, _): return input
        case let .unknownInput(name): return name
        case let .smoothing(tensor, _): return tensor
        default: return nil
        }
    }

    public var offset: Int? { nil }

    public var message: String {
        switch self {
        case let .textTooShort(_, tokens, context):
            return "gives \(tokens) tokens, fewer than one --ctx window of \(context)"
        case let .nonFinite(_, consumers, window):
            return "a NaN or infinity in the input of \(consumers.joined(separator: ", ")) (calibration window \(window)): the model's activations overflow on this text"
        case .unknownInput:
            return "is not an input this model's linear layers read (the names are those of ranges.json)"
        case let .smoothing(_, m):
            return m
        }
    }
}
