import JSON
import Tensors

/// The .dspack format for the writer seam (`OutputLayout(format:)`): every file it writes holds
/// the tensors given to `makeWriter`, then `files` (config.json, tokenizer, …) as embedded file
/// entries, with `metadata` (§2.4) in the header (or, for an output `perOutput` names, what it
/// gives). A conversion into packs therefore writes no index, config.json or copies beside them
/// (`embedsModelFiles`).
public struct DSPackFormat: TensorFileFormat {
    /// What one pack embeds besides its tensors.
    public struct Contents: Sendable {
        /// The embedded files, in entry order.
        public var files: [(String, [UInt8])]
        /// The header's metadata object.
        public var metadata: JSONValue

        public init(files: [(String, [UInt8])] = [], metadata: JSONValue = .object([])) {
            self.files = files
            self.metadata = metadata
        }
    }

    /// What every pack embeds, unless `perOutput` names the output.
    public var contents: Contents
    /// Packs that embed something else, by the plan's output name (`shard --format dspack`: each
    /// rank's pack embeds its own rank.json and says which rank it is).
    public var perOutput: [String: Contents]
    /// The descriptive role (§4) of an output tensor, by name; absent names are unspecified.
    public var roles: [String: DSPackLayout.Role]

    public var files: [(String, [UInt8])] { contents.files }
    public var metadata: JSONValue { contents.metadata }

    public init(files: [(String, [UInt8])] = [], metadata: JSONValue = .object([]), roles: [String: DSPackLayout.Role] = [:],
                perOutput: [String: Contents] = [:]) {
        contents = Contents(files: files, metadata: metadata)
        self.roles = roles
        self.perOutput = perOutput
    }

    public var name: String { "dspack" }
    public var fileExtension: String { "dspack" }
    public var embedsModelFiles: Bool { true }

    private static func metadataBytes(_ c: Contents) -> Int { JSONWriter.compactLength(c.metadata) }

    public func fileSize(of tensors: [TensorSpec]) throws -> Int {
        DSPackWriter.fileSize(tensors: tensors, files: files.map { ($0.0, $0.1.count) }, metadataBytes: Self.metadataBytes(contents))
    }

    public func makeSizer() -> TensorFileSizer {
        DSPackSizer(files: files.map { ($0.0, $0.1.count) }, metadataBytes: Self.metadataBytes(contents))
    }

    public func makeWriter(path: String, tensors: [TensorSpec]) throws -> TensorFileWriter {
        try makeWriter(path: path, contents: contents, tensors: tensors)
    }

    public func makeWriter(path: String, output: String, tensors: [TensorSpec]) throws -> TensorFileWriter {
        try makeWriter(path: path, contents: perOutput[output] ?? contents, tensors: tensors)
    }

    private func makeWriter(path: String, contents c: Contents, tensors: [TensorSpec]) throws -> TensorFileWriter {
        try DSPackWriter(path: path, tensors: tensors.map { DSPackWriter.Tensor($0, role: roles[$0.name] ?? .unspecified) },
                         files: c.files, metadata: c.metadata)
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
