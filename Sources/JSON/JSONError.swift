import Diagnostics

/// A JSON syntax error, with the byte offset where parsing stopped and, once a caller that read
/// a file has filled it in, the file.
public struct JSONError: DiagnosticError, Equatable {
    /// Byte offset into the parsed text.
    public var offset: Int?
    public var message: String
    /// The file the text came from (nil when parsing from memory).
    public var file: String?

    public init(offset: Int, message: String, file: String? = nil) {
        self.offset = offset
        self.message = message
        self.file = file
    }

    public var category: ErrorCategory { .input }
    public var code: String { "json.syntax" }
    /// The offset as a plain integer (every JSONError has one).
    public var byteOffset: Int { offset ?? 0 }

    /// The same error, naming `file`.
    public func naming(file: String) -> JSONError { var e = self; e.file = file; return e }
}
