import Diagnostics

/// A `tokenizer.json` that cannot be used: malformed, inconsistent, or using a component this
/// module does not implement. Always names the file and the JSON key (`key`, a dotted path such
/// as `pre_tokenizer.pretokenizers[0].type`).
public struct TokenizerError: DiagnosticError, Equatable {
    public enum Kind: String, Sendable {
        /// A component type or option this module does not implement (Unigram, WordPiece,
        /// Metaspace, byte_fallback, ...): refused rather than approximated.
        case unsupported
        /// A value of the wrong JSON type, a missing key, a merge naming tokens not in the vocab.
        case malformed
        /// An id outside the vocabulary (decode).
        case unknownId = "unknown_id"
    }

    public var kind: Kind
    public var file: String?
    /// The JSON key concerned, as a dotted path from the top of the file.
    public var key: String?
    public var detail: String

    public init(_ kind: Kind, file: String?, key: String?, _ detail: String) {
        self.kind = kind
        self.file = file
        self.key = key
        self.detail = detail
    }

    public var category: ErrorCategory { .input }
    public var code: String { "tokenizer." + kind.rawValue }
    public var message: String {
        guard let key else { return detail }
        return "\(key): \(detail)"
    }
}
