import SystemIO

/// Why a checkpoint was rejected, and where: file, tensor (when one is concerned) and byte offset
/// (into the file) when it is known.
///
/// Printed as one line, e.g.
/// `model-00003-of-00005.safetensors: tensor 'model.layers.1.mlp.gate.weight': data_offsets [0, 8192] hold 8192 bytes but BF16 [16, 256] needs 8192`.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
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
        case writerMisuse
    }

    public var code: Code
    public var file: String
    public var tensor: String?
    public var offset: Int?
    public var message: String

    public init(_ code: Code, file: String, tensor: String? = nil, offset: Int? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.tensor = tensor
        self.offset = offset
        self.message = message
    }

    public var description: String {
        var s = file
        if let tensor { s += ": tensor '\(tensor)'" }
        if let offset { s += " (byte \(offset))" }
        return s + ": " + message
    }

    /// Wraps a system error (or passes a SafeTensorsError through).
    static func io(_ e: any Error) -> SafeTensorsError {
        if let s = e as? SafeTensorsError { return s }
        if let io = e as? IOError { return SafeTensorsError(.io, file: io.path, io.reason) }
        return SafeTensorsError(.io, file: "", "\(e)")
    }
}
