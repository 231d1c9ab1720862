import Diagnostics
import SystemIO

/// Why a .dspack was rejected, with the error code of Formats/dspack.md §11 (`dspack.CODE`), the
/// file, the entry concerned and the byte offset when known.
public struct DSPackError: DiagnosticError {
    /// The codes of the spec's §11, spelled as there.
    public enum Code: String, Sendable, CaseIterable {
        case truncated
        case badMagic = "bad_magic"
        case unsupportedVersion = "unsupported_version"
        case headerSize = "header_size"
        case headerDigest = "header_digest"
        case headerInvalid = "header_invalid"
        case paddingNonzero = "padding_nonzero"
        case metadataInvalid = "metadata_invalid"
        case entryInvalid = "entry_invalid"
        case entryMisaligned = "entry_misaligned"
        case entryOutOfBounds = "entry_out_of_bounds"
        case entryOverlap = "entry_overlap"
        case trailerInvalid = "trailer_invalid"
        case checksumMismatch = "checksum_mismatch"
        case signatureInvalid = "signature_invalid"
        case unsigned
        case keyMismatch = "key_mismatch"
        /// §10: a `.dspack.zst` transport file that is not well formed.
        case transportInvalid = "transport_invalid"
        /// Not in §11: the operating system refused a read or write.
        case io
        /// Not in §11: a tensor that is not in the pack was asked for, or a writer was misused.
        case missingTensor = "missing_tensor"
        case writerMisuse = "writer_misuse"
        /// Not in §11: a signing or public key file that is not an Ed25519 PEM key.
        case keyInvalid = "key_invalid"
        /// Not in §11: packs checked together (`verify DIR`) that are not exactly the ranks of one
        /// parallel plan (§6).
        case planMismatch = "plan_mismatch"
    }

    public var kind: Code
    public var path: String
    public var tensor: String?
    public var offset: Int?
    public var message: String
    var underlying: (any DiagnosticError)?

    public init(_ kind: Code, file: String, tensor: String? = nil, offset: Int? = nil, _ message: String) {
        self.kind = kind
        self.path = file
        self.tensor = tensor
        self.offset = offset
        self.message = message
    }

    static func io(_ e: Error, file: String) -> DSPackError {
        var d = DSPackError(.io, file: file, "\(e)")
        if let e = e as? IOError { d.message = e.message; d.underlying = e; d.path = e.file ?? file }
        return d
    }

    public var category: ErrorCategory {
        switch kind {
        case .checksumMismatch, .signatureInvalid, .unsigned, .keyMismatch, .planMismatch: return .verification
        case .io: return underlying?.category ?? .io
        default: return .input
        }
    }
    public var code: String { kind == .io ? (underlying?.code ?? "io.error") : "dspack." + kind.rawValue }
    public var file: String? { path }
    /// The spec's code (`header_digest`), as printed in front of the message.
    public var specCode: String { kind.rawValue }
}
