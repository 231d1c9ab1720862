import Diagnostics

/// A histogram file or ranges.json that cannot be used: what is wrong, in which file, at which
/// byte or for which input (Formats/calibration.md gives the formats and the codes).
public struct CalibrationFileError: DiagnosticError, Equatable {
    public enum Kind: String, Sendable {
        case badMagic = "bad_magic"
        case truncated
        case checksum
        case header
        case unsupportedVersion = "unsupported_version"
        case sizeMismatch = "size_mismatch"
        case badValue = "bad_value"
    }
    public var kind: Kind
    /// "histograms" or "ranges": the first part of the code.
    public var format: String
    public var file: String?
    public var tensor: String?
    public var offset: Int?
    public var message: String

    public init(_ kind: Kind, format: String, file: String? = nil, input: String? = nil, offset: Int? = nil, _ message: String) {
        self.kind = kind
        self.format = format
        self.file = file
        self.tensor = input
        self.offset = offset
        self.message = message
    }

    public var category: ErrorCategory { .input }
    public var code: String { "\(format).\(kind.rawValue)" }
}
