import SystemIO

/// Where a store's tensors live on disk: one file of the store, for resume records, progress
/// and page-cache hints.
public struct StoreFile: Sendable {
    /// Name relative to the store's location (`model-00001-of-00005.safetensors`).
    public var name: String
    public var path: String
    public var status: Sys.FileStatus
    /// The tensors stored in this file, in data order.
    public var tensorNames: [String]

    public init(name: String, path: String, status: Sys.FileStatus, tensorNames: [String]) {
        self.name = name
        self.path = path
        self.status = status
        self.tensorNames = tensorNames
    }
}

/// The reader seam: a set of named tensors, opened from headers alone and read zero-copy from
/// memory maps. A safetensors checkpoint (one file or an indexed directory) and a .dspack file
/// are stores; everything above this protocol (layouts, plans, the converter, the engine,
/// inspect) sees only it, never headers, mappings or file ranges.
///
/// Implementations map each file at most once and share the mapping between views; a view keeps
/// its mapping alive. Views are valid from any thread.
public protocol TensorStore: AnyObject, Sendable {
    /// `safetensors` or `dspack`.
    var formatName: String { get }
    /// The path the store was opened from (directory or file), for messages.
    var location: String { get }
    /// Every tensor name, in storage order (file by file, data order within a file).
    var tensorNames: [String] { get }
    /// Name, dtype, shape and byte size of a tensor; nil when the store has no such tensor.
    func info(_ name: String) -> TensorInfo?
    /// The tensor's bytes, zero-copy.
    func view(_ name: String) throws -> TensorView
    /// The files behind the store.
    var files: [StoreFile] { get }
    /// Weight files at the store's location that it does not read (e.g. `.safetensors` files an
    /// index does not name), for a warning.
    var unindexedFiles: [String] { get }
    /// Throws unless the store is a whole model to convert: it has tensors and is not one part
    /// of a larger checkpoint opened on its own.
    func requireWhole() throws
    /// The index into `files` of the file holding `name`.
    func fileIndex(of name: String) -> Int?
    /// Where `name`'s first byte is in its file (for messages); nil when the store cannot say.
    func fileOffset(of name: String) -> Int?
    /// Where `name`'s bytes are stored verbatim, one after another: the index into `files` and the
    /// byte offset of the tensor's first byte in that file. A reader may then read them from the
    /// file itself (`pread`) instead of the mapping; nil when the store cannot promise this (the
    /// default), and callers use `view`.
    func storedLocation(of name: String) -> (file: Int, offset: Int)?
    /// Hint that these tensors will be read soon (the kernel may read ahead).
    func prefetch(_ names: [String])
    /// Hint that the caller is done with these tensors: their pages leave this process's resident
    /// set (the data stays in the page cache); views stay valid and fault pages back in.
    func release(_ names: [String])
    /// `prefetch` / `release` for a byte range of one tensor (`range` is relative to the tensor's
    /// first byte), so a large tensor can be streamed in chunks with bounded resident memory.
    func prefetch(_ name: String, bytes range: Range<Int>)
    func release(_ name: String, bytes range: Range<Int>)
    /// Drops every page of the store's mappings from this process's resident set (the data stays
    /// in the page cache; views stay valid and fault pages back in). A long streaming run calls
    /// it every few tens of MB, so that its resident memory stays bounded by that window
    /// whatever pages its reads touched (partial pages at tensor edges, strided regions).
    func releaseAll()
    /// `prefetch` for bytes of views: `bytes` lies within one file's mapping (a view's bytes, or
    /// the bytes of several views adjacent in one file); anything else is ignored.
    func prefetch(mapped bytes: UnsafeRawBufferPointer)
    /// Names of the side files a model carries with its weights (config.json, tokenizer.json,
    /// generation_config.json, ...): files beside a safetensors checkpoint, embedded in a pack.
    var sideFileNames: [String] { get }
    /// A side file's bytes, or nil when the store has none of that name.
    func sideFile(_ name: String) throws -> [UInt8]?
    /// Where the side file `name` is or would be, for messages (a path beside the weights, or
    /// `pack#name` for an embedded one).
    func sideFilePath(_ name: String) -> String
}

extension TensorStore {
    public func storedLocation(of name: String) -> (file: Int, offset: Int)? { nil }
    public var tensorCount: Int { tensorNames.count }
    public func contains(_ name: String) -> Bool { info(name) != nil }
    /// Total bytes of tensor data.
    public var totalTensorBytes: Int { tensorNames.reduce(0) { $0 + (info($1)?.byteCount ?? 0) } }
    /// Total bytes of the files behind the store.
    public var totalFileBytes: Int { files.reduce(0) { $0 + $1.status.size } }
}
