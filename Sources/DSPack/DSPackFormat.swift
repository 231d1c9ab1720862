import JSON
import Tensors

/// The .dspack format for the writer seam (`OutputLayout(format:)`): every file it writes holds
/// the tensors given to `makeWriter`, then `files` (config.json, tokenizer, …) as embedded file
/// entries, with `metadata` (§2.4) in the header. A conversion into packs therefore writes no
/// index, config.json or copies beside them (`embedsModelFiles`).
public struct DSPackFormat: TensorFileFormat {
    /// The embedded files, in entry order.
    public var files: [(String, [UInt8])]
    /// The header's metadata object.
    public var metadata: JSONValue
    /// The descriptive role (§4) of an output tensor, by name; absent names are unspecified.
    public var roles: [String: DSPackLayout.Role]

    public init(files: [(String, [UInt8])] = [], metadata: JSONValue = .object([]), roles: [String: DSPackLayout.Role] = [:]) {
        self.files = files
        self.metadata = metadata
        self.roles = roles
    }

    public var name: String { "dspack" }
    public var fileExtension: String { "dspack" }
    public var embedsModelFiles: Bool { true }

    private var metadataBytes: Int { JSONWriter.compact(metadata).utf8.count }

    public func fileSize(of tensors: [TensorSpec]) throws -> Int {
        DSPackWriter.fileSize(tensors: tensors, files: files.map { ($0.0, $0.1.count) }, metadataBytes: metadataBytes)
    }

    public func makeSizer() -> TensorFileSizer { DSPackSizer(files: files.map { ($0.0, $0.1.count) }, metadataBytes: metadataBytes) }

    public func makeWriter(path: String, tensors: [TensorSpec]) throws -> TensorFileWriter {
        try DSPackWriter(path: path, tensors: tensors.map { DSPackWriter.Tensor($0, role: roles[$0.name] ?? .unspecified) },
                         files: files, metadata: metadata)
    }
}

/// The size of a pack as tensors are appended, in O(1) per tensor: the header grows by one
/// 128-byte entry and the name (with its NUL) per tensor, the data by the tensor's bytes rounded
/// up to 4096; the embedded files and the metadata are fixed.
struct DSPackSizer: TensorFileSizer {
    private let fileHeaderBytes: Int
    private let fileDataBytes: Int
    private var tensorHeaderBytes = 0
    private var tensorDataBytes = 0

    init(files: [(String, Int)], metadataBytes: Int) {
        fileHeaderBytes = DSPackLayout.preambleSize + metadataBytes + files.reduce(0) { $0 + DSPackLayout.entrySize + $1.0.utf8.count + 1 }
        fileDataBytes = files.reduce(0) { $0 + DSPackLayout.align($1.1) }
    }

    mutating func append(_ spec: TensorSpec) {
        tensorHeaderBytes += DSPackLayout.entrySize + spec.name.utf8.count + 1
        tensorDataBytes += DSPackLayout.align(spec.byteCount)
    }

    var fileSize: Int {
        DSPackLayout.align(fileHeaderBytes + tensorHeaderBytes + DSPackLayout.digestSize) + tensorDataBytes + fileDataBytes
    }
}
