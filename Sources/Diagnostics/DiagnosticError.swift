/// The one shape every dsconvert library error has: a category (what kind of failure, which the
/// command line alone turns into an exit status), a stable code (a dotted identifier that scripts
/// can match; it never changes once released), where it happened (file, tensor, byte offset,
/// each when known) and a message saying what was wrong.
///
/// Library errors carry values, never command-line flag names; the `dsconvert` executable maps
/// categories to exit statuses in one place (`ExitStatus` there) and prints errors as
/// `FILE: tensor 'NAME' (byte N): MESSAGE` or, with `--json`, as
/// `{"error": {"code", "exit_status", "message", "file", "tensor", "offset"}}`.
public protocol DiagnosticError: Error, CustomStringConvertible, Sendable {
    var category: ErrorCategory { get }
    /// A stable identifier such as `safetensors.size_mismatch` (lowercase, dotted, snake_case).
    var code: String { get }
    /// The file concerned, when one is.
    var file: String? { get }
    /// The tensor concerned, when one is.
    var tensor: String? { get }
    /// The byte offset into `file`, when known.
    var offset: Int? { get }
    /// What was wrong, without the location (which `description` puts in front).
    var message: String { get }
}

/// What kind of failure an error is.
public enum ErrorCategory: String, Sendable, CaseIterable {
    /// A command-line value is invalid (out of range, malformed, contradictory options).
    case usage
    /// The input is malformed, unsupported or inconsistent (checkpoint, config, index, plan files).
    case input
    /// The operating system refused an operation (open, read, write, rename, disk full).
    case io
    /// The output folder is in a state this run must not touch (another run's, another
    /// conversion's, incomplete, changed since it was written).
    case output
    /// A quality gate failed (eval).
    case gate
    /// Verification or a signature check failed.
    case verification
    /// SIGINT or SIGTERM arrived; `Interrupted.signal` says which.
    case interrupted
}

extension DiagnosticError {
    public var file: String? { nil }
    public var tensor: String? { nil }
    public var offset: Int? { nil }
    public var description: String { Diagnostic.format(file: file, tensor: tensor, offset: offset, message: message) }
}

/// A diagnostic as plain values: for errors that need no type of their own, and for carrying any
/// `DiagnosticError` across a boundary.
public struct Diagnostic: DiagnosticError, Equatable {
    public var category: ErrorCategory
    public var code: String
    public var file: String?
    public var tensor: String?
    public var offset: Int?
    public var message: String

    public init(_ category: ErrorCategory, code: String, file: String? = nil, tensor: String? = nil, offset: Int? = nil, _ message: String) {
        self.category = category
        self.code = code
        self.file = file
        self.tensor = tensor
        self.offset = offset
        self.message = message
    }

    public init(_ e: any DiagnosticError) {
        self.init(e.category, code: e.code, file: e.file, tensor: e.tensor, offset: e.offset, e.message)
    }

    public var description: String { Diagnostic.format(file: file, tensor: tensor, offset: offset, message: message) }

    /// The one text format of every error: `FILE: tensor 'NAME' (byte N): MESSAGE`, with each
    /// part present only when known, and control characters in names escaped so a hostile tensor
    /// name cannot write to the terminal.
    public static func format(file: String?, tensor: String?, offset: Int?, message: String) -> String {
        var s = ""
        if let file, !file.isEmpty { s = escaped(file) }
        if let tensor {
            s += (s.isEmpty ? "" : ": ") + "tensor '\(escaped(tensor))'"
        }
        if let offset { s += (s.isEmpty ? "" : " ") + "(byte \(offset))" }
        let m = escaped(message, keepWhitespace: true)
        return s.isEmpty ? m : s + ": " + m
    }

    /// `text` with C0/C1 control characters and DEL written as `\u{..}` escapes (tabs and
    /// newlines stay when `keepWhitespace`).
    public static func escaped(_ text: String, keepWhitespace: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: { isControl($0, keepWhitespace) }) else { return text }
        var out = ""
        for u in text.unicodeScalars {
            if isControl(u, keepWhitespace) {
                out += "\\u{" + String(u.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    private static func isControl(_ u: Unicode.Scalar, _ keepWhitespace: Bool) -> Bool {
        if keepWhitespace && (u == "\n" || u == "\t") { return false }
        return u.value < 0x20 || (0x7F...0x9F).contains(u.value)
    }
}
