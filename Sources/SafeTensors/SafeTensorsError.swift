import Diagnostics
import SystemIO

/// Why a checkpoint was rejected, and where: file, tensor (when one is concerned) and byte offset
/// (into the file) when it is known.
///
/// Printed as one line, e.g.
/// `model-00003-of-00005.safetensors: tensor 'model.layers.1.mlp.gate.weight': data_offsets [0, 8192] hold 8192 bytes but BF16 [16, 256] needs 8192`.
public struct SafeTensorsError: DiagnosticError {
    public enum Code: String, Sendable {
        case io
        case truncated
        case headerTooLarge
        case headerOutOfBounds
        case invalidJSON
        case invalidHeader
        case unknownDType
        case invalidShape
        case sizeMismatch
        case overlap
        case hole
        case offsetOutOfBounds
        case notFullyCovered
        case invalidMetadata
        case indexInvalid
        case missingShard
        case missingTensor
        case duplicateTensor
        case unlistedTensor
        /// model.safetensors beside an index naming other files.
        case ambiguousWeights
        /// One shard of an indexed checkpoint given where a whole checkpoint is converted.
        case shardOfIndexedCheckpoint
        /// A checkpoint without a single tensor given to a conversion.
        case noTensors
        case writerMisuse
    }

    public var kind: Code
    public var path: String
    public var tensor: String?
    public var offset: Int?
    public var message: String
    /// For `.io`: the code of the system error behind it (`io.not_found`, `io.disk_full`, …).
    public var underlyingCode: String?
    /// For `.io`: the category of the error behind it (a FIFO is bad input, ENOSPC an I/O error).
    public var underlyingCategory: ErrorCategory?

    public init(_ kind: Code, file: String, tensor: String? = nil, offset: Int? = nil, _ message: String) {
        self.kind = kind
        self.path = file
        self.tensor = tensor
        self.offset = offset
        self.message = message
    }

    public var file: String? { path.isEmpty ? nil : path }
    public var category: ErrorCategory { underlyingCategory ?? (kind == .io ? .io : .input) }

    /// `safetensors.` + the kind in snake case (`safetensors.size_mismatch`), or the system
    /// error's own code for `.io`.
    public var code: String {
        if let underlyingCode { return underlyingCode }
        var s = "safetensors."
        for c in kind.rawValue {
            if c.isUppercase { s += "_" + c.lowercased() } else { s.append(c) }
        }
        return s
    }

    /// Wraps a system error (or passes a SafeTensorsError through).
    static func io(_ e: any Error) -> SafeTensorsError {
        if let s = e as? SafeTensorsError { return s }
        if let d = e as? any DiagnosticError {
            var s = SafeTensorsError(.io, file: d.file ?? "", tensor: d.tensor, offset: d.offset, d.message)
            s.underlyingCode = d.code
            s.underlyingCategory = d.category
            return s
        }
        return SafeTensorsError(.io, file: "", "\(e)")
    }
}
